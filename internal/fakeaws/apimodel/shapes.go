package apimodel

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"maps"
	"reflect"
	"regexp"
	"slices"
	"sort"
	"strings"
	"unicode"
	"unicode/utf8"
)

type walker struct {
	m           *Model
	service, op string
	errs        []error
}

func (w *walker) fail(path, format string, args ...any) {
	w.errs = append(w.errs, &Violation{Service: w.service, Operation: w.op, Path: path, Rule: fmt.Sprintf(format, args...)})
}

// deref follows pointers and interfaces; ok is false for an absent value.
func deref(v reflect.Value) (reflect.Value, bool) {
	for v.IsValid() && (v.Kind() == reflect.Pointer || v.Kind() == reflect.Interface) {
		if v.IsNil() {
			return v, false
		}
		v = v.Elem()
	}
	return v, v.IsValid()
}

// present says whether a member's value would go on the wire.
func present(v reflect.Value) bool {
	if !v.IsValid() {
		return false
	}
	switch v.Kind() {
	case reflect.Pointer, reflect.Interface, reflect.Slice, reflect.Map:
		return !v.IsNil()
	case reflect.String, reflect.Bool, reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64, reflect.Float32, reflect.Float64:
		return !v.IsZero()
	}
	return true
}

func (w *walker) value(name string, v reflect.Value, path string) {
	s := w.m.Shapes[name]
	if s == nil {
		w.fail(path, "shape %s missing from %s", name, w.m.File)
		return
	}
	v, ok := deref(v)
	if !ok || s.Document || s.Streaming {
		return
	}
	switch s.Type {
	case "structure":
		w.structure(s, v, path)
	case "list":
		w.size(s, v.Len(), path, "entries")
		if v.Kind() == reflect.Slice {
			for i := range v.Len() {
				w.value(s.Member.Shape, v.Index(i), fmt.Sprintf("%s[%d]", path, i))
			}
		}
	case "map":
		w.size(s, v.Len(), path, "entries")
		if v.Kind() == reflect.Map {
			keys := v.MapKeys()
			sort.Slice(keys, func(i, j int) bool { return fmt.Sprint(keys[i]) < fmt.Sprint(keys[j]) })
			for _, k := range keys {
				at := fmt.Sprintf("%s[%q]", path, fmt.Sprint(k))
				w.value(s.Key.Shape, k, at+" (key)")
				w.value(s.Value.Shape, v.MapIndex(k), at)
			}
		}
	case "string":
		w.str(s, v, path)
	case "blob":
		w.blob(s, v, path)
	case "integer", "long", "float", "double":
		w.number(s, v, path)
	}
}

// members lists a structure's members as the request gives them: a Go struct's exported
// fields (its unexported ones are the SDK's own) or a JSON object's keys.
func members(v reflect.Value) map[string]reflect.Value {
	out := map[string]reflect.Value{}
	switch v.Kind() {
	case reflect.Struct:
		for i := range v.NumField() {
			if f := v.Type().Field(i); f.IsExported() {
				out[f.Name] = v.Field(i)
			}
		}
	case reflect.Map:
		for _, k := range v.MapKeys() {
			out[k.String()] = v.MapIndex(k)
		}
	}
	return out
}

// goName is the SDK's field name for a member: the same name, its first letter upper case.
func goName(member string) string {
	r, n := utf8.DecodeRuneInString(member)
	return string(unicode.ToUpper(r)) + member[n:]
}

func (w *walker) structure(s *shape, v reflect.Value, path string) {
	// The SDK holds a union as an interface whose value is <Union>Member<Name>{Value}.
	// Older models do not mark every union (DynamoDB's AttributeValue), so the Go type
	// decides.
	if v.Kind() == reflect.Struct && v.FieldByName("Value").IsValid() {
		if _, name, ok := strings.Cut(v.Type().Name(), "Member"); ok {
			for m, r := range s.Members {
				if goName(m) == name {
					w.value(r.Shape, v.FieldByName("Value"), path+"."+m)
					return
				}
			}
			w.fail(path, "union member %s not in the model", name)
			return
		}
	}
	given := members(v)
	known := map[string]bool{}
	for _, m := range slices.Sorted(maps.Keys(s.Members)) {
		key := m
		if v.Kind() == reflect.Struct {
			key = goName(m)
		}
		known[key] = true
		f, ok := given[key]
		if !ok || !present(f) {
			if slices.Contains(s.Required, m) {
				w.fail(path+"."+m, "required member missing")
			}
			continue
		}
		w.value(s.Members[m].Shape, f, path+"."+m)
	}
	for _, k := range slices.Sorted(maps.Keys(given)) {
		if !known[k] && present(given[k]) {
			w.fail(path+"."+k, "member not in the model")
		}
	}
}

func (w *walker) size(s *shape, n int, path, unit string) {
	if s.Min != nil && float64(n) < *s.Min {
		w.fail(path, "%d %s, want at least %v", n, unit, *s.Min)
	}
	if s.Max != nil && float64(n) > *s.Max {
		w.fail(path, "%d %s, want at most %v", n, unit, *s.Max)
	}
}

func (w *walker) str(s *shape, v reflect.Value, path string) {
	if v.Kind() != reflect.String {
		w.fail(path, "%s, want a string", v.Kind())
		return
	}
	str := v.String()
	// Smithy's @length counts a string's Unicode code points.
	w.size(s, utf8.RuneCountInString(str), path, "characters")
	if len(s.Enum) > 0 && !slices.Contains(s.Enum, str) {
		w.fail(path, "%q, want one of %v", str, s.Enum)
	}
	if s.Pattern != "" {
		re, err := w.m.Pattern(s.Pattern)
		if err == nil && !re.MatchString(str) { // not anchored: Smithy's @pattern, see docs/aws-fidelity.md
			w.fail(path, "%q does not match pattern %s", str, s.Pattern)
		}
	}
}

func (w *walker) blob(s *shape, v reflect.Value, path string) {
	switch {
	case v.Kind() == reflect.Slice && v.Type().Elem().Kind() == reflect.Uint8:
		w.size(s, v.Len(), path, "bytes")
	case v.Kind() == reflect.String: // JSON carries blobs in base64
		b, err := base64.StdEncoding.DecodeString(v.String())
		if err != nil {
			w.fail(path, "blob not base64: %v", err)
			return
		}
		w.size(s, len(b), path, "bytes")
	}
}

func (w *walker) number(s *shape, v reflect.Value, path string) {
	var n float64
	switch {
	case v.CanInt():
		n = float64(v.Int())
	case v.CanUint():
		n = float64(v.Uint())
	case v.CanFloat():
		n = v.Float()
	case v.Type() == reflect.TypeFor[json.Number]():
		f, err := v.Interface().(json.Number).Float64()
		if err != nil {
			w.fail(path, "%v, want a number", v)
			return
		}
		n = f
	default:
		w.fail(path, "%s, want a number", v.Kind())
		return
	}
	if s.Min != nil && n < *s.Min {
		w.fail(path, "%v, want at least %v", n, *s.Min)
	}
	if s.Max != nil && n > *s.Max {
		w.fail(path, "%v, want at most %v", n, *s.Max)
	}
}

// javaEscapes are Java's \uXXXX, which RE2 writes \x{XXXX}.
var javaEscapes = regexp.MustCompile(`\\u([0-9A-Fa-f]{4})`)

// Pattern compiles one of the model's patterns with Go's regexp (RE2). botocore's are
// written for Java's engine: its \uXXXX escapes are translated; the few RE2 cannot
// compile (lookarounds, \p{Print}) come back as an error, and Unchecked lists them for
// the operations the tests send.
func (m *Model) Pattern(p string) (*regexp.Regexp, error) {
	if got, ok := m.patterns.Load(p); ok {
		if re, ok := got.(*regexp.Regexp); ok {
			return re, nil
		}
		return nil, got.(error)
	}
	re, err := regexp.Compile(javaEscapes.ReplaceAllString(p, `\x{$1}`))
	if err != nil {
		m.patterns.Store(p, err)
		return nil, err
	}
	m.patterns.Store(p, re)
	return re, nil
}

// Unchecked lists the patterns, among the shapes operation op's input can reach, that RE2
// cannot compile and Check therefore cannot hold a request to, as "Shape: pattern".
func Unchecked(serviceID, op string) ([]string, error) {
	m, err := Load(serviceID)
	if err != nil {
		return nil, err
	}
	o, ok := m.Operations[op]
	if !ok {
		return nil, fmt.Errorf("%s has no operation %s", serviceID, op)
	}
	seen, out := map[string]bool{}, []string{}
	var walk func(string)
	walk = func(name string) {
		s := m.Shapes[name]
		if seen[name] || s == nil {
			return
		}
		seen[name] = true
		if s.Pattern != "" {
			if _, err := m.Pattern(s.Pattern); err != nil {
				out = append(out, name+": "+s.Pattern)
			}
		}
		for _, r := range s.Members {
			walk(r.Shape)
		}
		for _, r := range []ref{s.Member, s.Key, s.Value} {
			walk(r.Shape)
		}
	}
	if o.Input != nil {
		walk(o.Input.Shape)
	}
	sort.Strings(out)
	return out, nil
}
