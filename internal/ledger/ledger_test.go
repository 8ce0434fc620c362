package ledger_test

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"testing"
	"time"

	"github.com/storecrypt/storecrypt/internal/contract"
	"github.com/storecrypt/storecrypt/internal/ledger"
	"github.com/storecrypt/storecrypt/test/emu"
)

var launched = time.Date(2026, 11, 27, 6, 0, 0, 0, time.UTC)

const id = "i-00000000000000001"

func start(t *testing.T) *ledger.Ledger { return emu.Ledger(t) }

func item(t *testing.T, l *ledger.Ledger, launch time.Time) *ledger.Item {
	t.Helper()
	it, err := l.Get(context.Background(), id, launch)
	if err != nil || it == nil {
		t.Fatalf("reading the item: %v, %v", it, err)
	}
	return it
}

func ids(it *ledger.Item) []string {
	var out []string
	for _, e := range it.Entries {
		out = append(out, e.ID)
	}
	return out
}

var launch = ledger.Launch{InstanceID: id, LaunchTime: launched, Account: "111122223333", Region: "us-east-1", InstanceType: "i4i.large",
	Role: "arn:aws:iam::111122223333:role/storecrypt-instance", KeyARN: "arn:aws:kms:us-east-1:111122223333:key/k", KeyState: "Enabled"}

func evidence() *ledger.Evidence {
	return &ledger.Evidence{KeySource: contract.KeySourceKMSDataKey,
		Cipher: "aes-xts-plain64/512", LUKSUUID: "6a3c0b1e-0d5f-4c2b-9e7a-1f2e3d4c5b6a", Layout: "RAID0 of 2 disks, ext4 at /mnt/instance-store",
		AgentVersion: "v1.2.3", DocumentName: "storecrypt-apply", DocumentHash: "abc"}
}

// TestRecord tells one launch's story: first sight, a duplicate, the proof, a replay of
// the proof, an older event arriving late, and a later failed rerun. The summary moves
// only forward, every step is one entry, and what was proven stays.
func TestRecord(t *testing.T) {
	l := start(t)
	ctx := context.Background()
	pending := ledger.Entry{ID: ledger.EntryID("launch", contract.StatusPending, "cmd-1"), At: launched.Add(time.Minute), By: "launch", Status: contract.StatusPending, CommandID: "cmd-1"}
	if err := l.Record(ctx, launch, pending); err != nil {
		t.Fatal(err)
	}
	if err := l.Record(ctx, launch, pending); !errors.Is(err, ledger.ErrDuplicate) {
		t.Fatalf("a duplicate: %v, want ErrDuplicate", err)
	}
	encrypted := ledger.Entry{ID: ledger.EntryID("result", contract.StatusEncrypted, "cmd-1"), At: launched.Add(2 * time.Minute), By: "result",
		Status: contract.StatusEncrypted, CommandID: "cmd-1", Evidence: evidence()}
	// The result function knows less of the launch: what it does not know stays as it was.
	partial := ledger.Launch{InstanceID: id, LaunchTime: launched, InstanceType: "changed"}
	if err := l.Record(ctx, partial, encrypted); err != nil {
		t.Fatal(err)
	}
	it := item(t, l, launched)
	want := ledger.Item{InstanceID: id, LaunchTime: "2026-11-27T06:00:00Z", Account: launch.Account, Region: launch.Region,
		InstanceType: launch.InstanceType, Role: launch.Role, KeyARN: launch.KeyARN, KeyState: "Enabled", FirstSeen: "2026-11-27T06:01:00.000Z",
		Status: contract.StatusEncrypted, StatusAt: "2026-11-27T06:02:00.000Z", CommandID: "cmd-1", EncryptedAt: "2026-11-27T06:02:00.000Z",
		SecondsToEncrypted: "120", KeySource: contract.KeySourceKMSDataKey, Cipher: "aes-xts-plain64/512", LUKSUUID: evidence().LUKSUUID,
		Layout: evidence().Layout, AgentVersion: "v1.2.3", DocumentName: "storecrypt-apply", DocumentHash: "abc",
		Entries: []ledger.EntryRecord{
			{ID: pending.ID, At: "2026-11-27T06:01:00.000Z", By: "launch", Status: contract.StatusPending, CommandID: "cmd-1"},
			{ID: encrypted.ID, At: "2026-11-27T06:02:00.000Z", By: "result", Status: contract.StatusEncrypted, CommandID: "cmd-1"},
		}}
	if !reflect.DeepEqual(*it, want) {
		t.Errorf("item\n%+v\nwant\n%+v", *it, want)
	}
	if err := l.Record(ctx, launch, encrypted); !errors.Is(err, ledger.ErrDuplicate) {
		t.Errorf("a replayed result: %v, want ErrDuplicate", err)
	}

	// A step older than the summary arrives late: it is kept, the summary is not moved back.
	late := ledger.Entry{ID: "sweep:pending", At: launched.Add(90 * time.Second), By: "sweep", Status: contract.StatusPending}
	if err := l.Record(ctx, launch, late); err != nil {
		t.Fatal(err)
	}
	// A rerun fails later: the summary says so, the proof and when it was made stay.
	failed := ledger.Entry{ID: ledger.EntryID("result", contract.StatusFailed, "cmd-2"), At: launched.Add(time.Hour), By: "result",
		Status: contract.StatusFailed, Reason: "key-unavailable", CommandID: "cmd-2"}
	if err := l.Record(ctx, launch, failed); err != nil {
		t.Fatal(err)
	}
	again := encrypted
	again.ID, again.At, again.CommandID = ledger.EntryID("result", contract.StatusEncrypted, "cmd-3"), launched.Add(2*time.Hour), "cmd-3"
	again.Evidence = &ledger.Evidence{LUKSUUID: "another"}
	if err := l.Record(ctx, launch, again); err != nil {
		t.Fatal(err)
	}
	it = item(t, l, launched)
	if got := ids(it); len(got) != 5 || got[0] != pending.ID || got[3] != failed.ID {
		t.Errorf("entries %v, want five in the order written", got)
	}
	if it.Status != contract.StatusEncrypted || it.CommandID != "cmd-3" || it.Reason != "" {
		t.Errorf("summary %s (%s) by %s, want encrypted by cmd-3", it.Status, it.Reason, it.CommandID)
	}
	if it.EncryptedAt != "2026-11-27T06:02:00.000Z" || it.LUKSUUID != evidence().LUKSUUID {
		t.Errorf("the first proof was overwritten: encrypted_at %s, luks_uuid %s", it.EncryptedAt, it.LUKSUUID)
	}

	// The same instance after a stop/start is a new launch, a new item.
	relaunch := launch
	relaunch.LaunchTime = launched.Add(3 * time.Hour)
	if err := l.Record(ctx, relaunch, ledger.Entry{ID: "launch:pending", At: relaunch.LaunchTime.Add(time.Minute), By: "launch", Status: contract.StatusPending}); err != nil {
		t.Fatal(err)
	}
	if it := item(t, l, relaunch.LaunchTime); it.Status != contract.StatusPending || len(it.Entries) != 1 || it.EncryptedAt != "" {
		t.Errorf("the second launch: %+v", it)
	}
}

// TestTerminated closes the latest launch once; an instance never seen has nothing to
// close.
func TestTerminated(t *testing.T) {
	l := start(t)
	ctx := context.Background()
	for _, at := range []time.Time{launched, launched.Add(3 * time.Hour)} {
		lt := launch
		lt.LaunchTime = at
		if err := l.Record(ctx, lt, ledger.Entry{ID: "launch:pending", At: at.Add(time.Minute), By: "launch", Status: contract.StatusPending}); err != nil {
			t.Fatal(err)
		}
	}
	end := launched.Add(5 * time.Hour)
	for n := range 2 {
		closed, err := l.Terminated(ctx, id, end)
		if err != nil || closed != (n == 0) {
			t.Fatalf("call %d: closed %v, %v; want only the first to close", n, closed, err)
		}
		end = end.Add(time.Minute) // a replay later on changes nothing
	}
	if got := item(t, l, launched.Add(3*time.Hour)).TerminatedAt; got != "2026-11-27T11:00:00.000Z" {
		t.Errorf("the latest launch's terminated_at = %q", got)
	}
	if got := item(t, l, launched).TerminatedAt; got != "" {
		t.Errorf("an earlier launch was closed too: %q", got)
	}
	if closed, err := l.Terminated(ctx, "i-0ffffffffffffffff", end); err != nil || closed {
		t.Errorf("an instance never seen: closed %v, %v", closed, err)
	}
}

// TestLaunches reads the launches of a period, and only those.
func TestLaunches(t *testing.T) {
	l := start(t)
	ctx := context.Background()
	for n := range 30 {
		lt := launch
		lt.InstanceID, lt.LaunchTime = fmt.Sprintf("i-%017x", n), launched.Add(time.Duration(n)*time.Hour)
		if err := l.Record(ctx, lt, ledger.Entry{ID: "launch:pending", At: lt.LaunchTime.Add(time.Minute), By: "launch", Status: contract.StatusPending}); err != nil {
			t.Fatal(err)
		}
	}
	got, err := l.Launches(ctx, launched.Add(10*time.Hour), launched.Add(20*time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 10 {
		t.Fatalf("%d launches, want the 10 of the period", len(got))
	}
	for _, it := range got {
		if it.LaunchTime < "2026-11-27T16:00:00Z" || it.LaunchTime >= "2026-11-28T02:00:00Z" || it.Status != contract.StatusPending {
			t.Errorf("a launch outside the period: %+v", it)
		}
	}
}

// TestOutOfOrder: a command's result recorded before the launch function's pending for
// the same command (a fast agent, a slow batch, clocks apart) stays the summary, with its
// evidence.
func TestOutOfOrder(t *testing.T) {
	l := start(t)
	ctx := context.Background()
	encrypted := ledger.Entry{ID: "result:encrypted:cmd-1", At: launched.Add(time.Minute), By: "result", Status: contract.StatusEncrypted, CommandID: "cmd-1", Evidence: evidence()}
	pending := ledger.Entry{ID: "launch:pending:cmd-1", At: launched.Add(2 * time.Minute), By: "launch", Status: contract.StatusPending, CommandID: "cmd-1"}
	for _, e := range []ledger.Entry{encrypted, pending} {
		if err := l.Record(ctx, launch, e); err != nil {
			t.Fatal(err)
		}
	}
	it := item(t, l, launched)
	if it.Status != contract.StatusEncrypted || it.EncryptedAt == "" || len(it.Entries) != 2 {
		t.Errorf("after a late pending: %s, encrypted_at %q, %d entries", it.Status, it.EncryptedAt, len(it.Entries))
	}
	// And evidence that arrives after a newer summary (a rerun's failure) is still kept.
	other := launch
	other.LaunchTime = launched.Add(time.Hour)
	failed := ledger.Entry{ID: "result:failed:cmd-3", At: other.LaunchTime.Add(10 * time.Minute), By: "result", Status: contract.StatusFailed, Reason: "key-unavailable", CommandID: "cmd-3"}
	proof := ledger.Entry{ID: "result:encrypted:cmd-2", At: other.LaunchTime.Add(5 * time.Minute), By: "result", Status: contract.StatusEncrypted, CommandID: "cmd-2", Evidence: evidence()}
	for _, e := range []ledger.Entry{failed, proof} {
		if err := l.Record(ctx, other, e); err != nil {
			t.Fatal(err)
		}
	}
	if it := item(t, l, other.LaunchTime); it.Status != contract.StatusFailed || it.EncryptedAt == "" || it.LUKSUUID == "" {
		t.Errorf("a proof older than the summary: %s, encrypted_at %q, luks %q", it.Status, it.EncryptedAt, it.LUKSUUID)
	}
}

// TestBounded: past MaxEntries an item keeps its summary moving but appends no more,
// and counts what it left out, so it never reaches DynamoDB's item size limit.
func TestBounded(t *testing.T) {
	l := start(t)
	ctx := context.Background()
	n := ledger.MaxEntries + 5
	for k := range n {
		e := ledger.Entry{ID: fmt.Sprintf("result:failed:cmd-%03d", k), At: launched.Add(time.Duration(k+1) * time.Minute), By: "result",
			Status: contract.StatusFailed, Reason: "timed-out", CommandID: fmt.Sprintf("cmd-%03d", k)}
		if err := l.Record(ctx, launch, e); err != nil {
			t.Fatalf("entry %d: %v", k, err)
		}
	}
	it := item(t, l, launched)
	if len(it.Entries) != ledger.MaxEntries || it.EntriesDropped != "5" || it.CommandID != fmt.Sprintf("cmd-%03d", n-1) {
		t.Errorf("%d entries, %s dropped, summary by %s; want %d, 5, the last command", len(it.Entries), it.EntriesDropped, it.CommandID, ledger.MaxEntries)
	}
}

// TestFromReport: the evidence names the array's level and the path that made the volume.
func TestFromReport(t *testing.T) {
	for _, tc := range []struct {
		level, by, want string
	}{
		// The agent could not read md's level: the evidence does not guess one.
		{"", "", "2 disks, ext4 at /mnt/instance-store"},
		{"raid0", "", "RAID0 of 2 disks, ext4 at /mnt/instance-store"},
		{"raid10", contract.ProvisionedByBoot, "RAID10 of 2 disks, ext4 at /mnt/instance-store"},
	} {
		r := &contract.Report{AgentVersion: "v2", Devices: []contract.Device{{Path: "/dev/nvme1n1"}, {Path: "/dev/nvme2n1"}},
			Layout: &contract.Layout{Level: tc.level, Filesystem: "ext4", MountPoint: "/mnt/instance-store", ProvisionedBy: tc.by}}
		e := ledger.FromReport(r, "doc", "digest")
		if e.Layout != tc.want || e.ProvisionedBy != tc.by {
			t.Errorf("level %q: layout %q by %q, want %q by %q", tc.level, e.Layout, e.ProvisionedBy, tc.want, tc.by)
		}
	}
}
