package mdblock

import (
	"os"
	"path/filepath"
	"reflect"
	"testing"
)

// TestRead: blocks with and without an info string, an indented one (its text dedented), a
// fence with an info string inside a block (text, not its end), and the line each starts on.
func TestRead(t *testing.T) {
	path := filepath.Join(t.TempDir(), "a.md")
	md := "# A, `make demo` or `make test`\n\n```sh\nmake `test`\n```\n\n- a step:\n\n  ```\n  $ storecrypt status\n  ```\n\n```text\n```yaml\n```\n"
	if err := os.WriteFile(path, []byte(md), 0o644); err != nil {
		t.Fatal(err)
	}
	got, err := Read(path)
	if err != nil {
		t.Fatal(err)
	}
	want := []Block{
		{File: path, Line: 4, Info: "sh", Text: "make `test`\n"},
		{File: path, Line: 10, Info: "", Text: "$ storecrypt status\n"},
		{File: path, Line: 14, Info: "text", Text: "```yaml\n"},
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("got %+v, want %+v", got, want)
	}
	spans, err := Spans(path)
	if err != nil {
		t.Fatal(err)
	}
	// The block's `make` is not a span: it is in a block.
	if want := []Span{{File: path, Line: 1, Text: "make demo"}, {File: path, Line: 1, Text: "make test"}}; !reflect.DeepEqual(spans, want) {
		t.Errorf("got spans %+v, want %+v", spans, want)
	}
	if err := os.WriteFile(path, []byte("```sh\nmake\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := Read(path); err == nil {
		t.Errorf("got no error for a block never closed, want one")
	}
}
