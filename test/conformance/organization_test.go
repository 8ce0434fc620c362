package conformance

import (
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
	"github.com/storecrypt/storecrypt/internal/fakeaws"
	"github.com/storecrypt/storecrypt/internal/launch"
	"github.com/storecrypt/storecrypt/test/cfn"
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
// instance whose role is under the path, and blocks the one whose role is not, saying
// where to create its role; the agent's calls on the team's instance are allowed by the
// key. No team's credentials open another instance's volume, in its account or the other.
func TestTeamsRolesAcrossAnOrganization(t *testing.T) {
	const (
		teamInstance  = "i-0c000000000000001"
		strayInstance = "i-0c000000000000002"
	)
	var teams []team
	for i, account := range memberAccounts {
		d := member(t, account)
		tm := team{d, d.roleIn(instanceRolePath, fmt.Sprintf("team-%d", i)), teamInstance}
		stray := d.roleIn("/teams/", fmt.Sprintf("stray-%d", i)) // instance profile names are one namespace, whatever the path
		w := d.world(t)
		core := []string{fakeaws.ManagedPolicyARN(d.Env.Partition, fakeaws.SSMCore)}
		for _, r := range []string{tm.role, stray} {
			w.Roles[r] = &fakeaws.Role{ARN: r, ManagedPolicies: core}
			w.Profiles[fakeaws.Profile(r)] = r
		}
		w.AddInstance(teamInstance, "i4i.large", fakeaws.Profile(tm.role), map[string]string{contract.TagEncrypt: "true"}, launched)
		w.AddInstance(strayInstance, "i4i.large", fakeaws.Profile(stray), map[string]string{contract.TagEncrypt: "true"}, launched)
		d.launch(t, w, teamInstance, strayInstance)
		r := &run{world: w}
		r.expect(t, map[string]string{teamInstance: contract.StatusPending, strayInstance: contract.StatusBlocked})
		w.With(func() {
			if got := contract.Reason(w.Instances[strayInstance].Tags[contract.TagReason]); got != contract.ReasonNotKeyUser {
				t.Errorf("account %s: the stray role's instance is blocked for %q, want %q", account, got, contract.ReasonNotKeyUser)
			}
			blocked := slices.IndexFunc(w.Events, func(e fakeaws.Event) bool { return strings.Contains(e.Detail, strayInstance) })
			if want := "create the instance's role under path " + instanceRolePath; blocked < 0 || !strings.Contains(w.Events[blocked].Detail, want) {
				t.Errorf("account %s: the block's alert %v, want one saying %q", account, w.Events, want)
			}
		})
		tm.agentAllowed(t)
		teams = append(teams, tm)
	}
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
					got, err := fakeaws.KMSDecision(key.keyPolicy, nil, nil, fakeaws.AuthzRequest{Principal: tm.role, Session: tm.d.sessionOf(tm.role, tm.instance),
						Action: action, Resource: key.keyARN, Context: kmsContext(tm.on(), ec)})
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
