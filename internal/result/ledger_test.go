package result_test

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"testing"
	"time"

	shtypes "github.com/aws/aws-sdk-go-v2/service/securityhub/types"
	ssmtypes "github.com/aws/aws-sdk-go-v2/service/ssm/types"

	"github.com/storecrypt/storecrypt/internal/contract"
	"github.com/storecrypt/storecrypt/internal/fakeaws"
	"github.com/storecrypt/storecrypt/internal/findings"
	"github.com/storecrypt/storecrypt/internal/ledger"
	"github.com/storecrypt/storecrypt/internal/result"
	"github.com/storecrypt/storecrypt/test/deployment"
	"github.com/storecrypt/storecrypt/test/emu"
)

// TestLedger: an encrypted outcome reaches the ledger (dynalite) with the agent's evidence,
// once however often the event comes; with the ledger unreachable the invocation fails
// (Lambda retries it, then its dead-letter queue keeps it) and nothing is tagged.
func TestLedger(t *testing.T) {
	w := fakeaws.NewAccount(t)
	w.AddInstance(instanceID, "i4i.large", fakeaws.Profile(fakeaws.KeyUser), nil, launched)
	d, err := deployment.Into(w, fakeaws.KeyARN)
	if err != nil {
		t.Fatal(err)
	}
	out := report("ok", 0, "", func(r *contract.Report) {
		// The document's run (v1.5.0) reports a volume the boot unit's agent made.
		r.AgentVersion, r.BootAgentVersion = "v1.5.0", "v1.4.0"
		r.Devices = []contract.Device{{Path: "/dev/nvme1n1"}, {Path: "/dev/nvme2n1"}}
		r.Layout.Level = "raid0"
		r.Layout.LUKSUUID, r.Layout.SectorSize, r.Layout.Filesystem = "6a3c0b1e-0d5f-4c2b-9e7a-1f2e3d4c5b6a", 4096, "ext4"
		r.Layout.ProvisionedBy = contract.ProvisionedByBoot
	})
	w.With(func() {
		w.Commands = append(w.Commands, &fakeaws.Command{ID: commandID, DocumentName: contract.DocumentName, DocumentVersion: "1", InstanceIDs: []string{instanceID},
			Requested: requested, Invocations: map[string]*fakeaws.Invocation{instanceID: inv("Success", 0, out)}})
	})
	cfg, err := result.LoadConfig(d.Getenv)
	if err != nil {
		t.Fatal(err)
	}
	h := result.New(cfg, w.Config(), slog.New(slog.NewJSONHandler(&bytes.Buffer{}, nil)), &bytes.Buffer{})
	h.Now = func() time.Time { return now }
	l := emu.Ledger(t)

	h.Ledger = &ledger.Ledger{DB: l.DB, Table: "no-such-table"}
	if _, err := h.Handle(context.Background(), sampleEvent(t, "ssm-success.json")); err == nil {
		t.Fatal("recorded with the ledger unreachable")
	}
	if s := w.Instances[instanceID].Tags[contract.TagStatus]; s != "" {
		t.Errorf("tagged %q without a ledger entry", s)
	}

	h.Ledger = l
	for range 2 { // a replay of the same event
		if _, err := h.Handle(context.Background(), sampleEvent(t, "ssm-success.json")); err != nil {
			t.Fatal(err)
		}
	}
	got, err := l.Get(context.Background(), instanceID, launched)
	if err != nil || got == nil {
		t.Fatalf("no item: %v", err)
	}
	want := ledger.Item{InstanceID: instanceID, LaunchTime: "2026-11-27T06:00:00Z", Account: fakeaws.Account, Region: fakeaws.Region,
		InstanceType: "i4i.large", KeyARN: fakeaws.KeyARN, FirstSeen: "2026-11-27T06:01:35.000Z", Status: contract.StatusEncrypted,
		StatusAt: "2026-11-27T06:01:35.000Z", CommandID: commandID, EncryptedAt: "2026-11-27T06:01:35.000Z", SecondsToEncrypted: "95",
		KeySource: contract.KeySourceKMSDataKey, Cipher: "aes-xts-plain64/512-bit/4096B sectors", LUKSUUID: "6a3c0b1e-0d5f-4c2b-9e7a-1f2e3d4c5b6a",
		Layout: "RAID0 of 2 disks, ext4 at /mnt/instance-store", ProvisionedBy: contract.ProvisionedByBoot, AgentVersion: "v1.4.0", DocumentName: contract.DocumentName, DocumentHash: d.Digest,
		Entries: []ledger.EntryRecord{{ID: "result:encrypted:" + commandID, At: "2026-11-27T06:01:35.000Z", By: "result", Status: contract.StatusEncrypted, CommandID: commandID}}}
	if diff := compare(*got, want); diff != "" {
		t.Error(diff)
	}
}

func compare(got, want ledger.Item) string {
	g, _ := jsonOf(got)
	w, _ := jsonOf(want)
	if g != w {
		return "item\n" + g + "\nwant\n" + w
	}
	return ""
}

func jsonOf(v any) (string, error) {
	b, err := json.MarshalIndent(v, "", "  ")
	return string(b), err
}

// TestFindings: a failed run files an active finding; the instance's later encryption
// archives the same finding.
func TestFindings(t *testing.T) {
	w := fakeaws.NewAccount(t)
	w.SecurityHubEnabled = true
	w.AddInstance(instanceID, "i4i.large", fakeaws.Profile(fakeaws.KeyUser), nil, launched)
	d, err := deployment.Into(w, fakeaws.KeyARN)
	if err != nil {
		t.Fatal(err)
	}
	d.Env[contract.EnvSecurityHub], d.Env[contract.EnvComplianceItems] = "true", "true"
	cfg, err := result.LoadConfig(d.Getenv)
	if err != nil {
		t.Fatal(err)
	}
	h := result.New(cfg, w.Config(), slog.New(slog.NewJSONHandler(&bytes.Buffer{}, nil)), &bytes.Buffer{})
	for n, tc := range []struct {
		file, command string
		inv           *fakeaws.Invocation
		state         shtypes.RecordState
	}{
		{"ssm-failed.json", commandID, inv("Failed", 3, report("refused-unsafe", 3, "refusing /dev/nvme1n1")), shtypes.RecordStateActive},
		{"ssm-success.json", commandID, inv("Success", 0, report("ok", 0, "")), shtypes.RecordStateArchived},
	} {
		at := now.Add(time.Duration(n) * time.Minute)
		h.Now = func() time.Time { return at }
		w.With(func() {
			w.Commands = []*fakeaws.Command{{ID: tc.command, DocumentName: contract.DocumentName, DocumentVersion: "1", InstanceIDs: []string{instanceID},
				Requested: requested, Invocations: map[string]*fakeaws.Invocation{instanceID: tc.inv}}}
		})
		if _, err := h.Handle(context.Background(), sampleEvent(t, tc.file)); err != nil {
			t.Fatal(err)
		}
		var got []shtypes.AwsSecurityFinding
		w.With(func() {
			for _, f := range w.Findings {
				got = append(got, f)
			}
		})
		if len(got) != 1 || got[0].RecordState != tc.state {
			t.Errorf("after %s: %d findings, state %v; want one, %s", tc.file, len(got), got, tc.state)
		}
		var items []ssmtypes.ComplianceItemEntry
		w.With(func() { items = w.Compliance[instanceID+"/"+findings.ComplianceType] })
		if want := map[bool]ssmtypes.ComplianceStatus{true: ssmtypes.ComplianceStatusCompliant, false: ssmtypes.ComplianceStatusNonCompliant}[tc.state == shtypes.RecordStateArchived]; len(items) != 1 || items[0].Status != want {
			t.Errorf("after %s: compliance %+v, want %s", tc.file, items, want)
		}
	}
}
