package fakeaws

import (
	"errors"
	"slices"
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
