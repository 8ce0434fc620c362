package fakeaws

import (
	"fmt"
	"testing"
)

// TestEvaluate: the fake's own reading of IAM's evaluation logic, checked against the
// documentation's rules case by case (the product's evaluator has its own table in
// package policy; neither is checked against the other).
func TestEvaluate(t *testing.T) {
	const role = "arn:aws:iam::111122223333:role/app"
	req := AuthzRequest{Principal: role, Session: "arn:aws:sts::111122223333:assumed-role/app/i-1", Action: "kms:Decrypt", Resource: "arn:aws:kms:us-east-1:111122223333:key/k",
		Context: map[string][]string{"kms:EncryptionContextKeys": {"a", "b"}, "kms:EncryptionContext:a": {"x"}, "aws:MultiFactorAuthPresent": {"true"}}}
	doc := func(stmts string) string { return `{"Version":"2012-10-17","Statement":[` + stmts + `]}` }
	st := func(effect, principal, cond string) string {
		s := fmt.Sprintf(`{"Effect":%q,"Action":"kms:*","Resource":"*"`, effect)
		if principal != "" {
			s += `,"Principal":` + principal
		}
		if cond != "" {
			s += `,"Condition":` + cond
		}
		return s + "}"
	}
	for _, tc := range []struct {
		name     string
		policy   string
		resource bool
		want     Decision
	}{
		{"identity allow", doc(st("Allow", "", "")), false, Allow},
		{"identity: nothing applies", doc(`{"Effect":"Allow","Action":"s3:*","Resource":"*"}`), false, ImplicitDeny},
		{"explicit deny wins", doc(st("Allow", "", "") + "," + st("Deny", "", "")), false, ExplicitDeny},
		{"key policy: the role", doc(st("Allow", `{"AWS":"`+role+`"}`, "")), true, Allow},
		{"key policy: the role beats the account's delegation", doc(st("Allow", `{"AWS":"arn:aws:iam::111122223333:root"}`, "") + "," + st("Allow", `{"AWS":"`+role+`"}`, "")), true, Allow},
		{"key policy: the account root delegates", doc(st("Allow", `{"AWS":"arn:aws:iam::111122223333:root"}`, "")), true, Delegated},
		{"key policy: the bare account id delegates", doc(st("Allow", `{"AWS":"111122223333"}`, "")), true, Delegated},
		{"key policy: another role", doc(st("Allow", `{"AWS":"arn:aws:iam::111122223333:role/other"}`, "")), true, ImplicitDeny},
		{"key policy: the session", doc(st("Allow", `{"AWS":"arn:aws:sts::111122223333:assumed-role/app/i-1"}`, "")), true, Allow},
		{"NotPrincipal deny naming account, role and session spares it", doc(st("Allow", `{"AWS":"`+role+`"}`, "") +
			`,{"Effect":"Deny","NotPrincipal":{"AWS":["arn:aws:iam::111122223333:root","` + role + `","arn:aws:sts::111122223333:assumed-role/app/i-1"]},"Action":"kms:*","Resource":"*"}`), true, Allow},
		{"NotPrincipal deny without the account denies", doc(st("Allow", `{"AWS":"`+role+`"}`, "") +
			`,{"Effect":"Deny","NotPrincipal":{"AWS":["` + role + `","arn:aws:sts::111122223333:assumed-role/app/i-1"]},"Action":"kms:*","Resource":"*"}`), true, ExplicitDeny},
		{"condition holds", doc(st("Allow", "", `{"StringEquals":{"kms:EncryptionContext:a":"x"}}`)), false, Allow},
		{"condition key missing", doc(st("Allow", "", `{"StringEquals":{"kms:EncryptionContext:c":"x"}}`)), false, ImplicitDeny},
		{"negated, key missing: true", doc(st("Allow", "", `{"StringNotEquals":{"kms:ViaService":"s3.us-east-1.amazonaws.com"}}`)), false, Allow},
		{"IfExists, key missing: true", doc(st("Allow", "", `{"StringEqualsIfExists":{"kms:ViaService":"x"}}`)), false, Allow},
		{"ForAllValues: every key listed", doc(st("Allow", "", `{"ForAllValues:StringEquals":{"kms:EncryptionContextKeys":["a","b","c"]}}`)), false, Allow},
		{"ForAllValues: a key not listed", doc(st("Allow", "", `{"ForAllValues:StringEquals":{"kms:EncryptionContextKeys":["a"]}}`)), false, ImplicitDeny},
		{"ForAnyValue: one key listed", doc(st("Allow", "", `{"ForAnyValue:StringEquals":{"kms:EncryptionContextKeys":["b"]}}`)), false, Allow},
		{"Null false on a present key", doc(st("Allow", "", `{"Null":{"kms:EncryptionContextKeys":"false"}}`)), false, Allow},
		{"Bool MFA", doc(st("Allow", "", `{"Bool":{"aws:MultiFactorAuthPresent":"true"}}`)), false, Allow},
		{"a variable absent: no match", doc(st("Allow", "", `{"StringEquals":{"kms:EncryptionContext:a":"${aws:username}"}}`)), false, ImplicitDeny},
		// "Policy variables with no value": "Inverted condition operators like
		// StringNotEquals or StringNotLike do match against a null value".
		{"a variable absent, negated: the deny applies", doc(st("Allow", "", "") + "," +
			st("Deny", "", `{"StringNotEquals":{"kms:EncryptionContext:a":"${ec2:SourceInstanceARN}"}}`)), false, ExplicitDeny},
		{"a variable absent, StringNotLike: matches", doc(st("Allow", "", `{"StringNotLike":{"kms:EncryptionContext:a":"${ec2:SourceInstanceARN}*"}}`)), false, Allow},
		{"ArnLike per part", doc(st("Allow", "", `{"ArnLike":{"aws:PrincipalArn":"arn:aws:iam::*:role/a*"}}`)), false, Allow},
		{"ArnLike: * does not span a colon", doc(st("Allow", "", `{"ArnLike":{"aws:PrincipalArn":"arn:aws:iam::*role/app"}}`)), false, ImplicitDeny},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := req
			r.Context = map[string][]string{}
			for k, v := range req.Context {
				r.Context[k] = v
			}
			r.Context["aws:PrincipalArn"] = []string{role}
			got, _, err := Evaluate(tc.policy, tc.resource, r)
			if err != nil {
				t.Fatal(err)
			}
			if got != tc.want {
				t.Errorf("got %s, want %s", got, tc.want)
			}
		})
	}
	if _, _, err := Evaluate(doc(st("Allow", "", `{"IpAddress":{"aws:SourceIp":"10.0.0.0/8"}}`)), false, req); err == nil {
		t.Error("an operator the fake does not implement was accepted")
	}
}

// TestKMSDecision: "Unless the key policy explicitly allows it, you cannot use IAM
// policies to allow access to a KMS key", grants allow too, and a deny anywhere wins.
func TestKMSDecision(t *testing.T) {
	const role = "arn:aws:iam::111122223333:role/app"
	req := AuthzRequest{Principal: role, Action: "kms:Decrypt", Resource: "k", Context: map[string][]string{"kms:EncryptionContext:i": {"a"}}}
	root := `{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"AWS":"arn:aws:iam::111122223333:root"},"Action":"kms:*","Resource":"*"}]}`
	silent := `{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"AWS":"arn:aws:iam::111122223333:role/admin"},"Action":"kms:*","Resource":"*"}]}`
	allow := Allows("kms:Decrypt")
	deny := `{"Version":"2012-10-17","Statement":[{"Effect":"Deny","Action":"kms:Decrypt","Resource":"*"}]}`
	for _, tc := range []struct {
		name     string
		key      string
		identity []string
		grants   []Grant
		want     Decision
	}{
		{"delegated, identity allows", root, []string{allow}, nil, Allow},
		{"delegated, identity silent", root, nil, nil, ImplicitDeny},
		{"not delegated, identity allows", silent, []string{allow}, nil, ImplicitDeny},
		{"identity deny beats delegation", root, []string{allow, deny}, nil, ExplicitDeny},
		{"a grant", silent, nil, []Grant{{Grantee: role, Operations: []string{"Decrypt"}}}, Allow},
		{"a grant for another operation", silent, nil, []Grant{{Grantee: role, Operations: []string{"Encrypt"}}}, ImplicitDeny},
		{"a grant whose context subset holds", silent, nil, []Grant{{Grantee: role, Operations: []string{"Decrypt"}, ContextSubset: map[string]string{"i": "a"}}}, Allow},
		{"a grant whose context subset fails", silent, nil, []Grant{{Grantee: role, Operations: []string{"Decrypt"}, ContextSubset: map[string]string{"i": "b"}}}, ImplicitDeny},
		{"a grant constraint's key in another case", silent, nil, []Grant{{Grantee: role, Operations: []string{"Decrypt"}, ContextSubset: map[string]string{"I": "a"}}}, Allow},
		{"a grant constraint's value in another case", silent, nil, []Grant{{Grantee: role, Operations: []string{"Decrypt"}, ContextEquals: map[string]string{"i": "A"}}}, ImplicitDeny},
		{"a grant whose exact context has more", silent, nil, []Grant{{Grantee: role, Operations: []string{"Decrypt"}, ContextEquals: map[string]string{"i": "a", "j": "b"}}}, ImplicitDeny},
		{"identity deny beats a grant", silent, []string{deny}, []Grant{{Grantee: role, Operations: []string{"Decrypt"}}}, ExplicitDeny},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := KMSDecision(tc.key, tc.identity, tc.grants, req)
			if err != nil {
				t.Fatal(err)
			}
			if got != tc.want {
				t.Errorf("got %s, want %s", got, tc.want)
			}
		})
	}
}

func TestTagPolicyAllows(t *testing.T) {
	const policy = `{"tags": {
		"storecrypt:status": {"tag_key": {"@@assign": "storecrypt:status"}, "tag_value": {"@@assign": ["encrypted", "fail*"]}, "enforced_for": {"@@assign": ["ec2:instance"]}},
		"team": {"tag_key": {"@@assign": "Team"}}}}`
	for _, tc := range []struct {
		name     string
		resource string
		tags     map[string]string
		allowed  bool
	}{
		{"a listed value", "ec2:instance", map[string]string{"storecrypt:status": "encrypted"}, true},
		{"a value under a trailing wildcard", "ec2:instance", map[string]string{"storecrypt:status": "failed"}, true},
		{"a value not listed", "ec2:instance", map[string]string{"storecrypt:status": "done"}, false},
		{"values compare exactly", "ec2:instance", map[string]string{"storecrypt:status": "Encrypted"}, false},
		{"the key capitalized otherwise", "ec2:instance", map[string]string{"StoreCrypt:Status": "encrypted"}, false},
		{"keys the policy does not name", "ec2:instance", map[string]string{"Name": "web"}, true},
		{"a resource type not enforced", "ec2:volume", map[string]string{"storecrypt:status": "done"}, true},
		{"a policy that is not enforced", "ec2:instance", map[string]string{"team": "x"}, true},
	} {
		err := TagPolicyAllows(policy, tc.resource, tc.tags)
		if (err == nil) != tc.allowed {
			t.Errorf("%s: %v, want allowed %v", tc.name, err, tc.allowed)
		}
	}
}
