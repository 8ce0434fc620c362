package opcli

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	ec2types "github.com/aws/aws-sdk-go-v2/service/ec2/types"
	"github.com/aws/aws-sdk-go-v2/service/sts"
	"github.com/spf13/pflag"

	"github.com/storecrypt/storecrypt/internal/contract"
	"github.com/storecrypt/storecrypt/internal/document"
	"github.com/storecrypt/storecrypt/internal/fleet"
	"github.com/storecrypt/storecrypt/internal/ledger"
	"github.com/storecrypt/storecrypt/internal/revoke"
)

// revokeLong is revoke's --help: what happens, in order, and what it does not guarantee.
const revokeLong = `Cut instances in the stack's scope off their data, as an incident responder needs:
docs/incident-response.md says when and how (revoke one instance, revoke the fleet,
shred, resume).

The instances are INSTANCE_ID arguments, the running instances --targets match, or with
--all every running instance in the stack's scope (as rerun and status find them). Only
instances in the stack's scope are reached; the others are listed as left out. The list
is shown, and on a terminal confirmed, before anything changes (--yes: not asked;
--dry-run: the list only). The credentials are read as for rerun (an MFA prompt, when
the profile asks for one).

In this order:
  0. (--all only) the key is tagged storecrypt:revoked=<time>: the key policy then
     refuses every instance role the key, in one call, however large the fleet.
  1. The ledger marks each instance's launch revoked (revoked_at, revoked_by: your ARN
     from sts:GetCallerIdentity, revoked_reason: --reason). First, so that the launch
     function, which grants no marked instance, cannot grant it again during the next
     steps. A second revoke keeps the first's time and says already-revoked.
  2. Each instance's KMS grant (named after it) is revoked: KMS refuses its role the
     volume key's Decrypt, whatever runs on the instance.
  3. The storecrypt-revoke document is sent (50 instances a command) with --reason and
     your ARN: the agent suspends the volume and its key leaves the kernel; I/O blocks.
     The version sent is the one whose content has the stack's RevokeContentDigest
     output, as rerun's: when someone has made another version the default, it is said
     and that default is not sent; when no version holds that content, nothing of the
     document is sent, steps 1 and 2 stand, and storecrypt exits 12. --dry-run shows
     the version.
  4. A "storecrypt Instance Revoked" event goes to the default EventBridge bus.
A failure at 3 or 4 is reported, and the revocation at the key stands; a failure on one
instance does not stop the others. A line per instance, then a count per result.

--shred, after 1 and 2 (where not revoked yet): asked twice, the confirmation and then
the instance id typed back (for several, their count); the ledger marks the launch
shredded, and the storecrypt-shred document goes to ONE instance per command, with that
instance's id, which the agent checks before it erases every keyslot and token of the
LUKS header. Irreversible: the data cannot be read again, with the KMS key or without.
The version sent is the one with the stack's ShredContentDigest, as for revoke; when
none holds it, the instance stays revoked, the ledger does not mark it shredded, nothing
is erased, and storecrypt exits 12.

What it does not guarantee:
  - KMS takes up to five minutes to apply a revoked grant or a key tag; until then a
    Decrypt may still succeed. Step 3 does not wait for KMS.
  - Data copied off the instance before the revoke is out of reach of any control.
  - s3-kms stacks have no per-instance refusal at the key: only the on-instance suspend
    (step 3) and, for the fleet, the key tag.
  - revoke reaches running instances: one stopped is refused the key only by --all's
    key tag.`

// resumeLong is resume's --help.
const resumeLong = `Let revoked instances back to their data (docs/incident-response.md, "Resume"). A
shredded instance is refused: its data is gone.

The instances are chosen, listed and confirmed as for revoke. In this order:
  1. The ledger's revoked_* attributes are removed from every launch of the instance,
     and a "resumed" entry records your ARN and --reason.
  2. The launch function grants the instance the key again: its sweep (every 15
     minutes) grants running instances that lack a grant and that the ledger does not
     mark. resume waits for it (--wait, a line while it waits); you need no right to
     grant the key yourself: only the launch role may.
  3. Once ListGrants shows the grant, the storecrypt-resume document is sent: the agent
     resumes the volume, nothing lost. The version sent is the one with the stack's
     ResumeContentDigest, as for revoke; when none holds it, nothing of it is sent,
     steps 1 and 2 stand (the volume stays suspended), and storecrypt exits 12.
  4. A "storecrypt Instance Resumed" event goes to the default EventBridge bus.
  5. (--all only) the key's storecrypt:revoked tag is removed, last.
(s3-kms stacks make no grants: step 2 is skipped.) An instance not granted within
--wait is reported failed, and no document is sent to it:
the ledger no longer marks it, so run resume again after the next sweep. KMS may take up
to five minutes to apply the new grant; the agent waits for the key meanwhile.`

var revokeReasonPattern = regexp.MustCompile(contract.PatternRevokeReason)

// revocation is what revoke and resume share: the instances, the reason, the asking.
type revocation struct {
	targets      *[]string
	all, yes, dr *bool
	reason       *string
}

func defineRevocation(fs *pflag.FlagSet, verb string) revocation {
	return revocation{
		targets: fs.StringArray("targets", nil, "the running instances with a tag, as rerun takes them (tag:Key=Value, or SSM's Key=tag:Key,Values=V)"),
		all:     fs.Bool("all", false, "every running instance in the stack's scope; the key's "+contract.KeyTagRevoked+" tag too"),
		yes:     fs.Bool("yes", false, verb+" without asking (needed where stdin is not a terminal)"),
		dr:      fs.Bool("dry-run", false, "print the instances "+verb+" would reach, and those it leaves out with why; change nothing"),
		reason:  fs.String("reason", "", "why, for the ledger, the event and the agent (required: one line of at most 256 letters, digits, spaces and ._:/,()#@+=-, not starting with a space)"),
	}
}

// check refuses a command line that names no instances or more than one way, or lacks a
// valid --reason, before any call.
func (v revocation) check(e *env, verb string) ([]ec2types.Filter, error) {
	given := 0
	for _, set := range []bool{len(e.args) > 0, len(*v.targets) > 0, *v.all} {
		if set {
			given++
		}
	}
	if given != 1 {
		return nil, usageErr("give instance ids, --targets or --all")
	}
	if err := checkInstances("INSTANCE_ID", e.args...); err != nil {
		return nil, err
	}
	if !revokeReasonPattern.MatchString(*v.reason) {
		return nil, usageErr(fmt.Sprintf("--reason %q: want why: one line of at most 256 letters, digits, spaces and ._:/,()#@+=-, not starting with a space", *v.reason))
	}
	if !*v.yes && !*v.dr && !e.ask {
		return nil, usageErr(verb + " asks before it changes anything, and stdin is not a terminal: pass --yes (list what it would reach with --dry-run)")
	}
	return targetFilters(*v.targets)
}

// chosen are the document a revocation sends, the instances it reaches, and those it
// leaves out with why.
type chosen struct {
	SentDocument
	Instances []revocationTarget `json:"instances"`
	LeftOut   []Target           `json:"left_out"`
}

type revocationTarget struct {
	Instance   string    `json:"instance"`
	LaunchTime time.Time `json:"launch_time"`
}

// choose finds the running instances the command line names and keeps those in the
// stack's scope.
func (v revocation) choose(ctx context.Context, e *env, sc stackConfig, filters []ec2types.Filter) (chosen, error) {
	var found []ec2types.Instance
	var err error
	switch {
	case *v.all:
		var ts []tracked
		ts, err = listTracked(ctx, e, sc)
		for _, t := range ts {
			if t.inScope {
				found = append(found, t.Instance)
			}
		}
	case len(filters) > 0:
		found, err = fleet.Running(ctx, e.EC2, filters)
	default:
		found, err = fleet.RunningByID(ctx, e.EC2, e.args)
	}
	if err != nil {
		return chosen{}, err
	}
	c := chosen{Instances: []revocationTarget{}, LeftOut: []Target{}}
	roles := e.roles()
	for _, i := range found {
		id := aws.ToString(i.InstanceId)
		in, why, err := sc.In(ctx, roles, fleet.Tags(i.Tags), fleet.Profile(i))
		switch {
		case err != nil:
			return chosen{}, err
		case !in:
			c.LeftOut = append(c.LeftOut, Target{Instance: id, Why: "outside the stack's scope: " + why})
		default:
			c.Instances = append(c.Instances, revocationTarget{Instance: id, LaunchTime: aws.ToTime(i.LaunchTime)})
		}
	}
	return c, nil
}

func (c chosen) print(w io.Writer, output, verb string) error {
	switch output {
	case "json":
		return writeJSON(w, c)
	case "text":
		rows := [][]string{c.row()}
		for _, t := range c.Instances {
			rows = append(rows, []string{strings.ToUpper(verb), t.Instance})
		}
		for _, t := range c.LeftOut {
			rows = append(rows, []string{"LEFTOUT", t.Instance, t.Why})
		}
		return writeText(w, rows)
	}
	fmt.Fprint(w, c.line())
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintf(tw, "%s (%d)\tLAUNCHED\n", strings.ToUpper(verb), len(c.Instances))
	for _, t := range c.Instances {
		fmt.Fprintf(tw, "%s\t%s\n", t.Instance, t.LaunchTime.UTC().Format(time.RFC3339))
	}
	for _, t := range c.LeftOut {
		fmt.Fprintf(tw, "%s\tleft out: %s\n", t.Instance, t.Why)
	}
	return tw.Flush()
}

// ask asks question on the terminal and returns the answer, trimmed.
func ask(e *env, question string) (string, error) {
	fmt.Fprint(e.errOut, question)
	if e.answers == nil {
		e.answers = bufio.NewReader(e.stdin)
	}
	answer, err := e.answers.ReadString('\n')
	if err != nil && !errors.Is(err, io.EOF) {
		return "", fmt.Errorf("reading the answer: %w", err)
	}
	return strings.TrimSpace(answer), nil
}

// pinRevocation finds the version of the revocation document spec to send (pinned), from
// the stack's outputs naming it and giving its content's digest. No version holding that
// content is not an error here: the other steps still run (a revoke's at the key
// first), and the runner refuses only the document's step (revoke.Document.Untrusted).
func pinRevocation(ctx context.Context, e *env, spec contract.RevocationDocument) (revoke.Document, SentDocument, error) {
	var name, digest string
	if err := fromStack(ctx, e, map[string]*string{spec.Output: &name, spec.OutputDigest: &digest}); err != nil {
		return revoke.Document{}, SentDocument{}, err
	}
	if name == "" || digest == "" {
		return revoke.Document{}, SentDocument{}, fmt.Errorf("stack %s lacks the outputs storecrypt %s needs (%s, %s): update it to this version of storecrypt",
			e.stack, spec.Command, spec.Output, spec.OutputDigest)
	}
	// The revocation documents have no KmsKeyId or Secret parameter: their defaults are "".
	pin, err := pinned(ctx, e, &document.Trust{SSM: e.SSM, Name: name, Digest: digest}, spec.OutputDigest)
	doc := revoke.Document{Name: name, Version: pin.Version}
	switch {
	case errors.Is(err, document.ErrUntrusted):
		doc.Untrusted = err
		fmt.Fprintf(e.errOut, "storecrypt: %v\nstorecrypt: %s will not be sent; the other steps still run\n", err, name)
	case err != nil:
		return revoke.Document{}, SentDocument{}, err
	}
	return doc, sentDocument(name, pin), nil
}

// runner is a revoke.Runner on the stack's key and ledger, as the caller, that sends doc
// as the document of spec.
func runner(ctx context.Context, e *env, sc stackConfig, reason string, spec contract.RevocationDocument, doc revoke.Document) (*revoke.Runner, error) {
	if sc.LedgerTable == "" {
		return nil, fmt.Errorf("stack %s lacks the %s output revoke and resume need: update it to this version of storecrypt", e.stack, contract.OutputLedgerTable)
	}
	docs := revoke.Documents{}
	switch spec.Default {
	case contract.DocumentRevoke:
		docs.Revoke = doc
	case contract.DocumentResume:
		docs.Resume = doc
	case contract.DocumentShred:
		docs.Shred = doc
	}
	who, err := e.STS.GetCallerIdentity(ctx, &sts.GetCallerIdentityInput{})
	if err != nil {
		return nil, fmt.Errorf("finding who you are for the ledger (sts:GetCallerIdentity): %w", err)
	}
	return &revoke.Runner{KMS: e.KMS, SSM: e.SSM, Events: e.Events, Ledger: &ledger.Ledger{DB: e.DynamoDB, Table: sc.LedgerTable},
		KeyARN: sc.KeyARN, Documents: docs, LogGroup: sc.AgentLogGroup, By: aws.ToString(who.Arn), Reason: reason, Now: e.now,
		Progress: e.errOut, Granted: sc.KeySource == contract.KeySourceKMSDataKey, GrantPoll: e.poll}, nil
}

// revocationRun is what revoke and resume do once checked: read the stack, find the
// version of the document to send (sends: the default name of the one the command
// sends), choose, list, confirm, then act.
func (v revocation) run(filters []ec2types.Filter, verb, sends string, confirm func(e *env, c chosen) error,
	act func(ctx context.Context, r *revoke.Runner, insts []revoke.Instance) ([]revoke.Result, error)) runFunc {
	return func(ctx context.Context, e *env) error {
		sc, err := readStack(ctx, e)
		if err != nil {
			return err
		}
		i := slices.IndexFunc(contract.RevocationDocuments, func(d contract.RevocationDocument) bool { return d.Default == sends })
		spec := contract.RevocationDocuments[i]
		doc, sent, err := pinRevocation(ctx, e, spec)
		if err != nil {
			return err
		}
		c, err := v.choose(ctx, e, sc, filters)
		if err != nil {
			return err
		}
		c.SentDocument = sent
		if *v.dr {
			return c.print(e.out, e.output, verb)
		}
		if err := c.print(e.errOut, "table", verb); err != nil {
			return err
		}
		if len(c.Instances) == 0 {
			return fmt.Errorf("nothing changed: no instance in the stack's scope to %s", verb)
		}
		if err := confirm(e, c); err != nil {
			return err
		}
		r, err := runner(ctx, e, sc, *v.reason, spec, doc)
		if err != nil {
			return err
		}
		insts := make([]revoke.Instance, len(c.Instances))
		for n, t := range c.Instances {
			insts[n] = revoke.Instance{ID: t.Instance, LaunchTime: t.LaunchTime}
		}
		res, actErr := act(ctx, r, insts)
		if err := printResults(e, res); err != nil {
			return err
		}
		failed := 0
		for _, x := range res {
			if len(x.Errors) > 0 {
				failed++
			}
		}
		if failed > 0 {
			actErr = errors.Join(actErr, fmt.Errorf("%d of %d instances had a step fail (their ERRORS above)", failed, len(res)))
		}
		// Exit CLIExitUntrusted, as a rerun's: someone changed the document.
		return errors.Join(actErr, doc.Untrusted)
	}
}

// RevocationSummary is what revoke and resume print: a line per instance and a count
// per result.
type RevocationSummary struct {
	Instances []revoke.Result `json:"instances"`
	Summary   map[string]int  `json:"summary"`
}

func printResults(e *env, res []revoke.Result) error {
	sum := RevocationSummary{Instances: res, Summary: map[string]int{}}
	for _, x := range res {
		sum.Summary[x.Result]++
	}
	switch e.output {
	case "json":
		return writeJSON(e.out, sum)
	case "text":
		// As rerun's: each row starts with its list's name.
		var rows [][]string
		for _, x := range res {
			rows = append(rows, []string{"INSTANCES", x.Instance, x.Result, x.At, strconv.Itoa(x.GrantsRevoked), x.CommandID, strings.Join(x.Errors, "; ")})
		}
		for _, r := range slices.Sorted(maps.Keys(sum.Summary)) {
			rows = append(rows, []string{"SUMMARY", r, strconv.Itoa(sum.Summary[r])})
		}
		return writeText(e.out, rows)
	}
	tw := tabwriter.NewWriter(e.out, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "INSTANCE\tRESULT\tAT\tGRANTS REVOKED\tCOMMAND\tERRORS")
	for _, x := range res {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%s\t%s\n", x.Instance, x.Result, orDash(x.At), x.GrantsRevoked, orDash(x.CommandID), orDash(strings.Join(x.Errors, "; ")))
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	return printCounts(e.out, sum.Summary)
}

func runRevoke(fs *pflag.FlagSet) checkFunc {
	v := defineRevocation(fs, "revoke")
	shred := fs.Bool("shred", false, "erase the volumes for good after revoking them (asked twice: the confirmation, then the instance id or the count typed back, which --yes does not answer)")
	typed := fs.String("confirm-shred", "", "the second answer --shred asks for (the instance id, or for several the count), where no one types it")
	return func(e *env) (runFunc, error) {
		filters, err := v.check(e, "revoke")
		if err != nil {
			return nil, err
		}
		if *shred && *v.all {
			return nil, usageErr("--shred takes instance ids or --targets, not --all: a shred of the whole fleet is a choice to make instance by instance")
		}
		if *shred && *typed == "" && !e.ask && !*v.dr {
			return nil, usageErr("--shred asks you to type the instance id (or the count) back, and stdin is not a terminal: pass --confirm-shred")
		}
		confirm := func(e *env, c chosen) error {
			what := fmt.Sprintf("Revoke these %d instances' access to their data", len(c.Instances))
			if *shred {
				what = fmt.Sprintf("SHRED these %d instances' data, for good", len(c.Instances))
			}
			if !*v.yes {
				if a, err := ask(e, what+"? [y/N] "); err != nil || !isYes(a) {
					return errors.Join(err, errors.New("not confirmed: nothing was changed"))
				}
			}
			if !*shred {
				return nil
			}
			want := strconv.Itoa(len(c.Instances))
			prompt := fmt.Sprintf("Type the number of instances to shred (%s): ", want)
			if len(c.Instances) == 1 {
				want = c.Instances[0].Instance
				prompt = "Type the instance id to shred: "
			}
			answer := *typed
			if answer == "" {
				if answer, err = ask(e, prompt); err != nil {
					return err
				}
			}
			if answer != want {
				return fmt.Errorf("not confirmed: typed %q, want %q: nothing was changed", answer, want)
			}
			return nil
		}
		sends := contract.DocumentRevoke
		if *shred {
			sends = contract.DocumentShred
		}
		return v.run(filters, "revoke", sends, confirm, func(ctx context.Context, r *revoke.Runner, insts []revoke.Instance) ([]revoke.Result, error) {
			switch {
			case *shred:
				return r.Shred(ctx, insts), nil
			case *v.all:
				return r.RevokeFleet(ctx, insts)
			}
			return r.Revoke(ctx, insts), nil
		}), nil
	}
}

func runResume(fs *pflag.FlagSet) checkFunc {
	v := defineRevocation(fs, "resume")
	wait := fs.Duration("wait", 20*time.Minute, "how long to wait for the launch function's sweep (every 15 minutes) to grant each instance the key again")
	return func(e *env) (runFunc, error) {
		filters, err := v.check(e, "resume")
		if err != nil {
			return nil, err
		}
		confirm := func(e *env, c chosen) error {
			if *v.yes {
				return nil
			}
			if a, err := ask(e, fmt.Sprintf("Resume these %d instances' access to their data? [y/N] ", len(c.Instances))); err != nil || !isYes(a) {
				return errors.Join(err, errors.New("not confirmed: nothing was changed"))
			}
			return nil
		}
		return v.run(filters, "resume", contract.DocumentResume, confirm, func(ctx context.Context, r *revoke.Runner, insts []revoke.Instance) ([]revoke.Result, error) {
			r.GrantWait = *wait
			if *v.all {
				return r.ResumeFleet(ctx, insts)
			}
			return r.Resume(ctx, insts), nil
		}), nil
	}
}

func isYes(answer string) bool {
	switch strings.ToLower(answer) {
	case "y", "yes":
		return true
	}
	return false
}
