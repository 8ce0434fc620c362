package modroot_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/storecrypt/storecrypt/internal/modroot"
)

// TestDir: the root is the module's, with its go.mod, whatever the working directory.
func TestDir(t *testing.T) {
	t.Chdir(t.TempDir())
	dir, err := modroot.Dir()
	if err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(filepath.Join(dir, "go.mod"))
	if err != nil || !filepath.IsAbs(dir) || !strings.HasPrefix(string(b), "module github.com/storecrypt/storecrypt\n") {
		t.Errorf("got root %s (go.mod %q, %v), want the storecrypt module's", dir, b, err)
	}
}
