package launch

import (
	"context"
	"errors"
	"slices"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	ebtypes "github.com/aws/aws-sdk-go-v2/service/eventbridge/types"
	"github.com/aws/aws-sdk-go-v2/service/ssm"
	ssmtypes "github.com/aws/aws-sdk-go-v2/service/ssm/types"

	"github.com/storecrypt/storecrypt/internal/alert"
	"github.com/storecrypt/storecrypt/internal/contract"
	"github.com/storecrypt/storecrypt/internal/document"
	"github.com/storecrypt/storecrypt/internal/emf"
)

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
