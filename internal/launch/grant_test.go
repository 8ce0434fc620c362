package launch_test

import (
	"context"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/aws/retry"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	ddbtypes "github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/storecrypt/storecrypt/internal/contract"
	"github.com/storecrypt/storecrypt/internal/fakeaws"
	"github.com/storecrypt/storecrypt/internal/launch"
	"github.com/storecrypt/storecrypt/internal/ledger"
	"github.com/storecrypt/storecrypt/test/deployment"
	"github.com/storecrypt/storecrypt/test/emu"
)

// TestGrants: before the document goes to an instance (kms-datakey), the function grants
// the instance's role Decrypt under the instance's own context, named after the
// instance, retired by the function's role; an instance the ledger marks revoked or
// shredded (in any of its launches) gets neither grant nor command; a refused grant sends
// no command and hands the message back. (That s3-kms makes no grant, the conformance
// test of the functions' permissions shows: its key policy lets no one grant.)
func TestGrants(t *testing.T) {
	const id = "i-00000000000000001"
	arn := "arn:aws:ec2:us-east-1:111122223333:instance/" + id
	mark := func(attr string) func(*testing.T, *fakeaws.World, *ledger.Ledger) {
		return func(t *testing.T, _ *fakeaws.World, l *ledger.Ledger) {
			// An earlier launch of the instance, the one `storecrypt revoke` marked.
			_, err := l.DB.UpdateItem(context.Background(), &dynamodb.UpdateItemInput{TableName: aws.String(l.Table),
				Key: map[string]ddbtypes.AttributeValue{
					ledger.AttrInstance:   &ddbtypes.AttributeValueMemberS{Value: id},
					ledger.AttrLaunchTime: &ddbtypes.AttributeValueMemberS{Value: launched.Add(-time.Hour).UTC().Format(time.RFC3339)}},
				UpdateExpression:          aws.String("SET " + attr + " = :at"),
				ExpressionAttributeValues: map[string]ddbtypes.AttributeValue{":at": &ddbtypes.AttributeValueMemberS{Value: "2026-12-07T05:00:00Z"}},
			})
			if err != nil {
				t.Fatal(err)
			}
		}
	}
	for _, tc := range []struct {
		name    string
		role    string
		setup   func(*testing.T, *fakeaws.World, *ledger.Ledger)
		grant   bool
		command bool
		reason  contract.Reason // the skip's, when there is one
		retried bool
	}{
		{"granted, then commanded", fakeaws.KeyUser, nil, true, true, "", false},
		{"revoked in an earlier launch", fakeaws.KeyUser, mark(contract.LedgerRevokedAt), false, false, contract.ReasonRevoked, false},
		{"shredded", fakeaws.KeyUser, mark(contract.LedgerShreddedAt), false, false, contract.ReasonShredded, false},
		{"the grant refused", fakeaws.KeyUser, func(_ *testing.T, w *fakeaws.World, _ *ledger.Ledger) {
			w.Fault = func(_, op string, _ int) error {
				if op == "CreateGrant" {
					return fakeaws.APIError("AccessDeniedException", "not allowed")
				}
				return nil
			}
		}, false, false, "", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			w := fakeaws.NewAccount(t)
			w.AddInstance(id, "i4i.large", fakeaws.Profile(tc.role), nil, launched)
			l := emu.Ledger(t)
			if tc.setup != nil {
				tc.setup(t, w, l)
			}
			e := newEnv(t, w)
			e.h.Ledger = l
			failed := e.handle(t, running(id))
			if got := len(failed) > 0; got != tc.retried {
				t.Errorf("handed back: got %v, want %v", got, tc.retried)
			}
			if got := slices.Contains(e.commanded(), id); got != tc.command {
				t.Errorf("commanded: got %v, want %v", got, tc.command)
			}
			if tags := e.tags(id); tc.reason != "" && (tags[contract.TagStatus] != contract.StatusSkipped || tags[contract.TagReason] != string(tc.reason)) {
				t.Errorf("tags: got %s/%s, want %s/%s", tags[contract.TagStatus], tags[contract.TagReason], contract.StatusSkipped, tc.reason)
			}
			var got []fakeaws.Grant
			w.With(func() {
				for _, g := range w.Keys[fakeaws.KeyARN].Grants {
					if g.Name == id {
						got = append(got, g)
					}
				}
			})
			if !tc.grant {
				if len(got) != 0 {
					t.Errorf("got grants %+v, want none", got)
				}
				return
			}
			if len(got) != 1 {
				t.Fatalf("got %d grants named %s, want 1", len(got), id)
			}
			g := got[0]
			if g.Grantee != tc.role || !slices.Equal(g.Operations, []string{"Decrypt"}) || g.Retiring != deployment.LaunchRole("aws") ||
				len(g.ContextSubset) != 1 || g.ContextSubset[contract.ContextInstanceARN] != arn || g.ContextEquals != nil {
				t.Errorf("got grant %+v, want Decrypt for %s under %s=%s, retired by %s", g, tc.role, contract.ContextInstanceARN, arn, deployment.LaunchRole("aws"))
			}
		})
	}
}

// TestGrantRetried: a batch whose command failed after its grant is retried with the
// same grant (CreateGrant's Name), not a second one.
func TestGrantRetried(t *testing.T) {
	const id = "i-00000000000000001"
	w := fakeaws.NewAccount(t)
	w.AddInstance(id, "i4i.large", fakeaws.Profile(fakeaws.KeyUser), nil, launched)
	w.Fault = func(_, op string, attempt int) error {
		if op == "SendCommand" && attempt == 1 {
			return fakeaws.APIError("InvalidDocument", "not yet")
		}
		return nil
	}
	e := newEnv(t, w)
	if failed := e.handle(t, running(id)); len(failed) != 1 {
		t.Fatalf("handed back %v, want the message", failed)
	}
	if failed := e.handle(t, running(id)); len(failed) != 0 {
		t.Fatalf("handed back %v on the retry", failed)
	}
	n := 0
	w.With(func() {
		for _, g := range w.Keys[fakeaws.KeyARN].Grants {
			if g.Name == id {
				n++
			}
		}
	})
	if calls := w.Calls()["KMS.CreateGrant"]; calls != 2 || n != 1 {
		t.Errorf("got %d CreateGrant calls and %d grants, want 2 calls and 1 grant", calls, n)
	}
}

// TestGrantQuotaNotRetried: a grant the key's 50,000 refused is tried once and the
// message handed back, where a throttled one is retried by the SDK.
func TestGrantQuotaNotRetried(t *testing.T) {
	const id = "i-00000000000000001"
	for _, tc := range []struct {
		code  string
		calls int
	}{
		{"LimitExceededException", 1},
		{"ThrottlingException", retry.DefaultMaxAttempts}, // the fake account's configuration
	} {
		t.Run(tc.code, func(t *testing.T) {
			w := fakeaws.NewAccount(t)
			w.AddInstance(id, "i4i.large", fakeaws.Profile(fakeaws.KeyUser), nil, launched)
			w.Fault = func(_, op string, _ int) error {
				if op == "CreateGrant" {
					return fakeaws.APIError(tc.code, "refused")
				}
				return nil
			}
			e := newEnv(t, w)
			if failed := e.handle(t, running(id)); len(failed) != 1 {
				t.Fatalf("handed back %v, want the message", failed)
			}
			if got := w.Calls()["KMS.CreateGrant"]; got != tc.calls {
				t.Errorf("got %d CreateGrant attempts, want %d", got, tc.calls)
			}
		})
	}
}

// TestSweepGrantsTheUpgraded: instances encrypted before the upgrade to grants have none,
// and the launch path, which grants, will not see them again. The sweep grants each
// in-scope instance it does not queue that lacks a grant, once, and not one the ledger
// marks revoked; a queued instance is the launch path's to grant.
func TestSweepGrantsTheUpgraded(t *testing.T) {
	const upgraded, granted, revoked, fresh = "i-00000000000000001", "i-00000000000000002", "i-00000000000000003", "i-00000000000000004"
	w := fakeaws.NewAccount(t)
	for _, id := range []string{upgraded, granted, revoked} {
		w.AddInstance(id, "i4i.large", fakeaws.Profile(fakeaws.KeyUser), nil, launched)
		ran(w, id, cmd("c-"+id), launched.Add(time.Minute), finished(id, "ok"))
		claims(w, id, contract.StatusEncrypted, "", launched.Add(2*time.Minute))
		w.Instances[id].Tags[contract.TagCommandID] = cmd("c-" + id)
	}
	w.AddInstance(fresh, "i4i.large", fakeaws.Profile(fakeaws.KeyUser), nil, launched)
	w.Keys[fakeaws.KeyARN].Grants = append(w.Keys[fakeaws.KeyARN].Grants, fakeaws.Grant{ID: "g", Name: granted, Grantee: fakeaws.KeyUser, Operations: []string{"Decrypt"}})
	l := emu.Ledger(t)
	mark := &dynamodb.UpdateItemInput{TableName: aws.String(l.Table),
		Key: map[string]ddbtypes.AttributeValue{ledger.AttrInstance: &ddbtypes.AttributeValueMemberS{Value: revoked},
			ledger.AttrLaunchTime: &ddbtypes.AttributeValueMemberS{Value: launched.UTC().Format(time.RFC3339)}},
		UpdateExpression:          aws.String("SET " + contract.LedgerRevokedAt + " = :at"),
		ExpressionAttributeValues: map[string]ddbtypes.AttributeValue{":at": &ddbtypes.AttributeValueMemberS{Value: "2026-12-07T05:00:00Z"}}}
	if _, err := l.DB.UpdateItem(context.Background(), mark); err != nil {
		t.Fatal(err)
	}
	e := newEnv(t, w)
	e.h.Ledger = l
	e.h.Now = func() time.Time { return launched.Add(5 * time.Minute) }
	res, err := e.h.Sweep(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(res.Granted, []string{upgraded}) || !slices.Equal(res.Enqueued, []string{fresh}) {
		t.Errorf("got granted %v, enqueued %v; want granted [%s], enqueued [%s]", res.Granted, res.Enqueued, upgraded, fresh)
	}
	names := map[string]int{}
	w.With(func() {
		for _, g := range w.Keys[fakeaws.KeyARN].Grants {
			names[g.Name]++
		}
	})
	for id, want := range map[string]int{upgraded: 1, granted: 1, revoked: 0, fresh: 0} {
		if names[id] != want {
			t.Errorf("%s: got %d grants, want %d", id, names[id], want)
		}
	}
}

// TestGrantRetiredAtTermination: a terminated instance's grant is retired by the
// function (its retiring principal), with or without a ledger, so that grants do not pile
// up to KMS's 50,000 per key; a grant another principal retires stays; a replayed event
// finds nothing left and succeeds; a failed retirement hands the message back.
func TestGrantRetiredAtTermination(t *testing.T) {
	const id, other = "i-00000000000000001", "i-00000000000000002"
	terminated := func(id string) string {
		return strings.Replace(launch.StateChangeEvent(id, launched.Add(time.Hour)), `"state":"running"`, `"state":"terminated"`, 1)
	}
	for _, tc := range []struct {
		name    string
		fault   string // the operation that fails, if one does
		events  []string
		left    []string // the names of the grants left
		retried bool
	}{
		{"terminated", "", []string{terminated(id)}, []string{other, "someone else's " + id}, false},
		{"terminated, the event replayed", "", []string{terminated(id), terminated(id)}, []string{other, "someone else's " + id}, false},
		{"the grants unreadable", "ListGrants", []string{terminated(id)}, []string{id, other, "someone else's " + id}, true},
		{"the retirement refused", "RetireGrant", []string{terminated(id)}, []string{id, other, "someone else's " + id}, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			w := fakeaws.NewAccount(t)
			for _, i := range []string{id, other} {
				w.AddInstance(i, "i4i.large", fakeaws.Profile(fakeaws.KeyUser), nil, launched)
			}
			e := newEnv(t, w)
			if failed := e.handle(t, running(id), running(other)); len(failed) != 0 {
				t.Fatalf("handed back %v granting", failed)
			}
			w.With(func() {
				k := w.Keys[fakeaws.KeyARN]
				k.Grants = append(k.Grants, fakeaws.Grant{ID: "theirs", Name: id, Grantee: fakeaws.KeyUser, Retiring: "arn:aws:iam::111122223333:role/someone", Operations: []string{"Decrypt"}})
			})
			w.Fault = func(_, op string, _ int) error {
				if op == tc.fault {
					return fakeaws.APIError("AccessDeniedException", "not allowed")
				}
				return nil
			}
			var failed []string
			for _, ev := range tc.events {
				failed = append(failed, e.handle(t, ev)...)
			}
			if got := len(failed) > 0; got != tc.retried {
				t.Errorf("handed back: got %v, want %v", got, tc.retried)
			}
			var left []string
			w.With(func() {
				for _, g := range w.Keys[fakeaws.KeyARN].Grants {
					switch {
					case g.Removed, g.Name == "": // the account's own grant, which names no instance
					case g.Retiring == deployment.LaunchRole("aws"):
						left = append(left, g.Name)
					default:
						left = append(left, "someone else's "+g.Name)
					}
				}
			})
			slices.Sort(left)
			if !slices.Equal(left, tc.left) {
				t.Errorf("grants left: got %v, want %v", left, tc.left)
			}
		})
	}
}
