package sysexec

import (
	"context"
	"fmt"
	"strings"
	"sync"
)

// Call is one expected command of a Fake and what it answers.
type Call struct {
	Argv   string // the whole command line, space-joined
	Stdout string
	Code   int // non-zero: the call returns an *ExitError with Stderr
	Stderr string
	// Do, when set, runs when the call is made: the command's effect on the test's files.
	Do func() error
}

// Fake is a scripted Runner: each Run must match the next Call exactly, in order, except
// where Unordered allows another order.
type Fake struct {
	T interface {
		Helper()
		Fatalf(string, ...any)
	}
	Calls   []Call
	Missing []string // tools LookPath does not find
	// Unordered names the commands the code under test runs concurrently (the probes of
	// several disks at once): consecutive scripted calls it holds for may be made in any
	// order among themselves, and nothing else may come before all of them are made.
	Unordered func(argv string) bool
	mu        sync.Mutex
	next      int    // the first call not made
	made      []bool // by call index, for unordered calls made ahead of next
	// Stdins records what each call received on stdin, by call index.
	Stdins map[int][]byte
}

var _ Runner = (*Fake)(nil)

// Run implements Runner. A call's Do runs outside the lock, so concurrent calls can wait
// for each other there.
func (f *Fake) Run(_ context.Context, c Command) ([]byte, error) {
	f.T.Helper()
	got := c.String()
	f.mu.Lock()
	i, ok := f.match(got)
	if !ok {
		f.mu.Unlock()
		if i == len(f.Calls) {
			f.T.Fatalf("unexpected command %q after the %d scripted ones", got, len(f.Calls))
		} else {
			f.T.Fatalf("command %d:\n got %q\nwant %q", i, got, f.Calls[i].Argv)
		}
		return nil, fmt.Errorf("unexpected command")
	}
	if c.Stdin != nil {
		if f.Stdins == nil {
			f.Stdins = map[int][]byte{}
		}
		f.Stdins[i] = append([]byte(nil), c.Stdin...)
	}
	f.mu.Unlock()
	want := f.Calls[i]
	if want.Do != nil {
		if err := want.Do(); err != nil {
			f.T.Fatalf("command %q: %v", got, err)
		}
	}
	if want.Code != 0 {
		return []byte(want.Stdout), &ExitError{Command: got, Code: want.Code, Stderr: want.Stderr}
	}
	return []byte(want.Stdout), nil
}

// match marks the scripted call that got is and returns its index: the next one, or,
// while both it and got are Unordered, any unmade one of the run of Unordered calls that
// starts there. Without a match it returns the index of the call that was due.
func (f *Fake) match(got string) (int, bool) {
	if f.made == nil {
		f.made = make([]bool, len(f.Calls))
	}
	unordered := func(argv string) bool { return f.Unordered != nil && f.Unordered(argv) }
	for i := f.next; i < len(f.Calls); i++ {
		switch {
		case f.made[i]:
			continue
		case f.Calls[i].Argv == got:
			f.made[i] = true
			for f.next < len(f.Calls) && f.made[f.next] {
				f.next++
			}
			return i, true
		case !unordered(f.Calls[i].Argv) || !unordered(got):
			return f.next, false
		}
	}
	return f.next, false
}

// LookPath implements Runner.
func (f *Fake) LookPath(name string) (string, error) {
	for _, m := range f.Missing {
		if m == name {
			return "", fmt.Errorf("exec: %q: executable file not found in $PATH", name)
		}
	}
	return "/usr/sbin/" + name, nil
}

// Done fails the test when scripted calls were not made.
func (f *Fake) Done() {
	f.T.Helper()
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.next != len(f.Calls) {
		var left []string
		for _, c := range f.Calls[f.next:] {
			left = append(left, c.Argv)
		}
		f.T.Fatalf("%d scripted commands not run:\n%s", len(left), strings.Join(left, "\n"))
	}
}
