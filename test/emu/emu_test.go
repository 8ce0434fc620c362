package emu

import (
	"context"
	"net/http"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	ddbtypes "github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"github.com/aws/aws-sdk-go-v2/service/s3"
)

// TestModelsChecked: a KMS request that breaks KMS's API model is kept in Models where the
// emulator receives it, whoever sent it (the agent's own client, in the guest too), and
// an S3 request from the emulators' client before it is sent.
func TestModelsChecked(t *testing.T) {
	e, err := New(t.TempDir(), "")
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	ctx := context.Background()
	if _, err := e.CreateKey(ctx); err != nil {
		t.Fatalf("a valid request: %v", err)
	}
	if got := e.Models.Violations(); len(got) != 0 {
		t.Fatalf("got %v after a valid request, want none", got)
	}
	for _, tc := range []struct {
		name string
		send func() error
		want string
	}{
		{"KMS, as received", func() error {
			req, err := http.NewRequestWithContext(ctx, http.MethodPost, "http://"+e.KMSAddr, strings.NewReader(`{"KeyId":"k","NumberOfBytes":2048}`))
			if err != nil {
				return err
			}
			req.Header.Set("X-Amz-Target", "TrentService.GenerateDataKey")
			req.Header.Set("Content-Type", "application/x-amz-json-1.1")
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				return err
			}
			return resp.Body.Close()
		}, "GenerateDataKeyInput.NumberOfBytes: 2048, want at most 1024"},
		{"S3, from its client", func() error {
			_, _ = e.S3.GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String("b"), Key: aws.String("")})
			return nil
		}, "GetObjectInput.Key: 0 characters, want at least 1"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := len(e.Models.Violations())
			if err := tc.send(); err != nil {
				t.Fatal(err)
			}
			got := e.Models.Violations()[before:]
			if len(got) != 1 || !strings.Contains(got[0].Error(), tc.want) {
				t.Errorf("got %v, want one violation with %q", got, tc.want)
			}
		})
	}
}

// TestDynamoDBModelChecked: the dynalite client's requests are held to DynamoDB's model.
func TestDynamoDBModelChecked(t *testing.T) {
	d, err := NewDynamoDB()
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	_, _ = d.Client.GetItem(context.Background(), &dynamodb.GetItemInput{TableName: aws.String(""), Key: map[string]ddbtypes.AttributeValue{}})
	if got := d.Models.Violations(); len(got) != 1 || !strings.Contains(got[0].Error(), "GetItemInput.TableName: 0 characters") {
		t.Errorf("got %v, want the request kept", got)
	}
}
