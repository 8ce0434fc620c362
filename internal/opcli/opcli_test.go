package opcli_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/cloudformation"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/aws-sdk-go-v2/service/iam"
	"github.com/aws/aws-sdk-go-v2/service/kms"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/ssm"

	"github.com/storecrypt/storecrypt/instance-agent/keysource"
	"github.com/storecrypt/storecrypt/internal/awscfg"
	"github.com/storecrypt/storecrypt/internal/contract"
	"github.com/storecrypt/storecrypt/internal/document"
	"github.com/storecrypt/storecrypt/internal/fakeaws"
	"github.com/storecrypt/storecrypt/internal/golden"
	"github.com/storecrypt/storecrypt/internal/ledger"
	"github.com/storecrypt/storecrypt/internal/opcli"
	"github.com/storecrypt/storecrypt/test/deployment"
	"github.com/storecrypt/storecrypt/test/emu"
)

var launched = time.Date(2026, 11, 27, 6, 0, 0, 0, time.UTC)

func run(t *testing.T, c opcli.Clients, stdin string, args ...string) (int, string, string) {
	t.Helper()
	var out, errOut bytes.Buffer
	code := opcli.Main(context.Background(), args, strings.NewReader(stdin), &out, &errOut,
		func(context.Context, awscfg.Options) (opcli.Clients, error) { return c, nil })
	return code, out.String(), errOut.String()
}

// worldClients talk to w, and to the ledger's dynalite when there is one; the clock is
// the fixture's.
func worldClients(w *fakeaws.World, book *ledger.Ledger) opcli.Clients {
	cfg := w.Config()
	c := opcli.Clients{EC2: ec2.NewFromConfig(cfg), SSM: ssm.NewFromConfig(cfg), IAM: iam.NewFromConfig(cfg), KMS: kms.NewFromConfig(cfg),
		CloudFormation: cloudformation.NewFromConfig(cfg), Now: func() time.Time { return reported }}
	if book != nil {
		c.DynamoDB = book.DB
	}
	return c
}

// reported is when the fixture's report is made.
var reported = launched.Add(26 * time.Hour)

// agentOutput is what the document prints on instance id when the agent ends with result.
func agentOutput(id, result string) string {
	return deployment.AgentOutput(id, contract.KeySourceKMSDataKey, fakeaws.KeyARN, result)
}

// fleet is a world with instances in each state the CLI shows: encrypted and failed by
// runs SSM recorded, blocked, not yet seen, and one whose tags claim an encryption SSM
// never ran. A type without instance store and no storecrypt tag is not listed. Its
// ledger records the encrypted and the failed one, and one encrypted earlier that has
// terminated since.
func fleet(t *testing.T) (*fakeaws.World, *ledger.Ledger) {
	t.Helper()
	w := fakeaws.NewAccount(t)
	if _, err := deployment.Into(w, fakeaws.KeyARN); err != nil {
		t.Fatal(err)
	}
	at := launched.Add(2 * time.Minute).Format(time.RFC3339)
	w.AddInstance("i-00000000000000001", "i4i.large", fakeaws.Profile(fakeaws.KeyUser), map[string]string{
		contract.TagStatus: contract.StatusEncrypted, contract.TagAt: at, contract.TagCommandID: "cmd-1"}, launched)
	w.AddInstance("i-00000000000000002", "i4i.large", fakeaws.Profile(fakeaws.NotKeyUser), map[string]string{
		contract.TagStatus: contract.StatusBlocked, contract.TagReason: string(contract.ReasonNotKeyUser), contract.TagAt: at, contract.TagEncrypt: "true"}, launched)
	w.AddInstance("i-00000000000000003", "i3en.xlarge", fakeaws.Profile(fakeaws.KeyUser), map[string]string{
		contract.TagStatus: contract.StatusFailed, contract.TagReason: "refused-unsafe", contract.TagAt: at, contract.TagCommandID: "cmd-2"}, launched)
	w.AddInstance("i-00000000000000004", "i4i.large", fakeaws.Profile(fakeaws.KeyUser), nil, launched)
	w.AddInstance("i-00000000000000005", "m5.large", "", nil, launched)
	w.AddInstance("i-00000000000000006", "i4i.large", fakeaws.Profile(fakeaws.KeyUser), map[string]string{
		contract.TagStatus: contract.StatusEncrypted, contract.TagAt: at, contract.TagCommandID: "cmd-forged"}, launched)
	ran := launched.Add(time.Minute)
	w.With(func() {
		w.Commands = append(w.Commands,
			&fakeaws.Command{ID: "cmd-1", DocumentName: contract.DocumentName, DocumentVersion: "1", Requested: ran, InstanceIDs: []string{"i-00000000000000001"},
				Invocations: map[string]*fakeaws.Invocation{"i-00000000000000001": {Status: "Success", Stdout: agentOutput("i-00000000000000001", "ok")}}},
			&fakeaws.Command{ID: "cmd-2", DocumentName: contract.DocumentName, DocumentVersion: "1", Requested: ran, InstanceIDs: []string{"i-00000000000000003"},
				Invocations: map[string]*fakeaws.Invocation{"i-00000000000000003": {Status: "Failed", ResponseCode: 3, Stdout: agentOutput("i-00000000000000003", "refused-unsafe")}}},
		)
	})
	book := emu.Ledger(t)
	ctx := context.Background()
	for _, r := range []struct {
		id, typ  string
		launched time.Time
		e        ledger.Entry
	}{
		{"i-00000000000000001", "i4i.large", launched, ledger.Entry{ID: "result:cmd-1", At: ran.Add(95 * time.Second), By: "result", Status: contract.StatusEncrypted, CommandID: "cmd-1",
			Evidence: &ledger.Evidence{KeySource: contract.KeySourceKMSDataKey, Cipher: "aes-xts-plain64/512-bit/4096B sectors", LUKSUUID: "6a3c0b1e-0d5f-4c2b-9e7a-1f2e3d4c5b6a",
				Layout: "RAID0 of 2 disks, ext4 at /mnt/instance-store", ProvisionedBy: contract.ProvisionedByBoot, AgentVersion: "v1.4.0", DocumentName: contract.DocumentName, DocumentHash: "d1g3st"}}},
		{"i-00000000000000003", "i3en.xlarge", launched, ledger.Entry{ID: "result:cmd-2", At: ran.Add(time.Minute), By: "result", Status: contract.StatusFailed, Reason: "refused-unsafe", CommandID: "cmd-2"}},
		{"i-0000000000000000b", "i4i.large", launched.Add(-5 * time.Hour), ledger.Entry{ID: "result:cmd-0", At: launched.Add(-5*time.Hour + 80*time.Second), By: "result", Status: contract.StatusEncrypted, CommandID: "cmd-0",
			Evidence: &ledger.Evidence{KeySource: contract.KeySourceKMSDataKey, LUKSUUID: "0b0b0b0b-0d5f-4c2b-9e7a-1f2e3d4c5b6a"}}},
	} {
		l := ledger.Launch{InstanceID: r.id, LaunchTime: r.launched, Account: fakeaws.Account, Region: fakeaws.Region, InstanceType: r.typ, Role: fakeaws.KeyUser,
			KeyARN: fakeaws.KeyARN, KeyState: "Enabled"}
		if err := book.Record(ctx, l, r.e); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := book.Terminated(ctx, "i-0000000000000000b", launched.Add(-time.Hour)); err != nil {
		t.Fatal(err)
	}
	return w, book
}

func TestStatusAndReport(t *testing.T) {
	c := worldClients(fleet(t))
	for _, tc := range []struct {
		golden string
		args   []string
	}{
		{"status.txt", []string{"status"}},
		{"status.json", []string{"--output", "json", "status"}},
		{"status-text.txt", []string{"status", "--output", "text"}},
		// --query selects from the json, and prints in the format asked for.
		{"status-query.json", []string{"status", "--output", "json", "--query", "[?status=='encrypted'].instance"}},
		{"status-query-text.txt", []string{"status", "--query", "[?status=='encrypted'].instance", "--output", "text"}},
		{"status-query-rows-text.txt", []string{"status", "--query", "[].[instance, status, reason]", "--output", "text"}},
		{"status-query.txt", []string{"status", "--query", "[?in_scope].{instance: instance, status: status, reason: reason}"}},
		{"report-query.txt", []string{"report", "--query", "{coverage: coverage.percent, exceptions: length(exceptions)}"}},
		{"report.txt", []string{"report"}},
		{"report-text.txt", []string{"report", "--output", "text"}},
		{"report.csv", []string{"report", "--output", "csv"}},
		{"report.json", []string{"report", "--output", "json"}},
	} {
		t.Run(tc.golden, func(t *testing.T) {
			code, out, errOut := run(t, c, "", tc.args...)
			if code != 0 {
				t.Fatalf("exit %d: %s", code, errOut)
			}
			golden.Check(t, tc.golden, []byte(out))
		})
	}
	t.Run("report.html", func(t *testing.T) { // the page itself is audit's golden file
		code, out, errOut := run(t, c, "", "report", "--output", "html")
		if code != 0 || !strings.HasPrefix(out, "<!DOCTYPE html>") || !strings.Contains(out, "40.0%") || !strings.Contains(out, "i-00000000000000006") {
			t.Errorf("exit %d: %s\n%.300s", code, errOut, out)
		}
	})
	t.Run("another stack", func(t *testing.T) {
		for _, cmd := range []string{"status", "report", "verify"} {
			// --stack before the command as well as after it.
			code, out, errOut := run(t, c, "", "--stack", "Elsewhere", cmd, "--role", fakeaws.GrantUser)
			if cmd != "verify" {
				code, out, errOut = run(t, c, "", cmd, "--stack", "Elsewhere")
			}
			want := "storecrypt " + cmd + ": no stack Elsewhere in this account and region: pass --stack with the name storecrypt was deployed as (and --region), or deploy storecrypt\n"
			if code != 1 || errOut != want || out != "" {
				t.Errorf("%s: exit %d, stdout %q, stderr %q; want exit 1 and %q", cmd, code, out, errOut, want)
			}
		}
	})
}

// TestStackOutputs: verify takes the key from the stack's outputs, also when storecrypt
// is built into another stack that prefixes its output keys; a flag given wins, and two
// keys that could be storecrypt's are an error naming both.
func TestStackOutputs(t *testing.T) {
	w, _ := fleet(t)
	w.AddStack("Host", map[string]string{"WebTierKeyArn": fakeaws.KeyARN, "WebTierKeySource": contract.KeySourceKMSDataKey, "DbSecretArn": "arn:aws:secretsmanager:x"})
	w.AddStack("Two", map[string]string{"WebKeyArn": fakeaws.KeyARN, "BatchKeyArn": fakeaws.KeyARN})
	w.AddStack("NoKey", map[string]string{"Other": "x"})
	c := worldClients(w, nil)
	verify := []string{"verify", "--instance", "i-00000000000000001"}
	for _, tc := range []struct {
		name   string
		args   []string
		code   int
		golden string // the output, when it succeeds
		says   string // on stderr, when it fails
	}{
		{"the stack's key", verify, 0, "verify-ok.txt", ""},
		{"a prefixed key", append(verify, "--stack", "Host"), 0, "verify-ok.txt", ""},
		{"the flag wins", append(verify, "--stack", "Nowhere", "--kms-key-id", fakeaws.KeyARN), 0, "verify-ok.txt", ""},
		{"two candidates", append(verify, "--stack", "Two"), 1, "", "reading stack Two: outputs BatchKeyArn, WebKeyArn all end with KeyArn, and storecrypt cannot tell which is its own"},
		{"no key", append(verify, "--stack", "NoKey"), 2, "", "give --kms-key-id: stack NoKey has no KeyArn output"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, out, errOut := run(t, c, "", tc.args...)
			if code != tc.code || !strings.Contains(errOut, tc.says) {
				t.Fatalf("exit %d, stderr %q; want %d saying %q", code, errOut, tc.code, tc.says)
			}
			if tc.golden != "" {
				golden.Check(t, tc.golden, []byte(out))
			}
		})
	}
}

func TestVerify(t *testing.T) {
	c := worldClients(fleet(t))
	for _, tc := range []struct {
		golden string
		args   []string
		code   int
	}{
		{"verify-ok.txt", []string{"verify", "--instance", "i-00000000000000001", "--kms-key-id", fakeaws.KeyARN}, 0},
		{"verify-blocked.txt", []string{"verify", "--instance", "i-00000000000000002", "--kms-key-id", fakeaws.KeyARN}, int(contract.CLIExitBlocked)},
		{"verify-role.json", []string{"--output", "json", "verify", "--role", fakeaws.GrantUser, "--kms-key-id", fakeaws.KeyARN}, 0},
		{"verify-blocked.json", []string{"verify", "--output", "json", "--instance", "i-00000000000000002", "--kms-key-id", fakeaws.KeyARN}, int(contract.CLIExitBlocked)},
		{"verify-blocked-text.txt", []string{"verify", "--output", "text", "--instance", "i-00000000000000002", "--kms-key-id", fakeaws.KeyARN}, int(contract.CLIExitBlocked)},
		{"verify-ok-text.txt", []string{"verify", "--output", "text", "--instance", "i-00000000000000001", "--kms-key-id", fakeaws.KeyARN}, 0},
	} {
		t.Run(tc.golden, func(t *testing.T) {
			code, out, errOut := run(t, c, "", tc.args...)
			if code != tc.code {
				t.Fatalf("exit %d, want %d: %s", code, tc.code, errOut)
			}
			golden.Check(t, tc.golden, []byte(out))
		})
	}
}

// TestVerifyInstanceRolePath: on a stack with an instance role path (its key names roles
// by the path; its outputs the instance access policy, the agents and the log group),
// verify passes a team's role under the path with the policy attached, blocks one
// without it, naming the policy, and tells one elsewhere where to create its role.
func TestVerifyInstanceRolePath(t *testing.T) {
	w, book := fleet(t)
	const path = "/storecrypt/instances/"
	const policy = "arn:aws:iam::111122223333:policy/storecrypt/storecrypt-instance-access-us-east-1"
	w.Keys[fakeaws.KeyARN].Policy = fakeaws.KeyPolicyWithRolePath(path)
	w.AddStack("Org", map[string]string{
		contract.OutputKeyARN: fakeaws.KeyARN, contract.OutputKeySource: contract.KeySourceKMSDataKey, contract.OutputAgentLogGroup: "agent-logs",
		contract.OutputInstanceAccessPolicyARN: policy,
		contract.OutputAgentS3URL("amd64"):     "s3://code-us-east-1/storecrypt/storecrypt-agent-0123-amd64.gz",
		contract.OutputAgentS3URL("arm64"):     "s3://code-us-east-1/storecrypt/storecrypt-agent-0123-arm64.gz",
	})
	// The policy as the stack writes it for those outputs.
	attached := `{"Version":"2012-10-17","Statement":[
		{"Effect":"Allow","Action":"s3:GetObject","Resource":["arn:aws:s3:::code-us-east-1/storecrypt/storecrypt-agent-0123-amd64.gz","arn:aws:s3:::code-us-east-1/storecrypt/storecrypt-agent-0123-arm64.gz"]},
		{"Effect":"Allow","Action":["logs:CreateLogGroup","logs:CreateLogStream","logs:PutLogEvents","logs:DescribeLogStreams"],"Resource":"arn:aws:logs:us-east-1:111122223333:log-group:agent-logs:*"},
		{"Effect":"Allow","Action":"logs:DescribeLogGroups","Resource":"arn:aws:logs:us-east-1:111122223333:log-group:*"}]}`
	team, bare, stray := "arn:aws:iam::111122223333:role"+path+"team-a", "arn:aws:iam::111122223333:role"+path+"team-c", "arn:aws:iam::111122223333:role/teams/team-b"
	for r, policies := range map[string][]string{team: {attached}, bare: nil, stray: {attached}} {
		w.Roles[r] = &fakeaws.Role{ARN: r, Policies: policies, ManagedPolicies: []string{fakeaws.ManagedPolicyARN("aws", fakeaws.SSMCore)}}
	}
	c := worldClients(w, book)
	for _, tc := range []struct {
		golden, role string
		code         int
	}{
		{"verify-path-team.txt", team, 0},
		{"verify-path-bare.txt", bare, int(contract.CLIExitBlocked)},
		{"verify-path-stray.txt", stray, int(contract.CLIExitBlocked)},
	} {
		t.Run(tc.golden, func(t *testing.T) {
			code, out, errOut := run(t, c, "", "verify", "--stack", "Org", "--role", tc.role)
			if code != tc.code {
				t.Fatalf("exit %d, want %d: %s", code, tc.code, errOut)
			}
			golden.Check(t, tc.golden, []byte(out))
		})
	}
}

// agents answers each command on each of its instances the way the agent would: in
// progress, then ok; a command with Wipe=true fails with key-unavailable, and so does an
// instance that ends maps to key-unavailable; one it maps to "silent" never ends, and
// one it maps to "terminated" is cancelled by the command's MaxErrors.
func agents(t *testing.T, w *fakeaws.World, ends map[string]string) {
	t.Helper()
	w.OnCommand = func(cmd *fakeaws.Command) {
		for _, id := range cmd.InstanceIDs {
			time.Sleep(20 * time.Millisecond)
			if err := w.SetInvocation(cmd.ID, id, fakeaws.Invocation{Status: "InProgress"}); err != nil {
				t.Error(err)
			}
			end := ends[id]
			if wipe := cmd.Parameters["Wipe"]; len(wipe) == 1 && wipe[0] == "true" {
				end = "key-unavailable"
			}
			inv := fakeaws.Invocation{Status: "Success", Stdout: agentOutput(id, "ok")}
			switch end {
			case "silent":
				continue
			case "terminated":
				// Which Status comes with it is not documented; one that is not final
				// must not keep the CLI waiting.
				inv = fakeaws.Invocation{Status: "Pending", StatusDetails: "Terminated"}
			case "key-unavailable":
				inv = fakeaws.Invocation{Status: "Failed", ResponseCode: int32(contract.ExitKeyUnavailable), Stdout: agentOutput(id, end)}
			}
			time.Sleep(20 * time.Millisecond)
			if err := w.SetInvocation(cmd.ID, id, inv); err != nil {
				t.Error(err)
			}
		}
	}
}

// TestRerunOutputs: a single-instance rerun shows the agent's report as a table or JSON,
// and one line of text.
func TestRerunOutputs(t *testing.T) {
	for _, tc := range []struct{ golden, output string }{
		{"rerun.txt", "table"}, {"rerun.json", "json"}, {"rerun-text.txt", "text"},
	} {
		t.Run(tc.golden, func(t *testing.T) {
			w, _ := fleet(t)
			agents(t, w, nil)
			code, out, errOut := run(t, worldClients(w, nil), "", "rerun", "--instance", "i-00000000000000001", "--output", tc.output)
			if code != 0 {
				t.Fatalf("exit %d: %s", code, errOut)
			}
			golden.Check(t, tc.golden, []byte(out))
		})
	}
}

func TestRerun(t *testing.T) {
	w, _ := fleet(t)
	agents(t, w, nil)
	c := worldClients(w, nil)
	code, out, errOut := run(t, c, "", "rerun", "--instance", "i-00000000000000001")
	if code != 0 || !strings.Contains(out, "ok (exit 0)") || !strings.Contains(out, "MADE BY  ssm-command") || !strings.Contains(errOut, "waiting") {
		t.Fatalf("exit %d\n%s\n%s", code, out, errOut)
	}
	var first map[string][]string
	var requested string
	w.With(func() {
		first, requested = w.Commands[len(w.Commands)-1].Parameters, w.Commands[len(w.Commands)-1].RequestedVersion
		w.Instances["i-00000000000000001"].Architecture = "arm64"
	})
	// By number: what "$DEFAULT" names may change between the check and the run.
	if _, err := strconv.Atoi(requested); err != nil {
		t.Errorf("sent version %q, want the default version's number", requested)
	}
	if got := first[document.ArchitectureParameter]; !slices.Equal(got, []string{"amd64"}) {
		t.Errorf("Architecture %v, want the x86_64 instance's amd64", got)
	}
	if code, _, errOut := run(t, c, "", "rerun", "--instance", "i-00000000000000001"); code != 0 {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	w.With(func() { first = w.Commands[len(w.Commands)-1].Parameters })
	if got := first[document.ArchitectureParameter]; !slices.Equal(got, []string{"arm64"}) {
		t.Errorf("Architecture %v, want the Graviton instance's arm64", got)
	}
	if code, _, errOut := run(t, c, "", "rerun", "--instance", "i-00000000000000001", "--param", "Architecture=x86_64"); code != 2 || !strings.Contains(errOut, "Architecture is one of amd64, arm64") {
		t.Errorf("a bad architecture: exit %d %s", code, errOut)
	}
	code, _, errOut = run(t, c, "", "rerun", "--instance", "i-00000000000000001", "--param", "Wipe=true")
	if want := 20 + int(contract.ExitKeyUnavailable); code != want || !strings.Contains(errOut, "Failed") {
		t.Fatalf("a failed rerun: exit %d, want %d, 20 plus the agent's 4\n%s", code, want, errOut)
	}
	if code, _, errOut := run(t, c, "", "rerun", "--instance", "i-1", "--param", "Bogus=1"); code != 2 || !strings.Contains(errOut, `unknown parameter "Bogus"`) {
		t.Errorf("bad parameter: exit %d %s", code, errOut)
	}
	var params map[string][]string
	w.With(func() { params = w.Commands[len(w.Commands)-1].Parameters })
	if params["Wipe"][0] != "true" {
		t.Errorf("the override did not reach SendCommand: %v", params)
	}
}

// TestPutSecret stores a passphrase with the real emulators and reads it back the way
// the agent's s3-kms source does.
// stackSetName is how a StackSet names a stack instance: StackSet-<stack set name>-<id>.
const stackSetName = "StackSet-storecrypt-5f0c2a3e-8b1d-4e6f-9a7c-1d2e3f4a5b6c"

func TestPutSecret(t *testing.T) {
	e := emu.Start(t)
	ctx := context.Background()
	keyARN, err := e.CreateKey(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := e.PutObject(ctx, "secrets", "placeholder", []byte("x")); err != nil {
		t.Fatal(err)
	}
	c := opcli.Clients{KMS: e.KMS, S3: e.S3}
	code, out, errOut := run(t, c, "correct horse battery staple\n", "put-secret", "--bucket", "secrets", "--kms-key-id", keyARN)
	if code != 0 || !strings.Contains(out, "stored s3://secrets/seed/passphrase") {
		t.Fatalf("exit %d\n%s\n%s", code, out, errOut)
	}
	if strings.Contains(out+errOut, "horse") {
		t.Error("the passphrase was printed")
	}
	key, err := keysource.Sources{KMS: e.KMS, S3: e.S3Reader(), Owner: func(context.Context) (string, error) { return emu.Account, nil }}.New(ctx, contract.AgentOptions{KeySource: contract.KeySourceS3KMS, Secret: "s3://secrets/seed/passphrase"}, keysource.Volume{})
	if err != nil || string(key.Secret) != "correct horse battery staple" {
		t.Fatalf("the agent read %q, %v", key.Secret, err)
	}
	for _, tc := range []struct{ stdin, says string }{{"", "no passphrase"}, {"two\nlines\n", "one line"}} {
		if code, _, errOut := run(t, c, tc.stdin, "put-secret", "--bucket", "secrets", "--kms-key-id", keyARN); code != 2 || !strings.Contains(errOut, tc.says) {
			t.Errorf("stdin %q: exit %d %s", tc.stdin, code, errOut)
		}
	}
	if code, _, errOut := run(t, c, "", "put-secret", "--generate", "--bucket", "secrets", "--key", "gen", "--kms-key-id", keyARN); code != 0 {
		t.Errorf("--generate: exit %d %s", code, errOut)
	}
	// With neither the bucket nor the key given, both come from the stack's outputs; the
	// stack is found by its export, whatever a StackSet named it.
	for _, tc := range []struct {
		name   string
		stacks map[string]string // stack name -> its export's name ("" exports nothing)
		args   []string
		code   int
		says   string
	}{
		{"a StackSet's stack instance", map[string]string{stackSetName: stackSetName + ":storecrypt"}, nil, 0, "stored s3://secrets/from/" + stackSetName},
		{"a construct with an id of its own", map[string]string{"Platform": "Platform:storecrypt:WebTier"}, nil, 0, "stored s3://secrets/from/Platform"},
		{"--stack wins", map[string]string{stackSetName: stackSetName + ":storecrypt", "Other": ""}, []string{"--stack", "Other"}, 0, "stored s3://secrets/from/Other"},
		{"no stack exports the mark", map[string]string{"Other": "Other:storecryptish", "Third": "storecrypt"}, nil, 1, "no storecrypt stack in this account and region"},
		{"two stacks export it", map[string]string{"A": "A:storecrypt", "B": "B:storecrypt:WebTier"}, nil, 2, "2 storecrypt stacks in this account and region (A, B): choose one with --stack"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			w := fakeaws.NewAccount(t)
			for name, export := range tc.stacks {
				w.AddStack(name, map[string]string{contract.OutputKeyARN: keyARN, contract.OutputSecret: "s3://secrets/from/" + name, contract.OutputDocumentDigest: "digest"})
				if export != "" {
					if err := w.Export(name, contract.OutputDocumentDigest, export); err != nil {
						t.Fatal(err)
					}
				}
			}
			withStack := c
			withStack.CloudFormation = cloudformation.NewFromConfig(w.Config())
			code, out, errOut := run(t, withStack, "", append([]string{"put-secret", "--generate"}, tc.args...)...)
			if code != tc.code || !strings.Contains(out+errOut, tc.says) {
				t.Errorf("exit %d, want %d with %q:\n%s%s", code, tc.code, tc.says, out, errOut)
			}
			if tc.code == 0 && !strings.Contains(out, keyARN) {
				t.Errorf("the key did not come from the stack:\n%s", out)
			}
		})
	}

	// A second put-secret would change the passphrase new volumes get: only with --force,
	// and volumes made with the first keep opening with the version their token names.
	if code, _, errOut := run(t, c, "a new passphrase\n", "put-secret", "--bucket", "secrets", "--kms-key-id", keyARN); code == 0 || !strings.Contains(errOut, "--force") {
		t.Errorf("overwrote the secret without --force: exit %d %s", code, errOut)
	}
	if code, _, errOut := run(t, c, "a new passphrase\n", "put-secret", "--force", "--bucket", "secrets", "--kms-key-id", keyARN); code != 0 {
		t.Fatalf("--force: exit %d %s", code, errOut)
	}
	src := keysource.Sources{KMS: e.KMS, S3: e.S3Reader(), Owner: func(context.Context) (string, error) { return emu.Account, nil }}
	old, err := src.Recover(ctx, key.Token, keysource.Volume{})
	if err != nil || string(old.Secret) != "correct horse battery staple" {
		t.Errorf("a volume made before --force recovers %q, %v", old.Secret, err)
	}
	fresh, err := src.New(ctx, contract.AgentOptions{KeySource: contract.KeySourceS3KMS, Secret: "s3://secrets/seed/passphrase"}, keysource.Volume{})
	if err != nil || string(fresh.Secret) != "a new passphrase" || fresh.Token.SecretVersion == key.Token.SecretVersion {
		t.Errorf("a new volume gets %q (version %q), %v", fresh.Secret, fresh.Token.SecretVersion, err)
	}
}

// TestPutSecretOutputs: what put-secret prints in each format, with the bucket, object
// and key from the stack's outputs.
func TestPutSecretOutputs(t *testing.T) {
	for _, tc := range []struct{ golden, output string }{
		{"put-secret.txt", "table"}, {"put-secret.json", "json"}, {"put-secret-text.txt", "text"},
	} {
		t.Run(tc.golden, func(t *testing.T) {
			w, _ := fleet(t)
			w.With(func() { w.Stacks[contract.StackName].Outputs[contract.OutputSecret] = "s3://secrets/seed/passphrase" })
			c := worldClients(w, nil)
			c.S3 = s3.NewFromConfig(w.Config())
			code, out, errOut := run(t, c, "correct horse battery staple\n", "put-secret", "--output", tc.output)
			if code != 0 || strings.Contains(out+errOut, "horse") {
				t.Fatalf("exit %d\n%s\n%s", code, out, errOut)
			}
			golden.Check(t, tc.golden, []byte(out))
		})
	}
}

func TestUsage(t *testing.T) {
	c := opcli.Clients{}
	for _, tc := range []struct {
		args []string
		code int
		says string
	}{
		{nil, 2, "Available Commands:"},
		{[]string{"--help"}, 0, "put-secret"},
		{[]string{"nope"}, 2, `unknown command "nope"`},
		{[]string{"status", "--bogus"}, 2, "unknown flag: --bogus"},
		{[]string{"verify", "--help"}, 0, "--kms-key-id"},
		{[]string{"verify"}, 2, "give one of --instance or --role"},
		{[]string{"status", "--output", "yaml"}, 2, `--output "yaml": want one of table, json, text`},
		{[]string{"report", "--output", "yaml"}, 2, "want one of table, json, text, csv, html"},
		{[]string{"status", "--output", "html"}, 2, "want one of table, json, text\n"},
		{[]string{"status", "extra"}, 2, `unexpected argument "extra"`},
		{[]string{"report", "--since", "last week"}, 2, "want YYYY-MM-DD or an RFC 3339 time"},
		{[]string{"report", "--since", "2026-11-02", "--until", "2026-11-01"}, 2, "is not before --until"},
	} {
		code, out, errOut := run(t, c, "", tc.args...)
		if code != tc.code || !strings.Contains(out+errOut, tc.says) {
			t.Errorf("%v: exit %d, stdout %q, stderr %q; want %d saying %q", tc.args, code, out, errOut, tc.code, tc.says)
		}
	}
}

// TestHelp: --help of storecrypt and of each command, on stdout (as with the aws CLI, so
// it pages and greps), exit 0, and nothing on stderr.
func TestHelp(t *testing.T) {
	for _, args := range [][]string{{}, {"put-secret"}, {"verify"}, {"rerun"}, {"revoke"}, {"resume"}, {"status"}, {"report"}, {"stage"}, {"version"}, {"completion"}} {
		name := strings.Join(append([]string{"storecrypt"}, args...), "-")
		t.Run(name, func(t *testing.T) {
			code, out, errOut := run(t, opcli.Clients{}, "", append(args, "--help")...)
			if code != 0 || errOut != "" {
				t.Fatalf("exit %d, stderr %q", code, errOut)
			}
			golden.Check(t, "help/"+name+".txt", []byte(out))
		})
	}
}

// TestCompletion: each shell's script is printed on stdout and completes storecrypt.
func TestCompletion(t *testing.T) {
	for _, tc := range []struct{ shell, marker string }{
		{"bash", "complete -o default -F __start_storecrypt storecrypt"},
		{"zsh", "#compdef storecrypt"},
		{"fish", "complete -c storecrypt"},
	} {
		t.Run(tc.shell, func(t *testing.T) {
			code, out, errOut := run(t, opcli.Clients{}, "", "completion", tc.shell)
			if code != 0 || errOut != "" || !strings.Contains(out, tc.marker) {
				t.Errorf("exit %d, stderr %q, want a script with %q:\n%.400s", code, errOut, tc.marker, out)
			}
		})
	}
}

// TestGlobalFlagsAnywhere: --region and --profile reach the clients whether they come
// before the command or after it, as with the aws CLI.
func TestGlobalFlagsAnywhere(t *testing.T) {
	for _, args := range [][]string{
		{"--region", "eu-west-1", "--profile", "ops", "status"},
		{"status", "--region", "eu-west-1", "--profile", "ops"},
		{"--profile", "ops", "status", "--region", "eu-west-1"},
	} {
		var region, profile string
		var out, errOut bytes.Buffer
		code := opcli.Main(context.Background(), args, strings.NewReader(""), &out, &errOut, func(_ context.Context, o awscfg.Options) (opcli.Clients, error) {
			region, profile = o.Region, o.Profile
			return opcli.Clients{}, errors.New("no AWS credentials")
		})
		if code != 1 || region != "eu-west-1" || profile != "ops" {
			t.Errorf("%v: exit %d, region %q, profile %q", args, code, region, profile)
		}
	}
}

// TestVersion: version, and --version as aws --version, need no AWS configuration; the
// text output names each field.
func TestVersion(t *testing.T) {
	noAWS := func(context.Context, awscfg.Options) (opcli.Clients, error) {
		return opcli.Clients{}, errors.New("no AWS credentials")
	}
	line := `storecrypt \S+( \(commit [0-9a-f]+(, modified)?\))? go\S+\n`
	for _, tc := range []struct {
		args []string
		want string // a regexp of the whole of stdout
	}{
		{[]string{"version"}, line},
		{[]string{"--version"}, line},
		{[]string{"--version", "--output", "json"}, line},
		{[]string{"version", "--output", "text"}, `version\t\S+\nrevision\t([0-9a-f]+|None)\nmodified\t(true|false)\ngo\tgo\S+\n`},
		{[]string{"version", "--output", "json"}, `\{\n  "version": "\S+",\n(  "revision": "[0-9a-f]+",\n)?(  "modified": true,\n)?  "go": "go\S+"\n\}\n`},
	} {
		var out, errOut bytes.Buffer
		code := opcli.Main(context.Background(), tc.args, strings.NewReader(""), &out, &errOut, noAWS)
		if code != 0 || errOut.Len() != 0 || !regexp.MustCompile(`^`+tc.want+`$`).MatchString(out.String()) {
			t.Errorf("%v: got exit %d, stdout %q, stderr %q; want exit 0 and stdout matching %s", tc.args, code, out.String(), errOut.String(), tc.want)
		}
	}
	// make build and make release stamp the tag git describe gives.
	opcli.SetVersion(t, "v0.2.0-3-gabcdef0")
	var out bytes.Buffer
	opcli.Main(context.Background(), []string{"version", "--output", "text", "--query", "version"}, strings.NewReader(""), &out, io.Discard, noAWS)
	if got, want := out.String(), "v0.2.0-3-gabcdef0\n"; got != want {
		t.Errorf("stamped version: got %q, want %q", got, want)
	}
}

// batch is the fleet with three more instances tagged team=batch: two x86_64, one of them
// failing with key-unavailable, and a Graviton one; two more tagged so that rerun must
// leave out.
func batch(t *testing.T) *fakeaws.World {
	t.Helper()
	w, _ := fleet(t)
	for id, typ := range map[string]string{"i-00000000000000011": "i4i.large", "i-00000000000000012": "im4gn.large", "i-00000000000000013": "i4i.large"} {
		w.AddInstance(id, typ, fakeaws.Profile(fakeaws.KeyUser), map[string]string{"team": "batch"}, launched)
	}
	// Tagged alike, but not the stack's: another role, and a type without instance store.
	w.AddInstance("i-00000000000000014", "i4i.large", fakeaws.Profile(fakeaws.NotKeyUser), map[string]string{"team": "batch"}, launched)
	w.AddInstance("i-00000000000000015", "m5.large", fakeaws.Profile(fakeaws.KeyUser), map[string]string{"team": "batch"}, launched)
	agents(t, w, map[string]string{"i-00000000000000013": "key-unavailable"})
	return w
}

// sent are the commands the world received after the first n.
func sent(w *fakeaws.World, n int) []fakeaws.Command {
	var out []fakeaws.Command
	w.With(func() {
		for _, c := range w.Commands[n:] {
			out = append(out, *c)
		}
	})
	return out
}

// TestRerunFleetOutputs: a rerun of many instances prints a line per instance and the
// count of each result, in each format, and exits 11 when any instance failed.
func TestRerunFleetOutputs(t *testing.T) {
	for _, tc := range []struct{ golden, output string }{
		{"rerun-many.txt", "table"}, {"rerun-many.json", "json"}, {"rerun-many-text.txt", "text"},
	} {
		t.Run(tc.golden, func(t *testing.T) {
			w := batch(t)
			code, out, errOut := run(t, worldClients(w, nil), "", "rerun", "--targets", "tag:team=batch", "--yes", "--output", tc.output)
			if code != int(contract.CLIExitRerunFailed) || !strings.Contains(errOut, "storecrypt: 3/3 done, 2 ok, 1 failed, 0 pending\n") ||
				!strings.HasSuffix(errOut, "storecrypt rerun: 1 of 3 instances did not succeed\n") {
				t.Fatalf("exit %d, want %d:\n%s", code, contract.CLIExitRerunFailed, errOut)
			}
			golden.Check(t, tc.golden, []byte(out))
		})
	}
}

// TestRerunFleet: the commands a rerun of many instances sends: one per architecture and
// at most 50 instances, the architecture's agent, the rate controls, the agents' log
// group; and what it refuses before sending anything.
func TestRerunFleet(t *testing.T) {
	t.Run("by tag, defaults", func(t *testing.T) {
		w := batch(t)
		before := len(sent(w, 0))
		code, _, errOut := run(t, worldClients(w, nil), "", "rerun", "--targets", "tag:team=batch", "--yes")
		for _, want := range []string{"RERUN (3)", "LEFT OUT (2)",
			"i-00000000000000014  outside the stack's scope: role " + fakeaws.NotKeyUser + " is not one of the stack's\n",
			"i-00000000000000015  type m5.large has no instance store\n"} {
			if !strings.Contains(errOut, want) {
				t.Errorf("exit %d, stderr lacks %q:\n%s", code, want, errOut)
			}
		}
		got := map[string][]string{}
		for _, c := range sent(w, before) {
			if c.MaxConcurrency != "50" || c.MaxErrors != "0" || c.LogGroup != "/storecrypt/agents" || c.DocumentVersion != "1" {
				t.Errorf("command %s: MaxConcurrency %q, MaxErrors %q, log group %q, version %q; want 50, 0, /storecrypt/agents, 1", c.ID, c.MaxConcurrency, c.MaxErrors, c.LogGroup, c.DocumentVersion)
			}
			got[c.Parameters[document.ArchitectureParameter][0]] = c.InstanceIDs
		}
		want := map[string][]string{"amd64": {"i-00000000000000011", "i-00000000000000013"}, "arm64": {"i-00000000000000012"}}
		if !maps.EqualFunc(got, want, slices.Equal) {
			t.Errorf("sent %v, want %v", got, want)
		}
	})
	t.Run("by id, rate controls", func(t *testing.T) {
		w := batch(t)
		before := len(sent(w, 0))
		code, out, errOut := run(t, worldClients(w, nil), "", "rerun", "--instances", "i-00000000000000011,i-00000000000000012", "--instances", "i-00000000000000011",
			"--max-concurrency", "10%", "--max-errors", "1", "--yes")
		if code != 0 || !strings.Contains(out, "ok      2") {
			t.Fatalf("exit %d\n%s\n%s", code, out, errOut)
		}
		cmds := sent(w, before)
		if len(cmds) != 2 {
			t.Fatalf("%d commands, want one per architecture", len(cmds))
		}
		for _, c := range cmds {
			if c.MaxConcurrency != "10%" || c.MaxErrors != "1" || c.LogGroup != deployment.AgentLogGroup || len(c.InstanceIDs) != 1 {
				t.Errorf("command %s: %q %q %q %v; want 10%%, 1, %s, one instance", c.ID, c.MaxConcurrency, c.MaxErrors, c.LogGroup, c.InstanceIDs, deployment.AgentLogGroup)
			}
		}
	})
	t.Run("123 instances", func(t *testing.T) {
		w := batch(t)
		for n := range 123 {
			typ := "i4i.large"
			if n >= 120 {
				typ = "im4gn.large"
			}
			w.AddInstance(fmt.Sprintf("i-%017d", 1000+n), typ, fakeaws.Profile(fakeaws.KeyUser), map[string]string{"team": "big"}, launched)
		}
		before := len(sent(w, 0))
		code, out, errOut := run(t, worldClients(w, nil), "", "rerun", "--targets", "tag:team=big", "--output", "text", "--yes")
		if code != 0 || !strings.HasSuffix(out, "SUMMARY\tok\t123\n") || strings.Count(out, "\n") != 124 {
			t.Fatalf("exit %d\n%s\n%s", code, out, errOut)
		}
		var sizes []string
		for _, c := range sent(w, before) {
			sizes = append(sizes, fmt.Sprintf("%s:%d", c.Parameters[document.ArchitectureParameter][0], len(c.InstanceIDs)))
		}
		if want := []string{"amd64:50", "amd64:50", "amd64:20", "arm64:3"}; !slices.Equal(sizes, want) {
			t.Errorf("commands %v, want %v", sizes, want)
		}
	})
	t.Run("a stack without the agents' log group", func(t *testing.T) {
		w := batch(t)
		w.With(func() { delete(w.Stacks[contract.StackName].Outputs, contract.OutputAgentLogGroup) })
		before := len(sent(w, 0))
		code, _, errOut := run(t, worldClients(w, nil), "", "rerun", "--instances", "i-00000000000000011", "--yes")
		if code != 1 || !strings.Contains(errOut, "lacks the AgentLogGroupName output") || len(sent(w, before)) != 0 {
			t.Errorf("exit %d, %d commands sent:\n%s\nwant exit 1, none sent, and the missing output named", code, len(sent(w, before)), errOut)
		}
	})
	t.Run("timeout", func(t *testing.T) {
		w := batch(t)
		agents(t, w, map[string]string{"i-00000000000000012": "silent"})
		code, out, errOut := run(t, worldClients(w, nil), "", "rerun", "--targets", "tag:team=batch", "--timeout", "1s", "--output", "text", "--yes")
		if code != int(contract.CLIExitRerunFailed) || !strings.Contains(out, "INSTANCES\ti-00000000000000012\tarm64\t") || !strings.Contains(out, "\tInProgress\tNone\t0\n") ||
			!strings.Contains(out, "SUMMARY\tInProgress\t1\n") {
			t.Errorf("exit %d\n%s\n%s", code, out, errOut)
		}
	})
	t.Run("terminated by MaxErrors", func(t *testing.T) {
		w := batch(t)
		agents(t, w, map[string]string{"i-00000000000000011": "key-unavailable", "i-00000000000000013": "terminated"})
		code, out, errOut := run(t, worldClients(w, nil), "", "rerun", "--targets", "tag:team=batch", "--output", "text", "--timeout", "5s", "--yes")
		if code != int(contract.CLIExitRerunFailed) || !strings.Contains(out, "INSTANCES\ti-00000000000000013\tamd64\t00000001-0000-4000-8000-000000000001\tTerminated\tNone\t0\n") ||
			!strings.Contains(out, "SUMMARY\tTerminated\t1\n") || !strings.Contains(errOut, "3/3 done, 1 ok, 2 failed, 0 pending") {
			t.Errorf("exit %d\n%s\n%s", code, out, errOut)
		}
	})
	c := worldClients(batch(t), nil)
	for _, tc := range []struct {
		args []string
		code int
		says string
	}{
		{[]string{"--instance", "i-00000000000000011", "--targets", "tag:team=batch"}, 2, "give one of --instance, --instances or --targets"},
		{nil, 2, "give one of --instance, --instances or --targets"},
		{[]string{"--targets", "team=batch"}, 2, `--targets "team=batch": want tag:Key=Value, tag-key=Key, or SSM's Key=tag:Key,Values=Value`},
		{[]string{"--targets", "tag:=x"}, 2, "want tag:Key=Value"},
		{[]string{"--targets", "tag:team=batch", "--max-concurrency", "0"}, 2, `--max-concurrency "0": want a number from 1 or a percentage from 1% to 100%`},
		{[]string{"--targets", "tag:team=batch", "--max-concurrency", "12345678"}, 2, "--max-concurrency"},
		{[]string{"--targets", "tag:team=batch", "--max-errors", "101%"}, 2, `--max-errors "101%": want a number from 0 or a percentage from 0% to 100%`},
		{[]string{"--targets", "tag:team=nobody", "--yes"}, 1, "no running instance matches --targets tag:team=nobody"},
		{[]string{"--targets", "tag-key=nothing", "--yes"}, 1, "no running instance matches"},
		{[]string{"--instances", "i-00000000000000011,i-0ffffffffffffffff", "--yes"}, 1, "not running, or no such instance: i-0ffffffffffffffff"},
		{[]string{"--instances", "i-00000000000000014,i-00000000000000015", "--yes"}, 1, "nothing sent: none of the 2 instances is one storecrypt reruns"},
	} {
		code, _, errOut := run(t, c, "", append([]string{"rerun"}, tc.args...)...)
		if code != tc.code || !strings.Contains(errOut, tc.says) {
			t.Errorf("%v: exit %d, stderr %q; want %d saying %q", tc.args, code, errOut, tc.code, tc.says)
		}
	}
}
