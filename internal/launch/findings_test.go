package launch_test

import (
	"strings"
	"testing"
	"time"

	shtypes "github.com/aws/aws-sdk-go-v2/service/securityhub/types"
	ssmtypes "github.com/aws/aws-sdk-go-v2/service/ssm/types"

	"github.com/storecrypt/storecrypt/internal/contract"
	"github.com/storecrypt/storecrypt/internal/fakeaws"
	"github.com/storecrypt/storecrypt/internal/findings"
	"github.com/storecrypt/storecrypt/internal/launch"
	"github.com/storecrypt/storecrypt/test/emu"
)

// TestFindings: a blocked instance gets an active Security Hub finding and a
// NON_COMPLIANT Systems Manager compliance item, once; an instance sent the document gets
// neither yet; with Security Hub not enabled the batch still succeeds and the function
// stops trying.
func TestFindings(t *testing.T) {
	const sent, blocked = "i-00000000000000001", "i-00000000000000002"
	hub := map[string]string{contract.EnvSecurityHub: "true", contract.EnvComplianceItems: "true"}
	w := fakeaws.NewAccount(t)
	w.SecurityHubEnabled = true
	w.AddInstance(sent, "i4i.large", fakeaws.Profile(fakeaws.KeyUser), nil, launched)
	w.AddInstance(blocked, "i4i.large", fakeaws.Profile(fakeaws.NotKeyUser), map[string]string{contract.TagEncrypt: "true"}, launched)
	e := newEnv(t, w, optIn, hub)
	e.h.Ledger = emu.Ledger(t)
	for range 2 {
		if failed := e.handle(t, running(sent), running(blocked)); len(failed) != 0 {
			t.Fatalf("retried %v", failed)
		}
	}
	var got []shtypes.AwsSecurityFinding
	w.With(func() {
		for _, f := range w.Findings {
			got = append(got, f)
		}
	})
	if len(got) != 1 || !strings.Contains(*got[0].Id, blocked) || got[0].RecordState != shtypes.RecordStateActive || !strings.Contains(*got[0].Title, "not-key-user") {
		t.Errorf("findings %+v, want one active for %s", got, blocked)
	}
	if calls := w.Calls()["SecurityHub.BatchImportFindings"]; calls != 1 {
		t.Errorf("%d imports, want 1: the second delivery changes nothing", calls)
	}
	var items []ssmtypes.ComplianceItemEntry
	w.With(func() { items = w.Compliance[blocked+"/"+findings.ComplianceType] })
	if len(items) != 1 || items[0].Status != ssmtypes.ComplianceStatusNonCompliant || items[0].Details["Reason"] != string(contract.ReasonNotKeyUser) {
		t.Errorf("the blocked instance's compliance: %+v", items)
	}
	if n := len(w.Compliance); n != 1 {
		t.Errorf("%d compliance records, want only the blocked instance's (pending is no verdict)", n)
	}
	// The blocked instance terminates: its finding is archived.
	gone := strings.Replace(launch.StateChangeEvent(blocked, launched.Add(time.Hour)), `"state":"running"`, `"state":"terminated"`, 1)
	if failed := e.handle(t, gone); len(failed) != 0 {
		t.Fatalf("retried %v", failed)
	}
	w.With(func() {
		if f := w.Findings[*got[0].Id]; f.RecordState != shtypes.RecordStateArchived {
			t.Errorf("after termination the finding is %s, want ARCHIVED", f.RecordState)
		}
	})

	off := fakeaws.NewAccount(t)
	off.AddInstance(blocked, "i4i.large", fakeaws.Profile(fakeaws.NotKeyUser), map[string]string{contract.TagEncrypt: "true"}, launched)
	e = newEnv(t, off, optIn, hub)
	if failed := e.handle(t, running(blocked)); len(failed) != 0 || !strings.Contains(e.logs.String(), "not enabled") {
		t.Errorf("Security Hub not enabled: retried %v, logs %s", failed, e.logs)
	}
	const another = "i-00000000000000003"
	off.AddInstance(another, "i4i.large", fakeaws.Profile(fakeaws.NotKeyUser), map[string]string{contract.TagEncrypt: "true"}, launched)
	if e.handle(t, running(another)); hubCalls(off) != 1 {
		t.Errorf("got %d Security Hub calls, want 1: the function kept calling a Security Hub that is not enabled", hubCalls(off))
	}
	if e.tags(blocked)[contract.TagStatus] != contract.StatusBlocked {
		t.Errorf("the block was not recorded: %v", e.tags(blocked))
	}
}

func hubCalls(w *fakeaws.World) int {
	n := 0
	for k, v := range w.Calls() {
		if strings.HasPrefix(k, "SecurityHub.") {
			n += v
		}
	}
	return n
}
