package layers

import (
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"path/filepath"
	"slices"
	"strconv"
	"testing"
)

// agentContractFiles are the files of internal/contract whose names the agent may use:
// its flags, their checks, what it makes on an instance, its report. The tags, reasons,
// environment and document parameters are the control plane's; an agent that read them
// would be deciding the fleet's business on an instance.
var agentContractFiles = []string{"agent.go", "validate.go", "volume.go", "report.go"}

// TestAgentUsesOnlyItsContract: the agent's packages use names from contract's
// agent-side files only (doc.go of contract lists them).
func TestAgentUsesOnlyItsContract(t *testing.T) {
	pkgs := list(t)
	i := slices.IndexFunc(pkgs, func(p pkg) bool { return contract(p.Path) })
	if i < 0 {
		t.Fatal("go list did not list internal/contract")
	}
	declared, err := declaredIn(pkgs[i])
	if err != nil {
		t.Fatal(err)
	}
	used := 0
	for _, p := range pkgs {
		if !agent(p.Path) {
			continue
		}
		for _, f := range p.GoFiles {
			names, err := contractNames(filepath.Join(p.Dir, f))
			if err != nil {
				t.Fatal(err)
			}
			for _, name := range names {
				used++
				if file := declared[name]; !slices.Contains(agentContractFiles, file) {
					t.Errorf("%s/%s uses contract.%s from %s, want only names from %v", p.Path, f, name, file, agentContractFiles)
				}
			}
		}
	}
	if used == 0 {
		t.Error("found no use of contract in the agent: the parser missed them")
	}
}

// declaredIn maps each top-level name of p to the file that declares it.
func declaredIn(p pkg) (map[string]string, error) {
	out := map[string]string{}
	fset := token.NewFileSet()
	for _, name := range p.GoFiles {
		f, err := parser.ParseFile(fset, filepath.Join(p.Dir, name), nil, 0)
		if err != nil {
			return nil, fmt.Errorf("parsing %s: %w", name, err)
		}
		for _, d := range f.Decls {
			switch d := d.(type) {
			case *ast.FuncDecl:
				if d.Recv == nil {
					out[d.Name.Name] = name
				}
			case *ast.GenDecl:
				for _, s := range d.Specs {
					switch s := s.(type) {
					case *ast.TypeSpec:
						out[s.Name.Name] = name
					case *ast.ValueSpec:
						for _, n := range s.Names {
							out[n.Name] = name
						}
					}
				}
			}
		}
	}
	return out, nil
}

// contractNames are the contract.X names a file uses, under whatever name it imports
// contract as.
func contractNames(file string) ([]string, error) {
	f, err := parser.ParseFile(token.NewFileSet(), file, nil, 0)
	if err != nil {
		return nil, fmt.Errorf("parsing %s: %w", file, err)
	}
	local := ""
	for _, s := range f.Imports {
		if p, _ := strconv.Unquote(s.Path.Value); p == module+"/internal/contract" {
			local = "contract"
			if s.Name != nil {
				local = s.Name.Name
			}
		}
	}
	if local == "" {
		return nil, nil
	}
	var names []string
	ast.Inspect(f, func(n ast.Node) bool {
		if sel, ok := n.(*ast.SelectorExpr); ok {
			if id, ok := sel.X.(*ast.Ident); ok && id.Name == local {
				names = append(names, sel.Sel.Name)
			}
		}
		return true
	})
	return names, nil
}
