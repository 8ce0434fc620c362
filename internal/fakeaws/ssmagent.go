package fakeaws

import (
	"encoding/json"
	"fmt"
	"net/url"
	"path"
	"regexp"
	"slices"
	"sort"
	"strings"

	"github.com/storecrypt/storecrypt/internal/fakeaws/apimodel"
)

// Step is one step of a Command document as the SSM Agent is about to run it: its
// precondition evaluated, the parameters substituted into its inputs.
type Step struct {
	Action string
	Name   string
	Inputs map[string]any
	// Skipped says why the agent skips the step ("" when it runs it).
	Skipped string
}

// Plan is what the SSM Agent makes of a command on one instance: the steps, and the
// SSM_<name> environment of the parameters whose interpolationType is ENV_VAR.
type Plan struct {
	Steps []Step
	Env   []string
}

// SSMAgent is the SSM Agent on one instance, modelled on its source
// (github.com/aws/amazon-ssm-agent at 1c217c8, release 3.3.1142.0) and AWS's pages, not on
// storecrypt's code. Each rule below names the file and function it comes from.
type SSMAgent struct {
	// Platform is the instance's platformType: "Linux", "Windows", "MacOS".
	Platform string
	// Version is the agent's release; "" is the latest.
	Version string
	// Store answers one GetParameters read of Parameter Store with the instance's
	// credentials: the agent reads once to validate and again to substitute, and a test
	// may answer the two differently. Nil: no parameter exists.
	Store func(name string) (StoreParameter, bool)
}

// StoreParameter is a Parameter Store parameter as GetParameters returns it.
type StoreParameter struct{ Type, Value string }

// envVarRelease added interpolationType ENV_VAR ("Troubleshooting parameter handling
// issues": "Verify SSM Agent version is 3.3.2746.0 or later"). The source read here
// predates it: its contracts.Parameter (agent/contracts/model.go) has no such field, so
// an older agent ignores the key and substitutes the parameter as text like any other.
const envVarRelease = "3.3.2746.0"

// PlanCommand is the latest SSM Agent on an instance of platform, with no Parameter
// Store parameters.
func PlanCommand(content string, given map[string][]string, platform string) (Plan, error) {
	return SSMAgent{Platform: platform}.Plan(content, given)
}

// Plan is the agent's side of a command on its instance:
//   - given values are kept only for parameter names matching ^[a-zA-Z0-9]+$; a value
//     under any other name is dropped, and every parameter without a value takes its
//     default (agent/framework/docparser/parameters/parameters.go, ValidParameters;
//     agent/framework/docparser/docparser.go, getValidatedParameters);
//   - {{ssm:name}} references in the values are resolved from Parameter Store with the
//     instance's credentials; a SecureString is refused, a missing parameter too; then
//     every resolved value must match its parameter's allowedPattern, and nothing else is
//     checked: the agent's only mandatory validator is the allowedPattern one, and
//     allowedValues (an optional validator) it applies only to a document run by
//     aws:runDocument (agent/framework/docparser/parameterstore/parameterstore.go,
//     ValidateSSMParameters, getSSMParameterValues;
//     agent/framework/docparser/paramvalidator/paramvalidator.go, GetMandatoryValidators);
//   - the values as given, unresolved, are substituted into every step's inputs, and the
//     inputs' {{ssm:name}} references are then resolved by a second read
//     (docparser.go, replaceValidatedPluginParameters; parameterstore.go, Resolve): what
//     allowedPattern held and what reaches the text are two reads of the store.
//     {{ssm-secure:name}} is resolved by neither (only by some plugins' own fields, such
//     as aws:downloadContent's Git and HTTP credentials), so it stays text;
//   - substitution walks the parsed inputs (parameters.go, ReplaceParameters): a string
//     that is exactly {{ name }} becomes the value itself; elsewhere the value is spliced
//     in, a non-string one as JSON, and every "$$" in it first becomes "$"
//     (ReplaceParameter: kept for users of an old workaround);
//   - from 3.3.2746.0 a parameter with interpolationType ENV_VAR reaches the step as
//     SSM_<name> (resolved from Parameter Store: release 3.3.3572.0, "Fix ENV_VAR
//     interpolation to work correctly with parameter store value") and is left out of the
//     text substitution (not in the source read here: a document that names such a
//     parameter in its text depends on it); an older agent ignores interpolationType;
//   - preconditions: see precondition.
func (a SSMAgent) Plan(content string, given map[string][]string) (Plan, error) {
	doc, err := parseDocument(content)
	if err != nil {
		return Plan{}, err
	}
	values := map[string]any{}
	for name, v := range given {
		p, ok := doc.Parameters[name]
		if !ok || !validName.MatchString(name) {
			continue
		}
		if p.Type == "StringList" {
			values[name] = v
		} else if len(v) > 0 {
			values[name] = v[0]
		}
	}
	for name, p := range doc.Parameters {
		if _, ok := values[name]; !ok {
			values[name] = p.Default
		}
	}
	names := make([]string, 0, len(doc.Parameters))
	for name := range doc.Parameters {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		resolved, err := a.resolve(values[name])
		if err != nil {
			return Plan{}, fmt.Errorf("parameter %s: %w", name, err)
		}
		if err := allowedPattern(name, doc.Parameters[name].AllowedPattern, resolved); err != nil {
			return Plan{}, err
		}
	}
	var plan Plan
	text := map[string]any{}
	for name, v := range values {
		if doc.Parameters[name].InterpolationType == "ENV_VAR" && a.interpolatesEnv() {
			resolved, err := a.resolve(v)
			if err != nil {
				return Plan{}, fmt.Errorf("parameter %s: %w", name, err)
			}
			plan.Env = append(plan.Env, "SSM_"+name+"="+envValue(resolved))
			continue
		}
		text[name] = v
	}
	slices.Sort(plan.Env)
	for _, s := range doc.MainSteps {
		step := Step{Action: s.Action, Name: s.Name}
		skip, err := precondition(s.Precondition, values, a.Platform)
		if err != nil {
			return Plan{}, fmt.Errorf("step %s: %w", s.Name, err)
		}
		step.Skipped = skip
		var inputs any
		if err := json.Unmarshal(s.Inputs, &inputs); err != nil {
			return Plan{}, fmt.Errorf("step %s: inputs: %w", s.Name, err)
		}
		resolved, err := a.resolve(replaceParameters(inputs, text))
		if err != nil {
			return Plan{}, fmt.Errorf("step %s: %w", s.Name, err)
		}
		step.Inputs, _ = resolved.(map[string]any)
		plan.Steps = append(plan.Steps, step)
	}
	return plan, nil
}

func (a SSMAgent) interpolatesEnv() bool {
	return a.Version == "" || apimodel.AtLeast(a.Version, envVarRelease)
}

// envValue joins a list's items with commas (the page shows only String parameters).
func envValue(v any) string {
	list, ok := v.([]any)
	if !ok {
		return stringify(v)
	}
	items := make([]string, len(list))
	for i, e := range list {
		items[i] = stringify(e)
	}
	return strings.Join(items, ",")
}

// validName is parameters.go's paramNameRegex.
var validName = regexp.MustCompile(`^[a-zA-Z0-9]+$`)

// ssmRef is a Parameter Store reference as docparser resolves it
// (parameterstore.go, getValidSSMParamRegexCompiler): spaces, not other white space.
var ssmRef = regexp.MustCompile(`\{\{ *ssm:([/\w.:-]+) *\}\}`)

// resolve replaces every {{ssm:name}} in the strings of v by one read of the store
// (parameterstore.go, Resolve and getSSMParameterValues; parser.go, replaceSSMParameters).
func (a SSMAgent) resolve(v any) (any, error) {
	return walk(v, func(s string) (any, error) {
		var err error
		out := ssmRef.ReplaceAllStringFunc(s, func(ref string) string {
			name := ssmRef.FindStringSubmatch(ref)[1]
			var p StoreParameter
			ok := a.Store != nil
			if ok {
				p, ok = a.Store(name)
			}
			switch {
			case !ok:
				err = fmt.Errorf("input contains invalid parameters [%s]", name)
			case p.Type == "SecureString":
				err = fmt.Errorf("parameters [%s] of type SecureString are not supported", name)
			case p.Type == "StringList":
				err = fmt.Errorf("parameter %s of type StringList cannot be used as a String", name)
			}
			return p.Value
		})
		return out, err
	})
}

// walk applies f to every string of parsed JSON (or a StringList's values), as the
// agent's ReplaceParameters and replaceSSMParameters traverse a step's inputs.
func walk(v any, f func(string) (any, error)) (any, error) {
	switch v := v.(type) {
	case string:
		return f(v)
	case []string:
		list := make([]any, len(v))
		for i, s := range v {
			list[i] = s
		}
		return walk(list, f)
	case []any:
		out := make([]any, len(v))
		for i, e := range v {
			r, err := walk(e, f)
			if err != nil {
				return nil, err
			}
			out[i] = r
		}
		return out, nil
	case map[string]any:
		out := map[string]any{}
		for k, e := range v {
			r, err := walk(e, f)
			if err != nil {
				return nil, err
			}
			out[k] = r
		}
		return out, nil
	}
	return v, nil
}

// replaceParameters is parameters.go's ReplaceParameters over parsed JSON.
func replaceParameters(v any, values map[string]any) any {
	out, _ := walk(v, func(s string) (any, error) {
		for name, value := range values {
			if validName.MatchString(name) && regexp.MustCompile(`^\{\{\s*`+name+`\s*\}\}$`).MatchString(s) {
				return value, nil
			}
		}
		return replaceParameter(s, values), nil
	})
	return out
}

// replaceParameter is parameters.go's ReplaceParameter: every {{ name }} in s at once (a
// value holding another reference is not substituted again), "$$" in values made "$".
func replaceParameter(s string, values map[string]any) string {
	type token struct {
		end  int
		name string
	}
	tokens := map[int]token{}
	for name := range values {
		for _, m := range regexp.MustCompile(`\{\{\s*`+regexp.QuoteMeta(name)+`\s*\}\}`).FindAllStringIndex(s, -1) {
			tokens[m[0]] = token{m[1], name}
		}
	}
	starts := make([]int, 0, len(tokens))
	for start := range tokens {
		starts = append(starts, start)
	}
	sort.Ints(starts)
	var b strings.Builder
	last := 0
	for _, start := range starts {
		b.WriteString(s[last:start])
		b.WriteString(strings.ReplaceAll(stringify(values[tokens[start].name]), "$$", "$"))
		last = tokens[start].end
	}
	b.WriteString(s[last:])
	return b.String()
}

// stringify is parameters.go's convertToString: a string as it is, anything else as JSON.
func stringify(v any) string {
	if s, ok := v.(string); ok {
		return s
	}
	b, _ := json.Marshal(v)
	return string(b)
}

// allowedPattern is the agent's allowedRegexParamValidator
// (paramvalidator/allowedregexparamvalidator/allowedregexparamvalidator.go, Validate): an
// empty pattern admits anything; a list is checked item by item; a parameter with no
// value and no default fails; its errors are the agent's wording.
func allowedPattern(name, pattern string, value any) error {
	if pattern == "" {
		return nil
	}
	re, err := regexp.Compile(pattern)
	if err != nil {
		return &ParameterError{Name: name, Detail: "encountered error while compiling allowed pattern - internal error: " + err.Error()}
	}
	var values []any
	switch v := value.(type) {
	case string:
		values = []any{v}
	case []any:
		values = v
	default:
		return &ParameterError{Name: name, Detail: fmt.Sprintf("invalid parameter type with parameter value %v", v)}
	}
	for _, v := range values {
		if s := stringify(v); !re.MatchString(s) {
			return &ParameterError{Name: name, Detail: fmt.Sprintf("parameter value /%s/ does not match the allowed pattern /%s/", s, pattern)}
		}
	}
	return nil
}

// ParameterError is the agent's refusal of a parameter value: the command fails on the
// instance, after SendCommand accepted it.
type ParameterError struct{ Name, Detail string }

func (e *ParameterError) Error() string {
	return fmt.Sprintf("error thrown in 'AllowedRegexParamValidator' while validating parameter /%s/: %s", e.Name, e.Detail)
}

// ssmArg and secureArg are what evaluatePreconditions refuses in an argument
// (agent/ssm/ssmparameterresolver/common.go).
var (
	ssmArg    = regexp.MustCompile(`{{\s*(ssm:[\w-/]+)\s*}}`)
	secureArg = regexp.MustCompile(`{{\s*(ssm-secure:[\w-/]+)\s*}}`)
)

// precondition evaluates a step's precondition as the agent does
// (agent/framework/runpluginutil/runpluginutil.go, evaluatePreconditions and the
// decision after it; docparser.go, validateAndReplaceParametersInPreconditionArguments):
// StringEquals with exactly two arguments, not identical, neither holding an {{ssm:}} or
// {{ssm-secure:}} reference; either "platformType" and a platform (either order, any
// case, no document parameter in it), or arguments of which at least one holds a
// document parameter, compared after substitution of the values as given, unresolved
// (SSM Agent 3.0.196.0: "Add support for document parameters in document plugin's
// preconditions"). Every operator is evaluated: any unmet one skips the step ("" when it
// runs, else why), and only then does an unrecognized one fail it ("Unrecognized
// precondition(s)").
func precondition(pre map[string]json.RawMessage, values map[string]any, platform string) (string, error) {
	substitute := func(s string) string { return stringify(replaceParameters(s, values)) }
	var unmet, unrecognized []string
	for op, raw := range pre {
		var args []string
		switch {
		case op != "StringEquals":
			unrecognized = append(unrecognized, fmt.Sprintf("unrecognized operator: %q", op))
		case json.Unmarshal(raw, &args) != nil || len(args) != 2:
			unrecognized = append(unrecognized, fmt.Sprintf("%q: operator accepts exactly 2 arguments", op))
		case args[0] == args[1]:
			unrecognized = append(unrecognized, fmt.Sprintf("%q: operator's arguments can't be identical", op))
		case ssmArg.MatchString(args[0]) || ssmArg.MatchString(args[1]):
			unrecognized = append(unrecognized, fmt.Sprintf("%q: operator's arguments can't contain SSM parameters", op))
		case secureArg.MatchString(args[0]) || secureArg.MatchString(args[1]):
			unrecognized = append(unrecognized, fmt.Sprintf("%q: operator's arguments can't contain secure SSM parameters", op))
		case args[0] == "platformType" || args[1] == "platformType":
			want := args[1]
			if args[1] == "platformType" {
				want = args[0]
			}
			if !strings.EqualFold(substitute(want), want) {
				unrecognized = append(unrecognized, fmt.Sprintf("%q: the second argument for the platformType variable can't contain document parameters", op))
			} else if !strings.EqualFold(want, platform) {
				unmet = append(unmet, fmt.Sprintf("%s: [%s, %s] on %s", op, args[0], args[1], platform))
			}
		default:
			a, b := substitute(args[0]), substitute(args[1])
			if a == args[0] && b == args[1] {
				unrecognized = append(unrecognized, fmt.Sprintf("%q: at least one of operator's arguments must contain a valid document parameter", op))
			} else if a != b {
				unmet = append(unmet, fmt.Sprintf("%s: [%s, %s]", op, args[0], args[1]))
			}
		}
	}
	sort.Strings(unmet)
	sort.Strings(unrecognized)
	if len(unmet) > 0 {
		return strings.Join(unmet, ", "), nil
	}
	if len(unrecognized) > 0 {
		return "", fmt.Errorf("unrecognized precondition(s): '%s'", strings.Join(unrecognized, ", "))
	}
	return "", nil
}

// SourcePath is where an aws:downloadContent step of sourceType S3 fetches from: its
// sourceInfo's path.
func (s Step) SourcePath() (string, error) {
	info, _ := s.Inputs["sourceInfo"].(string)
	var src struct {
		Path string `json:"path"`
	}
	if err := json.Unmarshal([]byte(info), &src); err != nil {
		return "", fmt.Errorf("step %s: sourceInfo %q: %w", s.Name, info, err)
	}
	return src.Path, nil
}

// Downloads are the paths the plan's aws:downloadContent steps fetch, skipped steps left
// out.
func (p Plan) Downloads() ([]string, error) {
	var paths []string
	for _, s := range p.Steps {
		if s.Action != "aws:downloadContent" || s.Skipped != "" {
			continue
		}
		path, err := s.SourcePath()
		if err != nil {
			return nil, err
		}
		paths = append(paths, path)
	}
	return paths, nil
}

// DownloadedTo is the file an aws:downloadContent step of sourceType S3 writes one
// object to, where isDir says whether a path is a directory on the instance: inside an
// absolute destinationPath under the object's name when destinationPath is a directory
// or ends in a path separator; else destinationPath itself, in its parent directory
// under its base name (SSM Agent, agent/plugins/downloadcontent/s3resource/s3resource.go,
// DownloadRemoteResource: "if the file path provided exists as a directory or if it is in
// the format, that would be the localFilePath", else filepath.Dir and filepath.Base of
// destPath). A key ending in / is a folder to the agent, not one object.
func (s Step) DownloadedTo(isDir func(string) bool) (string, error) {
	src, err := s.SourcePath()
	if err != nil {
		return "", err
	}
	u, err := url.Parse(src)
	if err != nil || u.Path == "" || strings.HasSuffix(u.Path, "/") {
		return "", fmt.Errorf("step %s: %q is not one S3 object", s.Name, src)
	}
	dest, _ := s.Inputs["destinationPath"].(string)
	// downloadcontent.go puts a relative (or empty) destinationPath under the
	// orchestration directory, which the model does not know.
	if !path.IsAbs(dest) {
		return "", fmt.Errorf("step %s: destinationPath %q is not absolute", s.Name, dest)
	}
	if strings.HasSuffix(dest, "/") || isDir(dest) {
		return path.Join(dest, path.Base(u.Path)), nil
	}
	return dest, nil
}
