package conformance

import (
	"fmt"
	"maps"
	"os"
	"slices"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	ec2types "github.com/aws/aws-sdk-go-v2/service/ec2/types"

	"github.com/storecrypt/storecrypt/internal/contract"
	"github.com/storecrypt/storecrypt/internal/fakeaws"
	"github.com/storecrypt/storecrypt/test/cfn"
)

// The examples docs/deploy.md tells an organization to apply: two SCPs (together they are
// over the 5,120 bytes one may hold) and a tag policy.
var exampleSCPs = []string{"../../docs/examples/scp-storecrypt.json", "../../docs/examples/scp-storecrypt-resources.json", "../../docs/examples/scp-storecrypt-revoke.json"}

const exampleTagPolicy = "../../docs/examples/tag-policy-storecrypt.json"

// readSCPs reads the example SCPs, each checked as Organizations checks what it stores.
func readSCPs(t *testing.T) []string {
	t.Helper()
	var out []string
	for _, path := range exampleSCPs {
		scp := readFile(t, path)
		if err := fakeaws.CheckSCP(scp); err != nil {
			t.Fatalf("%s: %v", path, err)
		}
		out = append(out, scp)
	}
	return out
}

// TestExampleSCPAndTagPolicy checks the example SCP and tag policy against the
// synthesized template in every partition. The two functions still make every call of
// their scenarios under the SCP, and every tag they write complies with the tag policy;
// anyone else who writes, deletes or forges a storecrypt:* tag, rewrites the functions'
// roles, or writes, changes or deletes the ledger is denied, while other tags stay theirs
// to write and the ledger theirs to read.
func TestExampleSCPAndTagPolicy(t *testing.T) {
	scps, tagPolicy := readSCPs(t), readFile(t, exampleTagPolicy)
	for _, v := range []string{contract.StatusPending, contract.StatusEncrypted, contract.StatusBlocked, contract.StatusFailed, contract.StatusSkipped, contract.StatusUnverified} {
		if err := fakeaws.TagPolicyAllows(tagPolicy, "ec2:instance", map[string]string{contract.TagStatus: v}); err != nil {
			t.Errorf("the tag policy refuses a status the functions write: %v", err)
		}
	}
	for _, env := range cfn.Partitions {
		t.Run(env.Partition, func(t *testing.T) {
			d := deploy(t, contract.KeySourceKMSDataKey, env)
			for _, role := range []string{d.launchRole, d.resultRole} {
				if !strings.Contains(role, ":role"+contract.FunctionRolePath) {
					t.Fatalf("function role %s is not under %s", role, contract.FunctionRolePath)
				}
			}
			for _, c := range d.components(t) {
				tagged := 0
				for _, call := range c.run.calls {
					reqs, err := c.run.world.Authz(call, c.principal, c.session, c.base)
					if err != nil {
						t.Fatal(err)
					}
					for _, r := range reqs {
						if denied(t, scps, r) {
							t.Errorf("%s: the SCP denies %s on %s", c.name, r.Action, r.Resource)
						}
					}
					if in, ok := call.Params.(*ec2.CreateTagsInput); ok {
						tagged++
						tags := map[string]string{}
						for _, tag := range in.Tags {
							tags[aws.ToString(tag.Key)] = aws.ToString(tag.Value)
						}
						if err := fakeaws.TagPolicyAllows(tagPolicy, "ec2:instance", tags); err != nil {
							t.Errorf("%s writes tags the tag policy refuses: %v", c.name, err)
						}
					}
				}
				if (c.name == "launch" || c.name == "result") && tagged == 0 {
					t.Errorf("%s wrote no tags: the scenario proves nothing about the SCP", c.name)
				}
			}

			w := d.world(t)
			w.AddInstance(keyUserInstance, "i4i.large", d.instanceProfile, map[string]string{contract.TagStatus: contract.StatusFailed}, launched)
			role := func(name string) string {
				return fmt.Sprintf("arn:%s:iam::%s:role/%s", env.Partition, env.Account, name)
			}
			tags := func(kv ...string) []ec2types.Tag {
				var out []ec2types.Tag
				for i := 0; i < len(kv); i += 2 {
					out = append(out, ec2types.Tag{Key: aws.String(kv[i]), Value: aws.String(kv[i+1])})
				}
				return out
			}
			ids := []string{keyUserInstance}
			forge := &ec2.CreateTagsInput{Resources: ids, Tags: tags(contract.TagStatus, contract.StatusEncrypted)}
			for _, who := range []string{role("Admin"), role("operator"), d.instanceRole, role("storecrypt-functions-lookalike"), role("other/storecrypt/functions/x")} {
				for _, tc := range []struct {
					name   string
					call   fakeaws.Call
					launch bool // the tags ride on RunInstances
					denied bool
				}{
					{"forge encrypted", fakeaws.Call{Service: "EC2", Operation: "CreateTags", Params: forge}, false, true},
					{"forge encrypted at launch", fakeaws.Call{Service: "EC2", Operation: "CreateTags", Params: forge}, true, true},
					{"opt out", fakeaws.Call{Service: "EC2", Operation: "CreateTags", Params: &ec2.CreateTagsInput{Resources: ids, Tags: tags(contract.TagEncrypt, "false")}}, false, true},
					{"hide a failure", fakeaws.Call{Service: "EC2", Operation: "DeleteTags", Params: &ec2.DeleteTagsInput{Resources: ids, Tags: tags(contract.TagStatus, contract.StatusFailed)}}, false, true},
					{"delete every tag", fakeaws.Call{Service: "EC2", Operation: "DeleteTags", Params: &ec2.DeleteTagsInput{Resources: ids}}, false, true},
					{"tag Name", fakeaws.Call{Service: "EC2", Operation: "CreateTags", Params: &ec2.CreateTagsInput{Resources: ids, Tags: tags("Name", "web")}}, false, false},
				} {
					reqs, err := w.Authz(tc.call, who, d.sessionOf(who, "mallory"), map[string][]string{"aws:PrincipalArn": {who}})
					if err != nil {
						t.Fatal(err)
					}
					for _, r := range reqs {
						if tc.launch {
							r.Context["ec2:CreateAction"] = []string{"RunInstances"}
						}
						if got := denied(t, scps, r); got != tc.denied {
							t.Errorf("%s as %s: denied %v, want %v", tc.name, who, got, tc.denied)
						}
					}
				}
			}
			table := fmt.Sprintf("arn:%s:dynamodb:%s:%s:table/%s", env.Partition, env.Region, env.Account, d.launchEnv[contract.EnvLedgerTable])
			for _, tc := range []struct {
				who, action, resource string
				denied                bool
			}{
				{role("Admin"), "dynamodb:UpdateItem", table, true},
				{role("Admin"), "dynamodb:DeleteItem", table, true},
				{role("cdk-hnb659fds-cfn-exec-role-" + env.Account + "-" + env.Region), "dynamodb:PutItem", table, true},
				{d.resultRole, "dynamodb:UpdateItem", table, false},
				{role("Admin"), "dynamodb:Query", table, false},
				{role("Admin"), "dynamodb:PutResourcePolicy", table, true},
				{role("Admin"), "dynamodb:RestoreTableToPointInTime", table, true},
				{role("Admin"), "dynamodb:UpdateContinuousBackups", table, true},
				{role("Admin"), "dynamodb:UpdateItem", fmt.Sprintf("arn:%s:dynamodb:%s:%s:table/payments-Ledger", env.Partition, env.Region, env.Account), false},
				// Key users by the instance role path (InstanceRolePath, docs/organizations.md's
				// /storecrypt/instances/) are made by the deployers alone; a role's path is
				// fixed when it is created. Teams still pass their roles to their instances.
				{role("Admin"), "iam:CreateRole", d.roleIn(instanceRolePath, "team-a"), true},
				{role("stacksets-exec-0123456789abcdef0123456789abcdef"), "iam:CreateRole", d.roleIn(instanceRolePath, "team-a"), false},
				{role("cdk-hnb659fds-cfn-exec-role-" + env.Account + "-" + env.Region), "iam:CreateRole", d.roleIn(instanceRolePath+"batch/", "team-a"), false},
				{role("Admin"), "iam:CreateRole", d.roleIn("/teams/", "team-a"), false},
				{role("Admin"), "iam:CreateRole", d.roleIn(strings.TrimSuffix(instanceRolePath, "/")+"X/", "team-a"), false},
				{role("Admin"), "iam:PassRole", d.roleIn(instanceRolePath, "team-a"), false},
			} {
				if got := denied(t, scps, request(tc.who, tc.action, tc.resource, nil)); got != tc.denied {
					t.Errorf("%s: %s on %s: denied %v, want %v", tc.who, tc.action, tc.resource, got, tc.denied)
				}
			}
		})
	}
}

// TestExampleSCPKeepsChangesToTheDeployers tries, in every partition, each change that
// would alter what storecrypt runs or records: the function roles (and passing them to a
// new function), the functions' code and configuration, the key policy, the document and
// its default version, the ledger table, the tags that mark these, and Security Hub's
// findings. An account admin, the functions' and instances' own roles and roles named
// almost like the deployers' are denied each; the deployers (CloudFormation's CDK
// execution role, and the execution role of a service-managed StackSet, whose stacks are
// named StackSet-<name>-<id>) are allowed each. The deployers' roles can be made or
// changed only by whoever legitimately makes them. Resources are found as the template
// marks them, with the tags the construct writes; names are a StackSet instance's.
func TestExampleSCPKeepsChangesToTheDeployers(t *testing.T) {
	scps := readSCPs(t)
	for _, env := range cfn.Partitions {
		t.Run(env.Partition, func(t *testing.T) {
			d := deploy(t, contract.KeySourceKMSDataKey, env)
			role := func(name string) string {
				return fmt.Sprintf("arn:%s:iam::%s:role/%s", env.Partition, env.Account, name)
			}
			arn := func(service, resource string) string {
				return fmt.Sprintf("arn:%s:%s:%s:%s:%s", env.Partition, service, env.Region, env.Account, resource)
			}
			cdkExec := role("cdk-hnb659fds-cfn-exec-role-" + env.Account + "-" + env.Region)
			cdkDeploy := role("cdk-hnb659fds-deploy-role-" + env.Account + "-" + env.Region)
			stackSetsExec := role("stacksets-exec-5ba53a9bd8e4c0fd7f1ca43ef1bb3a0e")
			stackSetsSLR := role("aws-service-role/member.org.stacksets.cloudformation.amazonaws.com/AWSServiceRoleForCloudFormationStackSetsOrgMember")
			// Everyone the SCP must stop: an admin, storecrypt's own roles, and roles
			// named almost like a deployer's (another path, another case, a near name),
			// which anyone with iam:CreateRole may make.
			others := []string{role("Admin"), d.launchRole, d.instanceRole, role("x/stacksets-exec-1"), role("StackSets-Exec-1"),
				role("cdk-hnb659fds-cfn-exec-rolex"), role("x/cdk-hnb659fds-cfn-exec-role-1"), role("storecrypt/functionsx/r")}

			type change struct {
				name, action, resource string
				ctx                    map[string][]string
			}
			var changes []change
			for _, fnRole := range []string{d.launchRole, d.resultRole} {
				for _, a := range []string{"CreateRole", "UpdateAssumeRolePolicy", "PutRolePolicy", "AttachRolePolicy", "DeleteRolePolicy",
					"DetachRolePolicy", "PutRolePermissionsBoundary", "DeleteRolePermissionsBoundary", "PassRole"} {
					changes = append(changes, change{"function role", "iam:" + a, fnRole, nil})
				}
			}
			table := arn("dynamodb", "table/"+d.launchEnv[contract.EnvLedgerTable])
			for _, a := range []string{"DeleteTable", "UpdateTable", "UpdateContinuousBackups", "UpdateTimeToLive", "RestoreTableToPointInTime",
				"PutResourcePolicy", "DeleteResourcePolicy"} {
				changes = append(changes, change{"ledger", "dynamodb:" + a, table, nil})
			}
			components := map[string]int{}
			component := func(id, resource string, actions []string, untag, tag string) {
				tags := resourceTags(t, d, id)
				components[fmt.Sprint(tags["aws:ResourceTag/"+contract.TagComponent])]++
				for _, a := range actions {
					changes = append(changes, change{"component", a, resource, tags})
				}
				keys := map[string][]string{"aws:TagKeys": {contract.TagComponent}}
				changes = append(changes, change{"component's tag removed", untag, resource, merge(tags, keys)},
					change{"component's tag rewritten", tag, resource, merge(tags, keys)})
			}
			for _, id := range d.Of("AWS::Lambda::Function") {
				name := "StackSet-storecrypt-5ba53a9b-" + id + "-1XG3ZJ7VQ0QAB"
				component(id, arn("lambda", "function:"+name), []string{"lambda:UpdateFunctionCode", "lambda:UpdateFunctionConfiguration",
					"lambda:DeleteFunction", "lambda:AddPermission", "lambda:PutFunctionConcurrency"}, "lambda:UntagResource", "lambda:TagResource")
			}
			for _, id := range d.Of("AWS::KMS::Key") {
				component(id, d.keyARN, []string{"kms:PutKeyPolicy"}, "kms:UntagResource", "kms:TagResource")
			}
			for _, id := range d.Of("AWS::SSM::Document") {
				component(id, arn("ssm", "document/"+d.documentName), []string{"ssm:UpdateDocument", "ssm:UpdateDocumentDefaultVersion",
					"ssm:DeleteDocument"}, "ssm:RemoveTagsFromResource", "ssm:AddTagsToResource")
			}
			// The apply document and the revoke, resume and shred documents.
			if want := map[string]int{"[key]": 1, "[document]": 1 + len(contract.RevocationDocuments), "[launch]": 1, "[result]": 1}; !maps.Equal(components, want) {
				t.Fatalf("components tagged %v, want %v", components, want)
			}
			for _, c := range changes {
				for _, who := range []string{cdkExec, stackSetsExec} {
					if denied(t, scps, request(who, c.action, c.resource, c.ctx)) {
						t.Errorf("%s: %s on %s by the deployer %s: denied, want allowed", c.name, c.action, c.resource, who)
					}
				}
				for _, who := range others {
					if !denied(t, scps, request(who, c.action, c.resource, c.ctx)) {
						t.Errorf("%s: %s on %s by %s: allowed, want denied", c.name, c.action, c.resource, who)
					}
				}
			}

			findings := map[string][]string{"securityhub:TargetAccount": {env.Account}}
			allAdmins := append([]string{cdkExec, stackSetsExec, cdkDeploy}, others...)
			for _, tc := range []struct {
				name, action, resource string
				ctx                    map[string][]string
				allowed                []string // everyone else is denied
			}{
				// The deployers' own roles: the StackSets execution role is made by
				// StackSets' service-linked role; CDK's bootstrap roles, in accounts under
				// the SCP, by a service-managed StackSet of the bootstrap template.
				{"a StackSets execution role made", "iam:CreateRole", role("stacksets-exec-0123"), nil, []string{stackSetsSLR}},
				{"the StackSets execution role's trust changed", "iam:UpdateAssumeRolePolicy", stackSetsExec, nil, []string{stackSetsSLR}},
				{"the StackSets execution role's policy changed", "iam:PutRolePolicy", stackSetsExec, nil, []string{stackSetsSLR}},
				{"a CDK execution role made", "iam:CreateRole", role("cdk-x-cfn-exec-role-1"), nil, []string{stackSetsExec}},
				// A path is part of the ARN the exemption matches, so made the same way.
				{"a CDK execution role made under a path", "iam:CreateRole", role("cdk-x/y-cfn-exec-role-1"), nil, []string{stackSetsExec}},
				{"a StackSets execution role made under a path", "iam:CreateRole", role("stacksets-exec-x/y"), nil, []string{stackSetsSLR}},
				{"the CDK execution role's policy attached", "iam:AttachRolePolicy", cdkExec, nil, []string{stackSetsExec}},
				{"a CDK deploy role made", "iam:CreateRole", role("cdk-x-deploy-role-1"), nil, []string{stackSetsExec}},
				{"the CDK deploy role's trust changed", "iam:UpdateAssumeRolePolicy", cdkDeploy, nil, []string{stackSetsExec}},
				// CloudFormation acts as the CDK execution role for whoever passes it.
				{"the CDK execution role passed to CloudFormation", "iam:PassRole", cdkExec, nil, []string{cdkDeploy}},
				// Findings: storecrypt's are imported by its functions; none is triaged in
				// an account under the SCP (the Security Hub administrator account does).
				{"a finding imported", "securityhub:BatchImportFindings", "*", findings, []string{d.launchRole, d.resultRole}},
				{"a finding suppressed", "securityhub:BatchUpdateFindings", "*", nil, nil},
				{"a finding suppressed (V2)", "securityhub:BatchUpdateFindingsV2", "*", nil, nil},
			} {
				for _, who := range append(allAdmins, tc.allowed...) {
					want := !slices.Contains(tc.allowed, who)
					if got := denied(t, scps, request(who, tc.action, tc.resource, tc.ctx)); got != want {
						t.Errorf("%s: %s on %s by %s: denied %v, want %v", tc.name, tc.action, tc.resource, who, got, want)
					}
				}
			}

			// What is not storecrypt's stays the account's own.
			untagged := map[string][]string{"aws:ResourceTag/team": {"payments"}}
			for _, tc := range []struct{ action, resource string }{
				{"lambda:UpdateFunctionCode", arn("lambda", "function:payments")},
				{"kms:PutKeyPolicy", arn("kms", "key/1234abcd-12ab-34cd-56ef-1234567890ab")},
				{"ssm:UpdateDocumentDefaultVersion", arn("ssm", "document/payments-patch")},
				{"iam:CreateRole", role("payments")},
				{"iam:PassRole", role("payments")},
			} {
				if denied(t, scps, request(role("Admin"), tc.action, tc.resource, untagged)) {
					t.Errorf("%s on %s, not storecrypt's: denied, want allowed", tc.action, tc.resource)
				}
			}
			fn := d.Of("AWS::Lambda::Function")[0]
			team := merge(resourceTags(t, d, fn), map[string][]string{"aws:TagKeys": {"team"}})
			if denied(t, scps, request(role("Admin"), "lambda:TagResource", arn("lambda", "function:"+fn), team)) {
				t.Error("another tag on a storecrypt function: denied, want allowed")
			}
		})
	}
}

// request is a call by the role who, with aws:PrincipalArn (a role session's is its
// role's ARN) and the keys in ctx.
func request(who, action, resource string, ctx map[string][]string) fakeaws.AuthzRequest {
	return fakeaws.AuthzRequest{Principal: who, Action: action, Resource: resource,
		Context: merge(ctx, map[string][]string{"aws:PrincipalArn": {who}})}
}

func merge(a, b map[string][]string) map[string][]string {
	out := maps.Clone(a)
	if out == nil {
		out = map[string][]string{}
	}
	maps.Copy(out, b)
	return out
}

// resourceTags are the aws:ResourceTag/<key> condition keys AWS adds to a request on the
// template's resource id: the Tags the template gives it.
func resourceTags(t *testing.T, d *deployment, id string) map[string][]string {
	t.Helper()
	v, err := d.Eval(d.Resources[id].Properties["Tags"])
	if err != nil {
		t.Fatalf("tags of %s: %v", id, err)
	}
	out := map[string][]string{}
	list, _ := v.([]any)
	for _, tag := range list {
		kv, _ := tag.(map[string]any)
		out["aws:ResourceTag/"+fmt.Sprint(kv["Key"])] = []string{fmt.Sprint(kv["Value"])}
	}
	return out
}

// denied says whether an SCP explicitly denies the request. An SCP only limits: what no
// SCP denies, the account's own policies decide.
func denied(t *testing.T, scps []string, r fakeaws.AuthzRequest) bool {
	t.Helper()
	got, err := fakeaws.SCPsDeny(scps, r)
	if err != nil {
		t.Fatal(err)
	}
	return got
}

func readFile(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}
