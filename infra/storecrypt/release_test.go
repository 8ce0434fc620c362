package storecrypt_test

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"encoding/json"
	"errors"
	"io"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/aws/aws-cdk-go/awscdk/v2"
	"github.com/aws/aws-cdk-go/awscdk/v2/assertions"
	"github.com/aws/jsii-runtime-go"

	"github.com/storecrypt/storecrypt/infra/artifact"
	"github.com/storecrypt/storecrypt/infra/publish"
	"github.com/storecrypt/storecrypt/infra/storecrypt"
	"github.com/storecrypt/storecrypt/internal/release"
)

// releaseOf packs the code of build as `make release` does (artifact.Publish's objects,
// then release.Write) and returns the tarball and its SHA-256.
func releaseOf(t *testing.T, build string) (tarball, sha256 string) {
	t.Helper()
	dist := t.TempDir()
	_, err := artifact.Publish(build, dist)
	must(t, err)
	tarball, err = release.Write(dist, t.TempDir(), "v0.0.0-test", nil)
	must(t, err)
	return tarball, fileSHA256(t, tarball)
}

func fileSHA256(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	must(t, err)
	return artifact.SHA256(b)
}

// repack copies tarball with each regular entry's data through edit (keep false drops
// the entry), SHA256SUMS included, and returns the copy and its SHA-256: a release whose
// pinned digest is right and whose files may not be.
func repack(t *testing.T, tarball string, edit func(name string, data []byte) (out []byte, keep bool)) (string, string) {
	t.Helper()
	f, err := os.Open(tarball)
	must(t, err)
	defer f.Close()
	zr, err := gzip.NewReader(f)
	must(t, err)
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	tr, tw := tar.NewReader(zr), tar.NewWriter(zw)
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		must(t, err)
		data, err := io.ReadAll(tr)
		must(t, err)
		if h.Typeflag == tar.TypeReg {
			var keep bool
			if data, keep = edit(h.Name, data); !keep {
				continue
			}
			h.Size = int64(len(data))
		}
		must(t, tw.WriteHeader(h))
		_, err = tw.Write(data)
		must(t, err)
	}
	must(t, tw.Close())
	must(t, zw.Close())
	out := filepath.Join(t.TempDir(), filepath.Base(tarball))
	must(t, os.WriteFile(out, buf.Bytes(), 0o644))
	return out, artifact.SHA256(buf.Bytes())
}

// assetHash is a file asset's name in a template: CDK's hash of a directory it zipped, or
// the digest of a release's zip.
var assetHash = regexp.MustCompile(`[0-9a-f]{64}\.zip`)

// TestReleaseMatchesBuild: the template of a synth from a release is the template of a
// synth from the build the release was packed from, but for the functions' file asset
// names (CDK's hash of the bootstrap's directory, or the zip's digest); with a code
// bucket, where no file asset is named, it is the same template. The agents' keys, and
// so the document, are the same in both: they are named by the same digests.
func TestReleaseMatchesBuild(t *testing.T) {
	build := buildDir(t)
	tarball, sha := releaseOf(t, build)
	for _, tc := range []struct {
		name       string
		codeBucket *string
	}{
		{"file assets", nil},
		{"code bucket", jsii.String("acme-storecrypt-us-east-1")},
	} {
		t.Run(tc.name, func(t *testing.T) {
			synth := func(props storecrypt.StoreCryptProps) string {
				props.CodeBucket, props.CodePrefix = tc.codeBucket, jsii.String("storecrypt/")
				s := appStack(awscdk.NewApp(&awscdk.AppProps{Outdir: jsii.String(t.TempDir())}), "StoreCrypt", &props)
				if errs := *s.Node().Validate(); len(errs) > 0 {
					t.Fatal(*errs[0])
				}
				b, err := json.MarshalIndent(assertions.Template_FromStack(s, nil).ToJSON(), "", " ")
				must(t, err)
				return assetHash.ReplaceAllString(string(b), "<asset>.zip")
			}
			fromBuild := synth(storecrypt.StoreCryptProps{BuildDir: &build})
			fromRelease := synth(storecrypt.StoreCryptProps{Release: &storecrypt.Release{Path: &tarball, Sha256: &sha}})
			if fromBuild != fromRelease {
				t.Errorf("got a template from the release that differs from the build's:\n%s", lineDiff(fromBuild, fromRelease))
			}
		})
	}
}

// lineDiff is the lines of a and b that differ, a's with -, b's with +.
func lineDiff(a, b string) string {
	al, bl := strings.Split(a, "\n"), strings.Split(b, "\n")
	var out []string
	for i := 0; i < len(al) || i < len(bl); i++ {
		var x, y string
		if i < len(al) {
			x = al[i]
		}
		if i < len(bl) {
			y = bl[i]
		}
		if x != y {
			out = append(out, "- "+x, "+ "+y)
		}
	}
	return strings.Join(out, "\n")
}

// TestBadRelease: a release is deployed only under the digest pinned for it, with every
// file as its SHA256SUMS says, and with one build's agents and functions; anything else
// fails the synth with the reason.
func TestBadRelease(t *testing.T) {
	build := buildDir(t)
	tarball, sha := releaseOf(t, build)
	// Another build's amd64 agent beside this one's, listed in SHA256SUMS.
	dist := t.TempDir()
	_, err := artifact.Publish(build, dist)
	must(t, err)
	objects, err := release.ReadDir(dist, release.CodeDir)
	must(t, err)
	var twoBuilds bytes.Buffer
	must(t, release.Pack(&twoBuilds, "v0.0.0-test", append(objects, release.File{Path: release.CodeDir + artifact.AgentKey("0123456789abcdef", "amd64"), Data: []byte("another build")})))
	twoBuildsPath := filepath.Join(t.TempDir(), release.Name("v0.0.0-test"))
	must(t, os.WriteFile(twoBuildsPath, twoBuilds.Bytes(), 0o644))
	edited := func(edit func(name string, data []byte) ([]byte, bool)) storecrypt.Release {
		p, s := repack(t, tarball, edit)
		return storecrypt.Release{Path: &p, Sha256: &s}
	}
	isLaunch := func(name string) bool { return strings.Contains(name, "/code/functions/launch-") }
	for _, tc := range []struct {
		name     string
		release  storecrypt.Release
		buildDir *string
		want     string
	}{
		{"wrong digest", storecrypt.Release{Path: &tarball, Sha256: jsii.String(strings.Repeat("ab", 32))}, nil, "want " + strings.Repeat("ab", 32) + " (the digest pinned for it)"},
		{"missing object", edited(func(name string, data []byte) ([]byte, bool) { return data, !isLaunch(name) }), nil, "is missing"},
		{"tampered object", edited(func(name string, data []byte) ([]byte, bool) {
			if isLaunch(name) {
				return append(data, "evil"...), true
			}
			return data, true
		}), nil, "does not match its SHA256SUMS"},
		{"no agent for arm64", edited(func(name string, data []byte) ([]byte, bool) {
			if strings.HasSuffix(name, release.Sums) {
				var kept []string
				for _, l := range strings.SplitAfter(string(data), "\n") {
					if !strings.Contains(l, "-arm64.gz") {
						kept = append(kept, l)
					}
				}
				return []byte(strings.Join(kept, "")), true
			}
			return data, !strings.HasSuffix(name, "-arm64.gz")
		}), nil, "holds 0 objects code/storecrypt-agent-*-arm64.gz"},
		{"two builds' agents", storecrypt.Release{Path: &twoBuildsPath, Sha256: jsii.String(artifact.SHA256(twoBuilds.Bytes()))}, nil, "holds 2 objects code/storecrypt-agent-*-amd64.gz"},
		{"no digest pinned", storecrypt.Release{Path: &tarball}, nil, "pin the tarball's SHA-256"},
		{"a digest too short", storecrypt.Release{Path: &tarball, Sha256: jsii.String(sha[:40])}, nil, "pin the tarball's SHA-256"},
		{"no path", storecrypt.Release{Sha256: &sha}, nil, "give the path"},
		{"with buildDir", storecrypt.Release{Path: &tarball, Sha256: &sha}, jsii.String(buildDir(t)), "both name the code"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			props := storecrypt.StoreCryptProps{Name: jsii.String("x"), Release: &tc.release, BuildDir: tc.buildDir}
			if got := synthError(t, &props); !strings.Contains(got, tc.want) {
				t.Errorf("got synth error %q, want one containing %q", got, tc.want)
			}
		})
	}
	if got := synthError(t, &storecrypt.StoreCryptProps{Name: jsii.String("x"), Release: &storecrypt.Release{Path: &tarball, Sha256: &sha}}); got != "" {
		t.Errorf("got synth error %q for the release as packed, want none", got)
	}
}

// releaseSynth names, in the environment of this test binary run again, the tarball and
// digest to synthesize with, and the output directory: the synth that
// TestReleaseWithoutGo runs where only node is on PATH.
const releaseSynth = "STORECRYPT_TEST_RELEASE_SYNTH"

// TestReleaseWithoutGo: a synth from a release needs no go command. This test binary is
// run again with only node on PATH (jsii runs the CDK in it), and synthesizes every
// stack with bundling on, as cdk synth and cdk deploy do: had the construct built
// anything, it would have found no go. What it staged are the release's objects, under
// their digests.
func TestReleaseWithoutGo(t *testing.T) {
	if v := os.Getenv(releaseSynth); v != "" {
		var in struct{ Tarball, SHA256, Out string }
		must(t, json.Unmarshal([]byte(v), &in))
		app := awscdk.NewApp(&awscdk.AppProps{Outdir: &in.Out})
		appStack(app, "StoreCrypt", &storecrypt.StoreCryptProps{Release: &storecrypt.Release{Path: &in.Tarball, Sha256: &in.SHA256}})
		app.Synth(nil)
		return
	}
	build := buildDir(t)
	tarball, sha := releaseOf(t, build)
	out := t.TempDir()
	onlyNode := t.TempDir()
	node, err := exec.LookPath("node")
	must(t, err)
	must(t, os.Symlink(node, filepath.Join(onlyNode, "node")))
	in, err := json.Marshal(map[string]string{"Tarball": tarball, "SHA256": sha, "Out": out})
	must(t, err)
	cmd := exec.Command(os.Args[0], "-test.run=^TestReleaseWithoutGo$", "-test.count=1")
	cmd.Env = append(withoutEnv("PATH", "CDK_OUTDIR", "CDK_CONTEXT_JSON"), "PATH="+onlyNode, releaseSynth+"="+string(in))
	if log, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("synthesizing from the release with only node on PATH: %v\n%s", err, log)
	}
	rel, err := release.OpenPinned(tarball, sha)
	must(t, err)
	for _, f := range rel.Code() {
		if f.Path == publish.Template {
			continue // not deployed by a synth
		}
		// CDK names an asset of a custom hash by that hash's SHA-256 (AssetOptions).
		name := "asset." + artifact.SHA256([]byte(f.SHA256())) + path.Ext(f.Path)
		staged, err := os.ReadFile(filepath.Join(out, name))
		if err != nil || !bytes.Equal(staged, f.Data) {
			t.Errorf("%s: got %d bytes staged as %s (%v), want the release's object, %d bytes", f.Path, len(staged), name, err, len(f.Data))
		}
	}
}
