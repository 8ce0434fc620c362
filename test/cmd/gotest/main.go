// Command gotest is `make test`'s go test: the packages whose tests boot a QEMU guest
// (they import test/vm) run one after another in one go test, from the start, while the
// others run in a second go test beside them. The guests are the suite's critical path and
// only one can run at a time (two emulated guests on two cores slow each other past their
// timeouts), so nothing else should stand before them in go test's queue: -first names a
// command (make test: lint and synth) that runs beside the guests, and the others' go test
// starts once it has ended. Output is what go test prints without -v; the slowest tests
// and packages follow, and the exit status is non-zero when the first command or either
// go test failed, or any test or build failed.
//
//	go run ./test/cmd/gotest [-first CMD] [-timeout 40m] [-run REGEXP] [-count N] [-top 10] [-json FILE] [packages]
package main

import (
	"bufio"
	"context"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"sync"
)

// guestPackage is imported by every test that boots a guest.
const guestPackage = "github.com/storecrypt/storecrypt/test/vm"

func main() {
	timeout := flag.String("timeout", "40m", "go test -timeout for each package")
	run := flag.String("run", "", "go test -run")
	count := flag.Int("count", 0, "go test -count (1 runs tests whose results go test has cached)")
	top := flag.Int("top", 10, "how many of the slowest tests and packages to print")
	events := flag.String("json", "", "a file to write go test's events to, as go test -json prints them")
	first := flag.String("first", "", "a shell command to run beside the guests' go test, before the others'")
	flag.Parse()
	patterns := flag.Args()
	if len(patterns) == 0 {
		patterns = []string{"./..."}
	}
	args := []string{"test", "-json", "-timeout", *timeout}
	if *run != "" {
		args = append(args, "-run", *run)
	}
	if *count > 0 {
		args = append(args, "-count", strconv.Itoa(*count))
	}
	ok, err := runTests(patterns, args, *first, *top, *events)
	if err != nil {
		fmt.Fprintln(os.Stderr, "gotest:", err)
		os.Exit(2)
	}
	if !ok {
		os.Exit(1)
	}
}

// runTests reports to stdout, and copies go test's events to the file events names.
func runTests(patterns, args []string, first string, top int, events string) (bool, error) {
	rep := newReport(os.Stdout)
	if events != "" {
		f, err := os.Create(events)
		if err != nil {
			return false, err
		}
		defer f.Close()
		rep.events = f
	}
	return test(context.Background(), rep, patterns, args, first, top)
}

// test runs go test with args on the packages, and first (when not empty) beside the
// guests and before the others, and reports whether everything passed; an error means the
// tests could not be run at all.
func test(ctx context.Context, rep *report, patterns, args []string, first string, top int) (bool, error) {
	guests, others, err := split(ctx, patterns)
	if err != nil {
		return false, err
	}
	var mu sync.Mutex
	var wg sync.WaitGroup
	var errs []error
	// goTest starts go test on pkgs and has it report under mu; its error lands in errs.
	goTest := func(pkgs []string, extra ...string) error {
		cmd := exec.CommandContext(ctx, "go", append(append(slices.Clone(args), extra...), pkgs...)...)
		cmd.Stderr = os.Stderr
		out, err := cmd.StdoutPipe()
		if err != nil {
			return err
		}
		if err := cmd.Start(); err != nil {
			return fmt.Errorf("starting go test: %w", err)
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			sc := bufio.NewScanner(out)
			sc.Buffer(make([]byte, 1<<20), 64<<20)
			for sc.Scan() {
				mu.Lock()
				rep.line(sc.Bytes())
				mu.Unlock()
			}
			err := cmd.Wait()
			mu.Lock()
			errs = append(errs, err)
			mu.Unlock()
		}()
		return nil
	}
	if len(guests) > 0 {
		if err := goTest(guests, "-p", "1"); err != nil {
			return false, err
		}
	}
	ok := true
	if first != "" {
		// Its output goes straight through: lint's findings are not go test events.
		cmd := exec.CommandContext(ctx, "sh", "-c", first)
		cmd.Stdout, cmd.Stderr = os.Stdout, os.Stderr
		if err := cmd.Run(); err != nil {
			mu.Lock()
			fmt.Fprintf(rep.w, "%s: %v\n", first, err)
			mu.Unlock()
			ok = false
		}
	}
	if len(others) > 0 {
		if err := goTest(others); err != nil {
			return false, err
		}
	}
	wg.Wait()
	rep.summary(top)
	if len(rep.failed) > 0 {
		ok = false
	}
	for _, err := range errs {
		if err != nil {
			fmt.Fprintf(rep.w, "go test: %v\n", err)
			ok = false
		}
	}
	return ok, nil
}

// split lists the packages and parts them into those whose tests import the guest package
// and the rest, each in go list's order.
func split(ctx context.Context, patterns []string) (guests, others []string, err error) {
	// A test binary's Deps are everything its package and its tests import.
	cmd := exec.CommandContext(ctx, "go", append([]string{"list", "-test", "-f", `{{if .ForTest}}{{else}}{{.ImportPath}} {{join .Deps " "}}{{end}}`}, patterns...)...)
	cmd.Stderr = os.Stderr
	out, err := cmd.Output()
	if err != nil {
		return nil, nil, fmt.Errorf("listing %v: %w", patterns, err)
	}
	testMains := map[string]bool{}
	var pkgs []string
	for _, l := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		path, deps, _ := strings.Cut(l, " ")
		if p, ok := strings.CutSuffix(path, ".test"); ok {
			testMains[p] = strings.Contains(" "+deps+" ", " "+guestPackage+" ")
			continue
		}
		if path != "" {
			pkgs = append(pkgs, path)
		}
	}
	for _, p := range pkgs {
		if testMains[p] {
			guests = append(guests, p)
		} else {
			others = append(others, p)
		}
	}
	return guests, others, nil
}
