// Package layers checks what may import what across the module (docs/contributing.md).
// The rules go by directory, so a package added under internal/ is control plane and one
// under instance-agent/ is the agent's without anyone listing it here.
package layers

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
)

const module = "github.com/storecrypt/storecrypt"

// pkg is what go list says of one package, its paths relative to the module root.
type pkg struct {
	Path    string   // e.g. internal/launch
	Name    string   // the package clause: main for a binary
	Dir     string   // absolute
	GoFiles []string // non-test files, relative to Dir
	Imports []string // the module's packages its non-test files import, relative
	Deps    []string // every package it links, full import paths
}

// under reports whether p is one of dirs or below one.
func under(p string, dirs ...string) bool {
	for _, d := range dirs {
		if p == d || strings.HasPrefix(p, d+"/") {
			return true
		}
	}
	return false
}

// testSupport is what only tests may link: the harnesses, the fakes, the golden files,
// the sample events, the module-root finder, and xxxtest helper packages (httptest's
// convention).
func testSupport(p string) bool {
	return under(p, "test", "internal/fakeaws", "internal/golden", "internal/modroot", "events") ||
		strings.HasSuffix(path.Base(p), "test")
}

func agent(p string) bool    { return under(p, "instance-agent") }
func contract(p string) bool { return p == "internal/contract" }

// controlPlane is everything under internal/ but contract and test support: a new
// domain package there is covered without being named.
func controlPlane(p string) bool { return under(p, "internal") && !contract(p) && !testSupport(p) }

func product(p string) bool { return !testSupport(p) }

// entrypoints are the packages that hold a binary's logic, each with the one main that
// may import it: nothing imports a function's package for a constant (the constant
// belongs in contract, the rule in the control plane's domain package).
var entrypoints = map[string]string{
	"internal/launch": "functions/launch",
	"internal/result": "functions/result",
	"internal/opcli":  "cmd/storecrypt",
}

// rule: every package that from selects may import, of the module's packages, only those
// may allows.
type rule struct {
	name string
	from func(p string) bool
	may  func(from, imp string) bool
}

var rules = []rule{
	{"contract imports none of the module's packages",
		contract, func(_, _ string) bool { return false }},
	{"the agent imports only the agent and contract",
		agent, func(_, imp string) bool { return agent(imp) || contract(imp) }},
	{"the control plane imports only the control plane and contract",
		controlPlane, func(_, imp string) bool { return controlPlane(imp) || contract(imp) }},
	{"no product package imports test support",
		product, func(_, imp string) bool { return !testSupport(imp) }},
	{"the fakes import no product package",
		func(p string) bool { return under(p, "internal/fakeaws") },
		func(_, imp string) bool { return under(imp, "internal/fakeaws", "internal/modroot") }},
	{"outside the agent, only tests import the agent",
		func(p string) bool { return product(p) && !agent(p) },
		func(_, imp string) bool { return !agent(imp) }},
	{"a function's or the CLI's logic is imported only by its main",
		product, func(from, imp string) bool { owner, ok := entrypoints[imp]; return !ok || owner == from }},
}

// sdkFree are packages that must link no AWS SDK package at all, directly or through
// another: they decide from data, and the I/O is their caller's.
var sdkFree = []string{"instance-agent/plan", "instance-agent/keytoken", "internal/contract"}

// maxMainLines is the most lines of code (not blank, not a comment) a product binary's
// main package may have: parse, wire, call one package, exit. Today's largest, the CDK
// app's, has 54.
const maxMainLines = 60

// agentContractFiles are the files of internal/contract whose names the agent may use:
// its flags, their checks, what it makes on an instance, its report. The tags, reasons,
// environment and document parameters are the control plane's; an agent that read them
// would be deciding the fleet's business on an instance.
var agentContractFiles = []string{"agent.go", "validate.go", "volume.go", "report.go"}

// violation is one broken rule.
type violation struct{ rule, from, imp string }

func (v violation) String() string { return fmt.Sprintf("%s: %s imports %s", v.rule, v.from, v.imp) }

func checkImports(rules []rule, pkgs []pkg) []violation {
	var out []violation
	for _, r := range rules {
		for _, p := range pkgs {
			if !r.from(p.Path) {
				continue
			}
			for _, imp := range p.Imports {
				if !r.may(p.Path, imp) {
					out = append(out, violation{r.name, p.Path, imp})
				}
			}
		}
	}
	return out
}

func checkSDKFree(pkgs []pkg, names []string) []violation {
	var out []violation
	for _, p := range pkgs {
		if !slices.Contains(names, p.Path) {
			continue
		}
		// One is enough to say the package reaches AWS; go list -deps shows the rest.
		if i := slices.IndexFunc(p.Deps, func(d string) bool { return strings.HasPrefix(d, "github.com/aws/") }); i >= 0 {
			out = append(out, violation{"links no AWS SDK package", p.Path, p.Deps[i]})
		}
	}
	return out
}

// list is the module's packages, listed once for all the tests.
func list(t *testing.T) []pkg {
	t.Helper()
	pkgs, err := listed()
	if err != nil {
		t.Fatal(err)
	}
	return pkgs
}

// listed runs go list on the whole module. go test puts its own go first in PATH.
var listed = sync.OnceValues(func() ([]pkg, error) {
	root := filepath.Join("..", "..")
	if err := seeSources(root); err != nil {
		return nil, err
	}
	cmd := exec.Command("go", "list", "-json=ImportPath,Name,Dir,GoFiles,Imports,Deps", "./...")
	cmd.Dir = root
	out, err := cmd.Output()
	if err != nil {
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			return nil, fmt.Errorf("go list: %w: %s", err, ee.Stderr)
		}
		return nil, fmt.Errorf("go list: %w", err)
	}
	var pkgs []pkg
	dec := json.NewDecoder(bytes.NewReader(out))
	for {
		var j struct {
			ImportPath, Name, Dir string
			GoFiles, Imports      []string
			Deps                  []string
		}
		if err := dec.Decode(&j); errors.Is(err, io.EOF) {
			break
		} else if err != nil {
			return nil, fmt.Errorf("decoding go list: %w", err)
		}
		p := pkg{Path: rel(j.ImportPath), Name: j.Name, Dir: j.Dir, GoFiles: j.GoFiles, Deps: j.Deps}
		for _, imp := range j.Imports {
			if r := rel(imp); r != imp {
				p.Imports = append(p.Imports, r)
			}
		}
		pkgs = append(pkgs, p)
	}
	if len(pkgs) < 40 {
		return nil, fmt.Errorf("go list gave %d packages, want the whole module", len(pkgs))
	}
	return pkgs, nil
})

// seeSources looks at every directory and Go file of the module. go test caches a
// passing result against the files the test itself opened, and go list, a child
// process, opens the sources out of its sight: without this, an import added after a
// pass would pass again from the cache.
func seeSources(root string) error {
	return filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		switch {
		case err != nil:
			return err
		case d.IsDir() && p != root && (strings.HasPrefix(d.Name(), ".") || d.Name() == "node_modules" || d.Name() == "testdata"):
			return filepath.SkipDir
		case !d.IsDir() && strings.HasSuffix(p, ".go"):
			_, err = os.Stat(p)
		}
		return err
	})
}

// rel is an import path relative to the module root, or the path itself outside it.
func rel(imp string) string {
	if imp == module {
		return "."
	}
	if r, ok := strings.CutPrefix(imp, module+"/"); ok {
		return r
	}
	return imp
}

func TestImports(t *testing.T) {
	pkgs := list(t)
	for _, v := range checkImports(rules, pkgs) {
		t.Errorf("%s, want no such import", v)
	}
	for _, v := range checkSDKFree(pkgs, sdkFree) {
		t.Errorf("%s: %s links %s, want no AWS SDK package (go list -deps ./%[2]s)", v.rule, v.from, v.imp)
	}
}

// TestRulesCatchBreaks: each rule fires on an import it forbids, so a rule whose matcher
// was loosened into saying yes to everything fails here, not silently.
func TestRulesCatchBreaks(t *testing.T) {
	for _, tc := range []struct{ from, imp, rule string }{
		{"internal/contract", "internal/document", rules[0].name},
		{"instance-agent/plan", "internal/ledger", rules[1].name},
		{"internal/fleet", "instance-agent/luks", rules[2].name},
		{"internal/fleet", "infra/storecrypt", rules[2].name},
		{"internal/launch", "internal/fakeaws", rules[3].name},
		{"infra/storecrypt", "test/cfn", rules[3].name},
		{"cmd/storecrypt", "internal/golden", rules[3].name},
		{"internal/fakeaws", "internal/contract", rules[4].name},
		{"internal/fakeaws/apimodel", "internal/policy", rules[4].name},
		{"infra/artifact", "instance-agent/plan", rules[5].name},
		{"internal/opcli", "internal/launch", rules[6].name},
		{"functions/result", "internal/launch", rules[6].name},
	} {
		t.Run(tc.from+"->"+tc.imp, func(t *testing.T) {
			got := checkImports(rules, []pkg{{Path: tc.from, Imports: []string{tc.imp}}})
			if !slices.ContainsFunc(got, func(v violation) bool { return v.rule == tc.rule }) {
				t.Errorf("got %v, want a violation of %q", got, tc.rule)
			}
		})
	}
	if got := checkSDKFree([]pkg{{Path: "instance-agent/plan", Deps: []string{"github.com/aws/aws-sdk-go-v2/aws"}}}, sdkFree); len(got) != 1 {
		t.Errorf("plan linking the SDK: got %v, want one violation", got)
	}
}

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
