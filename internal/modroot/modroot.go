// Package modroot finds the root of storecrypt's source tree (the directory of its go.mod)
// for the tests' tools, which keep caches and node packages there (.cache, node_modules).
// It goes by where this file was compiled from, not the working directory, so a test of
// any package, or `go run` from anywhere in the tree, finds the same root.
package modroot

import (
	"errors"
	"os"
	"path/filepath"
	"runtime"
)

// Dir is the nearest directory above this package's source with a go.mod.
func Dir() (string, error) {
	_, file, _, ok := runtime.Caller(0)
	if !ok {
		return "", errors.New("modroot: no source location (built with -trimpath?)")
	}
	for dir := filepath.Dir(file); ; {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir, nil
		}
		up := filepath.Dir(dir)
		if up == dir {
			return "", errors.New("modroot: no go.mod above " + file)
		}
		dir = up
	}
}
