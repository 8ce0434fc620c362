package conformance

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	awsmiddleware "github.com/aws/aws-sdk-go-v2/aws/middleware"
	"github.com/aws/aws-sdk-go-v2/credentials/stscreds"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/sts"
	"github.com/aws/smithy-go/middleware"

	"github.com/storecrypt/storecrypt/internal/awscfg"
	"github.com/storecrypt/storecrypt/internal/fakeaws"
	"github.com/storecrypt/storecrypt/internal/opcli"
	"github.com/storecrypt/storecrypt/internal/release"
	"github.com/storecrypt/storecrypt/test/cfn"
	"github.com/storecrypt/storecrypt/test/emu"
)

// emuAccount is STS as the S3 emulator's account sees it; stage assumes no role, and the
// nil interface would panic if it did.
type emuAccount struct{ stscreds.AssumeRoleAPIClient }

func (emuAccount) GetCallerIdentity(context.Context, *sts.GetCallerIdentityInput, ...func(*sts.Options)) (*sts.GetCallerIdentityOutput, error) {
	return &sts.GetCallerIdentityOutput{Account: aws.String(emu.Account)}, nil
}

// TestReleaseStaged runs what `make release` runs after `make publish` (the CLI for one
// platform, STORECRYPT_RELEASE_PLATFORMS for others) on the published template and code,
// stages the tarball into the S3 emulator with `storecrypt stage` and the template's
// defaults (CodeBucketPrefix as docs/organizations.md passes it, CodePrefix), and checks that every
// object the deployed template reads is where stage put it.
func TestReleaseStaged(t *testing.T) {
	dist := t.TempDir()
	for _, f := range distFiles {
		path := filepath.Join(dist, filepath.FromSlash(f.Path))
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, f.Data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	platforms := os.Getenv("STORECRYPT_RELEASE_PLATFORMS")
	if platforms == "" {
		platforms = "linux/amd64"
	}
	out := t.TempDir()
	cmd := exec.Command("go", "run", "./cmd/storecrypt-release", "-dist", dist, "-o", out, "-version", "test", "-platforms", platforms)
	cmd.Dir = "../.."
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("storecrypt-release: %v: %s", err, b)
	}
	tarball := filepath.Join(out, release.Name("test"))
	rel, err := release.Open(tarball)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range strings.Split(platforms, ",") {
		name := release.BinDir + "storecrypt-" + strings.ReplaceAll(p, "/", "-")
		if !hasFile(rel, name) {
			t.Errorf("the release lacks %s", name)
		}
	}

	env := cfn.Partitions[0]
	d := deployVariant(t, stackSetTemplate, env)
	tpl := templates[stackSetTemplate]
	e := emu.StartS3(t)
	var ops []string
	record := func(stack *middleware.Stack) error {
		return stack.Initialize.Add(middleware.InitializeMiddlewareFunc("record", func(ctx context.Context, in middleware.InitializeInput, next middleware.InitializeHandler) (middleware.InitializeOutput, middleware.Metadata, error) {
			ops = append(ops, awsmiddleware.GetOperationName(ctx))
			return next.HandleInitialize(ctx, in)
		}), middleware.After)
	}
	client := s3.New(e.S3.Options(), func(o *s3.Options) { o.APIOptions = append(o.APIOptions, record) })
	// Twice: the second run finds every object there (HeadObject) and uploads none.
	for _, want := range []string{"uploaded", "unchanged"} {
		var stdout, stderr bytes.Buffer
		code := opcli.Main(context.Background(), []string{"stage", "--release", tarball, "--regions", env.Region, "--organization-id", "o-exampleorgid",
			"--bucket-prefix", fmt.Sprint(tpl.Parameters["CodeBucketPrefix"].Default), "--prefix", fmt.Sprint(tpl.Parameters["CodePrefix"].Default)},
			strings.NewReader(""), &stdout, &stderr, func(context.Context, awscfg.Options) (opcli.Clients, error) {
				return opcli.Clients{S3: client, STS: emuAccount{}}, nil
			})
		if code != 0 || !strings.Contains(stderr.String(), "storecrypt.template.json "+want) {
			t.Fatalf("stage: exit %d, want 0 and the template %s\n%s%s", code, want, stdout.String(), stderr.String())
		}
	}
	for _, o := range d.codeObjects(t) {
		bucket, key, _ := strings.Cut(o, "/")
		if _, err := e.S3.HeadObject(context.Background(), &s3.HeadObjectInput{Bucket: aws.String(bucket), Key: aws.String(key)}); err != nil {
			t.Errorf("the template reads s3://%s, which stage did not write: %v", o, err)
		}
	}
	stagePolicyAllows(t, ops, fmt.Sprint(tpl.Parameters["CodeBucketPrefix"].Default))
}

// stageActions are the IAM actions of the S3 operations stage calls (Service Authorization
// Reference: HeadBucket is authorized as s3:ListBucket, HeadObject as s3:GetObject, a
// CreateBucket with ObjectOwnership also as s3:PutBucketOwnershipControls), each on the
// bucket or on an object.
var stageActions = map[string][]string{
	"HeadBucket":           {"s3:ListBucket"},
	"CreateBucket":         {"s3:CreateBucket", "s3:PutBucketOwnershipControls"},
	"PutPublicAccessBlock": {"s3:PutBucketPublicAccessBlock"},
	"PutBucketEncryption":  {"s3:PutEncryptionConfiguration"},
	"PutBucketPolicy":      {"s3:PutBucketPolicy"},
	"HeadObject":           {"s3:GetObject"},
	"PutObject":            {"s3:PutObject"},
}

// stagePolicyAllows judges docs/organizations.md's policy for whoever runs stage with the fake's
// evaluator: it allows every action of the operations stage called, on the buckets of
// the prefix, and nothing on another bucket; and each action it allows is one stage needs
// (DescribeOrganization: the run without --organization-id).
func stagePolicyAllows(t *testing.T, ops []string, bucketPrefix string) {
	t.Helper()
	block := docBlock(t, organizationsDoc, "StageBuckets")
	policy := strings.ReplaceAll(block, "acme-storecrypt", bucketPrefix)
	caller := "arn:aws:iam::" + emu.Account + ":role/publisher"
	needed := map[string]bool{"organizations:DescribeOrganization": true}
	for _, op := range ops {
		actions, ok := stageActions[op]
		if !ok {
			t.Errorf("stage calls s3:%s, whose IAM actions this test does not know", op)
		}
		for _, a := range actions {
			needed[a] = true
		}
	}
	ask := func(action, resource string) fakeaws.Decision {
		t.Helper()
		got, _, err := fakeaws.Evaluate(policy, false, fakeaws.AuthzRequest{Principal: caller, Action: action, Resource: resource})
		if err != nil {
			t.Fatal(err)
		}
		return got
	}
	for a := range needed {
		resource := "arn:aws:s3:::" + release.Bucket(bucketPrefix, "eu-west-1")
		switch {
		case a == "s3:GetObject" || a == "s3:PutObject":
			resource += "/storecrypt/storecrypt.template.json"
		case !strings.HasPrefix(a, "s3:"):
			resource = "*"
		}
		if got := ask(a, resource); got != fakeaws.Allow {
			t.Errorf("the documented stage policy: %s on %s: got %s, want %s", a, resource, got, fakeaws.Allow)
		}
		if strings.HasPrefix(a, "s3:") {
			other := strings.Replace(resource, bucketPrefix, "someone-else", 1)
			if got := ask(a, other); got != fakeaws.ImplicitDeny {
				t.Errorf("the documented stage policy: %s on %s: got %s, want %s", a, other, got, fakeaws.ImplicitDeny)
			}
		}
	}
	var doc struct{ Statement []map[string]any }
	if err := json.Unmarshal([]byte(policy), &doc); err != nil {
		t.Fatalf("the documented stage policy: %v", err)
	}
	for _, st := range doc.Statement {
		for _, a := range cfn.Actions(st) {
			if !needed[a] {
				t.Errorf("the documented stage policy allows %s (%v), which stage does not call", a, st["Sid"])
			}
		}
	}
}

func hasFile(r release.Release, path string) bool {
	for _, f := range r.Files {
		if f.Path == path {
			return true
		}
	}
	return false
}
