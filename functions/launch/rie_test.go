package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/storecrypt/storecrypt/events"
	"github.com/storecrypt/storecrypt/internal/contract"
)

// TestUnderRIE builds this function as Lambda would run it (bootstrap, -tags lambda.norpc)
// for the host, runs it under the AWS Lambda Runtime Interface Emulator, and invokes it
// with a sample SQS event: the binary starts, reads its configuration and answers. The
// event is a stopped-state change, which the function answers without calling AWS.
func TestUnderRIE(t *testing.T) {
	dir := t.TempDir()
	bootstrap := filepath.Join(dir, "bootstrap")
	rie := filepath.Join(dir, "aws-lambda-rie")
	for _, b := range [][]string{
		{"build", "-tags", "lambda.norpc", "-o", bootstrap, "."},
		{"build", "-o", rie, "github.com/aws/aws-lambda-runtime-interface-emulator/cmd/aws-lambda-rie"},
	} {
		cmd := exec.Command("go", b...)
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("go %v: %v\n%s", b, err, out)
		}
	}
	body, err := events.Read("ec2-stopped.json")
	if err != nil {
		t.Fatal(err)
	}
	payload := fmt.Sprintf(`{"Records":[{"messageId":"m-1","body":%q,"eventSource":"aws:sqs"}]}`, body)
	env := []string{
		contract.EnvKMSKeyARN + "=arn:aws:kms:us-east-1:111122223333:key/11111111-2222-4333-8444-555555555555",
		contract.EnvDocumentName + "=storecrypt-apply",
		"AWS_REGION=us-east-1", "AWS_ACCESS_KEY_ID=test", "AWS_SECRET_ACCESS_KEY=test",
	}

	t.Run("answers", func(t *testing.T) {
		var colds []time.Duration
		for range 5 {
			out, cold, logs := invoke(t, rie, bootstrap, env, payload)
			if strings.TrimSpace(out) != `{"batchItemFailures":[]}` {
				t.Fatalf("answer %q, want no batch item failures\nlogs:\n%s", out, logs)
			}
			if !strings.Contains(logs, `"msg":"event needs no action"`) || !strings.Contains(logs, `"event_id":"m-1"`) {
				t.Errorf("logs do not show the event handled:\n%s", logs)
			}
			colds = append(colds, cold)
		}
		slices.Sort(colds)
		t.Logf("cold start to first answer under RIE: median %s (min %s, max %s)", colds[2], colds[0], colds[4])
	})
	t.Run("bad configuration", func(t *testing.T) {
		_, _, logs := invoke(t, rie, bootstrap, env[1:], payload)
		if !strings.Contains(logs, contract.EnvKMSKeyARN) || !strings.Contains(logs, "want a KMS key ARN") {
			t.Errorf("init error does not name the variable:\n%s", logs)
		}
	})
}

// invoke starts RIE with the function and posts one event; it returns the answer, the
// time from starting the process to the answer, and everything the process logged.
func invoke(t *testing.T, rie, bootstrap string, env []string, payload string) (string, time.Duration, string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	api, emu := freeAddr(t), freeAddr(t)
	cmd := exec.CommandContext(ctx, rie, "--runtime-interface-emulator-address", emu, "--runtime-api-address", api, bootstrap)
	cmd.Env = append(os.Environ(), env...)
	var logs syncBuffer
	cmd.Stdout, cmd.Stderr = &logs, &logs
	start := time.Now()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = cmd.Process.Kill(); _ = cmd.Wait() }()
	url := "http://" + emu + "/2015-03-31/functions/function/invocations"
	for {
		resp, err := http.Post(url, "application/json", strings.NewReader(payload))
		if err == nil {
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			return string(b), time.Since(start), logs.String()
		}
		if ctx.Err() != nil {
			t.Fatalf("RIE never answered: %v\n%s", err, logs.String())
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}
