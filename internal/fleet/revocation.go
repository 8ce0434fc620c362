package fleet

import (
	"context"

	"github.com/aws/aws-sdk-go-v2/service/ssm"

	"github.com/storecrypt/storecrypt/internal/contract"
)

// RevocationOutcome judges a finished run of a revocation document d on instanceID: r
// is SSM's record of it, inv what GetCommandInvocation returned for its step (nil when
// the invocation is gone), docs the trust in d's deployed content. The instance's answer
// counts as d.Status only when it is the agent's report of d.Command with the mark
// d.Command leaves (none after resume), from a version of d the stack deployed; a failed
// run is StatusFailed with the agent's reason. Whatever the instance answers, it is a
// claim: the refusal at the key that storecrypt revoke made first does not depend on it.
func RevocationOutcome(ctx context.Context, docs Documents, d contract.RevocationDocument, instanceID string, r Run, inv *ssm.GetCommandInvocationOutput) (Outcome, error) {
	out, failed := ended(d.Status, r, inv)
	if failed {
		return out, nil
	}
	rep := out.Report
	if inv == nil || rep == nil || rep.Command != d.Command || rep.Result != contract.ExitCodeNames[contract.ExitOK] {
		out.Status, out.Reason = contract.StatusUnverified, contract.ReasonNoReport
		return out, nil
	}
	reason, err := trusted(ctx, docs, inv)
	if err != nil {
		return Outcome{}, err
	}
	mark := ""
	if rep.Revocation != nil {
		mark = rep.Revocation.State
	}
	switch {
	case reason != "":
	case mark != d.Mark:
		reason = contract.ReasonNotReady
	case rep.InstanceID != "" && rep.InstanceID != instanceID:
		reason = contract.ReasonWrongInstance
	}
	if reason != "" {
		out.Status, out.Reason = contract.StatusUnverified, reason
	}
	return out, nil
}
