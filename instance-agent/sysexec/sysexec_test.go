package sysexec

import (
	"context"
	"errors"
	"testing"
)

func TestOSRunner(t *testing.T) {
	out, err := OS{}.Run(context.Background(), Command{Name: "sh", Args: []string{"-c", "cat; echo oops >&2; exit 3"}, Stdin: []byte("from stdin")})
	var exitErr *ExitError
	if !errors.As(err, &exitErr) || exitErr.Code != 3 || exitErr.Stderr != "oops\n" || ExitCode(err) != 3 {
		t.Fatalf("got %v, want an *ExitError with code 3 and the stderr", err)
	}
	if string(out) != "from stdin" {
		t.Errorf("stdout %q, want what went in on stdin", out)
	}
	if ExitCode(nil) != -1 || ExitCode(errors.New("x")) != -1 {
		t.Error("ExitCode of a non-exit error must be -1")
	}
	if _, err := (OS{}).Run(context.Background(), Command{Name: "/no/such/tool"}); err == nil || ExitCode(err) != -1 {
		t.Errorf("a missing tool: got %v", err)
	}
}
