package fakeaws

import (
	"encoding/json"
	"fmt"
	"net/netip"
	"regexp"
	"strings"
)

// MatchPattern reports whether an EventBridge event pattern matches an event, by the
// rules of the EventBridge user guide ("Creating event patterns", "Comparison operators
// for use in event patterns", "Arrays in event patterns", "Matching null values and
// empty strings"):
//   - every field the pattern names must be in the event, at the same nesting ("the
//     event must contain all the field names listed in the event pattern"), except
//     where the pattern says {"exists": false};
//   - a field's list of values matches when any of them does (OR), fields together when
//     all do (AND);
//   - when the event's value is an array, "the event pattern matches if the
//     intersection of the event pattern array and the event array is non-empty";
//   - literal values match exactly, numbers by their string representation; null and
//     "" are different values;
//   - operators: prefix, suffix, anything-but, numeric, exists, equals-ignore-case,
//     wildcard, cidr, $or.
//
// An operator it does not know is an error, never a silent match.
func MatchPattern(pattern, event []byte) (bool, error) {
	p, err := decode(pattern)
	if err != nil {
		return false, fmt.Errorf("event pattern: %w", err)
	}
	e, err := decode(event)
	if err != nil {
		return false, fmt.Errorf("event: %w", err)
	}
	return matchObject(p, e)
}

// decode keeps numbers as their text, which is how they are compared.
func decode(b []byte) (map[string]any, error) {
	var m map[string]any
	d := json.NewDecoder(strings.NewReader(string(b)))
	d.UseNumber()
	return m, d.Decode(&m)
}

func matchObject(pattern, event map[string]any) (bool, error) {
	for key, want := range pattern {
		if key == "$or" {
			alts, ok := want.([]any)
			if !ok || len(alts) < 2 {
				return false, fmt.Errorf("$or wants a list of at least two patterns")
			}
			matched := false
			for _, a := range alts {
				sub, ok := a.(map[string]any)
				if !ok {
					return false, fmt.Errorf("$or: %v is not a pattern", a)
				}
				m, err := matchObject(sub, event)
				if err != nil {
					return false, err
				}
				matched = matched || m
			}
			if !matched {
				return false, nil
			}
			continue
		}
		got, present := event[key]
		switch w := want.(type) {
		case map[string]any:
			sub, ok := got.(map[string]any)
			if !present || !ok {
				return false, nil
			}
			m, err := matchObject(w, sub)
			if err != nil || !m {
				return false, err
			}
		case []any:
			m, err := matchLeaf(w, got, present)
			if err != nil || !m {
				return false, err
			}
		default:
			return false, fmt.Errorf("field %s: a pattern's leaf must be a list, got %v", key, want)
		}
	}
	return true, nil
}

// matchLeaf: any matcher against any of the event's values.
func matchLeaf(matchers []any, got any, present bool) (bool, error) {
	values := []any{got}
	if list, ok := got.([]any); ok {
		values = list
	}
	for _, m := range matchers {
		if op, ok := m.(map[string]any); ok {
			if e, ok := op["exists"]; ok {
				want, _ := e.(bool)
				if want == present {
					return true, nil
				}
				continue
			}
		}
		if !present {
			continue
		}
		for _, v := range values {
			ok, err := matchValue(m, v)
			if err != nil {
				return false, err
			}
			if ok {
				return true, nil
			}
		}
	}
	return false, nil
}

func matchValue(m any, v any) (bool, error) {
	op, isOp := m.(map[string]any)
	if !isOp {
		return literal(m) == literal(v) && (m == nil) == (v == nil), nil
	}
	if len(op) != 1 {
		return false, fmt.Errorf("an operator object has one key, got %v", op)
	}
	s, isString := v.(string)
	for name, arg := range op {
		switch name {
		case "prefix", "suffix":
			if !isString {
				return false, nil
			}
			want, fold, err := stringArg(arg)
			if err != nil {
				return false, fmt.Errorf("%s: %w", name, err)
			}
			if fold {
				s, want = strings.ToLower(s), strings.ToLower(want)
			}
			if name == "prefix" {
				return strings.HasPrefix(s, want), nil
			}
			return strings.HasSuffix(s, want), nil
		case "equals-ignore-case":
			want, ok := arg.(string)
			return ok && isString && strings.EqualFold(s, want), nil
		case "wildcard":
			want, ok := arg.(string)
			return ok && isString && starOnly(want).MatchString(s), nil
		case "anything-but":
			return anythingBut(arg, v)
		case "numeric":
			return numeric(arg, v)
		case "cidr":
			want, ok := arg.(string)
			prefix, err := netip.ParsePrefix(want)
			if !ok || err != nil {
				return false, fmt.Errorf("cidr %v", arg)
			}
			addr, err := netip.ParseAddr(s)
			return isString && err == nil && prefix.Contains(addr), nil
		}
		return false, fmt.Errorf("event pattern operator %q is not implemented", name)
	}
	return false, nil
}

// starOnly compiles an EventBridge wildcard, where only * is special.
func starOnly(p string) *regexp.Regexp {
	parts := strings.Split(p, "*")
	for i, part := range parts {
		parts[i] = regexp.QuoteMeta(part)
	}
	return regexp.MustCompile("^(?s)" + strings.Join(parts, ".*") + "$")
}

// literal is a value's text, numbers by their string representation ("For numbers,
// EventBridge uses string representation": 300 and 300.0 differ).
func literal(v any) string {
	switch v := v.(type) {
	case json.Number:
		return "n:" + v.String()
	case string:
		return "s:" + v
	}
	return fmt.Sprintf("%T:%v", v, v)
}

func stringArg(arg any) (string, bool, error) {
	if s, ok := arg.(string); ok {
		return s, false, nil
	}
	if m, ok := arg.(map[string]any); ok {
		if s, ok := m["equals-ignore-case"].(string); ok && len(m) == 1 {
			return s, true, nil
		}
	}
	return "", false, fmt.Errorf("want a string or {\"equals-ignore-case\": ...}, got %v", arg)
}

// anythingBut: a value, list of values, or {"prefix"|"suffix"|"wildcard"|
// "equals-ignore-case": ...}; matches what the inner matcher does not.
func anythingBut(arg any, v any) (bool, error) {
	switch a := arg.(type) {
	case []any:
		for _, x := range a {
			if literal(x) == literal(v) {
				return false, nil
			}
		}
		return true, nil
	case map[string]any:
		m, err := matchValue(a, v)
		return !m, err
	}
	return literal(arg) != literal(v), nil
}

// numeric: [op, n, op, n]; ops =, <, <=, >, >=; only numbers match.
func numeric(arg any, v any) (bool, error) {
	conds, ok := arg.([]any)
	if !ok || len(conds) == 0 || len(conds)%2 != 0 {
		return false, fmt.Errorf("numeric %v", arg)
	}
	num, ok := v.(json.Number)
	if !ok {
		return false, nil
	}
	x, err := num.Float64()
	if err != nil {
		return false, nil
	}
	for i := 0; i < len(conds); i += 2 {
		op, _ := conds[i].(string)
		bound, _ := conds[i+1].(json.Number)
		n, err := bound.Float64()
		if err != nil {
			return false, fmt.Errorf("numeric %v: %v is not a number", arg, conds[i+1])
		}
		var hold bool
		switch op {
		case "=":
			hold = x == n
		case "<":
			hold = x < n
		case "<=":
			hold = x <= n
		case ">":
			hold = x > n
		case ">=":
			hold = x >= n
		default:
			return false, fmt.Errorf("numeric operator %q", op)
		}
		if !hold {
			return false, nil
		}
	}
	return true, nil
}
