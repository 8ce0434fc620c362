package iamsim

import (
	"context"
	"fmt"
	"strings"
	"testing"
)

const (
	key      = "arn:aws:kms:us-east-1:111122223333:key/0f1e2d3c-4b5a-4978-8695-a4b3c2d1e0f9"
	role     = "arn:aws:iam::111122223333:role/app"
	session  = "arn:aws:sts::111122223333:assumed-role/app/i-0a000000000000001"
	instance = "arn:aws:ec2:us-east-1:111122223333:instance/i-0a000000000000001"
)

// keyPolicy allows the account's root everything (so IAM policies count) and the role
// Decrypt only for ciphertexts whose "instance" context names the calling instance and
// whose "app" context is billing.
const keyPolicy = `{"Version":"2012-10-17","Statement":[
 {"Sid":"Account","Effect":"Allow","Principal":{"AWS":"arn:aws:iam::111122223333:root"},"Action":"kms:*","Resource":"*"},
 {"Sid":"Bound","Effect":"Allow","Principal":{"AWS":"arn:aws:iam::111122223333:role/app"},"Action":"kms:Decrypt","Resource":"*",
  "Condition":{"StringEquals":{"kms:EncryptionContext:instance":"${ec2:SourceInstanceARN}","kms:EncryptionContext:app":"billing"}}},
 {"Sid":"NoStoreCryptContexts","Effect":"Deny","Principal":"*","Action":"kms:Decrypt","Resource":"*",
  "Condition":{"ForAnyValue:StringLike":{"kms:EncryptionContextKeys":"storecrypt:*"}}}]}`

const (
	allowPutRolePolicy = `{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"iam:PutRolePolicy","Resource":"*"}]}`
	allowDecrypt       = `{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"kms:Decrypt","Resource":"*"}]}`
	denyDecrypt        = `{"Version":"2012-10-17","Statement":[{"Effect":"Deny","Action":"kms:Decrypt","Resource":"*"}]}`
	scpDenyRoles       = `{"Version":"2012-10-17","Statement":[{"Effect":"Deny","Action":"iam:PutRolePolicy","Resource":"arn:*:iam::*:role/protected/*"}]}`
)

// onInstance is the role's session on the instance with the given encryption context.
func onInstance(kv ...string) map[string][]string {
	c := map[string][]string{"aws:PrincipalArn": {role}, "ec2:SourceInstanceARN": {instance}}
	var keys []string
	for i := 0; i < len(kv); i += 2 {
		c["kms:EncryptionContext:"+kv[i]] = []string{kv[i+1]}
		keys = append(keys, kv[i])
	}
	c["kms:EncryptionContextKeys"] = keys
	return c
}

// TestEvaluate: each case would get another verdict if the bridge dropped or reshaped
// one input (an identity policy, the SCP, the FullAWSAccess beside it, a context key,
// the key policy, a multivalued key).
func TestEvaluate(t *testing.T) {
	decrypt := func(ctx map[string][]string, identity ...string) Request {
		return Request{Principal: session, Action: "kms:Decrypt", Resource: key, Context: ctx, IdentityPolicies: identity, ResourcePolicy: keyPolicy}
	}
	putRolePolicy := func(target string, scps ...string) Request {
		return Request{Principal: session, Action: "iam:PutRolePolicy", Resource: "arn:aws:iam::111122223333:role/" + target,
			Context: map[string][]string{"aws:PrincipalArn": {role}}, IdentityPolicies: []string{allowPutRolePolicy}, SCPs: scps}
	}
	noInstance := onInstance("instance", instance, "app", "billing")
	delete(noInstance, "ec2:SourceInstanceARN")
	type testCase struct {
		name string
		req  Request
		want Verdict
	}
	cases := []testCase{
		{"an identity allow through the account's delegation", decrypt(onInstance("app", "payroll"), allowDecrypt), Allowed},
		{"an explicit deny beside the allow wins", decrypt(onInstance("app", "payroll"), allowDecrypt, denyDecrypt), ExplicitlyDenied},
		{"the key policy's condition on the context and a variable holds", decrypt(onInstance("instance", instance, "app", "billing")), Allowed},
		{"a context naming another instance", decrypt(onInstance("instance", "arn:aws:ec2:us-east-1:111122223333:instance/i-0b000000000000002", "app", "billing")), ImplicitlyDenied},
		{"no ec2:SourceInstanceARN: the variable has no value", decrypt(noInstance), ImplicitlyDenied},
		{"kms:EncryptionContext:app differs", decrypt(onInstance("instance", instance, "app", "payroll")), ImplicitlyDenied},
		{"a multivalued key matches one of its values", decrypt(onInstance("instance", instance, "app", "billing", "storecrypt:volume", "v"), allowDecrypt), ExplicitlyDenied},
		{"no SCP", putRolePolicy("protected/x"), Allowed},
		{"an SCP's deny", putRolePolicy("protected/x", scpDenyRoles), ExplicitlyDenied},
		{"an SCP that denies something else leaves FullAWSAccess", putRolePolicy("other", scpDenyRoles), Allowed},
		{"nothing allows it", Request{Principal: session, Action: "kms:PutKeyPolicy", Resource: key, Context: map[string][]string{"aws:PrincipalArn": {role}}}, ImplicitlyDenied},
	}
	reqs := make([]Request, len(cases))
	for i, tc := range cases {
		reqs[i] = tc.req
	}
	got, err := Evaluate(context.Background(), reqs)
	if err != nil {
		t.Fatal(err)
	}
	for i, tc := range cases {
		if got[i] != tc.want {
			t.Errorf("%s: got %s, want %s", tc.name, got[i], tc.want)
		}
	}
}

// TestEvaluateRefusesWhatItCannotRead: a request the simulator would misread fails the
// batch, naming the request, instead of coming back denied.
func TestEvaluateRefusesWhatItCannotRead(t *testing.T) {
	good := Request{Principal: session, Action: "kms:PutKeyPolicy", Resource: key, ResourcePolicy: keyPolicy}
	reqs, names, wants := []Request{good}, []string{}, []string{}
	for _, tc := range []struct {
		name string
		bad  func(*Request)
		want string
	}{
		{"an unknown action", func(r *Request) { r.Action = "kms:PutKeyPolcy" }, "unknown"},
		{"an invalid policy", func(r *Request) {
			r.IdentityPolicies = []string{`{"Statement":[{"Effect":"Maybe","Action":"*","Resource":"*"}]}`}
		}, "identity policy 0"},
		{"a policy that is not JSON", func(r *Request) { r.ResourcePolicy = "{" }, "resource policy"},
		{"an invalid SCP", func(r *Request) {
			r.SCPs = []string{`{"Statement":[{"Effect":"Deny","Principal":"*","Action":"*","Resource":"*"}]}`}
		}, "SCP 0"},
		{"an unknown condition key", func(r *Request) { r.Context = map[string][]string{"ec2:SourceInstanceArm": {instance}} }, "ec2:SourceInstanceArm"},
		{"two values for a single-valued key", func(r *Request) { r.Context = map[string][]string{"aws:PrincipalArn": {role, role}} }, "single-valued"},
	} {
		bad := good
		tc.bad(&bad)
		reqs = append(reqs, bad)
		names, wants = append(names, tc.name), append(wants, tc.want)
	}
	_, err := Evaluate(context.Background(), reqs)
	if err == nil {
		t.Fatal("got no error, want one per bad request")
	}
	lines := strings.Split(err.Error(), "\n")
	if len(lines) != len(wants) {
		t.Fatalf("got %d lines of errors, want %d: %v", len(lines), len(wants), err)
	}
	for i, want := range wants {
		// The good request is number 0.
		if !strings.Contains(lines[i], fmt.Sprintf("request %d ", i+1)) || !strings.Contains(lines[i], want) {
			t.Errorf("%s: got %q, want it to name request %d and %q", names[i], lines[i], i+1, want)
		}
	}
}
