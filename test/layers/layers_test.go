// Package layers checks what may import what across the module (docs/contributing.md).
// The rules go by directory, so a package added under internal/ is control plane and one
// under instance-agent/ is the agent's without anyone listing it here.
package layers

import (
	"fmt"
	"path"
	"slices"
	"strings"
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
