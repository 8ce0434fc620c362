package storecrypt_test

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/storecrypt/storecrypt/internal/contract"
)

// TestExampleApp synthesizes examples/existing-stack, an app that is its own module and
// imports the construct as any team's app would, with no BuildDir: the construct finds
// storecrypt's source through the go command and builds the code itself. The template
// must hold storecrypt inside the team's stack, wired to the team's topic, role and
// group. It is run as its doc comment tells a user to, `go run .` without CDK_OUTDIR, from
// a copy of the app (whose replace points back at this checkout) so cdk.out is the copy's.
func TestExampleApp(t *testing.T) {
	app := t.TempDir()
	example := filepath.Join("..", "..", "examples", "existing-stack")
	repo, err := filepath.Abs(filepath.Join("..", ".."))
	must(t, err)
	for _, name := range []string{"main.go", "go.mod", "go.sum"} {
		b, err := os.ReadFile(filepath.Join(example, name))
		must(t, err)
		if name == "go.mod" {
			b = []byte(strings.Replace(string(b), "=> ../..", "=> "+repo, 1))
		}
		must(t, os.WriteFile(filepath.Join(app, name), b, 0o644))
	}
	cmd := exec.CommandContext(context.Background(), "go", "run", ".")
	cmd.Dir = app
	cmd.Env = append(slices.DeleteFunc(os.Environ(), func(kv string) bool { return strings.HasPrefix(kv, "CDK_OUTDIR=") }),
		"JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION=20")
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go run . in a copy of %s: %v\n%s", example, err, b)
	}
	b, err := os.ReadFile(filepath.Join(app, "cdk.out", "Platform.template.json"))
	must(t, err)
	var tpl struct {
		Resources map[string]struct {
			Type       string
			Properties map[string]any
		}
		Outputs map[string]any
	}
	must(t, json.Unmarshal(b, &tpl))
	count := map[string]int{}
	var onCall, operators, workers string
	for id, r := range tpl.Resources {
		count[r.Type]++
		switch {
		case r.Type == "AWS::SNS::Topic" && strings.HasPrefix(id, "OnCall"):
			onCall = id
		case r.Type == "AWS::IAM::Group":
			operators = id
		case r.Type == "AWS::IAM::Role" && strings.HasPrefix(id, "Workers"):
			workers = id
		}
	}
	for typ, want := range map[string]int{"AWS::SSM::Document": 1, "AWS::KMS::Key": 1, "AWS::Lambda::Function": 2, "AWS::DynamoDB::Table": 1, "AWS::CloudWatch::Alarm": 8} {
		if count[typ] != want {
			t.Errorf("%d %s, want %d", count[typ], typ, want)
		}
	}
	if onCall == "" || operators == "" || workers == "" {
		t.Fatalf("the team's own resources are missing: topic %q, group %q, role %q", onCall, operators, workers)
	}
	ref := func(id string) string { return fmt.Sprint(map[string]any{"Ref": id}) }
	for id, r := range tpl.Resources {
		switch r.Type {
		case "AWS::CloudWatch::Alarm":
			if !strings.Contains(fmt.Sprint(r.Properties["AlarmActions"]), ref(onCall)) {
				t.Errorf("alarm %s does not notify the team's topic: %v", id, r.Properties["AlarmActions"])
			}
		case "AWS::IAM::Group":
			if !strings.Contains(fmt.Sprint(r.Properties["ManagedPolicyArns"]), "InstanceStoreOperatorPolicy") {
				t.Errorf("the operators' group lacks storecrypt's policy: %v", r.Properties["ManagedPolicyArns"])
			}
		case "AWS::KMS::Key":
			if !strings.Contains(fmt.Sprint(r.Properties["KeyPolicy"]), workers) {
				t.Errorf("the key policy does not name the team's role %s", workers)
			}
		}
	}
	for _, key := range []string{contract.OutputKeyARN, contract.OutputDocumentName, contract.OutputAgentLogGroup} {
		if tpl.Outputs["InstanceStore"+key] == nil {
			t.Errorf("no output InstanceStore%s", key)
		}
	}
}
