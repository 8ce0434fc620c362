package storecrypt_test

import (
	"go/ast"
	"go/parser"
	"go/token"
	"maps"
	"path/filepath"
	"slices"
	"strconv"
	"testing"

	"github.com/storecrypt/storecrypt/internal/contract"
)

// constants reads the constants of files: each name with its string value, following a
// constant named after another (DefaultLayout = LayoutRAID0) or another package's
// (contract.LayoutRAID0, looked up in names); and, per declared type, the names of its
// constants.
func constants(t *testing.T, names map[string]string, files ...string) (values map[string]string, byType map[string][]string) {
	t.Helper()
	values, byType = map[string]string{}, map[string][]string{}
	for _, f := range files {
		parsed, err := parser.ParseFile(token.NewFileSet(), f, nil, 0)
		if err != nil {
			t.Fatal(err)
		}
		for _, d := range parsed.Decls {
			gen, ok := d.(*ast.GenDecl)
			if !ok || gen.Tok != token.CONST {
				continue
			}
			for _, spec := range gen.Specs {
				vs := spec.(*ast.ValueSpec)
				for i, n := range vs.Names {
					if i >= len(vs.Values) {
						continue
					}
					switch v := vs.Values[i].(type) {
					case *ast.BasicLit:
						values[n.Name], _ = strconv.Unquote(v.Value)
					case *ast.Ident:
						values[n.Name] = values[v.Name]
					case *ast.SelectorExpr:
						values[n.Name] = names[v.Sel.Name]
					}
					if typ, ok := vs.Type.(*ast.Ident); ok {
						byType[typ.Name] = append(byType[typ.Name], n.Name)
					}
				}
			}
		}
	}
	return values, byType
}

// TestEnumsCoverContract: every key source the construct deploys, every filesystem and
// every layout the agent takes has an exported constant, so a user never needs
// internal/contract (which Go does not let them import).
func TestEnumsCoverContract(t *testing.T) {
	contractFiles, err := filepath.Glob(filepath.Join("..", "..", "internal", "contract", "*.go"))
	if err != nil {
		t.Fatal(err)
	}
	fromContract, _ := constants(t, nil, contractFiles...)
	values, byType := constants(t, fromContract, "props.go")
	for _, tc := range []struct {
		typ  string
		want []string
	}{
		// Ephemeral keys need no stack: the construct refuses it (TestBadProps).
		{"KeySource", slices.DeleteFunc(slices.Clone(contract.KeySources), func(s string) bool { return s == contract.KeySourceEphemeral })},
		{"Filesystem", contract.Filesystems},
		{"Layout", contract.Layouts},
	} {
		got := map[string]bool{}
		for _, name := range byType[tc.typ] {
			got[values[name]] = true
		}
		if want := slices.Sorted(slices.Values(tc.want)); !slices.Equal(slices.Sorted(maps.Keys(got)), want) {
			t.Errorf("%s: got constants of %v, want one for each of %v", tc.typ, slices.Sorted(maps.Keys(got)), want)
		}
	}
}
