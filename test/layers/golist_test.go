package layers

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
)

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
