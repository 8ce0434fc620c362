package controlplane

import (
	"context"
	"testing"
	"time"

	"github.com/storecrypt/storecrypt/internal/contract"
	"github.com/storecrypt/storecrypt/internal/fakeaws"
	"github.com/storecrypt/storecrypt/internal/ledger"
	"github.com/storecrypt/storecrypt/test/emu"
)

// smokeBurst is the smallest burst at which the model still does all it does at full
// size (`make bench`): late SSM agents, several batches' worth of commands.
const smokeBurst = 20

// TestFleetRevoke: the key refuses the whole fleet after one call, and every other call
// is bounded by the fleet's size.
func TestFleetRevoke(t *testing.T) {
	const n = 120
	r, err := FleetRevoke(context.Background(), n)
	if err != nil {
		t.Fatal(err)
	}
	// A RevokeGrant per grant, the grants read 100 a page, a command per 50 instances, a
	// PutEvents per 10.
	bound := 1 + (n+1+99)/100 + n + (n+49)/50 + (n+9)/10
	if r.CallsToKeyRefusal != 1 || r.Revoked != n || r.Failed != 0 || r.Calls-r.Throttled > bound {
		t.Errorf("got %d calls to the key's refusal, %d revoked, %d failed, %d calls (%d throttled); want 1, %d, 0, at most %d calls besides throttled ones",
			r.CallsToKeyRefusal, r.Revoked, r.Failed, r.Calls, r.Throttled, n, bound)
	}
	t.Logf("fleet revoke of %d: %d AWS calls (%s), %d ledger calls, last command at %.1f s", n, r.Calls, ByAPI(r.ByAPI), r.LedgerCalls, r.LastCommandS)
}

// TestBurst: both designs command what they can, and the batched one costs fewer calls
// per instance, dead-letters nothing and commands every instance well within the
// queue's visibility timeout.
func TestBurst(t *testing.T) {
	ctx := context.Background()
	var res []BurstResult
	for _, design := range []func(context.Context, int, uint64) (BurstResult, error){Batched, Naive} {
		r, err := design(ctx, smokeBurst, 1)
		if err != nil {
			t.Fatal(err)
		}
		res = append(res, r)
		// A baseline that commands nothing makes every ratio against it a comparison
		// with a design that does not work.
		if r.SendCommands == 0 || r.Unencrypted == r.Instances {
			t.Errorf("%s: %d commands sent, %d of %d instances left without one: the design does nothing", r.Design, r.SendCommands, r.Unencrypted, r.Instances)
		}
		t.Logf("%s: %d commands, %d of %d left, %.1f calls per instance", r.Design, r.SendCommands, r.Unencrypted, r.Instances, r.CallsPerInstance)
	}
	b, n := res[0], res[1]
	// The stack always gives the function its ledger: a record per launch at least.
	if b.LedgerCalls < b.Instances {
		t.Errorf("batched: got %d ledger calls for %d instances, want one per launch at least", b.LedgerCalls, b.Instances)
	}
	if b.Unencrypted != 0 || b.DLQ != 0 || b.SendCommands == 0 || b.CallsPerInstance >= n.CallsPerInstance {
		t.Errorf("batched %+v against naive %+v", b, n)
	}
	// A tenth of the SSM agents are late: their messages come back after the function's
	// short delay, long before the queue's visibility timeout.
	if !(0 < b.ToCommandP50 && b.ToCommandP50 <= b.ToCommandP95 && b.ToCommandP95 <= b.ToCommandMax && b.ToCommandMax < contract.LaunchVisibility.Seconds()) {
		t.Errorf("launch to command p50 %.1f s, p95 %.1f s, max %.1f s", b.ToCommandP50, b.ToCommandP95, b.ToCommandMax)
	}
}

// TestLedgerAsDynalite holds the model's ledger table (freshTable) to dynalite's answers
// for what a burst asks of the ledger: a first entry for each new launch, and whether it
// is marked revoked. Both must agree on each result and on the calls it took.
func TestLedgerAsDynalite(t *testing.T) {
	ctx := context.Background()
	launched := time.Date(2026, 11, 27, 6, 0, 0, 0, time.UTC)
	const id = "i-00000000000000001"
	steps := []struct {
		name string
		do   func(*ledger.Ledger) (string, error)
	}{
		{"a launch's first entry", func(l *ledger.Ledger) (string, error) {
			return "", l.Record(ctx, ledger.Launch{InstanceID: id, LaunchTime: launched}, ledger.Entry{ID: "launch:pending", At: launched, By: "launch", Status: contract.StatusPending})
		}},
		{"whether it is revoked", func(l *ledger.Ledger) (string, error) {
			why, err := l.Revoked(ctx, id)
			return string(why), err
		}},
	}
	db := emu.StartDynamoDB(t)
	if err := db.CreateTable(ctx, ledger.Table(emu.LedgerTable)); err != nil {
		t.Fatal(err)
	}
	counted, dynaliteCalls := counting(db.Client)
	dynalite := &ledger.Ledger{DB: counted, Table: emu.LedgerTable}
	model, calls := modelLedger(&clock{parallel: 1}, fakeaws.NewAccount(t).Config())
	for _, s := range steps {
		before, modelBefore := dynaliteCalls.total(), calls.total()
		want, werr := s.do(dynalite)
		got, gerr := s.do(model)
		if got != want || (gerr == nil) != (werr == nil) {
			t.Errorf("%s: the model answers %q, %v; dynalite %q, %v", s.name, got, gerr, want, werr)
		}
		if g, w := calls.total()-modelBefore, dynaliteCalls.total()-before; g != w {
			t.Errorf("%s: the model took %d calls, dynalite %d", s.name, g, w)
		}
	}
}
