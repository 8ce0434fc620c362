package revoke_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/eventbridge"
	"github.com/aws/aws-sdk-go-v2/service/kms"
	"github.com/aws/aws-sdk-go-v2/service/ssm"

	"github.com/storecrypt/storecrypt/internal/contract"
	"github.com/storecrypt/storecrypt/internal/fakeaws"
	"github.com/storecrypt/storecrypt/internal/launch"
	"github.com/storecrypt/storecrypt/internal/ledger"
	"github.com/storecrypt/storecrypt/internal/revoke"
	"github.com/storecrypt/storecrypt/test/deployment"
	"github.com/storecrypt/storecrypt/test/emu"
)

var (
	launched = time.Date(2026, 11, 27, 6, 0, 0, 0, time.UTC)
	revoked  = launched.Add(time.Hour)
)

const (
	responder = "arn:aws:sts::111122223333:assumed-role/responder/alice"
	reason    = "INC-1 key compromise"
)

// account is the fake account with the revocation documents and running instances ids,
// each granted the key as the launch function grants it (Name = its id).
func account(t *testing.T, ids ...string) *fakeaws.World {
	t.Helper()
	w := fakeaws.NewAccount(t)
	if _, err := deployment.Into(w, fakeaws.KeyARN); err != nil {
		t.Fatal(err)
	}
	for _, id := range ids {
		w.AddInstance(id, "i4i.large", fakeaws.Profile(fakeaws.KeyUser), nil, launched)
		grant(t, w, id)
	}
	w.SettleGrants()
	return w
}

// grant is the launch function's CreateGrant for instance id.
func grant(t testing.TB, w *fakeaws.World, id string) {
	t.Helper()
	_, err := kms.NewFromConfig(w.Config()).CreateGrant(context.Background(),
		launch.GrantInput(fakeaws.KeyARN, id, "arn:aws:ec2:us-east-1:111122223333:instance/"+id, fakeaws.KeyUser, deployment.LaunchRole("aws")))
	if err != nil {
		t.Fatal(err)
	}
}

func runner(w *fakeaws.World, book revoke.Ledger) *revoke.Runner {
	cfg := w.Config()
	return &revoke.Runner{KMS: kms.NewFromConfig(cfg), SSM: ssm.NewFromConfig(cfg), Events: eventbridge.NewFromConfig(cfg), Ledger: book, KeyARN: fakeaws.KeyARN,
		Documents: revoke.Documents{Revoke: deployed(contract.DocumentRevoke), Resume: deployed(contract.DocumentResume), Shred: deployed(contract.DocumentShred)},
		By:        responder, Reason: reason, Now: func() time.Time { return revoked }, Granted: true, GrantWait: 50 * time.Millisecond, GrantPoll: time.Millisecond}
}

// deployed is the version of doc that deployment.Into registers, as the CLI pins it.
func deployed(doc string) revoke.Document { return revoke.Document{Name: doc, Version: "1"} }

func instances(ids ...string) []revoke.Instance {
	out := make([]revoke.Instance, len(ids))
	for n, id := range ids {
		out[n] = revoke.Instance{ID: id, LaunchTime: launched}
	}
	return out
}

// grantsOf counts the key's grants named id.
func grantsOf(w *fakeaws.World, id string) int {
	n := 0
	w.With(func() {
		for _, g := range w.Keys[fakeaws.KeyARN].Grants {
			if g.Name == id && !g.Removed {
				n++
			}
		}
	})
	return n
}

// sentOf are the commands of document doc, in order.
func sentOf(w *fakeaws.World, doc string) []fakeaws.Command {
	var out []fakeaws.Command
	w.With(func() {
		for _, c := range w.Commands {
			if c.DocumentName == doc {
				out = append(out, *c)
			}
		}
	})
	return out
}

// eventsOf are the instance ids of the events of detailType, with their detail checked.
func eventsOf(t *testing.T, w *fakeaws.World, detailType string) []string {
	t.Helper()
	var ids []string
	w.With(func() {
		for _, e := range w.Events {
			if e.DetailType != detailType {
				continue
			}
			var d map[string]string
			if err := json.Unmarshal([]byte(e.Detail), &d); err != nil {
				t.Fatal(err)
			}
			if d["by"] != responder || d["reason"] != reason || d["at"] == "" || e.Bus != "default" {
				t.Errorf("event %s: got detail %v on bus %s, want by %s, reason %q, at on the default bus", detailType, d, e.Bus, responder, reason)
			}
			ids = append(ids, d["instance-id"])
		}
	})
	slices.Sort(ids)
	return ids
}

// markedFirst is the ledger, checking that each mark comes before any grant is revoked:
// the launch function grants no marked instance, so a mark written after the revocation
// would leave it a window to grant the instance again.
type markedFirst struct {
	revoke.Ledger
	t *testing.T
	w *fakeaws.World
	// revoked is how many grants were revoked before the revoke under test.
	revoked *int
}

func (m markedFirst) MarkRevoked(ctx context.Context, l ledger.Launch, mark ledger.Mark) (ledger.Mark, bool, error) {
	if n := m.w.Calls()["KMS.RevokeGrant"] - *m.revoked; n > 0 {
		m.t.Errorf("marking %s: got %d grants revoked before the ledger mark, want none", l.InstanceID, n)
	}
	return m.Ledger.MarkRevoked(ctx, l, mark)
}

const (
	i1 = "i-00000000000000001"
	i2 = "i-00000000000000002"
	i3 = "i-00000000000000003"
)

// TestRevoke: each instance is marked in the ledger (before any grant is revoked), its
// grant revoked, the revoke
// document sent with who and why, and an event sent; a second revoke keeps the first's
// time and sends no second event; an instance SSM cannot reach does not stop the others.
func TestRevoke(t *testing.T) {
	for _, tc := range []struct {
		name    string
		setup   func(t *testing.T, w *fakeaws.World, r *revoke.Runner)
		want    map[string]string // instance: result
		errs    []string          // instances with errors
		events  []string
		command int // SendCommand calls that reached SSM
	}{
		{"three", nil, map[string]string{i1: revoke.Revoked, i2: revoke.Revoked, i3: revoke.Revoked}, nil, []string{i1, i2, i3}, 1},
		{"revoked already", func(t *testing.T, w *fakeaws.World, r *revoke.Runner) {
			first := *r
			first.Now = func() time.Time { return launched.Add(time.Minute) }
			first.Revoke(context.Background(), instances(i1))
			w.With(func() { w.Events, w.Commands = nil, nil })
		}, map[string]string{i1: revoke.AlreadyRevoked, i2: revoke.Revoked, i3: revoke.Revoked}, nil, []string{i2, i3}, 1},
		{"one terminated does not stop the others", func(t *testing.T, w *fakeaws.World, r *revoke.Runner) {
			w.With(func() { w.Instances[i2].State = "terminated" })
		}, map[string]string{i1: revoke.Revoked, i2: revoke.Revoked, i3: revoke.Revoked}, []string{i2}, []string{i1, i2, i3}, 2},
	} {
		t.Run(tc.name, func(t *testing.T) {
			w := account(t, i1, i2, i3)
			book := emu.Ledger(t)
			revoked := 0
			r := runner(w, markedFirst{Ledger: book, t: t, w: w, revoked: &revoked})
			if tc.setup != nil {
				tc.setup(t, w, r)
			}
			revoked = w.Calls()["KMS.RevokeGrant"]
			res := r.Revoke(context.Background(), instances(i1, i2, i3))
			var errs []string
			for _, x := range res {
				if x.Result != tc.want[x.Instance] {
					t.Errorf("%s: got %s, want %s", x.Instance, x.Result, tc.want[x.Instance])
				}
				if len(x.Errors) > 0 {
					errs = append(errs, x.Instance)
				}
				if g := grantsOf(w, x.Instance); g != 0 {
					t.Errorf("%s: got %d grants left, want none", x.Instance, g)
				}
				it, err := book.Get(context.Background(), x.Instance, launched)
				if err != nil || it == nil || it.RevokedAt == "" || it.RevokedBy != responder {
					t.Errorf("%s: got ledger item %+v (%v), want revoked by %s", x.Instance, it, err, responder)
				}
			}
			if !slices.Equal(errs, tc.errs) {
				t.Errorf("got errors on %v, want on %v: %+v", errs, tc.errs, res)
			}
			if got := eventsOf(t, w, contract.EventInstanceRevoked); !slices.Equal(got, tc.events) {
				t.Errorf("got events for %v, want %v", got, tc.events)
			}
			sent := sentOf(w, contract.DocumentRevoke)
			if len(sent) != tc.command {
				t.Fatalf("got %d revoke commands, want %d", len(sent), tc.command)
			}
			for _, c := range sent {
				if got := c.Parameters[contract.RevokeReasonParameter]; !slices.Equal(got, []string{reason}) || !slices.Equal(c.Parameters[contract.RevokeByParameter], []string{responder}) {
					t.Errorf("command %s: got parameters %v, want Reason %q and By %s", c.ID, c.Parameters, reason, responder)
				}
			}
		})
	}
}

// TestShred: each instance is revoked first, marked shredded, and sent the shred document
// in a command of its own, confirmed by its own id; a shredded instance is not resumed.
func TestShred(t *testing.T) {
	w := account(t, i1, i2)
	book := emu.Ledger(t)
	r := runner(w, book)
	res := r.Shred(context.Background(), instances(i1, i2))
	for _, x := range res {
		if x.Result != revoke.Shredded || len(x.Errors) > 0 || grantsOf(w, x.Instance) != 0 {
			t.Errorf("got %+v with %d grants, want shredded, no grant", x, grantsOf(w, x.Instance))
		}
		if it, _ := book.Get(context.Background(), x.Instance, launched); it == nil || it.ShreddedAt == "" || it.RevokedAt == "" {
			t.Errorf("%s: got ledger item %+v, want revoked and shredded", x.Instance, it)
		}
	}
	sent := sentOf(w, contract.DocumentShred)
	if len(sent) != 2 {
		t.Fatalf("got %d shred commands, want 2", len(sent))
	}
	for _, c := range sent {
		if len(c.InstanceIDs) != 1 || !slices.Equal(c.Parameters[contract.ShredConfirmParameter], c.InstanceIDs) {
			t.Errorf("command %s: got instances %v, %s %v, want one instance and its own id", c.ID, c.InstanceIDs, contract.ShredConfirmParameter, c.Parameters[contract.ShredConfirmParameter])
		}
	}
	if got := eventsOf(t, w, contract.EventInstanceShredded); !slices.Equal(got, []string{i1, i2}) {
		t.Errorf("got shredded events for %v, want %v", got, []string{i1, i2})
	}
	res = r.Resume(context.Background(), instances(i1))
	if res[0].Result != revoke.Failed || len(sentOf(w, contract.DocumentResume)) != 0 {
		t.Errorf("resume of a shredded instance: got %+v and %d resume commands, want failed and none", res[0], len(sentOf(w, contract.DocumentResume)))
	}
}

// sweeping is the key as the launch function's sweep changes it: after the given number
// of ListGrants reads, the instances the ledger no longer marks get their grant back.
type sweeping struct {
	revoke.KMS
	t     *testing.T
	w     *fakeaws.World
	book  *ledger.Ledger
	after int
	reads int
}

func (s *sweeping) ListGrants(ctx context.Context, in *kms.ListGrantsInput, optFns ...func(*kms.Options)) (*kms.ListGrantsOutput, error) {
	if s.reads++; s.reads == s.after {
		for _, id := range []string{i1, i2} {
			if why, err := s.book.Revoked(ctx, id); err == nil && why == "" {
				grant(s.t, s.w, id)
			}
		}
	}
	return s.KMS.ListGrants(ctx, in, optFns...)
}

// TestResume: the ledger's mark is removed, the launch path grants the instance again,
// and only then the resume document is sent; no grant within the wait, no document.
func TestResume(t *testing.T) {
	for _, tc := range []struct {
		name      string
		sweepAt   int // the ListGrants read after which the sweep has granted (0: never)
		want      string
		documents int
		granted   bool
	}{
		{"the sweep grants it", 3, revoke.Resumed, 1, true},
		{"no grant in time", 0, revoke.Failed, 0, true},
		{"s3-kms: no grant to wait for", 0, revoke.Resumed, 1, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			w := account(t, i1)
			book := emu.Ledger(t)
			r := runner(w, book)
			r.Revoke(context.Background(), instances(i1))
			r.KMS = &sweeping{KMS: r.KMS, t: t, w: w, book: book, after: tc.sweepAt}
			r.Granted = tc.granted
			res := r.Resume(context.Background(), instances(i1))
			if res[0].Result != tc.want {
				t.Errorf("got %+v, want %s", res[0], tc.want)
			}
			if why, _ := book.Revoked(context.Background(), i1); why != "" {
				t.Errorf("got the ledger marking %s %s, want no mark", i1, why)
			}
			if got := len(sentOf(w, contract.DocumentResume)); got != tc.documents {
				t.Errorf("got %d resume commands, want %d", got, tc.documents)
			}
			if got := len(eventsOf(t, w, contract.EventInstanceResumed)); got != tc.documents {
				t.Errorf("got %d resumed events, want %d", got, tc.documents)
			}
		})
	}
}

// counting is a ledger that counts its writes, for a fleet too large for the emulator.
type counting struct {
	marks map[string]bool
	calls int
}

func (c *counting) MarkRevoked(_ context.Context, l ledger.Launch, m ledger.Mark) (ledger.Mark, bool, error) {
	c.calls += 2 // the conditional write and the entry
	c.marks[l.InstanceID] = true
	return m, true, nil
}

func (c *counting) MarkShredded(_ context.Context, l ledger.Launch, m ledger.Mark) (ledger.Mark, bool, error) {
	return m, false, fmt.Errorf("not in this test")
}

func (c *counting) Resume(_ context.Context, l ledger.Launch, _ ledger.Mark) error {
	c.calls += 3 // the read, the removal, the entry
	delete(c.marks, l.InstanceID)
	return nil
}

// TestFleet: the fleet's revoke tags the key before it revokes any grant, and its resume
// takes the tag off after every resume document; for 1,000 instances the AWS calls are
// bounded per step: one tag, the key's grants read 100 a page, a RevokeGrant per grant,
// a command per 50 instances, a PutEvents per 10, two ledger writes per instance.
func TestFleet(t *testing.T) {
	const n = 1000
	ids := make([]string, n)
	for i := range ids {
		ids[i] = fmt.Sprintf("i-%017x", i+1)
	}
	w := account(t, ids...)
	book := &counting{marks: map[string]bool{}}
	r := runner(w, book)
	before := w.Calls()
	res, err := r.RevokeFleet(context.Background(), instances(ids...))
	if err != nil {
		t.Fatal(err)
	}
	for _, x := range res {
		if x.Result != revoke.Revoked || len(x.Errors) > 0 {
			t.Fatalf("got %+v, want revoked", x)
		}
	}
	calls := w.Calls()
	grantPages := (n + 1 + 99) / 100 // the account's own grant too
	for op, want := range map[string]int{"KMS.TagResource": 1, "KMS.ListGrants": grantPages, "KMS.RevokeGrant": n, "SSM.SendCommand": n / 50, "EventBridge.PutEvents": n / 10} {
		if got := calls[op] - before[op]; got != want {
			t.Errorf("%s: got %d calls, want %d", op, got, want)
		}
	}
	if book.calls != 2*n {
		t.Errorf("ledger: got %d calls, want %d", book.calls, 2*n)
	}
	t.Logf("revoke of %d instances: %d AWS calls besides the ledger's %d", n, w.TotalCalls()-sum(before), book.calls)
	var order []string
	for _, c := range w.Log() {
		if c.Operation == "TagResource" || c.Operation == "RevokeGrant" && len(order) < 2 || c.Operation == "SendCommand" || c.Operation == "UntagResource" {
			order = append(order, c.Operation)
		}
	}
	if len(order) < 2 || order[0] != "TagResource" || order[1] != "RevokeGrant" {
		t.Errorf("got calls in order %v, want TagResource before the first RevokeGrant", order[:min(len(order), 3)])
	}
	var tagged string
	w.With(func() { tagged = w.Keys[fakeaws.KeyARN].Tags[contract.KeyTagRevoked] })
	if tagged != revoked.Format(time.RFC3339) {
		t.Errorf("got key tag %s=%q, want %s", contract.KeyTagRevoked, tagged, revoked.Format(time.RFC3339))
	}

	for _, id := range ids {
		grant(t, w, id) // the sweep's, once the ledger lets it
	}
	if _, err := r.ResumeFleet(context.Background(), instances(ids...)); err != nil {
		t.Fatal(err)
	}
	log := w.Log()
	last := func(op string) int {
		at := -1
		for n, c := range log {
			if c.Operation == op {
				at = n
			}
		}
		return at
	}
	if untag, send := last("UntagResource"), last("SendCommand"); untag < send {
		t.Errorf("got UntagResource at call %d, the last SendCommand at %d, want the untag after it", untag, send)
	}
	w.With(func() { tagged = w.Keys[fakeaws.KeyARN].Tags[contract.KeyTagRevoked] })
	if tagged != "" || len(book.marks) != 0 {
		t.Errorf("got key tag %q and %d marks after resume, want none", tagged, len(book.marks))
	}
}

func sum(m map[string]int) int {
	n := 0
	for _, v := range m {
		n += v
	}
	return n
}

// TestDocumentPinned: each document goes as the version the runner was given (the one
// with the deployed content), never the default when someone has made another version
// the default; with no trusted version the document's step fails on each instance and
// nothing of it is sent, while the steps before it stand: a revoke's ledger mark and
// revoked grant, a resume's cleared mark; a shred then neither marks the ledger shredded
// nor erases.
func TestDocumentPinned(t *testing.T) {
	untrusted := errors.New("no version holds the deployed content")
	type want struct {
		result   string
		sent     string // the version sent; "" none
		says     string // in the instance's errors
		revoked  bool   // the ledger's mark after
		shredded bool
	}
	for _, tc := range []struct {
		name    string
		doc     string
		trusted bool
		act     func(t *testing.T, w *fakeaws.World, r *revoke.Runner) []revoke.Result
		want    want
	}{
		{"revoke, the default drifted", contract.DocumentRevoke, true, revokeIt,
			want{result: revoke.Revoked, sent: "1", revoked: true}},
		{"revoke, no trusted version", contract.DocumentRevoke, false, revokeIt,
			want{result: revoke.Revoked, says: "storecrypt-revoke not sent: no version holds the deployed content; the steps before it stand (the ledger mark, the grant's revocation)", revoked: true}},
		{"shred, the default drifted", contract.DocumentShred, true, shredIt,
			want{result: revoke.Shredded, sent: "1", revoked: true, shredded: true}},
		{"shred, no trusted version", contract.DocumentShred, false, shredIt,
			want{result: revoke.Failed, says: "storecrypt-shred not sent: no version holds the deployed content; nothing was erased", revoked: true}},
		{"resume, the default drifted", contract.DocumentResume, true, resumeRegranted,
			want{result: revoke.Resumed, sent: "1"}},
		{"resume, no trusted version", contract.DocumentResume, false, resumeRegranted,
			want{result: revoke.Failed, says: "storecrypt-resume not sent: no version holds the deployed content; the ledger no longer marks it"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			w := account(t, i1)
			book := emu.Ledger(t)
			r := runner(w, book)
			// Whoever may update the document makes their own content the default.
			if v := w.AddDocument(tc.doc, `{"schemaVersion":"2.2","mainSteps":[]}`, true); v != 2 {
				t.Fatalf("got version %d of the tampered content, want 2", v)
			}
			if !tc.trusted {
				for _, d := range []*revoke.Document{&r.Documents.Revoke, &r.Documents.Resume, &r.Documents.Shred} {
					if d.Name == tc.doc {
						*d = revoke.Document{Name: tc.doc, Untrusted: untrusted}
					}
				}
			}
			res := tc.act(t, w, r)
			x := res[0]
			if x.Result != tc.want.result || !strings.Contains(strings.Join(x.Errors, "; "), tc.want.says) || (tc.want.says == "") != (len(x.Errors) == 0) {
				t.Errorf("got %s with errors %q, want %s saying %q", x.Result, x.Errors, tc.want.result, tc.want.says)
			}
			var versions []string
			for _, c := range sentOf(w, tc.doc) {
				versions = append(versions, c.DocumentVersion)
			}
			if want := []string{tc.want.sent}; tc.want.sent == "" && len(versions) > 0 || tc.want.sent != "" && !slices.Equal(versions, want) {
				t.Errorf("got %s sent as versions %v, want %q (\"\": none)", tc.doc, versions, tc.want.sent)
			}
			if g := grantsOf(w, i1); (g == 0) != tc.want.revoked {
				t.Errorf("got %d grants left, want revoked %v", g, tc.want.revoked)
			}
			it, err := book.Get(context.Background(), i1, launched)
			if err != nil || it == nil || (it.RevokedAt != "") != tc.want.revoked || (it.ShreddedAt != "") != tc.want.shredded {
				t.Errorf("got ledger item %+v (%v), want revoked %v, shredded %v", it, err, tc.want.revoked, tc.want.shredded)
			}
		})
	}
}

func revokeIt(_ *testing.T, _ *fakeaws.World, r *revoke.Runner) []revoke.Result {
	return r.Revoke(context.Background(), instances(i1))
}

func shredIt(_ *testing.T, _ *fakeaws.World, r *revoke.Runner) []revoke.Result {
	return r.Shred(context.Background(), instances(i1))
}

// resumeRegranted revokes i1 (with the deployed revoke document), grants it again as
// the launch path's sweep would, and resumes it.
func resumeRegranted(t *testing.T, w *fakeaws.World, r *revoke.Runner) []revoke.Result {
	ctx := context.Background()
	revoker := *r
	revoker.Documents.Revoke = deployed(contract.DocumentRevoke)
	revoker.Revoke(ctx, instances(i1))
	grant(t, w, i1)
	w.SettleGrants()
	return r.Resume(ctx, instances(i1))
}
