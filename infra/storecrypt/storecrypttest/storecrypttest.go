// Package storecrypttest makes stand-ins for the construct's code (package artifact's
// layout), for tests that synthesize it: the construct hashes, checks and uploads them,
// it never runs them.
package storecrypttest

import (
	"os"
	"path/filepath"

	"github.com/storecrypt/storecrypt/infra/artifact"
	"github.com/storecrypt/storecrypt/internal/document"
)

// BuildDir writes into dir what artifact.Build writes: each architecture's agent with
// its .sha256 and .gz, and each function's bootstrap.
func BuildDir(dir string) error {
	for _, arch := range document.Architectures {
		name := artifact.Agent(dir, arch)
		if err := os.WriteFile(name, []byte("agent for "+arch), 0o644); err != nil {
			return err
		}
		if err := artifact.DigestAndGzip(name); err != nil {
			return err
		}
	}
	for _, fn := range artifact.Functions {
		if err := os.MkdirAll(artifact.Function(dir, fn), 0o755); err != nil {
			return err
		}
		if err := os.WriteFile(filepath.Join(artifact.Function(dir, fn), "bootstrap"), []byte(fn), 0o755); err != nil {
			return err
		}
	}
	return nil
}
