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

// Fake is a scripted Runner: each Run must match the next Call exactly, in order.
type Fake struct {
	T interface {
		Helper()
		Fatalf(string, ...any)
	}
	Calls   []Call
	Missing []string // tools LookPath does not find
	mu      sync.Mutex
	next    int
	// Stdins records what each call received on stdin, by call index.
	Stdins map[int][]byte
}

var _ Runner = (*Fake)(nil)

// Run implements Runner.
func (f *Fake) Run(_ context.Context, c Command) ([]byte, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.T.Helper()
	if f.next >= len(f.Calls) {
		f.T.Fatalf("unexpected command %q after the %d scripted ones", c.String(), len(f.Calls))
		return nil, fmt.Errorf("unexpected command")
	}
	want := f.Calls[f.next]
	if got := c.String(); got != want.Argv {
		f.T.Fatalf("command %d:\n got %q\nwant %q", f.next, got, want.Argv)
	}
	if c.Stdin != nil {
		if f.Stdins == nil {
			f.Stdins = map[int][]byte{}
		}
		f.Stdins[f.next] = append([]byte(nil), c.Stdin...)
	}
	f.next++
	if want.Do != nil {
		if err := want.Do(); err != nil {
			f.T.Fatalf("command %q: %v", c.String(), err)
		}
	}
	if want.Code != 0 {
		return []byte(want.Stdout), &ExitError{Command: c.String(), Code: want.Code, Stderr: want.Stderr}
	}
	return []byte(want.Stdout), nil
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
