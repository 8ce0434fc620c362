// Package artifact builds what storecrypt deploys: the agent for each architecture (with
// its .sha256 and the .gz instances download) and each function's bootstrap, in the
// layout the construct reads. `make build` and the construct both build through it, so
// there is one recipe, whether storecrypt is this repository or a module an app imports.
package artifact

import (
	"archive/zip"
	"bytes"
	"compress/gzip"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"github.com/storecrypt/storecrypt/internal/document"
)

// Module is storecrypt's module path: Build compiles its packages from wherever the go
// command finds it (this checkout, the module cache, or a replace directive).
const Module = "github.com/storecrypt/storecrypt"

// Functions are the Lambda functions, each built from ./functions/<name>.
var Functions = []string{"launch", "result"}

// Agent is the path of the agent binary for arch under dir.
func Agent(dir, arch string) string { return filepath.Join(dir, "storecrypt-agent-linux-"+arch) }

// Function is the directory of a function's bootstrap under dir.
func Function(dir, name string) string { return filepath.Join(dir, "functions", name) }

// Options tune Build.
type Options struct {
	// Version is stamped into the agent (`storecrypt-agent version`); default the
	// module's version, or "dev" for a checkout.
	Version string
	// Log receives one line per binary; nil discards them.
	Log io.Writer
	// Go is the go command (default "go").
	Go string
}

// Build writes the agents and functions into dir and returns it.
func Build(ctx context.Context, dir string, o Options) error {
	if o.Go == "" {
		o.Go = "go"
	}
	if o.Log == nil {
		o.Log = io.Discard
	}
	if _, err := exec.LookPath(o.Go); err != nil {
		return fmt.Errorf("storecrypt builds its agent and functions with the go command, and %q is not on PATH: install Go (go.dev/dl), or build ahead with storecrypt-build and set StoreCryptProps.BuildDir: %w", o.Go, err)
	}
	src, version, err := Source(ctx, o.Go)
	if err != nil {
		return err
	}
	if o.Version == "" {
		o.Version = version
	}
	for _, arch := range document.Architectures {
		out := Agent(dir, arch)
		fmt.Fprintf(o.Log, "storecrypt: building %s\n", out)
		ldflags := "-s -w -X " + Module + "/instance-agent/cli.Version=" + o.Version
		if err := goBuild(ctx, o.Go, src, arch, out, "./instance-agent/cmd/storecrypt-agent", "-ldflags", ldflags); err != nil {
			return err
		}
		if err := DigestAndGzip(out); err != nil {
			return err
		}
	}
	for _, fn := range Functions {
		out := filepath.Join(Function(dir, fn), "bootstrap")
		fmt.Fprintf(o.Log, "storecrypt: building %s\n", out)
		// lambda.norpc: provided.al2023 speaks only the Runtime API; the RPC mode is dead weight.
		if err := goBuild(ctx, o.Go, src, "arm64", out, "./functions/"+fn, "-tags", "lambda.norpc", "-ldflags", "-s -w"); err != nil {
			return err
		}
	}
	return nil
}

// CLI builds the operator CLI for each platform (goos/goarch) into dir as
// storecrypt-<goos>-<goarch>, and returns the paths: what a release ships so that a user
// stages and deploys without Go.
func CLI(ctx context.Context, dir string, platforms []string, o Options) ([]string, error) {
	if o.Go == "" {
		o.Go = "go"
	}
	src, _, err := Source(ctx, o.Go)
	if err != nil {
		return nil, err
	}
	var out []string
	for _, p := range platforms {
		goos, arch, ok := strings.Cut(p, "/")
		if !ok {
			return nil, fmt.Errorf("platform %q: want goos/goarch", p)
		}
		bin := filepath.Join(dir, "storecrypt-"+goos+"-"+arch)
		if err := goBuildFor(ctx, o.Go, src, goos, arch, bin, "./cmd/storecrypt", "-ldflags", "-s -w"); err != nil {
			return nil, err
		}
		out = append(out, bin)
	}
	return out, nil
}

// goBuild builds pkg for linux/arch, static and without paths of this machine, in src,
// storecrypt's own module (its go.mod and go.sum decide the dependencies, not the app's).
func goBuild(ctx context.Context, goCmd, src, arch, out, pkg string, flags ...string) error {
	return goBuildFor(ctx, goCmd, src, "linux", arch, out, pkg, flags...)
}

func goBuildFor(ctx context.Context, goCmd, src, goos, arch, out, pkg string, flags ...string) error {
	abs, err := filepath.Abs(out)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(abs), 0o755); err != nil {
		return err
	}
	args := append([]string{"build", "-trimpath", "-o", abs}, flags...)
	cmd := exec.CommandContext(ctx, goCmd, append(args, pkg)...)
	cmd.Dir = src
	cmd.Env = append(goEnv(), "CGO_ENABLED=0", "GOOS="+goos, "GOARCH="+arch, "GOWORK=off", "GOFLAGS=-mod=readonly")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("go build %s for %s/%s: %w: %s", pkg, goos, arch, err, strings.TrimSpace(stderr.String()))
	}
	return nil
}

// DigestAndGzip writes path.sha256 in sha256sum's format and path.gz: best compression, no
// name or time in the header, so the same binary always gives the same bytes.
func DigestAndGzip(path string) error {
	bin, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	line := SHA256(bin) + "  " + filepath.Base(path) + "\n"
	if err := os.WriteFile(path+".sha256", []byte(line), 0o644); err != nil {
		return err
	}
	var gz bytes.Buffer
	zw, err := gzip.NewWriterLevel(&gz, gzip.BestCompression)
	if err != nil {
		return err
	}
	if _, err := zw.Write(bin); err != nil {
		return err
	}
	if err := zw.Close(); err != nil {
		return err
	}
	return os.WriteFile(path+document.GzSuffix, gz.Bytes(), 0o644)
}

// AgentKeyPrefix is the object key of the agents of one build up to the architecture:
// keys that differ only in it let one download step, its path ending in the document's
// {{ Architecture }}, fetch only the instance's own.
func AgentKeyPrefix(build string) string { return "storecrypt-agent-" + build + "-" }

// AgentKey is the object key of the gzipped agent for arch.
func AgentKey(build, arch string) string { return AgentKeyPrefix(build) + arch + document.GzSuffix }

// SHA256 is b's SHA-256 in hex, as sha256sum and the document write it.
func SHA256(b []byte) string {
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])
}

// BuildID names a build by its agents' gzip digests, in document.Architectures order: a
// new build is a new key, so an instance never downloads a mix of two.
func BuildID(gzSHA256 ...string) string {
	h := sha256.New()
	for _, d := range gzSHA256 {
		h.Write([]byte(d))
	}
	return hex.EncodeToString(h.Sum(nil))[:16]
}

// FunctionKey is the object key of a function's zip, named by its bootstrap's digest.
func FunctionKey(dir, name string) (string, error) {
	b, err := os.ReadFile(filepath.Join(Function(dir, name), "bootstrap"))
	if err != nil {
		return "", fmt.Errorf("reading the %s function (run `make build`): %w", name, err)
	}
	return FunctionObject(name, SHA256(b)[:16]), nil
}

// FunctionObject is the object key of a function's zip of build id (a digest, or * to
// match any).
func FunctionObject(name, id string) string { return "functions/" + name + "-" + id + ".zip" }

// Publish writes into out the objects a deployment without CDK assets reads from its
// code bucket (storecrypt.StoreCryptProps.CodeBucket), under the keys the construct gives them:
// each agent's .gz, and each function's bootstrap zipped as Lambda takes it. It returns
// the keys written.
func Publish(buildDir, out string) ([]string, error) {
	var digests []string
	gz := map[string][]byte{}
	for _, arch := range document.Architectures {
		b, err := os.ReadFile(Agent(buildDir, arch) + document.GzSuffix)
		if err != nil {
			return nil, fmt.Errorf("reading the gzipped agent (run `make build`): %w", err)
		}
		digests = append(digests, SHA256(b))
		gz[arch] = b
	}
	build := BuildID(digests...)
	var keys []string
	write := func(key string, b []byte) error {
		path := filepath.Join(out, filepath.FromSlash(key))
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			return err
		}
		keys = append(keys, key)
		return os.WriteFile(path, b, 0o644)
	}
	for _, arch := range document.Architectures {
		if err := write(AgentKey(build, arch), gz[arch]); err != nil {
			return nil, err
		}
	}
	for _, fn := range Functions {
		key, err := FunctionKey(buildDir, fn)
		if err != nil {
			return nil, err
		}
		zipped, err := zipBootstrap(filepath.Join(Function(buildDir, fn), "bootstrap"))
		if err != nil {
			return nil, err
		}
		if err := write(key, zipped); err != nil {
			return nil, err
		}
	}
	return keys, nil
}

// zipBootstrap zips a function's bootstrap as provided.al2023 runs it: at the root,
// executable. The time is fixed, so the same binary gives the same zip.
func zipBootstrap(path string) ([]byte, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var buf bytes.Buffer
	zw := zip.NewWriter(&buf)
	h := &zip.FileHeader{Name: "bootstrap", Method: zip.Deflate, Modified: time.Date(1980, 1, 1, 0, 0, 0, 0, time.UTC)}
	h.SetMode(0o755)
	w, err := zw.CreateHeader(h)
	if err != nil {
		return nil, err
	}
	if _, err := w.Write(b); err != nil {
		return nil, err
	}
	if err := zw.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// StandIns writes into dir stand-ins for what Build writes, in its layout, with valid
// digests: a synth whose bundling CDK skips (cdk ls, cdk destroy, a stack not being
// deployed) stages them instead of building, as CDK stages the unbundled source then, and
// tests that synthesize the construct use them. Nothing runs them.
func StandIns(dir string) error {
	for _, arch := range document.Architectures {
		name := Agent(dir, arch)
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return err
		}
		if err := os.WriteFile(name, []byte("stand-in for the agent for "+arch), 0o644); err != nil {
			return err
		}
		if err := DigestAndGzip(name); err != nil {
			return err
		}
	}
	for _, fn := range Functions {
		if err := os.MkdirAll(Function(dir, fn), 0o755); err != nil {
			return err
		}
		if err := os.WriteFile(filepath.Join(Function(dir, fn), "bootstrap"), []byte("stand-in for the "+fn+" function"), 0o755); err != nil {
			return err
		}
	}
	return nil
}
