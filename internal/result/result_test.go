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
)

const (
	instanceID = "i-0abcdef1234567890"
	commandID  = "00000001-0000-4000-8000-000000000001"
)

var (
	launched = time.Date(2026, 11, 27, 6, 0, 0, 0, time.UTC)
	now      = launched.Add(95 * time.Second)
)

func report(res string, code contract.ExitCode, errMsg string) string {
	b, _ := json.MarshalIndent(contract.Report{Command: "apply", Result: res, ExitCode: int(code), Error: errMsg, Devices: []contract.Device{}, Steps: []contract.Step{}}, "", "  ")
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

func TestHandle(t *testing.T) {
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
		{"success", "ssm-success.json", &fakeaws.Invocation{Status: "Success", Stdout: report("ok", 0, "")}, nil, contract.StatusEncrypted, "", `"Encrypted":1`, false},
		{"refused by the agent", "ssm-failed.json", &fakeaws.Invocation{Status: "Failed", ResponseCode: 3, Stdout: report("refused-unsafe", 3, "refusing /dev/nvme1n1: it holds ext4")}, nil,
			contract.StatusFailed, "refused-unsafe", `"Failed":1`, false},
		{"failed without a report", "ssm-failed.json", &fakeaws.Invocation{Status: "Failed", ResponseCode: 4, Stdout: "curl: (7) Failed to connect\n"}, nil,
			contract.StatusFailed, "key-unavailable", `"Reason":"key-unavailable"`, false},
		{"timed out", "ssm-timedout.json", &fakeaws.Invocation{Status: "TimedOut"}, nil, contract.StatusFailed, contract.ReasonTimedOut, `"Failed":1`, false},
		{"invocation gone", "ssm-success.json", nil, nil, contract.StatusEncrypted, "", `"Encrypted":1`, false},
		{"another document", "ssm-success.json", &fakeaws.Invocation{Status: "Success"}, func(_ *fakeaws.World, ev *events.CloudWatchEvent) {
			ev.Detail = json.RawMessage(strings.Replace(string(ev.Detail), "storecrypt-apply", "AWS-RunShellScript", 1))
		}, "", "", "", true},
		{"still in progress", "ssm-success.json", &fakeaws.Invocation{Status: "InProgress"}, func(_ *fakeaws.World, ev *events.CloudWatchEvent) {
			ev.Detail = json.RawMessage(strings.Replace(string(ev.Detail), `"Success"`, `"InProgress"`, 1))
		}, "", "", "", true},
		{"a newer command is pending", "ssm-failed.json", &fakeaws.Invocation{Status: "Failed", ResponseCode: 1}, func(w *fakeaws.World, _ *events.CloudWatchEvent) {
			w.Instances[instanceID].Tags = map[string]string{contract.TagStatus: contract.StatusPending, contract.TagCommandID: "newer", contract.TagAt: launched.Add(time.Hour).Format(time.RFC3339)}
		}, contract.StatusPending, "", "", true},
		{"another event type", "ec2-running.json", nil, nil, "", "", "", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			w := fakeaws.NewAccount()
			w.AddInstance(instanceID, "i4i.large", fakeaws.Profile(fakeaws.KeyUser), nil, launched)
			w.With(func() {
				c := &fakeaws.Command{ID: commandID, DocumentName: "storecrypt-apply", InstanceIDs: []string{instanceID}, Invocations: map[string]*fakeaws.Invocation{}}
				if tc.inv != nil {
					c.Invocations[instanceID] = tc.inv
				}
				w.Commands = append(w.Commands, c)
			})
			ev := sampleEvent(t, tc.file)
			if tc.edit != nil {
				w.With(func() { tc.edit(w, &ev) })
			}
			var logs, metrics bytes.Buffer
			h := result.New(result.Config{DocumentName: "storecrypt-apply", EventBus: "default"}, w.Config(), slog.New(slog.NewJSONHandler(&logs, nil)), &metrics)
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
			if failed := tc.status == contract.StatusFailed; failed != (len(evs) == 1) {
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

func TestParseReport(t *testing.T) {
	if r := result.ParseReport(report("ok", 0, "")); r == nil || r.Result != "ok" {
		t.Errorf("got %+v", r)
	}
	for _, bad := range []string{"", "no json here", "{\n  \"unrelated\": 1\n}\n", "{\n broken"} {
		if r := result.ParseReport(bad); r != nil {
			t.Errorf("%q: got %+v, want nil", bad, r)
		}
	}
}

func TestLoadConfig(t *testing.T) {
	if _, err := result.LoadConfig(func(string) string { return "" }); err == nil || !strings.Contains(err.Error(), contract.EnvDocumentName) {
		t.Errorf("got %v, want an error naming %s", err, contract.EnvDocumentName)
	}
	c, err := result.LoadConfig(func(k string) string { return map[string]string{contract.EnvDocumentName: "d-1"}[k] })
	if err != nil || c.DocumentName != "d-1" || c.EventBus != "default" {
		t.Errorf("got %+v, %v", c, err)
	}
}
