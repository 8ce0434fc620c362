package s3object

import (
	"bytes"
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	s3types "github.com/aws/aws-sdk-go-v2/service/s3/types"
	"github.com/aws/smithy-go"
	"github.com/johannesboyne/gofakes3"
	"github.com/johannesboyne/gofakes3/backend/s3mem"
)

var exampleCreds = credentials.NewStaticCredentialsProvider("AKIAIOSFODNN7EXAMPLE", "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY", "")

// TestSignsAsS3Documents: the GET Object example of "Signature Calculations for the
// Authorization Header: Transferring Payload in a Single Chunk (AWS Signature Version
// 4)" in the S3 API Reference, signed as Get signs, gives the signature the page gives.
func TestSignsAsS3Documents(t *testing.T) {
	c := &Client{Credentials: exampleCreds, Region: "us-east-1", Now: func() time.Time { return time.Date(2013, 5, 24, 0, 0, 0, 0, time.UTC) }}
	req, err := http.NewRequest(http.MethodGet, "https://examplebucket.s3.amazonaws.com/", nil)
	if err != nil {
		t.Fatal(err)
	}
	req.URL.Opaque = "//examplebucket.s3.amazonaws.com/test.txt"
	req.Header.Set("Range", "bytes=0-9")
	req.Header.Set("X-Amz-Content-Sha256", emptyHash)
	if err := c.sign(context.Background(), req); err != nil {
		t.Fatal(err)
	}
	want := "AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/20130524/us-east-1/s3/aws4_request, SignedHeaders=host;range;x-amz-content-sha256;x-amz-date, Signature=f0e8bdb87c964420e857bd35b5d6ed310bd44f0170aba48dd91039c6036bdb41"
	if got := req.Header.Get("Authorization"); got != want {
		t.Errorf("Authorization\n got %s\nwant %s", got, want)
	}
}

// TestRequest: the region's endpoint, virtual-hosted unless the bucket has a dot; path
// style behind an Endpoint; the key and version escaped as SigV4 requires.
func TestRequest(t *testing.T) {
	domain := func(string) func(context.Context) (string, error) {
		return func(context.Context) (string, error) { return "amazonaws.com.cn", nil }
	}
	for _, tc := range []struct {
		name             string
		c                Client
		bucket, key, ver string
		want             string
	}{
		{"virtual-hosted", Client{Region: "us-east-1"}, "secrets", "storecrypt/seed", "", "https://secrets.s3.us-east-1.amazonaws.com/storecrypt/seed"},
		{"partition's domain", Client{Region: "cn-north-1", Domain: domain("")}, "secrets", "seed", "", "https://secrets.s3.cn-north-1.amazonaws.com.cn/seed"},
		{"dotted bucket", Client{Region: "eu-west-1"}, "my.secrets", "seed", "", "https://s3.eu-west-1.amazonaws.com/my.secrets/seed"},
		{"endpoint", Client{Region: "us-east-1", Endpoint: "http://10.0.2.2:4567/"}, "secrets", "a b+c=d", "3/L4kqtJl", "http://10.0.2.2:4567/secrets/a%20b%2Bc%3Dd?versionId=3%2FL4kqtJl"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			req, err := tc.c.request(context.Background(), tc.bucket, tc.key, tc.ver)
			if err != nil {
				t.Fatal(err)
			}
			if got := req.URL.String(); got != tc.want {
				t.Errorf("URL %s, want %s", got, tc.want)
			}
			if req.Header.Get("X-Amz-Content-Sha256") != emptyHash {
				t.Errorf("no payload hash: %v", req.Header)
			}
		})
	}
}

// TestGet against an S3 emulator: the current object and an earlier version, S3's errors
// as smithy.APIErrors, and an object past the limit refused.
func TestGet(t *testing.T) {
	srv := httptest.NewServer(ownedBy(owner, gofakes3.New(s3mem.New(s3mem.WithVersionSeed(1))).Server()))
	defer srv.Close()
	ctx := context.Background()
	sdk := s3.NewFromConfig(aws.Config{Region: "us-east-1", Credentials: exampleCreds}, func(o *s3.Options) {
		o.BaseEndpoint, o.UsePathStyle = aws.String(srv.URL), true
	})
	if _, err := sdk.CreateBucket(ctx, &s3.CreateBucketInput{Bucket: aws.String("secrets")}); err != nil {
		t.Fatal(err)
	}
	if _, err := sdk.PutBucketVersioning(ctx, &s3.PutBucketVersioningInput{Bucket: aws.String("secrets"),
		VersioningConfiguration: &s3types.VersioningConfiguration{Status: s3types.BucketVersioningStatusEnabled}}); err != nil {
		t.Fatal(err)
	}
	var versions []string
	for _, body := range []string{"first", "second"} {
		out, err := sdk.PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String("secrets"), Key: aws.String("seed"), Body: strings.NewReader(body)})
		if err != nil {
			t.Fatal(err)
		}
		versions = append(versions, aws.ToString(out.VersionId))
	}
	c := &Client{HTTP: srv.Client(), Credentials: exampleCreds, Region: "us-east-1", Endpoint: srv.URL}
	for _, tc := range []struct{ version, want string }{{"", "second"}, {versions[0], "first"}} {
		obj, err := c.Get(ctx, "secrets", "seed", tc.version, owner, 64)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(obj.Body, []byte(tc.want)) || obj.VersionID == "" {
			t.Errorf("version %q: %q (version %q), want %q", tc.version, obj.Body, obj.VersionID, tc.want)
		}
	}
	_, err := c.Get(ctx, "secrets", "missing", "", owner, 64)
	var api smithy.APIError
	if !errors.As(err, &api) || api.ErrorCode() != "NoSuchKey" || api.ErrorFault() != smithy.FaultClient {
		t.Errorf("a missing object: %v", err)
	}
	if _, err := c.Get(ctx, "secrets", "seed", "", owner, 3); err == nil || !strings.Contains(err.Error(), "larger than 3 bytes") {
		t.Errorf("an object past the limit: %v", err)
	}
}

const owner = "111122223333"

// ownedBy puts S3's expected-owner check in front of the emulator, which lacks it: "If
// the account ID that you provide does not match the actual owner of the bucket, the
// request fails with the HTTP status code 403 Forbidden (access denied)" (GetObject,
// x-amz-expected-bucket-owner). Every bucket of the emulator belongs to account.
func ownedBy(account string, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if got := r.Header.Get("X-Amz-Expected-Bucket-Owner"); got != "" && got != account {
			w.WriteHeader(http.StatusForbidden)
			_, _ = w.Write([]byte(`<?xml version="1.0" encoding="UTF-8"?><Error><Code>AccessDenied</Code><Message>Access Denied</Message></Error>`))
			return
		}
		next.ServeHTTP(w, r)
	})
}

// TestExpectedBucketOwner: the GET names the account the bucket must belong to, in a
// signed header, and a bucket of the same name in another account is refused.
func TestExpectedBucketOwner(t *testing.T) {
	ctx := context.Background()
	var signed string
	emu := ownedBy("444455556666", gofakes3.New(s3mem.New()).Server())
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		signed = r.Header.Get("Authorization")
		emu.ServeHTTP(w, r)
	}))
	defer srv.Close()
	sdk := s3.NewFromConfig(aws.Config{Region: "us-east-1", Credentials: exampleCreds}, func(o *s3.Options) {
		o.BaseEndpoint, o.UsePathStyle = aws.String(srv.URL), true
	})
	if _, err := sdk.CreateBucket(ctx, &s3.CreateBucketInput{Bucket: aws.String("secrets")}); err != nil {
		t.Fatal(err)
	}
	if _, err := sdk.PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String("secrets"), Key: aws.String("seed"), Body: strings.NewReader("planted")}); err != nil {
		t.Fatal(err)
	}
	c := &Client{HTTP: srv.Client(), Credentials: exampleCreds, Region: "us-east-1", Endpoint: srv.URL}
	_, err := c.Get(ctx, "secrets", "seed", "", owner, 64)
	var api smithy.APIError
	if !errors.As(err, &api) || api.ErrorCode() != "AccessDenied" {
		t.Errorf("a bucket of another account: got %v, want AccessDenied", err)
	}
	if !strings.Contains(signed, "x-amz-expected-bucket-owner") {
		t.Errorf("SignedHeaders of %q: got no x-amz-expected-bucket-owner, want it signed", signed)
	}
	if _, err := c.Get(ctx, "secrets", "seed", "", "", 64); err == nil {
		t.Error("no owner: got a read, want a refusal")
	}
}
