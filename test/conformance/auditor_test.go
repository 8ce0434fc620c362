package conformance

import (
	"bytes"
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/cloudformation"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/aws-sdk-go-v2/service/iam"
	"github.com/aws/aws-sdk-go-v2/service/kms"
	"github.com/aws/aws-sdk-go-v2/service/organizations"
	"github.com/aws/aws-sdk-go-v2/service/sts"

	"github.com/storecrypt/storecrypt/internal/awscfg"
	"github.com/storecrypt/storecrypt/internal/contract"
	"github.com/storecrypt/storecrypt/internal/fakeaws"
	"github.com/storecrypt/storecrypt/internal/opcli"
	"github.com/storecrypt/storecrypt/test/cfn"
	"github.com/storecrypt/storecrypt/test/iamsim"
)

// centralAccount is the AuditorPrincipal the tests' stacks trust: the organization's
// account that runs report --accounts.
const centralAccount = "999988887777"

// auditor is the stack's auditor role as deployed: its ARN, policies, trust policy and
// maximum session.
func (d *deployment) auditor(t *testing.T) *fakeaws.Role {
	t.Helper()
	arn, err := d.RoleARN(contract.AuditorRoleName(d.Env.Region))
	if err != nil {
		t.Fatal(err)
	}
	for _, id := range d.Of("AWS::IAM::Role") {
		if got, _ := d.String(map[string]any{"Fn::GetAtt": []any{id, "Arn"}}); got == arn {
			p := d.Resources[id].Properties
			seconds, _ := p["MaxSessionDuration"].(float64)
			return &fakeaws.Role{ARN: arn, Policies: d.policies[arn], Trust: d.json(t, p["AssumeRolePolicyDocument"]),
				MaxSession: time.Duration(seconds) * time.Second}
		}
	}
	t.Fatalf("the role %s has no resource", arn)
	return nil
}

// auditorComponent is the auditor role running `storecrypt report --accounts` against the
// deployment from the central account.
func (d *deployment) auditorComponent(t *testing.T) component {
	t.Helper()
	role := d.auditor(t)
	return component{"auditor", role.ARN, d.sessionOf(role.ARN, contract.AuditorSessionPrefix+"auditor"),
		map[string][]string{"aws:PrincipalArn": {role.ARN}}, role.Policies, d.auditorRun(t, role)}
}

// auditorRun: the deployment's account and the central account are an organization; the
// central account's auditor runs report --accounts on the deployment's account, through
// the role with the trust policy and session limit the template gives it, and reads an
// instance in scope that the ledger has no item for (its profile resolved to its role).
func (d *deployment) auditorRun(t *testing.T, role *fakeaws.Role) *run {
	t.Helper()
	r := &run{world: d.world(t)}
	w := r.world
	w.Roles[role.ARN] = role
	w.AddInstance(keyUserInstance, "i4i.large", d.instanceProfile, nil, launched)
	book, _ := d.ledger(t, w)

	org := &fakeaws.Organization{ID: "o-a1b2c3d4e5"}
	central := fakeaws.NewAccountIn(t, d.Env.Partition, d.Env.Region)
	central.AccountID = centralAccount
	central.Caller = fmt.Sprintf("arn:%s:iam::%s:role/auditor", d.Env.Partition, centralAccount)
	central.Roles[central.Caller] = &fakeaws.Role{ARN: central.Caller, Policies: []string{fakeaws.Allows("sts:AssumeRole")}}
	org.Join(central, "management")
	org.Join(w, "team")
	cfg := central.Config()
	clients := opcli.Clients{STS: sts.NewFromConfig(cfg), Organizations: organizations.NewFromConfig(cfg), Region: d.Env.Region,
		In: func(ctx context.Context, region string, creds aws.CredentialsProvider) (opcli.Clients, error) {
			_, cfg, err := org.Config(ctx, region, creds)
			if err != nil {
				return opcli.Clients{}, err
			}
			return opcli.Clients{EC2: ec2.NewFromConfig(cfg), IAM: iam.NewFromConfig(cfg), KMS: kms.NewFromConfig(cfg),
				CloudFormation: cloudformation.NewFromConfig(cfg), DynamoDB: book.DB}, nil
		}}
	var out, errOut bytes.Buffer
	args := []string{"report", "--accounts", d.Env.Account, "--since", launched.Add(-time.Hour).Format(time.RFC3339), "--until", launched.Add(time.Hour).Format(time.RFC3339),
		"--output", "json", "--query", "places[0].coverage.in_scope"}
	code := opcli.Main(context.Background(), args, strings.NewReader(""), &out, &errOut,
		func(context.Context, awscfg.Options) (opcli.Clients, error) { return clients, nil })
	if code != 0 || strings.TrimSpace(out.String()) != "1" {
		t.Fatalf("storecrypt %v: exit %d, %s in scope; want exit 0 and 1\n%s", args, code, strings.TrimSpace(out.String()), errOut.String())
	}
	r.calls = w.Log()
	return r
}

// auditorRows: the auditor reads evidence and nothing else. It may not open a volume's
// key, nor decrypt with the stack's key outside DynamoDB's reading of the ledger, nor
// write the ledger; asked of both evaluators.
func (d *deployment) auditorRows(t *testing.T) []matrixRow {
	t.Helper()
	role := d.auditor(t)
	session := d.sessionOf(role.ARN, contract.AuditorSessionPrefix+"auditor")
	base := map[string][]string{"aws:PrincipalArn": {role.ARN}}
	table := d.launchEnv[contract.EnvLedgerTable]
	ledger := fmt.Sprintf("arn:%s:dynamodb:%s:%s:table/%s", d.Env.Partition, d.Env.Region, d.Env.Account, table)
	ledgerKey := map[string]string{"aws:dynamodb:tableName": table, "aws:dynamodb:subscriberId": d.Env.Account}
	row := func(name, action, resource string, ctx map[string][]string, want iamsim.Verdict) matrixRow {
		return matrixRow{name: "auditor: " + name, principal: role.ARN, session: session, action: action, resource: resource,
			context: ctx, identity: role.Policies, want: want}
	}
	return []matrixRow{
		row("decrypts a volume's key", "kms:Decrypt", d.keyARN, kmsContext(base, contract.EncryptionContext(d.instanceARN(keyUserInstance), "uuid-1")), iamsim.ExplicitlyDenied),
		row("decrypts the ledger's key directly", "kms:Decrypt", d.keyARN, kmsContext(base, ledgerKey), iamsim.ImplicitlyDenied),
		row("makes a data key", "kms:GenerateDataKey", d.keyARN, kmsContext(base, nil), iamsim.ImplicitlyDenied),
		row("writes the ledger", "dynamodb:PutItem", ledger, base, iamsim.ImplicitlyDenied),
		row("updates the ledger", "dynamodb:UpdateItem", ledger, base, iamsim.ImplicitlyDenied),
		row("deletes from the ledger", "dynamodb:DeleteItem", ledger, base, iamsim.ImplicitlyDenied),
	}
}

// TestAuditorTrust evaluates the auditor role's trust policy as the template deploys it:
// the central account's principals may assume it (their own policies then decide) while
// the central account is in the role's organization; not once it has left it or joined
// another, and no other account, not even one of the organization.
func TestAuditorTrust(t *testing.T) {
	const org = "o-a1b2c3d4e5"
	for _, env := range cfn.Partitions {
		d := deploy(t, contract.KeySourceKMSDataKey, env)
		role := d.auditor(t)
		for _, tc := range []struct {
			name, account string
			principalOrg  []string // nil: the caller's account is in no organization
			want          fakeaws.Decision
		}{
			{"the central account, in the organization", centralAccount, []string{org}, fakeaws.Delegated},
			{"the central account, out of any organization", centralAccount, nil, fakeaws.ImplicitDeny},
			{"the central account, in another organization", centralAccount, []string{"o-zzzzzzzzzz"}, fakeaws.ImplicitDeny},
			{"another account of the organization", "444455556666", []string{org}, fakeaws.ImplicitDeny},
		} {
			caller := fmt.Sprintf("arn:%s:iam::%s:role/auditor", env.Partition, tc.account)
			ctx := map[string][]string{"aws:PrincipalArn": {caller}, "aws:PrincipalAccount": {tc.account}, "aws:ResourceOrgID": {org}}
			if tc.principalOrg != nil {
				ctx["aws:PrincipalOrgID"] = tc.principalOrg
			}
			got, _, err := fakeaws.Evaluate(role.Trust, true, fakeaws.AuthzRequest{Principal: caller, Action: "sts:AssumeRole", Resource: role.ARN, Context: ctx})
			if err != nil {
				t.Fatal(err)
			}
			if got != tc.want {
				t.Errorf("%s, %s: got %s, want %s", env.Partition, tc.name, got, tc.want)
			}
		}
	}
}
