package fleet

// What one finished run of the storecrypt document proves: that the instance store is
// encrypted (only with the agent's own evidence, from a document version the stack
// deployed), unverified, or failed and why. The result function records it when SSM
// reports a run; the launch function asks it again when an instance's tags claim a run
// ended, because tags are only reports that anyone with ec2:CreateTags writes.

import (
	"context"
	"encoding/json"
	"errors"
	"slices"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ssm"

	"github.com/storecrypt/storecrypt/internal/contract"
	"github.com/storecrypt/storecrypt/internal/document"
)

// Documents says whether a document version holds the deployed content (document.Trust).
type Documents interface {
	Check(ctx context.Context, version string) error
}

// Judge holds what an instance must show to count as encrypted.
type Judge struct {
	KeyARN    string
	KeySource string
	Documents Documents
}

// Outcome is what a run proves.
type Outcome struct {
	Status string           `json:"status"`
	Reason contract.Reason  `json:"reason,omitempty"`
	Report *contract.Report `json:"report,omitempty"`
}

// Ended says whether SSM has finished with an invocation, from what ListCommandInvocations
// or GetCommandInvocation report of it, or an event's status (details ""): its Status is
// one an invocation ends in (contract.FinalInvocationStatuses, which the stack's rule
// matches), or its StatusDetails one the API reference calls "a terminal state". Which
// Status comes with Terminated or Undeliverable is not documented, so the details alone
// end it; Pending, In Progress, Delayed and Cancelling do not (docs/aws-fidelity.md).
func Ended(status, details string) bool {
	_, terminal := terminalDetails[detailsKey(details)]
	return slices.Contains(contract.FinalInvocationStatuses, status) || terminal
}

// Shown is the one word an operator reads for an invocation: its Status, or where its
// StatusDetails alone end it, those without spaces ("Terminated", "DeliveryTimedOut").
func Shown(status, details string) string {
	if !slices.Contains(contract.FinalInvocationStatuses, status) && Ended(status, details) {
		return strings.ReplaceAll(details, " ", "")
	}
	return status
}

// Succeeded says whether an invocation that ended did so as a success.
func Succeeded(status string) bool { return status == "Success" }

// terminalDetails are the StatusDetails the API reference (GetCommandInvocation,
// CommandInvocation) calls "a terminal state", keyed as detailsKey spells them, with the
// reason a failure is recorded under when the agent left none ("" where Status says it).
var terminalDetails = map[string]contract.Reason{
	"success":           "",
	"failed":            "",
	"cancelled":         contract.ReasonCancelled,
	"deliverytimedout":  contract.ReasonDeliveryTimedOut,
	"executiontimedout": contract.ReasonTimedOut,
	"undeliverable":     contract.ReasonUndeliverable,
	"terminated":        contract.ReasonTerminated,
}

// detailsKey: StatusDetails are documented with spaces ("Delivery Timed Out") and, by
// the CLI, written without; they are compared without spaces or case.
func detailsKey(details string) string {
	return strings.ToLower(strings.ReplaceAll(details, " ", ""))
}

// statusReason is the reason a failed Status gives when nothing more precise is known.
func statusReason(status string) contract.Reason {
	switch status {
	case "TimedOut":
		return contract.ReasonTimedOut
	case "Cancelled", "Canceled":
		return contract.ReasonCancelled
	}
	return ""
}

// Of judges an invocation that ended on instanceID: r is SSM's record of it, inv what
// GetCommandInvocation returned for the run step (nil when the invocation is gone).
func (j *Judge) Of(ctx context.Context, instanceID string, r Run, inv *ssm.GetCommandInvocationOutput) (Outcome, error) {
	out, failed := ended(contract.StatusEncrypted, r, inv)
	if failed {
		return out, nil
	}
	reason, err := j.evidence(ctx, instanceID, inv, out.Report)
	if err != nil {
		return Outcome{}, err
	}
	if reason != "" {
		out.Status, out.Reason = contract.StatusUnverified, reason
	}
	return out, nil
}

// ended reads a run that ended: the agent's report, and for a run that did not succeed,
// StatusFailed with its reason (failed true); else status, for the caller to prove.
func ended(status string, r Run, inv *ssm.GetCommandInvocationOutput) (out Outcome, failed bool) {
	out.Status = status
	details := r.Details
	if inv != nil {
		out.Report = ParseReport(aws.ToString(inv.StandardOutputContent))
		details = aws.ToString(inv.StatusDetails)
	}
	if !Succeeded(r.Status) {
		out.Status, out.Reason = contract.StatusFailed, failureReason(r.Status, details, inv, out.Report)
		return out, true
	}
	return out, false
}

// failureReason: the agent's own result when it left one, else its exit code, else what
// SSM says of the invocation, its details before its status.
func failureReason(status, details string, inv *ssm.GetCommandInvocationOutput, rep *contract.Report) contract.Reason {
	byStatus := statusReason(status)
	switch {
	case rep != nil && rep.Result != "" && rep.Result != contract.ExitCodeNames[contract.ExitOK]:
		return contract.Reason(rep.Result)
	case inv != nil && inv.ResponseCode > 0 && byStatus == "":
		return contract.Reason(contract.ExitCode(inv.ResponseCode).String())
	}
	if r := terminalDetails[detailsKey(details)]; r != "" {
		return r
	}
	if byStatus != "" {
		return byStatus
	}
	return contract.Reason(strings.ToLower(status))
}

// evidence says why a successful invocation does not prove the instance store encrypted
// under the stack's key by the stack's document, or "" when it does: the run must be of
// a version that holds the deployed content, and the agent's report must show this
// instance's volume ready, open and mounted, with the stack's key source and key.
func (j *Judge) evidence(ctx context.Context, instanceID string, inv *ssm.GetCommandInvocationOutput, rep *contract.Report) (contract.Reason, error) {
	if inv == nil || rep == nil || rep.Command != "apply" || rep.Result != contract.ExitCodeNames[contract.ExitOK] {
		return contract.ReasonNoReport, nil
	}
	if reason, err := trusted(ctx, j.Documents, inv); reason != "" || err != nil {
		return reason, err
	}
	l := rep.Layout
	switch {
	case l == nil || l.State != contract.StateReady || !l.Open || !l.Mounted:
		return contract.ReasonNotReady, nil
	case l.KeySource != j.KeySource || l.KeyID != j.KeyARN:
		return contract.ReasonWrongKey, nil
	case rep.InstanceID != instanceID && (rep.InstanceID != "" || l.KeySource == contract.KeySourceKMSDataKey):
		return contract.ReasonWrongInstance, nil
	}
	return "", nil
}

// trusted says ReasonUntrustedDocument when the run was of a version of its document
// that does not hold the content the stack deployed, "" when it does.
func trusted(ctx context.Context, docs Documents, inv *ssm.GetCommandInvocationOutput) (contract.Reason, error) {
	if err := docs.Check(ctx, aws.ToString(inv.DocumentVersion)); errors.Is(err, document.ErrUntrusted) {
		return contract.ReasonUntrustedDocument, nil
	} else if err != nil {
		return "", err
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
