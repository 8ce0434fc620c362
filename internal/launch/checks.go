package launch

import (
	"context"
	"slices"

	"github.com/aws/aws-sdk-go-v2/aws"
	ec2types "github.com/aws/aws-sdk-go-v2/service/ec2/types"
	ebtypes "github.com/aws/aws-sdk-go-v2/service/eventbridge/types"
	"github.com/aws/aws-sdk-go-v2/service/ssm"
	ssmtypes "github.com/aws/aws-sdk-go-v2/service/ssm/types"

	"github.com/storecrypt/storecrypt/internal/alert"
	"github.com/storecrypt/storecrypt/internal/binding"
	"github.com/storecrypt/storecrypt/internal/contract"
	"github.com/storecrypt/storecrypt/internal/emf"
	"github.com/storecrypt/storecrypt/internal/fleet"
)

// The checks a candidate passes before the document is sent: its type has instance store,
// its role may use the key, its SSM agent is Online.

// withInstanceStore skips (and tags) the instances whose type has no instance store.
func (b *batch) withInstanceStore(ctx context.Context, in []*instance) []*instance {
	h := b.h
	if err := h.instanceStore().Learn(ctx, instanceTypes(in)); err != nil {
		for _, inst := range in {
			b.later(inst, err.Error())
		}
		return nil
	}
	var keep []*instance
	for _, inst := range in {
		if has, known := h.instanceStore().Has(inst.InstanceType); known && !has {
			h.log(inst).Info("instance type has no instance store; skipping", "type", string(inst.InstanceType))
			b.tag(inst, contract.StatusSkipped, contract.ReasonNoInstanceStore, "", 0)
			continue
		}
		keep = append(keep, inst)
	}
	return keep
}

// instanceStore is the container's knowledge of which types have instance store.
func (h *Handler) instanceStore() *fleet.InstanceStore {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.types == nil {
		h.types = &fleet.InstanceStore{EC2: h.EC2}
	}
	return h.types
}

func instanceTypes(in []*instance) []ec2types.InstanceType {
	types := make([]ec2types.InstanceType, len(in))
	for n, inst := range in {
		types[n] = inst.InstanceType
	}
	return types
}

// bound blocks the instances whose role may not use the key. The checker reads each
// distinct role and the key once; each instance is then judged in code, with its own id
// in the encryption context its agent will send.
func (b *batch) bound(ctx context.Context, in []*instance) []*instance {
	h := b.h
	failed := map[string]error{} // per profile: a failure to decide holds for all its instances
	var keep []*instance
	var alerts []ebtypes.PutEventsRequestEntry
	for _, inst := range in {
		p := inst.profile()
		if err := failed[p]; err != nil {
			b.later(inst, "checking the binding: "+err.Error())
			continue
		}
		v, err := h.Binder.Check(ctx, binding.Request{InstanceProfileARN: p, InstanceID: inst.id, KeyARN: h.Config.KeyARN,
			KeySource: h.Config.Agent.KeySource, Secret: h.Config.Agent.Secret, Access: h.Config.InstanceAccess})
		if err != nil {
			failed[p] = err
			b.later(inst, "checking the binding: "+err.Error())
			continue
		}
		inst.role = v.Role
		if !v.Allowed {
			h.log(inst).Warn("blocked: the instance role cannot use the key", "reason", string(v.Reason), "role", v.Role, "detail", v.Detail, "fix", v.Fix)
			if !inst.reported(contract.StatusBlocked, v.Reason) {
				alerts = append(alerts, b.blocked(inst, v))
			}
			b.tag(inst, contract.StatusBlocked, v.Reason, "", 0)
			continue
		}
		if len(v.Notes) > 0 {
			h.log(inst).Info("the binding check could not judge everything; the agent's own call will", "notes", v.Notes)
		}
		keep = append(keep, inst)
	}
	if err := alert.Put(ctx, h.Events, alerts); err != nil {
		// The tag and the log line still record the block; an alert lost is not a reason
		// to send the same block again.
		h.Log.Error("emitting blocked events", "error", err.Error())
	}
	return keep
}

// blocked writes the Blocked metric of one instance and returns its alert.
func (b *batch) blocked(inst *instance, v binding.Verdict) ebtypes.PutEventsRequestEntry {
	h := b.h
	if err := h.Metrics.Emit(h.Now(), []emf.Metric{{Name: contract.MetricBlocked, Unit: "Count", Value: 1}},
		map[string]string{contract.MetricReason: string(v.Reason)}, map[string]string{"InstanceId": inst.id}); err != nil {
		h.log(inst).Error("writing a metric", "error", err.Error())
	}
	return alert.Entry(contract.EventInstanceBlocked, h.Config.EventBus,
		map[string]string{"instance-id": inst.id, "reason": string(v.Reason), "role": v.Role, "detail": v.Detail, "fix": v.Fix})
}

// online keeps the instances whose SSM agent is Online; the others are retried later.
func (b *batch) online(ctx context.Context, in []*instance) []*instance {
	h := b.h
	var keep []*instance
	for chunk := range slices.Chunk(in, maxInfoFilterValues) {
		ids := make([]string, len(chunk))
		for k, inst := range chunk {
			ids[k] = inst.id
		}
		online := map[string]bool{}
		// A page holds 10 instances unless asked for more (at most 50): MaxResults 50
		// answers a chunk of 50 ids in one call.
		p := ssm.NewDescribeInstanceInformationPaginator(h.SSM, &ssm.DescribeInstanceInformationInput{
			Filters:    []ssmtypes.InstanceInformationStringFilter{{Key: aws.String("InstanceIds"), Values: ids}},
			MaxResults: aws.Int32(maxInfoFilterValues),
		})
		var err error
		for p.HasMorePages() && err == nil {
			var page *ssm.DescribeInstanceInformationOutput
			if page, err = p.NextPage(ctx); err == nil {
				for _, info := range page.InstanceInformationList {
					online[aws.ToString(info.InstanceId)] = info.PingStatus == ssmtypes.PingStatusOnline
				}
			}
		}
		for _, inst := range chunk {
			switch {
			case err != nil:
				b.later(inst, "describing SSM instances: "+err.Error())
			case !online[inst.id]:
				b.later(inst, "the SSM agent is not Online yet")
			default:
				keep = append(keep, inst)
			}
		}
	}
	return keep
}
