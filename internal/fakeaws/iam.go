package fakeaws

import (
	"fmt"
	"slices"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/iam"
	iamtypes "github.com/aws/aws-sdk-go-v2/service/iam/types"
)

// IAM, from the IAM API Reference (GetInstanceProfile, SimulatePrincipalPolicy,
// ContextEntry, EvaluationResult) and the IAM User Guide's policy evaluation logic.
func init() {
	register("IAM", map[string]handler{
		"GetInstanceProfile":      (*World).getInstanceProfile,
		"SimulatePrincipalPolicy": (*World).simulatePrincipalPolicy,
	})
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

// contextTypes are ContextEntry's ContextKeyType values.
var contextTypes = map[iamtypes.ContextKeyTypeEnum]bool{
	"string": true, "stringList": true, "numeric": true, "numericList": true, "boolean": true, "booleanList": true,
	"ip": true, "ipList": true, "binary": true, "binaryList": true, "date": true, "dateList": true,
}

func isUserARN(arn string) bool {
	parts := strings.SplitN(arn, ":", 6)
	return len(parts) == 6 && parts[2] == "iam" && strings.HasPrefix(parts[5], "user/")
}

// simulatePrincipalPolicy evaluates the role's identity policies, as the simulator does
// for a role. Its documented rules about the inputs:
//   - CallerArn: "You can specify only the ARN of an IAM user. You cannot specify the
//     ARN of an assumed role, federated user, or a service principal."
//   - "CallerArn is required if you include a ResourcePolicy and the PolicySourceArn is
//     not the ARN for an IAM user."
//   - Context keys the policies use but the request lacks are listed in
//     MissingContextValues; with ResourceArns, under ResourceSpecificResults.
//   - MaxItems is 1 to 1000.
func (w *World) simulatePrincipalPolicy(params any) (any, error) {
	in := params.(*iam.SimulatePrincipalPolicyInput)
	source := aws.ToString(in.PolicySourceArn)
	if len(in.ActionNames) == 0 {
		return nil, &iamtypes.InvalidInputException{Message: aws.String("ActionNames is required")}
	}
	if in.CallerArn != nil && !isUserARN(*in.CallerArn) {
		return nil, &iamtypes.InvalidInputException{Message: aws.String("Invalid CallerArn: " + *in.CallerArn + " is not an IAM user")}
	}
	if in.ResourcePolicy != nil && !isUserARN(source) && in.CallerArn == nil {
		return nil, &iamtypes.InvalidInputException{Message: aws.String("CallerArn is required when ResourcePolicy is specified and PolicySourceArn is not a user")}
	}
	if in.MaxItems != nil && (*in.MaxItems < 1 || *in.MaxItems > 1000) {
		return nil, &iamtypes.InvalidInputException{Message: aws.String("MaxItems must be between 1 and 1000")}
	}
	role, ok := w.Roles[source]
	if !ok {
		return nil, &iamtypes.NoSuchEntityException{Message: aws.String("The role with name " + source + " cannot be found.")}
	}
	ctx := map[string][]string{}
	for _, e := range in.ContextEntries {
		if !contextTypes[e.ContextKeyType] {
			return nil, &iamtypes.InvalidInputException{Message: aws.String("invalid ContextKeyType " + string(e.ContextKeyType))}
		}
		if !strings.HasSuffix(string(e.ContextKeyType), "List") && len(e.ContextKeyValues) > 1 {
			return nil, &iamtypes.InvalidInputException{Message: aws.String("context key " + aws.ToString(e.ContextKeyName) + " of a single-valued type has several values")}
		}
		ctx[aws.ToString(e.ContextKeyName)] = e.ContextKeyValues
	}
	resources := in.ResourceArns
	if len(resources) == 0 {
		resources = []string{"*"}
	}
	out := &iam.SimulatePrincipalPolicyOutput{}
	for _, action := range in.ActionNames {
		res := iamtypes.EvaluationResult{EvalActionName: aws.String(action), EvalResourceName: aws.String(resources[0])}
		for _, r := range resources {
			decision, missing, err := w.identityDecision(role, AuthzRequest{Principal: source, Action: action, Resource: r, Context: ctx})
			if err != nil {
				return nil, &iamtypes.PolicyEvaluationException{Message: aws.String(err.Error())}
			}
			if len(in.ResourceArns) == 0 {
				res.EvalDecision, res.MissingContextValues = decision, missing
				continue
			}
			res.ResourceSpecificResults = append(res.ResourceSpecificResults, iamtypes.ResourceSpecificResult{
				EvalResourceName: aws.String(r), EvalResourceDecision: decision, MissingContextValues: missing,
			})
			res.EvalDecision = worse(res.EvalDecision, decision)
		}
		out.EvaluationResults = append(out.EvaluationResults, res)
	}
	return out, nil
}

// identityDecision combines the role's identity policies, inline and managed ("If you
// specify a user, group, or role, the simulation includes all policies that are
// associated with that entity"): an explicit deny in any wins, else an allow in any allows.
func (w *World) identityDecision(role *Role, req AuthzRequest) (iamtypes.PolicyEvaluationDecisionType, []string, error) {
	decision := iamtypes.PolicyEvaluationDecisionTypeImplicitDeny
	var missing []string
	policies := slices.Clone(role.Policies)
	for _, arn := range role.ManagedPolicies {
		name := arn[strings.LastIndex(arn, "/")+1:]
		doc, ok := awsManaged[name]
		if !ok || arn != ManagedPolicyARN(strings.Split(role.ARN, ":")[1], name) {
			return "", nil, fmt.Errorf("role %s: no AWS managed policy %s in its partition", role.ARN, arn)
		}
		policies = append(policies, doc)
	}
	for _, p := range policies {
		d, m, err := Evaluate(p, false, req)
		if err != nil {
			return "", nil, err
		}
		missing = append(missing, m...)
		decision = worse(decision, iamtypes.PolicyEvaluationDecisionType(d))
	}
	return decision, missing, nil
}

// worse ranks decisions as evaluation does: explicit deny, then allow, then implicit deny.
func worse(a, b iamtypes.PolicyEvaluationDecisionType) iamtypes.PolicyEvaluationDecisionType {
	rank := map[iamtypes.PolicyEvaluationDecisionType]int{"": -1, "implicitDeny": 0, "allowed": 1, "explicitDeny": 2}
	if rank[b] > rank[a] {
		return b
	}
	return a
}

// ManagedPolicyARN is an AWS managed policy's ARN in a partition.
func ManagedPolicyARN(partition, name string) string {
	return "arn:" + partition + ":iam::aws:policy/" + name
}

// SSMCore is the AWS managed policy that makes an instance a Systems Manager managed
// instance, by name.
const SSMCore = "AmazonSSMManagedInstanceCore"

// awsManaged are the AWS managed policies the fake account knows, by name, as the AWS
// Managed Policy Reference prints them. AmazonSSMManagedInstanceCore, policy version
// v2 (default), edited 2019-05-23.
var awsManaged = map[string]string{
	SSMCore: `{
  "Version" : "2012-10-17",
  "Statement" : [
    {"Effect" : "Allow", "Action" : ["ssm:DescribeAssociation", "ssm:GetDeployablePatchSnapshotForInstance", "ssm:GetDocument",
      "ssm:DescribeDocument", "ssm:GetManifest", "ssm:GetParameter", "ssm:GetParameters", "ssm:ListAssociations",
      "ssm:ListInstanceAssociations", "ssm:PutInventory", "ssm:PutComplianceItems", "ssm:PutConfigurePackageResult",
      "ssm:UpdateAssociationStatus", "ssm:UpdateInstanceAssociationStatus", "ssm:UpdateInstanceInformation"], "Resource" : "*"},
    {"Effect" : "Allow", "Action" : ["ssmmessages:CreateControlChannel", "ssmmessages:CreateDataChannel",
      "ssmmessages:OpenControlChannel", "ssmmessages:OpenDataChannel"], "Resource" : "*"},
    {"Effect" : "Allow", "Action" : ["ec2messages:AcknowledgeMessage", "ec2messages:DeleteMessage", "ec2messages:FailMessage",
      "ec2messages:GetEndpoint", "ec2messages:GetMessages", "ec2messages:SendReply"], "Resource" : "*"}
  ]
}`,
}
