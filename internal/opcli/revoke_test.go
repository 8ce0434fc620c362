package opcli_test

import (
	"context"
	"slices"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/eventbridge"
	"github.com/aws/aws-sdk-go-v2/service/kms"
	kmstypes "github.com/aws/aws-sdk-go-v2/service/kms/types"
	"github.com/aws/aws-sdk-go-v2/service/sts"

	"github.com/storecrypt/storecrypt/internal/contract"
	"github.com/storecrypt/storecrypt/internal/fakeaws"
	"github.com/storecrypt/storecrypt/internal/ledger"
	"github.com/storecrypt/storecrypt/internal/opcli"
	"github.com/storecrypt/storecrypt/test/deployment"
	"github.com/storecrypt/storecrypt/test/emu"
)

const (
	revokeA = "i-0000000000000000a"
	revokeB = "i-0000000000000000b"
	outside = "i-0000000000000000c"
)

// revocable is the deployed stack with the revocation documents, two running instances in
// scope, each with the grant the launch function makes, one out of scope, the ledger, and
// a responder as the caller.
func revocable(t *testing.T) (*fakeaws.World, *ledger.Ledger, opcli.Clients) {
	t.Helper()
	w := fakeaws.NewAccount(t)
	if _, err := deployment.Into(w, fakeaws.KeyARN); err != nil {
		t.Fatal(err)
	}
	w.Caller = "arn:aws:iam::" + fakeaws.Account + ":role/responder"
	c := kms.NewFromConfig(w.Config())
	for _, id := range []string{revokeA, revokeB} {
		w.AddInstance(id, "i4i.large", fakeaws.Profile(fakeaws.KeyUser), nil, launched)
		if _, err := c.CreateGrant(context.Background(), &kms.CreateGrantInput{KeyId: aws.String(fakeaws.KeyARN), Name: aws.String(id),
			GranteePrincipal: aws.String(fakeaws.KeyUser), Operations: []kmstypes.GrantOperation{kmstypes.GrantOperationDecrypt}}); err != nil {
			t.Fatal(err)
		}
	}
	w.AddInstance(outside, "i4i.large", fakeaws.Profile(fakeaws.NotKeyUser), nil, launched)
	w.SettleGrants()
	book := emu.Ledger(t)
	clients := worldClients(w, book)
	clients.STS, clients.Events = sts.NewFromConfig(w.Config()), eventbridge.NewFromConfig(w.Config())
	return w, book, clients
}

// state is what a revocation changed: per instance, its grants left and its ledger marks;
// the commands per document, the events per type, and the key's fleet tag.
type state struct {
	grants   map[string]int
	revoked  map[string]bool
	shredded map[string]bool
	commands map[string][][]string // document: each command's instances
	events   map[string]int
	tag      string
}

func stateOf(t *testing.T, w *fakeaws.World, book *ledger.Ledger) state {
	t.Helper()
	s := state{grants: map[string]int{}, revoked: map[string]bool{}, shredded: map[string]bool{}, commands: map[string][][]string{}, events: map[string]int{}}
	w.With(func() {
		k := w.Keys[fakeaws.KeyARN]
		for _, g := range k.Grants {
			if !g.Removed && g.Name != "" {
				s.grants[g.Name]++
			}
		}
		s.tag = k.Tags[contract.KeyTagRevoked]
		for _, c := range w.Commands {
			s.commands[c.DocumentName] = append(s.commands[c.DocumentName], c.InstanceIDs)
			if c.DocumentName == contract.DocumentShred && (len(c.InstanceIDs) != 1 || c.Parameters[contract.ShredConfirmParameter][0] != c.InstanceIDs[0]) {
				t.Errorf("shred command %s: got instances %v confirmed by %v, want one instance, its own id", c.ID, c.InstanceIDs, c.Parameters[contract.ShredConfirmParameter])
			}
		}
		for _, e := range w.Events {
			s.events[e.DetailType]++
		}
	})
	for _, id := range []string{revokeA, revokeB} {
		it, err := book.Get(context.Background(), id, launched)
		if err != nil {
			t.Fatal(err)
		}
		s.revoked[id], s.shredded[id] = it != nil && it.RevokedAt != "", it != nil && it.ShreddedAt != ""
	}
	return s
}

// TestRevokeCommand: revoke needs a valid --reason and, without a terminal, --yes; it
// lists and asks first, --dry-run changes nothing; then the ledger marks each instance in
// scope, its grant is gone, the revoke document and the event are sent. --shred asks a
// second time for the id typed back, and sends the shred document one instance a
// command. --all tags the key.
func TestRevokeCommand(t *testing.T) {
	reason := []string{"--reason", "INC-7 stolen role"}
	both := append([]string{"revoke", revokeA, revokeB}, reason...)
	type want struct {
		code     int
		says     string // on stderr
		revoked  []string
		shredded []string
		commands map[string]int // document: commands
		events   map[string]int
		tag      bool
	}
	for _, tc := range []struct {
		name     string
		terminal bool
		stdin    string
		args     []string
		want     want
	}{
		{"no --reason", false, "", []string{"revoke", revokeA, "--yes"}, want{code: 2, says: `--reason "": want why`}},
		{"a reason that could break out", false, "", []string{"revoke", revokeA, "--yes", "--reason", "x; rm -rf /"}, want{code: 2, says: "want why"}},
		{"no terminal, no --yes", false, "", both, want{code: 2, says: "pass --yes"}},
		{"ids and --all", false, "", append(both, "--all", "--yes"), want{code: 2, says: "give instance ids, --targets or --all"}},
		{"--dry-run", false, "", append(both, "--dry-run"), want{}},
		{"answered no", true, "n\n", both, want{code: 1, says: "not confirmed: nothing was changed"}},
		{"answered yes", true, "y\n", both, want{revoked: []string{revokeA, revokeB}, says: "revoked  2",
			commands: map[string]int{contract.DocumentRevoke: 1}, events: map[string]int{contract.EventInstanceRevoked: 2}}},
		{"--yes, one out of scope", false, "", append([]string{"revoke", revokeA, outside, "--yes"}, reason...), want{revoked: []string{revokeA},
			says: outside + "  left out: outside the stack's scope", commands: map[string]int{contract.DocumentRevoke: 1}, events: map[string]int{contract.EventInstanceRevoked: 1}}},
		{"--all", false, "", append([]string{"revoke", "--all", "--yes"}, reason...), want{revoked: []string{revokeA, revokeB}, tag: true,
			commands: map[string]int{contract.DocumentRevoke: 1}, events: map[string]int{contract.EventInstanceRevoked: 2}}},
		{"--shred, the id mistyped", true, "y\ni-0000000000000000b\n", append([]string{"revoke", revokeA, "--shred"}, reason...),
			want{code: 1, says: `typed "i-0000000000000000b", want "i-0000000000000000a": nothing was changed`}},
		{"--shred, --yes does not answer the second question", false, "", append([]string{"revoke", revokeA, "--shred", "--yes"}, reason...),
			want{code: 2, says: "pass --confirm-shred"}},
		{"--shred, the id typed back", true, "y\ni-0000000000000000a\n", append([]string{"revoke", revokeA, "--shred"}, reason...),
			want{revoked: []string{revokeA}, shredded: []string{revokeA}, commands: map[string]int{contract.DocumentShred: 1},
				events: map[string]int{contract.EventInstanceShredded: 1}}},
		{"--shred of two, the count given", false, "", append([]string{"revoke", revokeA, revokeB, "--shred", "--yes", "--confirm-shred", "2"}, reason...),
			want{revoked: []string{revokeA, revokeB}, shredded: []string{revokeA, revokeB}, commands: map[string]int{contract.DocumentShred: 2},
				events: map[string]int{contract.EventInstanceShredded: 2}}},
		{"--shred of two, an id given for the count", false, "", append([]string{"revoke", revokeA, revokeB, "--shred", "--yes", "--confirm-shred", revokeA}, reason...),
			want{code: 1, says: `want "2"`}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if tc.terminal {
				opcli.StdinIsTerminal(t)
			}
			w, book, c := revocable(t)
			calls := w.TotalCalls()
			code, out, errOut := run(t, c, tc.stdin, tc.args...)
			if errOut += out; code != tc.want.code || !strings.Contains(errOut, tc.want.says) {
				t.Fatalf("got exit %d, stderr:\n%s\nwant exit %d saying %q", code, errOut, tc.want.code, tc.want.says)
			}
			if code == 2 && w.TotalCalls() != calls {
				t.Errorf("got %d AWS calls before refusing, want none", w.TotalCalls()-calls)
			}
			s := stateOf(t, w, book)
			for _, id := range []string{revokeA, revokeB} {
				in := func(ids []string) bool { return strings.Contains(strings.Join(ids, " "), id) }
				if s.revoked[id] != in(tc.want.revoked) || s.shredded[id] != in(tc.want.shredded) {
					t.Errorf("%s: got revoked %v, shredded %v in the ledger, want %v, %v", id, s.revoked[id], s.shredded[id], in(tc.want.revoked), in(tc.want.shredded))
				}
				if left := s.grants[id]; (left == 0) != in(tc.want.revoked) {
					t.Errorf("%s: got %d grants left, want revoked %v", id, left, in(tc.want.revoked))
				}
			}
			for _, doc := range []string{contract.DocumentRevoke, contract.DocumentShred, contract.DocumentResume} {
				if got := len(s.commands[doc]); got != tc.want.commands[doc] {
					t.Errorf("%s: got %d commands %v, want %d", doc, got, s.commands[doc], tc.want.commands[doc])
				}
			}
			for _, ev := range []string{contract.EventInstanceRevoked, contract.EventInstanceShredded} {
				if s.events[ev] != tc.want.events[ev] {
					t.Errorf("%s: got %d events, want %d", ev, s.events[ev], tc.want.events[ev])
				}
			}
			if (s.tag != "") != tc.want.tag {
				t.Errorf("got key tag %q, want tagged %v", s.tag, tc.want.tag)
			}
		})
	}
}

// TestResumeCommand: resume removes the mark, waits for the launch path's grant (here
// the grant is back before resume looks), sends the resume document and the event; --all
// untags the key; a shredded instance is refused, and nothing is sent to it.
func TestResumeCommand(t *testing.T) {
	reason := []string{"--reason", "INC-7 closed", "--yes", "--wait", "50ms"}
	for _, tc := range []struct {
		name     string
		revoke   []string
		args     []string
		code     int
		says     string
		resumed  int
		tag      bool
		regrants bool
	}{
		{"one, granted again", []string{"revoke", revokeA}, []string{"resume", revokeA}, 0, "resumed  1", 1, false, true},
		{"--all", []string{"revoke", "--all"}, []string{"resume", "--all"}, 0, "resumed  2", 1, false, true},
		{"not granted in time", []string{"revoke", revokeA}, []string{"resume", revokeA}, 1, "has not granted the instance again within 50ms", 0, false, false},
		{"shredded", []string{"revoke", revokeA, "--shred", "--confirm-shred", revokeA}, []string{"resume", revokeA}, 1, ledger.ErrShredded.Error(), 0, false, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			w, book, c := revocable(t)
			if code, _, errOut := run(t, c, "", append(tc.revoke, "--yes", "--reason", "INC-7")...); code != 0 {
				t.Fatalf("revoking: exit %d %s", code, errOut)
			}
			if tc.regrants {
				// The launch function's sweep, as it would run once the ledger lets it.
				k := kms.NewFromConfig(w.Config())
				for _, id := range []string{revokeA, revokeB} {
					if _, err := k.CreateGrant(context.Background(), &kms.CreateGrantInput{KeyId: aws.String(fakeaws.KeyARN), Name: aws.String(id),
						GranteePrincipal: aws.String(fakeaws.KeyUser), Operations: []kmstypes.GrantOperation{kmstypes.GrantOperationDecrypt}}); err != nil {
						t.Fatal(err)
					}
				}
			}
			code, out, errOut := run(t, c, "", append(tc.args, reason...)...)
			if errOut += out; code != tc.code || !strings.Contains(errOut, tc.says) {
				t.Fatalf("got exit %d, stderr:\n%s\nwant exit %d saying %q", code, errOut, tc.code, tc.says)
			}
			s := stateOf(t, w, book)
			if got := len(s.commands[contract.DocumentResume]); got != tc.resumed {
				t.Errorf("got %d resume commands, want %d", got, tc.resumed)
			}
			if (s.tag != "") != tc.tag {
				t.Errorf("got key tag %q, want tagged %v", s.tag, tc.tag)
			}
			// Only a shred keeps the mark: a resume not granted in time has cleared it
			// for the next sweep.
			if want := tc.name == "shredded"; s.revoked[revokeA] != want {
				t.Errorf("got %s revoked %v in the ledger after resume, want %v", revokeA, s.revoked[revokeA], want)
			}
		})
	}
}

// TestRevocationSendsTheDeployedContent: revoke, --shred and resume send the version of
// their document whose content has the stack's digest output, never a default someone
// else made, and say so on stderr; --dry-run shows the document and version; with no
// version holding that content the document is not sent and the command exits 12, while
// the steps before it stand (the ledger mark, the revoked grant; a shred then marks
// nothing shredded); a stack without the digest output changes nothing.
func TestRevocationSendsTheDeployedContent(t *testing.T) {
	tamper := func(doc string) func(w *fakeaws.World) {
		return func(w *fakeaws.World) { w.AddDocument(doc, `{"schemaVersion":"2.2","mainSteps":[]}`, true) }
	}
	noneHolds := func(output string) func(w *fakeaws.World) {
		return func(w *fakeaws.World) {
			w.With(func() { w.Stacks[contract.StackName].Outputs[output] = strings.Repeat("0", 64) })
		}
	}
	revokeArgs := []string{"revoke", revokeA, "--yes", "--reason", "INC-9"}
	shredArgs := []string{"revoke", revokeA, "--shred", "--yes", "--confirm-shred", revokeA, "--reason", "INC-9"}
	resumeArgs := []string{"resume", revokeA, "--yes", "--reason", "INC-9 closed", "--wait", "50ms"}
	for _, tc := range []struct {
		name    string
		setup   func(w *fakeaws.World)
		args    []string
		doc     string
		code    int
		says    string // on stdout or stderr
		version string // the version sent; "" none
		revoked bool   // the ledger's mark and the grant gone, after
		shred   bool
	}{
		{"revoke, a tampered default", tamper(contract.DocumentRevoke), revokeArgs, contract.DocumentRevoke, 0,
			"the default of " + contract.DocumentRevoke + " is not the content stack StoreCrypt deployed", "1", true, false},
		{"revoke --dry-run, a tampered default", tamper(contract.DocumentRevoke), []string{"revoke", revokeA, "--dry-run", "--reason", "INC-9"}, contract.DocumentRevoke, 0,
			"DOCUMENT  " + contract.DocumentRevoke + " version 1, not the default 2, which is not the deployed content", "", false, false},
		{"revoke, no version holds the content", noneHolds(contract.OutputRevokeDocumentDigest), revokeArgs, contract.DocumentRevoke, int(contract.CLIExitUntrusted),
			"storecrypt-revoke not sent: no version of document " + contract.DocumentRevoke + " holds the content stack StoreCrypt deployed, whose RevokeContentDigest is", "", true, false},
		{"revoke, no RevokeContentDigest output", func(w *fakeaws.World) {
			w.With(func() { delete(w.Stacks[contract.StackName].Outputs, contract.OutputRevokeDocumentDigest) })
		}, revokeArgs, contract.DocumentRevoke, 1, "lacks the outputs storecrypt revoke needs (RevokeDocumentName, RevokeContentDigest)", "", false, false},
		{"--shred, a tampered default", tamper(contract.DocumentShred), shredArgs, contract.DocumentShred, 0,
			"sending version 1, which is", "1", true, true},
		{"--shred, no version holds the content", noneHolds(contract.OutputShredDocumentDigest), shredArgs, contract.DocumentShred, int(contract.CLIExitUntrusted),
			"nothing was erased, and the ledger does not mark it shredded", "", true, false},
		{"resume, a tampered default", tamper(contract.DocumentResume), resumeArgs, contract.DocumentResume, 0,
			"sending version 1, which is", "1", false, false},
		{"resume, no version holds the content", noneHolds(contract.OutputResumeDocumentDigest), resumeArgs, contract.DocumentResume, int(contract.CLIExitUntrusted),
			"the ledger no longer marks it and the launch path grants it the key again, but its volume stays suspended", "", false, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			w, book, c := revocable(t)
			if tc.args[0] == "resume" {
				if code, _, errOut := run(t, c, "", revokeArgs...); code != 0 {
					t.Fatalf("revoking: exit %d %s", code, errOut)
				}
				// The launch function's sweep, as it would run once the ledger lets it.
				if _, err := kms.NewFromConfig(w.Config()).CreateGrant(context.Background(), &kms.CreateGrantInput{KeyId: aws.String(fakeaws.KeyARN), Name: aws.String(revokeA),
					GranteePrincipal: aws.String(fakeaws.KeyUser), Operations: []kmstypes.GrantOperation{kmstypes.GrantOperationDecrypt}}); err != nil {
					t.Fatal(err)
				}
				w.SettleGrants()
			}
			tc.setup(w)
			before := len(stateOf(t, w, book).commands[tc.doc])
			code, out, errOut := run(t, c, "", tc.args...)
			if errOut += out; code != tc.code || !strings.Contains(errOut, tc.says) {
				t.Fatalf("got exit %d, output:\n%s\nwant exit %d saying %q", code, errOut, tc.code, tc.says)
			}
			var versions []string
			w.With(func() {
				for _, cmd := range w.Commands {
					if cmd.DocumentName == tc.doc {
						versions = append(versions, cmd.DocumentVersion)
					}
				}
			})
			versions = versions[before:]
			if want := []string{tc.version}; tc.version == "" && len(versions) > 0 || tc.version != "" && !slices.Equal(versions, want) {
				t.Errorf("got %s sent as versions %v, want %q (\"\": none)", tc.doc, versions, tc.version)
			}
			s := stateOf(t, w, book)
			if s.revoked[revokeA] != tc.revoked || (s.grants[revokeA] == 0) != tc.revoked || s.shredded[revokeA] != tc.shred {
				t.Errorf("got revoked %v with %d grants, shredded %v, want revoked %v (no grant), shredded %v",
					s.revoked[revokeA], s.grants[revokeA], s.shredded[revokeA], tc.revoked, tc.shred)
			}
		})
	}
}
