package main

import (
	"encoding/json"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/storecrypt/storecrypt/internal/contract"
	"github.com/storecrypt/storecrypt/internal/document"
	"github.com/storecrypt/storecrypt/test/cfn"
)

// TestSynthesizedDocument reads the document out of the template `make synth` wrote to
// cdk.out and checks it against the contract and the agent's validation: the document an
// operator reruns from the console is the one this test read.
func TestSynthesizedDocument(t *testing.T) {
	path := filepath.Join("..", "cdk.out", "StoreCrypt.template.json")
	b, err := os.ReadFile(path)
	if err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("no synthesized template (make test runs `make synth` first): %v", err)
		}
		t.Skipf("no %s: run `make synth` first", path)
	}
	var tpl struct {
		Resources map[string]struct {
			Type       string
			Properties json.RawMessage
		}
	}
	if err := json.Unmarshal(b, &tpl); err != nil {
		t.Fatal(err)
	}
	var doc struct {
		DocumentType string
		Content      struct {
			SchemaVersion string `json:"schemaVersion"`
			Parameters    map[string]struct {
				Type              string   `json:"type"`
				Default           any      `json:"default"`
				AllowedPattern    string   `json:"allowedPattern"`
				InterpolationType string   `json:"interpolationType"`
				Description       string   `json:"description"`
				AllowedValues     []string `json:"allowedValues"`
			} `json:"parameters"`
			MainSteps []struct {
				Action       string              `json:"action"`
				Name         string              `json:"name"`
				Precondition map[string][]string `json:"precondition"`
				Inputs       struct {
					RunCommand []string `json:"runCommand"`
				} `json:"inputs"`
			} `json:"mainSteps"`
		}
	}
	found, revocation := 0, 0
	for _, r := range tpl.Resources {
		if r.Type != "AWS::SSM::Document" {
			continue
		}
		var props struct{ Name string }
		if err := json.Unmarshal(r.Properties, &props); err != nil {
			t.Fatal(err)
		}
		if props.Name != contract.DocumentName {
			revocation++ // checked by internal/document's tests and the stack's
			continue
		}
		found++
		if err := json.Unmarshal(r.Properties, &doc); err != nil {
			t.Fatal(err)
		}
	}
	if found != 1 || revocation != len(contract.RevocationDocuments) || doc.DocumentType != "Command" || doc.Content.SchemaVersion != "2.2" {
		t.Fatalf("got %d apply documents and %d others, type %q, schema %q; want 1 and the %d revocation documents, Command, 2.2", found, revocation, doc.DocumentType, doc.Content.SchemaVersion, len(contract.RevocationDocuments))
	}
	hostile := []string{"x;reboot", "$(reboot)", "`id`", "a\nb", "/mnt/../etc", "../x", "a b'c"}
	for _, p := range contract.DocumentParameters {
		got, ok := doc.Content.Parameters[p.Name]
		if !ok {
			t.Errorf("parameter %s is missing", p.Name)
			continue
		}
		if got.AllowedPattern != p.Pattern || got.InterpolationType != "ENV_VAR" || got.Type != "String" || got.Description == "" {
			t.Errorf("parameter %s: %+v", p.Name, got)
		}
		if !slices.Equal(got.AllowedValues, p.Values) {
			t.Errorf("parameter %s: allowedValues %v, want the drop-down %v", p.Name, got.AllowedValues, p.Values)
		}
		re := regexp.MustCompile(got.AllowedPattern)
		for _, v := range hostile {
			if re.MatchString(v) {
				t.Errorf("parameter %s accepts %q", p.Name, v)
			}
		}
		if s, ok := got.Default.(string); ok && !re.MatchString(s) {
			t.Errorf("parameter %s: default %q fails its pattern", p.Name, s)
		}
	}
	if arch := doc.Content.Parameters[document.ArchitectureParameter]; !slices.Equal(arch.AllowedValues, document.Architectures) || arch.InterpolationType != "" || arch.Default != nil {
		t.Errorf("parameter %s: %+v, want a required drop-down of %v", document.ArchitectureParameter, arch, document.Architectures)
	}
	if len(doc.Content.Parameters) != len(contract.DocumentParameters)+1 {
		t.Errorf("%d parameters, want %d", len(doc.Content.Parameters), len(contract.DocumentParameters)+1)
	}
	var actions []string
	for _, s := range doc.Content.MainSteps {
		actions = append(actions, s.Action+":"+s.Name)
	}
	if !slices.Equal(actions, []string{"aws:downloadContent:" + document.DownloadStep, "aws:runShellScript:apply"}) {
		t.Fatalf("steps %v", actions)
	}
	for _, step := range doc.Content.MainSteps {
		if got := step.Precondition["StringEquals"]; len(step.Precondition) != 1 || !slices.Equal(got, []string{"platformType", "Linux"}) {
			t.Errorf("step %s: precondition %v, want Linux only", step.Name, step.Precondition)
		}
	}
	script := strings.Join(doc.Content.MainSteps[1].Inputs.RunCommand, "\n")
	if !strings.Contains(script, `sha256sum -c`) || !strings.Contains(script, `gzip -dc`) || !strings.Contains(script, `"$bin" apply`) || !strings.Contains(script, `mktemp -d`) {
		t.Errorf("the run step:\n%s", script)
	}
	// No agent parameter reaches the text (an SSM Agent before 3.3.2746.0 would
	// substitute it there; the script refuses to run without the SSM_<name> variables);
	// Architecture, held to its allowed values, only in the check that it is the
	// instance's.
	archCheck := regexp.MustCompile(`^if \[ "\{\{ Architecture \}\}" != "\$arch" \]; then echo "[^"]*\{\{ Architecture \}\}[^"]*" >&2; exit 2; fi$`)
	for _, line := range doc.Content.MainSteps[1].Inputs.RunCommand {
		if strings.Contains(line, "{{") && !archCheck.MatchString(line) {
			t.Errorf("a parameter substituted into the text: %s", line)
		}
	}
}

// TestFeatureFlagsSettled: cdk.json sets every feature flag the synthesized assembly
// reports, as `cdk init` does, so a synth prints no "feature flags are not configured"
// notice and a CDK upgrade that adds a flag fails here until the flag is chosen.
func TestFeatureFlagsSettled(t *testing.T) {
	assembly := filepath.Join("..", "cdk.out")
	unset, err := cfn.UnsetFeatureFlags(assembly)
	if errors.Is(err, fs.ErrNotExist) && os.Getenv("CI") == "" {
		t.Skipf("no cloud assembly: run `make synth` first")
	}
	if err != nil {
		t.Fatalf("%v (make test runs `make synth` first)", err)
	}
	for _, name := range unset {
		t.Errorf("feature flag %s is not set in cdk.json, which sets every flag to its recommended value", name)
	}
}
