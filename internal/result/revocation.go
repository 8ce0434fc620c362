package result

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"time"

	ec2types "github.com/aws/aws-sdk-go-v2/service/ec2/types"
	ebtypes "github.com/aws/aws-sdk-go-v2/service/eventbridge/types"

	"github.com/storecrypt/storecrypt/internal/alert"
	"github.com/storecrypt/storecrypt/internal/contract"
	"github.com/storecrypt/storecrypt/internal/fleet"
)

// RevocationDocument is one deployed revocation document: which it is, its name and the
// digest of the content the stack deployed.
type RevocationDocument struct {
	contract.RevocationDocument
	Name, Digest string
}

// loadRevocation reads the revocation documents the stack names; each needs both its
// name and its digest.
func loadRevocation(getenv func(string) string) ([]RevocationDocument, error) {
	var docs []RevocationDocument
	for _, d := range contract.RevocationDocuments {
		name, digest := getenv(d.EnvName), getenv(d.EnvDigest)
		switch {
		case name == "" && digest == "":
			continue
		case name == "" || digest == "":
			return nil, fmt.Errorf("%s and %s: set both or neither", d.EnvName, d.EnvDigest)
		}
		docs = append(docs, RevocationDocument{RevocationDocument: d, Name: name, Digest: digest})
	}
	return docs, nil
}

// revocation finds the revocation document named name.
func (c Config) revocation(name string) (RevocationDocument, bool) {
	for _, d := range c.Revocation {
		if d.Name == name {
			return d, true
		}
	}
	return RevocationDocument{}, false
}

// revocation records the instance's answer to a revoke, resume or shred: a ledger
// entry with the agent's report, the status tag (resumed: encrypted again), the event,
// and for a failure the metric and the alert, as apply's. A later run of any of the three
// documents speaks for the instance instead: a late revoke result must not undo a resume.
func (h *Handler) revocation(ctx context.Context, log *slog.Logger, d Detail, doc RevocationDocument, inst *ec2types.Instance, requested time.Time) (*fleet.Outcome, error) {
	var names []string
	for _, r := range h.Config.Revocation {
		names = append(names, r.Name)
	}
	if newer, err := h.superseded(ctx, d, requested, names...); err != nil {
		return nil, err
	} else if newer != "" {
		log.Info("a later revocation command speaks for this instance; ignoring this older result", "command", newer)
		return nil, nil
	}
	inv, err := fleet.Invocation(ctx, h.SSM, d.InstanceID, d.CommandID, doc.Command)
	if err != nil {
		return nil, err
	}
	out, err := fleet.RevocationOutcome(ctx, h.Revocations[doc.Name], doc.RevocationDocument, d.InstanceID, fleet.Run{CommandID: d.CommandID, Requested: requested, Status: d.Status}, inv)
	if err != nil {
		return nil, err
	}
	return h.keep(ctx, log, d, inst, out)
}

// revocationEvent is the event of a revocation the instance reports done; false for
// any other outcome. Its detail: who asked and why, as the instance's mark records it,
// and the command's outcome.
func (h *Handler) revocationEvent(d Detail, out *fleet.Outcome) (ebtypes.PutEventsRequestEntry, bool) {
	detail := map[string]string{"instance-id": d.InstanceID, "command-id": d.CommandID, "document": d.DocumentName, "outcome": out.Status}
	if out.Report != nil && out.Report.Revocation != nil {
		m := out.Report.Revocation
		detail["by"], detail["reason"], detail["at"] = m.By, m.Reason, m.At
	}
	switch out.Status {
	case contract.StatusRevoked:
		return alert.Entry(contract.EventInstanceRevoked, h.Config.EventBus, detail), true
	case contract.StatusResumed:
		return alert.Entry(contract.EventInstanceResumed, h.Config.EventBus, detail), true
	case contract.StatusShredded:
		return alert.Entry(contract.EventInstanceShredded, h.Config.EventBus, detail), true
	}
	return ebtypes.PutEventsRequestEntry{}, false
}

// revocationNote sums up the agent's report for the ledger: what ran, the mark it left
// and any error. It is the instance's own account, kept as such.
func revocationNote(rep *contract.Report) string {
	if rep == nil {
		return "no report from the agent"
	}
	var steps []string
	for _, s := range rep.Steps {
		steps = append(steps, s.Name)
	}
	note := fmt.Sprintf("agent %s %s: %s; steps: %s", rep.AgentVersion, rep.Command, rep.Result, strings.Join(steps, ", "))
	if m := rep.Revocation; m != nil {
		note += fmt.Sprintf("; mark %s at %s by %s: %s", m.State, m.At, m.By, m.Reason)
	}
	if rep.Error != "" {
		note += "; error: " + rep.Error
	}
	return note
}
