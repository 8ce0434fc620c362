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
	"github.com/storecrypt/storecrypt/internal/emf"
	"github.com/storecrypt/storecrypt/internal/record"
)

// DetailType is the SSM event the function handles.
const DetailType = "EC2 Command Invocation Status-change Notification"

// SSM is the part of the SSM client the function uses.
type SSM interface {
	GetCommandInvocation(ctx context.Context, in *ssm.GetCommandInvocationInput, optFns ...func(*ssm.Options)) (*ssm.GetCommandInvocationOutput, error)
}

// EC2 is the part of the EC2 client the function uses.
type EC2 interface {
	DescribeInstances(ctx context.Context, in *ec2.DescribeInstancesInput, optFns ...func(*ec2.Options)) (*ec2.DescribeInstancesOutput, error)
	CreateTags(ctx context.Context, in *ec2.CreateTagsInput, optFns ...func(*ec2.Options)) (*ec2.CreateTagsOutput, error)
}

// EventBridge is the part of the EventBridge client the alerts use.
type EventBridge interface {
	PutEvents(ctx context.Context, in *eventbridge.PutEventsInput, optFns ...func(*eventbridge.Options)) (*eventbridge.PutEventsOutput, error)
}

// Config is the function's configuration.
type Config struct {
	DocumentName string
	EventBus     string
}

// Handler is the result function.
type Handler struct {
	Config  Config
	SSM     SSM
	EC2     EC2
	Events  EventBridge
	Log     *slog.Logger
	Metrics *emf.Writer
	Now     func() time.Time
}

// New wires a handler to AWS through cfg; metric lines go to metrics.
func New(c Config, cfg aws.Config, log *slog.Logger, metrics io.Writer) *Handler {
	return &Handler{
		Config: c, SSM: ssm.NewFromConfig(cfg), EC2: ec2.NewFromConfig(cfg), Events: eventbridge.NewFromConfig(cfg),
		Log: log, Metrics: &emf.Writer{W: metrics, Namespace: contract.MetricNamespace}, Now: time.Now,
	}
}

// LoadConfig reads the configuration from the environment the stack sets.
func LoadConfig(getenv func(string) string) (Config, error) {
	c := Config{DocumentName: getenv(contract.EnvDocumentName), EventBus: getenv(contract.EnvEventBus)}
	if c.DocumentName == "" {
		return Config{}, fmt.Errorf("invalid configuration: %s is not set", contract.EnvDocumentName)
	}
	if c.EventBus == "" {
		c.EventBus = "default"
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

// failures maps SSM's final failure statuses to reasons, used when the agent left no report.
var failures = map[string]contract.Reason{
	"Failed":           "",
	"TimedOut":         contract.ReasonTimedOut,
	"Cancelled":        contract.ReasonCancelled,
	"DeliveryTimedOut": contract.ReasonDeliveryTimedOut,
}

// Handle records the outcome of one invocation. An error asks Lambda to retry the event
// (EventBridge invokes asynchronously); events for other documents or unfinished
// statuses are ignored.
func (h *Handler) Handle(ctx context.Context, ev events.CloudWatchEvent) (*Outcome, error) {
	log := h.Log.With("event_id", ev.ID)
	if ev.DetailType != DetailType {
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
	inv, err := h.SSM.GetCommandInvocation(ctx, &ssm.GetCommandInvocationInput{CommandId: aws.String(d.CommandID), InstanceId: aws.String(d.InstanceID)})
	var gone *ssmtypes.InvocationDoesNotExist
	switch {
	case errors.As(err, &gone):
		log.Warn("the invocation is gone; recording the status alone")
	case err != nil:
		return nil, fmt.Errorf("reading invocation %s on %s: %w", d.CommandID, d.InstanceID, err)
	}
	out := &Outcome{Status: contract.StatusEncrypted}
	if inv != nil {
		out.Report = ParseReport(aws.ToString(inv.StandardOutputContent))
	}
	if failed {
		out.Status = contract.StatusFailed
		out.Reason = reason
		switch {
		case out.Report != nil && out.Report.Result != "" && out.Report.Result != contract.ExitCodeNames[contract.ExitOK]:
			out.Reason = contract.Reason(out.Report.Result)
		case inv != nil && inv.ResponseCode > 0 && reason == "":
			out.Reason = contract.Reason(contract.ExitCode(inv.ResponseCode).String())
		case out.Reason == "":
			out.Reason = contract.Reason(strings.ToLower(d.Status))
		}
	}
	inst, err := h.instance(ctx, d.InstanceID)
	if err != nil {
		return nil, err
	}
	if inst == nil {
		log.Info("instance is gone; nothing to tag")
		return out, nil
	}
	tags := record.Tags(inst.Tags)
	if stale(tags, d) {
		log.Info("a newer command is pending; ignoring this older result", "pending_command", tags[contract.TagCommandID])
		return nil, nil
	}
	now := h.Now()
	if err := h.tag(ctx, d, inst, out, now); err != nil {
		return nil, err
	}
	h.record(ctx, log, d, inst, out, now)
	return out, nil
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

// stale: the instance waits for a command sent after this one (a launch after a
// stop/start, say), so this result must not overwrite its pending status.
func stale(tags map[string]string, d Detail) bool {
	if tags[contract.TagStatus] != contract.StatusPending || tags[contract.TagCommandID] == d.CommandID {
		return false
	}
	pendingSince, err1 := time.Parse(time.RFC3339, tags[contract.TagAt])
	requested, err2 := time.Parse(time.RFC3339Nano, d.Requested)
	return err1 == nil && err2 == nil && requested.Before(pendingSince)
}

func (h *Handler) tag(ctx context.Context, d Detail, inst *ec2types.Instance, out *Outcome, now time.Time) error {
	s := record.Status{Status: out.Status, Reason: out.Reason, CommandID: d.CommandID,
		At: now.UTC().Format(time.RFC3339), LaunchTime: aws.ToTime(inst.LaunchTime).UTC().Format(time.RFC3339)}
	if _, err := h.EC2.CreateTags(ctx, &ec2.CreateTagsInput{Resources: []string{d.InstanceID}, Tags: s.Tags()}); err != nil {
		return fmt.Errorf("tagging %s %s: %w", d.InstanceID, out.Status, err)
	}
	return nil
}

// record writes the metrics and, for a failure, the alert event.
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
		err = h.Metrics.Emit(now, []emf.Metric{{Name: contract.MetricFailed, Unit: "Count", Value: 1}}, map[string]string{"Reason": string(out.Reason)}, props)
		msg := ""
		if out.Report != nil {
			msg = out.Report.Error
		}
		log.Warn("encryption failed", "reason", string(out.Reason), "error", msg)
		alert := record.Alert(contract.EventInstanceFailed, h.Config.EventBus,
			map[string]string{"instance-id": d.InstanceID, "command-id": d.CommandID, "reason": string(out.Reason), "error": msg})
		if _, perr := h.Events.PutEvents(ctx, &eventbridge.PutEventsInput{Entries: []ebtypes.PutEventsRequestEntry{alert}}); perr != nil {
			log.Error("emitting the failure event", "error", perr.Error())
		}
	}
	if err != nil {
		log.Error("writing a metric", "error", err.Error())
	}
}
