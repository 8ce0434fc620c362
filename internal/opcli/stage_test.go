package opcli_test

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials/stscreds"
	"github.com/aws/aws-sdk-go-v2/service/organizations"
	orgtypes "github.com/aws/aws-sdk-go-v2/service/organizations/types"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/sts"

	"github.com/storecrypt/storecrypt/internal/awscfg"
	"github.com/storecrypt/storecrypt/internal/opcli"
	"github.com/storecrypt/storecrypt/internal/release"
	"github.com/storecrypt/storecrypt/test/emu"
)

// caller is STS and Organizations as the emulator's account sees them.
// caller is STS and Organizations as stage uses them; stage never assumes a role or lists
// accounts, and the nil interfaces would panic if it did.
type caller struct {
	stscreds.AssumeRoleAPIClient
	organizations.ListAccountsAPIClient
	describes int
}

func (c *caller) GetCallerIdentity(context.Context, *sts.GetCallerIdentityInput, ...func(*sts.Options)) (*sts.GetCallerIdentityOutput, error) {
	return &sts.GetCallerIdentityOutput{Account: aws.String(emu.Account)}, nil
}

func (c *caller) DescribeOrganization(context.Context, *organizations.DescribeOrganizationInput, ...func(*organizations.Options)) (*organizations.DescribeOrganizationOutput, error) {
	c.describes++
	return &organizations.DescribeOrganizationOutput{Organization: &orgtypes.Organization{Id: aws.String("o-exampleorgid")}}, nil
}

var (
	_ opcli.STS           = (*caller)(nil)
	_ opcli.Organizations = (*caller)(nil)
)

// writeRelease packs a small release and returns its tarball's path.
func writeRelease(t *testing.T) string {
	t.Helper()
	var b bytes.Buffer
	if err := release.Pack(&b, "v0.0.1", []release.File{
		{Path: "code/storecrypt.template.json", Data: []byte(`{"Resources":{}}`)},
		{Path: "code/functions/launch-0123456789abcdef.zip", Data: bytes.Repeat([]byte("z"), 3000)},
	}); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), release.Name("v0.0.1"))
	if err := os.WriteFile(path, b.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

// TestStage stages a release into two regions of the S3 emulator: the first run creates
// both buckets and uploads everything, with the organization's policy; the second
// uploads nothing.
func TestStage(t *testing.T) {
	e := emu.StartS3(t)
	who := &caller{}
	c := opcli.Clients{S3: e.S3, STS: who, Organizations: who}
	args := []string{"stage", "--release", writeRelease(t), "--bucket-prefix", "acme-storecrypt", "--regions", "us-east-1,eu-west-1", "--output", "json"}
	// A dry run says what it would do and writes nothing.
	code, out, errOut := run(t, c, "", append(args, "--dry-run")...)
	if code != 0 || !strings.Contains(errOut, "eu-west-1: would create bucket acme-storecrypt-eu-west-1") ||
		!strings.Contains(errOut, "eu-west-1: storecrypt/storecrypt.template.json would upload") {
		t.Fatalf("--dry-run: exit %d\n%s\n%s", code, out, errOut)
	}
	if _, err := e.S3.HeadBucket(context.Background(), &s3.HeadBucketInput{Bucket: aws.String("acme-storecrypt-eu-west-1")}); err == nil {
		t.Fatal("--dry-run created the bucket")
	}
	for _, tc := range []struct {
		name                string
		uploaded, unchanged int
		progress            string
	}{
		{"first run", 2, 0, "eu-west-1: storecrypt/functions/launch-0123456789abcdef.zip uploaded (2.9 KB)"},
		{"second run", 0, 2, "eu-west-1: storecrypt/functions/launch-0123456789abcdef.zip unchanged"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, out, errOut := run(t, c, "", args...)
			if code != 0 {
				t.Fatalf("exit %d, want 0\n%s\n%s", code, out, errOut)
			}
			var got []struct {
				Region              string
				Bucket              string
				Uploaded, Unchanged []string
			}
			if err := json.Unmarshal([]byte(out), &got); err != nil || len(got) != 2 {
				t.Fatalf("got %v, %q, want a result per region", err, out)
			}
			for _, r := range got {
				if len(r.Uploaded) != tc.uploaded || len(r.Unchanged) != tc.unchanged {
					t.Errorf("%s: got %d uploaded and %d unchanged, want %d and %d", r.Region, len(r.Uploaded), len(r.Unchanged), tc.uploaded, tc.unchanged)
				}
			}
			if !strings.Contains(errOut, tc.progress) {
				t.Errorf("got progress\n%s\nwant a line %q", errOut, tc.progress)
			}
		})
	}
	for _, region := range []string{"us-east-1", "eu-west-1"} {
		bucket := release.Bucket("acme-storecrypt", region)
		obj, err := e.S3.GetObject(context.Background(), &s3.GetObjectInput{Bucket: aws.String(bucket), Key: aws.String("storecrypt/storecrypt.template.json")})
		if err != nil {
			t.Errorf("reading the staged template in %s: %v", region, err)
		} else {
			obj.Body.Close()
		}
		if got, want := e.BucketConfig(bucket, "policy"), release.BucketPolicy("aws", bucket, "storecrypt/", "o-exampleorgid"); got != want {
			t.Errorf("%s's policy: got %s, want %s", bucket, got, want)
		}
		for _, c := range []struct{ sub, want string }{
			{"publicAccessBlock", "<BlockPublicAcls>true</BlockPublicAcls><BlockPublicPolicy>false</BlockPublicPolicy><IgnorePublicAcls>true</IgnorePublicAcls>"},
			{"encryption", "<SSEAlgorithm>AES256</SSEAlgorithm>"},
		} {
			if got := e.BucketConfig(bucket, c.sub); !strings.Contains(got, c.want) {
				t.Errorf("%s's %s: got %s, want %s", bucket, c.sub, got, c.want)
			}
		}
	}
	if who.describes != 3 {
		t.Errorf("got %d DescribeOrganization calls, want one per run without --organization-id", who.describes)
	}
}

// TestStageRefuses: a bucket another account owns is refused while the other region is
// still staged (exit 1, both reported), and a release that does not match its sums is
// refused before any AWS call.
func TestStageRefuses(t *testing.T) {
	e := emu.StartS3(t)
	ctx := context.Background()
	taken := release.Bucket("acme-storecrypt", "eu-west-1")
	if _, err := e.S3.CreateBucket(ctx, &s3.CreateBucketInput{Bucket: aws.String(taken)}); err != nil {
		t.Fatal(err)
	}
	e.OwnBucket(taken, "999988887777")
	who := &caller{}
	c := opcli.Clients{S3: e.S3, STS: who, Organizations: who}
	code, out, errOut := run(t, c, "", "stage", "--release", writeRelease(t), "--bucket-prefix", "acme-storecrypt", "--regions", "eu-west-1,us-east-1", "--organization-id", "o-exampleorgid")
	if code != 1 || !strings.Contains(errOut, "eu-west-1: failed: bucket "+taken+" exists and is not this account's") {
		t.Errorf("a bucket of another account: got exit %d\n%s, want 1 and the refusal", code, errOut)
	}
	if !strings.Contains(out, "us-east-1  acme-storecrypt-us-east-1  true") || e.BucketConfig(taken, "policy") != "" {
		t.Errorf("got\n%s\nwant us-east-1 staged and %s untouched", out, taken)
	}
	if who.describes != 0 {
		t.Errorf("got %d DescribeOrganization calls with --organization-id, want 0", who.describes)
	}

	// A corrupted release: one object changed after packing.
	dir := t.TempDir()
	r, err := release.Open(writeRelease(t))
	if err != nil {
		t.Fatal(err)
	}
	var sums strings.Builder
	for _, f := range r.Files {
		sums.WriteString(f.SHA256() + "  " + f.Path + "\n")
		data := f.Data
		if strings.HasSuffix(f.Path, ".zip") {
			data = []byte("tampered")
		}
		if err := os.MkdirAll(filepath.Join(dir, filepath.Dir(f.Path)), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, f.Path), data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(dir, release.Sums), []byte(sums.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	var called bool
	code, _, errOut = runWith(t, func() (opcli.Clients, error) { called = true; return c, nil }, "stage", "--release", dir, "--bucket-prefix", "acme-other", "--regions", "us-east-1")
	if code != 1 || !strings.Contains(errOut, "launch-0123456789abcdef.zip has SHA-256") || called {
		t.Errorf("a tampered release: got exit %d, AWS clients built %t\n%s, want 1, none, and the mismatch named", code, called, errOut)
	}
}

// runWith is run with a NewClients of the test's own, to see whether it was called.
func runWith(t *testing.T, newClients func() (opcli.Clients, error), args ...string) (int, string, string) {
	t.Helper()
	var out, errOut bytes.Buffer
	code := opcli.Main(context.Background(), args, strings.NewReader(""), &out, &errOut,
		func(context.Context, awscfg.Options) (opcli.Clients, error) { return newClients() })
	return code, out.String(), errOut.String()
}
