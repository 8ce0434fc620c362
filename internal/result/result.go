// Package result is the result function: when SSM reports that the storecrypt document
// finished on an instance, it reads the agent's JSON report, tags the instance encrypted
// or failed (with the reason), emits metrics as EMF log lines, and raises an event for
// failures.
package result

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"time"

	"github.com/aws/aws-lambda-go/events"
	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	ec2types "github.com/aws/aws-sdk-go-v2/service/ec2/types"
	"github.com/aws/aws-sdk-go-v2/service/eventbridge"
	ebtypes "github.com/aws/aws-sdk-go-v2/service/eventbridge/types"
	"github.com/aws/aws-sdk-go-v2/service/ssm"
	ssmtypes "github.com/aws/aws-sdk-go-v2/service/ssm/types"

	"github.com/storecrypt/storecrypt/internal/contract"
	"github.com/storecrypt/storecrypt/internal/document"
	"github.com/storecrypt/storecrypt/internal/emf"
	"github.com/storecrypt/storecrypt/internal/record"
)

// SSM is the part of the SSM client the function uses.
type SSM interface {
	GetCommandInvocation(ctx context.Context, in *ssm.GetCommandInvocationInput, optFns ...func(*ssm.Options)) (*ssm.GetCommandInvocationOutput, error)
}

// EC2 is the part of the EC2 client the function uses.
type EC2 interface {
	DescribeInstances(ctx context.Context, in *ec2.DescribeInstancesInput, optFns ...func(*ec2.Options)) (*ec2.DescribeInstancesOutput, error)
	CreateTags(ctx context.Context, in *ec2.CreateTagsInput, optFns ...func(*ec2.Options)) (*ec2.CreateTagsOutput, error)
}

// Documents says whether a document version holds the deployed content (document.Trust).
type Documents interface {
	Check(ctx context.Context, version string) error
}

// Config is the function's configuration: the document, and what the agent's report
// must show for an instance to count as encrypted.
type Config struct {
	DocumentName   string
	DocumentDigest string
	EventBus       string
	KeyARN         string
	KeySource      string
	Secret         string
}

// Handler is the result function.
type Handler struct {
	Config    Config
	SSM       SSM
	EC2       EC2
	Events    record.EventBridge
	Documents Documents
	Log       *slog.Logger
	Metrics   *emf.Writer
	Now       func() time.Time
}

// New wires a handler to AWS through cfg; metric lines go to metrics.
func New(c Config, cfg aws.Config, log *slog.Logger, metrics io.Writer) *Handler {
	ssmc := ssm.NewFromConfig(cfg)
	return &Handler{
		Config: c, SSM: ssmc, EC2: ec2.NewFromConfig(cfg), Events: eventbridge.NewFromConfig(cfg),
		Documents: &document.Trust{SSM: ssmc, Name: c.DocumentName, Digest: c.DocumentDigest, KeyID: c.KeyARN, Secret: c.Secret},
		Log:       log, Metrics: &emf.Writer{W: metrics, Namespace: contract.MetricNamespace}, Now: time.Now,
	}
}

// LoadConfig reads the configuration from the environment the stack sets; every error
// names the variable.
func LoadConfig(getenv func(string) string) (Config, error) {
	c := Config{
		DocumentName: getenv(contract.EnvDocumentName), DocumentDigest: getenv(contract.EnvDocumentDigest),
		EventBus: getenv(contract.EnvEventBus), KeyARN: getenv(contract.EnvKMSKeyARN),
		KeySource: getenv(contract.EnvKeySource), Secret: getenv(contract.EnvSecret),
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

// Outcome is what the function recorded, for tests and logs.
type Outcome struct {
	Status string           `json:"status"`
	Reason contract.Reason  `json:"reason,omitempty"`
	Report *contract.Report `json:"report,omitempty"`
}

// failures maps SSM's final failure statuses (contract.FinalInvocationStatuses) to
// reasons, used when the agent left no report.
var failures = map[string]contract.Reason{
	"Failed":    "",
	"TimedOut":  contract.ReasonTimedOut,
	"Cancelled": contract.ReasonCancelled,
	"Canceled":  contract.ReasonCancelled,
}

// details maps GetCommandInvocation's StatusDetails (documented with spaces, "Delivery
// Timed Out"; compared without spaces or case) to a more precise reason than Status.
var details = map[string]contract.Reason{
	"deliverytimedout":  contract.ReasonDeliveryTimedOut,
	"executiontimedout": contract.ReasonTimedOut,
	"undeliverable":     contract.ReasonUndeliverable,
	"terminated":        contract.ReasonTerminated,
}

// Handle records the outcome of one invocation. An error asks Lambda to retry the event
// (EventBridge invokes asynchronously; what still fails goes to the function's DLQ);
// events for other documents, unfinished statuses and results from before the
// instance's current launch are ignored.
func (h *Handler) Handle(ctx context.Context, ev events.CloudWatchEvent) (*Outcome, error) {
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
	if d.DocumentName != h.Config.DocumentName {
		log.Info("ignoring another document's invocation", "document", d.DocumentName)
		return nil, nil
	}
	reason, failed := failures[d.Status]
	if d.Status != "Success" && !failed {
		log.Debug("invocation not finished", "status", d.Status)
		return nil, nil
	}
	inst, err := h.instance(ctx, d.InstanceID)
	if err != nil {
		return nil, err
	}
	if inst == nil {
		log.Info("instance is gone; nothing to record")
		return nil, nil
	}
	tags := record.Tags(inst.Tags)
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
	case superseded(tags, d.CommandID, requested):
		log.Info("a later command speaks for this instance; ignoring this older result", "status", tags[contract.TagStatus], "command", tags[contract.TagCommandID])
		return nil, nil
	}
	inv, err := h.SSM.GetCommandInvocation(ctx, &ssm.GetCommandInvocationInput{
		CommandId: aws.String(d.CommandID), InstanceId: aws.String(d.InstanceID), PluginName: aws.String(contract.DocumentRunStep)})
	var gone *ssmtypes.InvocationDoesNotExist
	switch {
	case errors.As(err, &gone):
		log.Warn("the invocation is gone; recording the status alone")
		inv = nil
	case err != nil:
		return nil, fmt.Errorf("reading invocation %s on %s: %w", d.CommandID, d.InstanceID, err)
	}
	out := &Outcome{Status: contract.StatusEncrypted}
	if inv != nil {
		out.Report = ParseReport(aws.ToString(inv.StandardOutputContent))
	}
	if failed {
		out.Status, out.Reason = contract.StatusFailed, failureReason(d, inv, out.Report, reason)
	} else if out.Reason, err = h.evidence(ctx, log, d, inv, out.Report); err != nil {
		return nil, err
	} else if out.Reason != "" {
		out.Status = contract.StatusUnverified
	}
	now := h.Now()
	if err := h.tag(ctx, d, inst, tags, out, now); err != nil {
		return nil, err
	}
	h.record(ctx, log, d, inst, out, now)
	return out, nil
}

// failureReason: the agent's own result when it left one, else its exit code, else what
// SSM says of the invocation.
func failureReason(d Detail, inv *ssm.GetCommandInvocationOutput, rep *contract.Report, byStatus contract.Reason) contract.Reason {
	switch {
	case rep != nil && rep.Result != "" && rep.Result != contract.ExitCodeNames[contract.ExitOK]:
		return contract.Reason(rep.Result)
	case inv != nil && inv.ResponseCode > 0 && byStatus == "":
		return contract.Reason(contract.ExitCode(inv.ResponseCode).String())
	}
	if inv != nil {
		key := strings.ToLower(strings.ReplaceAll(aws.ToString(inv.StatusDetails), " ", ""))
		if r, ok := details[key]; ok {
			return r
		}
	}
	if byStatus != "" {
		return byStatus
	}
	return contract.Reason(strings.ToLower(d.Status))
}

// evidence says why a successful invocation does not prove the instance store encrypted
// under the stack's key by the stack's document, or "" when it does: the run must be of
// a version that holds the deployed content, and the agent's report must show this
// instance's volume ready, open and mounted, with the stack's key source and key.
func (h *Handler) evidence(ctx context.Context, log *slog.Logger, d Detail, inv *ssm.GetCommandInvocationOutput, rep *contract.Report) (contract.Reason, error) {
	if inv == nil || rep == nil || rep.Command != "apply" || rep.Result != contract.ExitCodeNames[contract.ExitOK] {
		return contract.ReasonNoReport, nil
	}
	if err := h.Documents.Check(ctx, aws.ToString(inv.DocumentVersion)); errors.Is(err, document.ErrUntrusted) {
		log.Warn("the command ran a document version the stack did not deploy", "error", err.Error())
		return contract.ReasonUntrustedDocument, nil
	} else if err != nil {
		return "", err
	}
	l := rep.Layout
	switch {
	case l == nil || l.State != contract.StateReady || !l.Open || !l.Mounted:
		return contract.ReasonNotReady, nil
	case l.KeySource != h.Config.KeySource || l.KeyID != h.Config.KeyARN:
		return contract.ReasonWrongKey, nil
	case rep.InstanceID != d.InstanceID && (rep.InstanceID != "" || l.KeySource == contract.KeySourceKMSDataKey):
		return contract.ReasonWrongInstance, nil
	}
	return "", nil
}

// ParseReport finds the agent's JSON report in a command's output: the document prints
// download and install lines first, then the report, which starts at a line that is "{".
func ParseReport(stdout string) *contract.Report {
	start := strings.Index(stdout, "\n{\n")
	switch {
	case strings.HasPrefix(stdout, "{\n"):
		start = 0
	case start >= 0:
		start++
	default:
		return nil
	}
	end := strings.LastIndex(stdout, "\n}")
	if end < start {
		return nil
	}
	var r contract.Report
	if err := json.Unmarshal([]byte(stdout[start:end+2]), &r); err != nil || r.Command == "" {
		return nil
	}
	return &r
}

func (h *Handler) instance(ctx context.Context, id string) (*ec2types.Instance, error) {
	out, err := h.EC2.DescribeInstances(ctx, &ec2.DescribeInstancesInput{
		Filters: []ec2types.Filter{{Name: aws.String("instance-id"), Values: []string{id}}},
	})
	if err != nil {
		return nil, fmt.Errorf("describing %s: %w", id, err)
	}
	for _, r := range out.Reservations {
		for _, inst := range r.Instances {
			if aws.ToString(inst.InstanceId) == id {
				return &inst, nil
			}
		}
	}
	return nil, nil
}

// superseded: the status tags speak of another command, recorded after this one was
// sent (a newer command pending, or already finished): an older result arriving late
// must not overwrite them.
func superseded(tags map[string]string, commandID string, requested time.Time) bool {
	if tags[contract.TagCommandID] == "" || tags[contract.TagCommandID] == commandID {
		return false
	}
	since, err := time.Parse(time.RFC3339, tags[contract.TagAt])
	// The tag's time has whole seconds: a command sent in the same second is not older.
	return err == nil && requested.Before(since.Truncate(time.Second))
}

func (h *Handler) tag(ctx context.Context, d Detail, inst *ec2types.Instance, tags map[string]string, out *Outcome, now time.Time) error {
	s := record.Status{Status: out.Status, Reason: out.Reason, CommandID: d.CommandID,
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
func (h *Handler) record(ctx context.Context, log *slog.Logger, d Detail, inst *ec2types.Instance, out *Outcome, now time.Time) {
	props := map[string]string{"InstanceId": d.InstanceID, "CommandId": d.CommandID}
	var err error
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
		alert := record.Alert(contract.EventInstanceFailed, h.Config.EventBus,
			map[string]string{"instance-id": d.InstanceID, "command-id": d.CommandID, "status": out.Status, "reason": string(out.Reason), "error": msg})
		if perr := record.PutAlerts(ctx, h.Events, []ebtypes.PutEventsRequestEntry{alert}); perr != nil {
			log.Error("emitting the failure event", "error", perr.Error())
		}
	}
	if err != nil {
		log.Error("writing a metric", "error", err.Error())
	}
}
