// Package policy reads IAM policy documents (key policies, identity policies) well enough
// to answer the one question KMS's rules add to IAM's: does the key policy allow a
// principal an action itself, or delegate to the account's IAM policies? The IAM policy
// simulator answers the rest.
package policy

import (
	"encoding/json"
	"fmt"
	"path"
	"strings"
)

// Document is an IAM policy document.
type Document struct {
	Version   string      `json:"Version"`
	Statement []Statement `json:"Statement"`
}

// Statement is one policy statement. Principal, Action and Resource accept a string or a
// list, as IAM does.
type Statement struct {
	Sid       string          `json:"Sid,omitempty"`
	Effect    string          `json:"Effect"`
	Principal *Principal      `json:"Principal,omitempty"`
	Action    StringList      `json:"Action,omitempty"`
	Resource  StringList      `json:"Resource,omitempty"`
	Condition json.RawMessage `json:"Condition,omitempty"`
}

// Principal is "*" or {"AWS": ...}, {"Service": ...}.
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

// StringList is a JSON string or list of strings.
type StringList []string

// UnmarshalJSON accepts both forms.
func (l *StringList) UnmarshalJSON(b []byte) error {
	var s string
	if json.Unmarshal(b, &s) == nil {
		*l = StringList{s}
		return nil
	}
	var list []string
	if err := json.Unmarshal(b, &list); err != nil {
		return err
	}
	*l = list
	return nil
}

// Parse decodes a policy document.
func Parse(doc string) (Document, error) {
	var d Document
	if err := json.Unmarshal([]byte(doc), &d); err != nil {
		return Document{}, fmt.Errorf("parsing a policy document: %w", err)
	}
	return d, nil
}

// Grant says how a document treats principal for action.
type Grant int

// What a document says of a principal and an action.
const (
	Silent       Grant = iota // no statement applies
	Allowed                   // an Allow statement names the principal (or "*")
	Delegated                 // an Allow statement names the account root: IAM policies decide
	ExplicitDeny              // a Deny statement applies
)

// Evaluate returns what the document says of principal (a role ARN) doing action. It
// ignores conditions: a conditional allow counts as an allow, which is what a check made
// before the call (without the call's context) can know.
func (d Document) Evaluate(principal, action string) Grant {
	account := AccountOf(principal)
	g := Silent
	for _, s := range d.Statement {
		if !s.matchesAction(action) || s.Principal == nil {
			continue
		}
		names, root := s.Principal.names(principal, account)
		switch {
		case strings.EqualFold(s.Effect, "Deny") && (names || root):
			return ExplicitDeny
		case !strings.EqualFold(s.Effect, "Allow"):
		case names:
			g = Allowed
		case root && g == Silent:
			g = Delegated
		}
	}
	return g
}

func (s Statement) matchesAction(action string) bool {
	for _, a := range s.Action {
		if ok, _ := path.Match(strings.ToLower(a), strings.ToLower(action)); ok {
			return true
		}
	}
	return false
}

// names reports whether p names principal itself (or everyone), and whether it names the
// account root, which in a key policy delegates to IAM.
func (p *Principal) names(principal, account string) (self, root bool) {
	if p.Wildcard {
		return true, false
	}
	for _, a := range p.AWS {
		switch a {
		case "*", principal:
			self = true
		case account, "arn:aws:iam::" + account + ":root":
			root = true
		}
	}
	return self, root
}

// AccountOf returns the account id of an IAM or KMS ARN, or "".
func AccountOf(arn string) string {
	parts := strings.SplitN(arn, ":", 6)
	if len(parts) < 6 {
		return ""
	}
	return parts[4]
}
