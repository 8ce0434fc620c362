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

// Final says whether SSM's status of an invocation is one it ends in.
func Final(status string) bool {
	_, failed := failures[status]
	return failed || status == "Success"
}

// Of judges a finished invocation on instanceID: status is SSM's, inv what
// GetCommandInvocation returned for the run step (nil when the invocation is gone).
func (j *Judge) Of(ctx context.Context, instanceID, status string, inv *ssm.GetCommandInvocationOutput) (Outcome, error) {
	out := Outcome{Status: contract.StatusEncrypted}
	if inv != nil {
		out.Report = ParseReport(aws.ToString(inv.StandardOutputContent))
	}
	if byStatus, failed := failures[status]; failed {
		out.Status, out.Reason = contract.StatusFailed, failureReason(status, inv, out.Report, byStatus)
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

// failureReason: the agent's own result when it left one, else its exit code, else what
// SSM says of the invocation.
func failureReason(status string, inv *ssm.GetCommandInvocationOutput, rep *contract.Report, byStatus contract.Reason) contract.Reason {
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
	if err := j.Documents.Check(ctx, aws.ToString(inv.DocumentVersion)); errors.Is(err, document.ErrUntrusted) {
		return contract.ReasonUntrustedDocument, nil
	} else if err != nil {
		return "", err
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
