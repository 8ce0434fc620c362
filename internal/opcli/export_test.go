package opcli

import (
	"io"
	"testing"
)

// StdinIsTerminal makes the CLI take stdin for a terminal until t ends.
func StdinIsTerminal(t *testing.T) {
	was := stdinIsTerminal
	stdinIsTerminal = func(io.Reader) bool { return true }
	t.Cleanup(func() { stdinIsTerminal = was })
}

// TargetFilters is rerun's reading of --targets.
var TargetFilters = targetFilters

// IsTerminal is the CLI's test for a person at the other end of a stream.
var IsTerminal = isTerminal

// SetVersion stands in the version make build stamps, until t ends.
func SetVersion(t *testing.T, v string) {
	was := Version
	Version = v
	t.Cleanup(func() { Version = was })
}
