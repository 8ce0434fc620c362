package launch

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"strconv"

	"github.com/aws/aws-sdk-go-v2/aws"
	ec2types "github.com/aws/aws-sdk-go-v2/service/ec2/types"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	sqstypes "github.com/aws/aws-sdk-go-v2/service/sqs/types"

	"github.com/storecrypt/storecrypt/internal/contract"
	"github.com/storecrypt/storecrypt/internal/fleet"
)

// SweepResult says what a sweep found.
type SweepResult struct {
	Running  int      `json:"running"`
	InScope  int      `json:"in_scope"`
	Enqueued []string `json:"enqueued"`
	// Granted are the running instances given the grant they lacked (grantMissing).
	Granted []string `json:"granted,omitempty"`
}

// Sweep finds running, in-scope instances that need a command (due): no status for their
// current launch, a command pending longer than StaleAfter, or a retryable failure whose
// backoff has passed; and puts a running event for each on the launch queue. EC2
// delivers events best effort; this is how none is missed.
func (h *Handler) Sweep(ctx context.Context) (SweepResult, error) {
	if h.Config.QueueURL == "" {
		return SweepResult{}, fmt.Errorf("sweep mode needs %s", contract.EnvQueueURL)
	}
	found, err := fleet.Describe(ctx, h.EC2, []ec2types.Filter{fleet.RunningFilter()}, nil)
	if err != nil {
		return SweepResult{}, err
	}
	res := SweepResult{Running: len(found), Enqueued: []string{}}
	now := h.Now()
	var running []*instance
	for _, id := range slices.Sorted(maps.Keys(found)) {
		running = append(running, &instance{Instance: found[id], id: id, tags: fleet.Tags(found[id].Tags), messages: []string{"sweep"}})
	}
	if err := h.instanceStore().Learn(ctx, instanceTypes(running)); err != nil {
		return res, err
	}
	var settled []*instance // in scope, not queued: the launch path will not grant them
	for _, inst := range running {
		id := inst.id
		in, err := h.inScope(ctx, inst)
		if err != nil {
			return res, err
		}
		if has, _ := h.instanceStore().Has(inst.InstanceType); !in || !has {
			continue
		}
		res.InScope++
		if h.optedOut(inst) && inst.reported(contract.StatusSkipped, contract.ReasonOptedOut) {
			continue
		}
		due, err := h.due(ctx, inst, now)
		if err != nil {
			// The launch path reads SSM's record again and decides.
			h.Log.Warn("could not read the instance's runs; queueing it", "instance_id", id, "error", err.Error())
			due = true
		}
		// An instance whose last run ended unrecorded (its result lost) is queued too:
		// the launch path records SSM's outcome.
		if due || inst.unrecorded() {
			res.Enqueued = append(res.Enqueued, id)
		} else {
			settled = append(settled, inst)
		}
	}
	res.Granted = h.grantMissing(ctx, settled)
	at := now.UTC()
	for chunk := range slices.Chunk(res.Enqueued, maxSQSBatch) {
		entries := make([]sqstypes.SendMessageBatchRequestEntry, len(chunk))
		for n, id := range chunk {
			entries[n] = sqstypes.SendMessageBatchRequestEntry{Id: aws.String(strconv.Itoa(n)), MessageBody: aws.String(StateChangeEvent(id, at))}
		}
		out, err := h.SQS.SendMessageBatch(ctx, &sqs.SendMessageBatchInput{QueueUrl: aws.String(h.Config.QueueURL), Entries: entries})
		if err != nil {
			return res, fmt.Errorf("queueing instances: %w", err)
		}
		if len(out.Failed) > 0 {
			return res, fmt.Errorf("queueing instances: %d of %d entries failed (%s)", len(out.Failed), len(entries), aws.ToString(out.Failed[0].Message))
		}
	}
	h.Log.Info("sweep done", "running", res.Running, "in_scope", res.InScope, "enqueued", len(res.Enqueued), "granted", len(res.Granted))
	return res, nil
}
