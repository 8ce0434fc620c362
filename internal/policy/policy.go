// Package policy evaluates one AWS policy document (a KMS key policy) for one request, by
// the rules of IAM's documented policy evaluation logic: statements match by principal,
// action and resource, conditions are the conjunction of their operators, an explicit
// deny wins. It answers the question KMS's authorization adds to IAM's: does the key
// policy allow the caller itself, deny it, or delegate the decision to the account's IAM
// policies (an Allow for the account's root)?
//
// Identity policies are not evaluated here: the IAM policy simulator reads them, and it
// alone sees managed policies and permissions boundaries.
package policy

import (
	"bytes"
	"encoding/json"
	"fmt"
	"slices"
	"sort"
	"strings"
)

// Document is a policy document. Statement may be one object or a list, as IAM accepts.
type Document struct {
	Version   string     `json:"Version,omitempty"`
	Statement Statements `json:"Statement"`
}

// Statements is a JSON statement object or list of them.
type Statements []Statement

// UnmarshalJSON accepts both forms.
func (s *Statements) UnmarshalJSON(b []byte) error {
	if bytes.HasPrefix(bytes.TrimSpace(b), []byte("{")) {
		var one Statement
		if err := json.Unmarshal(b, &one); err != nil {
			return err
		}
		*s = Statements{one}
		return nil
	}
	var list []Statement
	if err := json.Unmarshal(b, &list); err != nil {
		return err
	}
	*s = list
	return nil
}

// Statement is one policy statement.
type Statement struct {
	Sid          string     `json:"Sid,omitempty"`
	Effect       string     `json:"Effect"`
	Principal    *Principal `json:"Principal,omitempty"`
	NotPrincipal *Principal `json:"NotPrincipal,omitempty"`
	Action       StringList `json:"Action,omitempty"`
	NotAction    StringList `json:"NotAction,omitempty"`
	Resource     StringList `json:"Resource,omitempty"`
	NotResource  StringList `json:"NotResource,omitempty"`
	// Condition maps an operator (StringEquals, ForAllValues:StringLike, BoolIfExists, ...)
	// to condition keys and their values.
	Condition map[string]map[string]StringList `json:"Condition,omitempty"`
}

// Principal is "*" or an object such as {"AWS": [...], "Service": [...]}.
type Principal struct {
	Wildcard bool
	AWS      StringList `json:"AWS,omitempty"`
	Service  StringList `json:"Service,omitempty"`
}

// UnmarshalJSON accepts "*" and the object form.
func (p *Principal) UnmarshalJSON(b []byte) error {
	var s string
	if json.Unmarshal(b, &s) == nil {
		if s != "*" {
			return fmt.Errorf("principal %q: want \"*\" or an object", s)
		}
		p.Wildcard = true
		return nil
	}
	type plain Principal
	return json.Unmarshal(b, (*plain)(p))
}

// MarshalJSON writes "*" or the object form.
func (p Principal) MarshalJSON() ([]byte, error) {
	if p.Wildcard {
		return []byte(`"*"`), nil
	}
	type plain Principal
	return json.Marshal(plain(p))
}

// StringList is a JSON string or list. Condition values may also be JSON booleans or
// numbers ({"Bool": {"aws:SecureTransport": false}}); they are kept as their text.
type StringList []string

// UnmarshalJSON accepts a scalar or a list of scalars.
func (l *StringList) UnmarshalJSON(b []byte) error {
	var raw []json.RawMessage
	if bytes.HasPrefix(bytes.TrimSpace(b), []byte("[")) {
		if err := json.Unmarshal(b, &raw); err != nil {
			return err
		}
	} else {
		raw = []json.RawMessage{b}
	}
	out := make(StringList, 0, len(raw))
	for _, r := range raw {
		var s string
		if json.Unmarshal(r, &s) == nil {
			out = append(out, s)
			continue
		}
		var scalar any
		if err := json.Unmarshal(r, &scalar); err != nil {
			return err
		}
		switch scalar.(type) {
		case bool, float64:
			out = append(out, strings.TrimSpace(string(r)))
		default:
			return fmt.Errorf("want a string, boolean or number, got %s", r)
		}
	}
	*l = out
	return nil
}

// Parse decodes a policy document.
func Parse(doc string) (Document, error) {
	var d Document
	if err := json.Unmarshal([]byte(doc), &d); err != nil {
		return Document{}, fmt.Errorf("parsing a policy document: %w", err)
	}
	for i, s := range d.Statement {
		if s.Effect != "Allow" && s.Effect != "Deny" {
			return Document{}, fmt.Errorf("parsing a policy document: statement %d: Effect %q", i, s.Effect)
		}
	}
	return d, nil
}

// Request is the call a policy is asked about.
type Request struct {
	// Caller is the role ARN of the calling session. A role session's requests carry the
	// role's ARN as aws:PrincipalArn, and a policy that names the role applies to them.
	Caller string
	// Session is the assumed-role session ARN (arn:aws:sts::…:assumed-role/name/session),
	// which a principal element can also name; "" when not known.
	Session  string
	Action   string // service:Operation
	Resource string // ARN
	// Context holds the request's condition keys and their values. Names are matched
	// without regard to case, as IAM does.
	Context map[string][]string
	// Absent lists the keys (patterns with * allowed) known not to be in the request. A
	// condition on a key in neither Context nor Absent cannot be judged.
	Absent []string
	// literal is set while evaluating a document without Version 2012-10-17, where IAM
	// reads ${...} as plain text rather than as policy variables.
	literal bool
}

func (r Request) value(key string) ([]string, bool) {
	for k, v := range r.Context {
		if strings.EqualFold(k, key) {
			return v, true
		}
	}
	return nil, false
}

func (r Request) knownAbsent(key string) bool {
	return anyMatch(r.Absent, key, true)
}

// Decision is what a document says of a request.
type Decision int

// Decisions, in the order evaluation ranks them.
const (
	NotApplicable Decision = iota // no statement applies: an implicit deny
	Delegated                     // an Allow for the caller's account applies: IAM policies decide
	Allowed                       // an Allow names the caller (or "*") and applies
	Denied                        // a Deny applies: nothing else can allow
)

func (d Decision) String() string {
	return [...]string{"not-applicable", "delegated", "allowed", "denied"}[d]
}

// Result is a decision and what the evaluation could not judge.
type Result struct {
	Decision Decision
	// Statement is the Sid (or index) of the statement that decided.
	Statement string
	// Undecided lists, for statements that match the caller, action and resource but
	// whose conditions could not be judged, the operators and keys at fault. Those
	// statements are left out of Decision, which may then be wrong either way.
	Undecided []string
}

// Evaluate judges req against the document. Statements are independent; a Deny that
// applies beats every Allow, and an Allow that names the caller beats one that only
// names the caller's account.
func (d Document) Evaluate(req Request) Result {
	res := Result{}
	req.literal = d.Version != "2012-10-17"
	for i, s := range d.Statement {
		who := s.principalMatch(req)
		if who == matchNone || !s.actionMatches(req.Action) || !s.resourceMatches(req) {
			continue
		}
		holds, unknown := s.conditionsHold(req)
		if len(unknown) > 0 {
			for _, u := range unknown {
				res.Undecided = append(res.Undecided, s.name(i)+": "+u)
			}
			continue
		}
		if !holds {
			continue
		}
		decision := Allowed
		switch {
		case s.Effect == "Deny":
			decision = Denied
		case who == matchAccount:
			decision = Delegated
		}
		if decision > res.Decision {
			res.Decision, res.Statement = decision, s.name(i)
		}
	}
	sort.Strings(res.Undecided)
	res.Undecided = slices.Compact(res.Undecided)
	return res
}

func (s Statement) name(i int) string {
	if s.Sid != "" {
		return s.Sid
	}
	return fmt.Sprintf("statement %d", i)
}

type principalMatch int

const (
	matchNone    principalMatch = iota
	matchAccount                // the account's root: in a key policy, a delegation to IAM
	matchCaller                 // the caller itself, or everyone
)

// principalMatch: does the statement's Principal (or NotPrincipal) take in the caller?
func (s Statement) principalMatch(req Request) principalMatch {
	switch {
	case s.Principal != nil:
		return s.Principal.match(req)
	case s.NotPrincipal != nil:
		// NotPrincipal applies to everyone it does not name, and a role session is named
		// only by the account, the role and the session together: "you must also include
		// the account ARN" (IAM User Guide, NotPrincipal), since AWS checks each.
		if s.NotPrincipal.namesAll(req) {
			return matchNone
		}
		return matchCaller
	}
	return matchNone // a key policy statement without a principal is invalid
}

func (p *Principal) match(req Request) principalMatch {
	if p.Wildcard {
		return matchCaller
	}
	account := AccountOf(req.Caller)
	best := matchNone
	for _, a := range p.AWS {
		switch {
		case a == "*", a == req.Caller, req.Session != "" && a == req.Session:
			return matchCaller
		case a == account || IsRoot(a) && AccountOf(a) == account && partitionOf(a) == partitionOf(req.Caller):
			best = matchAccount
		}
	}
	return best
}

// namesAll: p names the caller's account, its role and (when known) its session.
func (p *Principal) namesAll(req Request) bool {
	account := AccountOf(req.Caller)
	var acct, role, session bool
	for _, a := range p.AWS {
		switch {
		case a == account || IsRoot(a) && AccountOf(a) == account && partitionOf(a) == partitionOf(req.Caller):
			acct = true
		case a == req.Caller:
			role = true
		case a == req.Session:
			session = true
		}
	}
	return acct && role && (session || req.Session == "")
}

// IsRoot reports whether arn is an account's root principal in any partition
// (arn:aws:iam::111122223333:root, arn:aws-cn:…, arn:aws-us-gov:…).
func IsRoot(arn string) bool {
	parts := strings.Split(arn, ":")
	return len(parts) == 6 && parts[0] == "arn" && strings.HasPrefix(parts[1], "aws") &&
		parts[2] == "iam" && parts[3] == "" && len(parts[4]) == 12 && parts[5] == "root"
}

func (s Statement) actionMatches(action string) bool {
	if len(s.NotAction) > 0 {
		return !anyMatch(s.NotAction, action, true)
	}
	return anyMatch(s.Action, action, true)
}

func (s Statement) resourceMatches(req Request) bool {
	if len(s.NotResource) > 0 {
		return !anyMatch(s.substituted(s.NotResource, req), req.Resource, false)
	}
	return anyMatch(s.substituted(s.Resource, req), req.Resource, false)
}

func (s Statement) substituted(patterns []string, req Request) []string {
	out := make([]string, 0, len(patterns))
	for _, p := range patterns {
		if v, state := substitute(p, req); state == varOK {
			out = append(out, v)
		}
	}
	return out
}

// anyMatch: does any pattern match s? Actions match without regard to case.
func anyMatch(patterns []string, s string, foldCase bool) bool {
	for _, p := range patterns {
		if foldCase {
			p, s = strings.ToLower(p), strings.ToLower(s)
		}
		if Glob(p, s) {
			return true
		}
	}
	return false
}

// Glob matches s against pattern, where * matches any run of characters and ? any one
// character, as IAM's Action, Resource and StringLike matching do. No other character is
// special.
func Glob(pattern, s string) bool {
	p, str := []rune(pattern), []rune(s)
	star, mark := -1, 0
	i, j := 0, 0
	for j < len(str) {
		switch {
		case i < len(p) && (p[i] == '?' || p[i] == str[j]):
			i++
			j++
		case i < len(p) && p[i] == '*':
			star, mark = i, j
			i++
		case star >= 0:
			i, mark = star+1, mark+1
			j = mark
		default:
			return false
		}
	}
	for i < len(p) && p[i] == '*' {
		i++
	}
	return i == len(p)
}

// AccountOf returns the account id of an IAM, STS or KMS ARN, or "".
func AccountOf(arn string) string {
	parts := strings.SplitN(arn, ":", 6)
	if len(parts) < 6 {
		return ""
	}
	return parts[4]
}

// Partition returns the partition of an ARN (aws, aws-cn, aws-us-gov), or "aws" when arn
// is not one.
func Partition(arn string) string {
	if p := partitionOf(arn); p != "" {
		return p
	}
	return "aws"
}

func partitionOf(arn string) string {
	parts := strings.SplitN(arn, ":", 3)
	if len(parts) < 3 || parts[0] != "arn" {
		return ""
	}
	return parts[1]
}
