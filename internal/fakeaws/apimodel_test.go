package fakeaws

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	ddbtypes "github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"github.com/aws/aws-sdk-go-v2/service/kms"
	"github.com/aws/smithy-go/middleware"

	"github.com/storecrypt/storecrypt/internal/fakeaws/apimodel"
)

// recorder is a TB that keeps what the world reports.
type recorder struct {
	errs     []string
	cleanups []func()
}

func (r *recorder) Helper() {}
func (r *recorder) Errorf(format string, args ...any) {
	r.errs = append(r.errs, fmt.Sprintf(format, args...))
}
func (r *recorder) Cleanup(f func()) { r.cleanups = append(r.cleanups, f) }

func (r *recorder) end() {
	for _, f := range slices.Backward(r.cleanups) {
		f()
	}
}

// TestModelFailsTheTest: a request that breaks its API model, sent through a real client
// to the world or through Record to an emulator, fails the test that built the world at
// its end, even when the code swallowed the error.
func TestModelFailsTheTest(t *testing.T) {
	for _, tc := range []struct {
		name string
		send func(w *World) error
		want string // in the violation; "" for none
	}{
		{"a valid request", func(w *World) error {
			_, err := kms.NewFromConfig(w.Config()).Encrypt(context.Background(), &kms.EncryptInput{KeyId: aws.String(KeyARN), Plaintext: []byte("x")})
			return err
		}, ""},
		{"the fake answers", func(w *World) error {
			_, err := kms.NewFromConfig(w.Config()).Encrypt(context.Background(), &kms.EncryptInput{KeyId: aws.String(KeyARN), Plaintext: make([]byte, 4097)})
			return err
		}, `EncryptInput.Plaintext: 4097 bytes, want at most 4096`},
		{"an emulator answers (Record)", func(w *World) error {
			c := dynamodb.New(dynamodb.Options{Region: Region, BaseEndpoint: aws.String("http://127.0.0.1:1"),
				APIOptions: []func(*middleware.Stack) error{w.Record}})
			_, err := c.GetItem(context.Background(), &dynamodb.GetItemInput{TableName: aws.String(""), Key: map[string]ddbtypes.AttributeValue{}})
			return err
		}, `GetItemInput.TableName: 0 characters, want at least`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := &recorder{}
			w := NewAccount(r)
			err := tc.send(w)
			r.end()
			if tc.want == "" {
				if err != nil || len(r.errs) > 0 {
					t.Fatalf("got %v and %q, want no error", err, r.errs)
				}
				return
			}
			if len(r.errs) != 1 || !strings.Contains(r.errs[0], tc.want) {
				t.Errorf("got the test failed with %q, want once with %q", r.errs, tc.want)
			}
		})
	}
}

// TestUncheckedPatterns pins the patterns of the operations the fakes answer that Go's
// RE2 cannot compile (lookarounds and Java's \p{Print}), so that the validator cannot
// hold a request to them. Each is listed with why it is harmless here; a new one fails
// until someone decides.
func TestUncheckedPatterns(t *testing.T) {
	ops := slices.Sorted(func(yield func(string) bool) {
		for k := range handlers {
			if !yield(k) {
				return
			}
		}
	})
	// The DynamoDB operations the ledger sends through Record, and the emulators'.
	ops = append(ops, "DynamoDB.GetItem", "DynamoDB.PutItem", "DynamoDB.UpdateItem", "DynamoDB.Query", "DynamoDB.CreateTable",
		"DynamoDB.DescribeTable", "KMS.CreateKey", "KMS.Encrypt", "KMS.GenerateDataKey", "S3.PutObject", "S3.GetObject", "S3.CreateBucket", "S3.PutBucketVersioning")
	want := map[string]string{
		`SSM.SendCommand AlarmName: ^(?!\s*$).+`: "only in AlarmConfiguration, which storecrypt never sends",
	}
	got := map[string]string{}
	for _, key := range ops {
		service, op, _ := strings.Cut(key, ".")
		unchecked, err := apimodel.Unchecked(service, op)
		if err != nil {
			t.Fatal(err)
		}
		for _, p := range unchecked {
			got[key+" "+p] = ""
		}
	}
	for k := range got {
		if _, ok := want[k]; !ok {
			t.Errorf("got %s unchecked, want it listed here with a reason", k)
		}
	}
	for k := range want {
		if _, ok := got[k]; !ok {
			t.Errorf("got %s checked now, want it off this list", k)
		}
	}
}
