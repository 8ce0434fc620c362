package conformance

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/sts"

	"github.com/storecrypt/storecrypt/internal/awscfg"
	"github.com/storecrypt/storecrypt/internal/opcli"
	"github.com/storecrypt/storecrypt/internal/release"
	"github.com/storecrypt/storecrypt/test/cfn"
	"github.com/storecrypt/storecrypt/test/emu"
)

// emuAccount is STS as the S3 emulator's account sees it.
type emuAccount struct{}

func (emuAccount) GetCallerIdentity(context.Context, *sts.GetCallerIdentityInput, ...func(*sts.Options)) (*sts.GetCallerIdentityOutput, error) {
	return &sts.GetCallerIdentityOutput{Account: aws.String(emu.Account)}, nil
}

// TestReleaseStaged runs what `make release` runs after `make publish` (the CLI for one
// platform, STORECRYPT_RELEASE_PLATFORMS for others) on the published template and code,
// stages the tarball into the S3 emulator with `storecrypt stage` and the template's
// defaults (CodeBucketPrefix as the README passes it, CodePrefix), and checks that every
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
	var stdout, stderr bytes.Buffer
	code := opcli.Main(context.Background(), []string{"stage", "--release", tarball, "--regions", env.Region, "--organization-id", "o-exampleorgid",
		"--bucket-prefix", fmt.Sprint(tpl.Parameters["CodeBucketPrefix"].Default), "--prefix", fmt.Sprint(tpl.Parameters["CodePrefix"].Default)},
		strings.NewReader(""), &stdout, &stderr, func(context.Context, awscfg.Options) (opcli.Clients, error) {
			return opcli.Clients{S3: e.S3, STS: emuAccount{}}, nil
		})
	if code != 0 {
		t.Fatalf("stage: exit %d\n%s%s", code, stdout.String(), stderr.String())
	}
	for _, o := range d.codeObjects(t) {
		bucket, key, _ := strings.Cut(o, "/")
		if _, err := e.S3.HeadObject(context.Background(), &s3.HeadObjectInput{Bucket: aws.String(bucket), Key: aws.String(key)}); err != nil {
			t.Errorf("the template reads s3://%s, which stage did not write: %v", o, err)
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
