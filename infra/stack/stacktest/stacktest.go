// Package stacktest makes stand-ins for `make build`'s output, for tests that synthesize
// the stack: the stack hashes, checks and uploads them, it never runs them.
package stacktest

import (
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"encoding/hex"
	"os"
	"path/filepath"
)

// BuildDir writes into dir what `make build` writes into bin/: each architecture's agent
// with its .sha256 and .gz, and each function's bootstrap.
func BuildDir(dir string) error {
	for _, arch := range []string{"amd64", "arm64"} {
		name := filepath.Join(dir, "storecrypt-agent-linux-"+arch)
		data := []byte("agent for " + arch)
		sum := sha256.Sum256(data)
		var gz bytes.Buffer
		zw := gzip.NewWriter(&gz)
		if _, err := zw.Write(data); err != nil {
			return err
		}
		if err := zw.Close(); err != nil {
			return err
		}
		for file, content := range map[string][]byte{
			name:             data,
			name + ".sha256": []byte(hex.EncodeToString(sum[:]) + "  storecrypt-agent-linux-" + arch + "\n"),
			name + ".gz":     gz.Bytes(),
		} {
			if err := os.WriteFile(file, content, 0o644); err != nil {
				return err
			}
		}
	}
	for _, fn := range []string{"launch", "result"} {
		if err := os.MkdirAll(filepath.Join(dir, "functions", fn), 0o755); err != nil {
			return err
		}
		if err := os.WriteFile(filepath.Join(dir, "functions", fn, "bootstrap"), []byte(fn), 0o755); err != nil {
			return err
		}
	}
	return nil
}
