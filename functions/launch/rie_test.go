package main

import (
	"context"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/storecrypt/storecrypt/internal/contract"
	"github.com/storecrypt/storecrypt/test/rie"
)

// TestUnderRIE builds this function as Lambda would run it (bootstrap, -tags lambda.norpc)
// for the host, runs it under the AWS Lambda Runtime Interface Emulator, and invokes it
// with its probe's event (rie.Probes): the binary starts, reads its configuration and
// answers.
func TestUnderRIE(t *testing.T) {
	bootstrap, emulator, err := rie.Build(t.TempDir(), ".")
	if err != nil {
		t.Fatal(err)
	}
	// The stack's configuration and a stopped-state change, which the function answers
	// without calling AWS.
	probe := rie.Probes["launch"]
	payload, err := probe.Payload()
	if err != nil {
		t.Fatal(err)
	}
	env := probe.Env
	if !strings.HasPrefix(env[0], contract.EnvKMSKeyARN+"=") {
		t.Fatalf("the probe's first variable is %q, want %s, which the bad configuration leaves out", env[0], contract.EnvKMSKeyARN)
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
