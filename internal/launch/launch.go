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
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	sqstypes "github.com/aws/aws-sdk-go-v2/service/sqs/types"
	"github.com/aws/aws-sdk-go-v2/service/ssm"

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
	Revoked(ctx context.Context, instanceID string) (contract.Reason, error)
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
	KMS       KMS
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
	ssmc, kmsc := ssm.NewFromConfig(cfg), kms.NewFromConfig(cfg, grantQuotaNotRetried)
	trust := &document.Trust{SSM: ssmc, Name: c.DocumentName, Digest: c.DocumentDigest, KeyID: c.KeyARN, Secret: c.Agent.Secret, TTL: BindingTTL}
	h := &Handler{
		Config:    c,
		EC2:       ec2.NewFromConfig(cfg),
		SSM:       ssmc,
		SQS:       sqs.NewFromConfig(cfg),
		Events:    eventbridge.NewFromConfig(cfg),
		KMS:       kmsc,
		Binder:    &binding.Checker{IAM: iam.NewFromConfig(cfg), KMS: kmsc, TTL: BindingTTL},
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
	var gone []termination
	for _, rec := range ev.Records {
		log := h.Log.With("event_id", rec.MessageId)
		if id, at, ok := Terminated(rec.Body); ok {
			gone = append(gone, termination{id: id, message: rec.MessageId, at: at, log: log})
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
	h.retireGrants(ctx, b, gone)
	for _, g := range gone {
		h.terminated(ctx, g.log, g.id, g.at, b, g.message)
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
	candidates = b.notRevoked(ctx, candidates)
	candidates = b.granted(ctx, candidates)
	b.send(ctx, candidates)
	// The ledger first: a decision it could not take is taken out of the tags (and
	// retried), so no tag ever claims what the ledger lacks (docs/security.md, "A decision
	// is tagged but never reaches the ledger").
	b.writeLedger(ctx)
	b.writeTags(ctx)
	b.writeFindings(ctx)
}
