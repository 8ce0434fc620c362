// Package apimodel checks requests against AWS's own API models, the JSON that botocore
// ships (data/<service>/<api-version>/service-2.json[.gz]): required members, lengths,
// patterns, enums, list and map sizes, number ranges, members the model does not know.
// The fakes and the emulators' clients run every request the tests send through it, so a
// request AWS would refuse fails the test that sent it, whatever the code does with the
// error. It is the model's reading of a request, not ours: no rule here is written by hand.
//
// It sits under fakeaws because the fake account (tests and demo) and the emulators'
// clients use it and no product package may: it is a test oracle.
package apimodel

import (
	"compress/gzip"
	"context"
	_ "embed"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"unicode"
	"unicode/utf8"

	awsmiddleware "github.com/aws/aws-sdk-go-v2/aws/middleware"
	"github.com/aws/smithy-go/middleware"

	"github.com/storecrypt/storecrypt/internal/modroot"
)

// EnvData names botocore's data directory, in place of the one python3's botocore has.
const EnvData = "STORECRYPT_BOTOCORE_DATA"

// Dirs maps the SDK's service id (awsmiddleware.GetServiceID) to botocore's directory.
// TestDirsMatchModels holds each to the model's own metadata.serviceId.
var Dirs = map[string]string{
	"CloudFormation":  "cloudformation",
	"CloudWatch Logs": "logs",
	"DynamoDB":        "dynamodb",
	"EC2":             "ec2",
	"EventBridge":     "events",
	"IAM":             "iam",
	"KMS":             "kms",
	"S3":              "s3",
	"SQS":             "sqs",
	"SSM":             "ssm",
	"STS":             "sts",
	"SecurityHub":     "securityhub",
}

// Violation is a request that breaks its service's model.
type Violation struct {
	Service, Operation string
	Path               string // where in the input, e.g. Findings[0].ProductFields["a"]
	Rule               string // what the model says and what the request had
}

func (v *Violation) Error() string {
	return fmt.Sprintf("%s %s: %s: %s (botocore model)", v.Service, v.Operation, v.Path, v.Rule)
}

type ref struct {
	Shape string `json:"shape"`
}

type shape struct {
	Type      string         `json:"type"`
	Required  []string       `json:"required"`
	Members   map[string]ref `json:"members"`
	Member    ref            `json:"member"`
	Key       ref            `json:"key"`
	Value     ref            `json:"value"`
	Min       *float64       `json:"min"`
	Max       *float64       `json:"max"`
	Pattern   string         `json:"pattern"`
	Enum      []string       `json:"enum"`
	Union     bool           `json:"union"`
	Streaming bool           `json:"streaming"`
	Document  bool           `json:"document"`
}

// Model is one service's model.
type Model struct {
	APIVersion string `json:"-"` // the api-version directory it was read from
	File       string `json:"-"`
	Metadata   struct {
		ServiceID string `json:"serviceId"`
		Protocol  string `json:"protocol"`
	} `json:"metadata"`
	Operations map[string]struct {
		Input *ref `json:"input"`
	} `json:"operations"`
	Shapes map[string]*shape `json:"shapes"`

	patterns sync.Map // pattern -> *regexp.Regexp or error
}

var (
	dataDir = sync.OnceValues(locate)
	models  sync.Map // dir -> func() (*Model, error)
)

// MinBotocore is the oldest botocore whose models know every request the tests send
// (S3's IfNoneMatch, EC2's newer instance types): an older model refuses valid requests,
// so it is no judge. It is Debian 13's python3-botocore, which make deps unpacks into
// .cache/botocore where python3 has none as new (scripts/install-deps.sh reads this file).
//
//go:embed botocore-min
var minBotocore string

// MinBotocore is the oldest botocore accepted.
func MinBotocore() string { return strings.TrimSpace(minBotocore) }

// cached is where make deps unpacks Debian's python3-botocore, under the module's root.
const cached = ".cache/botocore/usr/lib/python3/dist-packages/botocore"

// locate finds botocore's data directory: $STORECRYPT_BOTOCORE_DATA as given, else the
// first of python3's botocore and the one make deps unpacked that is at least
// MinBotocore.
func locate() (string, error) {
	if d := os.Getenv(EnvData); d != "" {
		return d, nil
	}
	return pick(candidates())
}

// pick is the data directory of the first botocore package at least MinBotocore.
func pick(pkgs []string) (string, error) {
	var tried []string
	for _, pkg := range pkgs {
		v, err := version(pkg)
		if err != nil {
			tried = append(tried, err.Error())
			continue
		}
		if !AtLeast(v, MinBotocore()) {
			tried = append(tried, fmt.Sprintf("%s is botocore %s", pkg, v))
			continue
		}
		return filepath.Join(pkg, "data"), nil
	}
	return "", fmt.Errorf("no botocore %s or later for AWS's API models (run make deps, or set %s): %s",
		MinBotocore(), EnvData, strings.Join(tried, "; "))
}

// candidates are the botocore package directories to try, python3's first.
func candidates() []string {
	var dirs []string
	if out, err := exec.Command("python3", "-c", "import botocore,os;print(os.path.dirname(botocore.__file__))").Output(); err == nil {
		dirs = append(dirs, strings.TrimSpace(string(out)))
	}
	if root, err := modroot.Dir(); err == nil {
		dirs = append(dirs, filepath.Join(root, cached))
	}
	return dirs
}

var versionLine = regexp.MustCompile(`(?m)^__version__ = ['"]([0-9.]+)['"]`)

// version reads botocore's version from its package, without running Python.
func version(pkg string) (string, error) {
	b, err := os.ReadFile(filepath.Join(pkg, "__init__.py"))
	if err != nil {
		return "", fmt.Errorf("botocore's version: %w", err)
	}
	m := versionLine.FindSubmatch(b)
	if m == nil {
		return "", fmt.Errorf("botocore's version: no __version__ in %s", pkg)
	}
	return string(m[1]), nil
}

// AtLeast reports whether the dotted release number v (botocore's, the SSM Agent's) is
// min or later; a missing part counts as 0.
func AtLeast(v, min string) bool {
	a, b := strings.Split(v, "."), strings.Split(min, ".")
	for i := range max(len(a), len(b)) {
		var x, y int
		if i < len(a) {
			x, _ = strconv.Atoi(a[i])
		}
		if i < len(b) {
			y, _ = strconv.Atoi(b[i])
		}
		if x != y {
			return x > y
		}
	}
	return true
}

// Load returns the model of the service the SDK calls serviceID, from the newest
// api-version botocore has.
func Load(serviceID string) (*Model, error) {
	dir, ok := Dirs[serviceID]
	if !ok {
		return nil, fmt.Errorf("no botocore model known for service %q: add it to apimodel.Dirs", serviceID)
	}
	load, _ := models.LoadOrStore(dir, sync.OnceValues(func() (*Model, error) { return read(dir) }))
	return load.(func() (*Model, error))()
}

func read(dir string) (*Model, error) {
	data, err := dataDir()
	if err != nil {
		return nil, err
	}
	versions, err := os.ReadDir(filepath.Join(data, dir))
	if err != nil {
		return nil, fmt.Errorf("reading botocore's models of %s: %w", dir, err)
	}
	var newest string
	for _, v := range versions { // api-versions are dates, so the greatest name is the newest
		if v.IsDir() && v.Name() > newest {
			newest = v.Name()
		}
	}
	for _, name := range []string{"service-2.json.gz", "service-2.json"} {
		path := filepath.Join(data, dir, newest, name)
		f, err := os.Open(path)
		if errors.Is(err, os.ErrNotExist) {
			continue
		} else if err != nil {
			return nil, fmt.Errorf("reading botocore's model of %s: %w", dir, err)
		}
		defer f.Close()
		var r io.Reader = f
		if strings.HasSuffix(name, ".gz") {
			if r, err = gzip.NewReader(f); err != nil {
				return nil, fmt.Errorf("reading %s: %w", path, err)
			}
		}
		m := &Model{APIVersion: newest, File: path}
		if err := json.NewDecoder(r).Decode(m); err != nil {
			return nil, fmt.Errorf("decoding %s: %w", path, err)
		}
		return m, nil
	}
	return nil, fmt.Errorf("no service-2.json[.gz] for %s in %s", dir, filepath.Join(data, dir, newest))
}

// Check validates a typed SDK input (*kms.EncryptInput, ...) of operation op of the
// service the SDK calls serviceID. The SDK's field names are the model's member names; a
// nil pointer, slice or map, an empty enum and a zero number or bool held by value are
// absent, as the SDK's serializers leave them out.
func Check(serviceID, op string, input any) error {
	return check(serviceID, op, reflect.ValueOf(input))
}

// CheckJSON validates the JSON body of an awsJson request (KMS, DynamoDB, ...), whose
// keys are the model's member names.
func CheckJSON(serviceID, op string, body []byte) error {
	var v any
	d := json.NewDecoder(strings.NewReader(string(body)))
	d.UseNumber()
	if len(strings.TrimSpace(string(body))) > 0 {
		if err := d.Decode(&v); err != nil {
			return fmt.Errorf("decoding a %s %s request: %w", serviceID, op, err)
		}
	}
	return check(serviceID, op, reflect.ValueOf(v))
}

func check(serviceID, op string, v reflect.Value) error {
	m, err := Load(serviceID)
	if err != nil {
		return err
	}
	o, ok := m.Operations[op]
	if !ok {
		return fmt.Errorf("%s has no operation %s in %s", serviceID, op, m.File)
	}
	if o.Input == nil {
		return nil
	}
	w := walker{m: m, service: serviceID, op: op}
	w.value(o.Input.Shape, v, op+"Input")
	return errors.Join(w.errs...)
}

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

// TB is the part of testing.TB a Log fails.
type TB interface {
	Helper()
	Errorf(format string, args ...any)
	Cleanup(func())
}

// Log keeps the violations that the clients of a fake or an emulator met, so that the
// test fails on them even where the code only logged the error it got.
type Log struct {
	mu   sync.Mutex
	errs []error
}

// Report keeps err.
func (l *Log) Report(err error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.errs = append(l.errs, err)
}

// Violations returns what was reported, in order.
func (l *Log) Violations() []error {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]error(nil), l.errs...)
}

// FailOn has t fail at its end for each violation reported. A nil t (the demo) leaves
// reading Violations to the caller.
func (l *Log) FailOn(t TB) {
	if t == nil {
		return
	}
	t.Cleanup(func() {
		t.Helper()
		for _, err := range l.Violations() {
			if v := (*Violation)(nil); errors.As(err, &v) {
				t.Errorf("a request the service would refuse: %v", err)
			} else {
				t.Errorf("a request not checked against its API model: %v", err)
			}
		}
	})
}

// Validate is an API option (aws.Config.APIOptions, or a client's Options.APIOptions) that
// checks each request's typed input before the SDK serializes it. A request that breaks
// the model, or one no model can be found for, is handed to report, where a test keeps it
// to fail (the caller may only log an error), and then sent: the emulator answers as it
// would.
func Validate(report func(error)) func(*middleware.Stack) error {
	return func(s *middleware.Stack) error {
		return s.Initialize.Add(middleware.InitializeMiddlewareFunc("apimodel.validate", func(ctx context.Context, in middleware.InitializeInput, next middleware.InitializeHandler) (middleware.InitializeOutput, middleware.Metadata, error) {
			if err := Check(awsmiddleware.GetServiceID(ctx), awsmiddleware.GetOperationName(ctx), in.Parameters); err != nil {
				report(err)
			}
			return next.HandleInitialize(ctx, in)
		}), middleware.After)
	}
}
