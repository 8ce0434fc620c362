// Package revoke is the control-plane half of cutting an instance off its data: the
// ledger mark that keeps the launch function from granting it again, the revocation of
// its KMS grant (the refusal at the key, which no one on the instance can undo), the
// document that suspends, resumes or shreds the volume on the instance, and the event
// that tells whoever watches. `storecrypt revoke` and `storecrypt resume` drive it; the
// agent's half is instance-agent's revoke, resume and shred.
package revoke

import (
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	ebtypes "github.com/aws/aws-sdk-go-v2/service/eventbridge/types"
	"github.com/aws/aws-sdk-go-v2/service/kms"
	kmstypes "github.com/aws/aws-sdk-go-v2/service/kms/types"
	"github.com/aws/aws-sdk-go-v2/service/ssm"
	ssmtypes "github.com/aws/aws-sdk-go-v2/service/ssm/types"

	"github.com/storecrypt/storecrypt/internal/alert"
	"github.com/storecrypt/storecrypt/internal/binding"
	"github.com/storecrypt/storecrypt/internal/contract"
	"github.com/storecrypt/storecrypt/internal/ledger"
)

// KMS is the part of the KMS client a revocation uses: the key's grants, and its tags
// for the fleet.
type KMS interface {
	ListGrants(ctx context.Context, in *kms.ListGrantsInput, optFns ...func(*kms.Options)) (*kms.ListGrantsOutput, error)
	RevokeGrant(ctx context.Context, in *kms.RevokeGrantInput, optFns ...func(*kms.Options)) (*kms.RevokeGrantOutput, error)
	TagResource(ctx context.Context, in *kms.TagResourceInput, optFns ...func(*kms.Options)) (*kms.TagResourceOutput, error)
	UntagResource(ctx context.Context, in *kms.UntagResourceInput, optFns ...func(*kms.Options)) (*kms.UntagResourceOutput, error)
}

// SSM sends the revocation documents.
type SSM interface {
	SendCommand(ctx context.Context, in *ssm.SendCommandInput, optFns ...func(*ssm.Options)) (*ssm.SendCommandOutput, error)
}

// Ledger records the marks (ledger.Ledger).
type Ledger interface {
	MarkRevoked(ctx context.Context, launch ledger.Launch, m ledger.Mark) (ledger.Mark, bool, error)
	MarkShredded(ctx context.Context, launch ledger.Launch, m ledger.Mark) (ledger.Mark, bool, error)
	Resume(ctx context.Context, launch ledger.Launch, m ledger.Mark) error
}

// Document is a revocation document as the runner sends it: its deployed name and the
// version whose content has the digest the stack deployed (document.Trust), never
// whatever the default has become, which whoever may update the document or its default
// version could make any code.
type Document struct {
	Name, Version string
	// Untrusted, when no version holds the deployed content, says why; the runner then
	// sends nothing of it and fails that step on each instance, after the steps at the
	// key.
	Untrusted error
}

// Documents are the deployed revocation documents (the stack's outputs).
type Documents struct{ Revoke, Resume, Shred Document }

// refused is why doc is not sent, and what stands: the steps before it.
func (d Document) refused(stands string) error {
	if d.Untrusted == nil {
		return nil
	}
	return fmt.Errorf("%s not sent: %w; %s", d.Name, d.Untrusted, stands)
}

// Instance is an instance to cut off, or to let back: its id and current launch (the
// ledger item the mark goes on).
type Instance struct {
	ID         string
	LaunchTime time.Time
}

// Runner revokes, shreds and resumes instances of one stack.
type Runner struct {
	KMS    KMS
	SSM    SSM
	Events alert.EventBridge
	Ledger Ledger
	KeyARN string
	Documents
	// LogGroup is where the documents' output goes, next to the launch runs'.
	LogGroup string
	// By is the caller's ARN (sts:GetCallerIdentity), Reason the responder's --reason.
	By, Reason string
	Now        func() time.Time
	// Progress gets a line per instance as each is cut off or let back.
	Progress io.Writer
	// Granted says the instances reach the key through grants (kms-datakey): resume
	// waits for the launch path's new grant. s3-kms stacks make none.
	Granted bool
	// GrantWait bounds a resume's wait for the launch path's new grant; GrantPoll is how
	// often it looks.
	GrantWait, GrantPoll time.Duration
}

// Results of an instance.
const (
	Revoked        = "revoked"
	AlreadyRevoked = "already-revoked"
	Shredded       = "shredded"
	Resumed        = "resumed"
	Failed         = "failed"
)

// Result is how one instance ended.
type Result struct {
	Instance string `json:"instance"`
	// Result is Revoked, AlreadyRevoked, Shredded, Resumed, or Failed when a step the
	// outcome rests on failed (the grant's revocation, the shred or resume document).
	// The steps before a failure stand: a revoked grant stays revoked.
	Result string `json:"result"`
	// At is the mark's time: the first revoke's, when it was revoked already.
	At            string `json:"at,omitempty"`
	GrantsRevoked int    `json:"grants_revoked"`
	CommandID     string `json:"command_id,omitempty"`
	// Errors are every step that failed, those the outcome does not rest on too (the
	// revoke document, the event, after the key refuses the instance).
	Errors []string `json:"errors,omitempty"`
}

// fail records a step's failure; the outcome stands.
func (r *Result) fail(format string, args ...any) {
	r.Errors = append(r.Errors, fmt.Sprintf(format, args...))
}

// stop records a failure the outcome rests on.
func (r *Result) stop(format string, args ...any) {
	r.Result = Failed
	r.fail(format, args...)
}

// maxInstanceIDs is how many instance ids SendCommand takes ("you can specify up to 50
// IDs").
const maxInstanceIDs = 50

// maxPutEvents is PutEvents' limit of entries per call.
const maxPutEvents = 10

// ErrNoGrant says the launch path had not granted the instance again within GrantWait.
var ErrNoGrant = errors.New("the launch path has not granted the instance again")

func (r *Runner) now() time.Time {
	if r.Now != nil {
		return r.Now()
	}
	return time.Now()
}

func (r *Runner) mark() ledger.Mark { return ledger.Mark{At: r.now(), By: r.By, Reason: r.Reason} }

func (r *Runner) progress(format string, args ...any) {
	if r.Progress != nil {
		fmt.Fprintf(r.Progress, "storecrypt: "+format+"\n", args...)
	}
}

// RevokeFleet tags the key first (KeyTagRevoked): one call cuts every instance off at the
// key, through the key policy's deny, however many there are; then revokes each as Revoke
// does. A failure to tag is returned with the instances' results: their grants are
// revoked all the same.
func (r *Runner) RevokeFleet(ctx context.Context, insts []Instance) ([]Result, error) {
	at := r.now().UTC().Format(time.RFC3339)
	_, tagErr := r.KMS.TagResource(ctx, &kms.TagResourceInput{KeyId: aws.String(r.KeyARN),
		Tags: []kmstypes.Tag{{TagKey: aws.String(contract.KeyTagRevoked), TagValue: aws.String(at)}}})
	if tagErr != nil {
		tagErr = fmt.Errorf("tagging key %s %s=%s: %w", r.KeyARN, contract.KeyTagRevoked, at, tagErr)
	} else {
		r.progress("key %s tagged %s=%s: every instance role is refused the key once KMS applies it (up to five minutes)", r.KeyARN, contract.KeyTagRevoked, at)
	}
	return r.Revoke(ctx, insts), tagErr
}

// Revoke cuts each instance off, in this order, each step across all instances before
// the next: (1) the ledger mark, first, so that the launch function, which skips marked
// instances, cannot grant the instance again while the next steps run; (2) its KMS grant
// revoked, the refusal at the key, which stands whatever the instance does; (3) the
// revoke document, which takes the volume key out of the kernel (up to 50 instances a
// command); (4) an event. A failure at (3) or (4) is reported, and the revocation at the
// key stands; a failure on one instance does not stop the others.
func (r *Runner) Revoke(ctx context.Context, insts []Instance) []Result {
	res := r.cutOff(ctx, insts)
	// Sent to every instance, those not cut off at the key too: the suspend on the
	// instance is the one defence left for them.
	r.send(ctx, res, r.Documents.Revoke, func(*Result) bool { return true }, false,
		"the steps before it stand (the ledger mark, the grant's revocation), but the volume key stays in the instance's kernel")
	r.emit(ctx, res, revokedEvent, func(x *Result) bool { return x.Result == Revoked })
	return res
}

// cutOff is steps (1) and (2) of Revoke, in that order: the launch function grants no
// marked instance, so a mark written after the revocation would leave it a window to
// grant the instance again.
func (r *Runner) cutOff(ctx context.Context, insts []Instance) []Result {
	res := make([]Result, len(insts))
	for n, inst := range insts {
		res[n] = Result{Instance: inst.ID, Result: Revoked}
	}
	r.markRevoked(ctx, insts, res)
	r.revokeGrants(ctx, res)
	return res
}

// markRevoked marks each instance revoked in the ledger.
func (r *Runner) markRevoked(ctx context.Context, insts []Instance, res []Result) {
	m := r.mark()
	for n, inst := range insts {
		stands, wrote, err := r.Ledger.MarkRevoked(ctx, ledger.Launch{InstanceID: inst.ID, LaunchTime: inst.LaunchTime}, m)
		switch {
		case err != nil:
			// Revoked at the key all the same: a responder wants it cut off now; the
			// failure says to run revoke again for the mark.
			res[n].fail("marking the ledger: %v", err)
			continue
		case !wrote:
			res[n].Result = AlreadyRevoked
		}
		res[n].At = stands.At.UTC().Format(time.RFC3339)
	}
}

// revokeGrants revokes each instance's grants.
func (r *Runner) revokeGrants(ctx context.Context, res []Result) {
	grants, err := r.grants(ctx)
	if err != nil {
		for n := range res {
			res[n].stop("%v", err)
		}
		return
	}
	for n := range res {
		x := &res[n]
		for _, id := range grants[x.Instance] {
			// A grant gone already (a concurrent revoke, the instance's termination) is
			// what this step wants.
			_, err := r.KMS.RevokeGrant(ctx, &kms.RevokeGrantInput{KeyId: aws.String(r.KeyARN), GrantId: aws.String(id)})
			var gone *kmstypes.NotFoundException
			switch {
			case errors.As(err, &gone):
			case err != nil:
				x.stop("revoking grant %s: %v", id, err)
				continue
			}
			x.GrantsRevoked++
		}
		r.progress("%s: %s at the key (%d grant(s) revoked; KMS applies it within five minutes)", x.Instance, x.Result, x.GrantsRevoked)
	}
}

// grants are the key's grants by name: the launch function names each after its
// instance. One read of the key (paged) serves every instance.
func (r *Runner) grants(ctx context.Context) (map[string][]string, error) {
	byName := map[string][]string{}
	p := kms.NewListGrantsPaginator(r.KMS, &kms.ListGrantsInput{KeyId: aws.String(r.KeyARN), Limit: aws.Int32(binding.GrantsPage)})
	for p.HasMorePages() {
		page, err := p.NextPage(ctx)
		if err != nil {
			return nil, fmt.Errorf("listing the grants of key %s: %w", r.KeyARN, err)
		}
		for _, g := range page.Grants {
			name := aws.ToString(g.Name)
			byName[name] = append(byName[name], aws.ToString(g.GrantId))
		}
	}
	return byName, nil
}

// params are a revocation document's parameters: who and why, and for shred the id the
// agent checks it runs on.
func (r *Runner) params(confirm string) map[string][]string {
	p := map[string][]string{contract.RevokeReasonParameter: {r.Reason}, contract.RevokeByParameter: {r.By}}
	if confirm != "" {
		p[contract.ShredConfirmParameter] = []string{confirm}
	}
	return p
}

// send sends doc to the instances pick says, 50 a command. A failed command, or a
// document with no trusted version (stands: what the steps before left), is recorded on
// its instances (fails them when stops) and the rest go on.
func (r *Runner) send(ctx context.Context, res []Result, doc Document, pick func(*Result) bool, stops bool, stands string) {
	failed := func(x *Result, err error) {
		switch {
		case err != nil && stops:
			x.stop("%v", err)
		case err != nil:
			x.fail("%v", err)
		}
	}
	var picked []*Result
	for n := range res {
		if pick(&res[n]) {
			picked = append(picked, &res[n])
		}
	}
	if err := doc.refused(stands); err != nil {
		for _, x := range picked {
			failed(x, err)
		}
		return
	}
	params := r.params("")
	for chunk := range slices.Chunk(picked, maxInstanceIDs) {
		all := r.sendTo(ctx, doc, chunk, params)
		for _, x := range chunk {
			err := all
			if err != nil && len(chunk) > 1 {
				// SSM refuses a whole command for one id it cannot reach (a terminated
				// instance: InvalidInstanceId): one command each, so the others still
				// get it.
				err = r.sendTo(ctx, doc, []*Result{x}, params)
			}
			failed(x, err)
		}
	}
}

// sendTo sends doc's trusted version to the instances of res in one command.
func (r *Runner) sendTo(ctx context.Context, doc Document, res []*Result, params map[string][]string) error {
	ids := make([]string, len(res))
	for n, x := range res {
		ids[n] = x.Instance
	}
	in := &ssm.SendCommandInput{DocumentName: aws.String(doc.Name), DocumentVersion: aws.String(doc.Version), InstanceIds: ids, Parameters: params,
		Comment: aws.String(comment(doc.Name, r.Reason))}
	if r.LogGroup != "" {
		in.CloudWatchOutputConfig = &ssmtypes.CloudWatchOutputConfig{CloudWatchOutputEnabled: true, CloudWatchLogGroupName: aws.String(r.LogGroup)}
	}
	out, err := r.SSM.SendCommand(ctx, in)
	if err != nil {
		return fmt.Errorf("sending %s version %s to %s: %w", doc.Name, doc.Version, strings.Join(ids, ", "), err)
	}
	for _, x := range res {
		x.CommandID = aws.ToString(out.Command.CommandId)
	}
	return nil
}

// comment is SendCommand's Comment: what and why, cut to its 100 characters.
func comment(doc, reason string) string {
	c := "storecrypt " + doc + ": " + reason
	if len(c) > 100 {
		c = c[:100]
	}
	return c
}

// event is one of the revocation events (its detail type a contract constant, as the
// runbook's test reads it from the source) with a detail.
type event func(detail map[string]string) ebtypes.PutEventsRequestEntry

// The default bus, where every storecrypt alert goes.
var (
	revokedEvent event = func(d map[string]string) ebtypes.PutEventsRequestEntry {
		return alert.Entry(contract.EventInstanceRevoked, "default", d)
	}
	shreddedEvent event = func(d map[string]string) ebtypes.PutEventsRequestEntry {
		return alert.Entry(contract.EventInstanceShredded, "default", d)
	}
	resumedEvent event = func(d map[string]string) ebtypes.PutEventsRequestEntry {
		return alert.Entry(contract.EventInstanceResumed, "default", d)
	}
)

// emit sends ev for each instance pick says, 10 a call; an event lost is an error on the
// instances of its call.
func (r *Runner) emit(ctx context.Context, res []Result, ev event, pick func(*Result) bool) {
	var picked []*Result
	for n := range res {
		if pick(&res[n]) {
			picked = append(picked, &res[n])
		}
	}
	for chunk := range slices.Chunk(picked, maxPutEvents) {
		entries := make([]ebtypes.PutEventsRequestEntry, len(chunk))
		for n, x := range chunk {
			entries[n] = ev(map[string]string{"instance-id": x.Instance, "by": r.By, "reason": r.Reason, "at": x.At, "command-id": x.CommandID})
		}
		if err := alert.Put(ctx, r.Events, entries); err != nil {
			for _, x := range chunk {
				x.fail("sending the event: %v", err)
			}
		}
	}
}

// Shred makes each instance's data unrecoverable: the revoke's first steps where it is
// not revoked yet (the mark, the grant), then the shred mark, then the shred document to
// ONE instance per command with that instance's id as ShredConfirmParameter (the agent
// refuses to erase a header on any other instance), then an event. It stops for an
// instance at the first failure before the document: nothing is erased unless the ledger
// says so first, and the ledger says so only when a trusted version of the document is
// there to send.
func (r *Runner) Shred(ctx context.Context, insts []Instance) []Result {
	res := r.cutOff(ctx, insts)
	m := r.mark()
	for n, inst := range insts {
		x := &res[n]
		if len(x.Errors) > 0 {
			x.Result = Failed
			continue
		}
		if err := r.Documents.Shred.refused("nothing was erased, and the ledger does not mark it shredded; it is revoked (the ledger mark and the grant's revocation stand)"); err != nil {
			x.stop("%v", err)
			continue
		}
		stands, _, err := r.Ledger.MarkShredded(ctx, ledger.Launch{InstanceID: inst.ID, LaunchTime: inst.LaunchTime}, m)
		if err != nil {
			x.stop("marking the ledger shredded: %v", err)
			continue
		}
		x.Result, x.At = Shredded, stands.At.UTC().Format(time.RFC3339)
		if err := r.sendTo(ctx, r.Documents.Shred, []*Result{x}, r.params(inst.ID)); err != nil {
			x.stop("%v", err)
			continue
		}
		r.progress("%s: shred sent (command %s)", inst.ID, x.CommandID)
	}
	r.emit(ctx, res, shreddedEvent, func(x *Result) bool { return x.Result == Shredded })
	return res
}

// Resume lets each instance back: the ledger's revoked_* removed (a shredded instance is
// refused), which lets the launch function's sweep grant it again (the key policy lets
// only the launch role grant: resume gives the operator no kms:CreateGrant); then, once
// ListGrants shows the new grant (within GrantWait), the resume document, and an event.
func (r *Runner) Resume(ctx context.Context, insts []Instance) []Result {
	m := r.mark()
	res := make([]Result, len(insts))
	waiting := map[string]*Result{}
	for n, inst := range insts {
		x := &res[n]
		*x = Result{Instance: inst.ID, Result: Resumed, At: m.At.UTC().Format(time.RFC3339)}
		if err := r.Ledger.Resume(ctx, ledger.Launch{InstanceID: inst.ID, LaunchTime: inst.LaunchTime}, m); err != nil {
			x.stop("%v", err)
			continue
		}
		if r.Granted {
			waiting[inst.ID] = x
		}
	}
	if len(waiting) > 0 {
		r.progress("%d instance(s) cleared in the ledger; waiting (up to %s) for the launch function's sweep to grant them the key again", len(waiting), r.GrantWait)
	}
	// The wait is on the wall clock, whatever Now says the marks' time is.
	deadline := time.Now().Add(r.GrantWait)
	for len(waiting) > 0 {
		grants, err := r.grants(ctx)
		if err != nil {
			for _, x := range waiting {
				x.stop("%v", err)
			}
			clear(waiting)
			break
		}
		for _, id := range slices.Sorted(maps.Keys(waiting)) {
			if len(grants[id]) > 0 {
				r.progress("%s: granted the key again", id)
				delete(waiting, id)
			}
		}
		if len(waiting) == 0 || !time.Now().Before(deadline) {
			break
		}
		if err := sleep(ctx, r.GrantPoll); err != nil {
			break
		}
	}
	for _, x := range waiting {
		x.stop("%v within %s: the ledger no longer marks it, so the next sweep grants it; run resume again then", ErrNoGrant, r.GrantWait)
	}
	r.send(ctx, res, r.Documents.Resume, func(x *Result) bool { return x.Result == Resumed }, true,
		"the ledger no longer marks it and the launch path grants it the key again, but its volume stays suspended")
	r.emit(ctx, res, resumedEvent, func(x *Result) bool { return x.Result == Resumed })
	return res
}

// ResumeFleet resumes each instance, then takes KeyTagRevoked off the key: the tag goes
// last, so no instance is let back through the key before its own grant and mark are
// settled.
func (r *Runner) ResumeFleet(ctx context.Context, insts []Instance) ([]Result, error) {
	res := r.Resume(ctx, insts)
	if _, err := r.KMS.UntagResource(ctx, &kms.UntagResourceInput{KeyId: aws.String(r.KeyARN), TagKeys: []string{contract.KeyTagRevoked}}); err != nil {
		return res, fmt.Errorf("untagging key %s %s: %w", r.KeyARN, contract.KeyTagRevoked, err)
	}
	r.progress("key %s untagged %s", r.KeyARN, contract.KeyTagRevoked)
	return res, nil
}

func sleep(ctx context.Context, d time.Duration) error {
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-time.After(d):
		return nil
	}
}
