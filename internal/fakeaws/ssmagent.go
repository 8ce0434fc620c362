package fakeaws

import (
	"encoding/json"
	"fmt"
	"net/url"
	"path"
	"regexp"
	"slices"
	"strings"
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

// paramRef is a document parameter reference, {{name}} with optional spaces; an
// {{ssm:...}} Parameter Store reference does not match.
var paramRef = regexp.MustCompile(`\{\{\s*([A-Za-z0-9_]+)\s*\}\}`)

// PlanCommand is the SSM Agent's side of a command on an instance whose platformType is
// platform ("Linux", "Windows", "MacOS"), from its documented behaviour and its source
// (github.com/aws/amazon-ssm-agent, agent/framework/docparser and the executer's
// evaluatePreconditions), not from storecrypt's code:
//   - values not given take the parameter's default; then every parameter's value must
//     match its allowedPattern, and nothing else is checked: the agent's only mandatory
//     parameter validator is the allowedPattern one, and allowedValues (an optional
//     validator) it applies only to a document run by aws:runDocument
//     (agent/framework/docparser/paramvalidator/paramvalidator.go, GetMandatoryValidators;
//     agent/framework/docparser/parameterstore/parameterstore.go, ValidateSSMParameters).
//     A value that reaches the instance without SendCommand's checks (a {{ssm:...}}
//     reference resolved there, say) is held by allowedPattern alone;
//   - a parameter with interpolationType ENV_VAR reaches the step as SSM_<name>
//     ("Troubleshooting parameter handling issues"), and is not substituted into the text;
//     every other parameter is substituted wherever {{ name }} appears in the inputs;
//   - a step's precondition is StringEquals with exactly two arguments: either
//     "platformType" and a platform (case-insensitive), or arguments of which at least one
//     holds a document parameter, compared after substitution (SSM Agent 3.0.196.0: "Add
//     support for document parameters in document plugin's preconditions"). An unmet
//     precondition skips the step; any other precondition fails the command.
func PlanCommand(content string, given map[string][]string, platform string) (Plan, error) {
	doc, err := parseDocument(content)
	if err != nil {
		return Plan{}, err
	}
	values := map[string]string{}
	var plan Plan
	for name, p := range doc.Parameters {
		v, ok := given[name]
		if !ok {
			v = []string{fmt.Sprint(p.Default)}
		}
		if err := allowedPattern(name, p.AllowedPattern, v); err != nil {
			return Plan{}, err
		}
		value := strings.Join(v, ",")
		if p.InterpolationType == "ENV_VAR" {
			plan.Env = append(plan.Env, "SSM_"+name+"="+value)
			continue
		}
		values[name] = value
	}
	slices.Sort(plan.Env)
	substitute := func(s string) string {
		return paramRef.ReplaceAllStringFunc(s, func(ref string) string {
			if v, ok := values[paramRef.FindStringSubmatch(ref)[1]]; ok {
				return v
			}
			return ref
		})
	}
	for _, s := range doc.MainSteps {
		step := Step{Action: s.Action, Name: s.Name}
		skip, err := precondition(s.Precondition, substitute, platform)
		if err != nil {
			return Plan{}, fmt.Errorf("step %s: %w", s.Name, err)
		}
		step.Skipped = skip
		// Substituting into the JSON text: a value that would need escaping there breaks
		// the inputs, which fails the command as it would break the agent's.
		if err := json.Unmarshal([]byte(substitute(string(s.Inputs))), &step.Inputs); err != nil {
			return Plan{}, fmt.Errorf("step %s: inputs after substitution: %w", s.Name, err)
		}
		plan.Steps = append(plan.Steps, step)
	}
	return plan, nil
}

// allowedPattern is the agent's allowedRegexParamValidator: an empty pattern admits
// anything, and its error is the agent's wording.
func allowedPattern(name, pattern string, values []string) error {
	if pattern == "" {
		return nil
	}
	re, err := regexp.Compile(pattern)
	if err != nil {
		return fmt.Errorf("parameter %s: encountered error while compiling allowed pattern - internal error: %w", name, err)
	}
	for _, v := range values {
		if !re.MatchString(v) {
			return &ParameterError{Name: name, Value: v, Pattern: pattern}
		}
	}
	return nil
}

// ParameterError is the agent's refusal of a parameter value: the command fails on the
// instance, after SendCommand accepted it.
type ParameterError struct{ Name, Value, Pattern string }

func (e *ParameterError) Error() string {
	return fmt.Sprintf("error thrown in 'AllowedRegexParamValidator' while validating parameter /%s/: parameter value /%s/ does not match the allowed pattern /%s/", e.Name, e.Value, e.Pattern)
}

// precondition evaluates a step's precondition: "" when the step runs, the reason when
// it is skipped, an error where the agent fails the step ("Unrecognized precondition(s)").
func precondition(pre map[string]json.RawMessage, substitute func(string) string, platform string) (string, error) {
	for op, raw := range pre {
		if op != "StringEquals" {
			return "", fmt.Errorf("unrecognized operator %q", op)
		}
		var args []string
		if err := json.Unmarshal(raw, &args); err != nil || len(args) != 2 {
			return "", fmt.Errorf("%q: operator accepts exactly 2 arguments", op)
		}
		if args[0] == args[1] {
			return "", fmt.Errorf("%q: operator's arguments can't be identical", op)
		}
		if args[0] == "platformType" || args[1] == "platformType" {
			want := args[1]
			if args[1] == "platformType" {
				want = args[0]
			}
			if substitute(want) != want {
				return "", fmt.Errorf("%q: the second argument for the platformType variable can't contain document parameters", op)
			}
			if !strings.EqualFold(want, platform) {
				return fmt.Sprintf("%s: [platformType, %s] on %s", op, want, platform), nil
			}
			continue
		}
		a, b := substitute(args[0]), substitute(args[1])
		if a == args[0] && b == args[1] {
			return "", fmt.Errorf("%q: at least one of operator's arguments must contain a valid document parameter", op)
		}
		if a != b {
			return fmt.Sprintf("%s: [%s, %s]", op, args[0], args[1]), nil
		}
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
