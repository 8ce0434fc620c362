package fakeaws

import (
	"errors"
	"slices"
	"strings"
	"testing"
)

// TestPlanCommand holds the SSM Agent model to the agent's rules, on documents written
// here rather than storecrypt's.
func TestPlanCommand(t *testing.T) {
	const params = `"parameters": {
		"Arch": {"type": "String", "allowedValues": ["amd64", "arm64"]},
		"Msg": {"type": "String", "default": "hi", "interpolationType": "ENV_VAR", "allowedPattern": "^[a-z]*$"}}`
	doc := func(pre string) string {
		return `{"schemaVersion": "2.2", ` + params + `, "mainSteps": [{"action": "aws:runShellScript", "name": "s", ` + pre +
			`"inputs": {"runCommand": ["echo {{ Arch }} {{Msg}}"]}}]}`
	}
	for _, tc := range []struct {
		name, pre, platform string
		skipped, fails      bool
	}{
		{"no precondition", ``, "Linux", false, false},
		{"platform met", `"precondition": {"StringEquals": ["platformType", "Linux"]},`, "Linux", false, false},
		{"platform met, either order, any case", `"precondition": {"StringEquals": ["linux", "platformType"]},`, "Linux", false, false},
		{"platform not met", `"precondition": {"StringEquals": ["platformType", "Linux"]},`, "Windows", true, false},
		{"parameter met", `"precondition": {"StringEquals": ["{{ Arch }}", "arm64"]},`, "Linux", false, false},
		{"parameter not met", `"precondition": {"StringEquals": ["{{Arch}}", "amd64"]},`, "Linux", true, false},
		{"no parameter, no platform", `"precondition": {"StringEquals": ["a", "b"]},`, "Linux", false, true},
		{"three arguments", `"precondition": {"StringEquals": ["platformType", "Linux", "x"]},`, "Linux", false, true},
		{"another operator", `"precondition": {"StringLike": ["platformType", "Linux"]},`, "Linux", false, true},
		{"a parameter for the platform", `"precondition": {"StringEquals": ["platformType", "{{ Arch }}"]},`, "Linux", false, true},
		{"a Parameter Store reference", `"precondition": {"StringEquals": ["{{ssm:/p}}", "{{ Arch }}"]},`, "Linux", false, true},
		{"a secure Parameter Store reference", `"precondition": {"StringEquals": ["{{ssm-secure:/p}}", "{{ Arch }}"]},`, "Linux", false, true},
		{"an unmet precondition skips before another fails", `"precondition": {"StringEquals": ["platformType", "Linux"], "StringLike": ["a", "b"]},`, "Windows", true, false},
		{"a met precondition beside an unrecognized one fails", `"precondition": {"StringEquals": ["platformType", "Linux"], "StringLike": ["a", "b"]},`, "Linux", false, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			plan, err := PlanCommand(doc(tc.pre), map[string][]string{"Arch": {"arm64"}}, tc.platform)
			if tc.fails != (err != nil) {
				t.Fatalf("error %v, want failure %v", err, tc.fails)
			}
			if err != nil {
				return
			}
			if got := plan.Steps[0].Skipped != ""; got != tc.skipped {
				t.Errorf("skipped %q, want skipped %v", plan.Steps[0].Skipped, tc.skipped)
			}
			// Arch is substituted; Msg, an ENV_VAR parameter, arrives as SSM_Msg with its
			// default and stays as text.
			if got := plan.Steps[0].Inputs["runCommand"].([]any)[0]; got != "echo arm64 {{Msg}}" {
				t.Errorf("runCommand %q", got)
			}
			if !slices.Equal(plan.Env, []string{"SSM_Msg=hi"}) {
				t.Errorf("env %v", plan.Env)
			}
		})
	}
	// On the instance only allowedPattern holds a value: allowedValues is SendCommand's.
	for _, tc := range []struct {
		name  string
		given map[string][]string
		fails bool
	}{
		{"outside allowedValues", map[string][]string{"Arch": {"s390x"}}, false},
		{"outside allowedPattern", map[string][]string{"Arch": {"amd64"}, "Msg": {"A B"}}, true},
		{"inside allowedPattern", map[string][]string{"Arch": {"arm64"}, "Msg": {"abc"}}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := PlanCommand(doc(""), tc.given, "Linux")
			var refused *ParameterError
			if got := errors.As(err, &refused); got != tc.fails {
				t.Errorf("got %v, want a refusal %v", err, tc.fails)
			}
		})
	}
}

// TestDownloadedTo holds the model of where aws:downloadContent writes an S3 object to
// the agent's s3resource.go: the object's name inside an existing directory or a path
// ending in /, else the destinationPath itself.
func TestDownloadedTo(t *testing.T) {
	const object = "https://s3.us-east-1.amazonaws.com/code/storecrypt/agent-amd64.gz"
	for _, tc := range []struct {
		name, source, dest string
		isDir              bool
		want               string // "" for a refusal
	}{
		{"an existing directory keeps the object's name", object, "/var/lib/x/agent", true, "/var/lib/x/agent/agent-amd64.gz"},
		{"a path ending in / keeps the object's name", object, "/var/lib/x/agent/", false, "/var/lib/x/agent/agent-amd64.gz"},
		{"a path that is no directory is the file", object, "/var/lib/x/agent", false, "/var/lib/x/agent"},
		{"a relative path is under the orchestration directory", object, "agent", false, ""},
		{"a folder is not one object", "https://s3.us-east-1.amazonaws.com/code/storecrypt/", "/var/lib/x/", true, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := Step{Name: "d", Action: "aws:downloadContent", Inputs: map[string]any{"sourceType": "S3",
				"sourceInfo": `{"path":"` + tc.source + `"}`, "destinationPath": tc.dest}}
			got, err := s.DownloadedTo(func(string) bool { return tc.isDir })
			if tc.want == "" {
				if err == nil {
					t.Errorf("got %s, want a refusal", got)
				}
				return
			}
			if err != nil || got != tc.want {
				t.Errorf("got %q, %v, want %q", got, err, tc.want)
			}
		})
	}
}

// TestSSMAgentParameters holds the model to the agent's source, rule by rule: which
// values it keeps, what it resolves from Parameter Store and when, what it checks, and
// how a value reaches the text.
func TestSSMAgentParameters(t *testing.T) {
	// reads answers each read of a parameter with the next value, the last one from then
	// on: the agent reads once to check, once to substitute.
	reads := func(typ string, values ...string) func(string) (StoreParameter, bool) {
		n := 0
		return func(name string) (StoreParameter, bool) {
			if name != "/p" {
				return StoreParameter{}, false
			}
			v := values[min(n, len(values)-1)]
			n++
			return StoreParameter{Type: typ, Value: v}, true
		}
	}
	const pattern = `, "allowedPattern": "^[a-z]+$"`
	for _, tc := range []struct {
		name    string
		param   string // the parameter P's definition after its type
		text    string // the run command
		given   []string
		agent   SSMAgent
		want    string // the run command as the step gets it
		env     []string
		refused bool
	}{
		{"a value spliced in, $$ made $", `"String"`, "echo {{ P }}", []string{"a$$b"}, SSMAgent{}, "echo a$b", nil, false},
		{"a value that is the whole string, as it is", `"String"`, "{{P}}", []string{"a$$b"}, SSMAgent{}, "a$$b", nil, false},
		{"quotes are text, not JSON", `"String"`, "echo {{ P }}", []string{`a"b\`}, SSMAgent{}, `echo a"b\`, nil, false},
		{"a StringList spliced in as JSON", `"StringList"`, "echo {{ P }}", []string{"a", "b"}, SSMAgent{}, `echo ["a","b"]`, nil, false},
		{"a value substituted once, not again", `"String"`, "echo {{ P }} {{ Q }}", []string{"{{ Q }}"}, SSMAgent{}, "echo {{ Q }} q", nil, false},
		{"{{ssm:}} in a value resolved on the instance", `"String"`, "echo {{ P }}", []string{"{{ssm:/p}}"}, SSMAgent{Store: reads("String", "abc")}, "echo abc", nil, false},
		{"allowedPattern holds the resolved value, not the reference", `"String"` + pattern, "echo {{ P }}", []string{"{{ssm:/p}}"}, SSMAgent{Store: reads("String", "abc")}, "echo abc", nil, false},
		{"a resolved value outside allowedPattern", `"String"` + pattern, "echo {{ P }}", []string{"{{ ssm:/p }}"}, SSMAgent{Store: reads("String", "a b")}, "", nil, true},
		{"what is checked and what is substituted are two reads", `"String"` + pattern, "echo {{ P }}", []string{"{{ssm:/p}}"}, SSMAgent{Store: reads("String", "abc", "$(reboot)")}, "echo $(reboot)", nil, false},
		{"a SecureString refused", `"String"`, "echo {{ P }}", []string{"{{ssm:/p}}"}, SSMAgent{Store: reads("SecureString", "s")}, "", nil, true},
		{"a parameter the store lacks refused", `"String"`, "echo {{ P }}", []string{"{{ssm:/nope}}"}, SSMAgent{Store: reads("String", "x")}, "", nil, true},
		{"{{ssm-secure:}} left as text", `"String"`, "echo {{ P }}", []string{"{{ssm-secure:/p}}"}, SSMAgent{Store: reads("SecureString", "s")}, "echo {{ssm-secure:/p}}", nil, false},
		{"ENV_VAR: an environment variable, no text", `"String", "interpolationType": "ENV_VAR"`, "echo {{P}}", []string{"abc"}, SSMAgent{Version: "3.3.2746.0"}, "echo {{P}}", []string{"SSM_P=abc"}, false},
		{"ENV_VAR: resolved from the store", `"String", "interpolationType": "ENV_VAR"`, "echo {{P}}", []string{"{{ssm:/p}}"}, SSMAgent{Store: reads("String", "abc")}, "echo {{P}}", []string{"SSM_P=abc"}, false},
		{"ENV_VAR before 3.3.2746.0: text, no variable", `"String", "interpolationType": "ENV_VAR"`, "echo {{P}}", []string{"abc"}, SSMAgent{Version: "3.3.1142.0"}, "echo abc", nil, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			content := `{"schemaVersion": "2.2", "parameters": {"P": {"type": ` + tc.param + `}, "Q": {"type": "String", "default": "q"}},
				"mainSteps": [{"action": "aws:runShellScript", "name": "s", "inputs": {"runCommand": ["` + strings.ReplaceAll(strings.ReplaceAll(tc.text, `\`, `\\`), `"`, `\"`) + `"]}}]}`
			tc.agent.Platform = "Linux"
			plan, err := tc.agent.Plan(content, map[string][]string{"P": tc.given})
			if tc.refused != (err != nil) {
				t.Fatalf("got error %v, want a refusal %v", err, tc.refused)
			}
			if err != nil {
				return
			}
			if got := plan.Steps[0].Inputs["runCommand"].([]any)[0]; got != tc.want {
				t.Errorf("got runCommand %q, want %q", got, tc.want)
			}
			if !slices.Equal(plan.Env, tc.env) {
				t.Errorf("got env %q, want %q", plan.Env, tc.env)
			}
		})
	}
	// A value given for a name outside ^[a-zA-Z0-9]+$ is dropped: the default stands.
	plan, err := PlanCommand(`{"schemaVersion": "2.2", "parameters": {"My_P": {"type": "String", "default": "d"}},
		"mainSteps": [{"action": "aws:runShellScript", "name": "s", "inputs": {"runCommand": ["echo {{ My_P }}"]}}]}`, map[string][]string{"My_P": {"given"}}, "Linux")
	if err != nil {
		t.Fatal(err)
	}
	if got := plan.Steps[0].Inputs["runCommand"].([]any)[0]; got != "echo d" {
		t.Errorf("got runCommand %q, want %q", got, "echo d")
	}
}
