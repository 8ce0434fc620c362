package opcli_test

import (
	"context"
	"fmt"
	"os"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/cloudformation"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/aws-sdk-go-v2/service/iam"
	"github.com/aws/aws-sdk-go-v2/service/kms"
	"github.com/aws/aws-sdk-go-v2/service/organizations"
	"github.com/aws/aws-sdk-go-v2/service/sts"

	"github.com/storecrypt/storecrypt/internal/contract"
	"github.com/storecrypt/storecrypt/internal/fakeaws"
	"github.com/storecrypt/storecrypt/internal/golden"
	"github.com/storecrypt/storecrypt/internal/ledger"
	"github.com/storecrypt/storecrypt/internal/opcli"
)

// The organization of the merged report's tests: the management account the auditor
// runs from, two members with storecrypt and its auditor role, one member whose stack
// has no auditor role, and a suspended one.
const (
	management = "999988887777"
	teamA      = fakeaws.Account
	teamB      = "444455556666"
	noRole     = "777766665555"
	suspended  = "222233334444"
	orgID      = "o-a1b2c3d4e5"
)

var auditor = "arn:aws:iam::" + management + ":role/auditor"

const sameOrg = "${aws:ResourceOrgID}"

// auditorTrust is the trust policy the stack gives the auditor role when AuditorPrincipal
// is an account: its root, only from a principal of the organization org names
// (sameOrg, as the stack names it: the role's own account's).
func auditorTrust(principal, org string) string {
	return fmt.Sprintf(`{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"AWS":"arn:aws:iam::%s:root"},"Action":"sts:AssumeRole",
  "Condition":{"StringEquals":{"aws:PrincipalOrgID":"%s"}}}]}`, principal, org)
}

// member is fleet's account as account id, with the auditor role trusting trust (none
// when empty).
func member(t *testing.T, account, trust string) (*fakeaws.World, *ledger.Ledger) {
	t.Helper()
	w, book := fleet(t)
	key := strings.Replace(fakeaws.KeyARN, fakeaws.Account, account, 1)
	w.With(func() {
		w.AccountID = account
		k := *w.Keys[fakeaws.KeyARN]
		k.ARN = key
		w.Keys[key] = &k
		w.Stacks[contract.StackName].Outputs[contract.OutputKeyARN] = key
		if trust != "" {
			role := "arn:aws:iam::" + account + ":role/" + contract.AuditorRoleName(fakeaws.Region)
			w.Roles[role] = &fakeaws.Role{ARN: role, Trust: trust}
		}
	})
	return w, book
}

// organization is the worlds and the auditor's clients in the management account.
func organization(t *testing.T, trust string) opcli.Clients {
	t.Helper()
	org := &fakeaws.Organization{ID: orgID}
	central := fakeaws.NewAccount(t)
	central.AccountID, central.Caller = management, auditor
	central.Roles[auditor] = &fakeaws.Role{ARN: auditor, Policies: []string{fakeaws.Allows("sts:AssumeRole")}}
	org.Join(central, "management")
	books := map[*fakeaws.World]*ledger.Ledger{}
	for _, m := range []struct{ account, trust string }{{teamA, trust}, {teamB, trust}, {noRole, ""}, {suspended, trust}} {
		w, book := member(t, m.account, m.trust)
		books[w] = book
		org.Join(w, "team-"+m.account)
	}
	org.Suspend(suspended)
	cfg := central.Config()
	return opcli.Clients{STS: sts.NewFromConfig(cfg), Organizations: organizations.NewFromConfig(cfg), Region: fakeaws.Region, Now: worldClients(central, nil).Now,
		In: func(ctx context.Context, region string, creds aws.CredentialsProvider) (opcli.Clients, error) {
			w, cfg, err := org.Config(ctx, region, creds)
			if err != nil {
				return opcli.Clients{}, err
			}
			return opcli.Clients{EC2: ec2.NewFromConfig(cfg), IAM: iam.NewFromConfig(cfg), KMS: kms.NewFromConfig(cfg),
				CloudFormation: cloudformation.NewFromConfig(cfg), DynamoDB: books[w].DB}, nil
		}}
}

// TestReportAccounts: report --accounts merges the members' ledgers into one report, in
// every output, and lists the account it could not reach (the exit status says so).
func TestReportAccounts(t *testing.T) {
	c := organization(t, auditorTrust(management, sameOrg))
	for _, tc := range []struct {
		golden string
		args   []string
	}{
		{"report-accounts.txt", []string{"report", "--accounts", "all"}},
		{"report-accounts.json", []string{"report", "--accounts", "all", "--output", "json"}},
		{"report-accounts.csv", []string{"report", "--accounts", teamA + "," + teamB + "," + noRole, "--output", "csv"}},
		{"report-accounts-text.txt", []string{"report", "--accounts", "all", "--output", "text"}},
		{"report-accounts.html", []string{"report", "--accounts", "all", "--output", "html"}},
	} {
		t.Run(tc.golden, func(t *testing.T) {
			code, out, errOut := run(t, c, "", tc.args...)
			if code != int(contract.CLIExitUnreachable) {
				t.Fatalf("exit %d, want %d: %s", code, contract.CLIExitUnreachable, errOut)
			}
			for _, want := range []string{
				"storecrypt report: ", "] " + teamA + " us-east-1: 5 launches\n", "] " + teamB + " us-east-1: 5 launches\n",
				"] " + noRole + " us-east-1: unreachable: AccessDenied assuming arn:aws:iam::" + noRole + ":role/storecrypt-auditor-us-east-1",
				" accounts and regions could not be read; the report lists them and counts none of their launches\n",
			} {
				if !strings.Contains(errOut, want) {
					t.Errorf("stderr %q; want it to hold %q", errOut, want)
				}
			}
			if strings.Contains(errOut, suspended) {
				t.Errorf("stderr %q names the suspended account %s", errOut, suspended)
			}
			golden.Check(t, tc.golden, []byte(out))
		})
	}
}

// TestReportAccountsTrust: the auditor role's trust decides who reads: a trust that
// names another account or another organization refuses the auditor, and every member
// is then listed as unreachable, none counted.
func TestReportAccountsTrust(t *testing.T) {
	for _, tc := range []struct {
		name, trust string
		want        int
	}{
		// The management account has no stack, and one member no auditor role.
		{"the management account, in the organization", auditorTrust(management, sameOrg), 2},
		{"the management account, the organization named", auditorTrust(management, orgID), 2},
		{"another account", auditorTrust("123456789012", orgID), 4},
		{"another organization", auditorTrust(management, "o-zzzzzzzzzz"), 4},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, out, errOut := run(t, organization(t, tc.trust), "", "report", "--accounts", "all", "--output", "json", "--query", "length(unreachable)")
			if code != int(contract.CLIExitUnreachable) || strings.TrimSpace(out) != fmt.Sprint(tc.want) {
				t.Errorf("exit %d, %s unreachable; want exit %d and %d\n%s", code, strings.TrimSpace(out), contract.CLIExitUnreachable, tc.want, errOut)
			}
		})
	}
}

// TestDocumentedOrgReport runs docs/organizations.md's "Evidence for the whole
// organization" example against the fake organization: every line it shows is a line the
// command writes (the progress lines in any order, as places finish in any order), and
// the exit status.
func TestDocumentedOrgReport(t *testing.T) {
	doc, err := os.ReadFile("../../docs/organizations.md")
	if err != nil {
		t.Fatal(err)
	}
	_, section, _ := strings.Cut(string(doc), "## Evidence for the whole organization\n")
	_, block, _ := strings.Cut(section, "```console\n")
	block, _, _ = strings.Cut(block, "```\n")
	lines := strings.Split(strings.TrimSuffix(block, "\n"), "\n")
	command, ok := strings.CutPrefix(lines[0], "$ storecrypt ")
	if !ok || len(lines) < 4 || lines[len(lines)-2] != "$ echo $?" {
		t.Fatalf("docs/organizations.md's example is not a command, its output and its exit status:\n%s", block)
	}
	code, out, errOut := run(t, organization(t, auditorTrust(management, sameOrg)), "", strings.Fields(command)...)
	if want := lines[len(lines)-1]; fmt.Sprint(code) != want {
		t.Errorf("exit %d, docs/organizations.md says %s", code, want)
	}
	written := map[string]bool{}
	for _, l := range strings.Split(out+errOut, "\n") {
		_, progress, isProgress := strings.Cut(l, "] ")
		written[l] = true
		if isProgress && strings.HasPrefix(l, "[") {
			written[progress] = true
		}
	}
	for _, l := range lines[1 : len(lines)-2] {
		if _, progress, ok := strings.Cut(l, "] "); ok && strings.HasPrefix(l, "[") {
			l = progress
		}
		if l != "..." && !written[l] {
			t.Errorf("docs/organizations.md shows %q, which the command does not write", l)
		}
	}
}
