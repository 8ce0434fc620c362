package artifact

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"strings"
	"testing"
)

// TestSource: where a synth finds storecrypt's source, for each way an app is built.
func TestSource(t *testing.T) {
	_, self, _, _ := runtime.Caller(0)
	repo := filepath.Dir(filepath.Dir(filepath.Dir(self)))
	// An app that vendors storecrypt: this package compiled from the app's vendor/.
	app := t.TempDir()
	write(t, filepath.Join(app, "go.mod"), "module example.com/app\n")
	vendored := filepath.Join(app, "vendor", "github.com", "storecrypt", "storecrypt", "infra", "artifact", "source.go")
	write(t, vendored, "package artifact\n")
	// A go command that says where it downloaded a module, and records how it was asked.
	fakeGo := filepath.Join(t.TempDir(), "go")
	asked := filepath.Join(t.TempDir(), "asked")
	write(t, fakeGo, "#!/bin/sh\necho \"$PWD $*\" > "+asked+"\necho '{\"Path\":\"'\"$4\"'\",\"Dir\":\"/modcache/storecrypt@v0.3.0\"}'\n")
	must(t, os.Chmod(fakeGo, 0o755))
	dep := func(version string, replace *debug.Module) *debug.BuildInfo {
		return &debug.BuildInfo{Main: debug.Module{Path: "example.com/app"}, Deps: []*debug.Module{{Path: Module, Version: version, Replace: replace}}}
	}
	for _, c := range []struct {
		name, caller string
		bi           *debug.BuildInfo
		dir, version string
		asked        string // the fake go command's working directory and arguments
		err          string
	}{
		{"this checkout", self, &debug.BuildInfo{Main: debug.Module{Path: Module, Version: "(devel)"}}, repo, "dev", "", ""},
		{"an app requiring a tagged version, from the module cache", self, dep("v0.3.0", nil), repo, "v0.3.0", "", ""},
		{"vendored, replaced by a directory", vendored, dep("v0.0.0", &debug.Module{Path: repo, Version: "(devel)"}), repo, "dev", "", ""},
		{"vendored, a tagged version", vendored, dep("v0.3.0", nil), "/modcache/storecrypt@v0.3.0", "v0.3.0",
			os.TempDir() + " mod download -json " + Module + "@v0.3.0", ""},
		{"trimmed, replaced by a fork", Module + "/infra/artifact/source.go", dep("v0.3.0", &debug.Module{Path: "example.com/fork", Version: "v0.3.0"}), "/modcache/storecrypt@v0.3.0", "v0.3.0",
			os.TempDir() + " mod download -json example.com/fork@v0.3.0", ""},
		{"vendored, replaced by a relative directory", vendored, dep("v0.0.0", &debug.Module{Path: "../storecrypt", Version: "(devel)"}), "", "", "", `replaced by "../storecrypt", which is not an absolute path`},
		{"trimmed, no build information", Module + "/infra/artifact/source.go", nil, "", "", "", "without build information"},
	} {
		t.Run(c.name, func(t *testing.T) {
			_ = os.Remove(asked)
			dir, version, err := source(context.Background(), fakeGo, c.caller, c.bi)
			if c.err != "" {
				if err == nil || !strings.Contains(err.Error(), c.err) {
					t.Fatalf("got %q, %v; want an error saying %q", dir, err, c.err)
				}
				return
			}
			if err != nil || dir != c.dir || version != c.version {
				t.Fatalf("got %q %q %v, want %q %q", dir, version, err, c.dir, c.version)
			}
			b, _ := os.ReadFile(asked)
			if got := strings.TrimSpace(string(b)); got != c.asked {
				t.Errorf("the go command was asked %q, want %q", got, c.asked)
			}
		})
	}
}

// TestSourceVendoredProgram builds a small vendored program that imports this package,
// as an app that vendors the construct does, and runs it from a directory with no
// go.mod: it must find this checkout through its replace directive.
func TestSourceVendoredProgram(t *testing.T) {
	_, self, _, _ := runtime.Caller(0)
	repo := filepath.Dir(filepath.Dir(filepath.Dir(self)))
	app := t.TempDir()
	write(t, filepath.Join(app, "main.go"), `package main

import (
	"context"
	"fmt"

	"github.com/storecrypt/storecrypt/infra/artifact"
)

func main() {
	dir, version, err := artifact.Source(context.Background(), "go")
	fmt.Println(dir, version, err)
}
`)
	write(t, filepath.Join(app, "go.mod"), "module example.com/app\n\ngo 1.26\n\nrequire "+Module+" v0.0.0\n\nreplace "+Module+" => "+repo+"\n")
	sum, err := os.ReadFile(filepath.Join(repo, "go.sum"))
	must(t, err)
	write(t, filepath.Join(app, "go.sum"), string(sum))
	bin := filepath.Join(t.TempDir(), "app")
	for _, args := range [][]string{{"mod", "tidy"}, {"mod", "vendor"}, {"build", "-o", bin, "."}} {
		cmd := exec.Command("go", args...)
		cmd.Dir = app
		cmd.Env = append(os.Environ(), "GOFLAGS=-mod=mod", "GOPROXY=off")
		if args[0] == "build" {
			cmd.Env = append(os.Environ(), "GOFLAGS=-mod=vendor")
		}
		if b, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("go %s: %v\n%s", strings.Join(args, " "), err, b)
		}
	}
	run := exec.Command(bin)
	run.Dir = t.TempDir()
	out, err := run.CombinedOutput()
	if got, want := strings.TrimSpace(string(out)), repo+" dev <nil>"; err != nil || got != want {
		t.Errorf("got %q (%v), want %q", got, err, want)
	}
}

func write(t *testing.T, path, content string) {
	t.Helper()
	must(t, os.MkdirAll(filepath.Dir(path), 0o755))
	must(t, os.WriteFile(path, []byte(content), 0o644))
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// TestGoEnvWithoutHome: without HOME the go command has no build or module cache and
// refuses to build; the build gives it ones in the temporary directory, and only those
// the environment does not set.
func TestGoEnvWithoutHome(t *testing.T) {
	added := func() []string {
		var out []string
		for _, kv := range goEnv()[len(os.Environ()):] {
			name, _, _ := strings.Cut(kv, "=")
			out = append(out, name)
		}
		return out
	}
	for _, c := range []struct {
		name string
		env  map[string]string
		want string
	}{
		{"HOME set", map[string]string{"HOME": "/root"}, ""},
		{"no HOME", map[string]string{"HOME": "", "GOCACHE": "", "XDG_CACHE_HOME": "", "GOMODCACHE": "", "GOPATH": ""}, "GOCACHE GOMODCACHE GOPATH"},
		{"no HOME, GOCACHE set", map[string]string{"HOME": "", "GOCACHE": "/c", "GOMODCACHE": "", "GOPATH": ""}, "GOMODCACHE GOPATH"},
		{"no HOME, GOPATH set", map[string]string{"HOME": "", "GOCACHE": "", "XDG_CACHE_HOME": "", "GOMODCACHE": "", "GOPATH": "/p"}, "GOCACHE"},
	} {
		t.Run(c.name, func(t *testing.T) {
			for k, v := range c.env {
				t.Setenv(k, v)
				if v == "" {
					must(t, os.Unsetenv(k))
				}
			}
			if got := strings.Join(added(), " "); got != c.want {
				t.Errorf("added %q, want %q", got, c.want)
			}
		})
	}
}
