package opcli_test

import (
	"testing"
	"time"

	"github.com/storecrypt/storecrypt/internal/contract"
	"github.com/storecrypt/storecrypt/internal/fakeaws"
	"github.com/storecrypt/storecrypt/internal/golden"
	"github.com/storecrypt/storecrypt/internal/ledger"
	"github.com/storecrypt/storecrypt/test/emu"
)

// TestStatusAndReportCutOff: status, report (table, text, csv, json) show an instance a
// responder revoked and one revoked and then shredded, each encrypted before: the status
// tag's value, and when, by whom and why from the ledger; they count as encrypted, not
// as exceptions. Status finds the mark of one revoked on an earlier launch and skipped
// since; an encrypted instance's row has no marks. The revoked one was resumed before
// (resumed_*), and revoked again: both marks show, with who and why.
func TestStatusAndReportCutOff(t *testing.T) {
	w, book := fleet(t)
	const responder = "arn:aws:sts::111122223333:assumed-role/responder/alice"
	revoked := map[string]string{contract.LedgerRevokedAt: "2026-11-28T02:00:00.000Z", contract.LedgerRevokedBy: responder, contract.LedgerRevokedReason: "INC-42 credentials leaked"}
	shredded := map[string]string{contract.LedgerShreddedAt: "2026-11-28T03:00:00.000Z", contract.LedgerShreddedBy: responder, contract.LedgerShreddedReason: "INC-42 host compromised"}
	resumed := map[string]string{contract.LedgerResumedAt: "2026-11-28T01:00:00.000Z", contract.LedgerResumedBy: responder, contract.LedgerResumedReason: "INC-40 false alarm"}
	for _, r := range []struct {
		id, status string
		marks      []map[string]string
	}{
		{"i-00000000000000007", contract.StatusRevoked, []map[string]string{resumed, revoked}},
		{"i-00000000000000008", contract.StatusShredded, []map[string]string{revoked, shredded}},
	} {
		at := launched.Add(21 * time.Hour)
		w.AddInstance(r.id, "i4i.large", fakeaws.Profile(fakeaws.KeyUser), map[string]string{contract.TagStatus: r.status, contract.TagAt: at.Format(time.RFC3339),
			contract.TagCommandID: "cmd-" + r.status}, launched)
		l := ledger.Launch{InstanceID: r.id, LaunchTime: launched, Account: fakeaws.Account, Region: fakeaws.Region, InstanceType: "i4i.large", Role: fakeaws.KeyUser, KeyARN: fakeaws.KeyARN}
		for _, e := range []ledger.Entry{
			{ID: "result:cmd-1" + r.id[len(r.id)-1:], At: launched.Add(90 * time.Second), By: "result", Status: contract.StatusEncrypted, CommandID: "cmd-1" + r.id[len(r.id)-1:],
				Evidence: &ledger.Evidence{KeySource: contract.KeySourceKMSDataKey, LUKSUUID: "7e7e7e7e-0d5f-4c2b-9e7a-1f2e3d4c5b6" + r.id[len(r.id)-1:]}},
			{ID: "result:cmd-" + r.status, At: at, By: "result", Status: r.status, CommandID: "cmd-" + r.status},
		} {
			if err := book.Record(t.Context(), l, e); err != nil {
				t.Fatal(err)
			}
		}
		for _, m := range r.marks {
			emu.Mark(t, book, r.id, launched, m)
		}
	}
	// Revoked on its earlier launch, then stopped and started: the launch function skipped
	// the new launch (reason revoked), and the mark sits on the earlier launch's item.
	const restarted = "i-00000000000000009"
	earlier := launched.Add(-3 * time.Hour)
	w.AddInstance(restarted, "i4i.large", fakeaws.Profile(fakeaws.KeyUser), map[string]string{contract.TagStatus: contract.StatusSkipped,
		contract.TagReason: string(contract.ReasonRevoked), contract.TagAt: launched.Add(time.Minute).Format(time.RFC3339)}, launched)
	for _, e := range []struct {
		launch time.Time
		ledger.Entry
	}{
		{earlier, ledger.Entry{ID: "result:cmd-19", At: earlier.Add(time.Minute), By: "result", Status: contract.StatusEncrypted, CommandID: "cmd-19",
			Evidence: &ledger.Evidence{KeySource: contract.KeySourceKMSDataKey, LUKSUUID: "7e7e7e7e-0d5f-4c2b-9e7a-1f2e3d4c5b69"}}},
		{earlier, ledger.Entry{ID: "result:cmd-revoked9", At: earlier.Add(time.Hour + time.Minute), By: "result", Status: contract.StatusRevoked, CommandID: "cmd-revoked9"}},
		{launched, ledger.Entry{ID: "launch:skipped:revoked", At: launched.Add(time.Minute), By: "launch", Status: contract.StatusSkipped, Reason: contract.ReasonRevoked}},
	} {
		l := ledger.Launch{InstanceID: restarted, LaunchTime: e.launch, Account: fakeaws.Account, Region: fakeaws.Region, InstanceType: "i4i.large", Role: fakeaws.KeyUser, KeyARN: fakeaws.KeyARN}
		if err := book.Record(t.Context(), l, e.Entry); err != nil {
			t.Fatal(err)
		}
	}
	emu.Mark(t, book, restarted, earlier, map[string]string{contract.LedgerRevokedAt: "2026-11-27T04:00:00.000Z", contract.LedgerRevokedBy: responder,
		contract.LedgerRevokedReason: "INC-41 suspicious process"})
	c := worldClients(w, book)
	for _, tc := range []struct {
		golden string
		args   []string
	}{
		{"status-cutoff.txt", []string{"status"}},
		{"status-cutoff.json", []string{"status", "--output", "json"}},
		{"status-cutoff-text.txt", []string{"status", "--output", "text"}},
		{"report-cutoff.txt", []string{"report"}},
		{"report-cutoff.csv", []string{"report", "--output", "csv"}},
		{"report-cutoff.json", []string{"report", "--output", "json", "--query", "{revoked: revoked, coverage: coverage}"}},
	} {
		t.Run(tc.golden, func(t *testing.T) {
			code, out, errOut := run(t, c, "", tc.args...)
			if code != 0 {
				t.Fatalf("got exit %d: %s, want 0", code, errOut)
			}
			golden.Check(t, tc.golden, []byte(out))
		})
	}
}
