package launch_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/storecrypt/storecrypt/internal/contract"
	"github.com/storecrypt/storecrypt/internal/fakeaws"
	"github.com/storecrypt/storecrypt/internal/launch"
	"github.com/storecrypt/storecrypt/internal/ledger"
	"github.com/storecrypt/storecrypt/test/emu"
)

// TestLedger: every decision the function records reaches the ledger (dynalite) with the
// launch's facts, once however often the event comes; a decision the ledger could not take
// is not tagged either, and its message is handed back.
func TestLedger(t *testing.T) {
	const sent, blocked = "i-00000000000000001", "i-00000000000000002"
	w := fakeaws.NewAccount(t)
	w.AddInstance(sent, "i4i.large", fakeaws.Profile(fakeaws.KeyUser), nil, launched)
	w.AddInstance(blocked, "i4i.large", fakeaws.Profile(fakeaws.NotKeyUser), map[string]string{contract.TagEncrypt: "true"}, launched)
	e := newEnv(t, w, optIn)
	l := emu.Ledger(t)
	e.h.Ledger = l
	ctx := context.Background()
	for range 2 { // the second delivery changes nothing
		if failed := e.handle(t, running(sent), running(blocked)); len(failed) != 0 {
			t.Fatalf("retried %v", failed)
		}
	}
	got, err := l.Get(ctx, sent, launched)
	if err != nil || got == nil {
		t.Fatalf("no item for %s: %v", sent, err)
	}
	cmd := e.tags(sent)[contract.TagCommandID]
	if got.Status != contract.StatusPending || got.CommandID != cmd || got.InstanceType != "i4i.large" || got.Role != fakeaws.KeyUser ||
		got.KeyARN != fakeaws.KeyARN || got.KeyState != "Enabled" || got.Account != fakeaws.Account || got.Region != fakeaws.Region ||
		len(got.Entries) != 1 || got.Entries[0].By != "launch" {
		t.Errorf("%s: %+v", sent, got)
	}
	got, err = l.Get(ctx, blocked, launched)
	if err != nil || got == nil {
		t.Fatalf("no item for %s: %v", blocked, err)
	}
	if got.Status != contract.StatusBlocked || got.Reason != string(contract.ReasonNotKeyUser) || got.Role != fakeaws.NotKeyUser ||
		got.KeyState != "" || len(got.Entries) != 1 {
		t.Errorf("%s: %+v", blocked, got)
	}

	// The ledger is unreachable: the block is neither tagged nor lost.
	const later = "i-00000000000000003"
	w.AddInstance(later, "i4i.large", fakeaws.Profile(fakeaws.NotKeyUser), map[string]string{contract.TagEncrypt: "true"}, launched)
	e.h.Ledger = &ledger.Ledger{DB: l.DB, Table: "no-such-table"}
	if failed := e.handle(t, running(later)); len(failed) != 1 {
		t.Errorf("retried %v, want the message handed back", failed)
	}
	if s := e.tags(later)[contract.TagStatus]; s != "" {
		t.Errorf("tagged %q without a ledger entry", s)
	}
	e.h.Ledger = l
	e.h.Now = func() time.Time { return launched.Add(2 * time.Minute) }
	if failed := e.handle(t, running(later)); len(failed) != 0 {
		t.Errorf("the redelivery retried %v", failed)
	}
	if got, _ := l.Get(ctx, later, launched); got == nil || got.Status != contract.StatusBlocked || e.tags(later)[contract.TagStatus] != contract.StatusBlocked {
		t.Errorf("after the redelivery: %+v, tags %v", got, e.tags(later))
	}

	// The instance terminates: its item is closed, once.
	end := launched.Add(3 * time.Hour)
	gone := strings.Replace(launch.StateChangeEvent(sent, end), `"state":"running"`, `"state":"terminated"`, 1)
	for range 2 {
		if failed := e.handle(t, gone); len(failed) != 0 {
			t.Fatalf("retried %v", failed)
		}
	}
	if got, _ := l.Get(ctx, sent, launched); got == nil || got.TerminatedAt != "2026-11-27T09:00:00.000Z" || got.Status != contract.StatusPending {
		t.Errorf("after termination: %+v", got)
	}
	e.h.Ledger = &ledger.Ledger{DB: l.DB, Table: "no-such-table"}
	if failed := e.handle(t, gone); len(failed) != 1 {
		t.Errorf("closing with the ledger unreachable: retried %v, want the message handed back", failed)
	}
}

// TestRepairsALostResult: the result function never recorded a run (its event went to the
// dead-letter queue): the sweep queues the instance, and the launch path records SSM's
// outcome in the ledger, with the agent's evidence, and in the tags, and sends nothing.
func TestRepairsALostResult(t *testing.T) {
	const id = "i-00000000000000001"
	w := fakeaws.NewAccount(t)
	w.AddInstance(id, "i4i.large", fakeaws.Profile(fakeaws.KeyUser), nil, launched)
	w.With(func() {
		ran(w, id, cmd("c-lost"), launched.Add(30*time.Second), finished(id, "ok"))
		claims(w, id, contract.StatusPending, "", launched.Add(30*time.Second))
		w.Instances[id].Tags[contract.TagCommandID] = cmd("c-lost")
	})
	e := newEnv(t, w)
	l := emu.Ledger(t)
	e.h.Ledger = l
	// The sweep finds it (no event will come), and the launch path records it.
	res, err := e.h.Sweep(context.Background())
	if err != nil || len(res.Enqueued) != 1 {
		t.Fatalf("the sweep queued %v, %v; want the instance", res.Enqueued, err)
	}
	for range 2 { // the second look finds it recorded
		if failed := e.handle(t, running(id)); len(failed) != 0 {
			t.Fatalf("retried %v", failed)
		}
	}
	if res, err := e.h.Sweep(context.Background()); err != nil || len(res.Enqueued) != 0 {
		t.Errorf("a second sweep queued %v, %v; it was recorded", res.Enqueued, err)
	}
	if got := e.commanded(); len(got) != 0 {
		t.Errorf("sent %v: an encrypted instance needs no command", got)
	}
	if tags := e.tags(id); tags[contract.TagStatus] != contract.StatusEncrypted || tags[contract.TagCommandID] != cmd("c-lost") {
		t.Errorf("tags %v, want encrypted by c-lost", tags)
	}
	it, err := l.Get(context.Background(), id, launched)
	if err != nil || it == nil || it.Status != contract.StatusEncrypted || it.EncryptedAt == "" || it.KeySource != contract.KeySourceKMSDataKey || len(it.Entries) != 1 ||
		it.Entries[0].ID != ledger.EntryID("result", contract.StatusEncrypted, "", cmd("c-lost")) {
		t.Errorf("the ledger: %+v, %v", it, err)
	}
}
