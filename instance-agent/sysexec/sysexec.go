// Package sysexec is the agent's seam to the system tools it drives (cryptsetup, mdadm,
// blkid, mkfs): every command goes through Runner, so tests can script the exact argv,
// the order of calls and what each returns, and can check that secrets travel only on
// stdin.
package sysexec

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os/exec"
	"strings"
)

// Command is one invocation of a system tool.
type Command struct {
	Name string
	Args []string
	// Stdin is written to the tool's standard input through a pipe. It may carry key
	// material, so it is never logged or put in an error; the caller zeroes it afterwards.
	Stdin []byte
}

func (c Command) String() string {
	return strings.Join(append([]string{c.Name}, c.Args...), " ")
}

// Runner runs commands.
type Runner interface {
	// Run runs c and returns its standard output. A non-zero exit is an *ExitError.
	Run(ctx context.Context, c Command) ([]byte, error)
	// LookPath reports where a tool is, or an error when it is not installed.
	LookPath(name string) (string, error)
}

// ExitError is a command that ran and exited non-zero. Callers branch on Code (blkid's
// exit 2 means "no signature"), never on the text.
type ExitError struct {
	Command string
	Code    int
	Stderr  string
}

func (e *ExitError) Error() string {
	msg := fmt.Sprintf("%s: exit status %d", e.Command, e.Code)
	if s := strings.TrimSpace(e.Stderr); s != "" {
		msg += ": " + s
	}
	return msg
}

// ExitCode returns the exit code of err when it is an *ExitError, and -1 otherwise.
func ExitCode(err error) int {
	var e *ExitError
	if errors.As(err, &e) {
		return e.Code
	}
	return -1
}

// OS runs commands on this machine.
type OS struct{}

var _ Runner = OS{}

// Run implements Runner.
func (OS) Run(ctx context.Context, c Command) ([]byte, error) {
	cmd := exec.CommandContext(ctx, c.Name, c.Args...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout = &stdout
	cmd.Stderr = &stderr
	// LC_ALL=C keeps the tools' messages and number formats stable for parsing.
	cmd.Env = append(cmd.Environ(), "LC_ALL=C")
	if c.Stdin != nil {
		// A pipe, not a file: the key goes from this process's memory to the tool's.
		cmd.Stdin = bytes.NewReader(c.Stdin)
	}
	err := cmd.Run()
	var exitErr *exec.ExitError
	if errors.As(err, &exitErr) {
		return stdout.Bytes(), &ExitError{Command: c.String(), Code: exitErr.ExitCode(), Stderr: stderr.String()}
	}
	if err != nil {
		return stdout.Bytes(), fmt.Errorf("%s: %w", c.String(), err)
	}
	return stdout.Bytes(), nil
}

// LookPath implements Runner.
func (OS) LookPath(name string) (string, error) {
	return exec.LookPath(name)
}
