// Package emu runs the AWS emulators the real-kernel tests and the demo point the agent at,
// all on 127.0.0.1: local-kms (in-process), gofakes3 (in-process) and
// amazon-ec2-metadata-mock (IMDSv2 only, as a child process). KMS can be taken down and
// brought back, and can answer chosen operations with AccessDenied, which local-kms itself
// never does because it does not enforce key policies.
package emu

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/kms"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	s3types "github.com/aws/aws-sdk-go-v2/service/s3/types"
	"github.com/aws/smithy-go/middleware"
	"github.com/johannesboyne/gofakes3"
	"github.com/johannesboyne/gofakes3/backend/s3mem"
	kmsconfig "github.com/nsmithuk/local-kms/src/config"
	kmsdata "github.com/nsmithuk/local-kms/src/data"
	kmshandler "github.com/nsmithuk/local-kms/src/handler"
	"github.com/sirupsen/logrus"

	"github.com/storecrypt/storecrypt/instance-agent/s3object"
	"github.com/storecrypt/storecrypt/internal/fakeaws/apimodel"
	"github.com/storecrypt/storecrypt/test/vm/wire"
)

// The identity the IMDS mock reports by default.
const (
	Region     = "us-east-1"
	InstanceID = "i-1234567890abcdef0"
	// InstanceARN is InstanceID's ARN, as the agent builds it from IMDS.
	InstanceARN = "arn:aws:ec2:" + Region + ":" + Account + ":instance/" + InstanceID
	Account     = "111122223333"
	// RoleAccessKeyID is the access key of the instance role's credentials IMDS serves;
	// requests signed with anything else were not signed as the instance.
	RoleAccessKeyID = "ASIAIMDSINSTANCEROLE"
)

// Emulators is one set of running emulators.
type Emulators struct {
	KMSAddr, S3Addr, IMDSAddr string
	KMS                       *kms.Client
	S3                        *s3.Client
	// Models keeps the requests that broke their API model: every KMS request the
	// emulator receives (the agent's, in the guest too) and S3's client's.
	Models apimodel.Log

	kmsSrv  *http.Server
	kmsDB   *kmsdata.Database
	mu      sync.Mutex
	denied  map[string]bool // KMS operations answered with AccessDeniedException
	imds    *exec.Cmd
	s3srv   *httptest.Server
	kmsDown bool
	owners  map[string]string   // buckets of an account other than Account
	configs map[string]string   // "<bucket>?<subresource>" → the body PUT there (policy, publicAccessBlock, encryption)
	signers map[string][]string // service → access key id of each request, since TakeAccessKeys
}

var kmsConfigMu sync.Mutex

// Start runs the emulators until the test ends, and fails it if a request broke its API
// model.
func Start(t testing.TB) *Emulators {
	t.Helper()
	e, err := New(t.TempDir(), "")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(e.Close)
	e.Models.FailOn(t)
	return e
}

// New runs the emulators, keeping their state in dir, until Close. IMDS reports
// instanceID, or InstanceID when it is empty.
func New(dir, instanceID string) (*Emulators, error) {
	e := &Emulators{denied: map[string]bool{}}
	// local-kms keeps region and account in package variables: one configuration per
	// process, set under a lock because tests may start emulators in parallel.
	kmsConfigMu.Lock()
	kmsconfig.AWSRegion, kmsconfig.AWSAccountId = Region, Account
	kmsConfigMu.Unlock()
	e.kmsDB = kmsdata.NewDatabase(filepath.Join(dir, "kms"))
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	e.KMSAddr = ln.Addr().String()
	e.serveKMS(ln)

	creds := credentials.NewStaticCredentialsProvider("test", "test", "")
	e.startS3(creds)
	if instanceID == "" {
		instanceID = InstanceID
	}
	if err := e.startIMDS(dir, instanceID); err != nil {
		e.Close()
		return nil, err
	}
	e.KMS = kms.New(kms.Options{Region: Region, Credentials: creds, BaseEndpoint: aws.String("http://" + e.KMSAddr)})
	return e, nil
}

// StartS3 runs S3 alone (no KMS, no IMDS) until the test ends, for what needs only
// buckets, and fails the test if a request broke S3's model.
func StartS3(t testing.TB) *Emulators {
	t.Helper()
	e := &Emulators{}
	e.startS3(credentials.NewStaticCredentialsProvider("test", "test", ""))
	t.Cleanup(e.Close)
	e.Models.FailOn(t)
	return e
}

func (e *Emulators) startS3(creds aws.CredentialsProvider) {
	e.s3srv = httptest.NewServer(e.recordSigner(e.expectedOwner(e.bucketConfig(gofakes3.New(s3mem.New()).Server()))))
	e.S3Addr = strings.TrimPrefix(e.s3srv.URL, "http://")
	// KMS's requests are checked where the emulator receives them; S3's (REST, its members
	// in the path and headers) only from this client.
	e.S3 = s3.New(s3.Options{Region: Region, Credentials: creds, BaseEndpoint: aws.String("http://" + e.S3Addr), UsePathStyle: true,
		APIOptions: []func(*middleware.Stack) error{apimodel.Validate(e.Models.Report)}})
}

// bucketSubresources are the bucket configurations gofakes3 lacks (it takes a PUT of
// any of them for a CreateBucket): the emulator keeps each as the document PUT, and
// answers a GET of one never PUT with S3's error for it.
var bucketSubresources = map[string]string{
	"policy":            "NoSuchBucketPolicy",
	"publicAccessBlock": "NoSuchPublicAccessBlockConfiguration",
	"encryption":        "ServerSideEncryptionConfigurationNotFoundError",
}

func (e *Emulators) bucketConfig(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		bucket, object, _ := strings.Cut(strings.TrimPrefix(r.URL.Path, "/"), "/")
		sub, missing := "", ""
		for name, code := range bucketSubresources {
			if r.URL.Query().Has(name) {
				sub, missing = name, code
			}
		}
		if sub == "" || object != "" || bucket == "" {
			next.ServeHTTP(w, r)
			return
		}
		// The bucket must exist: ask gofakes3 with a HEAD of it.
		probe := httptest.NewRecorder()
		next.ServeHTTP(probe, httptest.NewRequest(http.MethodHead, "/"+bucket, nil))
		if probe.Code != http.StatusOK {
			s3Error(w, http.StatusNotFound, "NoSuchBucket")
			return
		}
		key := bucket + "?" + sub
		switch r.Method {
		case http.MethodPut:
			body, err := io.ReadAll(r.Body)
			if err != nil {
				w.WriteHeader(http.StatusBadRequest)
				return
			}
			e.mu.Lock()
			if e.configs == nil {
				e.configs = map[string]string{}
			}
			e.configs[key] = string(body)
			e.mu.Unlock()
			// PutBucketPolicy answers 204 No Content; the others 200.
			if sub == "policy" {
				w.WriteHeader(http.StatusNoContent)
			}
		case http.MethodGet:
			e.mu.Lock()
			body, ok := e.configs[key]
			e.mu.Unlock()
			if !ok {
				s3Error(w, http.StatusNotFound, missing)
				return
			}
			_, _ = io.WriteString(w, body)
		default:
			w.WriteHeader(http.StatusMethodNotAllowed)
		}
	})
}

func s3Error(w http.ResponseWriter, status int, code string) {
	w.Header().Set("Content-Type", "application/xml")
	w.WriteHeader(status)
	_, _ = fmt.Fprintf(w, `<?xml version="1.0" encoding="UTF-8"?><Error><Code>%s</Code><Message>%s</Message></Error>`, code, code)
}

// BucketConfig is the document last PUT to bucket's subresource (policy,
// publicAccessBlock, encryption), or "" when none was.
func (e *Emulators) BucketConfig(bucket, subresource string) string {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.configs[bucket+"?"+subresource]
}

func (e *Emulators) serveKMS(ln net.Listener) {
	e.kmsSrv = &http.Server{Handler: e.recordSigner(http.HandlerFunc(e.handleKMS)), ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = e.kmsSrv.Serve(ln) }()
}

func (e *Emulators) handleKMS(w http.ResponseWriter, r *http.Request) {
	op := strings.TrimPrefix(r.Header.Get("X-Amz-Target"), "TrentService.")
	body, err := io.ReadAll(r.Body)
	if err != nil {
		w.WriteHeader(http.StatusBadRequest)
		return
	}
	r.Body = io.NopCloser(bytes.NewReader(body))
	// KMS's JSON keys are the model's member names: the request is checked as sent.
	if err := apimodel.CheckJSON("KMS", op, body); err != nil {
		e.Models.Report(err)
	}
	e.mu.Lock()
	deny := e.denied[op]
	e.mu.Unlock()
	if deny {
		w.Header().Set("Content-Type", "application/x-amz-json-1.1")
		w.WriteHeader(http.StatusBadRequest)
		fmt.Fprintf(w, `{"__type":"AccessDeniedException","message":"User: arn:aws:sts::%s:assumed-role/test/i is not authorized to perform: kms:%s because no resource-based policy allows the kms:%s action"}`, Account, op, op)
		return
	}
	e.dispatchKMS(w, r, op)
}

// dispatchKMS calls local-kms's handler for op the way its own server does, but with a
// quiet logger: its package logger prints every call in colour to stderr.
func (e *Emulators) dispatchKMS(w http.ResponseWriter, r *http.Request, op string) {
	w.Header().Set("Content-Type", "application/x-amz-json-1.1")
	h := kmshandler.NewRequestHandler(r, quietLog, e.kmsDB)
	method := reflect.ValueOf(h).MethodByName(op)
	if !method.IsValid() || method.Type().NumIn() != 0 || method.Type().NumOut() != 1 {
		w.WriteHeader(http.StatusNotImplemented)
		fmt.Fprintf(w, "local-kms does not implement %q", op)
		return
	}
	resp, ok := method.Call(nil)[0].Interface().(kmshandler.Response)
	if !ok {
		w.WriteHeader(http.StatusInternalServerError)
		return
	}
	w.WriteHeader(resp.Code)
	fmt.Fprint(w, resp.Body)
}

var quietLog = func() *logrus.Logger {
	l := logrus.New()
	l.SetOutput(io.Discard)
	return l
}()

// Deny makes KMS answer op (GenerateDataKey, Decrypt) with AccessDeniedException, as a key
// policy without the instance role would; Deny with no ops lifts every denial.
func (e *Emulators) Deny(ops ...string) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.denied = map[string]bool{}
	for _, op := range ops {
		e.denied[op] = true
	}
}

// KMSDown closes KMS's port: connections are refused, as when no route or endpoint exists.
func (e *Emulators) KMSDown() {
	e.mu.Lock()
	defer e.mu.Unlock()
	if !e.kmsDown {
		_ = e.kmsSrv.Close()
		e.kmsDown = true
	}
}

// KMSUp listens on the same port again.
func (e *Emulators) KMSUp() error {
	e.mu.Lock()
	defer e.mu.Unlock()
	if !e.kmsDown {
		return nil
	}
	ln, err := net.Listen("tcp", e.KMSAddr)
	if err != nil {
		return fmt.Errorf("reopening KMS on %s: %w", e.KMSAddr, err)
	}
	e.serveKMS(ln)
	e.kmsDown = false
	return nil
}

// CreateKey makes a symmetric KMS key and returns its ARN.
func (e *Emulators) CreateKey(ctx context.Context) (string, error) {
	out, err := e.KMS.CreateKey(ctx, &kms.CreateKeyInput{Description: aws.String("storecrypt test key")})
	if err != nil {
		return "", fmt.Errorf("creating a KMS key: %w", err)
	}
	return aws.ToString(out.KeyMetadata.Arn), nil
}

// OwnBucket makes account the owner of bucket; every other bucket is Account's.
func (e *Emulators) OwnBucket(bucket, account string) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.owners == nil {
		e.owners = map[string]string{}
	}
	e.owners[bucket] = account
}

// expectedOwner is S3's check that gofakes3 lacks: "If the account ID that you provide
// does not match the actual owner of the bucket, the request fails with the HTTP status
// code 403 Forbidden (access denied)" (x-amz-expected-bucket-owner). Buckets are
// addressed path-style here.
func (e *Emulators) expectedOwner(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		bucket, _, _ := strings.Cut(strings.TrimPrefix(r.URL.Path, "/"), "/")
		e.mu.Lock()
		owner, ok := e.owners[bucket]
		e.mu.Unlock()
		if !ok {
			owner = Account
		}
		if want := r.Header.Get("X-Amz-Expected-Bucket-Owner"); want != "" && want != owner {
			s3Error(w, http.StatusForbidden, "AccessDenied")
			return
		}
		next.ServeHTTP(w, r)
	})
}

// recordSigner notes who signed each request: the access key id and service of the
// SigV4 credential scope ("Credential=AKID/date/region/service/aws4_request"), which
// neither local-kms nor gofakes3 checks.
func (e *Emulators) recordSigner(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, scope, _ := strings.Cut(r.Header.Get("Authorization"), "Credential=")
		scope, _, _ = strings.Cut(scope, ",")
		if parts := strings.Split(scope, "/"); len(parts) == 5 {
			e.mu.Lock()
			if e.signers == nil {
				e.signers = map[string][]string{}
			}
			e.signers[parts[3]] = append(e.signers[parts[3]], parts[0])
			e.mu.Unlock()
		}
		next.ServeHTTP(w, r)
	})
}

// TakeAccessKeys returns, per service (kms, s3), the access key id that signed each
// request since the last call, and forgets them.
func (e *Emulators) TakeAccessKeys() map[string][]string {
	e.mu.Lock()
	defer e.mu.Unlock()
	out := e.signers
	e.signers = nil
	return out
}

// S3Reader is the agent's own S3 client (package s3object) pointed at the emulator, as
// AWS_ENDPOINT_URL_S3 points it in the guest.
func (e *Emulators) S3Reader() *s3object.Client {
	return &s3object.Client{HTTP: http.DefaultClient, Credentials: credentials.NewStaticCredentialsProvider("test", "test", ""),
		Region: Region, Endpoint: "http://" + e.S3Addr}
}

// PutObject stores body at bucket/key, creating the bucket when needed.
func (e *Emulators) PutObject(ctx context.Context, bucket, key string, body []byte) error {
	if _, err := e.S3.CreateBucket(ctx, &s3.CreateBucketInput{Bucket: aws.String(bucket)}); err != nil {
		var owned interface{ ErrorCode() string }
		if !errors.As(err, &owned) || !strings.Contains(owned.ErrorCode(), "BucketAlready") {
			return fmt.Errorf("creating bucket %s: %w", bucket, err)
		}
	}
	// The stack's secret bucket is versioned; so is this one.
	if _, err := e.S3.PutBucketVersioning(ctx, &s3.PutBucketVersioningInput{Bucket: aws.String(bucket),
		VersioningConfiguration: &s3types.VersioningConfiguration{Status: s3types.BucketVersioningStatusEnabled}}); err != nil {
		return fmt.Errorf("versioning bucket %s: %w", bucket, err)
	}
	_, err := e.S3.PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String(bucket), Key: aws.String(key), Body: strings.NewReader(string(body))})
	return err
}

// startIMDS builds (once, cached by the go command) and runs amazon-ec2-metadata-mock.
func (e *Emulators) startIMDS(dir, instanceID string) error {
	bin := filepath.Join(dir, "ec2-metadata-mock")
	build := exec.Command("go", "build", "-o", bin, "github.com/aws/amazon-ec2-metadata-mock/cmd/ec2-metadata-mock")
	if out, err := build.CombinedOutput(); err != nil {
		return fmt.Errorf("building ec2-metadata-mock: %w: %s", err, out)
	}
	port, err := freePort()
	if err != nil {
		return err
	}
	e.IMDSAddr = fmt.Sprintf("127.0.0.1:%d", port)
	// The identity document names the same instance, account and region as the rest of
	// the emulators, so the agent builds the instance ARN contract.InstanceARN("aws", Region, Account, instanceID).
	cfg, err := json.Marshal(map[string]any{
		"metadata": map[string]any{"values": map[string]any{"instance-id": instanceID, "services-partition": "aws",
			"iam-security-credentials-role": "storecrypt-instance",
			"iam-security-credentials": map[string]any{"Code": "Success", "Type": "AWS-HMAC", "LastUpdated": "2026-01-01T00:00:00Z",
				"AccessKeyId": RoleAccessKeyID, "SecretAccessKey": "instance-role-secret", "Token": "instance-role-token", "Expiration": "2099-01-01T00:00:00Z"}}},
		"dynamic": map[string]any{"values": map[string]any{"instance-identity-document": map[string]any{
			"accountId": Account, "instanceId": instanceID, "region": Region, "availabilityZone": Region + "a",
			"architecture": "x86_64", "instanceType": "i4i.large", "version": "2017-09-30",
		}}},
	})
	if err != nil {
		return err
	}
	cfgPath := filepath.Join(dir, "aemm-config.json")
	if err := os.WriteFile(cfgPath, cfg, 0o644); err != nil {
		return err
	}
	e.imds = exec.Command(bin, "-n", "127.0.0.1", "-p", fmt.Sprint(port), "-I", "-c", cfgPath)
	e.imds.Dir = dir
	e.imds.Stdout, e.imds.Stderr = io.Discard, io.Discard
	e.imds.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := e.imds.Start(); err != nil {
		return fmt.Errorf("starting ec2-metadata-mock: %w", err)
	}
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		if c, err := net.Dial("tcp", e.IMDSAddr); err == nil {
			c.Close()
			return nil
		}
		time.Sleep(50 * time.Millisecond)
	}
	return errors.New("ec2-metadata-mock did not start listening")
}

func freePort() (int, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port, nil
}

// Close stops every emulator.
func (e *Emulators) Close() {
	if e.kmsSrv != nil {
		_ = e.kmsSrv.Close()
	}
	if e.kmsDB != nil {
		e.kmsDB.Close()
	}
	if e.s3srv != nil {
		e.s3srv.Close()
	}
	if e.imds != nil && e.imds.Process != nil {
		_ = e.imds.Process.Kill()
		_ = e.imds.Wait()
	}
}

// Env points the agent at the emulators from inside the guest, through the guest's
// forwards (see Forwards): the SDK's own endpoint variables, nothing storecrypt-specific.
func Env() []string {
	return []string{
		fmt.Sprintf("AWS_ENDPOINT_URL_KMS=http://%s:%d", wire.HostIP, GuestKMSPort),
		fmt.Sprintf("AWS_ENDPOINT_URL_S3=http://%s:%d", wire.HostIP, GuestS3Port),
	}
}

// GuestPorts are the guest-side ports of KMS and S3 used by Env.
const (
	GuestKMSPort = 4566
	GuestS3Port  = 4567
)

// Forwards are the guest's ways to the emulators: IMDS at its link-local address, as on
// EC2, and KMS and S3 at the ports Env names.
func (e *Emulators) Forwards() []wire.Forward {
	return []wire.Forward{
		{GuestIP: "169.254.169.254", GuestPort: 80, HostAddr: e.IMDSAddr},
		{GuestPort: GuestKMSPort, HostAddr: e.KMSAddr},
		{GuestPort: GuestS3Port, HostAddr: e.S3Addr},
	}
}
