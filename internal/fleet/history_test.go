package fleet_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/ssm"

	"github.com/storecrypt/storecrypt/internal/contract"
	"github.com/storecrypt/storecrypt/internal/document"
	"github.com/storecrypt/storecrypt/internal/fakeaws"
	"github.com/storecrypt/storecrypt/internal/fleet"
	"github.com/storecrypt/storecrypt/test/deployment"
)

const id = "i-00000000000000001"

var launched = time.Date(2026, 11, 27, 6, 0, 0, 0, time.UTC)

func world(t *testing.T) (*fakeaws.World, *fleet.History) {
	t.Helper()
	w := fakeaws.NewAccount(t)
	d, err := deployment.Into(w, fakeaws.KeyARN)
	if err != nil {
		t.Fatal(err)
	}
	w.AddInstance(id, "i4i.large", fakeaws.Profile(fakeaws.KeyUser), nil, launched)
	c := ssm.NewFromConfig(w.Config())
	trust := &document.Trust{SSM: c, Name: d.DocumentName, Digest: d.Digest, KeyID: d.KeyARN}
	return w, &fleet.History{SSM: c, DocumentName: d.DocumentName,
		Judge: &fleet.Judge{KeyARN: d.KeyARN, KeySource: contract.KeySourceKMSDataKey, Documents: trust}}
}

func run(w *fakeaws.World, cmd, document string, at time.Time, inv *fakeaws.Invocation) {
	c := &fakeaws.Command{ID: cmd, DocumentName: document, DocumentVersion: "1", Requested: at, InstanceIDs: []string{id}, Invocations: map[string]*fakeaws.Invocation{}}
	if inv != nil {
		c.Invocations[id] = inv
	}
	w.With(func() { w.Commands = append(w.Commands, c) })
}

// TestSince lists the document's runs on the instance since a time, newest first: never
// another document's, never one requested before the bound (even within its second, which
// the filter's whole-second timestamps cannot express), across pages.
func TestSince(t *testing.T) {
	w, h := world(t)
	run(w, "before", contract.DocumentName, launched.Add(-time.Hour), &fakeaws.Invocation{Status: "Success"})
	run(w, "same-second-before", contract.DocumentName, launched.Add(200*time.Millisecond), &fakeaws.Invocation{Status: "Success"})
	run(w, "other-document", "AWS-RunShellScript", launched.Add(time.Minute), &fakeaws.Invocation{Status: "Success"})
	for n := range 60 { // more than one page of 50
		run(w, fmt.Sprintf("run-%02d", n), contract.DocumentName, launched.Add(time.Duration(n+1)*time.Second), &fakeaws.Invocation{Status: "Failed"})
	}
	run(w, "pending", contract.DocumentName, launched.Add(2*time.Minute), nil)

	runs, err := h.Since(context.Background(), id, launched.Add(500*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	if len(runs) != 61 {
		t.Fatalf("%d runs, want 61", len(runs))
	}
	if runs[0].CommandID != "pending" || runs[0].Status != "Pending" || runs[0].Ended() {
		t.Errorf("newest run %+v, want the pending one, not final", runs[0])
	}
	if runs[60].CommandID != "run-00" || !runs[60].Ended() {
		t.Errorf("oldest run %+v, want run-00, final", runs[60])
	}
	for i := 1; i < len(runs); i++ {
		if runs[i].Requested.After(runs[i-1].Requested) {
			t.Fatalf("runs out of order at %d: %v after %v", i, runs[i].Requested, runs[i-1].Requested)
		}
	}
	if calls := w.Calls()["SSM.ListCommandInvocations"]; calls != 2 {
		t.Errorf("%d ListCommandInvocations calls, want 2 pages of at most 50", calls)
	}
}

// TestOutcome judges a run from its run step's output: the agent's evidence makes it
// encrypted, a success without it is unverified, a run SSM no longer has is judged from
// its status alone.
func TestOutcome(t *testing.T) {
	for _, tc := range []struct {
		name   string
		inv    *fakeaws.Invocation
		status string
		want   string
		reason contract.Reason
	}{
		{"evidence", &fakeaws.Invocation{Status: "Success", Stdout: deployment.AgentOutput(id, contract.KeySourceKMSDataKey, fakeaws.KeyARN, "ok")}, "Success", contract.StatusEncrypted, ""},
		{"another instance's report", &fakeaws.Invocation{Status: "Success", Stdout: deployment.AgentOutput("i-0000000000000000f", contract.KeySourceKMSDataKey, fakeaws.KeyARN, "ok")}, "Success", contract.StatusUnverified, contract.ReasonWrongInstance},
		{"no report", &fakeaws.Invocation{Status: "Success", Stdout: "done\n"}, "Success", contract.StatusUnverified, contract.ReasonNoReport},
		{"refused", &fakeaws.Invocation{Status: "Failed", ResponseCode: 3, Stdout: deployment.AgentOutput(id, contract.KeySourceKMSDataKey, fakeaws.KeyARN, "refused-unsafe")}, "Failed", contract.StatusFailed, "refused-unsafe"},
		{"gone, failed", nil, "TimedOut", contract.StatusFailed, contract.ReasonTimedOut},
		{"gone, success", nil, "Success", contract.StatusUnverified, contract.ReasonNoReport},
	} {
		t.Run(tc.name, func(t *testing.T) {
			w, h := world(t)
			cmd := "00000000-0000-4000-8000-000000000001" // SSM command ids are 36 characters
			if tc.inv != nil {
				run(w, cmd, contract.DocumentName, launched.Add(time.Minute), tc.inv)
			}
			got, err := h.Outcome(context.Background(), id, fleet.Run{CommandID: cmd, Requested: launched.Add(time.Minute), Status: tc.status})
			if err != nil {
				t.Fatal(err)
			}
			if got.Status != tc.want || got.Reason != tc.reason {
				t.Errorf("outcome %s (%s), want %s (%s)", got.Status, got.Reason, tc.want, tc.reason)
			}
		})
	}
}
