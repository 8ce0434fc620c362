package launch

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/ec2"
	kmstypes "github.com/aws/aws-sdk-go-v2/service/kms/types"

	"github.com/storecrypt/storecrypt/internal/contract"
	"github.com/storecrypt/storecrypt/internal/findings"
	"github.com/storecrypt/storecrypt/internal/fleet"
	"github.com/storecrypt/storecrypt/internal/ledger"
	"github.com/storecrypt/storecrypt/internal/statustag"
)

// What a batch decided, written: the ledger first, then the tags, then the findings.

// reported: the instance's tags already record this status for this launch. Tags are
// reports: the function decides again whatever they say, and writes (and alerts) only
// what changed.
func (inst *instance) reported(status string, reason contract.Reason) bool {
	return inst.tags[contract.TagLaunchTime] == inst.launchTime() && inst.tags[contract.TagStatus] == status && contract.Reason(inst.tags[contract.TagReason]) == reason
}

// tag queues status tags; instances with identical tags share one CreateTags call. A
// decision the tags already report (no command sent) is not written again.
func (b *batch) tag(inst *instance, status string, reason contract.Reason, commandID string, attempt int) {
	b.h.markHandled(inst.id)
	if commandID == "" && inst.reported(status, reason) {
		return
	}
	b.queue(inst, statustag.Status{Status: status, Reason: reason, CommandID: commandID, LaunchTime: inst.launchTime(), Attempt: attempt}, nil)
}

// recordLost queues SSM's outcome of the instance's last run, which ended with neither
// tags nor ledger saying how (its result was lost), under the result function's ledger
// entry.
func (b *batch) recordLost(inst *instance) {
	b.h.markHandled(inst.id)
	b.queue(inst, statustag.Status{Status: inst.last.Status, Reason: inst.last.Reason, CommandID: inst.runs[0].CommandID, LaunchTime: inst.launchTime(), Attempt: len(inst.runs)}, inst.last)
}

// queue holds a status for the batch's ledger entries and tags; out, when set, is the
// run's outcome the status records.
func (b *batch) queue(inst *instance, s statustag.Status, out *fleet.Outcome) {
	b.tags[s] = append(b.tags[s], inst)
	b.ledger = append(b.ledger, entry{inst: inst, status: s, outcome: out})
}

// writeLedger appends the batch's decisions to the ledger before their tags are written.
// A decision the ledger could not take is not tagged either: its message is handed back,
// and the decision made and recorded again. A command already sent cannot be taken back:
// its entry is logged as lost, and the result's entry still records the launch.
func (b *batch) writeLedger(ctx context.Context) {
	h := b.h
	if h.Ledger == nil {
		return
	}
	now := h.Now()
	for _, e := range b.ledger {
		inst, s := e.inst, e.status
		if inst.role == "" && inst.profile() != "" {
			inst.role, _ = h.Binder.Role(ctx, inst.profile()) // cached; without it the role stays unrecorded
		}
		launch := fleet.LedgerLaunch(inst.Instance, h.Config.KeyARN, inst.role)
		var entry ledger.Entry
		switch ref := s.CommandID; {
		case e.outcome != nil:
			entry = fleet.ResultEntry("launch", now, s.CommandID, *e.outcome, h.Config.DocumentName, h.Config.DocumentDigest)
		case ref == "":
			ref = inst.tags[contract.TagAt] // the state it moves from: the same decision again is the same entry
			entry = launchEntry(now, s, ref)
		default:
			launch.KeyState = string(kmstypes.KeyStateEnabled) // the binding check found it so
			entry = launchEntry(now, s, ref)
		}
		err := h.Ledger.Record(ctx, launch, entry)
		switch {
		case err == nil, errors.Is(err, ledger.ErrDuplicate):
		case s.CommandID != "":
			h.log(inst).Error("the ledger lacks this command's entry; the result will record the launch", "command_id", s.CommandID, "error", err.Error())
		default:
			b.tags[s] = slices.DeleteFunc(b.tags[s], func(x *instance) bool { return x == inst })
			h.mu.Lock()
			delete(h.handled, inst.id) // its redelivery must be handled, not taken for a duplicate
			h.mu.Unlock()
			b.later(inst, "recording in the ledger: "+err.Error())
		}
	}
	b.ledger = nil
}

// launchEntry is the ledger entry of the function's own decision s, which moves from ref.
func launchEntry(at time.Time, s statustag.Status, ref string) ledger.Entry {
	return ledger.Entry{ID: ledger.EntryID("launch", s.Status, string(s.Reason), ref), At: at, By: "launch",
		Status: s.Status, Reason: s.Reason, CommandID: s.CommandID}
}

// writeFindings files a Security Hub finding for each verdict the batch recorded (blocked,
// opted out), and the instance's Systems Manager compliance where the stack asks for it.
// A finding Security Hub does not import is an error in the log and a count in
// FindingsNotImported (the filer's), not a retry: the ledger and the tags already hold
// the verdict, a refused finding would be refused again, and a redelivered message
// would run the whole launch again for a copy.
func (b *batch) writeFindings(ctx context.Context) {
	h := b.h
	var vs []findings.Instance
	for s, instances := range b.tags {
		for _, inst := range instances {
			vs = append(vs, findings.Instance{ID: inst.id, Type: string(inst.InstanceType), Role: inst.role, Status: s.Status, Reason: s.Reason, CommandID: s.CommandID})
		}
	}
	if err := h.Findings.File(ctx, vs, h.Now()); err != nil {
		h.Log.Error("filing the verdicts for security teams", "instances", len(vs), "error", err.Error())
	}
}

// writeTags writes the batch's statuses the ledger took (writeLedger, before it).
func (b *batch) writeTags(ctx context.Context) {
	h := b.h
	statuses := make([]statustag.Status, 0, len(b.tags))
	for s := range b.tags {
		statuses = append(statuses, s)
	}
	// A stable order of calls makes the logs and the tests' call counts repeatable.
	slices.SortFunc(statuses, func(x, y statustag.Status) int {
		return strings.Compare(fmt.Sprint(x), fmt.Sprint(y))
	})
	at := h.Now().UTC().Format(time.RFC3339)
	for _, s := range statuses {
		instances := b.tags[s]
		s.At = at
		for chunk := range slices.Chunk(instances, maxTagResources) {
			ids := make([]string, len(chunk))
			for n, inst := range chunk {
				ids[n] = inst.id
			}
			if _, err := h.EC2.CreateTags(ctx, &ec2.CreateTagsInput{Resources: ids, Tags: s.Tags()}); err != nil {
				// The command (if any) is on its way; resending it for a tag would run the
				// agent twice. The result function tags the outcome.
				h.Log.Error("tagging instances", "instances", ids, "status", s.Status, "error", err.Error())
			}
		}
	}
}
