package contract

import (
	"fmt"
	"strings"
)

// InstanceAccessPolicyPath and InstanceAccessPolicyName name the customer managed policy a
// stack with an instance role path creates, holding what an instance role needs besides
// the key (InstanceAccess): a team's IaC attaches it to its roles under the path by a
// name it can write before the stack exists, in any account and region (IAM is global,
// so the region is in the name). Policies and roles are apart in IAM's ARNs
// (arn:…:policy/… and arn:…:role/…): the policy's path widens no role path pattern.
const InstanceAccessPolicyPath = "/storecrypt/"

// InstanceAccessPolicyName is the policy's name for the stack's region.
func InstanceAccessPolicyName(region string) string {
	return "storecrypt-instance-access-" + region
}

// The actions an instance role takes, besides the key's, for a run of the document to
// end: the SSM Agent's aws:downloadContent reads the agent's object, and the agent
// streams the command's output to the agent log group (Run Command's CloudWatch output:
// it looks the group up, which DescribeLogGroups does over every group of the account
// and region, then creates its streams and writes them).
var (
	AgentReadActions       = []string{"s3:GetObject"}
	CommandOutputActions   = []string{"logs:CreateLogGroup", "logs:CreateLogStream", "logs:PutLogEvents", "logs:DescribeLogStreams"}
	FindOutputGroupActions = []string{"logs:DescribeLogGroups"}
)

// InstanceAccess is what the stack's instance role is granted besides the key, and what
// InstanceAccessPolicyName's policy grants a team's role under the path: the stack writes
// both from Grants, and the binding check simulates the same.
type InstanceAccess struct {
	// Policy is the managed policy's ARN; "" when the stack has none (no path).
	Policy string
	// AgentObjects are the agents' S3 objects, one per architecture.
	AgentObjects []AgentObject
	// LogGroup is the agent log group as IAM policies name it (log-group:<name>:*);
	// LogGroups every group of the account and region (log-group:*).
	LogGroup, LogGroups string
}

// AgentObject is one agent's S3 object ARN and its architecture.
type AgentObject struct {
	Arch, ARN string
}

// Grant is one statement of InstanceAccess: its Sid, and actions on resources.
type Grant struct {
	Sid                string
	Actions, Resources []string
}

// Grants are a's statements, in the order the stack writes them.
func (a InstanceAccess) Grants() []Grant {
	var g []Grant
	for _, o := range a.AgentObjects {
		g = append(g, Grant{"StoreCryptAgent" + o.Arch, AgentReadActions, []string{o.ARN}})
	}
	return append(g,
		Grant{"StoreCryptCommandOutput", CommandOutputActions, []string{a.LogGroup}},
		Grant{"StoreCryptFindOutputGroup", FindOutputGroupActions, []string{a.LogGroups}})
}

// AgentAccess is the InstanceAccess of a deployment, from what its outputs (or the launch
// function's environment) say: the policy's ARN, the agents' s3:// URLs and the agent
// log group's name. The group is the stack's, in the partition, region and account of
// keyARN, the stack's key.
func AgentAccess(policy string, agentURLs []string, logGroup, keyARN string) (InstanceAccess, error) {
	var a InstanceAccess
	parts := strings.Split(keyARN, ":")
	switch {
	case len(parts) < 6 || parts[2] != "kms":
		return a, fmt.Errorf("instance access %s: %q is not a KMS key ARN", policy, keyARN)
	case logGroup == "":
		return a, fmt.Errorf("instance access %s: no agent log group", policy)
	}
	partition, region, account := parts[1], parts[3], parts[4]
	a = InstanceAccess{Policy: policy,
		LogGroup:  fmt.Sprintf("arn:%s:logs:%s:%s:log-group:%s:*", partition, region, account, logGroup),
		LogGroups: fmt.Sprintf("arn:%s:logs:%s:%s:log-group:*", partition, region, account)}
	for _, u := range agentURLs {
		bucket, key, err := SecretLocation(u)
		if err != nil {
			return a, fmt.Errorf("instance access %s: agent object %q: want s3://bucket/key", policy, u)
		}
		// The objects' keys end in -<arch>.gz (the stack names them so).
		arch := strings.TrimSuffix(key[strings.LastIndex(key, "-")+1:], ".gz")
		a.AgentObjects = append(a.AgentObjects, AgentObject{arch, fmt.Sprintf("arn:%s:s3:::%s/%s", partition, bucket, key)})
	}
	if len(a.AgentObjects) == 0 {
		return a, fmt.Errorf("instance access %s: no agent objects", policy)
	}
	return a, nil
}
