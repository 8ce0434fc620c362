package conformance

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"strings"
	"testing"

	"github.com/storecrypt/storecrypt/internal/contract"
	"github.com/storecrypt/storecrypt/internal/fakeaws"
	"github.com/storecrypt/storecrypt/test/cfn"
	"github.com/storecrypt/storecrypt/test/iamsim"
)

// rootAccess is what the account's root user may do in its own account: everything a
// resource policy or an SCP does not deny (AWS General Reference, "Root user credentials
// and IAM identities": "full access to all resources in the account"). Neither evaluator
// models the root user, so both are given it as an identity policy.
var rootAccess = fakeaws.Allows("*")

// matrixRow is one request put to both evaluators, with the verdict the threat model
// wants.
type matrixRow struct {
	name      string
	principal string // the role, user or root ARN
	session   string // the assumed-role session ARN; "" for a user or root
	action    string
	resource  string
	context   map[string][]string
	identity  []string // the caller's identity policies
	scps      []string // the SCPs over the account
	want      iamsim.Verdict
}

// request is the row as the fake account's evaluator reads it.
func (r matrixRow) request() fakeaws.AuthzRequest {
	return fakeaws.AuthzRequest{Principal: r.principal, Session: r.session, Action: r.action, Resource: r.resource, Context: r.context}
}

// ours is the project's own verdict: the SCP's deny, then the deployment's rule (the key
// policy with the identity policies for a call on the key; the identity policies for
// anything else), by the policies alone, without grants, as iam-simulate reads them.
func (r matrixRow) ours(t *testing.T, d *deployment) iamsim.Verdict {
	t.Helper()
	if len(r.scps) > 0 && denied(t, r.scps, r.request()) {
		return iamsim.ExplicitlyDenied
	}
	got, err := d.decideWith(component{policies: r.identity}, r.request(), nil)
	if err != nil {
		t.Fatalf("%s: %v", r.name, err)
	}
	return verdicts[got]
}

// verdicts are the fake account's decisions as iam-simulate names them.
var verdicts = map[fakeaws.Decision]iamsim.Verdict{
	fakeaws.Allow: iamsim.Allowed, fakeaws.ExplicitDeny: iamsim.ExplicitlyDenied, fakeaws.ImplicitDeny: iamsim.ImplicitlyDenied,
}

// simulated is the row as iam-simulate reads it: the key policy takes part in a call on
// the key, as in ours.
func (r matrixRow) simulated(d *deployment) iamsim.Request {
	req := iamsim.Request{Principal: r.session, Action: r.action, Resource: r.resource, Context: r.context, IdentityPolicies: r.identity}
	if req.Principal == "" {
		req.Principal = r.principal
	}
	if d.onKey(r.request()) {
		req.ResourcePolicy = d.keyPolicy
	}
	req.SCPs = r.scps
	return req
}

// stackSetID is the id a StackSet puts in its stack instances' names (the AWS CLI
// reference's list-stack-instances example: stack/StackSet-enable-config-<id>/<stack id>).
const stackSetID = "e6cac20f-8b1d-46e9-8314-53e0d4591532"

// TestIAMMatrix asks the project's evaluator (internal/fakeaws, which every conformance
// test uses) and an independent one (iam-simulate, through test/iamsim) about the same
// requests under the synthesized template's policies: the key policy with the instance
// role's, the functions' and the operator's identity policies, and the example SCPs. Each
// must give the verdict the threat model wants (docs/security.md). The published
// template is also deployed as a StackSet instance (AWS::StackName
// StackSet-storecrypt-<id>), where the operator's CLI, finding the stack by its export,
// must be allowed every call and no other stack. Every partition's rows and the functions' own
// calls go to iam-simulate in one batch.
func TestIAMMatrix(t *testing.T) {
	var scps []string
	for _, f := range exampleSCPs {
		scps = append(scps, readFile(t, f))
	}
	var all []judgedRow
	for i, env := range cfn.Partitions {
		d := deploy(t, contract.KeySourceKMSDataKey, env)
		rows := append(d.matrix(scps), d.auditorRows(t)...)
		rows = append(rows, d.revokeRows(scps)...)
		if i == 0 {
			rows = append(rows, d.calls(t, scps, append(d.functions(t), d.auditorComponent(t))...)...)
		}
		for _, r := range rows {
			r.name = env.Partition + ": " + r.name
			all = append(all, judgedRow{d, r})
		}
		bound := deployVariant(t, networkBound, env)
		for _, r := range bound.networkRows() {
			r.name = env.Partition + ", requireInstanceNetwork: " + r.name
			all = append(all, judgedRow{bound, r})
		}
		env.StackName = "StackSet-storecrypt-" + stackSetID
		member := deployVariant(t, stackSetTemplate, env)
		for _, r := range append(member.stackSetRows(t, scps), member.instanceRolePathRows(false)...) {
			r.name = env.Partition + ", StackSet instance " + env.StackName + ": " + r.name
			all = append(all, judgedRow{member, r})
		}
		env.Parameters = map[string]string{"InstanceRolePath": instanceRolePath}
		withPath := deployVariant(t, stackSetTemplate, env)
		for _, r := range withPath.instanceRolePathRows(true) {
			r.name = env.Partition + ", StackSet instance, InstanceRolePath " + instanceRolePath + ": " + r.name
			all = append(all, judgedRow{withPath, r})
		}
	}
	judge(t, all)
}

// judgedRow is a row and the deployment it is put to.
type judgedRow struct {
	d   *deployment
	row matrixRow
}

// judge puts every row to both evaluators, iam-simulate in one batch, and wants each
// row's verdict of both.
func judge(t *testing.T, all []judgedRow) {
	t.Helper()
	reqs := make([]iamsim.Request, len(all))
	for i, j := range all {
		reqs[i] = j.row.simulated(j.d)
	}
	theirs, err := iamsim.Evaluate(context.Background(), reqs)
	if err != nil {
		t.Fatal(err)
	}
	for i, j := range all {
		r, ours := j.row, j.row.ours(t, j.d)
		if ours != theirs[i] {
			b, _ := json.Marshal(reqs[i])
			t.Logf("the evaluators disagree on %s: ours %s, iam-simulate %s\n  request: %s", r.name, ours, theirs[i], b)
		}
		if ours != r.want || theirs[i] != r.want {
			t.Errorf("%s: got ours %s, iam-simulate %s, want %s", r.name, ours, theirs[i], r.want)
		}
	}
}

// matrix is the requests on the deployment's key, operator policy and SCP that decide who
// reaches a volume's key: each principal, on an instance or off one, with its own context,
// another's, or none.
func (d *deployment) matrix(scps []string) []matrixRow {
	const other = "i-0b000000000000002"
	role := func(name string) string {
		return fmt.Sprintf("arn:%s:iam::%s:role/%s", d.Env.Partition, d.Env.Account, name)
	}
	root := fmt.Sprintf("arn:%s:iam::%s:root", d.Env.Partition, d.Env.Account)
	admin, app, operator := role("Admin"), role("app"), role("operator")
	own := contract.EncryptionContext(d.instanceARN(keyUserInstance), "uuid-1")
	another := contract.EncryptionContext(d.instanceARN(other), "uuid-2")
	// A context that names the instance by id rather than ARN: no condition ties an id to
	// the caller's instance, so the stack must refuse it though no agent sends it.
	byID := map[string]string{"storecrypt:instance-id": keyUserInstance, contract.ContextVolume: "uuid-1"}
	instancePolicies := d.policies[d.instanceRole]
	broad := append(append([]string{}, instancePolicies...), fakeaws.Allows("kms:*"))
	everything := []string{fakeaws.Allows("*")}

	// caller is a principal's session and its own condition keys: on an instance (its id
	// names the session, as EC2 names it, and ec2:SourceInstanceARN is set), or not.
	type caller struct {
		principal, instance string
		keys                map[string][]string
	}
	session := func(c caller) string {
		if c.principal == root {
			return ""
		}
		name := c.instance
		if name == "" {
			name = "mallory"
		}
		return d.sessionOf(c.principal, name)
	}
	base := func(c caller) map[string][]string {
		ctx := map[string][]string{"aws:PrincipalArn": {c.principal}}
		if c.instance != "" {
			ctx["ec2:SourceInstanceARN"] = []string{d.instanceARN(c.instance)}
		}
		maps.Copy(ctx, c.keys)
		return ctx
	}
	onA, onB, offInstance := caller{d.instanceRole, keyUserInstance, nil}, caller{d.instanceRole, other, nil}, caller{d.instanceRole, "", nil}
	grant := map[string][]string{"kms:GrantOperations": {"Decrypt"}, "kms:GranteePrincipal": {app}}
	key := func(name string, c caller, action string, ec map[string]string, identity []string, want iamsim.Verdict) matrixRow {
		return matrixRow{name: name, principal: c.principal, session: session(c), action: action, resource: d.keyARN,
			context: kmsContext(base(c), ec), identity: identity, want: want}
	}
	rows := []matrixRow{
		key("instance A, its own volume, GenerateDataKey", onA, "kms:GenerateDataKey", own, instancePolicies, iamsim.Allowed),
		// Decrypt is not standing: only the launch function's grant for A allows it
		// (TestInstanceDecryptThroughItsGrant), which iam-simulate does not model.
		key("instance A, its own volume, Decrypt, by policy alone", onA, "kms:Decrypt", own, instancePolicies, iamsim.ImplicitlyDenied),
		key("instance A, B's volume, Decrypt", onA, "kms:Decrypt", another, instancePolicies, iamsim.ExplicitlyDenied),
		key("instance A, B's volume, GenerateDataKey", onA, "kms:GenerateDataKey", another, instancePolicies, iamsim.ExplicitlyDenied),
		key("instance B, A's volume, with kms:* in IAM", onB, "kms:Decrypt", own, broad, iamsim.ExplicitlyDenied),
		key("the instance role off any instance, A's volume", offInstance, "kms:Decrypt", own, instancePolicies, iamsim.ExplicitlyDenied),
		key("the instance role off any instance, with kms:* in IAM", offInstance, "kms:Decrypt", own, broad, iamsim.ExplicitlyDenied),
		key("another role with kms:* in IAM, A's volume", caller{app, other, nil}, "kms:Decrypt", own, everything, iamsim.ExplicitlyDenied),
		key("another role on its own instance, naming it", caller{app, other, nil}, "kms:GenerateDataKey", another, everything, iamsim.ExplicitlyDenied),
		key("the account admin, A's volume", caller{admin, "", nil}, "kms:Decrypt", own, everything, iamsim.ExplicitlyDenied),
		key("the account admin, a context not storecrypt's", caller{admin, "", nil}, "kms:GenerateDataKey", map[string]string{"app": "billing"}, everything, iamsim.Allowed),
		key("the account admin manages the key (KMS's lockout check)", caller{admin, "", nil}, "kms:PutKeyPolicy", nil, everything, iamsim.Allowed),
		key("the account admin reads the key", caller{admin, "", nil}, "kms:DescribeKey", nil, everything, iamsim.Allowed),
		key("root manages the key (KMS's lockout check)", caller{root, "", nil}, "kms:PutKeyPolicy", nil, []string{rootAccess}, iamsim.Allowed),
		key("root, A's volume", caller{root, "", nil}, "kms:Decrypt", own, []string{rootAccess}, iamsim.ExplicitlyDenied),
		key("instance A, an instance-id context of its own", onA, "kms:Decrypt", byID, instancePolicies, iamsim.ExplicitlyDenied),
		key("instance B, A's instance-id context", onB, "kms:Decrypt", byID, instancePolicies, iamsim.ExplicitlyDenied),
		key("the instance role off any instance, an instance-id context", offInstance, "kms:Decrypt", byID, instancePolicies, iamsim.ExplicitlyDenied),
		key("instance A with kms:* in IAM, ReEncryptFrom its own volume", onA, "kms:ReEncryptFrom", own, broad, iamsim.ExplicitlyDenied),
		key("instance A with kms:* in IAM, ReEncryptTo its own context", onA, "kms:ReEncryptTo", own, broad, iamsim.ExplicitlyDenied),
		key("instance A with kms:* in IAM, GenerateDataKeyWithoutPlaintext", onA, "kms:GenerateDataKeyWithoutPlaintext", own, broad, iamsim.ExplicitlyDenied),
		key("instance A with kms:* in IAM, CreateGrant on its own context", caller{d.instanceRole, keyUserInstance, grant}, "kms:CreateGrant", own, broad, iamsim.ExplicitlyDenied),
	}
	// Who may grant an instance its Decrypt: the launch function alone, in one shape.
	launch := d.policies[d.launchRole]
	ownInstance := map[string]string{contract.ContextInstanceARN: d.instanceARN(keyUserInstance)}
	grantOf := func(by, grantee string, ops []string, constrained bool, more map[string][]string) caller {
		keys := map[string][]string{"kms:GrantOperations": ops, "kms:GranteePrincipal": {grantee}, "kms:RetiringPrincipal": {d.launchRole}}
		if ops == nil {
			delete(keys, "kms:GrantOperations")
		}
		if constrained {
			keys["kms:GrantConstraintType"] = []string{"EncryptionContextSubset"}
		}
		maps.Copy(keys, more)
		return caller{by, "", keys}
	}
	decrypt := []string{"Decrypt"}
	rows = append(rows,
		key("the launch function grants instance A's role Decrypt under A's context", grantOf(d.launchRole, d.instanceRole, decrypt, true, nil), "kms:CreateGrant", ownInstance, launch, iamsim.Allowed),
		key("the launch function grants another role", grantOf(d.launchRole, app, decrypt, true, nil), "kms:CreateGrant", ownInstance, launch, iamsim.ImplicitlyDenied),
		key("the launch function grants another operation too", grantOf(d.launchRole, d.instanceRole, []string{"Decrypt", "Encrypt"}, true, nil), "kms:CreateGrant", ownInstance, launch, iamsim.ImplicitlyDenied),
		key("the launch function grants without the constraint", grantOf(d.launchRole, d.instanceRole, decrypt, false, nil), "kms:CreateGrant", nil, launch, iamsim.ImplicitlyDenied),
		key("the launch function grants no operation", grantOf(d.launchRole, d.instanceRole, nil, true, nil), "kms:CreateGrant", ownInstance, launch, iamsim.ImplicitlyDenied),
		key("the launch function grants with an exact-context constraint", grantOf(d.launchRole, d.instanceRole, decrypt, true,
			map[string][]string{"kms:GrantConstraintType": {"EncryptionContextEquals"}}), "kms:CreateGrant", ownInstance, launch, iamsim.ImplicitlyDenied),
		key("the account admin grants itself GenerateDataKey under A's context", grantOf(admin, admin, []string{"GenerateDataKey"}, true, nil), "kms:CreateGrant", ownInstance, everything, iamsim.ExplicitlyDenied),
		key("the launch function grants under another context key", grantOf(d.launchRole, d.instanceRole, decrypt, true, nil), "kms:CreateGrant", map[string]string{contract.ContextVolume: "uuid-1"}, launch, iamsim.ImplicitlyDenied),
		key("the operator grants instance A's role Decrypt under A's context", grantOf(operator, d.instanceRole, decrypt, true, nil), "kms:CreateGrant", ownInstance, []string{d.operatorPolicy}, iamsim.ExplicitlyDenied),
		key("the account admin grants instance A's role Decrypt, unconstrained", grantOf(admin, d.instanceRole, decrypt, false, nil), "kms:CreateGrant", nil, everything, iamsim.ExplicitlyDenied),
		key("the account admin grants itself Decrypt under A's context", grantOf(admin, admin, decrypt, true, nil), "kms:CreateGrant", ownInstance, everything, iamsim.ExplicitlyDenied),
		key("an AWS service grants for its own resource (the ledger table's)", grantOf(admin, admin, decrypt, false, map[string][]string{"kms:GrantIsForAWSResource": {"true"}}),
			"kms:CreateGrant", nil, everything, iamsim.Allowed),
	)

	document := fmt.Sprintf("arn:%s:ssm:%s:%s:document/%s", d.Env.Partition, d.Env.Region, d.Env.Account, d.documentName)
	for _, tc := range []struct {
		name string
		mfa  []string // nil: the key is absent
		want iamsim.Verdict
	}{
		{"the operator reruns with MFA", []string{"true"}, iamsim.Allowed},
		{"the operator reruns from a role assumed without MFA", []string{"false"}, iamsim.ImplicitlyDenied},
		{"the operator reruns with long-term keys (no MFA key)", nil, iamsim.ImplicitlyDenied},
	} {
		c := caller{operator, "", nil}
		if tc.mfa != nil {
			c.keys = map[string][]string{"aws:MultiFactorAuthPresent": tc.mfa}
		}
		rows = append(rows, matrixRow{name: tc.name, principal: operator, session: session(c), action: "ssm:SendCommand", resource: document,
			context: base(c), identity: []string{d.operatorPolicy}, want: tc.want})
	}

	ledger := fmt.Sprintf("arn:%s:dynamodb:%s:%s:table/%s", d.Env.Partition, d.Env.Region, d.Env.Account, d.launchEnv[contract.EnvLedgerTable])
	cdk := role("cdk-hnb659fds-cfn-exec-role-" + d.Env.Account + "-" + d.Env.Region)
	stacksets, lookalike := role("stacksets-exec-0123456789abcdef0123456789abcdef"), role("cdk-x-cfn-exec-role-y")
	for _, tc := range []struct {
		name, who, action, resource string
		want                        iamsim.Verdict
	}{
		{"the CDK execution role updates a function role", cdk, "iam:PutRolePolicy", d.launchRole, iamsim.Allowed},
		{"the CDK execution role updates the ledger table", cdk, "dynamodb:UpdateTable", ledger, iamsim.Allowed},
		{"the StackSets execution role updates a function role", stacksets, "iam:PutRolePolicy", d.launchRole, iamsim.Allowed},
		{"the StackSets execution role updates the ledger table", stacksets, "dynamodb:UpdateTable", ledger, iamsim.Allowed},
		// The exemptions go by name: a role that already bore a deployer's name when the SCP
		// was attached is a deployer (docs/security.md, Limits); no later one can be made.
		{"a role named like the CDK execution role before the SCP updates a function role", lookalike, "iam:PutRolePolicy", d.launchRole, iamsim.Allowed},
		{"an admin creates a look-alike of the CDK execution role", admin, "iam:CreateRole", lookalike, iamsim.ExplicitlyDenied},
		{"an admin updates a function role", admin, "iam:PutRolePolicy", d.launchRole, iamsim.ExplicitlyDenied},
		{"an admin passes a function role", admin, "iam:PassRole", d.launchRole, iamsim.ExplicitlyDenied},
		{"an admin writes the ledger", admin, "dynamodb:UpdateItem", ledger, iamsim.ExplicitlyDenied},
	} {
		c := caller{tc.who, "", nil}
		rows = append(rows, matrixRow{name: "SCP: " + tc.name, principal: tc.who, session: session(c), action: tc.action, resource: tc.resource,
			context: base(c), identity: everything, scps: scps, want: tc.want})
	}
	return rows
}

// calls are the requests each component makes in its run, which both evaluators must
// allow under its policies, the key policy and the example SCPs.
func (d *deployment) calls(t *testing.T, scps []string, comps ...component) []matrixRow {
	t.Helper()
	var rows []matrixRow
	seen := map[string]bool{}
	for _, c := range comps {
		for _, r := range c.requests(t) {
			b, _ := json.Marshal(r)
			if seen[string(b)] {
				continue
			}
			seen[string(b)] = true
			rows = append(rows, matrixRow{name: fmt.Sprintf("%s: %s on %s", c.name, r.Action, r.Resource), principal: c.principal, session: c.session,
				action: r.Action, resource: r.Resource, context: r.Context, identity: c.policies, scps: scps, want: iamsim.Allowed})
		}
	}
	return rows
}

// stackSetRows are the operator's requests on a StackSet instance of the published
// template: every call of `storecrypt --stack <its name>` is allowed, and reading another
// stack, one named like it included, is not.
func (d *deployment) stackSetRows(t *testing.T, scps []string) []matrixRow {
	t.Helper()
	op := d.operator(t)
	rows := d.calls(t, scps, op)
	const id = "8f4e2a10-5b3c-11f0-9a7d-0a1b2c3d4e5f"
	for _, tc := range []struct{ name, stack string }{
		{"the stack the app deploys", contract.StackName},
		{"another StackSet's stack", "StackSet-other-" + stackSetID},
		{"a stack named as its own plus a suffix", d.Env.Stack() + "-copy"},
	} {
		rows = append(rows, matrixRow{name: "operator reads " + tc.name, principal: op.principal, session: op.session, action: "cloudformation:DescribeStacks",
			resource: d.Env.StackARN(tc.stack, id), context: op.base, identity: op.policies, scps: scps, want: iamsim.ImplicitlyDenied})
	}
	return rows
}

// instanceRolePathRows are teams' own roles, which carry nothing of storecrypt's, on the
// key of a StackSet instance whose InstanceRolePath parameter is instanceRolePath
// (named) or empty: a role under the path opens its own instance's volume and nothing
// else; a role elsewhere, under a path that only starts like it, or of another account,
// opens none, whatever IAM gives it.
func (d *deployment) instanceRolePathRows(named bool) []matrixRow {
	const other = "i-0b000000000000002"
	team := d.roleIn(instanceRolePath, "team-a")
	lookalike := d.roleIn(strings.TrimSuffix(instanceRolePath, "/")+"X/", "team-b")
	stray := d.roleIn("/teams/", "team-c")
	elsewhere := strings.Replace(team, ":"+d.Env.Account+":", ":444455556666:", 1)
	own := contract.EncryptionContext(d.instanceARN(keyUserInstance), "uuid-1")
	another := contract.EncryptionContext(d.instanceARN(other), "uuid-2")
	// AmazonSSMManagedInstanceCore's calls: the team role's only rights.
	core := []string{fakeaws.Allows("ssm:UpdateInstanceInformation", "ec2messages:*", "ssmmessages:*")}
	broad := []string{fakeaws.Allows("kms:*")}
	row := func(name, role, instance, action string, ec map[string]string, identity []string, want iamsim.Verdict) matrixRow {
		ctx, session := map[string][]string{"aws:PrincipalArn": {role}}, d.sessionOf(role, "alice")
		if instance != "" {
			ctx["ec2:SourceInstanceARN"], session = []string{d.instanceARN(instance)}, d.sessionOf(role, instance)
		}
		if role == elsewhere {
			ctx["ec2:SourceInstanceARN"] = []string{strings.Replace(d.instanceARN(instance), ":"+d.Env.Account+":", ":444455556666:", 1)}
			session = strings.Replace(session, ":"+d.Env.Account+":", ":444455556666:", 1)
		}
		return matrixRow{name: name, principal: role, session: session, action: action, resource: d.keyARN,
			context: kmsContext(ctx, ec), identity: identity, want: want}
	}
	if !named {
		return []matrixRow{
			row("a team's role under "+instanceRolePath+", the parameter empty, its own instance", team, keyUserInstance, "kms:Decrypt", own, core, iamsim.ExplicitlyDenied),
		}
	}
	return []matrixRow{
		row("a team's role under the path, its own instance, GenerateDataKey", team, keyUserInstance, "kms:GenerateDataKey", own, core, iamsim.Allowed),
		row("a team's role under the path, its own instance, Decrypt, by policy alone (its grant allows it)", team, keyUserInstance, "kms:Decrypt", own, core, iamsim.ImplicitlyDenied),
		row("a team's role under the path, another instance's volume", team, keyUserInstance, "kms:Decrypt", another, core, iamsim.ExplicitlyDenied),
		row("a team's role under the path, on another instance, A's volume, kms:* in IAM", team, other, "kms:Decrypt", own, broad, iamsim.ExplicitlyDenied),
		row("a team's role under the path assumed by a person (no instance)", team, "", "kms:Decrypt", own, broad, iamsim.ExplicitlyDenied),
		row("a role not under the path, its own instance, kms:* in IAM", stray, keyUserInstance, "kms:Decrypt", own, broad, iamsim.ExplicitlyDenied),
		row("a role under a path that only starts like it, its own instance, kms:* in IAM", lookalike, keyUserInstance, "kms:GenerateDataKey", own, broad, iamsim.ExplicitlyDenied),
		row("another account's role under the path, its own instance, kms:* in IAM", elsewhere, keyUserInstance, "kms:Decrypt",
			contract.EncryptionContext(strings.Replace(d.instanceARN(keyUserInstance), ":"+d.Env.Account+":", ":444455556666:", 1), "uuid-1"), broad, iamsim.ExplicitlyDenied),
	}
}

// kmsContext is a caller's condition keys with the ones KMS sets for an encryption context.
// networkRows are networkCases as rows of the matrix: instance A's GenerateDataKey for its
// own volume with its role's policies, sent over each network. (Its Decrypt goes through
// its grant, which iam-simulate does not model; TestKeyOnlyFromTheInstanceNetwork judges
// both with the grant.)
func (d *deployment) networkRows() []matrixRow {
	var rows []matrixRow
	for _, c := range d.networkCases() {
		rows = append(rows, matrixRow{name: c.name, principal: d.instanceRole, session: d.sessionOf(d.instanceRole, keyUserInstance),
			action: "kms:GenerateDataKey", resource: d.keyARN, context: c.ctx, identity: d.policies[d.instanceRole], want: verdicts[c.bound]})
	}
	return rows
}

func kmsContext(base map[string][]string, ec map[string]string) map[string][]string {
	ctx := maps.Clone(base)
	maps.Copy(ctx, fakeaws.EncryptionContextKeys(ec))
	return ctx
}
