package storecrypt

import (
	"bytes"
	"compress/gzip"
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"
	"regexp"

	"github.com/aws/aws-cdk-go/awscdk/v2"
	"github.com/aws/constructs-go/constructs/v10"

	"github.com/storecrypt/storecrypt/infra/artifact"
	"github.com/storecrypt/storecrypt/internal/document"
	"github.com/storecrypt/storecrypt/internal/release"
)

// Release is a storecrypt release tarball (storecrypt-<version>.tar.gz, as `make
// release` writes it and a release publishes it) whose code the construct deploys instead
// of building it, so that a synth needs no go command. As with CDK's assets, the code is
// staged into the cloud assembly under its digest; as with a container image pinned by
// digest, the tarball is taken only under the SHA-256 you pin.
type Release struct {
	// Path is the tarball's path on the machine that synthesizes.
	Path *string
	// Sha256 is the tarball's SHA-256 in hex, as published beside it (sha256sum).
	// Required: the SHA256SUMS inside the tarball only shows that its files agree with
	// one another, and whoever could swap the tarball could swap both.
	Sha256 *string
}

// sha256Hex is a SHA-256 as sha256sum writes it.
var sha256Hex = regexp.MustCompile(`^[0-9a-fA-F]{64}$`)

// checkRelease refuses a release the construct cannot trust or read at synth.
func (p *settings) checkRelease() error {
	switch {
	case p.Release == nil:
		return nil
	case p.BuildDir != "":
		return fmt.Errorf("release and buildDir %q both name the code to deploy: set one", p.BuildDir)
	case p.Release.Path == nil || *p.Release.Path == "" || unresolved(*p.Release.Path):
		return fmt.Errorf("release: give the path of the tarball (storecrypt-<version>.tar.gz) on this machine")
	case p.Release.Sha256 == nil || !sha256Hex.MatchString(*p.Release.Sha256):
		return fmt.Errorf("release %s: sha256 %q: pin the tarball's SHA-256, 64 hex digits, as published beside it", *p.Release.Path, deref(p.Release.Sha256))
	}
	return nil
}

func deref(v *string) string {
	if v == nil {
		return ""
	}
	return *v
}

// codeFor is the code p deploys: the release's, BuildDir's, or built through CDK's
// asset bundling (builtCode).
func codeFor(scope constructs.Construct, p settings) (codeFiles, error) {
	switch {
	case p.Release != nil:
		// In the cloud assembly, as builtCode's output and stand-ins are: a synth into
		// another directory never shares it.
		dir := filepath.Join(*awscdk.Stage_Of(scope).AssetOutdir(), "storecrypt-release-"+*p.Release.Sha256)
		return fromRelease(*p.Release.Path, *p.Release.Sha256, dir)
	case p.BuildDir != "":
		return fromBuild(p.BuildDir)
	}
	dir, err := builtCode(scope)
	if err != nil {
		return codeFiles{}, err
	}
	return fromBuild(dir)
}

// fromRelease is the code of the release tarball at tarball, once it has SHA-256 pin and
// every file matches its SHA256SUMS (release.OpenPinned): its agents and functions'
// zips, the objects `storecrypt stage --release` uploads under the same keys, written
// into dir for CDK to stage under their digests.
func fromRelease(tarball, pin, dir string) (codeFiles, error) {
	files := codeFiles{functions: map[string]functionFile{}}
	rel, err := release.OpenPinned(tarball, pin)
	if err != nil {
		return files, err
	}
	objects := rel.Code()
	for _, arch := range document.Architectures {
		f, err := object(tarball, objects, artifact.AgentKey("*", arch))
		if err != nil {
			return files, err
		}
		binary, err := gunzip(f.Data)
		if err != nil {
			return files, fmt.Errorf("the release %s: %s: %w", tarball, f.Path, err)
		}
		gz, err := writeObject(dir, f)
		if err != nil {
			return files, err
		}
		files.agents = append(files.agents, agentFile{Agent: document.Agent{Arch: arch, SHA256: artifact.SHA256(binary), GzSHA256: f.SHA256()}, gz: gz})
	}
	for _, fn := range artifact.Functions {
		f, err := object(tarball, objects, artifact.FunctionObject(fn, "*"))
		if err != nil {
			return files, err
		}
		zip, err := writeObject(dir, f)
		if err != nil {
			return files, err
		}
		files.functions[fn] = functionFile{key: f.Path, path: zip, hash: f.SHA256()}
	}
	return files, nil
}

// object is the one code object of the release whose key matches pattern (path.Match).
func object(tarball string, objects []release.File, pattern string) (release.File, error) {
	var found []release.File
	for _, f := range objects {
		if ok, _ := path.Match(pattern, f.Path); ok {
			found = append(found, f)
		}
	}
	if len(found) != 1 {
		return release.File{}, fmt.Errorf("the release %s holds %d objects %s%s, want 1: not a release of one build", tarball, len(found), release.CodeDir, pattern)
	}
	return found[0], nil
}

// writeObject writes f under dir at its key and returns its path.
func writeObject(dir string, f release.File) (string, error) {
	p := filepath.Join(dir, filepath.FromSlash(f.Path))
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		return "", fmt.Errorf("writing the release's %s: %w", f.Path, err)
	}
	if err := os.WriteFile(p, f.Data, 0o644); err != nil {
		return "", fmt.Errorf("writing the release's %s: %w", f.Path, err)
	}
	return p, nil
}

// gunzip is what gz decompresses to.
func gunzip(gz []byte) ([]byte, error) {
	zr, err := gzip.NewReader(bytes.NewReader(gz))
	if err != nil {
		return nil, err
	}
	return io.ReadAll(zr)
}
