package conformance

import (
	"encoding/json"
	"fmt"
	"maps"
	"regexp"
	"slices"
	"sort"
	"strings"
	"testing"

	"github.com/storecrypt/storecrypt/internal/contract"
	"github.com/storecrypt/storecrypt/internal/fakeaws"
	"github.com/storecrypt/storecrypt/test/cfn"
)

// unexercised are the actions a policy allows that no scenario calls, each with why it
// is there. The key is "<component> <Sid or ->: <action>". A reason for an action the
// scenarios do call is an error too: the list stays true.
var unexercised = map[string]string{
	"launch Logs: logs:CreateLogStream":                        "the Lambda runtime writes the function's log stream with its role; no call of ours",
	"launch Logs: logs:PutLogEvents":                           "the Lambda runtime writes the function's log stream with its role; no call of ours",
	"result Logs: logs:CreateLogStream":                        "the Lambda runtime writes the function's log stream with its role; no call of ours",
	"result Logs: logs:PutLogEvents":                           "the Lambda runtime writes the function's log stream with its role; no call of ours",
	"launch -: sqs:ReceiveMessage":                             "the SQS event source mapping polls the launch queue with the function's role",
	"launch -: sqs:GetQueueUrl":                                "the SQS event source mapping polls the launch queue with the function's role",
	"launch -: sqs:DeleteMessage":                              "the SQS event source mapping deletes handled messages with the function's role",
	"launch -: sqs:GetQueueAttributes":                         "the SQS event source mapping reads the queue's attributes with the function's role",
	"result -: sqs:SendMessage":                                "Lambda sends an event whose asynchronous invocations all failed to the result DLQ with the function's role",
	"agent StoreCryptAgentamd64: s3:GetObject":                 "the SSM agent's aws:downloadContent step fetches the agent binary with the instance's role",
	"agent StoreCryptAgentarm64: s3:GetObject":                 "the SSM agent's aws:downloadContent step fetches the agent binary with the instance's role",
	"agent StoreCryptCommandOutput: logs:CreateLogGroup":       "the SSM agent streams the command's output to CloudWatch Logs with the instance's role",
	"agent StoreCryptCommandOutput: logs:CreateLogStream":      "the SSM agent streams the command's output to CloudWatch Logs with the instance's role",
	"agent StoreCryptCommandOutput: logs:PutLogEvents":         "the SSM agent streams the command's output to CloudWatch Logs with the instance's role",
	"agent StoreCryptCommandOutput: logs:DescribeLogStreams":   "the SSM agent streams the command's output to CloudWatch Logs with the instance's role",
	"agent StoreCryptFindOutputGroup: logs:DescribeLogGroups":  "the SSM agent looks the output's log group up before streaming to it",
	"operator ReadResults: ssm:ListCommands":                   "the Run Command console lists commands with the operator's rights",
	"operator ReadResults: ssm:DescribeInstanceInformation":    "the Run Command console lists the managed instances to target",
	"operator ReadResults: ec2:DescribeTags":                   "the Run Command console's target picker reads tags",
	"operator ReadResults: ssm:ListCommandInvocations":         "the Run Command console lists a command's invocations with the operator's rights",
	"operator ReadTheDocument: ssm:DescribeDocument":           "the Run Command console describes the document (its versions and parameters) before sending it",
	"operator RerunFromIdentityCenter: ssm:SendCommand":        "TestOperatorRerunNeedsMFA runs it as an Identity Center session; the scenarios' operator proves MFA instead",
	"responder ReadTheShredDocument: ssm:ListDocumentVersions": "the CLI lists the shred document's versions only when its default version is not the deployed content (TestRevocationSendsTheDeployedContent drifts it); the scenarios' default is the deployed one",
	"responder ShredFromIdentityCenter: ssm:SendCommand":       "the rerun's Identity Center rule (sendWithMFA) on the shred document, which TestOperatorRerunNeedsMFA judges for the rerun; the scenarios' responder proves MFA instead",
}

// component is one part of storecrypt as IAM sees it.
type component struct {
	name      string
	principal string
	session   string
	base      map[string][]string // the caller's own condition keys
	policies  []string            // its identity policies
	run       *run
}

// requests are the IAM requests of every call the component made in its run; a component
// that made none fails the test, as its checks would prove nothing.
func (c component) requests(t *testing.T) []fakeaws.AuthzRequest {
	t.Helper()
	if len(c.run.calls) == 0 {
		t.Fatalf("the %s made no calls: its checks would prove nothing", c.name)
	}
	var reqs []fakeaws.AuthzRequest
	for _, call := range c.run.calls {
		rs, err := c.run.world.Authz(call, c.principal, c.session, c.base)
		if err != nil {
			t.Fatal(err)
		}
		reqs = append(reqs, rs...)
	}
	return reqs
}

func (d *deployment) components(t *testing.T) []component {
	t.Helper()
	return append(d.functions(t), d.operator(t), d.responder(t),
		component{"agent", d.instanceRole, d.sessionOf(d.instanceRole, keyUserInstance),
			map[string][]string{"aws:PrincipalArn": {d.instanceRole}, "ec2:SourceInstanceARN": {d.instanceARN(keyUserInstance)}}, d.policies[d.instanceRole], d.agentRun(t)},
		d.auditorComponent(t))
}

// functions are the launch and result functions, each run through its scenarios.
func (d *deployment) functions(t *testing.T) []component {
	t.Helper()
	role := func(arn string) map[string][]string { return map[string][]string{"aws:PrincipalArn": {arn}} }
	return []component{
		{"launch", d.launchRole, d.sessionOf(d.launchRole, "launch"), role(d.launchRole), d.policies[d.launchRole], d.launchRun(t)},
		{"result", d.resultRole, d.sessionOf(d.resultRole, "result"), role(d.resultRole), d.policies[d.resultRole], d.resultRun(t)},
	}
}

// operator is a role with the operator policy, MFA proven, running every command of
// `storecrypt --stack <the deployment's stack>`.
func (d *deployment) operator(t *testing.T) component {
	t.Helper()
	return d.asOperator("operator", []string{d.operatorPolicy}, d.cliRun(t))
}

// responder is the operator's role with the shred policy too, shredding an instance.
func (d *deployment) responder(t *testing.T) component {
	t.Helper()
	return d.asOperator("responder", []string{d.operatorPolicy, d.shredPolicy}, d.shredRun(t))
}

// asOperator is a component of the operator's role, MFA proven, with policies.
func (d *deployment) asOperator(name string, policies []string, r *run) component {
	operator := d.operatorRole()
	return component{name, operator, d.sessionOf(operator, "alice"), map[string][]string{"aws:PrincipalArn": {operator}, "aws:MultiFactorAuthPresent": {"true"}}, policies, r}
}

// operatorRole is the role the scenarios' operator assumes, as "alice": under the
// responders' path, as the example SCP wants of whoever revokes, tags the key or shreds.
func (d *deployment) operatorRole() string {
	return fmt.Sprintf("arn:%s:iam::%s:role/storecrypt/responders/operator", d.Env.Partition, d.Env.Account)
}

// decide authorizes one request: a KMS call on the stack's key by KMS's rules (key
// policy, then identity policies where it delegates); anything else by the identity
// policies, with the secret bucket's policy able to deny.
func (d *deployment) decide(c component, r fakeaws.AuthzRequest) (fakeaws.Decision, error) {
	return d.decideWith(c, r, d.launchGrant(r))
}

// decideWith is decide with the key's grants given: none judges by the policies alone.
func (d *deployment) decideWith(c component, r fakeaws.AuthzRequest, grants []fakeaws.Grant) (fakeaws.Decision, error) {
	if d.onKey(r) {
		return fakeaws.KMSDecision(d.keyPolicy, c.policies, grants, r)
	}
	decision := fakeaws.ImplicitDeny
	for _, p := range c.policies {
		got, _, err := fakeaws.Evaluate(p, false, r)
		if err != nil {
			return "", err
		}
		if got == fakeaws.ExplicitDeny || got == fakeaws.Allow && decision == fakeaws.ImplicitDeny {
			decision = got
		}
	}
	if d.secretBucket != "" && strings.HasPrefix(r.Resource, fmt.Sprintf("arn:%s:s3:::%s/", d.Env.Partition, d.secretBucket)) {
		if got, _, err := fakeaws.Evaluate(d.secretBucketPolicy, true, r); err != nil || got == fakeaws.ExplicitDeny {
			return fakeaws.ExplicitDeny, err
		}
	}
	return decision, nil
}

// launchGrant is the grant the launch function has made, with kms-datakey, for the
// instance whose role session makes r: Decrypt for its role under its own instance's
// context (internal/launch's TestGrants holds the function to this shape). The policy
// tests judge an instance's use of the key with its grant in place, as on an instance the
// launch function has seen; TestInstanceDecryptThroughItsGrant judges the grant itself.
func (d *deployment) launchGrant(r fakeaws.AuthzRequest) []fakeaws.Grant {
	arn, ok := r.Context["ec2:SourceInstanceARN"]
	if d.source != contract.KeySourceKMSDataKey || !ok || len(arn) != 1 {
		return nil
	}
	return []fakeaws.Grant{{Grantee: r.Principal, Operations: []string{"Decrypt"}, ContextSubset: map[string]string{contract.ContextInstanceARN: arn[0]}}}
}

// onKey says whether a request is a KMS call on the stack's key, which KMS authorizes by
// the key policy first.
func (d *deployment) onKey(r fakeaws.AuthzRequest) bool {
	return strings.HasPrefix(r.Action, "kms:") && r.Resource == d.keyARN
}

// TestPermissionsSufficientAndLeast drives each part of storecrypt through its work in
// every partition, records every AWS call it makes, and checks each against the policy
// the template gives that part; then lists every action a policy allows that no call
// used, which must be removed or given its reason in unexercised.
func TestPermissionsSufficientAndLeast(t *testing.T) {
	used := map[string]bool{}
	for _, source := range []string{contract.KeySourceKMSDataKey, contract.KeySourceS3KMS} {
		for _, env := range cfn.Partitions {
			t.Run(source+"/"+env.Partition, func(t *testing.T) {
				d := deploy(t, source, env)
				for _, c := range d.components(t) {
					for _, r := range c.requests(t) {
						decision, err := d.decide(c, r)
						if err != nil {
							t.Fatal(err)
						}
						if decision != fakeaws.Allow {
							t.Errorf("%s: %s on %s is %s by the template's policies", c.name, r.Action, r.Resource, decision)
						}
						d.markUsed(t, used, c, r)
					}
				}
			})
		}
	}
	allowed := map[string]bool{}
	for _, source := range []string{contract.KeySourceKMSDataKey, contract.KeySourceS3KMS} {
		d := deploy(t, source, cfn.Partitions[0])
		for _, c := range []struct {
			name     string
			policies []string
			resource bool
		}{
			{"launch", d.policies[d.launchRole], false}, {"result", d.policies[d.resultRole], false},
			{"operator", []string{d.operatorPolicy}, false}, {"responder", []string{d.shredPolicy}, false},
			{"agent", d.policies[d.instanceRole], false}, {"key", []string{d.keyPolicy}, true},
			{"auditor", d.auditor(t).Policies, false},
		} {
			for _, k := range allowedActions(t, c.name, c.policies) {
				allowed[k] = true
				if !used[k] && unexercised[k] == "" {
					t.Errorf("%s is allowed, but no scenario uses it and unexercised gives no reason", k)
				}
				if used[k] && unexercised[k] != "" {
					t.Errorf("%s is used: remove its reason from unexercised", k)
				}
			}
		}
	}
	for k := range unexercised {
		if !allowed[k] {
			t.Errorf("unexercised gives a reason for %s, which no policy allows", k)
		}
	}
}

// markUsed records which statements allowed a request: "<component> <Sid>: <action>",
// and for a KMS call the key policy's statements as "key <Sid>: <action>".
func (d *deployment) markUsed(t *testing.T, used map[string]bool, c component, r fakeaws.AuthzRequest) {
	t.Helper()
	policies := map[string][]string{c.name: c.policies}
	if d.onKey(r) {
		policies["key"] = []string{d.keyPolicy}
	}
	for who, docs := range policies {
		for _, doc := range docs {
			for _, st := range statements(t, doc) {
				if st["Effect"] != "Allow" {
					continue
				}
				one, _ := json.Marshal(map[string]any{"Version": "2012-10-17", "Statement": []any{st}})
				got, _, err := fakeaws.Evaluate(string(one), who == "key", r)
				if err != nil {
					t.Fatal(err)
				}
				if got == fakeaws.Allow || got == fakeaws.Delegated {
					for _, a := range cfn.Actions(st) {
						if strings.EqualFold(a, r.Action) || strings.HasSuffix(a, "*") && strings.HasPrefix(strings.ToLower(r.Action), strings.ToLower(strings.TrimSuffix(a, "*"))) {
							used[who+" "+sid(st)+": "+a] = true
						}
					}
				}
			}
		}
	}
}

// allowedActions lists "<component> <Sid>: <action>" for every Allow statement.
func allowedActions(t *testing.T, name string, docs []string) []string {
	t.Helper()
	var out []string
	for _, doc := range docs {
		for _, st := range statements(t, doc) {
			if st["Effect"] == "Allow" {
				for _, a := range cfn.Actions(st) {
					out = append(out, name+" "+sid(st)+": "+a)
				}
			}
		}
	}
	sort.Strings(out)
	return out
}

func statements(t *testing.T, doc string) []map[string]any {
	t.Helper()
	var p struct{ Statement []map[string]any }
	if err := json.Unmarshal([]byte(doc), &p); err != nil {
		t.Fatal(err)
	}
	return p.Statement
}

func sid(st map[string]any) string {
	if s, ok := st["Sid"].(string); ok && s != "" {
		return s
	}
	return "-"
}

// TestOperatorRerunNeedsMFA: the operator policy lets a rerun through with MFA proven to
// IAM, or from an IAM Identity Center role; not with long-term access keys (no MFA key
// in the request) nor from a role assumed without MFA.
func TestOperatorRerunNeedsMFA(t *testing.T) {
	for _, env := range cfn.Partitions {
		t.Run(env.Partition, func(t *testing.T) {
			d := deploy(t, contract.KeySourceKMSDataKey, env)
			doc := fmt.Sprintf("arn:%s:ssm:%s:%s:document/%s", env.Partition, env.Region, env.Account, d.documentName)
			user := fmt.Sprintf("arn:%s:iam::%s:user/alice", env.Partition, env.Account)
			role := fmt.Sprintf("arn:%s:iam::%s:role/operator", env.Partition, env.Account)
			sso := fmt.Sprintf("arn:%s:iam::%s:role/aws-reserved/sso.amazonaws.com/eu-west-1/AWSReservedSSO_StoreCryptOperators_0123456789abcdef", env.Partition, env.Account)
			for _, tc := range []struct {
				name, principal string
				mfa             []string // nil: the key is absent
				want            fakeaws.Decision
			}{
				{"IAM user console session with MFA", user, []string{"true"}, fakeaws.Allow},
				{"IAM user's long-term access keys", user, nil, fakeaws.ImplicitDeny},
				{"role assumed with MFA", role, []string{"true"}, fakeaws.Allow},
				{"role assumed without MFA", role, []string{"false"}, fakeaws.ImplicitDeny},
				{"IAM Identity Center permission set", sso, nil, fakeaws.Allow},
			} {
				ctx := map[string][]string{"aws:PrincipalArn": {tc.principal}}
				if tc.mfa != nil {
					ctx["aws:MultiFactorAuthPresent"] = tc.mfa
				}
				got, _, err := fakeaws.Evaluate(d.operatorPolicy, false, fakeaws.AuthzRequest{Principal: tc.principal, Action: "ssm:SendCommand", Resource: doc, Context: ctx})
				if err != nil {
					t.Fatal(err)
				}
				if got != tc.want {
					t.Errorf("%s: %s, want %s", tc.name, got, tc.want)
				}
			}
		})
	}
}

// TestKeyBindsEachVolumeToItsInstance evaluates the synthesized key policy (with the
// fake's own engine) for every caller that might try a volume's key: only the instance
// the volume belongs to may make or open it; another instance of the same role, an
// account admin through the root delegation, an instance role that some other policy
// gives kms:*, that role used away from EC2, a context without the instance's ARN (the
// instance-id context of agents before it) and every action but GenerateDataKey and
// Decrypt are explicitly denied; the account keeps managing the key.
//
// IAM's page on variables reads an unresolved ${ec2:SourceInstanceARN} two ways: a null
// that StringNotEquals matches ("Policy variables with no value"), which the fake
// follows, or a statement that is invalid (its opening note). A caller without the key
// is judged under both: the second drops every statement that uses the variable, and
// must decide the same.
func TestKeyBindsEachVolumeToItsInstance(t *testing.T) {
	const other = "i-0b000000000000002"
	dataKeys := []string{"kms:GenerateDataKey", "kms:Decrypt"}
	for _, env := range cfn.Partitions {
		t.Run(env.Partition, func(t *testing.T) {
			d := deploy(t, contract.KeySourceKMSDataKey, env)
			admin := fmt.Sprintf("arn:%s:iam::%s:role/admin", env.Partition, env.Account)
			own, another := d.instanceARN(keyUserInstance), d.instanceARN(other)
			onInstance := func(id string) map[string][]string {
				return map[string][]string{"aws:PrincipalArn": {d.instanceRole}, "ec2:SourceInstanceARN": {d.instanceARN(id)}}
			}
			asAdmin := map[string][]string{"aws:PrincipalArn": {admin}}
			broad := append(slices.Clone(d.policies[d.instanceRole]), fakeaws.Allows("kms:*"))
			adminPolicies := []string{fakeaws.Allows("kms:*")}
			volume := contract.EncryptionContext(own, "uuid-1")
			// A context that names the instance by id: no condition ties an id to the caller.
			instanceID := map[string]string{"storecrypt:instance-id": keyUserInstance, contract.ContextVolume: "uuid-1"}
			for _, tc := range []struct {
				name      string
				principal string
				base      map[string][]string
				identity  []string
				context   map[string]string
				actions   []string
				want      fakeaws.Decision
			}{
				{"its own instance, its own volume", d.instanceRole, onInstance(keyUserInstance), d.policies[d.instanceRole], volume, dataKeys, fakeaws.Allow},
				{"another instance of the same role", d.instanceRole, onInstance(other), d.policies[d.instanceRole], volume, dataKeys, fakeaws.ExplicitDeny},
				{"an instance whose role some policy gives kms:*", d.instanceRole, onInstance(other), broad, volume, dataKeys, fakeaws.ExplicitDeny},
				{"the instance role away from EC2 (something else may assume it), kms:* in IAM", d.instanceRole, map[string][]string{"aws:PrincipalArn": {d.instanceRole}}, broad,
					volume, dataKeys, fakeaws.ExplicitDeny},
				{"an account admin through the root delegation", admin, asAdmin, adminPolicies, volume, dataKeys, fakeaws.ExplicitDeny},
				{"an account admin, the instance-id context", admin, asAdmin, adminPolicies, instanceID, dataKeys, fakeaws.ExplicitDeny},
				// An instance profile swapped for a role of the account's: its session carries
				// the instance's ARN, so only the deny of roles other than the stack's refuses it.
				{"another role on its own instance, kms:* in IAM", admin,
					map[string][]string{"aws:PrincipalArn": {admin}, "ec2:SourceInstanceARN": {own}}, adminPolicies, volume, dataKeys, fakeaws.ExplicitDeny},
				{"its own instance, kms:* in IAM, the instance-id context", d.instanceRole, onInstance(keyUserInstance), broad, instanceID, dataKeys, fakeaws.ExplicitDeny},
				{"its own instance, kms:* in IAM, its own volume's context with other actions", d.instanceRole, onInstance(keyUserInstance), broad, volume,
					[]string{"kms:ReEncryptFrom", "kms:ReEncryptTo", "kms:GenerateDataKeyWithoutPlaintext", "kms:Encrypt", "kms:CreateGrant"}, fakeaws.ExplicitDeny},
				{"an account admin, data that is not storecrypt's", admin, asAdmin, adminPolicies, map[string]string{"app": "billing"}, dataKeys, fakeaws.Allow},
				{"an account admin manages the key", admin, asAdmin, adminPolicies, nil,
					[]string{"kms:PutKeyPolicy", "kms:DescribeKey", "kms:GetKeyPolicy", "kms:ScheduleKeyDeletion"}, fakeaws.Allow},
				{"no context", d.instanceRole, onInstance(keyUserInstance), d.policies[d.instanceRole], nil, dataKeys, fakeaws.ImplicitDeny},
				{"the instance only", d.instanceRole, onInstance(keyUserInstance), d.policies[d.instanceRole],
					map[string]string{contract.ContextInstanceARN: own}, dataKeys, fakeaws.ExplicitDeny},
				{"the volume only: names no instance", d.instanceRole, onInstance(keyUserInstance), d.policies[d.instanceRole],
					map[string]string{contract.ContextVolume: "uuid-1"}, dataKeys, fakeaws.ExplicitDeny},
				{"one more key", d.instanceRole, onInstance(keyUserInstance), d.policies[d.instanceRole],
					map[string]string{contract.ContextInstanceARN: own, contract.ContextVolume: "uuid-1", "app": "x"}, dataKeys, fakeaws.ExplicitDeny},
				{"its own instance naming another", d.instanceRole, onInstance(keyUserInstance), d.policies[d.instanceRole],
					contract.EncryptionContext(another, "uuid-1"), dataKeys, fakeaws.ExplicitDeny},
			} {
				d.judgeKey(t, tc.name, tc.principal, tc.identity, kmsContext(tc.base, tc.context), tc.actions, tc.want)
			}
		})
	}
}

// judgeKey checks the key's decision on each action with ctx, under both of IAM's
// readings of a policy variable the request cannot resolve: a null (the fake's), and, where
// ctx leaves some variable of the key policy unresolved, an invalid statement.
func (d *deployment) judgeKey(t *testing.T, name, principal string, identity []string, ctx map[string][]string, actions []string, want fakeaws.Decision) {
	t.Helper()
	policies := map[string]string{"": d.keyPolicy}
	if invalid, ok := withoutUnresolved(t, d.keyPolicy, ctx); ok {
		policies[", unresolved variables' statements invalid"] = invalid
	}
	for reading, keyPolicy := range policies {
		for _, action := range actions {
			req := fakeaws.AuthzRequest{Principal: principal, Action: action, Resource: d.keyARN, Context: ctx}
			got, err := fakeaws.KMSDecision(keyPolicy, identity, d.launchGrant(req), req)
			if err != nil {
				t.Fatal(err)
			}
			if got != want {
				t.Errorf("%s, %s%s: got %s, want %s", name, action, reading, got, want)
			}
		}
	}
}

var policyVariable = regexp.MustCompile(`\$\{([^}]+)\}`)

// withoutUnresolved is the policy without the statements whose conditions name a policy
// variable ctx has no key for: IAM's reading of a variable it cannot resolve as making the
// whole statement invalid. ok is false when no statement is dropped.
func withoutUnresolved(t *testing.T, policy string, ctx map[string][]string) (string, bool) {
	t.Helper()
	var doc map[string]any
	if err := json.Unmarshal([]byte(policy), &doc); err != nil {
		t.Fatal(err)
	}
	var kept []any
	for _, st := range doc["Statement"].([]any) {
		cond, err := json.Marshal(st.(map[string]any)["Condition"])
		if err != nil {
			t.Fatal(err)
		}
		if !slices.ContainsFunc(policyVariable.FindAllStringSubmatch(string(cond), -1), func(m []string) bool {
			_, ok := ctx[m[1]]
			return !ok
		}) {
			kept = append(kept, st)
		}
	}
	if len(kept) == len(doc["Statement"].([]any)) {
		return policy, false
	}
	doc["Statement"] = kept
	out, err := json.Marshal(doc)
	if err != nil {
		t.Fatal(err)
	}
	return string(out), true
}

// networkCase is a request instance A signs with its own credentials, for its own
// volume, sent over one network (ctx: its condition keys); bound is the key's decision
// where the stack sets RequireInstanceNetwork (a stack without it allows every one).
type networkCase struct {
	name  string
	ctx   map[string][]string
	bound fakeaws.Decision
}

func (d *deployment) networkCases() []networkCase {
	creds := fakeaws.InstanceCredentials{InstanceARN: d.instanceARN(keyUserInstance), VPC: "vpc-0a000000000000001", PrivateIP: "10.0.1.23"}
	endpoint := fakeaws.Path{Endpoint: "vpce-0a000000000000001", VPC: creds.VPC, SourceIP: creds.PrivateIP}
	without := func(keys map[string][]string, names ...string) map[string][]string {
		for _, n := range names {
			delete(keys, n)
		}
		return keys
	}
	cases := []networkCase{
		{"on the instance, through its VPC's KMS endpoint", creds.Keys(endpoint), fakeaws.Allow},
		{"copied to another host in the instance's VPC, through the same endpoint",
			creds.Keys(fakeaws.Path{Endpoint: endpoint.Endpoint, VPC: endpoint.VPC, SourceIP: "10.0.1.99"}), fakeaws.ExplicitDeny},
		{"copied into another VPC, through its endpoint, from the same private address",
			creds.Keys(fakeaws.Path{Endpoint: "vpce-0b000000000000002", VPC: "vpc-0b000000000000002", SourceIP: creds.PrivateIP}), fakeaws.ExplicitDeny},
		{"copied anywhere, to KMS's public endpoint", creds.Keys(fakeaws.Path{SourceIP: "203.0.113.7"}), fakeaws.ExplicitDeny},
		// No AWS path sends one of the endpoint's keys without the other; the policy must
		// not rest on that.
		{"an endpoint's VPC without the caller's address", without(creds.Keys(endpoint), "aws:VpcSourceIp"), fakeaws.ExplicitDeny},
		{"the caller's address without the endpoint's VPC", without(creds.Keys(endpoint), "aws:SourceVpc"), fakeaws.ExplicitDeny},
		{"a session without the credentials' network keys, through the endpoint",
			without(creds.Keys(endpoint), "aws:Ec2InstanceSourceVpc", "aws:Ec2InstanceSourcePrivateIPv4"), fakeaws.ExplicitDeny},
	}
	for i, c := range cases {
		cases[i].ctx = kmsContext(merge(map[string][]string{"aws:PrincipalArn": {d.instanceRole}}, c.ctx), contract.EncryptionContext(creds.InstanceARN, "uuid-1"))
	}
	return cases
}

// TestKeyOnlyFromTheInstanceNetwork: credentials taken from an instance's IMDS keep
// ec2:SourceInstanceARN wherever they are used. With RequireInstanceNetwork the key
// opens the instance's volume only through a VPC endpoint in the instance's VPC, from its
// private address; without it, the stack's key policy does not look at the network.
func TestKeyOnlyFromTheInstanceNetwork(t *testing.T) {
	for _, env := range cfn.Partitions {
		for _, v := range []variant{{source: contract.KeySourceKMSDataKey}, networkBound} {
			t.Run(fmt.Sprintf("%s/network=%t", env.Partition, v.network), func(t *testing.T) {
				d := deployVariant(t, v, env)
				for _, c := range d.networkCases() {
					want := fakeaws.Allow
					if v.network {
						want = c.bound
					}
					d.judgeKey(t, c.name, d.instanceRole, d.policies[d.instanceRole], c.ctx, []string{"kms:GenerateDataKey", "kms:Decrypt"}, want)
				}
			})
		}
	}
}

// TestSeedSecretKeyUse: in s3-kms the instance roles may decrypt only what the seed
// recipe encrypted (no encryption context), only in a role session an EC2 instance
// created, and the secret object itself only through S3 (checked by the permissions
// test's scenario). ec2:SourceInstanceARN belongs to the session, so credentials taken
// from the instance's IMDS keep it wherever they are used: they decrypt (Limits).
func TestSeedSecretKeyUse(t *testing.T) {
	d := deploy(t, contract.KeySourceS3KMS, cfn.Partitions[0])
	withInstance := map[string][]string{"aws:PrincipalArn": {d.instanceRole}, "ec2:SourceInstanceARN": {d.instanceARN(keyUserInstance)}}
	for _, tc := range []struct {
		name string
		ctx  map[string][]string
		want fakeaws.Decision
	}{
		{"the passphrase, from the instance", withInstance, fakeaws.Allow},
		{"the role assumed by something other than EC2", map[string][]string{"aws:PrincipalArn": {d.instanceRole}}, fakeaws.ImplicitDeny},
		{"the instance's credentials taken from IMDS and used elsewhere: the session keeps ec2:SourceInstanceARN", withInstance, fakeaws.Allow},
		{"a ciphertext with a context", func() map[string][]string {
			c := maps.Clone(withInstance)
			c["kms:EncryptionContext:app"], c["kms:EncryptionContextKeys"] = []string{"billing"}, []string{"app"}
			return c
		}(), fakeaws.ImplicitDeny},
	} {
		got, err := fakeaws.KMSDecision(d.keyPolicy, nil, nil, fakeaws.AuthzRequest{Principal: d.instanceRole, Action: "kms:Decrypt", Resource: d.keyARN, Context: tc.ctx})
		if err != nil {
			t.Fatal(err)
		}
		if got != tc.want {
			t.Errorf("%s: %s, want %s", tc.name, got, tc.want)
		}
	}
}

// TestLedgerKeyOnlyThroughDynamoDB: the functions' roles may decrypt with the stack's key
// only what DynamoDB asks on their behalf for the ledger; the same Decrypt made directly
// (no kms:ViaService), or for another table, is refused.
func TestLedgerKeyOnlyThroughDynamoDB(t *testing.T) {
	env := cfn.Partitions[0]
	d := deploy(t, contract.KeySourceKMSDataKey, env)
	ledger, dynamodb := d.launchEnv[contract.EnvLedgerTable], "dynamodb."+env.Region+"."+env.URLSuffix()
	for _, tc := range []struct {
		name       string
		via, table string
		want       fakeaws.Decision
	}{
		{"through DynamoDB, the ledger", dynamodb, ledger, fakeaws.Allow},
		{"called directly", "", ledger, fakeaws.ImplicitDeny},
		{"through DynamoDB, another table", dynamodb, "payments", fakeaws.ImplicitDeny},
	} {
		ctx := map[string][]string{
			"kms:EncryptionContext:aws:dynamodb:tableName":    {tc.table},
			"kms:EncryptionContext:aws:dynamodb:subscriberId": {env.Account},
			"kms:EncryptionContextKeys":                       {"aws:dynamodb:subscriberId", "aws:dynamodb:tableName"},
		}
		if tc.via != "" {
			ctx["kms:ViaService"] = []string{tc.via}
		}
		for _, role := range []string{d.launchRole, d.resultRole} {
			ctx["aws:PrincipalArn"] = []string{role}
			got, err := fakeaws.KMSDecision(d.keyPolicy, d.policies[role], nil, fakeaws.AuthzRequest{Principal: role, Action: "kms:Decrypt", Resource: d.keyARN, Context: ctx})
			if err != nil {
				t.Fatal(err)
			}
			if got != tc.want {
				t.Errorf("%s as %s: %s, want %s", tc.name, role, got, tc.want)
			}
		}
	}
}
