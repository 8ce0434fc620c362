package storecrypt_test

import (
	"bytes"
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

// exampleApp is a copy of examples/existing-stack whose replace points back at this
// checkout, so what it writes stays out of the source tree.
func exampleApp(t *testing.T) string {
	t.Helper()
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
	return app
}

// withoutEnv is the environment without the variables named.
func withoutEnv(names ...string) []string {
	return slices.DeleteFunc(os.Environ(), func(kv string) bool {
		name, _, _ := strings.Cut(kv, "=")
		return slices.Contains(names, name)
	})
}

// stagedAgent is the amd64 agent the synth into out staged.
func stagedAgent(t *testing.T, out string) []byte {
	t.Helper()
	found, err := filepath.Glob(filepath.Join(out, "*", "storecrypt-agent-linux-amd64"))
	must(t, err)
	if len(found) != 1 {
		t.Fatalf("%d agents staged in %s, want 1: %v", len(found), out, found)
	}
	b, err := os.ReadFile(found[0])
	must(t, err)
	return b
}

// checkExampleTemplate checks the example's template in the cloud assembly out.
func checkExampleTemplate(t *testing.T, out string) {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(out, "Platform.template.json"))
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
	for typ, want := range map[string]int{"AWS::SSM::Document": 1 + len(contract.RevocationDocuments), "AWS::KMS::Key": 1, "AWS::Lambda::Function": 2, "AWS::DynamoDB::Table": 1, "AWS::CloudWatch::Alarm": 8} {
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
			// The example tags the construct itself, as a CDK user tags any construct.
			if !strings.Contains(fmt.Sprint(r.Properties["Tags"]), "Key:owner Value:platform-team") {
				t.Errorf("the key's tags %v lack the example's owner=platform-team", r.Properties["Tags"])
			}
		}
	}
	for _, key := range []string{contract.OutputKeyARN, contract.OutputDocumentName, contract.OutputAgentLogGroup} {
		if tpl.Outputs["InstanceStore"+key] == nil {
			t.Errorf("no output InstanceStore%s", key)
		}
	}
}

// TestExampleApp synthesizes examples/existing-stack, an app that is its own module and
// imports the construct as any team's app would, with no BuildDir: the construct finds
// storecrypt's source and builds the code itself, through CDK's asset bundling. The
// template must hold storecrypt inside the team's stack, wired to the team's topic, role
// and group. The app is built once, as a user's CI would, then synthesized where users
// run it: in its own directory without CDK_OUTDIR (its comment promises cdk.out) and
// without HOME; from a directory with no go.mod, twice at once into two directories; and
// as `cdk ls` and `cdk destroy` run it (bundling skipped: nothing built, so no go command
// needed). A vendored app is artifact's TestSourceVendoredProgram.
func TestExampleApp(t *testing.T) {
	app := exampleApp(t)
	bin := filepath.Join(t.TempDir(), "app")
	build := exec.CommandContext(context.Background(), "go", "build", "-o", bin, ".")
	build.Dir = app
	if b, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build in a copy of the example: %v\n%s", err, b)
	}
	goEnv := map[string]string{}
	for _, name := range []string{"GOCACHE", "GOMODCACHE", "GOPATH"} {
		out, err := exec.Command("go", "env", name).Output()
		must(t, err)
		goEnv[name] = strings.TrimSpace(string(out))
	}
	// synth runs the app in dir (a new directory without go.mod when ""), into out
	// (cdk.out of dir when "").
	synth := func(env []string, dir, out string) (string, []byte, error) {
		cmd := exec.CommandContext(context.Background(), bin)
		cmd.Dir = dir
		if dir == "" {
			cmd.Dir = t.TempDir()
		}
		cmd.Env = slices.Concat(env, []string{"JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION=20"})
		if out == "" {
			out = filepath.Join(cmd.Dir, "cdk.out")
		} else {
			cmd.Env = append(cmd.Env, "CDK_OUTDIR="+out)
		}
		log, err := cmd.CombinedOutput()
		return out, log, err
	}
	base := withoutEnv("CDK_OUTDIR", "CDK_CONTEXT_JSON")
	t.Run("in its directory, no CDK_OUTDIR, no HOME", func(t *testing.T) {
		env := withoutEnv("CDK_OUTDIR", "CDK_CONTEXT_JSON", "HOME", "XDG_CACHE_HOME")
		for k, v := range goEnv {
			env = append(env, k+"="+v)
		}
		out, log, err := synth(env, app, "")
		if err != nil {
			t.Fatalf("%v\n%s", err, log)
		}
		checkExampleTemplate(t, out)
		if got := stagedAgent(t, out); !bytes.HasPrefix(got, []byte("\x7fELF")) {
			t.Errorf("the staged agent is not a Linux binary: %.40q", got)
		}
	})
	t.Run("two synths at once, no go.mod in the working directory", func(t *testing.T) {
		type result struct {
			out string
			log []byte
			err error
		}
		results := make(chan result, 2)
		for range 2 {
			go func() {
				out, log, err := synth(base, "", t.TempDir())
				results <- result{out, log, err}
			}()
		}
		var templates [][]byte
		for range 2 {
			r := <-results
			if r.err != nil {
				t.Fatalf("%v\n%s", r.err, r.log)
			}
			b, err := os.ReadFile(filepath.Join(r.out, "Platform.template.json"))
			must(t, err)
			templates = append(templates, b)
		}
		if !bytes.Equal(templates[0], templates[1]) {
			t.Error("two synths at once wrote different templates")
		}
	})
	t.Run("bundling skipped, as by cdk ls", func(t *testing.T) {
		// Only node on PATH, which jsii runs the CDK in: a synth that built anything
		// would find no go command.
		path := t.TempDir()
		node, err := exec.LookPath("node")
		must(t, err)
		must(t, os.Symlink(node, filepath.Join(path, "node")))
		env := append(withoutEnv("CDK_OUTDIR", "PATH"), "PATH="+path, `CDK_CONTEXT_JSON={"aws:cdk:bundling-stacks":[]}`)
		out, log, err := synth(env, "", t.TempDir())
		if err != nil {
			t.Fatalf("%v\n%s", err, log)
		}
		if bytes.Contains(log, []byte("building")) || bytes.Contains(log, []byte("Bundling asset")) {
			t.Errorf("a synth with bundling skipped built something:\n%s", log)
		}
		if got := stagedAgent(t, out); !bytes.HasPrefix(got, []byte("stand-in")) {
			t.Errorf("staged agent %.40q, want a stand-in", got)
		}
	})
}
