package policy

import (
	"strings"
)

// conditionsHold evaluates the statement's Condition block: every operator must hold, and
// within an operator every key. It returns the operators and keys it could not judge (an
// operator this package does not implement, a key the request can neither supply nor
// rule out); the statement's outcome is then unknown.
func (s Statement) conditionsHold(req Request) (holds bool, unknown []string) {
	holds = true
	for op, keys := range s.Condition {
		c, ok := parseOperator(op)
		if !ok {
			unknown = append(unknown, "operator "+op)
			continue
		}
		for key, values := range keys {
			h, known := c.eval(req, key, values)
			if !known {
				unknown = append(unknown, "key "+key)
			}
			holds = holds && h
		}
	}
	return holds, unknown
}

// operator is a parsed condition operator: a base comparison, an optional set qualifier
// (ForAllValues, ForAnyValue) and an optional IfExists.
type operator struct {
	base     string
	set      string // "", "ForAllValues", "ForAnyValue"
	ifExists bool
	negated  bool
	compare  func(policyValue, requestValue string) bool
}

var comparisons = map[string]func(p, r string) bool{
	"StringEquals":           func(p, r string) bool { return p == r },
	"StringEqualsIgnoreCase": strings.EqualFold,
	"StringLike":             Glob,
	"ArnEquals":              arnLike,
	"ArnLike":                arnLike,
	"Bool":                   strings.EqualFold,
}

// negations are the negated operators and the positive comparison they negate.
var negations = map[string]string{
	"StringNotEquals":           "StringEquals",
	"StringNotEqualsIgnoreCase": "StringEqualsIgnoreCase",
	"StringNotLike":             "StringLike",
	"ArnNotEquals":              "ArnEquals",
	"ArnNotLike":                "ArnLike",
}

func parseOperator(op string) (operator, bool) {
	var c operator
	if set, rest, ok := strings.Cut(op, ":"); ok {
		if set != "ForAllValues" && set != "ForAnyValue" {
			return c, false
		}
		c.set, op = set, rest
	}
	if base, ok := strings.CutSuffix(op, "IfExists"); ok && base != "Null" {
		c.ifExists, op = true, base
	}
	c.base = op
	if op == "Null" {
		return c, c.set == ""
	}
	if positive, ok := negations[op]; ok {
		c.negated, op = true, positive
	}
	c.compare = comparisons[op]
	return c, c.compare != nil
}

// eval judges one condition key; known is false when the request can neither supply
// the key nor rule it out. The rules, from IAM's documentation of condition operators
// and of multivalued context keys:
//   - several values for one key: the key matches if any value matches (for a negated
//     operator: if none does);
//   - a key the request lacks: false, except with IfExists or a negated operator
//     (StringNotEquals: true), Null, ForAllValues (true: "all" of no values) and
//     ForAnyValue (false);
//   - ForAllValues: every request value must match a policy value; ForAnyValue: at least
//     one must.
func (c operator) eval(req Request, key string, values []string) (holds, known bool) {
	got, present := req.value(key)
	if !present && !req.knownAbsent(key) {
		return false, false
	}
	if c.base == "Null" {
		absent := !present || len(got) == 0
		for _, v := range values {
			if strings.EqualFold(v, "true") == absent {
				return true, true
			}
		}
		return false, true
	}
	if !present || len(got) == 0 {
		switch c.set {
		case "ForAllValues":
			return true, true
		case "ForAnyValue":
			return false, true
		}
		return c.ifExists || c.negated, true
	}
	want := make([]string, 0, len(values))
	for _, v := range values {
		s, state := v, varOK
		if c.variables() {
			s, state = substitute(v, req)
		}
		switch state {
		case varUnknown:
			return false, false
		case varOK:
			want = append(want, s)
		}
	}
	one := func(r string) bool {
		for _, w := range want {
			if c.compare(w, r) {
				return !c.negated
			}
		}
		return c.negated
	}
	if c.set == "ForAllValues" {
		for _, r := range got {
			if !one(r) {
				return false, true
			}
		}
		return true, true
	}
	// ForAnyValue, and a plain operator on a single-valued key.
	for _, r := range got {
		if one(r) {
			return true, true
		}
	}
	return false, true
}

// variables: IAM substitutes policy variables only in String and Arn operators.
func (c operator) variables() bool {
	return strings.HasPrefix(c.base, "String") || strings.HasPrefix(c.base, "Arn")
}

// arnLike compares ARNs part by part: each of the six colon-separated parts may hold
// wildcards, and a wildcard never spans a colon.
func arnLike(pattern, arn string) bool {
	p, a := strings.SplitN(pattern, ":", 6), strings.SplitN(arn, ":", 6)
	if len(p) != 6 || len(a) != 6 {
		return false
	}
	for i := range p {
		if !Glob(p[i], a[i]) {
			return false
		}
	}
	return true
}

// What substitute made of a value's policy variables.
type varState int

const (
	varOK      varState = iota
	varAbsent           // a variable the request does not have: the value matches nothing
	varUnknown          // a variable the request can neither supply nor rule out
)

// substitute replaces policy variables (${aws:username}, ${ec2:SourceInstanceARN}) with
// the request's values, and the escapes ${*}, ${?}, ${$} with their characters. A
// variable with a default (${aws:username, 'anyone'}) takes it when the key is absent.
// Without one, an absent variable makes the value match nothing, as IAM documents.
func substitute(v string, req Request) (string, varState) {
	if req.literal {
		return v, varOK
	}
	var b strings.Builder
	for {
		start := strings.Index(v, "${")
		end := strings.Index(v[max(start, 0):], "}")
		if start < 0 || end < 0 {
			b.WriteString(v)
			return b.String(), varOK
		}
		b.WriteString(v[:start])
		name := strings.TrimSpace(v[start+2 : start+end])
		v = v[start+end+1:]
		if name == "*" || name == "?" || name == "$" {
			b.WriteString(name)
			continue
		}
		name, def, hasDefault := strings.Cut(name, ",")
		name = strings.TrimSpace(name)
		got, present := req.value(name)
		switch {
		case present && len(got) == 1:
			b.WriteString(got[0])
		case hasDefault && (present || req.knownAbsent(name)):
			b.WriteString(strings.Trim(strings.TrimSpace(def), "'"))
		case present || req.knownAbsent(name):
			return "", varAbsent
		default:
			return "", varUnknown
		}
	}
}
