package apimodel_test

import (
	"compress/gzip"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	ddbtypes "github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"github.com/aws/aws-sdk-go-v2/service/kms"
	kmstypes "github.com/aws/aws-sdk-go-v2/service/kms/types"
	"github.com/aws/aws-sdk-go-v2/service/securityhub"
	shtypes "github.com/aws/aws-sdk-go-v2/service/securityhub/types"
	"github.com/aws/aws-sdk-go-v2/service/ssm"
	"github.com/aws/smithy-go/middleware"

	"github.com/storecrypt/storecrypt/internal/fakeaws/apimodel"
)

func finding(productFields map[string]string) *securityhub.BatchImportFindingsInput {
	now := time.Now().UTC().Format(time.RFC3339)
	return &securityhub.BatchImportFindingsInput{Findings: []shtypes.AwsSecurityFinding{{
		SchemaVersion: aws.String("2018-10-08"), Id: aws.String("i-1"), ProductArn: aws.String("arn:aws:securityhub:us-east-1:111122223333:product/111122223333/default"),
		GeneratorId: aws.String("storecrypt"), AwsAccountId: aws.String("111122223333"), CreatedAt: &now, UpdatedAt: &now,
		Title: aws.String("t"), Description: aws.String("d"), Resources: []shtypes.Resource{{Type: aws.String("AwsEc2Instance"), Id: aws.String("i-1")}},
		ProductFields: productFields,
	}}}
}

// notEncrypt is Encrypt's input with a member the model does not have.
type notEncrypt struct {
	KeyId *string //nolint:revive // the model's member name, as the SDK spells it
	Bogus *string
}

// TestRules: each rule of the model fails a request that breaks it, and names where.
func TestRules(t *testing.T) {
	for _, tc := range []struct {
		name, service, op string
		input             any    // a typed SDK input, or a JSON body as a string
		want              string // in the error; "" for none
	}{
		{"valid", "KMS", "Encrypt", &kms.EncryptInput{KeyId: aws.String("alias/a"), Plaintext: []byte("x")}, ""},
		{"required member missing", "KMS", "Encrypt", &kms.EncryptInput{Plaintext: []byte("x")}, "EncryptInput.KeyId: required member missing"},
		{"string under its min length", "KMS", "Encrypt", &kms.EncryptInput{KeyId: aws.String(""), Plaintext: []byte("x")}, "EncryptInput.KeyId: 0 characters, want at least 1"},
		{"string over its max length", "KMS", "Encrypt", &kms.EncryptInput{KeyId: aws.String(strings.Repeat("é", 2049)), Plaintext: []byte("x")}, "2049 characters, want at most 2048"},
		{"blob over its max length", "KMS", "Encrypt", &kms.EncryptInput{KeyId: aws.String("k"), Plaintext: make([]byte, 4097)}, "EncryptInput.Plaintext: 4097 bytes, want at most 4096"},
		{"enum", "KMS", "Encrypt", &kms.EncryptInput{KeyId: aws.String("k"), Plaintext: []byte("x"), EncryptionAlgorithm: "AES"}, `EncryptInput.EncryptionAlgorithm: "AES", want one of`},
		{"list over its max size", "KMS", "Encrypt", &kms.EncryptInput{KeyId: aws.String("k"), Plaintext: []byte("x"), GrantTokens: make([]string, 11)}, "EncryptInput.GrantTokens: 11 entries, want at most 10"},
		{"list member checked", "KMS", "Encrypt", &kms.EncryptInput{KeyId: aws.String("k"), Plaintext: []byte("x"), GrantTokens: []string{""}}, "EncryptInput.GrantTokens[0]: 0 characters"},
		{"number under its range", "KMS", "GenerateDataKey", &kms.GenerateDataKeyInput{KeyId: aws.String("k"), NumberOfBytes: aws.Int32(0)}, "GenerateDataKeyInput.NumberOfBytes: 0, want at least 1"},
		{"number over its range", "KMS", "GenerateDataKey", &kms.GenerateDataKeyInput{KeyId: aws.String("k"), NumberOfBytes: aws.Int32(1025)}, "1025, want at most 1024"},
		{"valid enum", "KMS", "GenerateDataKey", &kms.GenerateDataKeyInput{KeyId: aws.String("k"), KeySpec: kmstypes.DataKeySpecAes256}, ""},
		{"map under its min size", "SecurityHub", "TagResource", &securityhub.TagResourceInput{ResourceArn: aws.String("arn"), Tags: map[string]string{}}, "TagResourceInput.Tags: 0 entries, want at least 1"},
		{"list at its max size", "SSM", "SendCommand", &ssm.SendCommandInput{DocumentName: aws.String("storecrypt-encrypt"), InstanceIds: make50("i-0123456789abcdef0")}, ""},
		{"valid finding", "SecurityHub", "BatchImportFindings", finding(map[string]string{"storecrypt/reason": "no-key"}), ""},
		{"pattern: an empty map value", "SecurityHub", "BatchImportFindings", finding(map[string]string{"storecrypt/reason": ""}), `Findings[0].ProductFields["storecrypt/reason"]: "" does not match pattern .*\S.*`},
		{"pattern: found anywhere in the value", "SecurityHub", "BatchImportFindings", finding(map[string]string{"storecrypt/reason": " a "}), ""},
		{"pattern: found on any line", "SecurityHub", "BatchImportFindings", finding(map[string]string{"storecrypt/reason": "one\ntwo"}), ""},
		{"pattern: a blank map key", "SecurityHub", "BatchImportFindings", finding(map[string]string{" ": "x"}), `ProductFields[" "] (key): " " does not match`},
		{"nested required member", "SecurityHub", "BatchImportFindings", &securityhub.BatchImportFindingsInput{Findings: []shtypes.AwsSecurityFinding{{}}}, "Findings[0].AwsAccountId: required member missing"},
		{"unknown member (typed)", "KMS", "Encrypt", &notEncrypt{aws.String("k"), aws.String("b")}, "EncryptInput.Bogus: member not in the model"},
		{"a union", "DynamoDB", "GetItem", &dynamodb.GetItemInput{TableName: aws.String("ttt"), Key: map[string]ddbtypes.AttributeValue{
			"id": &ddbtypes.AttributeValueMemberS{Value: "x"}, "n": &ddbtypes.AttributeValueMemberL{Value: []ddbtypes.AttributeValue{&ddbtypes.AttributeValueMemberN{Value: "1"}}}}}, ""},
		{"a union's member checked", "DynamoDB", "GetItem", &dynamodb.GetItemInput{TableName: aws.String("ttt"), Key: map[string]ddbtypes.AttributeValue{
			"id": &ddbtypes.AttributeValueMemberM{Value: map[string]ddbtypes.AttributeValue{strings.Repeat("k", 65536): &ddbtypes.AttributeValueMemberNULL{Value: true}}}}}, `.M["`},
		{"valid JSON", "KMS", "Decrypt", `{"CiphertextBlob":"eA==","KeyId":"k","EncryptionContext":{"a":"b"}}`, ""},
		{"unknown member (JSON)", "KMS", "Decrypt", `{"CiphertextBlob":"eA==","Bogus":1}`, "DecryptInput.Bogus: member not in the model"},
		{"JSON blob under its min length", "KMS", "Decrypt", `{"CiphertextBlob":""}`, "DecryptInput.CiphertextBlob: 0 bytes, want at least 1"},
		{"JSON number over its range", "KMS", "GenerateDataKey", `{"KeyId":"k","NumberOfBytes":2048}`, "2048, want at most 1024"},
		{"JSON required member missing", "KMS", "GenerateDataKey", `{}`, "GenerateDataKeyInput.KeyId: required member missing"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var err error
			if body, ok := tc.input.(string); ok {
				err = apimodel.CheckJSON(tc.service, tc.op, []byte(body))
			} else {
				err = apimodel.Check(tc.service, tc.op, tc.input)
			}
			switch {
			case tc.want == "" && err != nil:
				t.Fatalf("got %v, want no violation", err)
			case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
				t.Fatalf("got %v, want a violation containing %q", err, tc.want)
			}
			var v *apimodel.Violation
			if tc.want != "" && !errors.As(err, &v) {
				t.Fatalf("got %T, want an *apimodel.Violation", err)
			}
		})
	}
}

func make50(s string) []string {
	out := make([]string, 50)
	for i := range out {
		out[i] = s
	}
	return out
}

// TestUnknownOperationOrService: a request no model describes is an error, never a pass.
func TestUnknownOperationOrService(t *testing.T) {
	for _, tc := range []struct{ service, op string }{{"KMS", "NoSuchOperation"}, {"No Such Service", "Encrypt"}} {
		if err := apimodel.Check(tc.service, tc.op, &kms.EncryptInput{}); err == nil {
			t.Errorf("%s %s: got no error, want one", tc.service, tc.op)
		}
	}
}

// TestDirsMatchModels: each SDK service id maps to the botocore directory whose model
// calls itself by that id.
func TestDirsMatchModels(t *testing.T) {
	for id, dir := range apimodel.Dirs {
		m, err := apimodel.Load(id)
		if err != nil {
			t.Fatal(err)
		}
		if m.Metadata.ServiceID != id {
			t.Errorf("%s: %s has serviceId %q, want %q", dir, m.File, m.Metadata.ServiceID, id)
		}
		t.Logf("%s: %s", id, m.File)
	}
}

// TestPatternsAreUnanchored: Smithy's @pattern is not implicitly anchored, so a value
// matches where the expression is found anywhere in it.
func TestPatternsAreUnanchored(t *testing.T) {
	m, err := apimodel.Load("SecurityHub")
	if err != nil {
		t.Fatal(err)
	}
	re, err := m.Pattern(`\S`)
	if err != nil {
		t.Fatal(err)
	}
	if !re.MatchString("  x  ") {
		t.Errorf(`got no match of \S in "  x  ", want one`)
	}
}

// TestValidateReports: through a real client, the API option reports a bad request once.
func TestValidateReports(t *testing.T) {
	var reported []error
	c := kms.New(kms.Options{Region: "us-east-1", Credentials: credentials.NewStaticCredentialsProvider("a", "b", ""),
		HTTPClient: sendNothing{},
		APIOptions: []func(*middleware.Stack) error{apimodel.Validate(func(err error) { reported = append(reported, err) })}})
	_, _ = c.Encrypt(context.Background(), &kms.EncryptInput{KeyId: aws.String("k"), Plaintext: make([]byte, 5000)})
	var v *apimodel.Violation
	if len(reported) != 1 || !errors.As(reported[0], &v) {
		t.Fatalf("got %v reported, want one violation", reported)
	}
}

type sendNothing struct{}

func (sendNothing) Do(*http.Request) (*http.Response, error) { return nil, errors.New("not sent") }

// TestModelsFromEnv: STORECRYPT_BOTOCORE_DATA names the data directory; the newest
// api-version is read, gzipped or not (Debian's older botocore has plain JSON); a
// directory without the model fails the check. Each case runs in a child process, since
// the directory is found once per process.
func TestModelsFromEnv(t *testing.T) {
	if os.Getenv("APIMODEL_CHILD") != "" {
		err := apimodel.Check("KMS", "Encrypt", &kms.EncryptInput{KeyId: aws.String("k"), Plaintext: []byte("x")})
		m, _ := apimodel.Load("KMS")
		if m != nil {
			fmt.Print(m.APIVersion + " ")
		}
		fmt.Print(err)
		return
	}
	real, err := apimodel.Load("KMS")
	if err != nil {
		t.Fatal(err)
	}
	plain := t.TempDir()
	for _, v := range []string{"2014-11-01", "2010-01-01"} {
		dir := filepath.Join(plain, "kms", v)
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, "service-2.json"), []byte(plainJSON(t, real.File)), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	for _, tc := range []struct{ name, dir, want string }{
		{"plain JSON, newest version", plain, "2014-11-01 <nil>"},
		{"no models", t.TempDir(), "reading botocore's models of kms"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cmd := exec.Command(os.Args[0], "-test.run=^TestModelsFromEnv$")
			cmd.Env = append(os.Environ(), "APIMODEL_CHILD=1", apimodel.EnvData+"="+tc.dir)
			out, err := cmd.Output()
			if err != nil {
				t.Fatalf("child: %v", err)
			}
			if !strings.Contains(string(out), tc.want) {
				t.Errorf("got %q, want %q", out, tc.want)
			}
		})
	}
}

// plainJSON is a model file's JSON, gzipped or not.
func plainJSON(t *testing.T, path string) string {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var r io.Reader = f
	if strings.HasSuffix(path, ".gz") {
		if r, err = gzip.NewReader(f); err != nil {
			t.Fatal(err)
		}
	}
	b, err := io.ReadAll(r)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}
