package audit_test

import (
	"encoding/json"
	"slices"
	"testing"
	"time"

	"github.com/storecrypt/storecrypt/internal/audit"
	"github.com/storecrypt/storecrypt/internal/contract"
	"github.com/storecrypt/storecrypt/internal/golden"
	"github.com/storecrypt/storecrypt/internal/ledger"
)

var (
	since = time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC)
	until = time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)
	now   = time.Date(2026, 11, 28, 9, 0, 0, 0, time.UTC)
	key   = audit.Key{ARN: "arn:aws:kms:us-east-1:111122223333:key/11111111-2222-4333-8444-555555555555", State: "Enabled", Rotation: true}
)

const (
	app = "arn:aws:iam::111122223333:role/app"
	db  = "arn:aws:iam::111122223333:role/db"
)

func item(id, launched, typ, role, status, reason, seconds string) ledger.Item {
	it := ledger.Item{InstanceID: id, LaunchTime: launched, InstanceType: typ, Role: role, Status: status, Reason: reason,
		SecondsToEncrypted: seconds, Entries: []ledger.EntryRecord{}}
	if status == contract.StatusEncrypted {
		it.EncryptedAt = launched // the day is what counts here
		it.KeySource, it.Cipher, it.Layout, it.AgentVersion = contract.KeySourceKMSDataKey, "aes-xts-plain64/512-bit/4096B sectors", "RAID0 of 2 disks, ext4 at /mnt/instance-store", "v1.4.0"
		it.LUKSUUID, it.DocumentHash, it.CommandID = "6a3c0b1e-0d5f-4c2b-9e7a-"+id[len(id)-12:], "238139698b606a5bf4a97e324e4934e820ee871211127e93b50d83fad23852b8", "cmd-"+id[len(id)-2:]
	}
	return it
}

// fixture: encrypted launches of two roles and two types, one terminated; a blocked, a
// failed, an opted-out and an unverified one; a type without instance store, which is
// not in scope; a running instance the ledger never saw; and two encrypted launches a
// responder revoked, one of them shredded since.
func fixture() ([]ledger.Item, []ledger.Item) {
	enc := func(id, launched, typ, role, seconds string) ledger.Item {
		return item(id, launched, typ, role, contract.StatusEncrypted, "", seconds)
	}
	gone := enc("i-00000000000000003", "2026-11-03T08:00:00Z", "i3en.xlarge", db, "210")
	gone.TerminatedAt = "2026-11-10T00:00:00.000Z"
	const responder = "arn:aws:sts::111122223333:assumed-role/responder/alice"
	revoked := enc("i-0000000000000000b", "2026-11-24T08:00:00Z", "i4i.large", db, "80")
	revoked.Status, revoked.Marks = contract.StatusRevoked, ledger.Marks{RevokedAt: "2026-11-26T10:00:00.000Z", RevokedBy: responder, RevokedReason: "INC-42 credentials leaked"}
	shredded := enc("i-0000000000000000c", "2026-11-25T08:00:00Z", "i4i.large", db, "85")
	shredded.Status, shredded.Marks = contract.StatusShredded, ledger.Marks{RevokedAt: "2026-11-26T10:00:00.000Z", RevokedBy: responder, RevokedReason: "INC-42 credentials leaked",
		ShreddedAt: "2026-11-26T11:00:00.000Z", ShreddedBy: responder, ShreddedReason: "INC-42 host compromised"}
	items := []ledger.Item{
		enc("i-00000000000000001", "2026-11-02T08:00:00Z", "i4i.large", app, "61.5"),
		enc("i-00000000000000002", "2026-11-02T09:00:00Z", "i4i.large", app, "75"),
		gone,
		enc("i-00000000000000004", "2026-11-20T10:00:00Z", "i4i.large", db, "90"),
		item("i-00000000000000005", "2026-11-20T11:00:00Z", "i4i.large", app, contract.StatusBlocked, string(contract.ReasonNotKeyUser), ""),
		item("i-00000000000000006", "2026-11-21T11:00:00Z", "i3en.xlarge", db, contract.StatusFailed, "refused-unsafe", ""),
		item("i-00000000000000007", "2026-11-22T11:00:00Z", "i4i.large", app, contract.StatusSkipped, string(contract.ReasonOptedOut), ""),
		item("i-00000000000000008", "2026-11-22T12:00:00Z", "i4i.large", app, contract.StatusUnverified, string(contract.ReasonNoReport), ""),
		item("i-00000000000000009", "2026-11-23T12:00:00Z", "m5.large", app, contract.StatusSkipped, string(contract.ReasonNoInstanceStore), ""),
		revoked, shredded,
	}
	running := []ledger.Item{{InstanceID: "i-0000000000000000a", LaunchTime: "2026-11-27T12:00:00Z", InstanceType: "i4i.large", Role: app}}
	return items, running
}

func TestBuild(t *testing.T) {
	items, running := fixture()
	r := audit.Build(items, running, since, until, now, key)
	if r.Coverage != (audit.Coverage{Name: "all", InScope: 11, Encrypted: 6, Percent: 54.5}) {
		t.Errorf("got coverage %+v, want 6 of 11 (the type without instance store is not in scope; revoked and shredded were encrypted)", r.Coverage)
	}
	wantRoles := []audit.Coverage{{Name: app, InScope: 6, Encrypted: 2, Percent: 33.3}, {Name: db, InScope: 5, Encrypted: 4, Percent: 80}}
	if len(r.ByRole) != 2 || r.ByRole[0] != wantRoles[0] || r.ByRole[1] != wantRoles[1] {
		t.Errorf("by role %+v, want %+v", r.ByRole, wantRoles)
	}
	if r.TimeToEncrypted != (audit.Percentiles{N: 6, P50: 80, P95: 210, Max: 210}) {
		t.Errorf("time to encrypted %+v", r.TimeToEncrypted)
	}
	var exceptions []string
	for _, e := range r.Exceptions {
		exceptions = append(exceptions, e.InstanceID+" "+e.Status+" "+e.Reason)
	}
	want := []string{
		"i-00000000000000005 blocked not-key-user", "i-00000000000000006 failed refused-unsafe", "i-00000000000000007 skipped opted-out",
		"i-00000000000000008 unverified no-report", "i-0000000000000000a no-record ",
	}
	if len(exceptions) != len(want) {
		t.Fatalf("exceptions %q, want %q", exceptions, want)
	}
	for n := range want {
		if exceptions[n] != want[n] {
			t.Errorf("exception %d: %q, want %q", n, exceptions[n], want[n])
		}
	}
	if len(r.Launches) != 12 {
		t.Errorf("%d launches listed, want every one of the period", len(r.Launches))
	}
	var revoked []string
	for _, it := range r.Revoked {
		revoked = append(revoked, it.InstanceID+" "+it.RevokedBy+" "+it.ShreddedReason)
	}
	if want := []string{"i-0000000000000000b arn:aws:sts::111122223333:assumed-role/responder/alice ",
		"i-0000000000000000c arn:aws:sts::111122223333:assumed-role/responder/alice INC-42 host compromised"}; !slices.Equal(revoked, want) {
		t.Errorf("got revoked %q, want %q", revoked, want)
	}
	b, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	golden.Check(t, "report.json", append(b, '\n'))
}

func TestBuildEmpty(t *testing.T) {
	r := audit.Build(nil, nil, since, until, now, key)
	if r.Coverage.Percent != 100 || r.Coverage.InScope != 0 || len(r.Exceptions) != 0 || r.TimeToEncrypted.N != 0 {
		t.Errorf("an empty period: %+v", r)
	}
}
