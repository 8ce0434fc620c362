package conformance

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/events"
	"github.com/aws/aws-sdk-go-v2/service/kms"

	"github.com/storecrypt/storecrypt/instance-agent/keysource"
	"github.com/storecrypt/storecrypt/internal/binding"
	"github.com/storecrypt/storecrypt/internal/contract"
	"github.com/storecrypt/storecrypt/internal/document"
	"github.com/storecrypt/storecrypt/internal/fakeaws"
	"github.com/storecrypt/storecrypt/internal/launch"
	"github.com/storecrypt/storecrypt/test/cfn"
	"github.com/storecrypt/storecrypt/test/iamsim"
)

// instanceRolePath is the path an organization names its teams' instance roles by, in
// the tests that deploy the published template with its InstanceRolePath parameter.
const instanceRolePath = "/storecrypt/instances/"

// memberAccounts are two accounts of an organization the StackSet deploys to.
var memberAccounts = []string{"111122223333", "444455556666"}

// member is the published template deployed as a StackSet instance into account (in the
// aws partition), with the organization's instance role path and opt-in tag.
func member(t *testing.T, account string) *deployment {
	t.Helper()
	env := cfn.Partitions[0]
	env.Account, env.StackName = account, "StackSet-storecrypt-"+stackSetID
	env.Parameters = map[string]string{"InstanceRolePath": instanceRolePath, "OptInTag": contract.OptIn}
	return deployVariant(t, stackSetTemplate, env)
}

// roleIn is a role of the deployment's account under path (which ends in "/").
func (d *deployment) roleIn(path, name string) string {
	return fmt.Sprintf("arn:%s:iam::%s:role%s%s", d.Env.Partition, d.Env.Account, path, name)
}

// team is a team's instance in one member account: its role (the team's own, with
// AmazonSSMManagedInstanceCore and nothing of storecrypt's) and the instance's id.
type team struct {
	d              *deployment
	role, instance string
}

// on is the team's instance role session on its instance.
func (tm team) on() map[string][]string {
	return map[string][]string{"aws:PrincipalArn": {tm.role}, "aws:PrincipalAccount": {tm.d.Env.Account},
		"ec2:SourceInstanceARN": {tm.d.instanceARN(tm.instance)}}
}

// TestTeamsRolesAcrossAnOrganization deploys the published template, with an instance
// role path, into two member accounts whose instances, opted in by tag, run under their
// teams' own roles. In each account the launch function sends the document to the
// instance whose role is under the path with the instance access policy attached (by
// its name, as a team's IaC would), which ends encrypted; it blocks the one whose role
// is under the path without that policy, naming the policy to attach, and the one whose
// role is not under the path, saying where to create its role. The agent's calls on the
// team's instance are allowed by the key, and its download and output by the policy
// (both evaluators; the role without it is refused them). No team's credentials open
// another instance's volume, in its account or the other.
func TestTeamsRolesAcrossAnOrganization(t *testing.T) {
	const (
		teamInstance  = "i-0c000000000000001"
		strayInstance = "i-0c000000000000002"
		bareInstance  = "i-0c000000000000004"
	)
	var teams []team
	var rows []judgedRow
	for i, account := range memberAccounts {
		d := member(t, account)
		tm := team{d, d.roleIn(instanceRolePath, fmt.Sprintf("team-%d", i)), teamInstance}
		bare := d.roleIn(instanceRolePath, fmt.Sprintf("bare-%d", i))
		stray := d.roleIn("/teams/", fmt.Sprintf("stray-%d", i)) // instance profile names are one namespace, whatever the path
		w := d.world(t)
		core := []string{fakeaws.ManagedPolicyARN(d.Env.Partition, fakeaws.SSMCore)}
		for _, r := range []string{tm.role, bare, stray} {
			w.Roles[r] = &fakeaws.Role{ARN: r, ManagedPolicies: core}
			w.Profiles[fakeaws.Profile(r)] = r
		}
		policy := fmt.Sprintf("arn:%s:iam::%s:policy/storecrypt/storecrypt-instance-access-%s", d.Env.Partition, account, d.Env.Region)
		if d.instanceAccessARN != policy || d.outputs[contract.OutputInstanceAccessPolicyARN] != policy {
			t.Fatalf("account %s: got the instance access policy %q (output %q), want %s", account, d.instanceAccessARN, d.outputs[contract.OutputInstanceAccessPolicyARN], policy)
		}
		w.Roles[tm.role].Policies = []string{d.instanceAccess}
		for id, role := range map[string]string{teamInstance: tm.role, bareInstance: bare, strayInstance: stray} {
			w.AddInstance(id, "i4i.large", fakeaws.Profile(role), map[string]string{contract.TagEncrypt: "true"}, launched)
		}
		d.launch(t, w, teamInstance, bareInstance, strayInstance)
		r := &run{world: w}
		r.expect(t, map[string]string{teamInstance: contract.StatusPending, bareInstance: contract.StatusBlocked, strayInstance: contract.StatusBlocked})
		w.With(func() {
			for _, tc := range []struct {
				instance string
				reason   contract.Reason
				fix      string
			}{
				{strayInstance, contract.ReasonNotKeyUser, "create the instance's role under path " + instanceRolePath},
				{bareInstance, contract.ReasonNoInstanceAccess, "attach the managed policy " + policy + " to " + bare},
			} {
				if got := contract.Reason(w.Instances[tc.instance].Tags[contract.TagReason]); got != tc.reason {
					t.Errorf("account %s: %s is blocked for %q, want %q", account, tc.instance, got, tc.reason)
				}
				blocked := slices.IndexFunc(w.Events, func(e fakeaws.Event) bool { return strings.Contains(e.Detail, tc.instance) })
				if blocked < 0 || !strings.Contains(w.Events[blocked].Detail, tc.fix) {
					t.Errorf("account %s: the block's alert %v, want one saying %q", account, w.Events, tc.fix)
				}
			}
		})
		tm.agentAllowed(t)
		access := tm.accessRows(bare)
		// Least privilege: the policy allows no action the SSM Agent's calls do not make.
		called := map[string]bool{}
		for _, r := range access {
			called[r.row.action] = true
		}
		for _, st := range statements(t, d.instanceAccess) {
			for _, a := range cfn.Actions(st) {
				if !called[a] {
					t.Errorf("account %s: the instance access policy allows %s, which no call of the agent's run makes", account, a)
				}
			}
		}
		rows = append(rows, access...)
		tm.ends(t, w)
		teams = append(teams, tm)
	}
	judge(t, rows)
	// Every team's session on its own instance, with a context naming another instance,
	// on that instance's key: the other instance of its account, and the other team's.
	const neighbour = "i-0c000000000000003"
	for _, tm := range teams {
		for _, victim := range append(slices.Clone(teams), team{tm.d, tm.role, neighbour}) {
			if victim == tm {
				continue
			}
			ec := contract.EncryptionContext(victim.d.instanceARN(victim.instance), "uuid-1")
			for _, key := range []*deployment{victim.d, tm.d} {
				for _, action := range binding.Actions(contract.KeySourceKMSDataKey) {
					req := fakeaws.AuthzRequest{Principal: tm.role, Session: tm.d.sessionOf(tm.role, tm.instance),
						Action: action, Resource: key.keyARN, Context: kmsContext(tm.on(), ec)}
					got, err := fakeaws.KMSDecision(key.keyPolicy, nil, key.launchGrant(req), req)
					if err != nil {
						t.Fatal(err)
					}
					if got != fakeaws.ExplicitDeny {
						t.Errorf("%s on %s, %s naming %s, key of %s: got %s, want %s", tm.role, tm.instance, action, victim.d.instanceARN(victim.instance), key.Env.Account, got, fakeaws.ExplicitDeny)
					}
				}
			}
		}
	}
}

// launch runs the deployment's launch function on one batch of ids' launches in w.
func (d *deployment) launch(t *testing.T, w *fakeaws.World, ids ...string) {
	t.Helper()
	c, err := launch.LoadConfig(func(k string) string { return d.launchEnv[k] })
	if err != nil {
		t.Fatal(err)
	}
	var metrics strings.Builder
	h := launch.New(c, w.Config(), slog.New(slog.DiscardHandler), &metrics)
	h.Now = func() time.Time { return launched.Add(2 * time.Minute) }
	h.Ledger, _ = d.ledger(t, w)
	var batch events.SQSEvent
	for _, id := range ids {
		batch.Records = append(batch.Records, w.Receive(id, launch.StateChangeEvent(id, launched), 1))
	}
	if _, err := h.HandleSQS(context.Background(), batch); err != nil {
		t.Fatal(err)
	}
}

// agentAllowed runs the agent's key source on the team's instance (a new volume's key,
// then its recovery) and checks each of its KMS calls, made with the team role's
// session on that instance, against the key as KMS would.
func (tm team) agentAllowed(t *testing.T) {
	t.Helper()
	w := tm.d.world(t)
	src := keysource.Sources{KMS: kms.NewFromConfig(w.Config())}
	opts := contract.DefaultAgentOptions()
	opts.KeySource, opts.KMSKeyID = contract.KeySourceKMSDataKey, tm.d.keyARN
	vol := keysource.Volume{InstanceARN: tm.d.instanceARN(tm.instance), UUID: "6a3c0b1e-0d5f-4c2b-9e7a-1f2e3d4c5b6a"}
	r := &run{world: w, calls: newAndRecover(t, w, src, opts, vol)}
	c := component{name: "agent of " + tm.role, principal: tm.role, session: tm.d.sessionOf(tm.role, tm.instance), base: tm.on(), run: r}
	for _, req := range c.requests(t) {
		got, err := tm.d.decide(c, req)
		if err != nil {
			t.Fatal(err)
		}
		if got != fakeaws.Allow {
			t.Errorf("%s on %s: %s on %s: got %s, want %s", tm.role, tm.instance, req.Action, req.Resource, got, fakeaws.Allow)
		}
	}
}

// accessRows are the SSM Agent's calls on the team's instance besides the key's, which
// the instance access policy is for: the download of each agent and Run Command's
// CloudWatch output, allowed with the policy, refused to the bare role (under the path
// too, AmazonSSMManagedInstanceCore alone).
func (tm team) accessRows(bare string) []judgedRow {
	d := tm.d
	group := func(resource string) string {
		return fmt.Sprintf("arn:%s:logs:%s:%s:log-group:%s", d.Env.Partition, d.Env.Region, d.Env.Account, resource)
	}
	logs := d.outputs[contract.OutputAgentLogGroup]
	// Log group actions are named by the group's ARN with :* ("Overview of managing
	// access permissions to your CloudWatch Logs resources"), PutLogEvents by the stream's.
	calls := [][2]string{
		{"logs:DescribeLogGroups", group("*")},
		{"logs:CreateLogGroup", group(logs + ":*")},
		{"logs:DescribeLogStreams", group(logs + ":*")},
		{"logs:CreateLogStream", group(logs + ":*")},
		{"logs:PutLogEvents", group(logs + ":log-stream:" + tm.instance + "/aws-runShellScript/stdout")},
	}
	for _, arch := range document.Architectures {
		bucket, key, _ := strings.Cut(strings.TrimPrefix(d.outputs[contract.OutputAgentS3URL(arch)], "s3://"), "/")
		calls = append(calls, [2]string{"s3:GetObject", fmt.Sprintf("arn:%s:s3:::%s/%s", d.Env.Partition, bucket, key)})
	}
	core := fakeaws.Allows("ssm:UpdateInstanceInformation", "ec2messages:*", "ssmmessages:*")
	var rows []judgedRow
	for _, c := range calls {
		for _, who := range []struct {
			role     string
			identity []string
			want     iamsim.Verdict
		}{{tm.role, []string{core, d.instanceAccess}, iamsim.Allowed}, {bare, []string{core}, iamsim.ImplicitlyDenied}} {
			rows = append(rows, judgedRow{d, matrixRow{name: fmt.Sprintf("account %s, %s on its instance: %s on %s", d.Env.Account, who.role, c[0], c[1]),
				principal: who.role, session: d.sessionOf(who.role, tm.instance), action: c[0], resource: c[1],
				context:  map[string][]string{"aws:PrincipalArn": {who.role}, "ec2:SourceInstanceARN": {d.instanceARN(tm.instance)}},
				identity: who.identity, want: who.want}})
		}
	}
	return rows
}

// ends has the command the launch function sent to the team's instance succeed with the
// agent's evidence, and the result function record it encrypted.
func (tm team) ends(t *testing.T, w *fakeaws.World) {
	t.Helper()
	var command string
	w.With(func() {
		for _, c := range w.Commands {
			if inv, ok := c.Invocations[tm.instance]; ok {
				command = c.ID
				inv.Status, inv.Stdout = "Success", tm.d.report(tm.instance)
			}
		}
	})
	if command == "" {
		t.Fatalf("account %s: no command was sent to %s", tm.d.Env.Account, tm.instance)
	}
	var metrics bytes.Buffer
	h, _ := tm.d.resultHandler(t, w, &metrics)
	tm.d.ended(t, h, "ssm-success.json", command, tm.instance)
	(&run{world: w}).expect(t, map[string]string{tm.instance: contract.StatusEncrypted})
}
