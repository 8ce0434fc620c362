package fleet_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/cloudformation"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/aws-sdk-go-v2/service/iam"
	"github.com/aws/aws-sdk-go-v2/service/kms"
	"github.com/aws/aws-sdk-go-v2/service/ssm"

	"github.com/storecrypt/storecrypt/internal/awscfg"
	"github.com/storecrypt/storecrypt/internal/contract"
	"github.com/storecrypt/storecrypt/internal/fakeaws"
	"github.com/storecrypt/storecrypt/internal/fakeaws/apimodel"
	"github.com/storecrypt/storecrypt/internal/launch"
	"github.com/storecrypt/storecrypt/internal/opcli"
	"github.com/storecrypt/storecrypt/test/deployment"
)

// documentedDetails are the StatusDetails the API reference lists for an invocation
// (GetCommandInvocation, CommandInvocation), spelled as it spells them, each with
// whether it calls it "a terminal state"; and two the reference does not list (Invalid
// Platform, Access Denied), which end an invocation only under a final Status.
var documentedDetails = map[string]bool{
	"Pending": false, "In Progress": false, "Delayed": false,
	"Success": true, "Delivery Timed Out": true, "Execution Timed Out": true, "Failed": true,
	"Cancelled": true, "Undeliverable": true, "Terminated": true,
	"Invalid Platform": false, "Access Denied": false,
}

// finalStatuses are the values of CommandInvocationStatus an invocation ends in; the
// others (Pending, InProgress, Delayed, Cancelling) are on the way to one.
var finalStatuses = []string{"Success", "Failed", "TimedOut", "Cancelled"}

// TestCLIAndSweepAgreeOnEnded: for every Status in botocore's CommandInvocationStatus
// with every StatusDetails the API reference documents, `storecrypt rerun` (its poll of
// ListCommandInvocations) counts the invocation done exactly when the launch function's
// sweep takes it as ended (queues the instance to record its outcome, rather than
// waiting out StaleAfter), and both as the documentation says. Both read the same
// invocations in one fake account.
func TestCLIAndSweepAgreeOnEnded(t *testing.T) {
	model, err := apimodel.Load("SSM")
	if err != nil {
		t.Fatal(err)
	}
	statuses := model.Shapes["CommandInvocationStatus"].Enum
	if len(statuses) < 8 {
		t.Fatalf("CommandInvocationStatus %v: want botocore's enum", statuses)
	}
	w := fakeaws.NewAccount(t)
	d, err := deployment.Into(w, fakeaws.KeyARN)
	if err != nil {
		t.Fatal(err)
	}
	type state struct{ status, details string }
	launchedAt := time.Now().Add(-time.Hour).UTC().Truncate(time.Second)
	byID, want := map[string]state{}, map[string]bool{}
	var ids []string
	for _, status := range statuses {
		for _, details := range slices.Sorted(maps.Keys(documentedDetails)) {
			id := fmt.Sprintf("i-%017d", len(ids)+1)
			ids = append(ids, id)
			byID[id] = state{status, details}
			want[id] = slices.Contains(finalStatuses, status) || documentedDetails[details]
			w.AddInstance(id, "i4i.large", fakeaws.Profile(fakeaws.KeyUser), map[string]string{}, launchedAt)
		}
	}
	w.OnCommand = func(c *fakeaws.Command) {
		for _, id := range c.InstanceIDs {
			s := byID[id]
			inv := fakeaws.Invocation{Status: s.status, StatusDetails: s.details}
			if s.status == "Success" {
				inv.Stdout = deployment.AgentOutput(id, contract.KeySourceKMSDataKey, fakeaws.KeyARN, "ok")
			}
			if err := w.SetInvocation(c.ID, id, inv); err != nil {
				t.Error(err)
			}
		}
	}

	cli := cliEnded(t, w, ids)
	swept := sweepEnded(t, w, d, ids, launchedAt)
	for _, id := range ids {
		if cli[id] != want[id] || swept[id] != want[id] {
			t.Errorf("Status %q, StatusDetails %q: the CLI took it as ended %v, the sweep %v; want %v", byID[id].status, byID[id].details, cli[id], swept[id], want[id])
		}
	}
}

// cliEnded reruns the instances and says which the CLI counted done before its timeout.
func cliEnded(t *testing.T, w *fakeaws.World, ids []string) map[string]bool {
	t.Helper()
	cfg := w.Config()
	c := opcli.Clients{EC2: ec2.NewFromConfig(cfg), SSM: ssm.NewFromConfig(cfg), IAM: iam.NewFromConfig(cfg), KMS: kms.NewFromConfig(cfg),
		CloudFormation: cloudformation.NewFromConfig(cfg), Now: time.Now}
	var out, errOut bytes.Buffer
	opcli.Main(context.Background(), []string{"rerun", "--instances", strings.Join(ids, ","), "--yes", "--timeout", "5s", "--output", "json"},
		strings.NewReader(""), &out, &errOut, func(context.Context, awscfg.Options) (opcli.Clients, error) { return c, nil })
	var sum opcli.RerunSummary
	if err := json.Unmarshal(out.Bytes(), &sum); err != nil || len(sum.Instances) != len(ids) {
		t.Fatalf("rerun printed %d instances (%v), want %d:\n%s\n%s", len(sum.Instances), err, len(ids), out.String(), errOut.String())
	}
	// The CLI reports an instance it waits for by a Status that is not final; and counts
	// the others done.
	ended, done := map[string]bool{}, 0
	for _, r := range sum.Instances {
		ended[r.Instance] = !slices.Contains([]string{"Pending", "InProgress", "Delayed", "Cancelling"}, r.Status)
		if ended[r.Instance] {
			done++
		}
	}
	if line := fmt.Sprintf("storecrypt: %d/%d done", done, len(ids)); !strings.Contains(errOut.String(), line) {
		t.Errorf("stderr lacks %q:\n%s", line, errOut.String())
	}
	return ended
}

// sweepEnded tags each instance as the launch function does when it sends a command
// (pending, that command), and says which the sweep queues a minute later: within
// both StaleAfter and the first backoff, it queues only an instance whose run ended
// (to record its outcome).
func sweepEnded(t *testing.T, w *fakeaws.World, d deployment.Deployment, ids []string, launchedAt time.Time) map[string]bool {
	t.Helper()
	w.With(func() {
		for _, c := range w.Commands {
			for _, id := range c.InstanceIDs {
				w.Instances[id].Tags[contract.TagStatus] = contract.StatusPending
				w.Instances[id].Tags[contract.TagCommandID] = c.ID
				w.Instances[id].Tags[contract.TagLaunchTime] = launchedAt.Format(time.RFC3339)
			}
		}
	})
	c, err := launch.LoadConfig(d.Getenv)
	if err != nil {
		t.Fatal(err)
	}
	h := launch.New(c, w.Config(), slog.New(slog.NewTextHandler(io.Discard, nil)), io.Discard)
	now := time.Now().Add(time.Minute)
	h.Now = func() time.Time { return now }
	res, err := h.Sweep(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if res.InScope != len(ids) {
		t.Fatalf("the sweep found %d instances in scope, want %d", res.InScope, len(ids))
	}
	ended := map[string]bool{}
	for _, id := range res.Enqueued {
		ended[id] = true
	}
	return ended
}
