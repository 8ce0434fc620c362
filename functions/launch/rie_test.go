package main

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/storecrypt/storecrypt/events"
	"github.com/storecrypt/storecrypt/internal/contract"
	"github.com/storecrypt/storecrypt/test/rie"
)

// TestUnderRIE builds this function as Lambda would run it (bootstrap, -tags lambda.norpc)
// for the host, runs it under the AWS Lambda Runtime Interface Emulator, and invokes it
// with a sample SQS event: the binary starts, reads its configuration and answers. The
// event is a stopped-state change, which the function answers without calling AWS.
func TestUnderRIE(t *testing.T) {
	bootstrap, emulator, err := rie.Build(t.TempDir(), ".")
	if err != nil {
		t.Fatal(err)
	}
	body, err := events.Read("ec2-stopped.json")
	if err != nil {
		t.Fatal(err)
	}
	payload := fmt.Sprintf(`{"Records":[{"messageId":"m-1","body":%q,"eventSource":"aws:sqs"}]}`, body)
	env := []string{
		contract.EnvKMSKeyARN + "=arn:aws:kms:us-east-1:111122223333:key/11111111-2222-4333-8444-555555555555",
		contract.EnvDocumentName + "=storecrypt-apply",
		contract.EnvDocumentDigest + "=" + strings.Repeat("0", 64),
		contract.EnvLaunchRole + "=arn:aws:iam::111122223333:role" + contract.FunctionRolePath + "storecrypt-launch",
		"AWS_REGION=us-east-1", "AWS_ACCESS_KEY_ID=test", "AWS_SECRET_ACCESS_KEY=test",
	}

	t.Run("answers", func(t *testing.T) {
		var colds []time.Duration
		for range 5 {
			inv, err := rie.Invoke(context.Background(), emulator, bootstrap, env, payload)
			if err != nil {
				t.Fatal(err)
			}
			if strings.TrimSpace(inv.Answer) != `{"batchItemFailures":[]}` {
				t.Fatalf("answer %q, want no batch item failures\nlogs:\n%s", inv.Answer, inv.Logs)
			}
			if !strings.Contains(inv.Logs, `"msg":"event needs no action"`) || !strings.Contains(inv.Logs, `"event_id":"m-1"`) {
				t.Errorf("logs do not show the event handled:\n%s", inv.Logs)
			}
			colds = append(colds, inv.Cold)
		}
		slices.Sort(colds)
		t.Logf("cold start to first answer under RIE: median %s (min %s, max %s)", colds[2], colds[0], colds[4])
	})
	t.Run("bad configuration", func(t *testing.T) {
		inv, err := rie.Invoke(context.Background(), emulator, bootstrap, env[1:], payload)
		if err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(inv.Logs, contract.EnvKMSKeyARN) || !strings.Contains(inv.Logs, "want a KMS key ARN") {
			t.Errorf("init error does not name the variable:\n%s", inv.Logs)
		}
	})
}
