package result_test

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/events"

	"github.com/storecrypt/storecrypt/internal/contract"
	"github.com/storecrypt/storecrypt/internal/fakeaws"
	"github.com/storecrypt/storecrypt/internal/ledger"
	"github.com/storecrypt/storecrypt/internal/result"
	"github.com/storecrypt/storecrypt/test/deployment"
)

// revokeRequested is when the revocation samples say their command was sent.
var revokeRequested = time.Date(2026, 11, 27, 7, 0, 0, 0, time.UTC)

// revocationReport is a revocation document's output: the agent's report of command,
// with the mark it leaves ("" for none).
func revocationReport(command, res string, code contract.ExitCode, mark string, edit ...func(*contract.Report)) string {
	r := contract.Report{Command: command, AgentVersion: "v1.6.0", Result: res, ExitCode: int(code), Devices: []contract.Device{},
		Steps: []contract.Step{{Name: "sync"}, {Name: "luks-suspend"}, {Name: "drop-caches"}, {Name: "mark"}}}
	if mark != "" {
		r.Revocation = &contract.Revocation{State: mark, Reason: "incident 7", By: "arn:aws:iam::111122223333:user/responder", At: "2026-11-27T07:00:02Z"}
	}
	if mark == contract.Shredded {
		r.InstanceID = instanceID
	}
	for _, e := range edit {
		e(&r)
	}
	b, _ := json.MarshalIndent(r, "", "  ")
	return string(b) + "\n"
}

// entries records what the handler writes to the ledger.
type entries []ledger.Entry

func (e *entries) Record(_ context.Context, _ ledger.Launch, entry ledger.Entry) error {
	*e = append(*e, entry)
	return nil
}

// TestHandleRevocation: the instance's answer to a revoke, resume or shred is recorded
// (ledger entry with the agent's account of it, status tag, event) only as the agent's
// report of that command with the mark it leaves, from the deployed content; anything
// else is unverified or failed, with the metric and the alert of a failure.
func TestHandleRevocation(t *testing.T) {
	as := func(doc string) func(*fakeaws.World, *events.CloudWatchEvent) {
		return func(w *fakeaws.World, ev *events.CloudWatchEvent) {
			ev.Detail = json.RawMessage(strings.Replace(string(ev.Detail), contract.DocumentRevoke, doc, 1))
			w.Commands[0].DocumentName = doc
		}
	}
	untrusted := func(w *fakeaws.World, _ *events.CloudWatchEvent) {
		d := w.Documents[contract.DocumentRevoke]
		d.Versions = append(d.Versions, strings.Replace(d.Versions[0], "set -eu", "set -eu; exit 0", 1))
		w.Commands[0].DocumentVersion = "2"
	}
	later := func(doc string) func(*fakeaws.World, *events.CloudWatchEvent) {
		return func(w *fakeaws.World, _ *events.CloudWatchEvent) {
			w.Commands = append(w.Commands, &fakeaws.Command{ID: deployment.CommandID("later"), DocumentName: doc, DocumentVersion: "1", InstanceIDs: []string{instanceID},
				Requested: revokeRequested.Add(time.Minute), Invocations: map[string]*fakeaws.Invocation{instanceID: inv("Success", 0, revocationReport("resume", "ok", 0, ""))}})
		}
	}
	for _, tc := range []struct {
		name    string
		file    string
		inv     *fakeaws.Invocation
		edit    func(*fakeaws.World, *events.CloudWatchEvent)
		status  string // the outcome's
		tag     string
		reason  contract.Reason
		event   string // the detail type of the one event
		note    string // in the ledger entry
		ignored bool
	}{
		{"revoked", "ssm-revoke-success.json", inv("Success", 0, revocationReport("revoke", "ok", 0, contract.Revoked)), nil,
			contract.StatusRevoked, contract.StatusRevoked, "", contract.EventInstanceRevoked, "agent v1.6.0 revoke: ok; steps: sync, luks-suspend, drop-caches, mark; mark revoked at 2026-11-27T07:00:02Z by arn:aws:iam::111122223333:user/responder: incident 7", false},
		{"resumed: the tag returns to encrypted", "ssm-revoke-success.json", inv("Success", 0, revocationReport("resume", "ok", 0, "")), as(contract.DocumentResume),
			contract.StatusResumed, contract.StatusEncrypted, "", contract.EventInstanceResumed, "agent v1.6.0 resume: ok", false},
		{"shredded", "ssm-revoke-success.json", inv("Success", 0, revocationReport("shred", "ok", 0, contract.Shredded)), as(contract.DocumentShred),
			contract.StatusShredded, contract.StatusShredded, "", contract.EventInstanceShredded, "mark shredded", false},
		{"a success whose report leaves no mark", "ssm-revoke-success.json", inv("Success", 0, revocationReport("revoke", "ok", 0, "")), nil,
			contract.StatusUnverified, contract.StatusUnverified, contract.ReasonNotReady, contract.EventInstanceFailed, "agent v1.6.0 revoke: ok", false},
		{"a success that reports another command", "ssm-revoke-success.json", inv("Success", 0, revocationReport("status", "ok", 0, contract.Revoked)), nil,
			contract.StatusUnverified, contract.StatusUnverified, contract.ReasonNoReport, contract.EventInstanceFailed, "agent v1.6.0 status", false},
		{"a success without a report", "ssm-revoke-success.json", inv("Success", 0, "done\n"), nil,
			contract.StatusUnverified, contract.StatusUnverified, contract.ReasonNoReport, contract.EventInstanceFailed, "no report from the agent", false},
		{"a resume that reports the volume still revoked", "ssm-revoke-success.json", inv("Success", 0, revocationReport("resume", "ok", 0, contract.Revoked)), as(contract.DocumentResume),
			contract.StatusUnverified, contract.StatusUnverified, contract.ReasonNotReady, contract.EventInstanceFailed, "mark revoked", false},
		{"a shred reported by another instance", "ssm-revoke-success.json", inv("Success", 0, revocationReport("shred", "ok", 0, contract.Shredded, func(r *contract.Report) { r.InstanceID = "i-0fffffffffffffff0" })), as(contract.DocumentShred),
			contract.StatusUnverified, contract.StatusUnverified, contract.ReasonWrongInstance, contract.EventInstanceFailed, "mark shredded", false},
		{"a version the stack did not deploy", "ssm-revoke-success.json", inv("Success", 0, revocationReport("revoke", "ok", 0, contract.Revoked)), untrusted,
			contract.StatusUnverified, contract.StatusUnverified, contract.ReasonUntrustedDocument, contract.EventInstanceFailed, "mark revoked", false},
		{"failed on the instance", "ssm-revoke-failed.json", inv("Failed", 1, revocationReport("revoke", "system-error", 1, "", func(r *contract.Report) {
			r.Error = "freeze storecrypt's filesystem: cryptsetup: exit 1"
		})), nil, contract.StatusFailed, contract.StatusFailed, "system-error", contract.EventInstanceFailed, "error: freeze storecrypt's filesystem", false},
		{"an installed agent the document does not trust", "ssm-revoke-failed.json", inv("Failed", 2, ""), nil,
			contract.StatusFailed, contract.StatusFailed, "bad-input", contract.EventInstanceFailed, "no report from the agent", false},
		{"a revoke's result after a later resume", "ssm-revoke-success.json", inv("Success", 0, revocationReport("revoke", "ok", 0, contract.Revoked)), later(contract.DocumentResume),
			"", "", "", "", "", true},
		{"still in progress", "ssm-revoke-success.json", inv("InProgress", -1, ""), func(_ *fakeaws.World, ev *events.CloudWatchEvent) {
			ev.Detail = json.RawMessage(strings.Replace(string(ev.Detail), `"Success"`, `"InProgress"`, 1))
		}, "", "", "", "", "", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			w := fakeaws.NewAccount(t)
			w.AddInstance(instanceID, "i4i.large", fakeaws.Profile(fakeaws.KeyUser), nil, launched)
			d, err := deployment.Into(w, fakeaws.KeyARN)
			if err != nil {
				t.Fatal(err)
			}
			ev := sampleEvent(t, tc.file)
			w.With(func() {
				w.Commands = append(w.Commands, &fakeaws.Command{ID: "00000002-0000-4000-8000-000000000002", DocumentName: contract.DocumentRevoke, DocumentVersion: "1",
					InstanceIDs: []string{instanceID}, Requested: revokeRequested, Invocations: map[string]*fakeaws.Invocation{instanceID: tc.inv}})
				if tc.edit != nil {
					tc.edit(w, &ev)
				}
			})
			cfg, err := result.LoadConfig(d.Getenv)
			if err != nil {
				t.Fatal(err)
			}
			var logs, metrics bytes.Buffer
			h := result.New(cfg, w.Config(), slog.New(slog.NewJSONHandler(&logs, nil)), &metrics)
			h.Now = func() time.Time { return now }
			var book entries
			h.Ledger = &book
			out, err := h.Handle(context.Background(), ev)
			if err != nil {
				t.Fatal(err)
			}
			if (out == nil) != tc.ignored {
				t.Fatalf("got outcome %+v, want ignored=%v", out, tc.ignored)
			}
			var tags map[string]string
			var evs []fakeaws.Event
			w.With(func() { tags, evs = w.Instances[instanceID].Tags, w.Events })
			if tc.ignored {
				if len(tags) != 0 || len(book) != 0 || len(evs) != 0 {
					t.Errorf("got tags %v, entries %+v, events %+v, want nothing recorded", tags, book, evs)
				}
				return
			}
			if out.Status != tc.status || out.Reason != tc.reason {
				t.Errorf("got outcome %s (%s), want %s (%s)", out.Status, out.Reason, tc.status, tc.reason)
			}
			if tags[contract.TagStatus] != tc.tag || contract.Reason(tags[contract.TagReason]) != tc.reason {
				t.Errorf("got tags %v, want status %q reason %q", tags, tc.tag, tc.reason)
			}
			if len(book) != 1 || book[0].Status != tc.status || book[0].Reason != tc.reason || book[0].CommandID != "00000002-0000-4000-8000-000000000002" ||
				!strings.Contains(book[0].Note, tc.note) {
				t.Errorf("got ledger entries %+v, want one %s (%s) of the command noting %q", book, tc.status, tc.reason, tc.note)
			}
			if len(evs) != 1 || evs[0].DetailType != tc.event || !strings.Contains(evs[0].Detail, `"document":"`+w.Commands[0].DocumentName+`"`) {
				t.Errorf("got events %+v, want one %q naming the document", evs, tc.event)
			}
			if failed := tc.event == contract.EventInstanceFailed; failed != strings.Contains(metrics.String(), `"Failed":1`) {
				t.Errorf("got metrics %s, want the failure metric %v", metrics.String(), failed)
			}
		})
	}
}
