package conformance

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io/fs"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/events"

	samples "github.com/storecrypt/storecrypt/events"
	"github.com/storecrypt/storecrypt/internal/contract"
	"github.com/storecrypt/storecrypt/internal/fakeaws"
	"github.com/storecrypt/storecrypt/internal/launch"
	"github.com/storecrypt/storecrypt/internal/result"
	"github.com/storecrypt/storecrypt/test/cfn"
)

// rule is an EventBridge rule of the template: its pattern and the ARNs it targets.
type rule struct {
	id       string
	pattern  []byte // nil for a schedule
	schedule string
	targets  []string
}

func (d *deployment) rules(t *testing.T) []rule {
	t.Helper()
	var out []rule
	for _, id := range d.Of("AWS::Events::Rule") {
		props := d.Resources[id].Properties
		r := rule{id: id}
		if p, ok := props["EventPattern"]; ok {
			r.pattern = []byte(d.json(t, p))
		}
		r.schedule, _ = props["ScheduleExpression"].(string)
		targets, err := d.Eval(props["Targets"])
		if err != nil {
			t.Fatal(err)
		}
		for _, tg := range targets.([]any) {
			r.targets = append(r.targets, tg.(map[string]any)["Arn"].(string))
		}
		out = append(out, r)
	}
	return out
}

// routes lists the targets of the rules whose pattern matches ev.
func routes(t *testing.T, rules []rule, ev []byte) []string {
	t.Helper()
	var targets []string
	for _, r := range rules {
		if r.pattern == nil {
			continue
		}
		ok, err := fakeaws.MatchPattern(r.pattern, ev)
		if err != nil {
			t.Fatalf("rule %s: %v", r.id, err)
		}
		if ok {
			targets = append(targets, r.targets...)
		}
	}
	return targets
}

// TestEveryEventRouted: each sample event, and variants of them, is routed by the
// template's rules exactly where a handler takes it, and nowhere when no handler acts
// on it. Whether a handler takes an event is the handler's own code's answer.
func TestEveryEventRouted(t *testing.T) {
	for _, source := range []string{contract.KeySourceKMSDataKey, contract.KeySourceS3KMS} {
		for _, env := range cfn.Partitions {
			t.Run(source+"/"+env.Partition, func(t *testing.T) {
				d := deploy(t, source, env)
				rules := d.rules(t)
				queue := d.arn(t, "AWS::SQS::Queue", "LaunchQueue")
				fn := d.arn(t, "AWS::Lambda::Function", "Result")
				launchFn := d.arn(t, "AWS::Lambda::Function", "Launch")
				cases := d.eventCases(t)
				if len(cases) < 14 {
					t.Fatalf("only %d event cases", len(cases))
				}
				for name, ev := range cases {
					takers := map[string]bool{}
					if _, err := launch.InstanceIDs(string(ev)); err == nil {
						takers[queue] = true
					}
					if _, _, ok := launch.Terminated(string(ev)); ok {
						takers[queue] = true // the ledger item is closed
					}
					if d.resultTakes(t, ev) {
						takers[fn] = true
					}
					got := map[string]bool{}
					for _, tg := range routes(t, rules, ev) {
						got[tg] = true
					}
					for tg := range takers {
						if !got[tg] {
							t.Errorf("%s: a handler takes it, but no rule routes it to %s", name, tg)
						}
					}
					for tg := range got {
						if !takers[tg] {
							t.Errorf("%s: routed to %s, whose handler does not act on it", name, tg)
						}
					}
				}
				var sweep bool
				for _, r := range rules {
					sweep = sweep || r.schedule != "" && len(r.targets) == 1 && r.targets[0] == launchFn
				}
				if !sweep {
					t.Error("no schedule invokes the launch function's sweep")
				}
			})
		}
	}
}

// eventCases are the samples in events/ (an SQS batch's bodies in place of the batch;
// the schedule's event aside) and variants that must route differently.
func (d *deployment) eventCases(t *testing.T) map[string][]byte {
	t.Helper()
	cases := map[string][]byte{}
	err := fs.WalkDir(samples.FS, ".", func(name string, e fs.DirEntry, err error) error {
		if err != nil || e.IsDir() || !strings.HasSuffix(name, ".json") || name == "scheduled-sweep.json" {
			return err
		}
		b, err := samples.Read(name)
		if err != nil {
			return err
		}
		var batch events.SQSEvent
		if json.Unmarshal(b, &batch) == nil && len(batch.Records) > 0 {
			for _, r := range batch.Records {
				cases[name+"/"+r.MessageId] = []byte(r.Body)
			}
			return nil
		}
		cases[name] = b
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	variant := func(name, from, old, repl string) {
		if !bytes.Contains(cases[from], []byte(old)) {
			t.Fatalf("variant %s: %s lacks %q", name, from, old)
		}
		cases[name] = bytes.Replace(cases[from], []byte(old), []byte(repl), 1)
	}
	variant("RunInstances that failed", "cloudtrail-runinstances.json", `"eventName": "RunInstances",`, `"eventName": "RunInstances", "errorCode": "Client.UnauthorizedOperation",`)
	variant("TerminateInstances", "cloudtrail-runinstances.json", `"eventName": "RunInstances"`, `"eventName": "TerminateInstances"`)
	variant("invocation in progress", "ssm-success.json", `"status": "Success"`, `"status": "InProgress"`)
	variant("invocation canceled, as the event reference spells it", "ssm-success.json", `"status": "Success"`, `"status": "Canceled"`)
	variant("another document's invocation", "ssm-success.json", `"document-name": "storecrypt-apply"`, `"document-name": "AWS-RunPatchBaseline"`)
	return cases
}

// resultTakes: the result function records something for ev (a world where the event's
// instance and command exist), rather than ignoring it.
func (d *deployment) resultTakes(t *testing.T, ev []byte) bool {
	t.Helper()
	var e events.CloudWatchEvent
	if err := json.Unmarshal(ev, &e); err != nil {
		return false
	}
	var detail result.Detail
	_ = json.Unmarshal(e.Detail, &detail)
	w := d.world(t)
	if detail.InstanceID != "" {
		w.AddInstance(detail.InstanceID, "i4i.large", "", nil, time.Date(2026, 11, 27, 5, 0, 0, 0, time.UTC))
		w.With(func() {
			doc := d.documentName
			if _, ok := d.revocationDocuments[detail.DocumentName]; ok {
				doc = detail.DocumentName // a revoke's result: the step SSM reports is the revoke document's
			}
			w.Commands = append(w.Commands, &fakeaws.Command{ID: detail.CommandID, DocumentName: doc, DocumentVersion: "1",
				InstanceIDs: []string{detail.InstanceID}, Invocations: map[string]*fakeaws.Invocation{detail.InstanceID: {Status: "Success"}}})
		})
	}
	c, err := result.LoadConfig(func(k string) string { return d.resultEnv[k] })
	if err != nil {
		t.Fatal(err)
	}
	h := result.New(c, w.Config(), slog.New(slog.DiscardHandler), &bytes.Buffer{})
	h.Ledger = nil // whether the handler acts on the event; what it records is the scenarios'
	out, err := h.Handle(context.Background(), e)
	if err != nil && !errors.Is(err, context.Canceled) {
		t.Fatalf("result: %v", err)
	}
	return out != nil
}

// arn finds the one resource of a type whose logical id starts with prefix.
func (d *deployment) arn(t *testing.T, typ, prefix string) string {
	t.Helper()
	for _, id := range d.Of(typ) {
		if strings.HasPrefix(id, prefix) && !strings.HasPrefix(id, prefix+"DLQ") {
			a, err := d.String(map[string]any{"Fn::GetAtt": []any{id, "Arn"}})
			if err != nil {
				t.Fatal(err)
			}
			return a
		}
	}
	t.Fatalf("no %s named %s*", typ, prefix)
	return ""
}
