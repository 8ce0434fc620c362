package storecrypt

import (
	"strings"

	"github.com/aws/aws-cdk-go/awscdk/v2"
	"github.com/aws/aws-cdk-go/awscdk/v2/awsiam"
	"github.com/aws/jsii-runtime-go"
	"github.com/cdklabs/cdk-nag-go/cdknag/v2"

	"github.com/storecrypt/storecrypt/internal/contract"
)

// instanceGrants is what the instance roles are given besides the key, and, with an
// instance role path, the managed policy that gives the same to the path's roles.
type instanceGrants struct {
	access contract.InstanceAccess
	policy awsiam.ManagedPolicy // nil without a path
	path   rolePath
	// agentURLs are the agents' s3:// URLs, for the launch function's check.
	agentURLs []string
}

// describeLogGroups: the SSM agent's DescribeLogGroups names no single group.
var describeLogGroups = &cdknag.NagPackSuppression{
	Id:        jsii.String("AwsSolutions-IAM5"),
	Reason:    jsii.String("logs:DescribeLogGroups lists the groups of the account and region; the SSM agent needs it to stream the command's output."),
	AppliesTo: &[]any{appliesTo(`^Resource::arn:<AWS::Partition>:logs:[^:]+:[^:]+:log-group:\*$`)},
}

// instanceAccess lets the instance roles read the agents' objects and stream the
// command's output to the agent log group (contract.InstanceAccess: "Configuring Amazon
// CloudWatch Logs for Run Command": the SSM agent looks the group up and creates its
// streams with the instance's credentials; without DescribeLogGroups it streams nothing).
// With an instance role path, the path's roles are teams' own, which the stack cannot
// change: the same statements go into a customer managed policy named by
// contract.InstanceAccessPolicyName, for the teams to attach; in a published template
// it exists only when the parameter is not empty.
func (s *builder) instanceAccess(c code, d deployedDocument, roles fleetRoles, path rolePath) instanceGrants {
	g := instanceGrants{path: path, access: contract.InstanceAccess{
		LogGroup: *d.agentLogs.LogGroupArn(),
		LogGroups: *s.st.FormatArn(&awscdk.ArnComponents{Service: jsii.String("logs"), Resource: jsii.String("log-group"), ResourceName: jsii.String("*"),
			ArnFormat: awscdk.ArnFormat_COLON_RESOURCE_NAME}),
	}}
	for _, o := range c.objects {
		g.access.AgentObjects = append(g.access.AgentObjects, contract.AgentObject{Arch: o.arch, ARN: o.arn})
		g.agentURLs = append(g.agentURLs, o.s3URL)
	}
	for _, r := range roles.roles {
		for _, st := range grantStatements(g.access) {
			r.AddToPrincipalPolicy(st)
		}
		cdknag.NagSuppressions_AddResourceSuppressions(r, &[]*cdknag.NagPackSuppression{describeLogGroups}, jsii.Bool(true))
	}
	if !path.set {
		return g
	}
	statements := grantStatements(g.access)
	g.policy = awsiam.NewManagedPolicy(s.c, jsii.String("InstanceAccessPolicy"), &awsiam.ManagedPolicyProps{
		ManagedPolicyName: jsii.String(contract.InstanceAccessPolicyName(*s.st.Region())),
		Path:              jsii.String(contract.InstanceAccessPolicyPath),
		Description:       jsii.String("storecrypt: attach to each instance role under the stack's InstanceRolePath; reads the agent, writes its command's output"),
		Statements:        &statements,
	})
	cdknag.NagSuppressions_AddResourceSuppressions(g.policy, &[]*cdknag.NagPackSuppression{describeLogGroups}, jsii.Bool(true))
	if path.cond != nil {
		g.policy.Node().DefaultChild().(awscdk.CfnResource).CfnOptions().SetCondition(path.cond)
	}
	g.access.Policy = *g.policy.ManagedPolicyArn()
	return g
}

// grantStatements are access's statements, new ones for each policy document.
func grantStatements(access contract.InstanceAccess) []awsiam.PolicyStatement {
	var out []awsiam.PolicyStatement
	for _, gr := range access.Grants() {
		out = append(out, statement(gr.Sid, gr.Actions, *jsii.Strings(gr.Resources...), nil))
	}
	return out
}

// launchEnv tells the launch function's binding check what a role under the path needs
// besides the key, and where the policy that grants it is: nothing without a path (the
// stack's roles have it), and only when the parameter is not empty in a published
// template.
func (g instanceGrants) launchEnv(env map[string]*string) {
	if g.policy == nil {
		return
	}
	env[contract.EnvInstanceAccessPolicy] = awscdk.Token_AsString(g.path.ifSet(g.access.Policy, nil), nil)
	env[contract.EnvAgentObjects] = awscdk.Token_AsString(g.path.ifSet(strings.Join(g.agentURLs, ","), nil), nil)
}
