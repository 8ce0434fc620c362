// Package launch is the launch function: for each batch of EC2 events from the launch
// queue it looks the instances up once, keeps those in scope, checks each distinct role's
// binding to the KMS key once, waits (through SQS retries) for the SSM agent to come
// Online, and sends the storecrypt document to up to 50 instances per call. In sweep mode
// it finds running instances the events missed and queues them.
package launch

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/aws/aws-lambda-go/events"
	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	ec2types "github.com/aws/aws-sdk-go-v2/service/ec2/types"
	"github.com/aws/aws-sdk-go-v2/service/eventbridge"
	ebtypes "github.com/aws/aws-sdk-go-v2/service/eventbridge/types"
	"github.com/aws/aws-sdk-go-v2/service/iam"
	"github.com/aws/aws-sdk-go-v2/service/kms"
	kmstypes "github.com/aws/aws-sdk-go-v2/service/kms/types"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	sqstypes "github.com/aws/aws-sdk-go-v2/service/sqs/types"
	"github.com/aws/aws-sdk-go-v2/service/ssm"
	ssmtypes "github.com/aws/aws-sdk-go-v2/service/ssm/types"

	"github.com/storecrypt/storecrypt/internal/alert"
	"github.com/storecrypt/storecrypt/internal/binding"
	"github.com/storecrypt/storecrypt/internal/contract"
	"github.com/storecrypt/storecrypt/internal/document"
	"github.com/storecrypt/storecrypt/internal/emf"
	"github.com/storecrypt/storecrypt/internal/findings"
	"github.com/storecrypt/storecrypt/internal/fleet"
	"github.com/storecrypt/storecrypt/internal/ledger"
	"github.com/storecrypt/storecrypt/internal/statustag"
)

// EC2 is the part of the EC2 client the function uses.
type EC2 interface {
	DescribeInstances(ctx context.Context, in *ec2.DescribeInstancesInput, optFns ...func(*ec2.Options)) (*ec2.DescribeInstancesOutput, error)
	DescribeInstanceTypes(ctx context.Context, in *ec2.DescribeInstanceTypesInput, optFns ...func(*ec2.Options)) (*ec2.DescribeInstanceTypesOutput, error)
	CreateTags(ctx context.Context, in *ec2.CreateTagsInput, optFns ...func(*ec2.Options)) (*ec2.CreateTagsOutput, error)
}

// SSM is the part of the SSM client the function uses.
type SSM interface {
	DescribeInstanceInformation(ctx context.Context, in *ssm.DescribeInstanceInformationInput, optFns ...func(*ssm.Options)) (*ssm.DescribeInstanceInformationOutput, error)
	SendCommand(ctx context.Context, in *ssm.SendCommandInput, optFns ...func(*ssm.Options)) (*ssm.SendCommandOutput, error)
}

// Documents pins the document version to send and says whether a run's version holds
// the deployed content (document.Trust).
type Documents interface {
	Version(ctx context.Context) (document.Pin, error)
	fleet.Documents
}

// SQS is the part of the SQS client the function uses: sweep mode queues, and a batch
// sets when the messages it hands back are seen again.
type SQS interface {
	SendMessageBatch(ctx context.Context, in *sqs.SendMessageBatchInput, optFns ...func(*sqs.Options)) (*sqs.SendMessageBatchOutput, error)
	ChangeMessageVisibilityBatch(ctx context.Context, in *sqs.ChangeMessageVisibilityBatchInput, optFns ...func(*sqs.Options)) (*sqs.ChangeMessageVisibilityBatchOutput, error)
}

// Ledger appends to the durable record (ledger.Ledger).
type Ledger interface {
	Record(ctx context.Context, launch ledger.Launch, e ledger.Entry) error
	Terminated(ctx context.Context, instanceID string, at time.Time) (bool, error)
}

// Binder checks bindings (binding.Checker).
type Binder interface {
	Check(ctx context.Context, r binding.Request) (binding.Verdict, error)
	Role(ctx context.Context, profileARN string) (string, error)
}

// Handler is the launch function.
type Handler struct {
	Config    Config
	EC2       EC2
	SSM       SSM
	SQS       SQS
	Events    alert.EventBridge
	Binder    Binder
	Documents Documents
	// History is SSM's record of the document's runs: what an instance's tags claim of a
	// run is believed only when it says so.
	History *fleet.History
	// Ledger, when the stack has one, gets an entry for every status the function
	// records.
	Ledger Ledger
	// Findings files every verdict (blocked, opted out) in Security Hub and Systems
	// Manager compliance, as the stack enables them; nil files nothing.
	Findings *findings.Filer
	Log      *slog.Logger
	Metrics  *emf.Writer
	Now      func() time.Time

	mu sync.Mutex
	// outcomes remembers what finished runs proved ("instance/command"): SSM never
	// changes a finished run.
	outcomes map[string]fleet.Outcome
	types    *fleet.InstanceStore
	// handled remembers when this container finished with an instance, so a duplicate
	// event (EventBridge delivers at least once) costs no call at all. An event newer than
	// that (a start after a stop) is handled again.
	handled map[string]time.Time
}

// handledTTL bounds how long handled remembers; duplicates arrive within seconds.
const handledTTL = 10 * time.Minute

// BindingTTL is how long a binding verdict is reused: a fixed key policy is noticed within
// this long, without a check per launch.
const BindingTTL = 5 * time.Minute

// New wires a handler to AWS through cfg (the Lambda's configuration, or a fake account's);
// metric lines go to metrics.
func New(c Config, cfg aws.Config, log *slog.Logger, metrics io.Writer) *Handler {
	ssmc := ssm.NewFromConfig(cfg)
	trust := &document.Trust{SSM: ssmc, Name: c.DocumentName, Digest: c.DocumentDigest, KeyID: c.KeyARN, Secret: c.Agent.Secret, TTL: BindingTTL}
	h := &Handler{
		Config:    c,
		EC2:       ec2.NewFromConfig(cfg),
		SSM:       ssmc,
		SQS:       sqs.NewFromConfig(cfg),
		Events:    eventbridge.NewFromConfig(cfg),
		Binder:    &binding.Checker{IAM: iam.NewFromConfig(cfg), KMS: kms.NewFromConfig(cfg), TTL: BindingTTL},
		Documents: trust,
		History: &fleet.History{SSM: ssmc, DocumentName: c.DocumentName,
			Judge: &fleet.Judge{KeyARN: c.KeyARN, KeySource: c.Agent.KeySource, Documents: trust}},
		Log:     log,
		Metrics: &emf.Writer{W: metrics, Namespace: c.MetricNamespace},
		Now:     time.Now,
	}
	if c.LedgerTable != "" {
		h.Ledger = &ledger.Ledger{DB: dynamodb.NewFromConfig(cfg), Table: c.LedgerTable}
	}
	h.Findings = findings.New(cfg, c.KeyARN, c.SecurityHub, c.ComplianceItems, h.Metrics)
	return h
}

// Limits of the APIs (docs/aws-fidelity.md names each page).
const (
	maxSendCommandTargets = 50   // SendCommand: "you can specify up to 50 IDs"
	maxInfoFilterValues   = 50   // DescribeInstanceInformation: filters take 1 to 100 values, a page at most 50
	maxTagResources       = 1000 // CreateTags: "Up to 1000 resource IDs"
	maxSQSBatch           = 10   // SendMessageBatch: at most 10 entries
)

// sendReserve is the time an invocation keeps, after its last command, for the batch's
// ledger entries, tags and findings.
const sendReserve = 15 * time.Second

// visibilityGrace is how long after its event an instance that DescribeInstances does not
// show is looked for again: EC2's API is eventually consistent, and an instance may be
// missing from Describe calls for a while after RunInstances ("Eventual consistency in
// the Amazon EC2 API"). After that it is taken as terminated and gone.
const visibilityGrace = 10 * time.Minute

// Invoke is the Lambda entry point: an SQS batch from the launch queue, or the schedule's
// event for sweep mode.
func (h *Handler) Invoke(ctx context.Context, raw json.RawMessage) (any, error) {
	var probe struct {
		Records    []json.RawMessage `json:"Records"`
		DetailType string            `json:"detail-type"`
	}
	if err := json.Unmarshal(raw, &probe); err != nil {
		return nil, fmt.Errorf("unrecognised invocation: %w", err)
	}
	if probe.DetailType == "Scheduled Event" {
		return h.Sweep(ctx)
	}
	var batch events.SQSEvent
	if err := json.Unmarshal(raw, &batch); err != nil {
		return nil, fmt.Errorf("unrecognised invocation: %w", err)
	}
	return h.HandleSQS(ctx, batch)
}

// instance is what the handler knows of one instance in a batch.
type instance struct {
	ec2types.Instance
	id       string
	messages []string  // SQS message ids that named it
	event    time.Time // the newest of their events' times
	tags     map[string]string
	runs     []fleet.Run // SSM's runs of the document since launch, newest first, when read
	role     string      // the instance profile's role, once the binding check read it
	last     *fleet.Outcome
}

// unrecorded: SSM's last run ended, and neither the tags nor (so) the ledger say how:
// its result was lost (the result function's dead-letter queue holds it).
func (inst *instance) unrecorded() bool {
	return inst.last != nil && (inst.tags[contract.TagCommandID] != inst.runs[0].CommandID || inst.tags[contract.TagStatus] != inst.last.Status ||
		contract.Reason(inst.tags[contract.TagReason]) != inst.last.Reason)
}

func (inst *instance) profile() string { return fleet.Profile(inst.Instance) }

func (inst *instance) launchTime() string { return fleet.LaunchTime(inst.Instance) }

// batch carries one invocation's work.
type batch struct {
	h      *Handler
	retry  map[string]bool // message ids to hand back to SQS
	tags   map[statustag.Status][]*instance
	alerts []ebtypes.PutEventsRequestEntry
	ledger []entry
}

// entry is a ledger entry waiting to be written with the tags.
type entry struct {
	inst   *instance
	status statustag.Status
	// outcome, when set, is a run's outcome recorded on the result function's behalf,
	// under the result function's entry id.
	outcome *fleet.Outcome
}

// HandleSQS processes one batch. Messages whose instances are not ready yet (pending, SSM
// agent not Online, a transient API failure) are returned as batch item failures; every
// other message is done, whatever became of its instances.
func (h *Handler) HandleSQS(ctx context.Context, ev events.SQSEvent) (events.SQSEventResponse, error) {
	b := &batch{h: h, retry: map[string]bool{}, tags: map[statustag.Status][]*instance{}}
	byID := map[string]*instance{}
	h.forgetHandled()
	for _, rec := range ev.Records {
		log := h.Log.With("event_id", rec.MessageId)
		if id, at, ok := Terminated(rec.Body); ok {
			h.terminated(ctx, log, id, at, b, rec.MessageId)
			continue
		}
		ids, at, err := parse(rec.Body)
		switch {
		case errors.Is(err, ErrIgnored):
			log.Info("event needs no action", "why", err.Error())
			continue
		case err != nil:
			log.Warn("dropping a malformed event", "error", err.Error())
			continue
		}
		for _, id := range ids {
			if h.wasHandled(id, at) {
				log.Info("duplicate event for an instance already handled", "instance_id", id)
				continue
			}
			if byID[id] == nil {
				byID[id] = &instance{id: id}
			}
			byID[id].messages = append(byID[id].messages, rec.MessageId)
			if at.After(byID[id].event) {
				byID[id].event = at
			}
		}
	}
	if len(byID) > 0 {
		b.run(ctx, byID)
	}
	resp := events.SQSEventResponse{BatchItemFailures: []events.SQSBatchItemFailure{}}
	var back []events.SQSMessage
	for _, rec := range ev.Records {
		if b.retry[rec.MessageId] {
			resp.BatchItemFailures = append(resp.BatchItemFailures, events.SQSBatchItemFailure{ItemIdentifier: rec.MessageId})
			back = append(back, rec)
		}
	}
	h.retrySoon(ctx, back)
	return resp, nil
}

// retrySoon makes each message handed back visible again after
// contract.LaunchRetryDelay of its receive count rather than the queue's whole visibility
// timeout: what waits is mostly an SSM agent that comes Online seconds later. Lambda
// leaves a failed item in flight until its visibility ends, and a consumer may shorten
// that (ChangeMessageVisibility). A message this cannot change just waits out the
// timeout.
func (h *Handler) retrySoon(ctx context.Context, recs []events.SQSMessage) {
	if h.Config.QueueURL == "" {
		return
	}
	for chunk := range slices.Chunk(recs, maxSQSBatch) {
		entries := make([]sqstypes.ChangeMessageVisibilityBatchRequestEntry, 0, len(chunk))
		for n, rec := range chunk {
			received, err := strconv.Atoi(rec.Attributes["ApproximateReceiveCount"])
			if err != nil || rec.ReceiptHandle == "" {
				continue
			}
			entries = append(entries, sqstypes.ChangeMessageVisibilityBatchRequestEntry{Id: aws.String(strconv.Itoa(n)),
				ReceiptHandle: aws.String(rec.ReceiptHandle), VisibilityTimeout: int32(contract.LaunchRetryDelay(received).Seconds())})
		}
		if len(entries) == 0 {
			continue
		}
		out, err := h.SQS.ChangeMessageVisibilityBatch(ctx, &sqs.ChangeMessageVisibilityBatchInput{QueueUrl: aws.String(h.Config.QueueURL), Entries: entries})
		if err != nil {
			h.Log.Warn("shortening the retry delay; the messages wait out the visibility timeout", "messages", len(entries), "error", err.Error())
			continue
		}
		for _, f := range out.Failed {
			h.Log.Warn("shortening the retry delay; the message waits out the visibility timeout", "code", aws.ToString(f.Code), "error", aws.ToString(f.Message))
		}
	}
}

func (h *Handler) wasHandled(id string, eventTime time.Time) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	at, ok := h.handled[id]
	return ok && !eventTime.IsZero() && !eventTime.After(at)
}

func (h *Handler) markHandled(id string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.handled == nil {
		h.handled = map[string]time.Time{}
	}
	h.handled[id] = h.Now()
}

func (h *Handler) forgetHandled() {
	h.mu.Lock()
	defer h.mu.Unlock()
	for id, at := range h.handled {
		if h.Now().Sub(at) > handledTTL {
			delete(h.handled, id)
		}
	}
}

// terminated closes the instance's ledger item; a failure hands the message back.
func (h *Handler) terminated(ctx context.Context, log *slog.Logger, id string, at time.Time, b *batch, message string) {
	if h.Ledger == nil {
		log.Info("event needs no action", "why", id+" terminated; no ledger to close")
		return
	}
	closed, err := h.Ledger.Terminated(ctx, id, at)
	if err != nil {
		log.Error("closing the instance's ledger item; retrying later", "instance_id", id, "error", err.Error())
		b.retry[message] = true
		return
	}
	if !closed {
		return // never seen, or closed already
	}
	log.Info("instance terminated: its ledger item is closed", "instance_id", id)
	// Its finding, if storecrypt filed one, speaks of an instance that is gone.
	if err := h.Findings.File(ctx, []findings.Instance{{ID: id, Status: findings.StatusTerminated}}, at); err != nil {
		log.Error("archiving the instance's Security Hub finding", "instance_id", id, "error", err.Error())
	}
}

func (b *batch) later(inst *instance, why string) {
	b.h.log(inst).Info("retrying later", "why", why)
	for _, m := range inst.messages {
		b.retry[m] = true
	}
}

func (h *Handler) log(inst *instance) *slog.Logger {
	return h.Log.With("instance_id", inst.id, "event_id", strings.Join(inst.messages, ","))
}

func (b *batch) run(ctx context.Context, byID map[string]*instance) {
	ids := make([]string, 0, len(byID))
	for id := range byID {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	found, err := fleet.Describe(ctx, b.h.EC2, []ec2types.Filter{fleet.IDFilter()}, ids)
	if err != nil {
		// Nothing is known yet: the whole batch goes back to the queue.
		for _, inst := range byID {
			b.later(inst, err.Error())
		}
		return
	}
	var candidates []*instance
	for _, id := range ids {
		inst := byID[id]
		desc, ok := found[id]
		switch {
		case !ok && b.h.Now().Sub(inst.event) < visibilityGrace:
			b.later(inst, "DescribeInstances does not show the instance yet (EC2 is eventually consistent)")
			continue
		case !ok:
			b.h.log(inst).Info("instance no longer exists; dropping")
			continue
		}
		inst.Instance, inst.tags = desc, fleet.Tags(desc.Tags)
		switch inst.State.Name {
		case ec2types.InstanceStateNameRunning:
		case ec2types.InstanceStateNamePending:
			b.later(inst, "instance is still pending")
			continue
		default:
			b.h.log(inst).Info("instance is not running; dropping", "state", string(inst.State.Name))
			continue
		}
		in, err := b.h.inScope(ctx, inst)
		if err != nil {
			b.later(inst, err.Error())
			continue
		}
		if !in {
			continue
		}
		if b.h.optedOut(inst) {
			b.optOut(inst)
			continue
		}
		due, err := b.h.due(ctx, inst, b.h.Now())
		if err != nil {
			b.later(inst, err.Error())
			continue
		}
		if !due {
			if inst.unrecorded() {
				b.h.log(inst).Warn("SSM's last run ended unrecorded; recording its outcome", "command", inst.runs[0].CommandID, "status", inst.last.Status, "reason", string(inst.last.Reason))
				b.recordLost(inst)
				continue
			}
			b.h.log(inst).Info("already handled for this launch, as SSM records it; dropping", "status", inst.tags[contract.TagStatus], "command", inst.runs[0].CommandID)
			b.h.markHandled(inst.id)
			continue
		}
		candidates = append(candidates, inst)
	}
	if err := alert.Put(ctx, b.h.Events, b.alerts); err != nil {
		b.h.Log.Error("emitting opt-out events", "error", err.Error())
	}
	b.alerts = nil
	candidates = b.withInstanceStore(ctx, candidates)
	candidates = b.bound(ctx, candidates)
	candidates = b.online(ctx, candidates)
	b.send(ctx, candidates)
	// The ledger first: a decision it could not take is taken out of the tags (and
	// retried), so no tag ever claims what the ledger lacks (docs/security.md, "A decision
	// is tagged but never reaches the ledger").
	b.writeLedger(ctx)
	b.writeTags(ctx)
	b.writeFindings(ctx)
}

// inScope: the stack's scope rule (package scope); no tag takes an instance out of it
// (optedOut).
func (h *Handler) inScope(ctx context.Context, inst *instance) (bool, error) {
	in, why, err := h.Config.In(ctx, h.Binder, inst.tags, inst.profile())
	if err == nil && !in {
		h.log(inst).Debug("not in scope", "why", why)
	}
	return in, err
}

// optedOut: the instance carries storecrypt:encrypt=false and the stack allows opt-outs
// (fleet.Rule.OptedOut); a tag the stack ignores is said so in the log.
func (h *Handler) optedOut(inst *instance) bool {
	out, ignored := h.Config.OptedOut(inst.tags)
	if ignored {
		h.log(inst).Warn("ignoring " + contract.TagEncrypt + "=false: this stack does not allow opt-outs")
	}
	return out
}

// optOut records an opt-out: the status tag, the OptedOut metric and an alert, once per
// launch (a later event for the same opted-out launch changes nothing).
func (b *batch) optOut(inst *instance) {
	h := b.h
	h.markHandled(inst.id)
	if inst.tags[contract.TagLaunchTime] == inst.launchTime() && inst.tags[contract.TagStatus] == contract.StatusSkipped && contract.Reason(inst.tags[contract.TagReason]) == contract.ReasonOptedOut {
		return
	}
	h.log(inst).Warn("not encrypting: the instance opted out, and the stack allows opt-outs")
	b.tag(inst, contract.StatusSkipped, contract.ReasonOptedOut, "", 0)
	if err := h.Metrics.Emit(h.Now(), []emf.Metric{{Name: contract.MetricOptedOut, Unit: "Count", Value: 1}}, nil, map[string]string{"InstanceId": inst.id}); err != nil {
		h.log(inst).Error("writing a metric", "error", err.Error())
	}
	b.alerts = append(b.alerts, alert.Entry(contract.EventInstanceOptedOut, h.Config.EventBus, map[string]string{"instance-id": inst.id, "tag": contract.TagEncrypt + "=false"}))
}

// due: the instance needs a command now. LaunchTime changes at every start, and a start
// brings new, blank instance store, so nothing from an earlier launch counts. With no
// status tag for this launch, it does. Otherwise the tags are only a claim: blocked and
// skipped are the function's own decisions, made again; for anything else SSM's record
// of the runs since launch decides. A run pending longer than StaleAfter has lost its
// result and is sent again; an encrypted outcome (with the agent's evidence) is final; a
// failure that needs a person (refused-unsafe, bad-input, no-devices, wrong-key,
// wrong-instance) waits for one; any other failure is tried again after a backoff that
// doubles with each run. Removing the tags only makes a run come sooner, which apply
// survives; no tag can make a run not happen.
func (h *Handler) due(ctx context.Context, inst *instance, now time.Time) (bool, error) {
	launch := aws.ToTime(inst.LaunchTime)
	switch {
	case inst.tags[contract.TagLaunchTime] != inst.launchTime(), inst.tags[contract.TagStatus] == "":
		return true, nil
	case inst.tags[contract.TagStatus] == contract.StatusBlocked, inst.tags[contract.TagStatus] == contract.StatusSkipped:
		return true, nil
	}
	runs, err := h.History.Since(ctx, inst.id, launch)
	if err != nil {
		return false, err
	}
	inst.runs = runs
	if len(runs) == 0 {
		h.log(inst).Warn("the tags claim a run that SSM does not record; running", "status", inst.tags[contract.TagStatus], "command", inst.tags[contract.TagCommandID])
		return true, nil
	}
	last := runs[0]
	if !last.Ended() {
		return now.Sub(last.Requested) > h.Config.StaleAfter, nil
	}
	out, err := h.outcome(ctx, inst.id, last)
	if err != nil {
		return false, err
	}
	inst.last = &out
	if out.Status == contract.StatusEncrypted || out.Reason.Terminal() {
		return false, nil
	}
	return now.Sub(last.Requested) >= Backoff(len(runs)), nil
}

// outcome is what a finished run proved, read once per container.
func (h *Handler) outcome(ctx context.Context, id string, r fleet.Run) (fleet.Outcome, error) {
	key := id + "/" + r.CommandID
	h.mu.Lock()
	out, ok := h.outcomes[key]
	h.mu.Unlock()
	if ok {
		return out, nil
	}
	out, err := h.History.Outcome(ctx, id, r)
	if err != nil {
		return out, err
	}
	if out.Status != contract.StatusEncrypted {
		out.Report = nil // only the verdict is needed again; an encryption's report is its evidence
	}
	h.mu.Lock()
	if h.outcomes == nil {
		h.outcomes = map[string]fleet.Outcome{}
	}
	h.outcomes[key] = out
	h.mu.Unlock()
	return out, nil
}

// Backoff is how long a retryable failure waits after attempt n: 15 minutes, doubling,
// at most 4 hours.
func Backoff(n int) time.Duration {
	d := 15 * time.Minute
	for range min(n, 6) - 1 {
		d *= 2
	}
	return min(d, 4*time.Hour)
}

func (b *batch) withInstanceStore(ctx context.Context, in []*instance) []*instance {
	h := b.h
	if err := h.instanceStore().Learn(ctx, instanceTypes(in)); err != nil {
		for _, inst := range in {
			b.later(inst, err.Error())
		}
		return nil
	}
	var keep []*instance
	for _, inst := range in {
		if has, known := h.instanceStore().Has(inst.InstanceType); known && !has {
			h.log(inst).Info("instance type has no instance store; skipping", "type", string(inst.InstanceType))
			b.tag(inst, contract.StatusSkipped, contract.ReasonNoInstanceStore, "", 0)
			continue
		}
		keep = append(keep, inst)
	}
	return keep
}

// instanceStore is the container's knowledge of which types have instance store.
func (h *Handler) instanceStore() *fleet.InstanceStore {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.types == nil {
		h.types = &fleet.InstanceStore{EC2: h.EC2}
	}
	return h.types
}

func instanceTypes(in []*instance) []ec2types.InstanceType {
	types := make([]ec2types.InstanceType, len(in))
	for n, inst := range in {
		types[n] = inst.InstanceType
	}
	return types
}

// bound blocks the instances whose role may not use the key. The checker reads each
// distinct role and the key once; each instance is then judged in code, with its own id
// in the encryption context its agent will send.
func (b *batch) bound(ctx context.Context, in []*instance) []*instance {
	h := b.h
	failed := map[string]error{} // per profile: a failure to decide holds for all its instances
	var keep []*instance
	var alerts []ebtypes.PutEventsRequestEntry
	for _, inst := range in {
		p := inst.profile()
		if err := failed[p]; err != nil {
			b.later(inst, "checking the binding: "+err.Error())
			continue
		}
		v, err := h.Binder.Check(ctx, binding.Request{InstanceProfileARN: p, InstanceID: inst.id, KeyARN: h.Config.KeyARN,
			KeySource: h.Config.Agent.KeySource, Secret: h.Config.Agent.Secret})
		if err != nil {
			failed[p] = err
			b.later(inst, "checking the binding: "+err.Error())
			continue
		}
		inst.role = v.Role
		if !v.Allowed {
			h.log(inst).Warn("blocked: the instance role cannot use the key", "reason", string(v.Reason), "role", v.Role, "detail", v.Detail, "fix", v.Fix)
			if !inst.reported(contract.StatusBlocked, v.Reason) {
				alerts = append(alerts, b.blocked(inst, v))
			}
			b.tag(inst, contract.StatusBlocked, v.Reason, "", 0)
			continue
		}
		if len(v.Notes) > 0 {
			h.log(inst).Info("the binding check could not judge everything; the agent's own call will", "notes", v.Notes)
		}
		keep = append(keep, inst)
	}
	if err := alert.Put(ctx, h.Events, alerts); err != nil {
		// The tag and the log line still record the block; an alert lost is not a reason
		// to send the same block again.
		h.Log.Error("emitting blocked events", "error", err.Error())
	}
	return keep
}

// blocked writes the Blocked metric of one instance and returns its alert.
func (b *batch) blocked(inst *instance, v binding.Verdict) ebtypes.PutEventsRequestEntry {
	h := b.h
	if err := h.Metrics.Emit(h.Now(), []emf.Metric{{Name: contract.MetricBlocked, Unit: "Count", Value: 1}},
		map[string]string{contract.MetricReason: string(v.Reason)}, map[string]string{"InstanceId": inst.id}); err != nil {
		h.log(inst).Error("writing a metric", "error", err.Error())
	}
	return alert.Entry(contract.EventInstanceBlocked, h.Config.EventBus,
		map[string]string{"instance-id": inst.id, "reason": string(v.Reason), "role": v.Role, "detail": v.Detail, "fix": v.Fix})
}

// online keeps the instances whose SSM agent is Online; the others are retried later.
func (b *batch) online(ctx context.Context, in []*instance) []*instance {
	h := b.h
	var keep []*instance
	for chunk := range slices.Chunk(in, maxInfoFilterValues) {
		ids := make([]string, len(chunk))
		for k, inst := range chunk {
			ids[k] = inst.id
		}
		online := map[string]bool{}
		// A page holds 10 instances unless asked for more (at most 50): without MaxResults
		// a chunk of 50 took five calls.
		p := ssm.NewDescribeInstanceInformationPaginator(h.SSM, &ssm.DescribeInstanceInformationInput{
			Filters:    []ssmtypes.InstanceInformationStringFilter{{Key: aws.String("InstanceIds"), Values: ids}},
			MaxResults: aws.Int32(maxInfoFilterValues),
		})
		var err error
		for p.HasMorePages() && err == nil {
			var page *ssm.DescribeInstanceInformationOutput
			if page, err = p.NextPage(ctx); err == nil {
				for _, info := range page.InstanceInformationList {
					online[aws.ToString(info.InstanceId)] = info.PingStatus == ssmtypes.PingStatusOnline
				}
			}
		}
		for _, inst := range chunk {
			switch {
			case err != nil:
				b.later(inst, "describing SSM instances: "+err.Error())
			case !online[inst.id]:
				b.later(inst, "the SSM agent is not Online yet")
			default:
				keep = append(keep, inst)
			}
		}
	}
	return keep
}

// send runs the document on the instances, 50 per call and one architecture per call; all
// share the function's configuration as parameters and one document version: the one
// whose content the stack deployed, never whatever the default has become.
func (b *batch) send(ctx context.Context, in []*instance) {
	h := b.h
	if len(in) == 0 {
		return
	}
	pin, err := h.Documents.Version(ctx)
	if errors.Is(err, document.ErrUntrusted) || err == nil && pin.Drift() {
		h.documentDrift(ctx, err, pin)
	}
	if err != nil {
		for _, inst := range in {
			b.later(inst, "no trusted version of the document: "+err.Error())
		}
		return
	}
	byArch := map[string][]*instance{}
	for _, inst := range in {
		arch, ok := document.ArchFromEC2(string(inst.Architecture))
		if !ok {
			h.log(inst).Warn("storecrypt has no agent for this instance's architecture; dropping", "architecture", string(inst.Architecture))
			continue
		}
		byArch[arch] = append(byArch[arch], inst)
	}
	for _, arch := range document.Architectures {
		b.sendArch(ctx, pin, arch, byArch[arch])
	}
}

// sendArch sends the command to instances of one architecture, the document's
// Architecture parameter, which picks the one agent each downloads.
func (b *batch) sendArch(ctx context.Context, pin document.Pin, arch string, in []*instance) {
	h := b.h
	params := h.Config.Agent.DocumentValues()
	params[document.ArchitectureParameter] = []string{arch}
	for chunk := range slices.Chunk(in, maxSendCommandTargets) {
		if d, ok := ctx.Deadline(); ok && time.Until(d) < sendReserve {
			// Lambda ends the invocation at its deadline: what is not sent by then goes
			// back to the queue now, rather than the whole batch after a timeout.
			for _, inst := range chunk {
				b.later(inst, "the invocation's time is nearly up")
			}
			continue
		}
		ids := make([]string, len(chunk))
		for k, inst := range chunk {
			ids[k] = inst.id
		}
		in := &ssm.SendCommandInput{
			DocumentName: aws.String(h.Config.DocumentName), DocumentVersion: aws.String(pin.Version), InstanceIds: ids, Parameters: params,
			Comment: aws.String("storecrypt: encrypt instance store"),
		}
		if h.Config.AgentLogs != "" {
			in.CloudWatchOutputConfig = &ssmtypes.CloudWatchOutputConfig{CloudWatchOutputEnabled: true, CloudWatchLogGroupName: aws.String(h.Config.AgentLogs)}
		}
		out, err := h.SSM.SendCommand(ctx, in)
		if err != nil {
			for _, inst := range chunk {
				b.later(inst, "sending the command: "+err.Error())
			}
			continue
		}
		id := aws.ToString(out.Command.CommandId)
		for _, inst := range chunk {
			h.log(inst).Info("command sent", "command_id", id, "document_version", pin.Version)
			b.tag(inst, contract.StatusPending, "", id, len(inst.runs)+1)
		}
		if err := h.Metrics.Emit(h.Now(), []emf.Metric{{Name: contract.MetricCommandsSent, Unit: "Count", Value: float64(len(chunk))}}, nil,
			map[string]string{"CommandId": id}); err != nil {
			h.Log.Error("writing a metric", "error", err.Error())
		}
	}
}

// documentDrift reports that the document's default version is not the deployed content
// (or that no version is): a metric the stack alarms on, in every batch it affects; an
// error log line and an event each time the function reads the document anew.
func (h *Handler) documentDrift(ctx context.Context, untrusted error, pin document.Pin) {
	why := ""
	if untrusted != nil {
		why = untrusted.Error()
	}
	if err := h.Metrics.Emit(h.Now(), []emf.Metric{{Name: contract.MetricDocumentDrift, Unit: "Count", Value: 1}}, nil,
		map[string]string{"Document": h.Config.DocumentName, "DefaultVersion": pin.Default, "SentVersion": pin.Version}); err != nil {
		h.Log.Error("writing a metric", "error", err.Error())
	}
	if !pin.Fresh {
		return
	}
	h.Log.Error("the document's default version is not the content the stack deployed; sending only the deployed content",
		"document", h.Config.DocumentName, "default_version", pin.Default, "sent_version", pin.Version, "error", why)
	drift := alert.Entry(contract.EventDocumentDrift, h.Config.EventBus, map[string]string{
		"document": h.Config.DocumentName, "default-version": pin.Default, "sent-version": pin.Version, "error": why})
	if err := alert.Put(ctx, h.Events, []ebtypes.PutEventsRequestEntry{drift}); err != nil {
		h.Log.Error("emitting the drift event", "error", err.Error())
	}
}

// reported: the instance's tags already record this status for this launch. Tags are
// reports: the function decides again whatever they say, and writes (and alerts) only
// what changed.
func (inst *instance) reported(status string, reason contract.Reason) bool {
	return inst.tags[contract.TagLaunchTime] == inst.launchTime() && inst.tags[contract.TagStatus] == status && contract.Reason(inst.tags[contract.TagReason]) == reason
}

// tag queues status tags; instances with identical tags share one CreateTags call. A
// decision the tags already report (no command sent) is not written again.
func (b *batch) tag(inst *instance, status string, reason contract.Reason, commandID string, attempt int) {
	b.h.markHandled(inst.id)
	if commandID == "" && inst.reported(status, reason) {
		return
	}
	b.queue(inst, statustag.Status{Status: status, Reason: reason, CommandID: commandID, LaunchTime: inst.launchTime(), Attempt: attempt}, nil)
}

// recordLost queues SSM's outcome of the instance's last run, which ended with neither
// tags nor ledger saying how (its result was lost), under the result function's ledger
// entry.
func (b *batch) recordLost(inst *instance) {
	b.h.markHandled(inst.id)
	b.queue(inst, statustag.Status{Status: inst.last.Status, Reason: inst.last.Reason, CommandID: inst.runs[0].CommandID, LaunchTime: inst.launchTime(), Attempt: len(inst.runs)}, inst.last)
}

// queue holds a status for the batch's ledger entries and tags; out, when set, is the
// run's outcome the status records.
func (b *batch) queue(inst *instance, s statustag.Status, out *fleet.Outcome) {
	b.tags[s] = append(b.tags[s], inst)
	b.ledger = append(b.ledger, entry{inst: inst, status: s, outcome: out})
}

// writeLedger appends the batch's decisions to the ledger before their tags are written.
// A decision the ledger could not take is not tagged either: its message is handed back,
// and the decision made and recorded again. A command already sent cannot be taken back:
// its entry is logged as lost, and the result's entry still records the launch.
func (b *batch) writeLedger(ctx context.Context) {
	h := b.h
	if h.Ledger == nil {
		return
	}
	now := h.Now()
	for _, e := range b.ledger {
		inst, s := e.inst, e.status
		if inst.role == "" && inst.profile() != "" {
			inst.role, _ = h.Binder.Role(ctx, inst.profile()) // cached; without it the role stays unrecorded
		}
		launch := fleet.LedgerLaunch(inst.Instance, h.Config.KeyARN, inst.role)
		var entry ledger.Entry
		switch ref := s.CommandID; {
		case e.outcome != nil:
			entry = fleet.ResultEntry("launch", now, s.CommandID, *e.outcome, h.Config.DocumentName, h.Config.DocumentDigest)
		case ref == "":
			ref = inst.tags[contract.TagAt] // the state it moves from: the same decision again is the same entry
			entry = launchEntry(now, s, ref)
		default:
			launch.KeyState = string(kmstypes.KeyStateEnabled) // the binding check found it so
			entry = launchEntry(now, s, ref)
		}
		err := h.Ledger.Record(ctx, launch, entry)
		switch {
		case err == nil, errors.Is(err, ledger.ErrDuplicate):
		case s.CommandID != "":
			h.log(inst).Error("the ledger lacks this command's entry; the result will record the launch", "command_id", s.CommandID, "error", err.Error())
		default:
			b.tags[s] = slices.DeleteFunc(b.tags[s], func(x *instance) bool { return x == inst })
			h.mu.Lock()
			delete(h.handled, inst.id) // its redelivery must be handled, not taken for a duplicate
			h.mu.Unlock()
			b.later(inst, "recording in the ledger: "+err.Error())
		}
	}
	b.ledger = nil
}

// launchEntry is the ledger entry of the function's own decision s, which moves from ref.
func launchEntry(at time.Time, s statustag.Status, ref string) ledger.Entry {
	return ledger.Entry{ID: ledger.EntryID("launch", s.Status, string(s.Reason), ref), At: at, By: "launch",
		Status: s.Status, Reason: s.Reason, CommandID: s.CommandID}
}

// writeFindings files a Security Hub finding for each verdict the batch recorded (blocked,
// opted out), and the instance's Systems Manager compliance where the stack asks for it.
// A finding Security Hub does not import is an error in the log and a count in
// FindingsNotImported (the filer's), not a retry: the ledger and the tags already hold
// the verdict, a refused finding would be refused again, and a redelivered message
// would run the whole launch again for a copy.
func (b *batch) writeFindings(ctx context.Context) {
	h := b.h
	var vs []findings.Instance
	for s, instances := range b.tags {
		for _, inst := range instances {
			vs = append(vs, findings.Instance{ID: inst.id, Type: string(inst.InstanceType), Role: inst.role, Status: s.Status, Reason: s.Reason, CommandID: s.CommandID})
		}
	}
	if err := h.Findings.File(ctx, vs, h.Now()); err != nil {
		h.Log.Error("filing the verdicts for security teams", "instances", len(vs), "error", err.Error())
	}
}

// writeTags writes the batch's statuses the ledger took (writeLedger, before it).
func (b *batch) writeTags(ctx context.Context) {
	h := b.h
	statuses := make([]statustag.Status, 0, len(b.tags))
	for s := range b.tags {
		statuses = append(statuses, s)
	}
	// A stable order of calls makes the logs and the tests' call counts repeatable.
	slices.SortFunc(statuses, func(x, y statustag.Status) int {
		return strings.Compare(fmt.Sprint(x), fmt.Sprint(y))
	})
	at := h.Now().UTC().Format(time.RFC3339)
	for _, s := range statuses {
		instances := b.tags[s]
		s.At = at
		for chunk := range slices.Chunk(instances, maxTagResources) {
			ids := make([]string, len(chunk))
			for n, inst := range chunk {
				ids[n] = inst.id
			}
			if _, err := h.EC2.CreateTags(ctx, &ec2.CreateTagsInput{Resources: ids, Tags: s.Tags()}); err != nil {
				// The command (if any) is on its way; resending it for a tag would run the
				// agent twice. The result function tags the outcome.
				h.Log.Error("tagging instances", "instances", ids, "status", s.Status, "error", err.Error())
			}
		}
	}
}
