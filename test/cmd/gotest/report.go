package main

import (
	"bytes"
	"cmp"
	"encoding/json"
	"fmt"
	"io"
	"slices"
	"strings"
)

// event is one line of `go test -json` (cmd/test2json), with the build events go test
// adds for a package that does not compile.
type event struct {
	Action     string
	Package    string
	Test       string
	Elapsed    float64
	Output     string
	ImportPath string // build-output
}

// timing is a finished test or package and its seconds.
type timing struct {
	Name    string
	Seconds float64
}

// report prints what `go test` prints without -v (build errors, the output of failing
// tests, a line per package) from the events of any number of interleaved go test runs,
// and keeps the times for the summary.
type report struct {
	w      io.Writer
	events io.Writer           // nil, or where each line of go test's stdout is copied
	held   map[string][]string // package + "\x00" + test: output not printed unless the test fails
	tests  []timing
	pkgs   []timing
	failed []string
}

func newReport(w io.Writer) *report { return &report{w: w, held: map[string][]string{}} }

// line takes one line of go test -json's stdout; a line that is not an event is printed
// as it is.
func (r *report) line(b []byte) {
	if r.events != nil {
		fmt.Fprintf(r.events, "%s\n", b)
	}
	var e event
	if err := json.Unmarshal(b, &e); err != nil || e.Action == "" {
		fmt.Fprintf(r.w, "%s\n", bytes.TrimRight(b, "\n"))
		return
	}
	r.event(e)
}

func (r *report) event(e event) {
	key := e.Package + "\x00" + e.Test
	switch e.Action {
	case "build-output":
		fmt.Fprint(r.w, e.Output)
	case "output":
		if e.Test != "" {
			r.held[key] = append(r.held[key], e.Output)
			return
		}
		// The package's own lines: "ok", "FAIL", "?" and a failing binary's panic; its
		// bare "PASS" is -v's, not go test's.
		if e.Output != "PASS\n" {
			fmt.Fprint(r.w, e.Output)
		}
	case "pass", "skip":
		if e.Action == "pass" {
			r.done(e)
		}
		delete(r.held, key)
	case "fail":
		r.done(e)
		for _, l := range r.held[key] {
			if !strings.HasPrefix(l, "=== ") {
				fmt.Fprint(r.w, l)
			}
		}
		delete(r.held, key)
		name := e.Package
		if e.Test != "" {
			name += " " + e.Test
		}
		r.failed = append(r.failed, name)
	}
}

func (r *report) done(e event) {
	switch {
	case e.Test == "":
		r.pkgs = append(r.pkgs, timing{e.Package, e.Elapsed})
	case !strings.Contains(e.Test, "/"): // subtests are in their test's time
		r.tests = append(r.tests, timing{e.Package + " " + e.Test, e.Elapsed})
	}
}

// summary prints the n slowest tests and packages, and what failed.
func (r *report) summary(n int) {
	for _, s := range []struct {
		what string
		ts   []timing
	}{{"tests", r.tests}, {"packages", r.pkgs}} {
		ts := slices.Clone(s.ts)
		slices.SortStableFunc(ts, func(a, b timing) int { return cmp.Compare(b.Seconds, a.Seconds) })
		fmt.Fprintf(r.w, "\nthe %d slowest %s:\n", min(n, len(ts)), s.what)
		for _, t := range ts[:min(n, len(ts))] {
			fmt.Fprintf(r.w, "%8.1fs  %s\n", t.Seconds, t.Name)
		}
	}
	if len(r.failed) > 0 {
		fmt.Fprintf(r.w, "\nFAILED:\n  %s\n", strings.Join(r.failed, "\n  "))
	}
}
