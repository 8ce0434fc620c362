// Package mutants proves that each row of docs/security.md is tested: for every row, a
// mutant removes or weakens the control's source line and names the test that must then
// fail. The catalogue is data (catalogue.go); the fast test checks that it still fits the
// code and the threat model, and cmd/mutants compiles and runs each mutant.
package mutants

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// Mutant is one control removed or weakened.
type Mutant struct {
	// Row is a short substring of the row's "Threat or failure" cell in docs/security.md,
	// matching that row only.
	Row string
	// File is the control's source, relative to the module root.
	File string
	// Find occurs exactly once in File; Replace is what the mutant puts in its place.
	Find, Replace string
	// Pkg is the package (relative to the module root) whose test must fail, Run the
	// -run regexp that selects it.
	Pkg, Run string
	// Guest is set where only a test that boots the QEMU guest kills the mutant.
	Guest bool
}

// SecurityDoc is the threat model, relative to the module root.
const SecurityDoc = "docs/security.md"

// Threats returns the "Threat or failure" cell of every table row in the threat model,
// "Limits" excluded (it is a list, not a table).
func Threats(doc string) []string {
	var threats []string
	for _, line := range strings.Split(doc, "\n") {
		if strings.HasPrefix(line, "## Limits") {
			break
		}
		cells := cells(line)
		if len(cells) < 4 || cells[0] == "Asset" || strings.Trim(cells[0], "- ") == "" {
			continue
		}
		threats = append(threats, cells[1])
	}
	return threats
}

// cells splits a Markdown table row on the pipes that are not escaped (`O_EXCL\|O_NOFOLLOW`).
func cells(line string) []string {
	line = strings.TrimSpace(line)
	if !strings.HasPrefix(line, "|") {
		return nil
	}
	var out []string
	var cell strings.Builder
	for i := 1; i < len(line); i++ {
		switch {
		case line[i] == '\\' && i+1 < len(line) && line[i+1] == '|':
			cell.WriteString(`\|`)
			i++
		case line[i] == '|':
			out = append(out, strings.TrimSpace(cell.String()))
			cell.Reset()
		default:
			cell.WriteByte(line[i])
		}
	}
	return out
}

// Mutate returns File's content with the mutant applied and the line Find starts on.
func (m Mutant) Mutate(root string) (content []byte, line int, err error) {
	b, err := os.ReadFile(filepath.Join(root, m.File))
	if err != nil {
		return nil, 0, fmt.Errorf("reading the control's source: %w", err)
	}
	src := string(b)
	if n := strings.Count(src, m.Find); n != 1 {
		return nil, 0, fmt.Errorf("%s: Find occurs %d times, want 1: %q", m.File, n, m.Find)
	}
	i := strings.Index(src, m.Find)
	return []byte(src[:i] + m.Replace + src[i+len(m.Find):]), strings.Count(src[:i], "\n") + 1, nil
}

// Change is the mutant in one line, for the runner's table.
func (m Mutant) Change() string {
	oneLine := func(s string) string { return strings.Join(strings.Fields(s), " ") }
	if strings.TrimSpace(m.Replace) == "" {
		return "removed " + oneLine(m.Find)
	}
	return oneLine(m.Find) + " -> " + oneLine(m.Replace)
}
