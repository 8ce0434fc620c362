package conformance

import (
	"bufio"
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"io/fs"
	"maps"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/storecrypt/storecrypt/internal/contract"
	"github.com/storecrypt/storecrypt/internal/findings"
	"github.com/storecrypt/storecrypt/test/cfn"
)

// moduleRoot is the repository, seen from this package's directory (go test's working
// directory).
var moduleRoot = filepath.Join("..", "..")

// operationsDoc is the on-call runbook; its "## " parts hold a "### " section per thing
// that can page someone.
const operationsDoc = "docs/operations.md"

// runbook is docs/operations.md: for each "## " part, its "### " sections' bodies by
// title (backticks dropped), and the part's own text before its first section.
type runbook struct {
	sections map[string]map[string]string
	intro    map[string]string
}

func readRunbook(t *testing.T) runbook {
	t.Helper()
	f, err := os.Open(filepath.Join(moduleRoot, operationsDoc))
	if err != nil {
		t.Fatalf("opening the runbook: %v", err)
	}
	defer f.Close()
	r := runbook{sections: map[string]map[string]string{}, intro: map[string]string{}}
	var part, section string
	var body strings.Builder
	flush := func() {
		switch {
		case part != "" && section != "":
			r.sections[part][section] = body.String()
		case part != "":
			r.intro[part] = body.String()
		}
		body.Reset()
	}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := sc.Text()
		switch {
		case strings.HasPrefix(line, "## "):
			flush()
			part, section = heading(line), ""
			if r.sections[part] != nil {
				t.Fatalf("%s: two parts named %q", operationsDoc, part)
			}
			r.sections[part] = map[string]string{}
		case strings.HasPrefix(line, "### ") && part != "":
			flush()
			section = heading(line)
			if _, dup := r.sections[part][section]; dup {
				t.Fatalf("%s: two sections named %q under %q", operationsDoc, section, part)
			}
		default:
			body.WriteString(line + "\n")
		}
	}
	flush()
	if err := sc.Err(); err != nil {
		t.Fatalf("reading the runbook: %v", err)
	}
	return r
}

func heading(line string) string {
	return strings.ReplaceAll(strings.TrimSpace(strings.TrimLeft(line, "#")), "`", "")
}

// part is the sections of one "## " part; the test stops when the runbook has none.
func (r runbook) part(t *testing.T, name string) map[string]string {
	t.Helper()
	s, ok := r.sections[name]
	if !ok {
		t.Fatalf("%s has no part %q; it has %v", operationsDoc, name, slices.Sorted(maps.Keys(r.sections)))
	}
	return s
}

// sameNames reports each name in want with no section, and each section not in want.
func sameNames(t *testing.T, what string, sections map[string]string, want []string) {
	t.Helper()
	for _, name := range want {
		if _, ok := sections[name]; !ok {
			t.Errorf("%s: nothing for the %s %q: got %v", operationsDoc, what, name, slices.Sorted(maps.Keys(sections)))
		}
	}
	for name := range sections {
		if !slices.Contains(want, name) {
			t.Errorf("%s: got the %s %q, which does not exist: want only %v", operationsDoc, what, name, want)
		}
	}
}

// cdkHash is the suffix CDK adds to a logical ID: eight hex digits of the construct's
// path. What precedes it is the construct's own id, the part of the alarm's name a
// reader recognises whatever the stack is called.
var cdkHash = regexp.MustCompile(`^(.+)[0-9A-F]{8}$`)

// TestRunbookCoversEveryAlarm: every alarm any template of the stack creates (the
// app's variants and the StackSet's, whose opt-out alarm is conditional) has a section
// named by its construct id that names its logical ID, metric and description (what
// the console shows), and no section names an alarm no template creates.
func TestRunbookCoversEveryAlarm(t *testing.T) {
	type alarm struct{ logicalID, metric, description string }
	alarms := map[string]alarm{}
	for _, tpl := range templates {
		for _, id := range tpl.Of("AWS::CloudWatch::Alarm") {
			m := cdkHash.FindStringSubmatch(id)
			if m == nil {
				t.Fatalf("alarm %s: a logical ID without CDK's hash", id)
			}
			p := tpl.Resources[id].Properties
			alarms[m[1]] = alarm{logicalID: id, metric: fmt.Sprint(p["MetricName"]), description: fmt.Sprint(p["AlarmDescription"])}
		}
	}
	sections := readRunbook(t).part(t, "Alarms")
	sameNames(t, "alarm", sections, slices.Sorted(maps.Keys(alarms)))
	for name, a := range alarms {
		body, ok := sections[name]
		if !ok {
			continue
		}
		for _, want := range []string{a.logicalID, a.metric, a.description} {
			if !strings.Contains(body, want) {
				t.Errorf("section %s: got no %q in it, want the alarm's logical ID, metric and description", name, want)
			}
		}
	}
}

// TestRunbookCoversTheDashboard: a section per widget of the dashboard, by its title.
func TestRunbookCoversTheDashboard(t *testing.T) {
	var titles []string
	for _, w := range dashboardWidgets(t, deploy(t, contract.KeySourceKMSDataKey, cfn.Partitions[0])) {
		titles = append(titles, w.Properties.Title)
	}
	sameNames(t, "dashboard widget", readRunbook(t).part(t, "The dashboard"), titles)
}

// TestRunbookCoversEveryEvent: a section per detail type the code sends through
// alert.Entry, read from the source, so an event added on any path, tested or not,
// needs its section; and per detail type the contract names (its Event* constants), so
// an event sent another way (the CLI's own PutEvents) needs one too.
func TestRunbookCoversEveryEvent(t *testing.T) {
	consts := contractConsts(t)
	var detailTypes []string
	for name, v := range consts {
		if strings.HasPrefix(name, "Event") && name != "EventSource" {
			detailTypes = append(detailTypes, v)
		}
	}
	err := filepath.WalkDir(moduleRoot, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			if path != moduleRoot && (strings.HasPrefix(d.Name(), ".") || slices.Contains([]string{"node_modules", "testdata", "cdk.out", "dist", "release"}, d.Name())) {
				return filepath.SkipDir
			}
			return nil
		}
		if !strings.HasSuffix(path, ".go") || strings.HasSuffix(path, "_test.go") {
			return nil
		}
		f, err := parser.ParseFile(token.NewFileSet(), path, nil, 0)
		if err != nil {
			return fmt.Errorf("parsing %s: %w", path, err)
		}
		ast.Inspect(f, func(n ast.Node) bool {
			call, ok := n.(*ast.CallExpr)
			if !ok || !isSelector(call.Fun, "alert", "Entry") || len(call.Args) == 0 {
				return true
			}
			arg, ok := call.Args[0].(*ast.SelectorExpr)
			value, known := "", false
			if ok && isSelector(arg, "contract", arg.Sel.Name) {
				value, known = consts[arg.Sel.Name]
			}
			if !known {
				t.Errorf("%s: alert.Entry with a detail type that is not a constant of internal/contract", path)
				return true
			}
			if !slices.Contains(detailTypes, value) {
				detailTypes = append(detailTypes, value)
			}
			return true
		})
		return nil
	})
	if err != nil {
		t.Fatalf("reading the module's source: %v", err)
	}
	if len(detailTypes) == 0 {
		t.Fatal("found no alert.Entry call: the source walk missed them")
	}
	sameNames(t, "event", readRunbook(t).part(t, "Events"), detailTypes)
}

// TestRunbookCoversEveryFinding: a section per title of the findings the functions file,
// for every status and reason the contract has (the reason in a title written
// <reason>), and the part names the findings' types and generator, by which a reader
// filters them in Security Hub.
func TestRunbookCoversEveryFinding(t *testing.T) {
	consts := contractConsts(t)
	statuses := []string{findings.StatusTerminated}
	for name, v := range consts {
		if strings.HasPrefix(name, "Status") {
			statuses = append(statuses, v)
		}
	}
	p := &findings.Publisher{Partition: "aws", Region: "us-east-1", Account: "111122223333", KeyARN: "arn:aws:kms:us-east-1:111122223333:key/k"}
	var titles, fields []string
	for _, status := range statuses {
		for _, reason := range reasons(t) {
			if status != findings.StatusTerminated && !findings.Reported(status, contract.Reason(reason)) {
				continue
			}
			f := p.Finding(findings.Instance{ID: "i-0123456789abcdef0", Status: status, Reason: contract.Reason(reason)}, time.Now())
			title := *f.Title
			if rest, ok := strings.CutSuffix(title, ": "+reason); ok {
				title = rest + ": <reason>"
			}
			if !slices.Contains(titles, title) {
				titles = append(titles, title)
			}
			for _, field := range append(f.FindingProviderFields.Types, *f.GeneratorId) {
				if !slices.Contains(fields, field) {
					fields = append(fields, field)
				}
			}
		}
	}
	r := readRunbook(t)
	sameNames(t, "finding", r.part(t, "Security Hub findings"), titles)
	for _, want := range fields {
		if !strings.Contains(r.intro["Security Hub findings"], want) {
			t.Errorf("the findings part: got no %q in its introduction, want the findings' types and generator", want)
		}
	}
}

// TestRunbookCoversEveryReason: the reasons table has a row per reason the functions
// record (the contract's, and the agent's exit codes by name), and no other.
func TestRunbookCoversEveryReason(t *testing.T) {
	sameNames(t, "reason", readRunbook(t).rows(t, "Reasons"), reasons(t))
}

// TestRunbookCoversEveryStatus: the statuses table has a row per status the contract
// names (storecrypt:status and the ledger's entries, revoked and shredded among them),
// and no other.
func TestRunbookCoversEveryStatus(t *testing.T) {
	var statuses []string
	for name, v := range contractConsts(t) {
		if strings.HasPrefix(name, "Status") {
			statuses = append(statuses, v)
		}
	}
	sameNames(t, "status", readRunbook(t).rows(t, "Statuses"), statuses)
}

// rows are the rows of the table in a part's introduction, by the code in their first
// cell.
func (r runbook) rows(t *testing.T, part string) map[string]string {
	t.Helper()
	if _, ok := r.intro[part]; !ok {
		t.Fatalf("%s has no part %q", operationsDoc, part)
	}
	rows := map[string]string{}
	row := regexp.MustCompile("^\\| `([a-z0-9-]+)` \\|")
	for line := range strings.Lines(r.intro[part]) {
		if m := row.FindStringSubmatch(line); m != nil {
			rows[m[1]] = line
		}
	}
	return rows
}

// reasons are every code storecrypt:reason can hold: the contract's Reason constants and
// the agent's exit codes by name (an agent's failure is recorded under its code's name).
func reasons(t *testing.T) []string {
	t.Helper()
	out := reasonConsts(t)
	for code, name := range contract.ExitCodeNames {
		if code != contract.ExitOK {
			out = append(out, name)
		}
	}
	slices.Sort(out)
	return out
}

func isSelector(e ast.Expr, pkg, name string) bool {
	sel, ok := e.(*ast.SelectorExpr)
	if !ok || sel.Sel.Name != name {
		return false
	}
	id, ok := sel.X.(*ast.Ident)
	return ok && id.Name == pkg
}

// contractFiles parses internal/contract's non-test files.
func contractFiles(t *testing.T) []*ast.File {
	t.Helper()
	paths, err := filepath.Glob(filepath.Join(moduleRoot, "internal", "contract", "*.go"))
	if err != nil {
		t.Fatal(err)
	}
	var files []*ast.File
	for _, path := range paths {
		if strings.HasSuffix(path, "_test.go") {
			continue
		}
		f, err := parser.ParseFile(token.NewFileSet(), path, nil, 0)
		if err != nil {
			t.Fatalf("parsing %s: %v", path, err)
		}
		files = append(files, f)
	}
	return files
}

// eachStringConst calls fn with every constant of internal/contract whose value is a
// string literal, and its declared type ("" when untyped).
func eachStringConst(t *testing.T, fn func(name, typ, value string)) {
	t.Helper()
	for _, f := range contractFiles(t) {
		for _, decl := range f.Decls {
			gen, ok := decl.(*ast.GenDecl)
			if !ok || gen.Tok != token.CONST {
				continue
			}
			for _, spec := range gen.Specs {
				vs := spec.(*ast.ValueSpec)
				typ := ""
				if id, ok := vs.Type.(*ast.Ident); ok {
					typ = id.Name
				}
				for i, name := range vs.Names {
					if i >= len(vs.Values) {
						continue
					}
					lit, ok := vs.Values[i].(*ast.BasicLit)
					if !ok || lit.Kind != token.STRING {
						continue
					}
					v, err := strconv.Unquote(lit.Value)
					if err != nil {
						t.Fatalf("contract.%s: %v", name.Name, err)
					}
					fn(name.Name, typ, v)
				}
			}
		}
	}
}

// contractConsts is internal/contract's string constants by name.
func contractConsts(t *testing.T) map[string]string {
	t.Helper()
	out := map[string]string{}
	eachStringConst(t, func(name, _, value string) { out[name] = value })
	return out
}

// reasonConsts is the values of internal/contract's constants of type Reason.
func reasonConsts(t *testing.T) []string {
	t.Helper()
	var out []string
	eachStringConst(t, func(_, typ, value string) {
		if typ == "Reason" {
			out = append(out, value)
		}
	})
	if len(out) == 0 {
		t.Fatal("found no contract.Reason constant: the parser missed them")
	}
	return out
}
