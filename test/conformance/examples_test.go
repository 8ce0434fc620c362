package conformance

import (
	"fmt"
	"os"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	ec2types "github.com/aws/aws-sdk-go-v2/service/ec2/types"

	"github.com/storecrypt/storecrypt/internal/contract"
	"github.com/storecrypt/storecrypt/internal/fakeaws"
	"github.com/storecrypt/storecrypt/test/cfn"
)

// The examples the README tells an organization to apply.
const (
	exampleSCP       = "../../docs/examples/scp-storecrypt.json"
	exampleTagPolicy = "../../docs/examples/tag-policy-storecrypt.json"
)

// TestExampleSCPAndTagPolicy checks the example SCP and tag policy against the
// synthesized template in every partition. The two functions still make every call of
// their scenarios under the SCP, and every tag they write complies with the tag policy;
// anyone else who writes, deletes or forges a storecrypt:* tag, rewrites the functions'
// roles, or writes, changes or deletes the ledger is denied, while other tags stay theirs
// to write and the ledger theirs to read.
func TestExampleSCPAndTagPolicy(t *testing.T) {
	scp, tagPolicy := readFile(t, exampleSCP), readFile(t, exampleTagPolicy)
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
						if denied(t, scp, r) {
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

			w := d.world()
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
						if got := denied(t, scp, r); got != tc.denied {
							t.Errorf("%s as %s: denied %v, want %v", tc.name, who, got, tc.denied)
						}
					}
				}
			}
			table := fmt.Sprintf("arn:%s:dynamodb:%s:%s:table/%s", env.Partition, env.Region, env.Account, d.launchEnv[contract.EnvLedgerTable])
			cdk := role("cdk-hnb659fds-cfn-exec-role-" + env.Account + "-" + env.Region)
			for _, tc := range []struct {
				who, action, resource string
				denied                bool
			}{
				{role("Admin"), "iam:PutRolePolicy", d.launchRole, true},
				{cdk, "iam:PutRolePolicy", d.launchRole, false},
				{role("Admin"), "dynamodb:UpdateItem", table, true},
				{role("Admin"), "dynamodb:DeleteItem", table, true},
				{cdk, "dynamodb:PutItem", table, true},
				{d.resultRole, "dynamodb:UpdateItem", table, false},
				{role("Admin"), "dynamodb:UpdateTable", table, true},
				{role("Admin"), "dynamodb:DeleteTable", table, true},
				{cdk, "dynamodb:UpdateTable", table, false},
				{role("Admin"), "dynamodb:Query", table, false},
				{role("Admin"), "dynamodb:PutResourcePolicy", table, true},
				{role("Admin"), "dynamodb:RestoreTableToPointInTime", table, true},
				{role("Admin"), "dynamodb:UpdateContinuousBackups", table, true},
				{role("Admin"), "dynamodb:UpdateItem", fmt.Sprintf("arn:%s:dynamodb:%s:%s:table/payments-Ledger", env.Partition, env.Region, env.Account), false},
			} {
				r := fakeaws.AuthzRequest{Principal: tc.who, Action: tc.action, Resource: tc.resource,
					Context: map[string][]string{"aws:PrincipalArn": {tc.who}}}
				if got := denied(t, scp, r); got != tc.denied {
					t.Errorf("%s: %s on %s: denied %v, want %v", tc.who, tc.action, tc.resource, got, tc.denied)
				}
			}
		})
	}
}

// denied says whether an SCP explicitly denies the request. An SCP only limits: what it
// does not deny, the account's own policies decide.
func denied(t *testing.T, scp string, r fakeaws.AuthzRequest) bool {
	t.Helper()
	got, _, err := fakeaws.Evaluate(scp, false, r)
	if err != nil {
		t.Fatal(err)
	}
	return got == fakeaws.ExplicitDeny
}

func readFile(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}
