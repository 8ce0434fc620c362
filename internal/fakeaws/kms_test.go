package fakeaws

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kms"
	kmstypes "github.com/aws/aws-sdk-go-v2/service/kms/types"
	"github.com/aws/smithy-go"
)

const (
	grantee  = "arn:aws:iam::111122223333:role/storecrypt-instance"
	retiring = "arn:aws:iam::111122223333:role/launch"
	instA    = "arn:aws:ec2:us-east-1:111122223333:instance/i-0a"
)

func grantInput(name string) *kms.CreateGrantInput {
	in := &kms.CreateGrantInput{KeyId: aws.String(KeyARN), GranteePrincipal: aws.String(grantee), RetiringPrincipal: aws.String(retiring),
		Operations:  []kmstypes.GrantOperation{kmstypes.GrantOperationDecrypt},
		Constraints: &kmstypes.GrantConstraints{EncryptionContextSubset: map[string]string{"storecrypt:instance-arn": instA}}}
	if name != "" {
		in.Name = aws.String(name)
	}
	return in
}

func errorCode(err error) string {
	var api smithy.APIError
	if errors.As(err, &api) {
		return api.ErrorCode()
	}
	return ""
}

// TestCreateGrantRules: what CreateGrant's documentation says it refuses.
func TestCreateGrantRules(t *testing.T) {
	pairs := func(n int) map[string]string {
		m := map[string]string{}
		for i := range n {
			m[fmt.Sprint("k", i)] = "v"
		}
		return m
	}
	for _, tc := range []struct {
		name  string
		setup func(*World)
		edit  func(*kms.CreateGrantInput)
		code  string
	}{
		{"a well-formed grant", nil, func(*kms.CreateGrantInput) {}, ""},
		{"Sign on a symmetric encryption key", nil, func(in *kms.CreateGrantInput) {
			in.Operations = append(in.Operations, kmstypes.GrantOperationSign)
		}, "ValidationException"},
		{"a constraint of 9 pairs", nil, func(in *kms.CreateGrantInput) { in.Constraints.EncryptionContextSubset = pairs(9) }, "ValidationException"},
		{"a constraint of 8 pairs", nil, func(in *kms.CreateGrantInput) { in.Constraints.EncryptionContextSubset = pairs(8) }, ""},
		{"a constraint value over 384 characters", nil, func(in *kms.CreateGrantInput) {
			in.Constraints.EncryptionContextSubset = map[string]string{"k": strings.Repeat("v", 385)}
		}, "ValidationException"},
		{"a grantee that is not an ARN", nil, func(in *kms.CreateGrantInput) { in.GranteePrincipal = aws.String("storecrypt-instance") }, "InvalidArnException"},
		{"a disabled key", func(w *World) { w.Keys[KeyARN].State = "Disabled" }, func(*kms.CreateGrantInput) {}, "DisabledException"},
		{"a key pending deletion", func(w *World) { w.Keys[KeyARN].State = "PendingDeletion" }, func(*kms.CreateGrantInput) {}, "KMSInvalidStateException"},
		{"the key's 50,001st grant", func(w *World) { w.Keys[KeyARN].Grants = make([]Grant, MaxGrantsPerKey) }, func(*kms.CreateGrantInput) {}, "LimitExceededException"},
		{"the 50,000th, after one was revoked", func(w *World) {
			w.Keys[KeyARN].Grants = make([]Grant, MaxGrantsPerKey)
			w.Keys[KeyARN].Grants[7].Removed = true
		}, func(*kms.CreateGrantInput) {}, ""},
		{"the 50,000th, after one was refused and another revoked", func(w *World) {
			w.Keys[KeyARN].Grants = make([]Grant, MaxGrantsPerKey)
			c := kms.NewFromConfig(w.Config())
			if _, err := c.CreateGrant(context.Background(), grantInput("")); errorCode(err) != "LimitExceededException" {
				t.Fatalf("at the limit: got %v, want LimitExceededException", err)
			}
			if _, err := c.RevokeGrant(context.Background(), &kms.RevokeGrantInput{KeyId: aws.String(KeyARN), GrantId: aws.String("7")}); err != nil {
				t.Fatal(err)
			}
		}, func(*kms.CreateGrantInput) {}, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			w := NewAccount(nil)
			if tc.setup != nil {
				tc.setup(w)
			}
			in := grantInput("")
			tc.edit(in)
			_, err := kms.NewFromConfig(w.Config()).CreateGrant(context.Background(), in)
			if got := errorCode(err); got != tc.code || tc.code == "" && err != nil {
				t.Errorf("got %q (%v), want %q", got, err, tc.code)
			}
		})
	}
}

// TestCreateGrantName: "When this value is present, you can retry a CreateGrant request
// with identical parameters; if the grant already exists, the original GrantId is
// returned", and "the returned grant token is unique with every CreateGrant request".
func TestCreateGrantName(t *testing.T) {
	for _, tc := range []struct {
		name         string
		first, retry *kms.CreateGrantInput
		sameID       bool
	}{
		{"a retry with identical parameters", grantInput("i-0a"), grantInput("i-0a"), true},
		{"the operations in another order", func() *kms.CreateGrantInput {
			in := grantInput("i-0a")
			in.Operations = []kmstypes.GrantOperation{"Decrypt", "RetireGrant"}
			return in
		}(), func() *kms.CreateGrantInput {
			in := grantInput("i-0a")
			in.Operations = []kmstypes.GrantOperation{"RetireGrant", "Decrypt"}
			return in
		}(), true},
		{"the same name, another constraint", grantInput("i-0a"), func() *kms.CreateGrantInput {
			in := grantInput("i-0a")
			in.Constraints.EncryptionContextSubset = map[string]string{"storecrypt:instance-arn": instA + "x"}
			return in
		}(), false},
		{"the same name, another grantee", grantInput("i-0a"), func() *kms.CreateGrantInput {
			in := grantInput("i-0a")
			in.GranteePrincipal = aws.String(NotKeyUser)
			return in
		}(), false},
		{"no name", grantInput(""), grantInput(""), false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			w := NewAccount(t)
			c := kms.NewFromConfig(w.Config())
			a, err := c.CreateGrant(context.Background(), tc.first)
			if err != nil {
				t.Fatal(err)
			}
			b, err := c.CreateGrant(context.Background(), tc.retry)
			if err != nil {
				t.Fatal(err)
			}
			if got := *a.GrantId == *b.GrantId; got != tc.sameID {
				t.Errorf("same grant id: got %v, want %v", got, tc.sameID)
			}
			if *a.GrantToken == *b.GrantToken {
				t.Errorf("got the token %s twice, want a fresh one each time", *a.GrantToken)
			}
			want := 3 // the standard grant and these
			if tc.sameID {
				want = 2
			}
			if got := len(w.Keys[KeyARN].Grants); got != want {
				t.Errorf("got %d grants, want %d", got, want)
			}
		})
	}
}

// TestGrantConsistency: a grant is effective at once only with its token, and a revoked
// or retired one may still be effective, until the change has propagated
// (SettleGrants). Each step is one KMSDecision on the instance's Decrypt.
func TestGrantConsistency(t *testing.T) {
	const policy = `{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"AWS":"arn:aws:iam::111122223333:root"},"Action":"kms:*","Resource":"*"}]}`
	w := NewAccount(t)
	w.Caller = retiring
	c := kms.NewFromConfig(w.Config())
	ctx := context.Background()
	var token, id string
	decide := func(tokens ...string) Decision {
		reqs, err := w.Authz(Call{Service: "KMS", Operation: "Decrypt", Params: &kms.DecryptInput{KeyId: aws.String(KeyARN), CiphertextBlob: []byte("c"),
			EncryptionContext: map[string]string{"storecrypt:instance-arn": instA, "storecrypt:volume": "v"}, GrantTokens: tokens}}, grantee, "", nil)
		if err != nil {
			t.Fatal(err)
		}
		d, err := KMSDecision(policy, nil, w.Keys[KeyARN].Grants, reqs[0])
		if err != nil {
			t.Fatal(err)
		}
		return d
	}
	for _, step := range []struct {
		name   string
		do     func() error
		tokens func() []string
		want   Decision
	}{
		{"before any grant", func() error { return nil }, nil, ImplicitDeny},
		{"created, without its token", func() error {
			out, err := c.CreateGrant(ctx, grantInput("i-0a"))
			if err == nil {
				token, id = *out.GrantToken, *out.GrantId
			}
			return err
		}, nil, ImplicitDeny},
		{"created, with its token", func() error { return nil }, func() []string { return []string{token} }, Allow},
		{"created, with another token", func() error { return nil }, func() []string { return []string{token + "x"} }, ImplicitDeny},
		{"settled, without its token", func() error { w.SettleGrants(); return nil }, nil, Allow},
		{"revoked, not yet settled", func() error {
			_, err := c.RevokeGrant(ctx, &kms.RevokeGrantInput{KeyId: aws.String(KeyARN), GrantId: aws.String(id)})
			return err
		}, nil, Allow},
		{"revoked and settled", func() error { w.SettleGrants(); return nil }, nil, ImplicitDeny},
		{"re-created under the same name", func() error {
			out, err := c.CreateGrant(ctx, grantInput("i-0a"))
			if err == nil && *out.GrantId == id {
				err = fmt.Errorf("got the revoked grant's id %s again, want a new grant", id)
			}
			w.SettleGrants()
			return err
		}, nil, Allow},
		{"retired by the retiring principal, then settled", func() error {
			_, err := c.RetireGrant(ctx, &kms.RetireGrantInput{KeyId: aws.String(KeyARN), GrantId: aws.String(w.Keys[KeyARN].Grants[1].Name)})
			if err == nil {
				return fmt.Errorf("retired by the grant's name, want its id")
			}
			_, err = c.RetireGrant(ctx, &kms.RetireGrantInput{KeyId: aws.String(KeyARN), GrantId: aws.String(w.Keys[KeyARN].Grants[1].ID)})
			w.SettleGrants()
			return err
		}, nil, ImplicitDeny},
	} {
		if err := step.do(); err != nil {
			t.Fatalf("%s: %v", step.name, err)
		}
		var tokens []string
		if step.tokens != nil {
			tokens = step.tokens()
		}
		if got := decide(tokens...); got != step.want {
			t.Errorf("%s: got %s, want %s", step.name, got, step.want)
		}
	}
}

// TestRetireGrant: "This operation can be called by the retiring principal for a grant,
// by the grantee principal if the grant allows the RetireGrant operation, and by the
// Amazon Web Services account in which the grant is created."
func TestRetireGrant(t *testing.T) {
	for _, tc := range []struct {
		name, caller string
		ops          []kmstypes.GrantOperation
		byToken      bool
		code         string
	}{
		{"the retiring principal", retiring, nil, false, ""},
		{"the retiring principal, by token", retiring, nil, true, ""},
		{"the account", "arn:aws:iam::111122223333:root", nil, false, ""},
		{"the grantee, the grant without RetireGrant", grantee, nil, false, "AccessDeniedException"},
		{"the grantee, the grant with RetireGrant", grantee, []kmstypes.GrantOperation{"RetireGrant"}, false, ""},
		{"another role", NotKeyUser, nil, false, "AccessDeniedException"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			w := NewAccount(t)
			c := kms.NewFromConfig(w.Config())
			in := grantInput("i-0a")
			in.Operations = append(in.Operations, tc.ops...)
			out, err := c.CreateGrant(context.Background(), in)
			if err != nil {
				t.Fatal(err)
			}
			w.Caller = tc.caller
			retire := &kms.RetireGrantInput{KeyId: aws.String(KeyARN), GrantId: out.GrantId}
			if tc.byToken {
				retire = &kms.RetireGrantInput{GrantToken: out.GrantToken}
			}
			_, err = c.RetireGrant(context.Background(), retire)
			if got := errorCode(err); got != tc.code || tc.code == "" && err != nil {
				t.Errorf("got %q (%v), want %q", got, err, tc.code)
			}
		})
	}
}

// TestListGrantsFilters: ListGrants' GrantId and GranteePrincipal filters, the grant's
// Name and RetiringPrincipal in each entry, and a revoked grant gone from the list.
func TestListGrantsFilters(t *testing.T) {
	w := NewAccount(t)
	c := kms.NewFromConfig(w.Config())
	ctx := context.Background()
	a, err := c.CreateGrant(ctx, grantInput("i-0a"))
	if err != nil {
		t.Fatal(err)
	}
	other := grantInput("i-0b")
	other.GranteePrincipal = aws.String(IdentityUser)
	b, err := c.CreateGrant(ctx, other)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.RevokeGrant(ctx, &kms.RevokeGrantInput{KeyId: aws.String(KeyARN), GrantId: b.GrantId}); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		in   kms.ListGrantsInput
		want []string // names
	}{
		{"all", kms.ListGrantsInput{}, []string{"", "i-0a"}},
		{"by id", kms.ListGrantsInput{GrantId: a.GrantId}, []string{"i-0a"}},
		{"by the revoked grant's id", kms.ListGrantsInput{GrantId: b.GrantId}, nil},
		{"by grantee", kms.ListGrantsInput{GranteePrincipal: aws.String(GrantUser)}, []string{""}},
		{"by the revoked grant's grantee", kms.ListGrantsInput{GranteePrincipal: aws.String(IdentityUser)}, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			in := tc.in
			in.KeyId = aws.String(KeyARN)
			out, err := c.ListGrants(ctx, &in)
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, g := range out.Grants {
				got = append(got, aws.ToString(g.Name))
				if aws.ToString(g.Name) == "i-0a" && aws.ToString(g.RetiringPrincipal) != retiring {
					t.Errorf("retiring principal: got %q, want %q", aws.ToString(g.RetiringPrincipal), retiring)
				}
			}
			slices.Sort(got)
			if !slices.Equal(got, tc.want) {
				t.Errorf("got %q, want %q", got, tc.want)
			}
		})
	}
}

// TestCreateGrantAuthz: the condition keys KMS sets for CreateGrant.
func TestCreateGrantAuthz(t *testing.T) {
	w := NewAccount(t)
	in := grantInput("i-0a")
	reqs, err := w.Authz(Call{Service: "KMS", Operation: "CreateGrant", Params: in}, retiring, "", nil)
	if err != nil || len(reqs) != 1 {
		t.Fatalf("got %d requests (%v), want 1", len(reqs), err)
	}
	for key, want := range map[string][]string{
		"kms:GrantOperations":                           {"Decrypt"},
		"kms:GranteePrincipal":                          {grantee},
		"kms:RetiringPrincipal":                         {retiring},
		"kms:GrantConstraintType":                       {"EncryptionContextSubset"},
		"kms:EncryptionContext:storecrypt:instance-arn": {instA},
		"kms:EncryptionContextKeys":                     {"storecrypt:instance-arn"},
	} {
		if got := reqs[0].Context[key]; !slices.Equal(got, want) {
			t.Errorf("%s: got %q, want %q", key, got, want)
		}
	}
}

// TestListGrantsPages: ListGrants pages by NextMarker while Truncated, "Limit" grants a
// page; every grant not revoked comes once, in order, and the last page says it is.
func TestListGrantsPages(t *testing.T) {
	w := NewAccount(t)
	c := kms.NewFromConfig(w.Config())
	ctx := context.Background()
	var want []string
	for i := range 7 {
		name := fmt.Sprintf("i-%02d", i)
		g, err := c.CreateGrant(ctx, grantInput(name))
		if err != nil {
			t.Fatal(err)
		}
		if i == 3 || i == 6 { // the last grant revoked too: no empty last page
			if _, err := c.RevokeGrant(ctx, &kms.RevokeGrantInput{KeyId: aws.String(KeyARN), GrantId: g.GrantId}); err != nil {
				t.Fatal(err)
			}
			continue
		}
		want = append(want, name)
	}
	var got []string
	pages := 0
	in := &kms.ListGrantsInput{KeyId: aws.String(KeyARN), Limit: aws.Int32(2)}
	for {
		out, err := c.ListGrants(ctx, in)
		if err != nil {
			t.Fatal(err)
		}
		pages++
		for _, g := range out.Grants {
			if n := aws.ToString(g.Name); n != "" { // the account's own grant has none
				got = append(got, n)
			}
		}
		if !out.Truncated {
			break
		}
		in.Marker = out.NextMarker
	}
	// The account's own grant and five of the seven: six, two a page.
	if !slices.Equal(got, want) || pages != 3 {
		t.Errorf("got %v in %d pages, want %v in 3", got, pages, want)
	}
}
