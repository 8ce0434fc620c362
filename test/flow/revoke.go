package flow

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ssm"

	"github.com/storecrypt/storecrypt/internal/contract"
	"github.com/storecrypt/storecrypt/internal/ledger"
	"github.com/storecrypt/storecrypt/internal/result"
)

// responder is who the flow's revocation commands say asked.
const responder = "arn:aws:iam::111122223333:user/responder"

// revocation runs, after the apply, the revoke, resume and shred documents in the guest
// as SSM would, each sent with SendCommand as storecrypt revoke sends it, each answer
// recorded by the result function: the tag after each, a resume that gives back every
// byte of a file written before the revoke, and each step in the ledger with the
// agent's account of it. The CLI's own ledger mark and the KMS grant it revokes are
// not part of this flow: the result path needs neither, and the emulated KMS has no
// grants.
func revocation(ctx context.Context, w io.Writer, tl *timeline, stack deployed, runner *ssmRunner, rh *result.Handler, book *ledger.Ledger) error {
	names := map[string]string{}
	for _, d := range contract.RevocationDocuments {
		names[d.Default] = stack.resultEnv[d.EnvName]
		content, err := json.Marshal(stack.revocation[names[d.Default]])
		if err != nil {
			return err
		}
		runner.world.AddDocument(names[d.Default], string(content), true)
	}
	sums, err := runner.tb.Sh(ctx, "dd if=/dev/urandom of=/mnt/instance-store/before-revoke bs=1M count=4 2>/dev/null && sync && sha256sum /mnt/instance-store/before-revoke")
	if err != nil {
		return err
	}
	client := ssm.NewFromConfig(runner.world.Config())
	for _, step := range []struct {
		doc    string
		params map[string][]string
		want   string // the outcome's status
		tag    string
		check  string // a command in the guest whose output must contain found
		found  string
	}{
		{contract.DocumentRevoke, nil, contract.StatusRevoked, contract.StatusRevoked, "dmsetup info -c --noheadings -o suspended storecrypt", "Suspended"},
		{contract.DocumentResume, nil, contract.StatusResumed, contract.StatusEncrypted, "sha256sum /mnt/instance-store/before-revoke", strings.TrimSpace(sums)},
		{contract.DocumentShred, map[string][]string{contract.ShredConfirmParameter: {guestID}}, contract.StatusShredded, contract.StatusShredded,
			"cat " + contract.RevocationPath, `"state": "shredded"`},
	} {
		params := map[string][]string{contract.RevokeReasonParameter: {"flow " + step.doc}, contract.RevokeByParameter: {responder}}
		for k, v := range step.params {
			params[k] = v
		}
		if _, err := client.SendCommand(ctx, &ssm.SendCommandInput{DocumentName: aws.String(names[step.doc]), InstanceIds: []string{guestID}, Parameters: params}); err != nil {
			return fmt.Errorf("sending %s: %w", names[step.doc], err)
		}
		var res invocationResult
		select {
		case err := <-runner.done:
			if err != nil {
				return err
			}
			runner.mu.Lock()
			res = runner.last
			runner.mu.Unlock()
		case <-ctx.Done():
			return ctx.Err()
		}
		out, err := handled(ctx, rh, res)
		if err != nil {
			return err
		}
		if out == nil || out.Status != step.want {
			return fmt.Errorf("%s: the result function recorded %+v, want %s\nagent output:\n%s\n%s", step.doc, out, step.want, res.stdout, res.stderr)
		}
		var tag string
		runner.world.With(func() { tag = runner.world.Instances[guestID].Tags[contract.TagStatus] })
		if tag != step.tag {
			return fmt.Errorf("%s: got %s tagged %q, want %q", step.doc, guestID, tag, step.tag)
		}
		got, err := runner.tb.Sh(ctx, step.check)
		if err != nil {
			return fmt.Errorf("%s: checking the guest: %w", step.doc, err)
		}
		if !strings.Contains(got, step.found) {
			return fmt.Errorf("%s: %s in the guest: got %q, want %q", step.doc, step.check, got, step.found)
		}
		tl.stage(fmt.Sprintf("%s ran in the guest (exit %d); result function: %s, tagged %s", names[step.doc], res.code, out.Status, tag))
	}
	return revocationLedger(ctx, w, runner, book)
}

// revocationLedger checks the guest's ledger item tells the story: revoked, resumed,
// shredded, each entry the result function's with the command and the agent's account;
// the item's status is the last.
func revocationLedger(ctx context.Context, w io.Writer, runner *ssmRunner, book *ledger.Ledger) error {
	var launched time.Time
	runner.world.With(func() { launched = runner.world.Instances[guestID].LaunchTime })
	it, err := book.Get(ctx, guestID, launched)
	if err != nil {
		return err
	}
	if it == nil {
		return fmt.Errorf("the ledger has no item for %s", guestID)
	}
	var story []string
	for _, e := range it.Entries {
		switch e.Status {
		case contract.StatusRevoked, contract.StatusResumed, contract.StatusShredded:
			if e.By != "result" || e.CommandID == "" || e.Note == "" {
				return fmt.Errorf("the ledger's %s entry for %s: got %+v, want the result function's with the command and the agent's account", e.Status, guestID, e)
			}
			story = append(story, e.Status)
		}
	}
	want := []string{contract.StatusRevoked, contract.StatusResumed, contract.StatusShredded}
	if strings.Join(story, ",") != strings.Join(want, ",") || it.Status != contract.StatusShredded {
		return fmt.Errorf("the ledger's item for %s: got the story %v and status %s, want %v ending shredded: %+v", guestID, story, it.Status, want, it.Entries)
	}
	b, err := json.MarshalIndent(it.Entries[len(it.Entries)-3:], "", "  ")
	if err != nil {
		return err
	}
	fmt.Fprintf(w, "\n# the revocation entries of %s in the ledger\n%s\n", guestID, b)
	return nil
}
