package release_test

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/storecrypt/storecrypt/internal/fakeaws"
	"github.com/storecrypt/storecrypt/internal/golden"
	"github.com/storecrypt/storecrypt/internal/release"
)

func files() []release.File {
	return []release.File{
		{Path: "code/storecrypt.template.json", Data: []byte(`{"Resources":{}}`)},
		{Path: "code/functions/launch-0123456789abcdef.zip", Data: []byte("zip")},
		{Path: "bin/storecrypt-linux-amd64", Data: []byte("elf"), Exec: true},
	}
}

func pack(t *testing.T, fs []release.File) []byte {
	t.Helper()
	var b bytes.Buffer
	if err := release.Pack(&b, "v1.2.3", fs); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

// TestPackDeterministic: the same files give the same bytes, in whatever order they come.
func TestPackDeterministic(t *testing.T) {
	fs := files()
	first := pack(t, fs)
	fs[0], fs[2] = fs[2], fs[0]
	if second := pack(t, fs); !bytes.Equal(first, second) {
		t.Errorf("got %d bytes then %d different bytes from the same files, want the same", len(first), len(second))
	}
}

// TestOpen: a tarball and its extracted directory open to the same files; sha256sum -c
// accepts the SHA256SUMS; any change to a file, a missing file or an extra one is refused.
func TestOpen(t *testing.T) {
	dir := t.TempDir()
	tarball := filepath.Join(dir, release.Name("v1.2.3"))
	if err := os.WriteFile(tarball, pack(t, files()), 0o644); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command("tar", "-xzf", tarball, "-C", dir).CombinedOutput(); err != nil {
		t.Fatalf("tar: %v: %s", err, out)
	}
	top := filepath.Join(dir, "storecrypt-v1.2.3")
	check := exec.Command("sha256sum", "-c", release.Sums)
	check.Dir = top
	if out, err := check.CombinedOutput(); err != nil {
		t.Errorf("sha256sum -c: got %v, want success: %s", err, out)
	}
	for _, p := range []string{tarball, top} {
		r, err := release.Open(p)
		if err != nil {
			t.Fatalf("opening %s: %v", p, err)
		}
		if got, want := len(r.Code()), 2; got != want {
			t.Errorf("%s: got %d code objects, want %d", p, got, want)
		}
	}
	for _, tc := range []struct {
		name, want string
		change     func(dir string) error
	}{
		{"a changed object", "functions/launch-0123456789abcdef.zip has SHA-256", func(d string) error {
			return os.WriteFile(filepath.Join(d, "code/functions/launch-0123456789abcdef.zip"), []byte("evil"), 0o644)
		}},
		{"a missing object", "storecrypt.template.json is missing", func(d string) error { return os.Remove(filepath.Join(d, "code/storecrypt.template.json")) }},
		{"an unlisted object", "code/extra.zip is not listed", func(d string) error { return os.WriteFile(filepath.Join(d, "code/extra.zip"), nil, 0o644) }},
		{"no sums", "no SHA256SUMS", func(d string) error { return os.Remove(filepath.Join(d, release.Sums)) }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d := filepath.Join(t.TempDir(), "r")
			if out, err := exec.Command("cp", "-r", top, d).CombinedOutput(); err != nil {
				t.Fatalf("cp: %v: %s", err, out)
			}
			if err := tc.change(d); err != nil {
				t.Fatal(err)
			}
			_, err := release.Open(d)
			var mismatch *release.MismatchError
			if !errors.As(err, &mismatch) || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("got %v, want a mismatch saying %q", err, tc.want)
			}
		})
	}
}

// TestOpenPinned: a tarball opens only under the SHA-256 pinned for it, in either case of
// hex; then its files are checked against SHA256SUMS as Open checks them.
func TestOpenPinned(t *testing.T) {
	tarball := filepath.Join(t.TempDir(), release.Name("v1.2.3"))
	data := pack(t, files())
	if err := os.WriteFile(tarball, data, 0o644); err != nil {
		t.Fatal(err)
	}
	digest := release.File{Data: data}.SHA256()
	other := release.File{Data: []byte("another release")}.SHA256()
	for _, tc := range []struct {
		name, pin string
		wantErr   bool
	}{
		{"the tarball's digest", digest, false},
		{"upper-case hex", strings.ToUpper(digest), false},
		{"another tarball's digest", other, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r, err := release.OpenPinned(tarball, tc.pin)
			var wrong *release.DigestError
			switch {
			case tc.wantErr && (!errors.As(err, &wrong) || wrong.Got != digest):
				t.Errorf("got %v, want a DigestError naming SHA-256 %s", err, digest)
			case !tc.wantErr && err != nil:
				t.Errorf("got %v, want the release", err)
			case !tc.wantErr && len(r.Code()) != 2:
				t.Errorf("got %d code objects, want 2", len(r.Code()))
			}
		})
	}
}

// TestBucketPolicy: the code bucket's policy in each partition, as golden JSON, judged by
// the fake's evaluator: a principal of the organization reads the code; one outside it,
// an object outside the prefix and any write are denied.
func TestBucketPolicy(t *testing.T) {
	for _, tc := range []struct{ region, partition string }{
		{"eu-west-1", "aws"}, {"cn-north-1", "aws-cn"}, {"us-gov-west-1", "aws-us-gov"},
	} {
		t.Run(tc.partition, func(t *testing.T) {
			if got := release.Partition(tc.region); got != tc.partition {
				t.Fatalf("region %s: got partition %s, want %s", tc.region, got, tc.partition)
			}
			bucket := release.Bucket("acme-storecrypt", tc.region)
			policy := release.BucketPolicy(tc.partition, bucket, "storecrypt/", "o-exampleorgid")
			golden.Check(t, "bucket-policy-"+tc.partition+".json", []byte(policy+"\n"))
			member := fmt.Sprintf("arn:%s:iam::444455556666:role/any", tc.partition)
			for _, c := range []struct {
				name, org, action, object string
				want                      fakeaws.Decision
			}{
				{"a member reads the code", "o-exampleorgid", "s3:GetObject", "storecrypt/functions/launch-0123456789abcdef.zip", fakeaws.Allow},
				{"a principal outside the organization reads it", "o-otherorgid1", "s3:GetObject", "storecrypt/functions/launch-0123456789abcdef.zip", fakeaws.ImplicitDeny},
				{"a member reads outside the prefix", "o-exampleorgid", "s3:GetObject", "other/secret", fakeaws.ImplicitDeny},
				{"a member writes the code", "o-exampleorgid", "s3:PutObject", "storecrypt/functions/launch-0123456789abcdef.zip", fakeaws.ImplicitDeny},
			} {
				got, _, err := fakeaws.Evaluate(policy, true, fakeaws.AuthzRequest{Principal: member, Action: c.action,
					Resource: "arn:" + tc.partition + ":s3:::" + bucket + "/" + c.object,
					Context:  map[string][]string{"aws:PrincipalOrgID": {c.org}, "aws:PrincipalArn": {member}}})
				if err != nil {
					t.Fatal(err)
				}
				if got != c.want {
					t.Errorf("%s: got %s, want %s", c.name, got, c.want)
				}
			}
		})
	}
}
