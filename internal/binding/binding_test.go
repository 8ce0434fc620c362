package binding_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/iam"
	"github.com/aws/aws-sdk-go-v2/service/kms"

	"github.com/storecrypt/storecrypt/internal/binding"
	"github.com/storecrypt/storecrypt/internal/contract"
	"github.com/storecrypt/storecrypt/internal/fakeaws"
	"github.com/storecrypt/storecrypt/internal/launch"
)

func checker(w *fakeaws.World) *binding.Checker {
	cfg := w.Config()
	return &binding.Checker{IAM: iam.NewFromConfig(cfg), KMS: kms.NewFromConfig(cfg), TTL: time.Minute}
}

func TestVerdicts(t *testing.T) {
	const instance = "i-0abc0000000000001"
	instanceARN := "arn:aws:ec2:us-east-1:111122223333:instance/" + instance
	for _, tc := range []struct {
		name    string
		edit    func(w *fakeaws.World)
		req     binding.Request
		allowed bool
		reason  contract.Reason
		fixSays string
	}{
		{"key user named in the key policy", nil, binding.Request{InstanceProfileARN: fakeaws.Profile(fakeaws.KeyUser)}, true, "", ""},
		{"identity policy, key delegates to the account", nil, binding.Request{InstanceProfileARN: fakeaws.Profile(fakeaws.IdentityUser)}, true, "", ""},
		{"identity policy, key does not delegate", func(w *fakeaws.World) {
			w.Keys[fakeaws.KeyARN].Policy = `{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"AWS":"arn:aws:iam::111122223333:role/admin"},"Action":"kms:*","Resource":"*"}]}`
		}, binding.Request{InstanceProfileARN: fakeaws.Profile(fakeaws.IdentityUser)}, false, contract.ReasonNotKeyUser, `"Principal":{"AWS":"arn:aws:iam::111122223333:role/identity-user"}`},
		{"grant", nil, binding.Request{InstanceProfileARN: fakeaws.Profile(fakeaws.GrantUser)}, true, "", ""},
		{"grant constrained to this instance", func(w *fakeaws.World) {
			w.Keys[fakeaws.KeyARN].Grants[0].ContextSubset = map[string]string{contract.ContextInstanceARN: instanceARN}
		}, binding.Request{InstanceProfileARN: fakeaws.Profile(fakeaws.GrantUser)}, true, "", ""},
		{"grant constrained to another instance", func(w *fakeaws.World) {
			w.Keys[fakeaws.KeyARN].Grants[0].ContextSubset = map[string]string{contract.ContextInstanceARN: "arn:aws:ec2:us-east-1:111122223333:instance/i-0other"}
		}, binding.Request{InstanceProfileARN: fakeaws.Profile(fakeaws.GrantUser)}, false, contract.ReasonNotKeyUser, "kms:GenerateDataKey"},
		{"grant for exactly another context", func(w *fakeaws.World) {
			w.Keys[fakeaws.KeyARN].Grants[0].ContextEquals = map[string]string{contract.ContextInstanceARN: instanceARN}
		}, binding.Request{InstanceProfileARN: fakeaws.Profile(fakeaws.GrantUser)}, false, contract.ReasonNotKeyUser, "kms:GenerateDataKey"},
		{"not a key user", nil, binding.Request{InstanceProfileARN: fakeaws.Profile(fakeaws.NotKeyUser)}, false, contract.ReasonNotKeyUser, "kms:GenerateDataKey"},
		{"explicit deny in the key policy", keyPolicyDenies(fakeaws.KeyUser), binding.Request{InstanceProfileARN: fakeaws.Profile(fakeaws.KeyUser)}, false, contract.ReasonNotKeyUser, "kms:Decrypt"},
		{"explicit deny in the key policy beats a grant", keyPolicyDenies(fakeaws.GrantUser), binding.Request{InstanceProfileARN: fakeaws.Profile(fakeaws.GrantUser)}, false, contract.ReasonNotKeyUser, "kms:Decrypt"},
		{"explicit deny in an identity policy beats the key policy", func(w *fakeaws.World) {
			w.Roles[fakeaws.KeyUser].Policies = append(w.Roles[fakeaws.KeyUser].Policies,
				`{"Version":"2012-10-17","Statement":[{"Effect":"Deny","Action":"kms:Decrypt","Resource":"*"}]}`)
		}, binding.Request{InstanceProfileARN: fakeaws.Profile(fakeaws.KeyUser)}, false, contract.ReasonNotKeyUser, "kms:Decrypt"},
		{"identity policy binding the context to the calling instance", func(w *fakeaws.World) {
			w.Roles[fakeaws.IdentityUser].Policies = []string{`{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":["kms:GenerateDataKey","kms:Decrypt"],"Resource":"*",
				"Condition":{"StringEquals":{"kms:EncryptionContext:storecrypt:instance-arn":"${ec2:SourceInstanceARN}"}}}]}`}
		}, binding.Request{InstanceProfileARN: fakeaws.Profile(fakeaws.IdentityUser)}, true, "", ""},
		{"identity policy conditioned on another instance", func(w *fakeaws.World) {
			w.Roles[fakeaws.IdentityUser].Policies = []string{`{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":["kms:GenerateDataKey","kms:Decrypt"],"Resource":"*",
				"Condition":{"StringEquals":{"kms:EncryptionContext:storecrypt:instance-arn":"arn:aws:ec2:us-east-1:111122223333:instance/i-0other"}}}]}`}
		}, binding.Request{InstanceProfileARN: fakeaws.Profile(fakeaws.IdentityUser)}, false, contract.ReasonNotKeyUser, "kms:GenerateDataKey"},
		{"key policy without the volume in the context", func(w *fakeaws.World) {
			w.Keys[fakeaws.KeyARN].Policy = strings.Replace(fakeaws.KeyPolicy, `"storecrypt:instance-arn", "storecrypt:volume"]`, `"storecrypt:instance-arn"]`, 1)
		}, binding.Request{InstanceProfileARN: fakeaws.Profile(fakeaws.KeyUser)}, false, contract.ReasonNotKeyUser, "kms:GenerateDataKey"},
		{"key policy still on the instance id (a stack before instance ARNs)", func(w *fakeaws.World) {
			w.Keys[fakeaws.KeyARN].Policy = `{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"AWS":"` + fakeaws.KeyUser + `"},"Action":["kms:GenerateDataKey","kms:Decrypt"],"Resource":"*",
				"Condition":{"ForAllValues:StringEquals":{"kms:EncryptionContextKeys":["storecrypt:instance-id","storecrypt:volume"]},"StringLike":{"kms:EncryptionContext:storecrypt:instance-id":"i-*"}}}]}`
		}, binding.Request{InstanceProfileARN: fakeaws.Profile(fakeaws.KeyUser)}, false, contract.ReasonNotKeyUser, "kms:GenerateDataKey"},
		// The SSM Agent's own calls: an instance role without them makes the agent run the
		// document as the account's Default Host Management role.
		{"instance role with AmazonSSMManagedInstanceCore", nil, binding.Request{InstanceProfileARN: fakeaws.Profile(fakeaws.KeyUser)}, true, "", ""},
		{"instance role with the SSM Agent's calls in its own policy", func(w *fakeaws.World) {
			w.Roles[fakeaws.KeyUser].ManagedPolicies = nil
			w.Roles[fakeaws.KeyUser].Policies = append(w.Roles[fakeaws.KeyUser].Policies, fakeaws.Allows("ssm:UpdateInstanceInformation", "ec2messages:*", "ssmmessages:*"))
		}, binding.Request{InstanceProfileARN: fakeaws.Profile(fakeaws.KeyUser)}, true, "", ""},
		{"instance role without the SSM core permissions", func(w *fakeaws.World) { w.Roles[fakeaws.KeyUser].ManagedPolicies = nil },
			binding.Request{InstanceProfileARN: fakeaws.Profile(fakeaws.KeyUser)}, false, contract.ReasonNoSSMCore, "arn:aws:iam::aws:policy/AmazonSSMManagedInstanceCore"},
		{"instance role that may register but not take commands", func(w *fakeaws.World) {
			w.Roles[fakeaws.KeyUser].ManagedPolicies = nil
			w.Roles[fakeaws.KeyUser].Policies = append(w.Roles[fakeaws.KeyUser].Policies, fakeaws.Allows("ssm:UpdateInstanceInformation", "ssmmessages:*"))
		}, binding.Request{InstanceProfileARN: fakeaws.Profile(fakeaws.KeyUser)}, false, contract.ReasonNoSSMCore, "ec2messages:GetMessages"},
		{"SSM core permissions with an explicit deny of registering", func(w *fakeaws.World) {
			w.Roles[fakeaws.KeyUser].Policies = append(w.Roles[fakeaws.KeyUser].Policies,
				`{"Version":"2012-10-17","Statement":[{"Effect":"Deny","Action":"ssm:UpdateInstanceInformation","Resource":"*"}]}`)
		}, binding.Request{InstanceProfileARN: fakeaws.Profile(fakeaws.KeyUser)}, false, contract.ReasonNoSSMCore, "ssm:UpdateInstanceInformation"},
		{"SSM core permissions denied on this instance only", func(w *fakeaws.World) {
			w.Roles[fakeaws.KeyUser].Policies = append(w.Roles[fakeaws.KeyUser].Policies,
				`{"Version":"2012-10-17","Statement":[{"Effect":"Deny","Action":"ssm:*","Resource":"`+instanceARN+`"}]}`)
		}, binding.Request{InstanceProfileARN: fakeaws.Profile(fakeaws.KeyUser)}, false, contract.ReasonNoSSMCore, "ssm:UpdateInstanceInformation"},
		// The stack's key with an instance role path: teams' roles under it are key users,
		// others are refused by the deny, which no Allow can lift.
		{"a team's role under the instance role path", teamRole(instanceRolePath + "team-a"),
			binding.Request{InstanceProfileARN: fakeaws.Profile(teamRoleARN(instanceRolePath + "team-a"))}, true, "", ""},
		{"a team's role not under the path", teamRole("/teams/team-a"),
			binding.Request{InstanceProfileARN: fakeaws.Profile(teamRoleARN("/teams/team-a"))}, false, contract.ReasonNotKeyUser, "create the instance's role under path " + instanceRolePath},
		{"a team's role under a path that only starts like it", teamRole("/storecrypt/instances-x/team-a"),
			binding.Request{InstanceProfileARN: fakeaws.Profile(teamRoleARN("/storecrypt/instances-x/team-a"))}, false, contract.ReasonNotKeyUser, "create the instance's role under path " + instanceRolePath},
		{"another role, the key without a path", func(w *fakeaws.World) {
			teamRole("/teams/team-a")(w)
			w.Keys[fakeaws.KeyARN].Policy = fakeaws.KeyPolicyWithRolePath("")
		},
			binding.Request{InstanceProfileARN: fakeaws.Profile(teamRoleARN("/teams/team-a"))}, false, contract.ReasonNotKeyUser, "launch the instance with the stack's instance profile"},
		// With a path, the stack also wants a role to download the agent and write the
		// command's output: what the instance access policy grants.
		{"a team's role with the instance access policy", teamRoleWith(instanceAccessPolicy),
			binding.Request{InstanceProfileARN: fakeaws.Profile(teamRoleARN(instanceRolePath + "team-a")), Access: &instanceAccess}, true, "", ""},
		{"a team's role without the instance access policy", teamRole(instanceRolePath + "team-a"),
			binding.Request{InstanceProfileARN: fakeaws.Profile(teamRoleARN(instanceRolePath + "team-a")), Access: &instanceAccess}, false, contract.ReasonNoInstanceAccess,
			"attach the managed policy " + instanceAccess.Policy + " to " + teamRoleARN(instanceRolePath+"team-a")},
		{"a team's role with rights of its own that cover the policy's", teamRoleWith(fakeaws.Allows("s3:GetObject", "logs:*")),
			binding.Request{InstanceProfileARN: fakeaws.Profile(teamRoleARN(instanceRolePath + "team-a")), Access: &instanceAccess}, true, "", ""},
		{"a team's role that may read the agent but not write the output", teamRoleWith(fakeaws.Allows("s3:GetObject")),
			binding.Request{InstanceProfileARN: fakeaws.Profile(teamRoleARN(instanceRolePath + "team-a")), Access: &instanceAccess}, false, contract.ReasonNoInstanceAccess, instanceAccess.Policy},
		{"a team's role that may write another group's output", teamRoleWith(strings.Replace(instanceAccessPolicy, "log-group:agent-logs:*", "log-group:other:*", 1)),
			binding.Request{InstanceProfileARN: fakeaws.Profile(teamRoleARN(instanceRolePath + "team-a")), Access: &instanceAccess}, false, contract.ReasonNoInstanceAccess, instanceAccess.Policy},
		{"the instance access policy, but not a key user", func(w *fakeaws.World) {
			teamRoleWith(instanceAccessPolicy)(w)
			w.Keys[fakeaws.KeyARN].Policy = fakeaws.KeyPolicyWithRolePath("/teams/")
		}, binding.Request{InstanceProfileARN: fakeaws.Profile(teamRoleARN(instanceRolePath + "team-a")), Access: &instanceAccess}, false, contract.ReasonNotKeyUser, "create the instance's role under path /teams/"},
		{"no instance profile", nil, binding.Request{}, false, contract.ReasonNoInstanceProfile, "attach"},
		{"profile does not exist", nil, binding.Request{InstanceProfileARN: fakeaws.ProfilePrefix + "gone"}, false, contract.ReasonRoleMissing, "existing"},
		{"profile without a role", nil, binding.Request{InstanceProfileARN: fakeaws.ProfilePrefix + "empty"}, false, contract.ReasonRoleMissing, "add the storecrypt instance role"},
		{"key disabled", func(w *fakeaws.World) { w.Keys[fakeaws.KeyARN].State = "Disabled" },
			binding.Request{InstanceProfileARN: fakeaws.Profile(fakeaws.KeyUser)}, false, contract.ReasonKeyDisabled, "enable"},
		{"key pending deletion", func(w *fakeaws.World) { w.Keys[fakeaws.KeyARN].State = "PendingDeletion" },
			binding.Request{InstanceProfileARN: fakeaws.Profile(fakeaws.KeyUser)}, false, contract.ReasonKeyDisabled, "enable"},
		{"key not found", func(w *fakeaws.World) { delete(w.Keys, fakeaws.KeyARN) },
			binding.Request{InstanceProfileARN: fakeaws.Profile(fakeaws.KeyUser)}, false, contract.ReasonKeyNotFound, "key ARN"},
		{"s3-kms with a readable secret", s3kmsKey, binding.Request{InstanceProfileARN: fakeaws.Profile(fakeaws.KeyUser), KeySource: contract.KeySourceS3KMS, Secret: "s3://secrets/seed"}, true, "", ""},
		{"s3-kms, secret unreadable", nil, binding.Request{InstanceProfileARN: fakeaws.Profile(fakeaws.GrantUser), KeySource: contract.KeySourceS3KMS, Secret: "s3://secrets/seed"}, false, contract.ReasonSecretUnreadable, "arn:aws:s3:::secrets/seed"},
		{"s3-kms, secret readable only as another object", func(w *fakeaws.World) {
			s3kmsKey(w)
			w.Roles[fakeaws.KeyUser].Policies = []string{`{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"s3:GetObject","Resource":"arn:aws:s3:::secrets/other"}]}`}
		}, binding.Request{InstanceProfileARN: fakeaws.Profile(fakeaws.KeyUser), KeySource: contract.KeySourceS3KMS, Secret: "s3://secrets/seed"}, false, contract.ReasonSecretUnreadable, "s3:GetObject"},
		{"s3-kms, the current secret readable but not the version a volume was made with", func(w *fakeaws.World) {
			s3kmsKey(w)
			w.Roles[fakeaws.KeyUser].Policies = []string{fakeaws.Allows("s3:GetObject")}
		}, binding.Request{InstanceProfileARN: fakeaws.Profile(fakeaws.KeyUser), KeySource: contract.KeySourceS3KMS, Secret: "s3://secrets/seed"}, false, contract.ReasonSecretUnreadable, "s3:GetObjectVersion"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			w := fakeaws.NewAccount(t)
			if tc.edit != nil {
				tc.edit(w)
			}
			tc.req.KeyARN, tc.req.InstanceID = fakeaws.KeyARN, instance
			if tc.req.KeySource == "" {
				tc.req.KeySource = contract.KeySourceKMSDataKey
			}
			v, err := checker(w).Check(context.Background(), tc.req)
			if err != nil {
				t.Fatal(err)
			}
			if v.Allowed != tc.allowed || v.Reason != tc.reason || !strings.Contains(v.Fix, tc.fixSays) || len(v.Notes) > 0 {
				t.Errorf("got %+v, want allowed=%v reason=%q fix saying %q, no notes", v, tc.allowed, tc.reason, tc.fixSays)
			}
		})
	}
}

const instanceRolePath = "/storecrypt/instances/"

// teamRoleARN is the ARN of a role a team made under path (the path and the name, which
// ends it).
func teamRoleARN(pathAndName string) string {
	return "arn:aws:iam::111122223333:role" + pathAndName
}

// teamRole adds a team's instance role (with AmazonSSMManagedInstanceCore, and nothing of
// storecrypt's) and its profile, and gives the key the stack's policy with
// instanceRolePath.
func teamRole(pathAndName string) func(w *fakeaws.World) {
	return func(w *fakeaws.World) {
		arn := teamRoleARN(pathAndName)
		w.Roles[arn] = &fakeaws.Role{ARN: arn, ManagedPolicies: []string{fakeaws.ManagedPolicyARN("aws", fakeaws.SSMCore)}}
		w.Profiles[fakeaws.Profile(arn)] = arn
		w.Keys[fakeaws.KeyARN].Policy = fakeaws.KeyPolicyWithRolePath(instanceRolePath)
	}
}

// teamRoleWith is teamRole under instanceRolePath with one more policy, as JSON.
func teamRoleWith(policy string) func(w *fakeaws.World) {
	return func(w *fakeaws.World) {
		teamRole(instanceRolePath + "team-a")(w)
		w.Roles[teamRoleARN(instanceRolePath+"team-a")].Policies = []string{policy}
	}
}

// instanceAccess is a stack's instance access in the standard account, and
// instanceAccessPolicy the policy the stack would write for it.
var instanceAccess = contract.InstanceAccess{
	Policy:       "arn:aws:iam::111122223333:policy/storecrypt/storecrypt-instance-access-us-east-1",
	AgentObjects: []contract.AgentObject{{Arch: "amd64", ARN: "arn:aws:s3:::code-us-east-1/storecrypt/storecrypt-agent-0123-amd64.gz"}},
	LogGroup:     "arn:aws:logs:us-east-1:111122223333:log-group:agent-logs:*",
	LogGroups:    "arn:aws:logs:us-east-1:111122223333:log-group:*",
}

const instanceAccessPolicy = `{"Version":"2012-10-17","Statement":[
	{"Effect":"Allow","Action":"s3:GetObject","Resource":"arn:aws:s3:::code-us-east-1/storecrypt/storecrypt-agent-0123-amd64.gz"},
	{"Effect":"Allow","Action":["logs:CreateLogGroup","logs:CreateLogStream","logs:PutLogEvents","logs:DescribeLogStreams"],"Resource":"arn:aws:logs:us-east-1:111122223333:log-group:agent-logs:*"},
	{"Effect":"Allow","Action":"logs:DescribeLogGroups","Resource":"arn:aws:logs:us-east-1:111122223333:log-group:*"}]}`

// s3kmsKey makes the standard key's key-user statement the s3-kms one: kms:Decrypt
// without an encryption context, as the seed recipe's ciphertext has none.
func s3kmsKey(w *fakeaws.World) {
	w.Keys[fakeaws.KeyARN].Policy = fmt.Sprintf(`{"Version":"2012-10-17","Statement":[
		{"Effect":"Allow","Principal":{"AWS":"arn:aws:iam::111122223333:root"},"Action":"kms:*","Resource":"*"},
		{"Effect":"Allow","Principal":{"AWS":%q},"Action":"kms:Decrypt","Resource":"*"}]}`, fakeaws.KeyUser)
}

// TestNeverAResourcePolicy: IAM refuses a simulation with a ResourcePolicy for a role
// unless a CallerArn names an IAM user, which a role is not; the check never asks that.
// The fake enforces the rule, so a check that asked would fail here with InvalidInput.
func TestNeverAResourcePolicy(t *testing.T) {
	w := fakeaws.NewAccount(t)
	if _, err := checker(w).Check(context.Background(), binding.Request{InstanceProfileARN: fakeaws.Profile(fakeaws.IdentityUser),
		InstanceID: "i-0abc0000000000001", KeyARN: fakeaws.KeyARN, KeySource: contract.KeySourceKMSDataKey}); err != nil {
		t.Fatal(err)
	}
	for _, c := range w.Log() {
		if in, ok := c.Params.(*iam.SimulatePrincipalPolicyInput); ok {
			if in.ResourcePolicy != nil || in.CallerArn != nil {
				t.Errorf("simulated with ResourcePolicy %v, CallerArn %v", in.ResourcePolicy != nil, aws.ToString(in.CallerArn))
			}
			if len(in.ContextEntries) == 0 {
				t.Error("simulated without the request's context entries")
			}
		}
	}
	_, err := iam.NewFromConfig(w.Config()).SimulatePrincipalPolicy(context.Background(), &iam.SimulatePrincipalPolicyInput{
		PolicySourceArn: aws.String(fakeaws.IdentityUser), ActionNames: []string{"kms:Decrypt"}, ResourcePolicy: aws.String(fakeaws.KeyPolicy)})
	if err == nil || !strings.Contains(err.Error(), "CallerArn") {
		t.Errorf("the fake accepted a role's simulation with a ResourcePolicy: %v", err)
	}
}

// TestUndecidedIsNotBlocked: a key policy condition the check cannot judge before the
// call (the VPC endpoint the call will come through) is a note, never a block.
func TestUndecidedIsNotBlocked(t *testing.T) {
	w := fakeaws.NewAccount(t)
	w.Keys[fakeaws.KeyARN].Policy = strings.Replace(fakeaws.KeyPolicy, `"Statement": [`,
		`"Statement": [{"Effect":"Deny","Principal":"*","Action":"kms:*","Resource":"*","Condition":{"StringNotEquals":{"aws:SourceVpce":"vpce-0123"}}},`, 1)
	v, err := checker(w).Check(context.Background(), binding.Request{InstanceProfileARN: fakeaws.Profile(fakeaws.KeyUser),
		InstanceID: "i-0abc0000000000001", KeyARN: fakeaws.KeyARN, KeySource: contract.KeySourceKMSDataKey})
	if err != nil {
		t.Fatal(err)
	}
	if !v.Allowed || len(v.Notes) == 0 || !strings.Contains(strings.Join(v.Notes, " "), "aws:SourceVpce") {
		t.Errorf("got %+v, want allowed with a note on aws:SourceVpce", v)
	}
}

// TestPartitions: root delegation and the secret's ARN follow the key's partition.
func TestPartitions(t *testing.T) {
	for _, tc := range []struct{ partition, region string }{{"aws", "us-east-1"}, {"aws-cn", "cn-north-1"}, {"aws-us-gov", "us-gov-west-1"}} {
		t.Run(tc.partition, func(t *testing.T) {
			w := fakeaws.NewAccountIn(t, tc.partition, tc.region)
			n := fakeaws.NamesIn(tc.partition, tc.region)
			v, err := checker(w).Check(context.Background(), binding.Request{InstanceProfileARN: fakeaws.Profile(n.IdentityUser), InstanceID: "i-0abc0000000000001",
				KeyARN: n.KeyARN, KeySource: contract.KeySourceKMSDataKey})
			if err != nil || !v.Allowed {
				t.Errorf("delegation through arn:%s:iam::…:root: %+v, %v", tc.partition, v, err)
			}
			w.Roles[n.KeyUser].Policies = []string{fmt.Sprintf(`{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":["s3:GetObject","s3:GetObjectVersion"],"Resource":"arn:%s:s3:::secrets/seed"}]}`, tc.partition)}
			w.Keys[n.KeyARN].Policy = fmt.Sprintf(`{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"AWS":%q},"Action":"kms:Decrypt","Resource":"*"}]}`, n.KeyUser)
			v, err = checker(w).Check(context.Background(), binding.Request{InstanceProfileARN: fakeaws.Profile(n.KeyUser), InstanceID: "i-0abc0000000000001",
				KeyARN: n.KeyARN, KeySource: contract.KeySourceS3KMS, Secret: "s3://secrets/seed"})
			if err != nil || !v.Allowed {
				t.Errorf("the secret as arn:%s:s3:::secrets/seed: %+v, %v", tc.partition, v, err)
			}
		})
	}
}

// TestCachedPerRole: checks for many instances of one role cost the calls of one.
func TestCachedPerRole(t *testing.T) {
	w := fakeaws.NewAccount(t)
	c := checker(w)
	for range 100 {
		for _, role := range []string{fakeaws.KeyUser, fakeaws.NotKeyUser} {
			if _, err := c.Check(context.Background(), binding.Request{InstanceProfileARN: fakeaws.Profile(role), InstanceID: "i-0abc0000000000001", KeyARN: fakeaws.KeyARN, KeySource: contract.KeySourceKMSDataKey}); err != nil {
				t.Fatal(err)
			}
		}
	}
	// Per role: GetInstanceProfile and three SimulatePrincipalPolicy (the KMS actions on
	// the key, the SSM Agent's registration on the instance, its message channels); once
	// for the key: DescribeKey, GetKeyPolicy, ListGrants.
	if got := w.TotalCalls(); got != 11 {
		t.Errorf("200 checks of 2 roles made %d calls (%v), want 11", got, w.Calls())
	}
}

// TestThrottlingIsRetriedBySDK: the SDK's retryer absorbs throttling; the check succeeds.
func TestThrottlingIsRetriedBySDK(t *testing.T) {
	w := fakeaws.NewAccount(t)
	w.Fault = fakeaws.Throttle("SimulatePrincipalPolicy")
	v, err := checker(w).Check(context.Background(), binding.Request{InstanceProfileARN: fakeaws.Profile(fakeaws.KeyUser), KeyARN: fakeaws.KeyARN, KeySource: contract.KeySourceKMSDataKey})
	if err != nil || !v.Allowed {
		t.Fatalf("got %+v, %v; want allowed after a retry", v, err)
	}
	if got := w.Calls()["IAM.SimulatePrincipalPolicy"]; got != 6 {
		t.Errorf("SimulatePrincipalPolicy attempts %d, want 6 (each of three simulations throttled once, then retried)", got)
	}
}

// TestAccessDeniedIsAnError: the function's own missing permission is not a verdict on
// the instance.
func TestAccessDeniedIsAnError(t *testing.T) {
	w := fakeaws.NewAccount(t)
	w.Fault = func(_, op string, _ int) error {
		if op == "GetKeyPolicy" {
			return fakeaws.APIError("AccessDeniedException", "not authorized to perform kms:GetKeyPolicy")
		}
		return nil
	}
	_, err := checker(w).Check(context.Background(), binding.Request{InstanceProfileARN: fakeaws.Profile(fakeaws.KeyUser), KeyARN: fakeaws.KeyARN, KeySource: contract.KeySourceKMSDataKey})
	if err == nil || !strings.Contains(err.Error(), "AccessDenied") {
		t.Fatalf("got %v, want the AccessDenied error", err)
	}
}

// TestIdentityUndecidedIsNotBlocked: with ResourceArns, the simulator reports missing
// context keys per resource; an identity policy that depends on one the call alone
// carries (the VPC endpoint) is a note, never a block.
func TestIdentityUndecidedIsNotBlocked(t *testing.T) {
	w := fakeaws.NewAccount(t)
	w.Roles[fakeaws.IdentityUser].Policies = []string{`{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":["kms:GenerateDataKey","kms:Decrypt"],"Resource":"*",
		"Condition":{"StringEquals":{"aws:SourceVpce":"vpce-0123"}}}]}`}
	v, err := checker(w).Check(context.Background(), binding.Request{InstanceProfileARN: fakeaws.Profile(fakeaws.IdentityUser),
		InstanceID: "i-0abc0000000000001", KeyARN: fakeaws.KeyARN, KeySource: contract.KeySourceKMSDataKey})
	if err != nil {
		t.Fatal(err)
	}
	if !v.Allowed || !strings.Contains(strings.Join(v.Notes, " "), "aws:SourceVpce") {
		t.Errorf("got %+v, want allowed with a note on aws:SourceVpce", v)
	}
}

// keyPolicyDenies puts a statement first in the key policy that denies role kms:Decrypt.
func keyPolicyDenies(role string) func(*fakeaws.World) {
	return func(w *fakeaws.World) {
		w.Keys[fakeaws.KeyARN].Policy = strings.Replace(fakeaws.KeyPolicy, `"Statement": [`, `"Statement": [{"Effect":"Deny","Principal":{"AWS":"`+role+`"},"Action":"kms:Decrypt","Resource":"*"},`, 1)
	}
}

// TestDecryptThroughLaunchGrant: with kms-datakey the key policy gives the instance roles
// GenerateDataKey alone, and Decrypt comes from the grant the launch function makes; the
// check allows a role's Decrypt only when the key policy lets the launch role grant to it,
// and a deny still wins over the grant.
func TestDecryptThroughLaunchGrant(t *testing.T) {
	noStandingDecrypt := strings.Replace(fakeaws.KeyPolicy, `"Action": ["kms:GenerateDataKey", "kms:Decrypt"]`, `"Action": ["kms:GenerateDataKey"]`, 1)
	launchGrants := func(grantee string) string {
		return `{"Sid":"` + contract.SidLaunchGrants + `","Effect":"Allow","Principal":{"AWS":"arn:aws:iam::111122223333:role/launch"},"Action":"kms:CreateGrant","Resource":"*",
			"Condition":{"ArnLike":{"kms:GranteePrincipal":["` + grantee + `"]}}},`
	}
	with := func(statements string) string {
		return strings.Replace(noStandingDecrypt, `"Statement": [`, `"Statement": [`+statements, 1)
	}
	for _, tc := range []struct {
		name, policy string
		allowed      bool
		says         string // in the detail, or in a note when allowed
	}{
		{"a grantee the launch role may grant to", with(launchGrants(fakeaws.KeyUser)), true, ""},
		{"a grantee under the pattern", with(launchGrants("arn:aws:iam::111122223333:role/storecrypt-*")), true, ""},
		{"a role the launch role may not grant to", with(launchGrants(fakeaws.IdentityUser)), false, "the launch function may not grant it Decrypt"},
		{"a key policy that does not say (the user's key)", noStandingDecrypt, true, "through the grant the launch function makes"},
		{"a deny of Decrypt beats the grant", with(launchGrants(fakeaws.KeyUser) + `{"Effect":"Deny","Principal":{"AWS":"` + fakeaws.KeyUser + `"},"Action":"kms:Decrypt","Resource":"*"},`), false, "the key policy denies it"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			w := fakeaws.NewAccount(t)
			w.Keys[fakeaws.KeyARN].Policy = tc.policy
			v, err := checker(w).Check(context.Background(), binding.Request{InstanceProfileARN: fakeaws.Profile(fakeaws.KeyUser), InstanceID: "i-0abc0000000000001",
				KeyARN: fakeaws.KeyARN, KeySource: contract.KeySourceKMSDataKey})
			if err != nil {
				t.Fatal(err)
			}
			said := v.Detail + strings.Join(v.Notes, " ")
			if v.Allowed != tc.allowed || !strings.Contains(said, tc.says) || tc.says == "" && len(v.Notes) > 0 {
				t.Errorf("got %+v, want allowed=%v saying %q", v, tc.allowed, tc.says)
			}
		})
	}
}

// TestGrantsReadInFullPages: the key's grants, one per instance of the fleet, are read in
// ListGrants' largest pages: 150 grants in two calls, where the default page (50) takes four.
func TestGrantsReadInFullPages(t *testing.T) {
	ctx := context.Background()
	w := fakeaws.NewAccount(t)
	c := kms.NewFromConfig(w.Config())
	for i := range 150 {
		id := fmt.Sprintf("i-%017x", i+1)
		arn := "arn:aws:ec2:us-east-1:111122223333:instance/" + id
		if _, err := c.CreateGrant(ctx, launch.GrantInput(fakeaws.KeyARN, id, arn, fakeaws.KeyUser, "arn:aws:iam::111122223333:role/launch")); err != nil {
			t.Fatal(err)
		}
	}
	before := w.Calls()["KMS.ListGrants"]
	if _, err := checker(w).Check(ctx, binding.Request{InstanceProfileARN: fakeaws.Profile(fakeaws.KeyUser), InstanceID: "i-0abc0000000000001",
		KeyARN: fakeaws.KeyARN, KeySource: contract.KeySourceKMSDataKey}); err != nil {
		t.Fatal(err)
	}
	if got := w.Calls()["KMS.ListGrants"] - before; got != 2 {
		t.Errorf("read the key's 150 grants in %d ListGrants calls, want 2", got)
	}
}
