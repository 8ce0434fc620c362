package docs

import (
	"path/filepath"
	"testing"

	"github.com/storecrypt/storecrypt/internal/modroot"
	"github.com/storecrypt/storecrypt/test/mdblock"
)

// docs are the README and docs/*.md, whatever they hold.
func docs(t *testing.T) []string {
	t.Helper()
	root, err := modroot.Dir()
	if err != nil {
		t.Fatal(err)
	}
	paths, err := filepath.Glob(filepath.Join(root, "docs", "*.md"))
	if err != nil {
		t.Fatal(err)
	}
	paths = append([]string{filepath.Join(root, "README.md")}, paths...)
	for i, p := range paths {
		if rel, err := filepath.Rel(root, p); err == nil {
			paths[i] = rel
		}
	}
	t.Chdir(root)
	return paths
}

// TestDocumentedCommands: every command line in a shell block of the README and docs/ is
// one its program takes, so a flag renamed in the binary, or misspelt in the docs, fails
// here with the file and line.
func TestDocumentedCommands(t *testing.T) {
	seen := map[string]int{}
	for _, path := range docs(t) {
		blocks, err := mdblock.Read(path)
		if err != nil {
			t.Fatal(err)
		}
		for _, b := range blocks {
			lines, err := commands(b)
			if err != nil {
				t.Error(err)
				continue
			}
			for _, c := range lines {
				name, _ := resolve(c.args)
				seen[name]++
				if err := check(c); err != nil {
					t.Error(err)
				}
			}
		}
	}
	// Each checked program is shown somewhere today; none found means the test reads
	// nothing (a fence or prompt it no longer recognises), not that the docs are right.
	for name, p := range programs {
		if p.check != nil && seen[name] == 0 {
			t.Errorf("no %s command line found in the README or docs/: want at least one", name)
		}
	}
	t.Logf("command lines by program: %v", seen)
}
