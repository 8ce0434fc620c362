// Package flow runs all of storecrypt on this machine, no AWS account: the emulators and
// the in-memory EC2/IAM/SSM account hold two instances, the test guest boots as the first,
// EC2's running events go through the launch function's handler, the SSM fake runs the
// synthesized document inside the guest, and the result function records the outcome, in
// the tags and in the ledger (a DynamoDB table in dynalite).
// `make demo` prints it; a test runs it.
package flow

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/url"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/aws/aws-lambda-go/events"
	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/cloudformation"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/aws-sdk-go-v2/service/iam"
	"github.com/aws/aws-sdk-go-v2/service/kms"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/ssm"

	samples "github.com/storecrypt/storecrypt/events"
	"github.com/storecrypt/storecrypt/internal/awscfg"
	"github.com/storecrypt/storecrypt/internal/contract"
	"github.com/storecrypt/storecrypt/internal/document"
	"github.com/storecrypt/storecrypt/internal/fakeaws"
	"github.com/storecrypt/storecrypt/internal/fleet"
	"github.com/storecrypt/storecrypt/internal/launch"
	"github.com/storecrypt/storecrypt/internal/ledger"
	"github.com/storecrypt/storecrypt/internal/opcli"
	"github.com/storecrypt/storecrypt/internal/result"
	"github.com/storecrypt/storecrypt/test/emu"
	"github.com/storecrypt/storecrypt/test/testbed"
	"github.com/storecrypt/storecrypt/test/vm"
)

// The two instances: the guest (the id the running sample event names) and one whose role
// is not a key user.
const (
	guestID   = "i-0abcdef1234567890"
	blockedID = "i-0bbbbbbbbbbbbbbb2"
)

// timeline prints each stage with its time.
type timeline struct {
	w           io.Writer
	start, last time.Time
	stages      []string
}

func (tl *timeline) stage(name string) {
	now := time.Now()
	line := fmt.Sprintf("[%6.1fs] %-62s (+%.1fs)", now.Sub(tl.start).Seconds(), name, now.Sub(tl.last).Seconds())
	tl.stages = append(tl.stages, line)
	fmt.Fprintln(tl.w, line)
	tl.last = now
}

// Run runs the flow; cdkOut is the synthesized app. It ends by writing the HTML report of
// the run to reportHTML. It returns an error when any stage fails or the outcome is not
// the expected one.
func Run(ctx context.Context, w io.Writer, cdkOut, reportHTML string) error {
	if err := vm.Available(); err != nil {
		return err
	}
	stack, err := readStack(cdkOut)
	if err != nil {
		return err
	}
	assets, err := readAssets(cdkOut)
	if err != nil {
		return err
	}
	dir, err := os.MkdirTemp("", "storecrypt-flow-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	tl := &timeline{w: w, start: time.Now(), last: time.Now()}
	fmt.Fprintln(w, "storecrypt demo: the whole flow, on this machine, with no AWS account")

	agent, err := testbed.Agent(dir)
	if err != nil {
		return err
	}
	tb, err := testbed.New(ctx, dir, testbed.Options{Disks: 2, SizeMB: 128, Agent: agent, InstanceID: guestID})
	if err != nil {
		return err
	}
	defer tb.Close()
	for _, a := range assets {
		body, err := os.ReadFile(a.Path)
		if err != nil {
			return err
		}
		if err := tb.Emu.PutObject(ctx, a.Bucket, a.Key, body); err != nil {
			return fmt.Errorf("publishing asset %s: %w", a.Key, err)
		}
	}
	db, err := emu.NewDynamoDB()
	if err != nil {
		return err
	}
	defer db.Close()
	if err := db.CreateTable(ctx, ledger.Table(stack.launchEnv[contract.EnvLedgerTable])); err != nil {
		return err
	}
	book := &ledger.Ledger{DB: db.Client, Table: stack.launchEnv[contract.EnvLedgerTable]}
	tl.stage(fmt.Sprintf("emulators up (KMS, S3, IMDSv2, DynamoDB); %d agent binaries published to S3", len(assets)))

	world := account(tb.KeyARN)
	content, err := stack.content(tb.KeyARN)
	if err != nil {
		return err
	}
	world.AddDocument(stack.documentName, content, true)
	if err := tb.Boot(ctx); err != nil {
		return err
	}
	tl.stage(fmt.Sprintf("instance %s booted: 2 blank NVMe disks, 1 EBS disk", guestID))

	runner := &ssmRunner{tb: tb, world: world, done: make(chan error, 4)}
	world.OnCommand = runner.run
	var logs bytes.Buffer
	// The stack's scope: the key user's role, and the opt-in tag, which the other
	// instance carries though its role may not use the key.
	scope := map[string]string{contract.EnvInstanceRoles: fakeaws.KeyUser, contract.EnvOptInTag: contract.OptIn}
	lcfg, err := launch.LoadConfig(env(stack.launchEnv, tb.KeyARN, scope))
	if err != nil {
		return fmt.Errorf("the template's launch environment: %w", err)
	}
	lh := launch.New(lcfg, world.Config(), slog.New(slog.NewJSONHandler(&logs, nil)), &logs)
	lh.Ledger = book
	running, err := samples.Read("ec2-running.json")
	if err != nil {
		return err
	}
	batch := events.SQSEvent{Records: []events.SQSMessage{
		{MessageId: "m-1", Body: string(running)},
		{MessageId: "m-2", Body: launch.StateChangeEvent(blockedID, time.Now())},
	}}
	resp, err := lh.HandleSQS(ctx, batch)
	if err != nil {
		return err
	}
	if len(resp.BatchItemFailures) > 0 {
		return fmt.Errorf("launch function retried %v\n%s", resp.BatchItemFailures, logs.String())
	}
	tl.stage("launch function: bindings checked, SendCommand to " + guestID + ", " + blockedID + " blocked")

	var invocation invocationResult
	select {
	case err := <-runner.done:
		if err != nil {
			return err
		}
		invocation = runner.last
	case <-ctx.Done():
		return ctx.Err()
	}
	if err := oneAgent(assets, invocation.downloaded); err != nil {
		return err
	}
	tl.stage(fmt.Sprintf("SSM ran the document in the guest: download (%.1f MB, one agent), sha256, gunzip, sha256, apply (exit %d)",
		float64(invocation.downloaded)/1e6, invocation.code))

	rcfg, err := result.LoadConfig(env(stack.resultEnv, tb.KeyARN, nil))
	if err != nil {
		return fmt.Errorf("the template's result environment: %w", err)
	}
	rh := result.New(rcfg, world.Config(), slog.New(slog.NewJSONHandler(&logs, nil)), &logs)
	rh.Ledger = book
	out, err := handled(ctx, rh, invocation)
	if err != nil {
		return err
	}
	if out == nil || out.Status != contract.StatusEncrypted {
		return fmt.Errorf("the result function recorded %+v\nagent output:\n%s\n%s", out, invocation.stdout, invocation.stderr)
	}
	tl.stage("result function: " + guestID + " tagged encrypted")

	if err := check(world, append(tb.Emu.Models.Violations(), db.Models.Violations()...)); err != nil {
		return fmt.Errorf("%w\nfunction logs:\n%s", err, logs.String())
	}
	mounted, err := tb.Sh(ctx, "grep ' /mnt/instance-store ' /proc/mounts")
	if err != nil {
		return err
	}
	tl.stage("checked: " + strings.Fields(mounted)[0] + " mounted at /mnt/instance-store")

	world.AddStack(contract.StackName, map[string]string{
		contract.OutputKeyARN: tb.KeyARN, contract.OutputKeySource: lcfg.Agent.KeySource, contract.OutputDocumentName: stack.documentName,
		contract.OutputDocumentDigest: stack.launchEnv[contract.EnvDocumentDigest], contract.OutputInstanceRoleARNs: fakeaws.KeyUser,
		contract.OutputOptInTag: contract.OptIn, contract.OutputLedgerTable: book.Table,
	})
	for key, name := range stack.exports {
		if err := world.Export(contract.StackName, key, name); err != nil {
			return err
		}
	}
	cfg := world.Config()
	clients := opcli.Clients{EC2: ec2.NewFromConfig(cfg), SSM: ssm.NewFromConfig(cfg), IAM: iam.NewFromConfig(cfg), KMS: kms.NewFromConfig(cfg),
		CloudFormation: cloudformation.NewFromConfig(cfg), DynamoDB: book.DB}
	for _, args := range [][]string{{"status"}, {"report"}} {
		fmt.Fprintf(w, "\n$ storecrypt %s\n", args[0])
		if code := opcli.Main(ctx, args, strings.NewReader(""), w, w, func(context.Context, awscfg.Options) (opcli.Clients, error) { return clients, nil }); code != 0 {
			return fmt.Errorf("storecrypt %s exited %d", args[0], code)
		}
	}
	if err := showLedger(ctx, w, world, book); err != nil {
		return err
	}
	f, err := os.Create(reportHTML)
	if err != nil {
		return err
	}
	code := opcli.Main(ctx, []string{"report", "--output", "html"}, strings.NewReader(""), f, io.Discard,
		func(context.Context, awscfg.Options) (opcli.Clients, error) { return clients, nil })
	if err := f.Close(); err != nil || code != 0 {
		return fmt.Errorf("writing the HTML report: exit %d, %w", code, err)
	}
	fmt.Fprintf(w, "\nThe auditor's report of this run, one HTML page: %s\n", reportHTML)
	return revocation(ctx, w, tl, stack, runner, rh, book)
}

// showLedger prints the ledger's item for each instance, after checking that the guest's
// records its encryption with the agent's evidence and the other's its block.
func showLedger(ctx context.Context, w io.Writer, world *fakeaws.World, book *ledger.Ledger) error {
	for _, id := range []string{guestID, blockedID} {
		var launched time.Time
		world.With(func() { launched = world.Instances[id].LaunchTime })
		it, err := book.Get(ctx, id, launched)
		if err != nil {
			return err
		}
		switch {
		case it == nil:
			return fmt.Errorf("the ledger has no item for %s", id)
		case id == guestID && (it.Status != contract.StatusEncrypted || it.LUKSUUID == "" || it.EncryptedAt == ""):
			return fmt.Errorf("the ledger's item for %s lacks the evidence: %+v", id, it)
		case id == blockedID && it.Status != contract.StatusBlocked:
			return fmt.Errorf("the ledger's item for %s: %+v", id, it)
		}
		b, err := json.MarshalIndent(it, "", "  ")
		if err != nil {
			return err
		}
		fmt.Fprintf(w, "\n# the ledger's item for %s (DynamoDB table %s)\n%s\n", id, book.Table, b)
	}
	return nil
}

// account is the in-memory account: the stack's roles and profiles, the emulator's key
// (same ARN, so the binding check and the agent speak of one key), and both instances.
func account(keyARN string) *fakeaws.World {
	w := fakeaws.NewAccount(nil)
	w.Keys = map[string]*fakeaws.Key{keyARN: {ARN: keyARN, State: "Enabled", Policy: fakeaws.KeyPolicy}}
	now := time.Now().UTC().Truncate(time.Second)
	w.AddInstance(guestID, "i4i.large", fakeaws.Profile(fakeaws.KeyUser), nil, now)
	w.AddInstance(blockedID, "i4i.large", fakeaws.Profile(fakeaws.NotKeyUser), map[string]string{contract.TagEncrypt: "true"}, now)
	return w
}

// check: the guest is encrypted, the other instance blocked for the right reason, no
// command reached it, and no request broke its API model (the world's, and the
// emulators' violations).
func check(w *fakeaws.World, emulated []error) error {
	errs := append(w.Violations(), emulated...)
	w.With(func() {
		g, b := w.Instances[guestID].Tags, w.Instances[blockedID].Tags
		if g[contract.TagStatus] != contract.StatusEncrypted {
			errs = append(errs, fmt.Errorf("%s is %q, want encrypted", guestID, g[contract.TagStatus]))
		}
		if b[contract.TagStatus] != contract.StatusBlocked || b[contract.TagReason] != string(contract.ReasonNotKeyUser) {
			errs = append(errs, fmt.Errorf("%s is %q (%s), want blocked (not-key-user)", blockedID, b[contract.TagStatus], b[contract.TagReason]))
		}
		for _, c := range w.Commands {
			for _, id := range c.InstanceIDs {
				if id != guestID {
					errs = append(errs, fmt.Errorf("a command reached %s", id))
				}
			}
		}
	})
	return errors.Join(errs...)
}

// ssmRunner is the SSM agent of the guest: it runs the document's steps as SSM would.
type ssmRunner struct {
	tb    *testbed.Testbed
	world *fakeaws.World
	done  chan error
	mu    sync.Mutex
	last  invocationResult
}

type invocationResult struct {
	commandID, instanceID, status string
	documentName                  string
	code                          int
	stdout, stderr                string
	requested                     time.Time
	downloaded                    int // bytes the download steps fetched
}

func (r *ssmRunner) run(cmd *fakeaws.Command) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	for _, id := range cmd.InstanceIDs {
		if id != guestID {
			r.done <- fmt.Errorf("a command for %s, which is not the guest", id)
			return
		}
		res, err := r.runOn(ctx, cmd)
		if err != nil {
			r.done <- err
			return
		}
		status := "Success"
		if res.code != 0 {
			status = "Failed"
		}
		res.status = status
		if err := r.world.SetInvocation(cmd.ID, id, fakeaws.Invocation{Status: status, ResponseCode: int32(res.code), Stdout: res.stdout}); err != nil {
			r.done <- err
			return
		}
		r.mu.Lock()
		r.last = res
		r.mu.Unlock()
	}
	r.done <- nil
}

// runOn runs the document version the command names as the SSM Agent would on the
// guest, a Linux instance (fakeaws.PlanCommand: defaults, preconditions, substitution):
// aws:downloadContent fetches from the S3 emulator and writes into the guest;
// aws:runShellScript runs in the guest with each ENV_VAR parameter as SSM_<name>.
func (r *ssmRunner) runOn(ctx context.Context, cmd *fakeaws.Command) (invocationResult, error) {
	res := invocationResult{commandID: cmd.ID, instanceID: guestID, requested: cmd.Requested, documentName: cmd.DocumentName}
	var content string
	r.world.With(func() {
		d := r.world.Documents[cmd.DocumentName]
		if n, err := strconv.Atoi(cmd.DocumentVersion); err == nil && d != nil && n >= 1 && n <= len(d.Versions) {
			content = d.Versions[n-1]
		}
	})
	plan, err := fakeaws.PlanCommand(content, cmd.Parameters, "Linux")
	if err != nil {
		return res, fmt.Errorf("command %s: version %s of %s: %w", cmd.ID, cmd.DocumentVersion, cmd.DocumentName, err)
	}
	// The guest's controller model: on EC2 the default, Amazon EC2 NVMe Instance Storage.
	env := append([]string{contract.EnvModel + "=" + testbed.GuestModel}, emu.Env()...)
	env = append(env, plan.Env...)
	for _, step := range plan.Steps {
		if step.Skipped != "" {
			continue
		}
		switch step.Action {
		case "aws:downloadContent":
			n, err := r.download(ctx, step)
			if err != nil {
				return res, fmt.Errorf("step %s: %w", step.Name, err)
			}
			res.downloaded += n
		case "aws:runShellScript":
			lines, _ := step.Inputs["runCommand"].([]any)
			script := make([]string, len(lines))
			for i, l := range lines {
				script[i], _ = l.(string)
			}
			out, err := r.tb.Guest.Exec(ctx, vm.Cmd{Argv: []string{"sh", "-c", strings.Join(script, "\n")}, Env: env})
			if err != nil {
				return res, fmt.Errorf("step %s: %w", step.Name, err)
			}
			res.code, res.stdout, res.stderr = out.Code, out.Stdout, out.Stderr
			if out.Code != 0 {
				return res, nil
			}
		default:
			return res, fmt.Errorf("step %s: action %s is not one the demo's SSM runs", step.Name, step.Action)
		}
	}
	return res, nil
}

// oneAgent checks that a run on the guest (x86_64) downloaded the amd64 agent's object and
// nothing else.
func oneAgent(assets []fileAsset, downloaded int) error {
	for _, a := range assets {
		if strings.HasSuffix(a.Key, "-amd64"+document.GzSuffix) {
			st, err := os.Stat(a.Path)
			if err != nil {
				return err
			}
			if int64(downloaded) != st.Size() {
				return fmt.Errorf("the run downloaded %d bytes; the amd64 agent's object (%s) has %d", downloaded, a.Key, st.Size())
			}
			return nil
		}
	}
	return fmt.Errorf("no amd64 agent among the stack's assets %v", assets)
}

// download fetches the object of an aws:downloadContent step into the guest and returns
// its size.
func (r *ssmRunner) download(ctx context.Context, step fakeaws.Step) (int, error) {
	src, err := step.SourcePath()
	if err != nil {
		return 0, err
	}
	u, err := url.Parse(src)
	if err != nil {
		return 0, err
	}
	bucket, key, _ := strings.Cut(strings.TrimPrefix(u.Path, "/"), "/")
	obj, err := r.tb.Emu.S3.GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String(bucket), Key: aws.String(key)})
	if err != nil {
		return 0, fmt.Errorf("s3:GetObject %s/%s: %w", bucket, key, err)
	}
	defer obj.Body.Close()
	body, err := io.ReadAll(obj.Body)
	if err != nil {
		return 0, err
	}
	// Where the SSM Agent would write it: a fresh guest has no directory at the
	// destination, so the download is the file there.
	target, err := step.DownloadedTo(func(p string) bool {
		out, err := r.tb.Guest.Exec(ctx, vm.Cmd{Argv: []string{"test", "-d", p}})
		return err == nil && out.Code == 0
	})
	if err != nil {
		return 0, err
	}
	out, err := r.tb.Guest.Exec(ctx, vm.Cmd{Argv: []string{"sh", "-c", `mkdir -p "$(dirname "$1")" && cat > "$1"`, "sh", target}, Stdin: body})
	if err != nil {
		return 0, fmt.Errorf("writing %s in the guest: %w", target, err)
	}
	if out.Code != 0 {
		return 0, fmt.Errorf("writing %s in the guest: exit %d: %s", target, out.Code, out.Stderr)
	}
	return len(body), nil
}

// handled is what the result function makes of SSM's event for res.
func handled(ctx context.Context, rh *result.Handler, res invocationResult) (*fleet.Outcome, error) {
	ev, err := statusEvent(res)
	if err != nil {
		return nil, err
	}
	return rh.Handle(ctx, ev)
}

// statusEvent is SSM's invocation status-change event for res, shaped as the sample.
func statusEvent(res invocationResult) (events.CloudWatchEvent, error) {
	b, err := samples.Read("ssm-success.json")
	if err != nil {
		return events.CloudWatchEvent{}, err
	}
	var ev events.CloudWatchEvent
	if err := json.Unmarshal(b, &ev); err != nil {
		return ev, err
	}
	var d result.Detail
	if err := json.Unmarshal(ev.Detail, &d); err != nil {
		return ev, err
	}
	d.CommandID, d.InstanceID, d.Status, d.DocumentName = res.commandID, res.instanceID, res.status, res.documentName
	d.Requested = res.requested.UTC().Format(time.RFC3339Nano)
	ev.Time = time.Now().UTC()
	ev.Detail, err = json.Marshal(d)
	return ev, err
}
