package opcli

import (
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"

	"github.com/jmespath-community/go-jmespath"
)

// compileQuery compiles --query before any AWS call, so that a typo is a usage error.
// The query selects from what --output json prints, so csv and html, which have no json
// of their own shape, do not take one.
func compileQuery(expr, output string) (jmespath.JMESPath, error) {
	if expr == "" {
		return nil, nil
	}
	if !slices.Contains([]string{"table", "json", "text"}, output) {
		return nil, usageErr(fmt.Sprintf("--query works with --output table, json or text, not %s", output))
	}
	q, err := jmespath.Compile(expr)
	if err != nil {
		return nil, usageErr(fmt.Sprintf("--query %q: %v", expr, err))
	}
	return q, nil
}

// printQuery applies q to the JSON a command printed and writes the result as output
// says, as the aws CLI does with --query.
func printQuery(w io.Writer, output string, q jmespath.JMESPath, printed []byte) error {
	var doc any
	if err := json.Unmarshal(printed, &doc); err != nil {
		return fmt.Errorf("--query: the command's output is not one JSON document: %w", err)
	}
	got, err := q.Search(doc)
	if err != nil {
		return fmt.Errorf("--query: %w", err)
	}
	switch output {
	case "json":
		return writeJSON(w, got)
	case "text":
		return writeText(w, rowsOf(got))
	}
	return queryTable(w, got)
}

// rowsOf lays a JSON value out in rows as the aws CLI's text output does: a list a row an
// element, an object's values in the order of its keys, a scalar alone; what nests
// deeper is written as JSON in its field.
func rowsOf(v any) [][]string {
	list, ok := v.([]any)
	if !ok {
		return [][]string{fields(v)}
	}
	if !slices.ContainsFunc(list, isComposite) {
		return [][]string{fields(v)}
	}
	var rows [][]string
	for _, e := range list {
		rows = append(rows, fields(e))
	}
	return rows
}

func isComposite(v any) bool {
	switch v.(type) {
	case []any, map[string]any:
		return true
	}
	return false
}

// fields are v's fields in one row.
func fields(v any) []string {
	switch v := v.(type) {
	case []any:
		out := make([]string, len(v))
		for i, e := range v {
			out[i] = scalar(e)
		}
		return out
	case map[string]any:
		var out []string
		for _, k := range slices.Sorted(maps.Keys(v)) {
			out = append(out, scalar(v[k]))
		}
		return out
	}
	return []string{scalar(v)}
}

// scalar is v as one field: "" for null (writeText shows None), JSON for what nests.
func scalar(v any) string {
	switch v := v.(type) {
	case nil:
		return ""
	case string:
		return v
	case float64:
		return strconv.FormatFloat(v, 'f', -1, 64)
	case bool:
		return strconv.FormatBool(v)
	}
	b, _ := json.Marshal(v)
	return string(b)
}

// queryTable writes the result aligned for a person: a list of objects under a header of
// their keys, one object as KEY value lines, anything else as text's rows.
func queryTable(w io.Writer, v any) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	var rows [][]string
	switch v := v.(type) {
	case map[string]any:
		for _, k := range slices.Sorted(maps.Keys(v)) {
			rows = append(rows, []string{strings.ToUpper(k), orDash(scalar(v[k]))})
		}
	case []any:
		keys := map[string]bool{}
		for _, e := range v {
			m, ok := e.(map[string]any)
			if !ok {
				keys = nil
				break
			}
			for k := range m {
				keys[k] = true
			}
		}
		if len(keys) == 0 {
			rows = rowsOf(v)
			break
		}
		head := slices.Sorted(maps.Keys(keys))
		rows = append(rows, nil)
		for _, k := range head {
			rows[0] = append(rows[0], strings.ToUpper(k))
		}
		for _, e := range v {
			var row []string
			for _, k := range head {
				row = append(row, orDash(scalar(e.(map[string]any)[k])))
			}
			rows = append(rows, row)
		}
	default:
		rows = rowsOf(v)
	}
	for _, r := range rows {
		fmt.Fprintln(tw, strings.Join(r, "\t"))
	}
	return tw.Flush()
}
