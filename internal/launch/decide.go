package launch

import (
	"context"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"

	"github.com/storecrypt/storecrypt/internal/alert"
	"github.com/storecrypt/storecrypt/internal/contract"
	"github.com/storecrypt/storecrypt/internal/emf"
	"github.com/storecrypt/storecrypt/internal/fleet"
)

// Which instances need a command now: scope, opt-outs, and SSM's record of their runs.

// inScope: the stack's scope rule (fleet.Rule.In); no tag takes an instance out of it
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
// failure that needs a person (refused-unsafe, bad-input, no-devices, revoked,
// wrong-key, wrong-instance) waits for one; any other failure is tried again after a
// backoff that doubles with each run. Removing the tags only makes a run come sooner, which apply
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
