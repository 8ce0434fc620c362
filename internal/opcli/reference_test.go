package opcli_test

import (
	"bytes"
	"os"
	"path/filepath"
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
		t.Errorf("%s differs from what the CLI's commands give: run `go generate ./internal/opcli` and review the diff; want:\n%s", opcli.ReferencePath, b.Bytes())
	}
}
