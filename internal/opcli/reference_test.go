package opcli_test

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/storecrypt/storecrypt/internal/golden"
	"github.com/storecrypt/storecrypt/internal/opcli"
)

// TestReference: docs/cli.md is what WriteReference writes from the cobra tree, so a flag
// or command added, renamed or redescribed shows in the reference in the same change.
func TestReference(t *testing.T) {
	var b bytes.Buffer
	if err := opcli.WriteReference(&b); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join("..", "..", opcli.ReferencePath)
	if golden.Updating() {
		if err := os.WriteFile(path, b.Bytes(), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	got, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, b.Bytes()) {
		gotLines, wantLines := strings.Split(string(got), "\n"), strings.Split(b.String(), "\n")
		n := 0
		for n < min(len(gotLines), len(wantLines)) && gotLines[n] == wantLines[n] {
			n++
		}
		t.Errorf("%s:%d differs from what the CLI's commands give (run `go generate ./internal/opcli` and review the diff):\ngot  %q\nwant %q",
			opcli.ReferencePath, n+1, line(gotLines, n), line(wantLines, n))
	}
}

func line(lines []string, n int) string {
	if n < len(lines) {
		return lines[n]
	}
	return "(the end)"
}
