// Package result is the result function: when SSM reports that the storecrypt document
// finished on an instance, it reads the agent's JSON report, tags the instance encrypted
// or failed (with the reason), emits metrics as EMF log lines, and raises an event for
// failures. It records the revoke, resume and shred documents' runs the same way
// (revocation.go): what the instance answered, as its claim.
package result

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"time"

	"github.com/aws/aws-lambda-go/events"
	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	ec2types "github.com/aws/aws-sdk-go-v2/service/ec2/types"
	"github.com/aws/aws-sdk-go-v2/service/eventbridge"
	ebtypes "github.com/aws/aws-sdk-go-v2/service/eventbridge/types"
	"github.com/aws/aws-sdk-go-v2/service/ssm"

	"github.com/storecrypt/storecrypt/internal/alert"
	"github.com/storecrypt/storecrypt/internal/contract"
	"github.com/storecrypt/storecrypt/internal/document"
	"github.com/storecrypt/storecrypt/internal/emf"
	"github.com/storecrypt/storecrypt/internal/findings"
	"github.com/storecrypt/storecrypt/internal/fleet"
	"github.com/storecrypt/storecrypt/internal/ledger"
	"github.com/storecrypt/storecrypt/internal/statustag"
)

// SSM is the part of the SSM client the function uses.
type SSM interface {
	fleet.SSM
}

// EC2 is the part of the EC2 client the function uses.
type EC2 interface {
	DescribeInstances(ctx context.Context, in *ec2.DescribeInstancesInput, optFns ...func(*ec2.Options)) (*ec2.DescribeInstancesOutput, error)
	CreateTags(ctx context.Context, in *ec2.CreateTagsInput, optFns ...func(*ec2.Options)) (*ec2.CreateTagsOutput, error)
}

// Config is the function's configuration: the document, and what the agent's report
// must show for an instance to count as encrypted.
type Config struct {
	DocumentName    string
	DocumentDigest  string
	EventBus        string
	KeyARN          string
	KeySource       string
	Secret          string
	LedgerTable     string // the stack always sets it ("" runs without one)
	MetricNamespace string // where the metrics go; contract.MetricNamespace unless the stack names another
	SecurityHub     bool   // file Security Hub findings
	// ComplianceItems writes each verdict as Systems Manager compliance.
	ComplianceItems bool
	// Revocation are the deployed revoke, resume and shred documents, whose results the
	// function records too; a stack that predates them sets none.
	Revocation []RevocationDocument
}

// Handler is the result function.
type Handler struct {
	Config  Config
	SSM     SSM
	EC2     EC2
	Events  alert.EventBridge
	History *fleet.History // also judges what a run proves
	// Ledger, when the stack has one, gets the outcome of every run, with the evidence
	// of an encrypted one, before the tags do.
	Ledger Ledger
	// Findings files the verdict in Security Hub and Systems Manager compliance, as the
	// stack enables them; nil files nothing.
	Findings *findings.Filer
	Log      *slog.Logger
	Metrics  *emf.Writer
	Now      func() time.Time
	// Revocations trusts each revocation document's deployed content, by name.
	Revocations map[string]*document.Trust
}

// New wires a handler to AWS through cfg; metric lines go to metrics.
func New(c Config, cfg aws.Config, log *slog.Logger, metrics io.Writer) *Handler {
	ssmc := ssm.NewFromConfig(cfg)
	judge := &fleet.Judge{KeyARN: c.KeyARN, KeySource: c.KeySource,
		Documents: &document.Trust{SSM: ssmc, Name: c.DocumentName, Digest: c.DocumentDigest, KeyID: c.KeyARN, Secret: c.Secret}}
	h := &Handler{
		Config: c, SSM: ssmc, EC2: ec2.NewFromConfig(cfg), Events: eventbridge.NewFromConfig(cfg),
		History: &fleet.History{SSM: ssmc, DocumentName: c.DocumentName, Judge: judge},
		Log:     log, Metrics: &emf.Writer{W: metrics, Namespace: c.MetricNamespace}, Now: time.Now,
	}
	if c.LedgerTable != "" {
		h.Ledger = &ledger.Ledger{DB: dynamodb.NewFromConfig(cfg), Table: c.LedgerTable}
	}
	h.Revocations = map[string]*document.Trust{}
	for _, d := range c.Revocation {
		// No key or secret default: the revocation documents have neither.
		h.Revocations[d.Name] = &document.Trust{SSM: ssmc, Name: d.Name, Digest: d.Digest}
	}
	h.Findings = findings.New(cfg, c.KeyARN, c.SecurityHub, c.ComplianceItems, h.Metrics)
	return h
}

// Ledger appends to the durable record (ledger.Ledger).
type Ledger interface {
	Record(ctx context.Context, launch ledger.Launch, e ledger.Entry) error
}

// LoadConfig reads the configuration from the environment the stack sets; every error
// names the variable.
func LoadConfig(getenv func(string) string) (Config, error) {
	c := Config{
		DocumentName: getenv(contract.EnvDocumentName), DocumentDigest: getenv(contract.EnvDocumentDigest),
		EventBus: getenv(contract.EnvEventBus), KeyARN: getenv(contract.EnvKMSKeyARN),
		KeySource: getenv(contract.EnvKeySource), Secret: getenv(contract.EnvSecret), LedgerTable: getenv(contract.EnvLedgerTable),
		SecurityHub: getenv(contract.EnvSecurityHub) == "true", ComplianceItems: getenv(contract.EnvComplianceItems) == "true",
		MetricNamespace: cmp.Or(getenv(contract.EnvMetricNamespace), contract.MetricNamespace),
	}
	var errs []error
	for name, v := range map[string]string{contract.EnvDocumentName: c.DocumentName, contract.EnvDocumentDigest: c.DocumentDigest, contract.EnvKMSKeyARN: c.KeyARN} {
		if v == "" {
			errs = append(errs, fmt.Errorf("%s is not set", name))
		}
	}
	if c.KeySource == "" {
		c.KeySource = contract.DefaultKeySource
	}
	if c.KeySource != contract.KeySourceKMSDataKey && c.KeySource != contract.KeySourceS3KMS {
		errs = append(errs, fmt.Errorf("%s=%q: want %s or %s", contract.EnvKeySource, c.KeySource, contract.KeySourceKMSDataKey, contract.KeySourceS3KMS))
	}
	if c.EventBus == "" {
		c.EventBus = "default"
	}
	revocation, err := loadRevocation(getenv)
	if err != nil {
		errs = append(errs, err)
	}
	c.Revocation = revocation
	if len(errs) > 0 {
		return Config{}, fmt.Errorf("invalid configuration: %w", errors.Join(errs...))
	}
	return c, nil
}

// Detail is the event's detail.
type Detail struct {
	CommandID    string `json:"command-id"`
	DocumentName string `json:"document-name"`
	InstanceID   string `json:"instance-id"`
	Requested    string `json:"requested-date-time"`
	Status       string `json:"status"`
}

// Handle records the outcome of one invocation. An error asks Lambda to retry the event
// (EventBridge invokes asynchronously; what still fails goes to the function's DLQ);
// events for other documents, unfinished statuses and results from before the
// instance's current launch are ignored.
func (h *Handler) Handle(ctx context.Context, ev events.CloudWatchEvent) (*fleet.Outcome, error) {
	log := h.Log.With("event_id", ev.ID)
	if ev.DetailType != contract.DetailInvocationStatus {
		log.Warn("ignoring an event of another type", "detail_type", ev.DetailType)
		return nil, nil
	}
	var d Detail
	if err := json.Unmarshal(ev.Detail, &d); err != nil || d.CommandID == "" || d.InstanceID == "" {
		log.Warn("ignoring a malformed invocation event")
		return nil, nil
	}
	log = log.With("instance_id", d.InstanceID, "command_id", d.CommandID)
	revocation, revoking := h.Config.revocation(d.DocumentName)
	if d.DocumentName != h.Config.DocumentName && !revoking {
		log.Info("ignoring another document's invocation", "document", d.DocumentName)
		return nil, nil
	}
	if !fleet.Ended(d.Status, "") { // the event says no more than Status
		log.Debug("invocation not finished", "status", d.Status)
		return nil, nil
	}
	inst, err := fleet.ByID(ctx, h.EC2, d.InstanceID)
	if err != nil {
		return nil, err
	}
	if inst == nil {
		log.Info("instance is gone; nothing to record")
		return nil, nil
	}
	requested, err := time.Parse(time.RFC3339Nano, d.Requested)
	switch {
	case err != nil:
		// Without it, whether the result is for this launch cannot be told.
		log.Warn("ignoring an invocation event without a readable requested-date-time", "requested", d.Requested)
		return nil, nil
	case inst.LaunchTime != nil && requested.Before(*inst.LaunchTime):
		// A stop/start gave the instance new, blank instance store after this command was
		// sent: its result says nothing of the disks the instance has now.
		log.Info("ignoring a result from before the instance's current launch", "requested", d.Requested, "launch_time", inst.LaunchTime.UTC().Format(time.RFC3339))
		return nil, nil
	}
	if revoking {
		return h.revocation(ctx, log, d, revocation, inst, requested)
	}
	if newer, err := h.superseded(ctx, d, requested); err != nil {
		return nil, err
	} else if newer != "" {
		log.Info("a later command speaks for this instance; ignoring this older result", "command", newer)
		return nil, nil
	}
	out, err := h.History.Outcome(ctx, d.InstanceID, fleet.Run{CommandID: d.CommandID, Requested: requested, Status: d.Status})
	if err != nil {
		return nil, err
	}
	return h.keep(ctx, log, d, inst, out)
}

// keep records a run's outcome: the ledger first, then the tags, the metrics and alert,
// and the findings. A resume's outcome tags the instance encrypted again.
func (h *Handler) keep(ctx context.Context, log *slog.Logger, d Detail, inst *ec2types.Instance, out fleet.Outcome) (*fleet.Outcome, error) {
	if out.Reason == contract.ReasonUntrustedDocument {
		log.Warn("the command ran a document version the stack did not deploy")
	}
	now := h.Now()
	if err := h.toLedger(ctx, d, inst, &out, now); err != nil {
		return nil, err
	}
	tagged := out
	if tagged.Status == contract.StatusResumed {
		tagged.Status = contract.StatusEncrypted
	}
	if err := h.tag(ctx, d, inst, fleet.Tags(inst.Tags), &tagged, now); err != nil {
		return nil, err
	}
	h.record(ctx, log, d, inst, &out, now)
	h.file(ctx, log, d, inst, &out, now)
	return &out, nil
}

// file puts the verdict in Security Hub: an active finding for an instance that is not
// encrypted, the same finding archived once it is. A finding Security Hub does not
// import is an error in the log and a count in FindingsNotImported (the filer's), not a
// failed invocation: the ledger and the tags already hold the verdict, a refused finding
// would be refused again, and a retried event would emit the metrics and the alert
// twice.
func (h *Handler) file(ctx context.Context, log *slog.Logger, d Detail, inst *ec2types.Instance, out *fleet.Outcome, now time.Time) {
	v := findings.Instance{ID: d.InstanceID, Type: string(inst.InstanceType), Status: out.Status, Reason: out.Reason, CommandID: d.CommandID}
	if err := h.Findings.File(ctx, []findings.Instance{v}, now); err != nil {
		log.Error("filing the verdict for security teams", "error", err.Error())
	}
}

// toLedger appends the run's outcome to the launch's ledger item. A failure fails the
// invocation, which Lambda retries and then sends to the dead-letter queue: the entry is
// idempotent, so a retry that finds it written changes nothing.
func (h *Handler) toLedger(ctx context.Context, d Detail, inst *ec2types.Instance, out *fleet.Outcome, now time.Time) error {
	if h.Ledger == nil {
		return nil
	}
	e := fleet.ResultEntry("result", now, d.CommandID, *out, d.DocumentName, h.Config.DocumentDigest)
	if _, ok := h.Config.revocation(d.DocumentName); ok {
		e.Note = revocationNote(out.Report)
	}
	err := h.Ledger.Record(ctx, fleet.LedgerLaunch(*inst, h.Config.KeyARN, ""), e)
	if errors.Is(err, ledger.ErrDuplicate) {
		return nil
	}
	return err
}

// superseded names a later run of the document on the instance, if SSM has one: an older
// result arriving late must not overwrite what the newer run records. SSM's own record
// decides, not the instance's tags, which anyone with ec2:CreateTags could write.
func (h *Handler) superseded(ctx context.Context, d Detail, requested time.Time, documents ...string) (string, error) {
	histories := []*fleet.History{h.History}
	if len(documents) > 0 {
		histories = nil
		for _, name := range documents {
			histories = append(histories, &fleet.History{SSM: h.SSM, DocumentName: name})
		}
	}
	for _, hist := range histories {
		runs, err := hist.Since(ctx, d.InstanceID, requested)
		if err != nil {
			return "", err
		}
		for _, r := range runs {
			if r.CommandID != d.CommandID && r.Requested.After(requested) {
				return r.CommandID, nil
			}
		}
	}
	return "", nil
}

func (h *Handler) tag(ctx context.Context, d Detail, inst *ec2types.Instance, tags map[string]string, out *fleet.Outcome, now time.Time) error {
	s := statustag.Status{Status: out.Status, Reason: out.Reason, CommandID: d.CommandID,
		At: now.UTC().Format(time.RFC3339), LaunchTime: aws.ToTime(inst.LaunchTime).UTC().Format(time.RFC3339)}
	if tags[contract.TagLaunchTime] != s.LaunchTime {
		// A console rerun on an instance the launch function never sent to.
		s.Attempt = 1
	}
	if _, err := h.EC2.CreateTags(ctx, &ec2.CreateTagsInput{Resources: []string{d.InstanceID}, Tags: s.Tags()}); err != nil {
		return fmt.Errorf("tagging %s %s: %w", d.InstanceID, out.Status, err)
	}
	return nil
}

// record writes the metrics and, for anything but encrypted, the alert event.
func (h *Handler) record(ctx context.Context, log *slog.Logger, d Detail, inst *ec2types.Instance, out *fleet.Outcome, now time.Time) {
	props := map[string]string{"InstanceId": d.InstanceID, "CommandId": d.CommandID}
	var err error
	if done, ok := h.revocationEvent(d, out); ok {
		log.Info("the instance reports the revocation document done", "status", out.Status)
		if perr := alert.Put(ctx, h.Events, []ebtypes.PutEventsRequestEntry{done}); perr != nil {
			log.Error("emitting the revocation event", "error", perr.Error())
		}
		return
	}
	if out.Status == contract.StatusEncrypted {
		metrics := []emf.Metric{{Name: contract.MetricEncrypted, Unit: "Count", Value: 1}}
		if inst.LaunchTime != nil {
			metrics = append(metrics, emf.Metric{Name: contract.MetricSecondsToEncrypted, Unit: "Seconds", Value: now.Sub(*inst.LaunchTime).Seconds()})
		}
		err = h.Metrics.Emit(now, metrics, nil, props)
		log.Info("instance store encrypted")
	} else {
		err = h.Metrics.Emit(now, []emf.Metric{{Name: contract.MetricFailed, Unit: "Count", Value: 1}}, map[string]string{contract.MetricReason: string(out.Reason)}, props)
		msg := ""
		if out.Report != nil {
			msg = out.Report.Error
		}
		log.Warn("instance store not encrypted", "status", out.Status, "reason", string(out.Reason), "error", msg)
		failed := alert.Entry(contract.EventInstanceFailed, h.Config.EventBus,
			map[string]string{"instance-id": d.InstanceID, "command-id": d.CommandID, "document": d.DocumentName, "status": out.Status, "reason": string(out.Reason), "error": msg})
		if perr := alert.Put(ctx, h.Events, []ebtypes.PutEventsRequestEntry{failed}); perr != nil {
			log.Error("emitting the failure event", "error", perr.Error())
		}
	}
	if err != nil {
		log.Error("writing a metric", "error", err.Error())
	}
}
