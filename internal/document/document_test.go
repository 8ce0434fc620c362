package document

import (
	"encoding/json"
	"flag"
	"io"
	"regexp"
	"strings"
	"testing"

	"github.com/storecrypt/storecrypt/internal/contract"
	"github.com/storecrypt/storecrypt/internal/golden"
)

var artifacts = []Artifact{
	{Arch: "arm64", URL: "https://bucket.s3.us-east-1.amazonaws.com/arm", SHA256: strings.Repeat("b", 64)},
	{Arch: "amd64", URL: "https://bucket.s3.us-east-1.amazonaws.com/amd", SHA256: strings.Repeat("a", 64)},
}

func defaults() contract.AgentOptions {
	o := contract.DefaultAgentOptions()
	o.KMSKeyID = "arn:aws:kms:us-east-1:111122223333:key/11111111-2222-4333-8444-555555555555"
	return o
}

// TestParametersAreAgentFlags: every parameter is an agent flag, and every agent flag
// (but --wait, which only a person at a terminal needs) is a parameter.
func TestParametersAreAgentFlags(t *testing.T) {
	o := contract.DefaultAgentOptions()
	fs := flag.NewFlagSet("agent", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	o.RegisterFlags(fs)
	params := map[string]bool{}
	for _, p := range contract.DocumentParameters {
		if fs.Lookup(p.Flag) == nil {
			t.Errorf("parameter %s maps to --%s, which the agent does not have", p.Name, p.Flag)
		}
		params[p.Flag] = true
	}
	fs.VisitAll(func(f *flag.Flag) {
		if !params[f.Name] && f.Name != contract.FlagWait {
			t.Errorf("agent flag --%s has no document parameter", f.Name)
		}
	})
}

// TestPatternsAgreeWithTheAgent: for each parameter, a value the allowedPattern accepts
// is one the agent accepts, and hostile values fail both.
func TestPatternsAgreeWithTheAgent(t *testing.T) {
	hostile := []string{"x; reboot", "$(reboot)", "`reboot`", "a\nb", "../../etc", "/mnt/../etc", "'", `"`, "a|b", "a&b", "${IFS}"}
	good := map[string][]string{
		"KeySource":  contract.KeySources,
		"KmsKeyId":   {"", "alias/storecrypt", "arn:aws:kms:eu-west-1:111122223333:key/11111111-2222-4333-8444-555555555555"},
		"Secret":     {"", "s3://my-bucket/seed/passphrase"},
		"MountPoint": {"/mnt/instance-store", "/data/scratch"},
		"Filesystem": contract.Filesystems,
		"Model":      {contract.DefaultModel, "QEMU NVMe Ctrl"},
		"Devices":    {"", "/dev/nvme1n1", "/dev/nvme1n1,/dev/nvme2n1"},
		"Discard":    {"true", "false"},
		"Wipe":       {"true", "false"},
	}
	for _, p := range contract.DocumentParameters {
		re := regexp.MustCompile(p.Pattern)
		for _, v := range good[p.Name] {
			if !re.MatchString(v) {
				t.Errorf("%s: pattern rejects the good value %q", p.Name, v)
			}
			if err := agentAccepts(p.Flag, v); err != nil {
				t.Errorf("%s=%q: the pattern accepts it but the agent says %v", p.Name, v, err)
			}
		}
		for _, v := range hostile {
			if re.MatchString(v) {
				t.Errorf("%s: pattern accepts the hostile value %q", p.Name, v)
			}
		}
	}
}

// agentAccepts sets one flag as the document would and runs the agent's validation.
func agentAccepts(name, value string) error {
	o := contract.DefaultAgentOptions()
	o.KMSKeyID, o.Secret = "alias/storecrypt", "s3://bucket/seed"
	fs := flag.NewFlagSet("agent", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	o.RegisterFlags(fs)
	if err := fs.Parse([]string{"--" + name + "=" + value}); err != nil {
		return err
	}
	if o.KMSKeyID == "" || o.Secret == "" {
		// An empty key or secret is valid for the key sources that do not use it.
		o.KeySource = contract.KeySourceEphemeral
	}
	return o.Validate()
}

func TestDefaultsAreValid(t *testing.T) {
	content := Content(defaults(), artifacts)
	params := content["parameters"].(map[string]any)
	for _, p := range contract.DocumentParameters {
		spec := params[p.Name].(map[string]any)
		if spec["interpolationType"] != "ENV_VAR" || spec["description"] == "" {
			t.Errorf("%s: %v", p.Name, spec)
		}
		if !regexp.MustCompile(p.Pattern).MatchString(spec["default"].(string)) {
			t.Errorf("%s: default %q fails its own allowedPattern", p.Name, spec["default"])
		}
	}
}

// TestScriptReadsOnlyEnvironment: no parameter is ever substituted into shell text.
func TestScriptReadsOnlyEnvironment(t *testing.T) {
	script := strings.Join(Script(artifacts), "\n")
	if strings.Contains(script, "{{") {
		t.Errorf("the script substitutes a parameter as text:\n%s", script)
	}
	for _, p := range contract.DocumentParameters {
		if !strings.Contains(script, `--`+p.Flag+`="$SSM_`+p.Name+`"`) {
			t.Errorf("the script does not pass $SSM_%s quoted to --%s", p.Name, p.Flag)
		}
	}
	for _, a := range artifacts {
		if !strings.Contains(script, a.SHA256) {
			t.Errorf("the script does not check the %s digest", a.Arch)
		}
	}
}

func TestGolden(t *testing.T) {
	got, err := json.MarshalIndent(Content(defaults(), artifacts), "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	golden.Check(t, "document.json", append(got, '\n'))
}
