package sysexec

import (
	"context"
	"fmt"
	"strings"
	"testing"
)

// recorder is a T that records Fatalf instead of stopping the test.
type recorder struct{ failed []string }

func (r *recorder) Helper() {}
func (r *recorder) Fatalf(format string, args ...any) {
	r.failed = append(r.failed, fmt.Sprintf(format, args...))
}

// TestFakeUnordered: calls Unordered holds for may come in any order among themselves;
// everything else comes in turn, and nothing passes an unmade unordered call.
func TestFakeUnordered(t *testing.T) {
	probe := func(argv string) bool { return strings.HasPrefix(argv, "probe ") }
	script := []Call{{Argv: "probe a"}, {Argv: "probe b"}, {Argv: "probe c"}, {Argv: "write"}, {Argv: "probe d"}}
	for _, tc := range []struct {
		name      string
		unordered func(string) bool
		run       []string
		fails     bool
	}{
		{"in turn", probe, []string{"probe a", "probe b", "probe c", "write", "probe d"}, false},
		{"the probes in another order", probe, []string{"probe c", "probe a", "probe b", "write", "probe d"}, false},
		{"a write before every probe is made", probe, []string{"probe a", "probe c", "write"}, true},
		{"a probe past the write", probe, []string{"probe a", "probe d"}, true},
		{"another order without Unordered", nil, []string{"probe b", "probe a"}, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rec := &recorder{}
			f := &Fake{T: rec, Calls: script, Unordered: tc.unordered}
			for _, argv := range tc.run {
				name, args, _ := strings.Cut(argv, " ")
				c := Command{Name: name}
				if args != "" {
					c.Args = []string{args}
				}
				if _, err := f.Run(context.Background(), c); err != nil {
					break
				}
			}
			if got := len(rec.failed) > 0; got != tc.fails {
				t.Errorf("got failed %v (%q), want %v", got, rec.failed, tc.fails)
			}
		})
	}
}
