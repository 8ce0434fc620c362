package fakeaws

import (
	"fmt"
	"path"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	ec2types "github.com/aws/aws-sdk-go-v2/service/ec2/types"
	"github.com/aws/aws-sdk-go-v2/service/eventbridge"
	ebtypes "github.com/aws/aws-sdk-go-v2/service/eventbridge/types"
	"github.com/aws/aws-sdk-go-v2/service/iam"
	iamtypes "github.com/aws/aws-sdk-go-v2/service/iam/types"
	"github.com/aws/aws-sdk-go-v2/service/kms"
	kmstypes "github.com/aws/aws-sdk-go-v2/service/kms/types"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	"github.com/aws/aws-sdk-go-v2/service/ssm"
	ssmtypes "github.com/aws/aws-sdk-go-v2/service/ssm/types"

	"github.com/storecrypt/storecrypt/internal/policy"
)

type handler func(w *World, params any) (any, error)

var handlers = map[string]handler{
	"EC2.DescribeInstances":           (*World).describeInstances,
	"EC2.DescribeInstanceTypes":       (*World).describeInstanceTypes,
	"EC2.CreateTags":                  (*World).createTags,
	"IAM.GetInstanceProfile":          (*World).getInstanceProfile,
	"IAM.SimulatePrincipalPolicy":     (*World).simulatePrincipalPolicy,
	"KMS.DescribeKey":                 (*World).describeKey,
	"KMS.GetKeyPolicy":                (*World).getKeyPolicy,
	"KMS.ListGrants":                  (*World).listGrants,
	"KMS.GetKeyRotationStatus":        (*World).getKeyRotationStatus,
	"SSM.DescribeInstanceInformation": (*World).describeInstanceInformation,
	"SSM.SendCommand":                 (*World).sendCommand,
	"SSM.GetCommandInvocation":        (*World).getCommandInvocation,
	"SQS.SendMessageBatch":            (*World).sendMessageBatch,
	"EventBridge.PutEvents":           (*World).putEvents,
}

func (w *World) describeInstances(params any) (any, error) {
	in := params.(*ec2.DescribeInstancesInput)
	ids := in.InstanceIds
	for _, id := range ids {
		if _, ok := w.Instances[id]; !ok {
			// As EC2 does: one unknown id fails the whole call.
			return nil, APIError("InvalidInstanceID.NotFound", fmt.Sprintf("The instance ID '%s' does not exist", id))
		}
	}
	var found []ec2types.Instance
	for _, id := range w.sortedInstanceIDs() {
		inst := w.Instances[id]
		if len(ids) > 0 && !slices.Contains(ids, id) {
			continue
		}
		if !matchesFilters(inst, in.Filters) {
			continue
		}
		found = append(found, inst.toEC2())
	}
	return &ec2.DescribeInstancesOutput{Reservations: []ec2types.Reservation{{Instances: found}}}, nil
}

func (w *World) sortedInstanceIDs() []string {
	ids := make([]string, 0, len(w.Instances))
	for id := range w.Instances {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	return ids
}

func matchesFilters(inst *Instance, filters []ec2types.Filter) bool {
	for _, f := range filters {
		var have string
		name := aws.ToString(f.Name)
		switch {
		case name == "instance-id":
			have = inst.ID
		case name == "instance-state-name":
			have = inst.State
		case name == "tag-key":
			if !slices.ContainsFunc(f.Values, func(k string) bool { _, ok := inst.Tags[k]; return ok }) {
				return false
			}
			continue
		case strings.HasPrefix(name, "tag:"):
			v, ok := inst.Tags[strings.TrimPrefix(name, "tag:")]
			if !ok {
				return false
			}
			have = v
		default:
			return false
		}
		if !slices.ContainsFunc(f.Values, func(v string) bool { ok, _ := path.Match(v, have); return ok }) {
			return false
		}
	}
	return true
}

func (i *Instance) toEC2() ec2types.Instance {
	out := ec2types.Instance{
		InstanceId:   aws.String(i.ID),
		InstanceType: ec2types.InstanceType(i.Type),
		State:        &ec2types.InstanceState{Name: ec2types.InstanceStateName(i.State)},
		LaunchTime:   aws.Time(i.LaunchTime),
	}
	if i.ProfileARN != "" {
		out.IamInstanceProfile = &ec2types.IamInstanceProfile{Arn: aws.String(i.ProfileARN)}
	}
	keys := make([]string, 0, len(i.Tags))
	for k := range i.Tags {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		out.Tags = append(out.Tags, ec2types.Tag{Key: aws.String(k), Value: aws.String(i.Tags[k])})
	}
	return out
}

func (w *World) describeInstanceTypes(params any) (any, error) {
	in := params.(*ec2.DescribeInstanceTypesInput)
	out := &ec2.DescribeInstanceTypesOutput{}
	for _, t := range in.InstanceTypes {
		has, ok := w.InstanceTypes[string(t)]
		if !ok {
			return nil, APIError("InvalidInstanceType", fmt.Sprintf("The following supplied instance types do not exist: [%s]", t))
		}
		info := ec2types.InstanceTypeInfo{InstanceType: t, InstanceStorageSupported: aws.Bool(has)}
		if has {
			info.InstanceStorageInfo = &ec2types.InstanceStorageInfo{TotalSizeInGB: aws.Int64(1250)}
		}
		out.InstanceTypes = append(out.InstanceTypes, info)
	}
	return out, nil
}

func (w *World) createTags(params any) (any, error) {
	in := params.(*ec2.CreateTagsInput)
	for _, id := range in.Resources {
		inst, ok := w.Instances[id]
		if !ok {
			return nil, APIError("InvalidInstanceID.NotFound", fmt.Sprintf("The instance ID '%s' does not exist", id))
		}
		if inst.Tags == nil {
			inst.Tags = map[string]string{}
		}
		for _, t := range in.Tags {
			inst.Tags[aws.ToString(t.Key)] = aws.ToString(t.Value)
		}
	}
	return &ec2.CreateTagsOutput{}, nil
}

func (w *World) getInstanceProfile(params any) (any, error) {
	in := params.(*iam.GetInstanceProfileInput)
	for arn, role := range w.Profiles {
		if strings.HasSuffix(arn, "/"+aws.ToString(in.InstanceProfileName)) {
			p := &iamtypes.InstanceProfile{Arn: aws.String(arn), InstanceProfileName: in.InstanceProfileName}
			if role != "" {
				p.Roles = []iamtypes.Role{{Arn: aws.String(role), RoleName: aws.String(role[strings.LastIndex(role, "/")+1:])}}
			}
			return &iam.GetInstanceProfileOutput{InstanceProfile: p}, nil
		}
	}
	return nil, &iamtypes.NoSuchEntityException{Message: aws.String("Instance Profile " + aws.ToString(in.InstanceProfileName) + " cannot be found.")}
}

// simulatePrincipalPolicy evaluates as IAM does within one account: an explicit deny
// wins; otherwise an allow in the identity policies or in the resource policy allows.
func (w *World) simulatePrincipalPolicy(params any) (any, error) {
	in := params.(*iam.SimulatePrincipalPolicyInput)
	roleARN := aws.ToString(in.PolicySourceArn)
	role, ok := w.Roles[roleARN]
	if !ok {
		return nil, &iamtypes.NoSuchEntityException{Message: aws.String("role " + roleARN + " cannot be found")}
	}
	var resource policy.Document
	if in.ResourcePolicy != nil {
		var err error
		if resource, err = policy.Parse(aws.ToString(in.ResourcePolicy)); err != nil {
			return nil, &iamtypes.InvalidInputException{Message: aws.String(err.Error())}
		}
	}
	out := &iam.SimulatePrincipalPolicyOutput{}
	for _, action := range in.ActionNames {
		decision := iamtypes.PolicyEvaluationDecisionTypeImplicitDeny
		identity := slices.ContainsFunc(role.Allowed, func(a string) bool { ok, _ := path.Match(a, action); return ok })
		switch g := resource.Evaluate(roleARN, action); {
		case g == policy.ExplicitDeny:
			decision = iamtypes.PolicyEvaluationDecisionTypeExplicitDeny
		case identity || g == policy.Allowed:
			decision = iamtypes.PolicyEvaluationDecisionTypeAllowed
		}
		for _, r := range in.ResourceArns {
			out.EvaluationResults = append(out.EvaluationResults, iamtypes.EvaluationResult{
				EvalActionName: aws.String(action), EvalResourceName: aws.String(r), EvalDecision: decision,
			})
		}
	}
	return out, nil
}

func (w *World) key(id *string) (*Key, error) {
	k, ok := w.Keys[aws.ToString(id)]
	if !ok {
		return nil, &kmstypes.NotFoundException{Message: aws.String("Key '" + aws.ToString(id) + "' does not exist")}
	}
	return k, nil
}

func (w *World) describeKey(params any) (any, error) {
	k, err := w.key(params.(*kms.DescribeKeyInput).KeyId)
	if err != nil {
		return nil, err
	}
	return &kms.DescribeKeyOutput{KeyMetadata: &kmstypes.KeyMetadata{
		Arn: aws.String(k.ARN), KeyId: aws.String(k.ARN[strings.LastIndex(k.ARN, "/")+1:]),
		KeyState: kmstypes.KeyState(k.State), Enabled: k.State == string(kmstypes.KeyStateEnabled),
	}}, nil
}

func (w *World) getKeyPolicy(params any) (any, error) {
	in := params.(*kms.GetKeyPolicyInput)
	k, err := w.key(in.KeyId)
	if err != nil {
		return nil, err
	}
	return &kms.GetKeyPolicyOutput{Policy: aws.String(k.Policy), PolicyName: aws.String("default")}, nil
}

func (w *World) listGrants(params any) (any, error) {
	k, err := w.key(params.(*kms.ListGrantsInput).KeyId)
	if err != nil {
		return nil, err
	}
	out := &kms.ListGrantsOutput{}
	for _, g := range k.Grants {
		e := kmstypes.GrantListEntry{GranteePrincipal: aws.String(g.Grantee), KeyId: aws.String(k.ARN)}
		for _, op := range g.Operations {
			e.Operations = append(e.Operations, kmstypes.GrantOperation(op))
		}
		out.Grants = append(out.Grants, e)
	}
	return out, nil
}

func (w *World) getKeyRotationStatus(params any) (any, error) {
	k, err := w.key(params.(*kms.GetKeyRotationStatusInput).KeyId)
	if err != nil {
		return nil, err
	}
	return &kms.GetKeyRotationStatusOutput{KeyId: aws.String(k.ARN), KeyRotationEnabled: !k.RotationOff}, nil
}

func (w *World) describeInstanceInformation(params any) (any, error) {
	in := params.(*ssm.DescribeInstanceInformationInput)
	var ids []string
	for _, f := range in.Filters {
		if aws.ToString(f.Key) == "InstanceIds" {
			if len(f.Values) > 50 {
				return nil, APIError("InvalidInstanceInformationFilterValue", "at most 50 instance ids per filter")
			}
			ids = append(ids, f.Values...)
		}
	}
	out := &ssm.DescribeInstanceInformationOutput{}
	for _, id := range ids {
		inst, ok := w.Instances[id]
		if !ok || inst.State != "running" {
			continue
		}
		status := ssmtypes.PingStatusConnectionLost
		switch {
		case inst.OnlineAfter == 0:
			status = ssmtypes.PingStatusOnline
		case inst.OnlineAfter > 0:
			inst.OnlineAfter--
			continue // not yet registered with SSM: absent from the answer
		}
		out.InstanceInformationList = append(out.InstanceInformationList, ssmtypes.InstanceInformation{InstanceId: aws.String(id), PingStatus: status})
	}
	return out, nil
}

func (w *World) sendCommand(params any) (any, error) {
	in := params.(*ssm.SendCommandInput)
	if len(in.InstanceIds) > 50 {
		return nil, APIError("ValidationException", "a SendCommand takes at most 50 instance ids")
	}
	for _, id := range in.InstanceIds {
		if inst, ok := w.Instances[id]; !ok || inst.State != "running" {
			return nil, APIError("InvalidInstanceId", "Instances ["+id+"] not in a valid state for account "+Account)
		}
	}
	c := &Command{ID: w.newCommandID(), DocumentName: aws.ToString(in.DocumentName), InstanceIDs: slices.Clone(in.InstanceIds),
		Parameters: in.Parameters, Requested: time.Now(), Invocations: map[string]*Invocation{}}
	for _, id := range in.InstanceIds {
		c.Invocations[id] = &Invocation{Status: "Pending"}
	}
	w.Commands = append(w.Commands, c)
	if w.OnCommand != nil {
		// In its own goroutine: the hook may call back into the world (SetInvocation).
		go w.OnCommand(c)
	}
	return &ssm.SendCommandOutput{Command: &ssmtypes.Command{CommandId: aws.String(c.ID), DocumentName: in.DocumentName, InstanceIds: in.InstanceIds}}, nil
}

func (w *World) getCommandInvocation(params any) (any, error) {
	in := params.(*ssm.GetCommandInvocationInput)
	for _, c := range w.Commands {
		if c.ID != aws.ToString(in.CommandId) {
			continue
		}
		inv, ok := c.Invocations[aws.ToString(in.InstanceId)]
		if !ok {
			break
		}
		return &ssm.GetCommandInvocationOutput{
			CommandId: in.CommandId, InstanceId: in.InstanceId, DocumentName: aws.String(c.DocumentName),
			Status: ssmtypes.CommandInvocationStatus(inv.Status), ResponseCode: inv.ResponseCode, StandardOutputContent: aws.String(inv.Stdout),
		}, nil
	}
	return nil, &ssmtypes.InvocationDoesNotExist{Message: aws.String("no invocation " + aws.ToString(in.CommandId) + " on " + aws.ToString(in.InstanceId))}
}

// SetInvocation records how a command ended on an instance (the demo's SSM runner and the
// tests call it).
func (w *World) SetInvocation(commandID, instanceID string, inv Invocation) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	for _, c := range w.Commands {
		if c.ID == commandID {
			if _, ok := c.Invocations[instanceID]; !ok {
				return fmt.Errorf("command %s did not target %s", commandID, instanceID)
			}
			c.Invocations[instanceID] = &inv
			return nil
		}
	}
	return fmt.Errorf("no command %s", commandID)
}

func (w *World) sendMessageBatch(params any) (any, error) {
	in := params.(*sqs.SendMessageBatchInput)
	if len(in.Entries) > 10 {
		return nil, APIError("AWS.SimpleQueueService.TooManyEntriesInBatchRequest", "at most 10 entries")
	}
	for _, e := range in.Entries {
		w.Messages = append(w.Messages, aws.ToString(e.MessageBody))
	}
	return &sqs.SendMessageBatchOutput{}, nil
}

func (w *World) putEvents(params any) (any, error) {
	in := params.(*eventbridge.PutEventsInput)
	out := &eventbridge.PutEventsOutput{}
	for _, e := range in.Entries {
		w.Events = append(w.Events, Event{Source: aws.ToString(e.Source), DetailType: aws.ToString(e.DetailType), Detail: aws.ToString(e.Detail), Bus: aws.ToString(e.EventBusName)})
		out.Entries = append(out.Entries, ebtypes.PutEventsResultEntry{EventId: aws.String(fmt.Sprintf("ev-%d", len(w.Events)))})
	}
	return out, nil
}
