package ledger_test

import (
	"context"
	"testing"
	"time"

	"github.com/storecrypt/storecrypt/internal/contract"
	"github.com/storecrypt/storecrypt/internal/ledger"
	"github.com/storecrypt/storecrypt/test/emu"
)

const responder = "arn:aws:sts::111122223333:assumed-role/responder/alice"

// revokedAt, shreddedAt and resumedAt are the attributes `storecrypt revoke` and
// `resume` write on a launch's item.
func revokedAt(at, why string) map[string]string {
	return map[string]string{contract.LedgerRevokedAt: at, contract.LedgerRevokedBy: responder, contract.LedgerRevokedReason: why}
}

func shreddedAt(at, why string) map[string]string {
	return map[string]string{contract.LedgerShreddedAt: at, contract.LedgerShreddedBy: responder, contract.LedgerShreddedReason: why}
}

func resumedAt(at, why string) map[string]string {
	return map[string]string{contract.LedgerResumedAt: at, contract.LedgerResumedBy: responder, contract.LedgerResumedReason: why}
}

// TestMarksRead: Get and Launches read who revoked or shredded a launch, when and why,
// from the attributes the contract names; a launch never revoked has none.
func TestMarksRead(t *testing.T) {
	for _, tc := range []struct {
		name  string
		attrs []map[string]string
		want  ledger.Marks
	}{
		{"never revoked", nil, ledger.Marks{}},
		{"revoked", []map[string]string{revokedAt("2026-11-27T07:00:00.000Z", "INC-42 key compromise")},
			ledger.Marks{RevokedAt: "2026-11-27T07:00:00.000Z", RevokedBy: responder, RevokedReason: "INC-42 key compromise"}},
		{"shredded while revoked", []map[string]string{revokedAt("2026-11-27T07:00:00.000Z", "INC-42"), shreddedAt("2026-11-27T08:00:00.000Z", "INC-42 destroy")},
			ledger.Marks{RevokedAt: "2026-11-27T07:00:00.000Z", RevokedBy: responder, RevokedReason: "INC-42", ShreddedAt: "2026-11-27T08:00:00.000Z", ShreddedBy: responder, ShreddedReason: "INC-42 destroy"}},
		{"resumed", []map[string]string{resumedAt("2026-11-27T08:00:00.000Z", "INC-42 false alarm")},
			ledger.Marks{ResumedAt: "2026-11-27T08:00:00.000Z", ResumedBy: responder, ResumedReason: "INC-42 false alarm"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			l := start(t)
			ctx := context.Background()
			if err := l.Record(ctx, launch, ledger.Entry{ID: "launch:pending", At: launched, By: "launch", Status: contract.StatusPending}); err != nil {
				t.Fatal(err)
			}
			for _, a := range tc.attrs {
				emu.Mark(t, l, id, launched, a)
			}
			if got := item(t, l, launched).Marks; got != tc.want {
				t.Errorf("Get: got %+v, want %+v", got, tc.want)
			}
			all, err := l.Launches(ctx, launched, launched.Add(time.Hour))
			if err != nil || len(all) != 1 {
				t.Fatalf("Launches: got %d items, %v; want the one", len(all), err)
			}
			if got := all[0].Marks; got != tc.want {
				t.Errorf("Launches: got %+v, want %+v", got, tc.want)
			}
		})
	}
}

// TestMarksOf: an instance's marks are read over all its launches (a revoke on an
// earlier launch holds after a stop and start), the latest of each kind winning, and
// Revoked says shredded over revoked.
func TestMarksOf(t *testing.T) {
	second := launched.Add(2 * time.Hour)
	for _, tc := range []struct {
		name        string
		first, next []map[string]string // on the first launch's item, on the second's
		want        ledger.Marks
		reason      contract.Reason
	}{
		{"none", nil, nil, ledger.Marks{}, ""},
		{"revoked on the earlier launch", []map[string]string{revokedAt("2026-11-27T07:00:00.000Z", "INC-1")}, nil,
			ledger.Marks{RevokedAt: "2026-11-27T07:00:00.000Z", RevokedBy: responder, RevokedReason: "INC-1"}, contract.ReasonRevoked},
		{"the later revoke wins", []map[string]string{revokedAt("2026-11-27T07:00:00.000Z", "INC-1")}, []map[string]string{revokedAt("2026-11-27T09:00:00.000Z", "INC-2")},
			ledger.Marks{RevokedAt: "2026-11-27T09:00:00.000Z", RevokedBy: responder, RevokedReason: "INC-2"}, contract.ReasonRevoked},
		{"shredded wins over revoked", []map[string]string{shreddedAt("2026-11-27T07:30:00.000Z", "INC-1 destroy")}, []map[string]string{revokedAt("2026-11-27T09:00:00.000Z", "INC-2")},
			ledger.Marks{RevokedAt: "2026-11-27T09:00:00.000Z", RevokedBy: responder, RevokedReason: "INC-2", ShreddedAt: "2026-11-27T07:30:00.000Z", ShreddedBy: responder, ShreddedReason: "INC-1 destroy"},
			contract.ReasonShredded},
		{"resumed on the earlier launch: shown, not revoked", []map[string]string{resumedAt("2026-11-27T07:30:00.000Z", "INC-1 false alarm")}, nil,
			ledger.Marks{ResumedAt: "2026-11-27T07:30:00.000Z", ResumedBy: responder, ResumedReason: "INC-1 false alarm"}, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			l := start(t)
			ctx := context.Background()
			for _, at := range []time.Time{launched, second} {
				lt := launch
				lt.LaunchTime = at
				if err := l.Record(ctx, lt, ledger.Entry{ID: "launch:pending", At: at, By: "launch", Status: contract.StatusPending}); err != nil {
					t.Fatal(err)
				}
			}
			for _, a := range tc.first {
				emu.Mark(t, l, id, launched, a)
			}
			for _, a := range tc.next {
				emu.Mark(t, l, id, second, a)
			}
			got, err := l.MarksOf(ctx, id)
			if err != nil || got != tc.want {
				t.Errorf("MarksOf: got %+v, %v; want %+v", got, err, tc.want)
			}
			if why, err := l.Revoked(ctx, id); err != nil || why != tc.reason {
				t.Errorf("Revoked: got %q, %v; want %q", why, err, tc.reason)
			}
		})
	}
}
