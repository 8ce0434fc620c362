package fakeaws

import (
	"encoding/json"
	"fmt"
	"regexp"
	"slices"
	"strings"
	"sync"
)

// This file is the fake account's own reading of AWS's authorization rules. It is written
// from the documentation, on its own: it shares no code with the product (package policy
// evaluates key policies for the launch function), so a mistake in one is caught by the
// other's tests. Sources:
//   - IAM User Guide, "Policy evaluation logic" and "Determining whether a request is
//     allowed or denied within an account": an explicit deny wins; otherwise an allow
//     in an identity or resource policy allows; otherwise an implicit deny.
//   - IAM User Guide, "IAM JSON policy elements: Condition operators": operators,
//     ...IfExists, Null, and "If the key that you specify in a policy condition is not
//     present in the request context, the values do not match"; negated operators are
//     true when the key is absent.
//   - IAM User Guide, "Single-valued vs. multivalued context keys": ForAllValues is true
//     for an absent key, ForAnyValue false.
//   - IAM User Guide, "IAM policy elements: Variables and tags": a variable with no value
//     makes the element not match.
//   - AWS KMS Developer Guide, "Determining access to an AWS KMS key": the key policy
//     must allow the principal, or allow the account (then IAM policies count); grants
//     allow too; an explicit deny in any of them refuses.

// Decision is an authorization outcome.
type Decision string

// Decisions, as the IAM policy simulator names them, and a resource policy's delegation.
const (
	ImplicitDeny Decision = "implicitDeny"
	Allow        Decision = "allowed"
	ExplicitDeny Decision = "explicitDeny"
	// Delegated: a key policy allows the account, so the principal's IAM policies decide.
	Delegated Decision = "delegated"
)

// AuthzRequest is one request to authorize.
type AuthzRequest struct {
	Principal string // the role ARN
	Session   string // the assumed-role session ARN, when known
	Action    string
	Resource  string
	Context   map[string][]string
	// GrantTokens are the KMS request's GrantTokens: they make a grant not yet settled
	// effective (Grant).
	GrantTokens []string
}

func (r AuthzRequest) lookup(key string) ([]string, bool) {
	for k, v := range r.Context {
		if strings.EqualFold(k, key) {
			return v, true
		}
	}
	return nil, false
}

// statementOutcome is what one statement says of a request.
type statementOutcome int

// Outcomes in the order evaluation ranks them: a deny beats an allow of the principal,
// which beats a delegation to the account.
const (
	noMatch       statementOutcome = iota
	allowsAccount                  // a resource policy's Allow for the account root: IAM policies decide
	allowsPrincipal
	denies
)

// Evaluate judges a request against one policy. resourcePolicy says whether the policy
// has a Principal element (a key or bucket policy) or is attached to the principal. It
// returns the condition keys that the policy's applicable statements use but the request
// does not carry, as the simulator's MissingContextValues does.
func Evaluate(policyJSON string, resourcePolicy bool, req AuthzRequest) (Decision, []string, error) {
	var doc struct {
		Statement json.RawMessage
	}
	if err := json.Unmarshal([]byte(policyJSON), &doc); err != nil {
		return "", nil, fmt.Errorf("MalformedPolicyDocument: %w", err)
	}
	var stmts []map[string]any
	if err := json.Unmarshal(doc.Statement, &stmts); err != nil {
		var one map[string]any
		if err := json.Unmarshal(doc.Statement, &one); err != nil {
			return "", nil, fmt.Errorf("MalformedPolicyDocument: Statement: %w", err)
		}
		stmts = []map[string]any{one}
	}
	best := noMatch
	var missing []string
	for _, s := range stmts {
		if err := checkOperators(s["Condition"]); err != nil {
			return "", nil, err
		}
		o, m := outcome(s, resourcePolicy, req)
		missing = append(missing, m...)
		best = max(best, o)
	}
	slices.Sort(missing)
	missing = slices.Compact(missing)
	switch best {
	case denies:
		return ExplicitDeny, missing, nil
	case allowsPrincipal:
		return Allow, missing, nil
	case allowsAccount:
		return Delegated, missing, nil
	}
	return ImplicitDeny, missing, nil
}

func outcome(s map[string]any, resourcePolicy bool, req AuthzRequest) (statementOutcome, []string) {
	who := allowsPrincipal
	if resourcePolicy {
		switch {
		case s["Principal"] != nil:
			who = principalIn(s["Principal"], req)
		case s["NotPrincipal"] != nil:
			// "you must also include the account ARN": a role session is spared only when
			// the account, the role and the session are all named.
			if sparedBy(s["NotPrincipal"], req) {
				who = noMatch
			}
		default:
			who = noMatch
		}
		if who == noMatch {
			return noMatch, nil
		}
	}
	// A role's trust policy has no Resource element: the role it is attached to is its
	// resource (IAM User Guide, "IAM JSON policy elements: Resource").
	implied := resourcePolicy && s["Resource"] == nil && s["NotResource"] == nil
	if !elementMatches(s, "Action", "NotAction", req.Action, true, req) || !implied && !elementMatches(s, "Resource", "NotResource", req.Resource, false, req) {
		return noMatch, nil
	}
	ok, missing := conditionsMet(s["Condition"], req)
	if !ok {
		return noMatch, missing
	}
	if s["Effect"] == "Deny" {
		return denies, missing
	}
	return who, missing
}

// principalIn: allowsPrincipal when the element names the role, its session or everyone;
// allowsAccount when it names the account (root ARN or bare id), in any partition.
func principalIn(p any, req AuthzRequest) statementOutcome {
	if p == "*" {
		return allowsPrincipal
	}
	m, _ := p.(map[string]any)
	account := strings.Split(req.Principal, ":")[4]
	partition := strings.Split(req.Principal, ":")[1]
	out := noMatch
	for _, v := range values(m["AWS"]) {
		switch {
		case v == "*", v == req.Principal, req.Session != "" && v == req.Session:
			return allowsPrincipal
		case v == account, v == "arn:"+partition+":iam::"+account+":root":
			out = allowsAccount
		}
	}
	return out
}

func sparedBy(p any, req AuthzRequest) bool {
	m, _ := p.(map[string]any)
	named := map[string]bool{}
	for _, v := range values(m["AWS"]) {
		named[v] = true
	}
	parts := strings.Split(req.Principal, ":")
	account := parts[4]
	return (named[account] || named["arn:"+parts[1]+":iam::"+account+":root"]) && named[req.Principal] && (req.Session == "" || named[req.Session])
}

func elementMatches(s map[string]any, name, notName, value string, fold bool, req AuthzRequest) bool {
	if s[notName] != nil {
		return !globAny(values(s[notName]), value, fold, req)
	}
	return globAny(values(s[name]), value, fold, req)
}

func globAny(patterns []string, value string, fold bool, req AuthzRequest) bool {
	for _, p := range patterns {
		p, ok := expand(p, req)
		if !ok {
			continue
		}
		if fold {
			p, value = strings.ToLower(p), strings.ToLower(value)
		}
		if matchWildcard(p, value) {
			return true
		}
	}
	return false
}

// wildcards holds the compiled patterns: a burst of thousands of instances asks for the
// same few thousand again and again.
var wildcards sync.Map

// wildcard compiles an IAM pattern: * is any run of characters, ? any one.
func wildcard(p string) *regexp.Regexp {
	if re, ok := wildcards.Load(p); ok {
		return re.(*regexp.Regexp)
	}
	re := compileWildcard(p)
	wildcards.Store(p, re)
	return re
}

// matchWildcard reports whether s matches the pattern p (wildcard).
func matchWildcard(p, s string) bool {
	if !strings.ContainsAny(p, "*?") {
		return p == s
	}
	return wildcard(p).MatchString(s)
}

func compileWildcard(p string) *regexp.Regexp {
	var b strings.Builder
	b.WriteString(`^(?s)`)
	for _, r := range p {
		switch r {
		case '*':
			b.WriteString(`.*`)
		case '?':
			b.WriteString(`.`)
		default:
			b.WriteString(regexp.QuoteMeta(string(r)))
		}
	}
	b.WriteString(`$`)
	return regexp.MustCompile(b.String())
}

var variable = regexp.MustCompile(`\$\{([^}]*)\}`)

// expand substitutes policy variables; false when one has no single value.
func expand(s string, req AuthzRequest) (string, bool) {
	ok := true
	out := variable.ReplaceAllStringFunc(s, func(m string) string {
		name := strings.TrimSpace(m[2 : len(m)-1])
		if name == "*" || name == "?" || name == "$" {
			return name
		}
		name, def, hasDef := strings.Cut(name, ",")
		if v, found := req.lookup(strings.TrimSpace(name)); found && len(v) == 1 {
			return v[0]
		}
		if hasDef {
			return strings.Trim(strings.TrimSpace(def), "'")
		}
		ok = false
		return ""
	})
	return out, ok
}

// conditionsMet: every operator and every key within it must hold.
func conditionsMet(c any, req AuthzRequest) (bool, []string) {
	block, _ := c.(map[string]any)
	met := true
	var missing []string
	for op, keys := range block {
		for key, want := range keys.(map[string]any) {
			got, present := req.lookup(key)
			if !present {
				missing = append(missing, key)
			}
			if !conditionHolds(op, values(want), got, present, req) {
				met = false
			}
		}
	}
	return met, missing
}

func conditionHolds(op string, want, got []string, present bool, req AuthzRequest) bool {
	qualifier := ""
	if q, rest, found := strings.Cut(op, ":"); found {
		qualifier, op = q, rest
	}
	ifExists := strings.HasSuffix(op, "IfExists") && op != "Null"
	op = strings.TrimSuffix(op, "IfExists")
	if op == "Null" {
		return (len(want) > 0 && strings.EqualFold(want[0], "true")) == (!present || len(got) == 0)
	}
	negated := strings.Contains(op, "Not")
	if !present || len(got) == 0 {
		switch qualifier {
		case "ForAllValues":
			return true
		case "ForAnyValue":
			return false
		}
		return ifExists || negated
	}
	matchOne := func(value string) bool {
		for _, w := range want {
			w, ok := expand(w, req)
			if ok && compare(strings.Replace(op, "Not", "", 1), w, value) {
				return true
			}
		}
		return false
	}
	if qualifier == "ForAllValues" {
		for _, g := range got {
			if matchOne(g) == negated {
				return false
			}
		}
		return true
	}
	for _, g := range got {
		if matchOne(g) != negated {
			return true
		}
	}
	return false
}

func compare(op, want, got string) bool {
	switch op {
	case "StringEquals":
		return want == got
	case "StringEqualsIgnoreCase":
		return strings.EqualFold(want, got)
	case "StringLike":
		return matchWildcard(want, got)
	case "ArnEquals", "ArnLike":
		w, g := strings.SplitN(want, ":", 6), strings.SplitN(got, ":", 6)
		if len(w) != 6 || len(g) != 6 {
			return false
		}
		for i := range w {
			if !matchWildcard(w[i], g[i]) {
				return false
			}
		}
		return true
	}
	return strings.EqualFold(want, got) // Bool
}

var operators = regexp.MustCompile(`^((ForAllValues|ForAnyValue):)?(String(Not)?(Equals(IgnoreCase)?|Like)|Arn(Not)?(Equals|Like)|Bool)(IfExists)?$|^Null$`)

// checkOperators refuses a policy whose conditions use an operator the fake does not
// implement, so that no test passes on an operator nobody evaluated.
func checkOperators(c any) error {
	block, _ := c.(map[string]any)
	for op := range block {
		if !operators.MatchString(op) {
			return fmt.Errorf("fakeaws: condition operator %s is not implemented; add it with its documented semantics", op)
		}
	}
	return nil
}

// values reads a policy value that may be a string, a list, a boolean or a number.
func values(v any) []string {
	switch v := v.(type) {
	case nil:
		return nil
	case []any:
		var out []string
		for _, x := range v {
			out = append(out, values(x)...)
		}
		return out
	case string:
		return []string{v}
	default:
		return []string{fmt.Sprint(v)}
	}
}

// KMSDecision authorizes a call on a KMS key by KMS's rules: the key policy, then (only
// where the key policy allows the account) the principal's identity policies, then the
// key's grants; an explicit deny in the key policy or an identity policy refuses.
func KMSDecision(keyPolicy string, identityPolicies []string, grants []Grant, req AuthzRequest) (Decision, error) {
	kp, _, err := Evaluate(keyPolicy, true, req)
	if err != nil {
		return "", err
	}
	identity := ImplicitDeny
	for _, p := range identityPolicies {
		d, _, err := Evaluate(p, false, req)
		if err != nil {
			return "", err
		}
		if d == ExplicitDeny || d == Allow && identity == ImplicitDeny {
			identity = d
		}
	}
	switch {
	case kp == ExplicitDeny || identity == ExplicitDeny:
		return ExplicitDeny, nil
	case kp == Allow, kp == Delegated && identity == Allow:
		return Allow, nil
	}
	for _, g := range grants {
		if g.covers(req) {
			return Allow, nil
		}
	}
	return ImplicitDeny, nil
}

// covers: KMS grants, "Grant constraints": EncryptionContextEquals is an exact match of
// the request's context, EncryptionContextSubset a subset of it; "in a grant constraint,
// the key in each key-value pair is not case sensitive, but the value is case sensitive"
// (GrantConstraints). A Pending grant covers only a request that carries one of its
// tokens; a Removed one still covers (Grant).
func (g Grant) covers(req AuthzRequest) bool {
	if g.Grantee != req.Principal && g.Grantee != req.Session || !slices.Contains(g.Operations, strings.TrimPrefix(req.Action, "kms:")) {
		return false
	}
	if g.Pending && !slices.ContainsFunc(g.Tokens, func(t string) bool { return slices.Contains(req.GrantTokens, t) }) {
		return false
	}
	ctx := map[string]string{}
	for k, v := range req.Context {
		if name, ok := strings.CutPrefix(k, "kms:EncryptionContext:"); ok && len(v) == 1 {
			ctx[strings.ToLower(name)] = v[0]
		}
	}
	for k, v := range g.ContextSubset {
		if got, ok := ctx[strings.ToLower(k)]; !ok || got != v {
			return false
		}
	}
	if g.ContextEquals != nil {
		if len(g.ContextEquals) != len(ctx) {
			return false
		}
		for k, v := range g.ContextEquals {
			if got, ok := ctx[strings.ToLower(k)]; !ok || got != v {
				return false
			}
		}
	}
	return true
}
