package layers

import (
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"path/filepath"
	"testing"
)

// maxMainLines is the most lines of code (not blank, not a comment) a product binary's
// main package may have: parse, wire, call one package, exit. Today's largest, the CDK
// app's, has 54.
const maxMainLines = 60

// TestMainsAreThin: a product binary's main parses, wires and calls one package; its
// logic lives in a package that tests can reach. The test harnesses' own mains (test/...)
// are tools, not product, and are not held to it.
func TestMainsAreThin(t *testing.T) {
	n := 0
	for _, p := range list(t) {
		if p.Name != "main" || !product(p.Path) {
			continue
		}
		n++
		lines := 0
		for _, f := range p.GoFiles {
			c, err := codeLines(filepath.Join(p.Dir, f))
			if err != nil {
				t.Fatal(err)
			}
			lines += c
		}
		if lines > maxMainLines {
			t.Errorf("%s: got %d lines of code, want at most %d: move the logic into a package", p.Path, lines, maxMainLines)
		}
	}
	if n < 5 {
		t.Errorf("got %d product main packages, want cmd/*, functions/*, instance-agent/cmd/*, infra", n)
	}
}

// codeLines counts the lines of a file that are neither blank nor only a comment.
func codeLines(file string) (int, error) {
	fset := token.NewFileSet()
	f, err := parser.ParseFile(fset, file, nil, parser.ParseComments)
	if err != nil {
		return 0, fmt.Errorf("parsing %s: %w", file, err)
	}
	tf := fset.File(f.Pos())
	code := map[int]bool{}
	ast.Inspect(f, func(n ast.Node) bool {
		if n == nil {
			return false
		}
		if _, ok := n.(*ast.CommentGroup); ok {
			return false
		}
		code[tf.Line(n.Pos())] = true
		code[tf.Line(n.End())] = true
		return true
	})
	return len(code), nil
}
