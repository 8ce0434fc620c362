package policy

import (
	"fmt"
	"strings"
	"testing"
)

const (
	role    = "arn:aws:iam::111122223333:role/storecrypt-instance"
	session = "arn:aws:sts::111122223333:assumed-role/storecrypt-instance/i-0abc"
	key     = "arn:aws:kms:us-east-1:111122223333:key/11111111-2222-4333-8444-555555555555"
	root    = "arn:aws:iam::111122223333:root"
)

// pathRoles is the pattern of the account's roles under the path /storecrypt/instances/.
const pathRoles = "arn:aws:iam::111122223333:role/storecrypt/instances/*"

// underPath makes the caller the role at path and name (a role's ARN, and its sessions'
// aws:PrincipalArn, carry its path).
func underPath(pathAndName string) func(*Request) {
	return func(r *Request) {
		r.Caller = "arn:aws:iam::111122223333:role" + pathAndName
		r.Context["aws:PrincipalArn"] = []string{r.Caller}
	}
}

// agent is the agent's GenerateDataKey as KMS sees it.
func agent() Request {
	return Request{
		Caller: role, Session: session, Action: "kms:GenerateDataKey", Resource: key,
		Context: map[string][]string{
			"kms:EncryptionContextKeys":                     {"storecrypt:instance-id", "storecrypt:volume"},
			"kms:EncryptionContext:storecrypt:instance-id":  {"i-0abc"},
			"kms:EncryptionContext:storecrypt:volume":       {"uuid-1"},
			"ec2:SourceInstanceARN":                         {"arn:aws:ec2:us-east-1:111122223333:instance/i-0abc"},
			"aws:PrincipalArn":                              {role},
			"aws:SecureTransport":                           {"true"},
			"kms:CallerAccount":                             {"111122223333"},
			"kms:EncryptionContext:storecrypt:instance-arn": {"arn:aws:ec2:us-east-1:111122223333:instance/i-0abc"},
		},
		Absent: []string{"kms:ViaService", "aws:username"},
	}
}

// doc wraps statements in a 2012-10-17 policy.
func doc(statements ...string) string {
	return `{"Version":"2012-10-17","Statement":[` + strings.Join(statements, ",") + `]}`
}

func allow(principal, cond string) string {
	return stmt("Allow", principal, cond)
}

func stmt(effect, principal, cond string) string {
	s := fmt.Sprintf(`{"Sid":"S","Effect":%q,"Principal":%s,"Action":["kms:GenerateDataKey","kms:Decrypt"],"Resource":"*"`, effect, principal)
	if cond != "" {
		s += `,"Condition":` + cond
	}
	return s + "}"
}

func aws(arn string) string { return fmt.Sprintf(`{"AWS":%q}`, arn) }

// TestEvaluate: each expectation comes from AWS's documentation, named per case, not from
// running this code: IAM User Guide "Policy evaluation logic" (eval), "Condition
// operators" (ops), "Conditions with multiple context keys or values" (multi),
// "Single-valued vs. multivalued context keys" (sets), "Variables and tags" (vars),
// "Principal" (principal), "NotAction"/"NotResource"/"NotPrincipal"; AWS KMS Developer
// Guide "Key policies"/"Default key policy" (kms-default) and "AWS KMS condition keys"
// (kms-cond).
func TestEvaluate(t *testing.T) {
	cases := []struct {
		name, policy string
		edit         func(*Request)
		want         Decision
	}{
		// Principals.
		{"role named: allowed (principal)", doc(allow(aws(role), "")), nil, Allowed},
		{"session named: allowed (principal: assumed-role session principals)", doc(allow(aws(session), "")), nil, Allowed},
		{"account root: delegated to IAM (kms-default)", doc(allow(aws(root), "")), nil, Delegated},
		{"bare account id = root (principal: 'The account ARN and the shortened account ID behave the same way')", doc(allow(aws("111122223333"), "")), nil, Delegated},
		{"another account's root: not applicable", doc(allow(aws("arn:aws:iam::444455556666:root"), "")), nil, NotApplicable},
		{"another role: not applicable", doc(allow(aws("arn:aws:iam::111122223333:role/web"), "")), nil, NotApplicable},
		{"wildcard principal: allowed (principal)", doc(allow(`"*"`, "")), nil, Allowed},
		{`{"AWS":"*"} = "*" (principal)`, doc(allow(aws("*"), "")), nil, Allowed},
		{"aws-cn root in an aws-cn request: delegated", doc(allow(aws("arn:aws-cn:iam::111122223333:root"), "")), func(r *Request) {
			r.Caller = "arn:aws-cn:iam::111122223333:role/storecrypt-instance"
		}, Delegated},
		{"aws-us-gov root in an aws-us-gov request: delegated", doc(allow(aws("arn:aws-us-gov:iam::111122223333:root"), "")), func(r *Request) {
			r.Caller = "arn:aws-us-gov:iam::111122223333:role/storecrypt-instance"
		}, Delegated},
		{"aws root for an aws-cn caller: not applicable (partitions are separate)", doc(allow(aws(root), "")), func(r *Request) {
			r.Caller = "arn:aws-cn:iam::111122223333:role/storecrypt-instance"
		}, NotApplicable},
		// Effects.
		{"explicit deny beats an allow (eval: 'An explicit deny in any policy overrides any allows')", doc(allow(aws(role), ""), stmt("Deny", aws(role), "")), nil, Denied},
		{"deny for the account root applies to its roles", doc(allow(aws(role), ""), stmt("Deny", aws(root), "")), nil, Denied},
		{"direct allow beats delegation", doc(allow(aws(root), ""), allow(aws(role), "")), nil, Allowed},
		{"NotPrincipal deny naming another role denies this one (NotPrincipal)",
			doc(allow(aws(role), ""), `{"Effect":"Deny","NotPrincipal":{"AWS":"arn:aws:iam::111122223333:role/admin"},"Action":"kms:*","Resource":"*"}`), nil, Denied},
		{"NotPrincipal deny naming the account, role and session spares it (NotPrincipal: the account ARN must be included too)",
			doc(allow(aws(role), ""), `{"Effect":"Deny","NotPrincipal":{"AWS":["`+root+`","`+role+`","`+session+`"]},"Action":"kms:*","Resource":"*"}`), nil, Allowed},
		{"NotPrincipal deny naming only the role and session still denies (NotPrincipal)",
			doc(allow(aws(role), ""), `{"Effect":"Deny","NotPrincipal":{"AWS":["`+role+`","`+session+`"]},"Action":"kms:*","Resource":"*"}`), nil, Denied},
		// Actions and resources.
		{"kms:* covers GenerateDataKey", doc(`{"Effect":"Allow","Principal":` + aws(role) + `,"Action":"kms:*","Resource":"*"}`), nil, Allowed},
		{"actions are case-insensitive (Action: 'The prefix and the action name are case insensitive')", doc(`{"Effect":"Allow","Principal":` + aws(role) + `,"Action":"KMS:generatedatakey","Resource":"*"}`), nil, Allowed},
		{"? matches one character", doc(`{"Effect":"Allow","Principal":` + aws(role) + `,"Action":"kms:GenerateDataKe?","Resource":"*"}`), nil, Allowed},
		{"other action: not applicable", doc(`{"Effect":"Allow","Principal":` + aws(role) + `,"Action":"kms:Encrypt","Resource":"*"}`), nil, NotApplicable},
		{"NotAction allow covers what it does not list (NotAction)", doc(`{"Effect":"Allow","Principal":` + aws(role) + `,"NotAction":"kms:ScheduleKeyDeletion","Resource":"*"}`), nil, Allowed},
		{"NotAction deny spares what it lists", doc(allow(aws(role), ""), `{"Effect":"Deny","Principal":`+aws(role)+`,"NotAction":["kms:GenerateDataKey","kms:Decrypt"],"Resource":"*"}`), nil, Allowed},
		{"NotResource deny spares this key (NotResource)", doc(allow(aws(role), ""), `{"Effect":"Deny","Principal":`+aws(role)+`,"Action":"kms:*","NotResource":"`+key+`"}`), nil, Allowed},
		{"resource wildcard in the middle", doc(`{"Effect":"Allow","Principal":` + aws(role) + `,"Action":"kms:*","Resource":"arn:aws:kms:*:111122223333:key/*"}`), nil, Allowed},
		// Conditions.
		{"StringEquals on the context value holds", doc(allow(aws(role), `{"StringEquals":{"kms:EncryptionContext:storecrypt:instance-id":"i-0abc"}}`)), nil, Allowed},
		{"StringEquals is case-sensitive (ops)", doc(allow(aws(role), `{"StringEquals":{"kms:EncryptionContext:storecrypt:instance-id":"I-0ABC"}}`)), nil, NotApplicable},
		{"StringEqualsIgnoreCase ignores case (ops)", doc(allow(aws(role), `{"StringEqualsIgnoreCase":{"kms:EncryptionContext:storecrypt:instance-id":"I-0ABC"}}`)), nil, Allowed},
		{"condition key names are case-insensitive (Condition: 'Context key names are not case-sensitive')", doc(allow(aws(role), `{"StringEquals":{"KMS:encryptioncontext:storecrypt:instance-id":"i-0abc"}}`)), nil, Allowed},
		{"several values: OR (multi)", doc(allow(aws(role), `{"StringEquals":{"kms:EncryptionContext:storecrypt:instance-id":["i-1","i-0abc"]}}`)), nil, Allowed},
		{"several keys: AND (multi)", doc(allow(aws(role), `{"StringEquals":{"kms:EncryptionContext:storecrypt:instance-id":"i-0abc","kms:CallerAccount":"444455556666"}}`)), nil, NotApplicable},
		{"several operators: AND (multi)", doc(allow(aws(role), `{"StringEquals":{"kms:CallerAccount":"111122223333"},"Bool":{"aws:SecureTransport":"false"}}`)), nil, NotApplicable},
		{"StringNotEquals with several values: NOR (multi)", doc(allow(aws(role), `{"StringNotEquals":{"kms:EncryptionContext:storecrypt:instance-id":["i-1","i-0abc"]}}`)), nil, NotApplicable},
		{"missing key: the condition is false (ops)", doc(allow(aws(role), `{"StringEquals":{"kms:EncryptionContext:other":"x"}}`)), func(r *Request) { r.Absent = append(r.Absent, "kms:EncryptionContext:*") }, NotApplicable},
		{"missing key with a negated operator: true (ops)", doc(allow(aws(role), `{"StringNotEquals":{"kms:ViaService":"s3.us-east-1.amazonaws.com"}}`)), nil, Allowed},
		{"IfExists on a missing key: true (ops)", doc(allow(aws(role), `{"StringEqualsIfExists":{"kms:ViaService":"ec2.us-east-1.amazonaws.com"}}`)), nil, Allowed},
		{"IfExists on a present key compares (ops)", doc(allow(aws(role), `{"StringEqualsIfExists":{"kms:CallerAccount":"444455556666"}}`)), nil, NotApplicable},
		{"Null false on a present key: true (ops)", doc(allow(aws(role), `{"Null":{"kms:EncryptionContextKeys":"false"}}`)), nil, Allowed},
		{"Null true on a present key: false (ops)", doc(allow(aws(role), `{"Null":{"kms:EncryptionContextKeys":"true"}}`)), nil, NotApplicable},
		{"Null false with no context: false (kms-cond: 'only verifies that the encryption context exists')", doc(allow(aws(role), `{"Null":{"kms:EncryptionContextKeys":"false"}}`)), noContext, NotApplicable},
		{"Bool true as a JSON boolean (ops)", doc(allow(aws(role), `{"Bool":{"aws:SecureTransport":true}}`)), nil, Allowed},
		{"ForAllValues: every key listed (sets)", doc(allow(aws(role), `{"ForAllValues:StringEquals":{"kms:EncryptionContextKeys":["storecrypt:instance-id","storecrypt:volume"]}}`)), nil, Allowed},
		{"ForAllValues: an unlisted key fails (sets)", doc(allow(aws(role), `{"ForAllValues:StringEquals":{"kms:EncryptionContextKeys":["storecrypt:instance-id"]}}`)), nil, NotApplicable},
		{"ForAllValues with no context: true (kms-cond: 'would allow requests with no encryption context')", doc(allow(aws(role), `{"ForAllValues:StringEquals":{"kms:EncryptionContextKeys":["storecrypt:instance-id","storecrypt:volume"]}}`)), noContext, Allowed},
		{"ForAllValues with only one of the keys: true (sets)", doc(allow(aws(role), `{"ForAllValues:StringEquals":{"kms:EncryptionContextKeys":["storecrypt:instance-id","storecrypt:volume"]}}`)), func(r *Request) {
			r.Context["kms:EncryptionContextKeys"] = []string{"storecrypt:instance-id"}
		}, Allowed},
		{"ForAnyValue: one listed key suffices (sets)", doc(allow(aws(role), `{"ForAnyValue:StringEquals":{"kms:EncryptionContextKeys":"storecrypt:volume"}}`)), nil, Allowed},
		{"ForAnyValue with no context: false (kms-cond: 'If the request has no encryption context, the condition is not satisfied')", doc(allow(aws(role), `{"ForAnyValue:StringEquals":{"kms:EncryptionContextKeys":"storecrypt:volume"}}`)), noContext, NotApplicable},
		{"StringLike with * (ops)", doc(allow(aws(role), `{"StringLike":{"kms:EncryptionContext:storecrypt:instance-id":"i-*"}}`)), nil, Allowed},
		{"StringLike * needs the key (ops: missing key is false)", doc(allow(aws(role), `{"StringLike":{"kms:EncryptionContext:storecrypt:volume":"*"}}`)), noContext, NotApplicable},
		{"ArnLike per ARN part: * does not cross a colon (ops)", doc(allow(aws(role), `{"ArnLike":{"aws:PrincipalArn":"arn:aws:iam::*:role/storecrypt-*"}}`)), nil, Allowed},
		{"ArnLike on a role path: a role under it, its path nested (ops: each part may hold wildcards)", doc(allow(`"*"`, `{"ArnLike":{"aws:PrincipalArn":"`+pathRoles+`"}}`)), underPath("/storecrypt/instances/batch/team-a"), Allowed},
		{"ArnLike on a role path: a path that only starts like it", doc(allow(`"*"`, `{"ArnLike":{"aws:PrincipalArn":"`+pathRoles+`"}}`)), underPath("/storecrypt/instancesX/team-a"), NotApplicable},
		{"ArnNotLike deny on a role path spares a role under it", doc(allow(`"*"`, ""), stmt("Deny", `"*"`, `{"ArnNotLike":{"aws:PrincipalArn":["`+role+`","`+pathRoles+`"]}}`)), underPath("/storecrypt/instances/team-a"), Allowed},
		{"ArnNotLike deny on a role path refuses a role elsewhere", doc(allow(`"*"`, ""), stmt("Deny", `"*"`, `{"ArnNotLike":{"aws:PrincipalArn":["`+role+`","`+pathRoles+`"]}}`)), underPath("/teams/team-a"), Denied},
		{"ArnLike with a wrong service part", doc(allow(aws(role), `{"ArnLike":{"aws:PrincipalArn":"arn:aws:sts::*:role/storecrypt-*"}}`)), nil, NotApplicable},
		{"policy variable equal to the caller's instance (vars; kms-cond: variables in kms:EncryptionContext values)",
			doc(allow(aws(role), `{"StringEquals":{"kms:EncryptionContext:storecrypt:instance-arn":"${ec2:SourceInstanceARN}"}}`)), nil, Allowed},
		{"policy variable for another instance",
			doc(allow(aws(role), `{"StringEquals":{"kms:EncryptionContext:storecrypt:instance-arn":"${ec2:SourceInstanceARN}"}}`)), func(r *Request) {
				r.Context["ec2:SourceInstanceARN"] = []string{"arn:aws:ec2:us-east-1:111122223333:instance/i-0other"}
			}, NotApplicable},
		{"policy variable absent: StringEquals does not match (vars)", doc(allow(aws(role), `{"StringEquals":{"kms:CallerAccount":"${aws:username}"}}`)), nil, NotApplicable},
		{"policy variable absent: StringNotEquals matches (vars)", doc(allow(aws(role), `{"StringNotEquals":{"kms:CallerAccount":"${aws:username}"}}`)), nil, Allowed},
		// vars, "Policy variables with no value": "Inverted condition operators like
		// StringNotEquals or StringNotLike do match against a null value"; the key
		// policy's deny of other instances' volumes, for a caller that is no instance.
		{"the owning-instance deny, no ec2:SourceInstanceARN in the request: applies (vars: no value)",
			doc(allow(aws(role), ""), stmt("Deny", `"*"`, `{"StringNotEquals":{"kms:EncryptionContext:storecrypt:instance-arn":"${ec2:SourceInstanceARN}"}}`)), awayFromEC2, Denied},
		{"the own-volume allow, no ec2:SourceInstanceARN in the request: does not apply (vars: no value)",
			doc(allow(aws(role), `{"StringEquals":{"kms:EncryptionContext:storecrypt:instance-arn":"${ec2:SourceInstanceARN}"}}`)), awayFromEC2, NotApplicable},
		{"StringNotLike on an unresolved variable: applies (vars: no value)",
			doc(allow(aws(role), `{"StringNotLike":{"kms:EncryptionContext:storecrypt:instance-arn":"${ec2:SourceInstanceARN}*"}}`)), awayFromEC2, Allowed},
		{"policy variables are literal text without Version 2012-10-17 (vars)",
			`{"Statement":[` + allow(aws(role), `{"StringEquals":{"kms:EncryptionContext:storecrypt:instance-arn":"${ec2:SourceInstanceARN}"}}`) + `]}`, nil, NotApplicable},
		{"conditional deny that holds denies", doc(allow(aws(role), ""), stmt("Deny", `"*"`, `{"Bool":{"aws:SecureTransport":"false"}}`)), func(r *Request) {
			r.Context["aws:SecureTransport"] = []string{"false"}
		}, Denied},
		{"conditional deny that does not hold", doc(allow(aws(role), ""), stmt("Deny", `"*"`, `{"Bool":{"aws:SecureTransport":"false"}}`)), nil, Allowed},
		{"a single Statement object, not a list (grammar)", `{"Version":"2012-10-17","Statement":` + allow(aws(role), "") + `}`, nil, Allowed},
	}
	if len(cases) < 30 {
		t.Fatalf("%d cases; keep at least 30", len(cases))
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			d, err := Parse(tc.policy)
			if err != nil {
				t.Fatal(err)
			}
			req := agent()
			if tc.edit != nil {
				tc.edit(&req)
			}
			got := d.Evaluate(req)
			if got.Decision != tc.want || len(got.Undecided) > 0 {
				t.Errorf("got %v (undecided %v), want %v", got.Decision, got.Undecided, tc.want)
			}
		})
	}
}

// awayFromEC2: the role's session was not created by an EC2 instance, so the request has
// no ec2:SourceInstanceARN.
func awayFromEC2(r *Request) {
	delete(r.Context, "ec2:SourceInstanceARN")
	r.Absent = append(r.Absent, "ec2:SourceInstanceARN")
}

func noContext(r *Request) {
	for k := range r.Context {
		if strings.HasPrefix(k, "kms:EncryptionContext") {
			delete(r.Context, k)
		}
	}
	r.Absent = append(r.Absent, "kms:EncryptionContext*")
}

// TestUndecided: what a request cannot know before the call is reported, and the
// statement is left out rather than guessed.
func TestUndecided(t *testing.T) {
	for _, tc := range []struct {
		name, cond string
		want       string
	}{
		{"a key nobody supplied", `{"StringEquals":{"aws:SourceVpce":"vpce-1"}}`, "S: key aws:SourceVpce"},
		{"an operator not implemented", `{"IpAddress":{"aws:SourceIp":"10.0.0.0/8"}}`, "S: operator IpAddress"},
		{"a variable nobody supplied", `{"StringEquals":{"kms:CallerAccount":"${aws:SourceVpc}"}}`, "S: key kms:CallerAccount"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d, err := Parse(doc(stmt("Deny", `"*"`, tc.cond), allow(aws(role), "")))
			if err != nil {
				t.Fatal(err)
			}
			got := d.Evaluate(agent())
			if got.Decision != Allowed || strings.Join(got.Undecided, "|") != tc.want {
				t.Errorf("got %v %q, want allowed with %q undecided", got.Decision, got.Undecided, tc.want)
			}
		})
	}
}

func TestParseRefuses(t *testing.T) {
	for _, bad := range []string{`{`, `{"Statement":[{"Effect":"Maybe"}]}`, `{"Statement":[{"Effect":"Allow","Principal":"me"}]}`} {
		if _, err := Parse(bad); err == nil {
			t.Errorf("Parse(%s) accepted it", bad)
		}
	}
}

func TestGlob(t *testing.T) {
	for _, tc := range []struct {
		p, s string
		want bool
	}{
		{"*", "", true}, {"a*c", "abbbc", true}, {"a*c", "abbb", false}, {"a?c", "abc", true}, {"a?c", "ac", false},
		{"[a]", "[a]", true}, {"[a]", "a", false}, {"*:*", "kms:Decrypt", true}, {"a**", "a", true},
	} {
		if got := Glob(tc.p, tc.s); got != tc.want {
			t.Errorf("Glob(%q, %q) = %v, want %v", tc.p, tc.s, got, tc.want)
		}
	}
}

func TestIsRoot(t *testing.T) {
	for arn, want := range map[string]bool{
		root: true, "arn:aws-cn:iam::111122223333:root": true, "arn:aws-us-gov:iam::111122223333:root": true,
		role: false, "111122223333": false, "arn:aws:iam::1111:root": false, "arn:aws:sts::111122223333:root": false,
	} {
		if IsRoot(arn) != want {
			t.Errorf("IsRoot(%s) = %v", arn, !want)
		}
	}
}
