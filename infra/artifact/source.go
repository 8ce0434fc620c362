package artifact

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"strings"

	"golang.org/x/mod/modfile"
)

// Source finds storecrypt's module source, which Build compiles, and its version, without
// depending on the working directory (a synth may run anywhere):
//   - the directory this package was compiled from, when it is the module's own (a
//     checkout, a replace directive, or the module cache: `go run` and `go build` record
//     absolute source paths unless -trimpath);
//   - else the module the program was built with, as its build information names it: a
//     replace directive's absolute directory, or the version, which the go command
//     downloads into the module cache (an app that vendors its dependencies has only
//     the packages it imports in vendor/, not the agent's).
func Source(ctx context.Context, goCmd string) (dir, version string, err error) {
	_, caller, _, _ := runtime.Caller(0)
	bi, _ := debug.ReadBuildInfo()
	return source(ctx, goCmd, caller, bi)
}

// source is Source for the program whose build information is bi (nil: none), this file
// compiled from caller.
func source(ctx context.Context, goCmd, caller string, bi *debug.BuildInfo) (dir, version string, err error) {
	var dep *debug.Module
	if bi != nil {
		if bi.Main.Path == Module {
			dep = &bi.Main
		}
		for _, d := range bi.Deps {
			if d.Path == Module {
				dep = d
			}
		}
	}
	version = "dev"
	// A directory replacement has no version; the build information says "(devel)", and
	// the required version it replaces (often v0.0.0) says nothing of the code.
	if dep != nil && dep.Version != "" && dep.Version != "(devel)" && (dep.Replace == nil || dep.Replace.Version != "(devel)") {
		version = dep.Version
	}
	if root, ok := moduleRoot(filepath.Dir(caller)); ok {
		return root, version, nil
	}
	if dep == nil {
		return "", "", errors.New("finding storecrypt's source: the program was built with -trimpath and without build information: build it without -trimpath, or set StoreCryptProps.BuildDir")
	}
	if r := dep.Replace; r != nil {
		if r.Version == "" || r.Version == "(devel)" {
			if root, ok := moduleRoot(r.Path); ok {
				return root, version, nil
			}
			return "", "", fmt.Errorf("finding storecrypt's source: it is replaced by %q, which is not an absolute path to the module (the program was built with -trimpath or vendored): build without -trimpath, make the replace path absolute, or set StoreCryptProps.BuildDir", r.Path)
		}
		return download(ctx, goCmd, r.Path, r.Version)
	}
	return download(ctx, goCmd, dep.Path, dep.Version)
}

// moduleRoot is the directory at or above dir whose go.mod declares storecrypt's module.
func moduleRoot(dir string) (string, bool) {
	if !filepath.IsAbs(dir) {
		return "", false
	}
	for d := dir; ; d = filepath.Dir(d) {
		if b, err := os.ReadFile(filepath.Join(d, "go.mod")); err == nil {
			return d, modfile.ModulePath(b) == Module
		}
		if filepath.Dir(d) == d {
			return "", false
		}
	}
}

// download puts path@version in the module cache (the go command checks it against the
// checksum database) and returns its directory there.
func download(ctx context.Context, goCmd, path, version string) (string, string, error) {
	var out, stderr bytes.Buffer
	cmd := exec.CommandContext(ctx, goCmd, "mod", "download", "-json", path+"@"+version)
	// Outside any module: the working directory's go.mod (vendored, or another module's)
	// has no say in where a module's source is.
	cmd.Dir = os.TempDir()
	cmd.Env = append(goEnv(), "GOWORK=off", "GOFLAGS=-mod=mod")
	cmd.Stdout, cmd.Stderr = &out, &stderr
	if err := cmd.Run(); err != nil {
		return "", "", fmt.Errorf("downloading storecrypt's source (go mod download %s@%s): %w: %s", path, version, err, strings.TrimSpace(stderr.String()+out.String()))
	}
	var m struct{ Dir, Error string }
	if err := json.Unmarshal(out.Bytes(), &m); err != nil {
		return "", "", fmt.Errorf("go mod download %s@%s: %w", path, version, err)
	}
	if m.Dir == "" {
		return "", "", fmt.Errorf("go mod download %s@%s: %s", path, version, m.Error)
	}
	return m.Dir, version, nil
}

// goEnv is the environment for the go command. Without HOME (a CI job, a container),
// the go command has no default build cache or module cache and refuses to build: those
// not set are put in the temporary directory, where every build of this user shares them.
func goEnv() []string {
	env := os.Environ()
	if os.Getenv("HOME") != "" {
		return env
	}
	tmp := filepath.Join(os.TempDir(), fmt.Sprintf("storecrypt-go-%d", os.Getuid()))
	if os.Getenv("GOCACHE") == "" && os.Getenv("XDG_CACHE_HOME") == "" {
		env = append(env, "GOCACHE="+filepath.Join(tmp, "cache"))
	}
	if os.Getenv("GOMODCACHE") == "" && os.Getenv("GOPATH") == "" {
		env = append(env, "GOMODCACHE="+filepath.Join(tmp, "mod"), "GOPATH="+filepath.Join(tmp, "path"))
	}
	return env
}
