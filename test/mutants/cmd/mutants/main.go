// Command mutants runs the catalogue of test/mutants: each mutant's control is removed or
// weakened in a copy (the working tree is never written), the named test is run against
// it, and the mutant must make it fail. A surviving mutant is a control no test guards;
// the command then exits 1.
//
//	go run ./test/mutants/cmd/mutants [-row substring] [-pkg regexp] [-list] [-guest]
package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/storecrypt/storecrypt/test/mutants"
)

func main() {
	row := flag.String("row", "", "run only the mutants whose Row contains this")
	pkg := flag.String("pkg", "", "run only the mutants whose Pkg matches this regexp")
	list := flag.Bool("list", false, "list the mutants, run nothing")
	guest := flag.Bool("guest", false, "also run the mutants only a QEMU guest test kills")
	verbose := flag.Bool("v", false, "print each mutant's test output, to see why it was killed")
	timeout := flag.Duration("timeout", 20*time.Minute, "longest run of one mutant's test")
	flag.Parse()
	pkgRE, err := regexp.Compile(*pkg)
	if err != nil {
		fmt.Fprintln(os.Stderr, "mutants: -pkg:", err)
		os.Exit(2)
	}
	if err := run(os.Stdout, *row, pkgRE, *list, *guest, *verbose, *timeout); err != nil {
		fmt.Fprintln(os.Stderr, "mutants:", err)
		os.Exit(1)
	}
}

// outcome of one mutant.
type outcome struct {
	m       mutants.Mutant
	line    int
	verdict string // killed, survived, broken (did not compile), skipped (guest)
	secs    float64
}

func run(w io.Writer, row string, pkg *regexp.Regexp, list, guest, verbose bool, timeout time.Duration) error {
	root, err := moduleRoot()
	if err != nil {
		return err
	}
	var selected []mutants.Mutant
	for _, m := range mutants.Catalogue {
		if strings.Contains(m.Row, row) && pkg.MatchString(m.Pkg) {
			selected = append(selected, m)
		}
	}
	if len(selected) == 0 {
		return fmt.Errorf("no mutant's Row contains %q with a Pkg that matches %q", row, pkg)
	}
	if list {
		for _, m := range selected {
			fmt.Fprintf(w, "%s\t%s\t%s\t%s %s\tguest=%v\n", m.Row, m.File, m.Change(), m.Pkg, m.Run, m.Guest)
		}
		return nil
	}
	tmp, err := os.MkdirTemp("", "storecrypt-mutants-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)

	// A test that already fails would "kill" every mutant: each package's tests run once
	// unmutated first.
	if err := baseline(w, root, selected, guest, timeout); err != nil {
		return err
	}
	var results []outcome
	for i, m := range selected {
		o := outcome{m: m, verdict: "skipped (guest)"}
		if !m.Guest || guest {
			var out []byte
			o, out, err = runOne(root, filepath.Join(tmp, fmt.Sprint(i)), m, timeout)
			if err != nil {
				return fmt.Errorf("mutant %q: %w", m.Row, err)
			}
			if verbose || o.verdict == "broken" {
				fmt.Fprintf(w, "%s", out)
			}
		}
		fmt.Fprintf(w, "[%d/%d] %-8s %5.0fs  %s  %s:%d\n", i+1, len(selected), o.verdict, o.secs, m.Row, m.File, o.line)
		results = append(results, o)
	}
	return report(w, results)
}

func report(w io.Writer, results []outcome) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "\nROW\tFILE:LINE\tCHANGE\tKILLING TEST\tRESULT\tSECONDS")
	count := map[string]int{}
	for _, o := range results {
		change := o.m.Change()
		if len(change) > 90 {
			change = change[:87] + "..."
		}
		fmt.Fprintf(tw, "%s\t%s:%d\t%s\t%s %s\t%s\t%.0f\n", o.m.Row, o.m.File, o.line, change, o.m.Pkg, o.m.Run, o.verdict, o.secs)
		count[o.verdict]++
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	fmt.Fprintf(w, "%d killed, %d survived", count["killed"], count["survived"])
	if n := count["broken"]; n > 0 {
		fmt.Fprintf(w, ", %d broken (did not compile)", n)
	}
	if n := count["skipped (guest)"]; n > 0 {
		fmt.Fprintf(w, ", %d skipped (guest: -guest runs them)", n)
	}
	fmt.Fprintln(w)
	if count["survived"]+count["broken"] > 0 {
		return errors.New("a control no test guards, or a mutant that does not compile")
	}
	return nil
}

// baseline runs, once per package, every test the selected mutants name, unmutated.
func baseline(w io.Writer, root string, selected []mutants.Mutant, guest bool, timeout time.Duration) error {
	runs := map[string][]string{}
	var pkgs []string
	for _, m := range selected {
		if m.Guest && !guest {
			continue
		}
		if _, ok := runs[m.Pkg]; !ok {
			pkgs = append(pkgs, m.Pkg)
		}
		if !slices.Contains(runs[m.Pkg], m.Run) {
			runs[m.Pkg] = append(runs[m.Pkg], m.Run)
		}
	}
	for _, pkg := range pkgs {
		start := time.Now()
		out, err := goTest(root, pkg, "("+strings.Join(runs[pkg], ")|(")+")", "", timeout)
		if err != nil {
			return fmt.Errorf("the unmutated tests of %s fail, so no mutant can be judged: %w\n%s", pkg, err, out)
		}
		fmt.Fprintf(w, "baseline %-30s passes (%.0fs)\n", pkg, time.Since(start).Seconds())
	}
	return nil
}

// runOne applies m in dir and runs its test. A Go or embedded file is replaced through
// go test -overlay; a file a test reads at run time (a JSON example) needs a copy of the
// module with the mutated file in it.
func runOne(root, dir string, m mutants.Mutant, timeout time.Duration) (outcome, []byte, error) {
	o := outcome{m: m}
	content, line, err := m.Mutate(root)
	if err != nil {
		return o, nil, err
	}
	o.line = line
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return o, nil, err
	}
	moduleDir, overlay := root, ""
	if compiledIn(root, m.File) {
		mutated := filepath.Join(dir, filepath.Base(m.File))
		if err := os.WriteFile(mutated, content, 0o600); err != nil {
			return o, nil, err
		}
		b, err := json.Marshal(map[string]map[string]string{"Replace": {filepath.Join(root, m.File): mutated}})
		if err != nil {
			return o, nil, err
		}
		overlay = filepath.Join(dir, "overlay.json")
		if err := os.WriteFile(overlay, b, 0o600); err != nil {
			return o, nil, err
		}
	} else {
		moduleDir = filepath.Join(dir, "module")
		if err := copyModule(root, moduleDir); err != nil {
			return o, nil, err
		}
		if err := os.WriteFile(filepath.Join(moduleDir, m.File), content, 0o600); err != nil {
			return o, nil, err
		}
	}
	start := time.Now()
	out, err := goTest(moduleDir, m.Pkg, m.Run, overlay, timeout)
	o.secs = time.Since(start).Seconds()
	switch {
	case err == nil:
		o.verdict = "survived"
	case buildFailed.Match(out):
		o.verdict = "broken"
	default:
		o.verdict = "killed"
	}
	return o, out, nil
}

var buildFailed = regexp.MustCompile(`\[(build|setup) failed\]|(?m)^# `)

func goTest(moduleDir, pkg, run, overlay string, timeout time.Duration) ([]byte, error) {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	// vet is off: a mutant vet dislikes would otherwise count as killed.
	args := []string{"test", "-count=1", "-vet=off", "-run", run}
	if overlay != "" {
		args = append(args, "-overlay", overlay)
	}
	cmd := exec.CommandContext(ctx, "go", append(args, "./"+pkg)...)
	cmd.Dir = moduleDir
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	return out.Bytes(), err
}

// compiledIn says whether file reaches the test binary (a Go file, or one its package
// embeds), so that an overlay replaces it.
func compiledIn(root, file string) bool {
	if strings.HasSuffix(file, ".go") {
		return true
	}
	cmd := exec.Command("go", "list", "-f", `{{join .EmbedFiles "\n"}}`, "./"+filepath.Dir(file))
	cmd.Dir = root
	out, err := cmd.Output()
	if err != nil {
		// Not a package's directory (docs/examples): nothing embeds it there.
		return false
	}
	return slices.Contains(strings.Split(string(out), "\n"), filepath.Base(file))
}

// copyModule copies the files git knows of (committed or not, ignored ones left out),
// and links node_modules, which the CDK tests need.
func copyModule(root, dst string) error {
	cmd := exec.Command("git", "ls-files", "-z", "--cached", "--others", "--exclude-standard")
	cmd.Dir = root
	out, err := cmd.Output()
	if err != nil {
		return fmt.Errorf("listing the module's files: %w", err)
	}
	for _, f := range strings.Split(strings.TrimRight(string(out), "\x00"), "\x00") {
		b, err := os.ReadFile(filepath.Join(root, f))
		if errors.Is(err, os.ErrNotExist) {
			continue // deleted in the working tree, not yet in git
		}
		if err != nil {
			return err
		}
		info, err := os.Stat(filepath.Join(root, f))
		if err != nil {
			return err
		}
		if err := os.MkdirAll(filepath.Join(dst, filepath.Dir(f)), 0o700); err != nil {
			return err
		}
		if err := os.WriteFile(filepath.Join(dst, f), b, info.Mode().Perm()); err != nil {
			return err
		}
	}
	if _, err := os.Stat(filepath.Join(root, "node_modules")); err == nil {
		return os.Symlink(filepath.Join(root, "node_modules"), filepath.Join(dst, "node_modules"))
	}
	return nil
}

// moduleRoot is the directory of the go.mod the command runs under.
func moduleRoot() (string, error) {
	out, err := exec.Command("go", "env", "GOMOD").Output()
	if err != nil {
		return "", fmt.Errorf("finding the module: %w", err)
	}
	gomod := strings.TrimSpace(string(out))
	if gomod == "" || gomod == os.DevNull {
		return "", errors.New("not inside the storecrypt module")
	}
	return filepath.Dir(gomod), nil
}
