package main

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestExitStatus: the command's status is go test's or the first command's, failures and
// build errors are printed as go test prints them, the first command ends before the
// others' go test prints, and the summary names the slowest tests.
func TestExitStatus(t *testing.T) {
	bin := filepath.Join(t.TempDir(), "gotest")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("building gotest: %v\n%s", err, out)
	}
	const passed = "ok  \tgithub.com/storecrypt/storecrypt/test/cmd/gotest/testdata/pass"
	for _, tc := range []struct {
		name, pkg, first string
		code             int
		says             []string // in this order
		mustNot          []string
	}{
		{"pass", "pass", "", 0, []string{passed, "slowest tests:", "testdata/pass TestPasses"},
			[]string{"=== RUN", "a passing test's log", "FAILED"}},
		{"fail", "fail", "", 1, []string{"got 1, want 2", "--- FAIL: TestFails/sub", "FAIL\tgithub.com/storecrypt/storecrypt/test/cmd/gotest/testdata/fail", "FAILED:\n  github.com/storecrypt/storecrypt/test/cmd/gotest/testdata/fail TestFails/sub"},
			[]string{"=== RUN", "a passing test's log"}},
		{"broken", "broken", "", 1, []string{"declared and not used: unused", "FAILED:"}, nil},
		{"first, then the others", "pass", "sleep 2; echo the first command ran", 0, []string{"the first command ran", passed}, []string{"FAILED"}},
		{"first fails", "pass", "echo lint found something; exit 3", 1, []string{"lint found something", "exit status 3", passed}, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			events := filepath.Join(t.TempDir(), "events.json")
			out, err := exec.Command(bin, "-json", events, "-first", tc.first, "./testdata/"+tc.pkg).CombinedOutput()
			code := 0
			if exit := (*exec.ExitError)(nil); errors.As(err, &exit) {
				code = exit.ExitCode()
			} else if err != nil {
				t.Fatal(err)
			}
			if code != tc.code {
				t.Errorf("exit status %d, want %d\n%s", code, tc.code, out)
			}
			rest := string(out)
			for _, s := range tc.says {
				_, after, ok := strings.Cut(rest, s)
				if !ok {
					t.Errorf("the output lacks %q after %q:\n%s", s, tc.says, out)
					break
				}
				rest = after
			}
			if b, err := os.ReadFile(events); err != nil || !strings.Contains(string(b), `"Action":"start"`) {
				t.Errorf("the events file holds %q (%v), want go test's events", b, err)
			}
			for _, s := range tc.mustNot {
				if strings.Contains(string(out), s) {
					t.Errorf("the output has %q:\n%s", s, out)
				}
			}
		})
	}
}

// TestSplit: a package whose tests import the guest package runs in the guests' go test,
// one that only builds it does not, nor one that only starts the emulators (test/emu: the
// packages that use it would otherwise wait in the guests' queue for no guest).
func TestSplit(t *testing.T) {
	guests, others, err := split(context.Background(), []string{"github.com/storecrypt/storecrypt/test/e2e", "github.com/storecrypt/storecrypt/test/vm/...", "github.com/storecrypt/storecrypt/test/emu", "./testdata/pass"})
	if err != nil {
		t.Fatal(err)
	}
	if got, want := strings.Join(guests, " "), "github.com/storecrypt/storecrypt/test/e2e"; got != want {
		t.Errorf("guests %q, want %q", got, want)
	}
	if got, want := strings.Join(others, " "), "github.com/storecrypt/storecrypt/test/vm github.com/storecrypt/storecrypt/test/vm/vmexec github.com/storecrypt/storecrypt/test/vm/wire github.com/storecrypt/storecrypt/test/emu github.com/storecrypt/storecrypt/test/cmd/gotest/testdata/pass"; got != want {
		t.Errorf("others %q, want %q", got, want)
	}
}
