package mutants

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

const root = "../.."

// TestCatalogueFits checks the catalogue against the code and the threat model without
// compiling a mutant: each Find is where the control is, each mutant names one row, and
// every row has a mutant.
func TestCatalogueFits(t *testing.T) {
	doc, err := os.ReadFile(filepath.Join(root, SecurityDoc))
	if err != nil {
		t.Fatal(err)
	}
	threats := Threats(string(doc))
	if len(threats) < 40 {
		t.Fatalf("got %d rows in %s, want every table row (the parser lost some)", len(threats), SecurityDoc)
	}
	covered := map[string]bool{}
	for _, m := range Catalogue {
		var rows []string
		for _, th := range threats {
			if strings.Contains(th, m.Row) {
				rows = append(rows, th)
			}
		}
		if len(rows) != 1 {
			t.Errorf("Row %q matches %d rows of %s, want 1: %q", m.Row, len(rows), SecurityDoc, rows)
			continue
		}
		covered[rows[0]] = true
		if _, _, err := m.Mutate(root); err != nil {
			t.Errorf("Row %q: %v", m.Row, err)
		}
		if m.Find == m.Replace {
			t.Errorf("Row %q: Replace is Find, the mutant changes nothing", m.Row)
		}
		if _, err := regexp.Compile(m.Run); err != nil || m.Run == "" {
			t.Errorf("Row %q: Run %q is not a test regexp: %v", m.Row, m.Run, err)
		}
		if _, err := os.Stat(filepath.Join(root, m.Pkg)); err != nil {
			t.Errorf("Row %q: Pkg: %v", m.Row, err)
		}
	}
	for _, th := range threats {
		if !covered[th] {
			t.Errorf("no mutant for the row %q", th)
		}
	}
}

func TestThreats(t *testing.T) {
	doc := strings.Join([]string{
		"## A",
		"| Asset | Threat or failure | Control | Test |",
		"| --- | --- | --- | --- |",
		"| Disk | Lost `a\\|b` | Kept | `TestX` |",
		"",
		"| Key | Leaked | Hidden | `TestY` |",
		"## Limits",
		"| Not | a row | of the | model |",
	}, "\n")
	got := strings.Join(Threats(doc), ";")
	if want := "Lost `a\\|b`;Leaked"; got != want {
		t.Errorf("got %q, want %q", got, want)
	}
}

func TestMutate(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "f.go"), []byte("a\nb\nc\nb\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		find, want string
		line       int
		err        bool
	}{
		{find: "c\n", want: "a\nb\nX\nb\n", line: 3},
		{find: "b\n", err: true},
		{find: "d", err: true},
	} {
		got, line, err := Mutant{File: "f.go", Find: tc.find, Replace: "X\n"}.Mutate(dir)
		if (err != nil) != tc.err || (err == nil && (string(got) != tc.want || line != tc.line)) {
			t.Errorf("Find %q: got %q, line %d, %v; want %q, line %d, error %v", tc.find, got, line, err, tc.want, tc.line, tc.err)
		}
	}
}
