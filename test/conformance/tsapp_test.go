package conformance

import (
	"bytes"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/storecrypt/storecrypt/infra/publish"
	"github.com/storecrypt/storecrypt/internal/contract"
	"github.com/storecrypt/storecrypt/internal/release"
	"github.com/storecrypt/storecrypt/test/cfn"
)

// tsApp is the TypeScript team's app of docs/cdk-languages.md; it names its stack Platform.
const tsApp = "../../examples/typescript"

// synthTypeScriptApp installs the app's pinned packages when its lock file is newer than
// the install (npm ci, from npm's cache once fetched) and synthesizes it as its team does,
// `cdk synth` in its directory: the CDK CLI reads its cdk.json, whose app command
// type-checks and compiles it (into its build/, which git ignores) and runs it with the
// context cdk.json sets. The assembly goes to a temporary directory. The synth settles
// every feature flag: no notice, nothing that changes under the team with a CDK release.
func synthTypeScriptApp(t *testing.T) *cfn.Template {
	t.Helper()
	for _, tool := range []string{"npm", "node"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Fatalf("the TypeScript example needs %s (make deps installs it): %v", tool, err)
		}
	}
	modules := filepath.Join(tsApp, "node_modules")
	if stale(t, filepath.Join(tsApp, "package-lock.json"), filepath.Join(modules, ".package-lock.json")) {
		runIn(t, tsApp, nil, "npm", "ci", "--prefer-offline", "--no-audit", "--no-fund", "--loglevel=error")
	}
	cdk, err := filepath.Abs(filepath.Join("..", "..", "node_modules", ".bin", "cdk"))
	if err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(t.TempDir(), "cdk.out")
	// CDK_VALIDATION=false skips aws-cdk-lib's CloudFormation Validate rules, a third of the
	// synth's time: unless the app opts in, their findings are warnings, which fail nothing.
	output := runIn(t, tsApp, []string{"CDK_VALIDATION=false", "CDK_DISABLE_CLI_TELEMETRY=true"}, cdk, "synth", "-q", "--no-notices", "-o", out)
	if strings.Contains(output, "feature flags") {
		t.Errorf("cdk synth prints a feature-flag notice:\n%s", output)
	}
	unset, err := cfn.UnsetFeatureFlags(out)
	if err != nil {
		t.Fatal(err)
	}
	if len(unset) > 0 {
		t.Errorf("the example's cdk.json leaves feature flags %v unset, want each at its recommended value", unset)
	}
	tpl, err := cfn.Load(filepath.Join(out, "Platform.template.json"))
	if err != nil {
		t.Fatal(err)
	}
	return tpl
}

// stale says whether target is missing or older than source.
func stale(t *testing.T, source, target string) bool {
	t.Helper()
	src, err := os.Stat(source)
	if err != nil {
		t.Fatal(err)
	}
	dst, err := os.Stat(target)
	return err != nil || dst.ModTime().Before(src.ModTime())
}

// runIn runs a command in dir with env added to the test's and returns its output, and
// fails the test with the output when it fails.
func runIn(t *testing.T, dir string, env []string, name string, args ...string) string {
	t.Helper()
	cmd := exec.Command(name, args...)
	cmd.Dir, cmd.Env = dir, append(os.Environ(), env...)
	var output bytes.Buffer
	cmd.Stdout, cmd.Stderr = &output, &output
	if err := cmd.Run(); err != nil {
		t.Fatalf("%s %s in %s: %v\n%s", name, strings.Join(args, " "), dir, err, output.String())
	}
	return output.String()
}

// nestedOutputs adds to found the outputs of the nested stack id that v reads, with
// Fn::GetAtt [id, Outputs.<name>].
func nestedOutputs(v any, id string, found map[string]bool) {
	switch v := v.(type) {
	case map[string]any:
		if att, ok := v["Fn::GetAtt"].([]any); ok && len(att) == 2 && att[0] == id {
			if name, ok := strings.CutPrefix(att[1].(string), "Outputs."); ok {
				found[name] = true
			}
		}
		for _, e := range v {
			nestedOutputs(e, id, found)
		}
	case []any:
		for _, e := range v {
			nestedOutputs(e, id, found)
		}
	}
}

// TestTypeScriptApp synthesizes the TypeScript team's app, which deploys the published
// template as a nested stack beside constructs of its own, and checks it against the
// template `make publish` writes: it shares a logical ID with it (CfnInclude would
// collide; the nested stack keeps them apart), every parameter it passes is the
// template's and takes the value (CloudFormation's own checks), its template URL is
// where `storecrypt stage` puts the template, every output it reads is one the template
// always has, and the key of the nested stack, deployed with the app's parameters, lets
// the agent on an instance of the team's role, under the path it passes, open its volume.
func TestTypeScriptApp(t *testing.T) {
	app, published := synthTypeScriptApp(t), templates[stackSetTemplate]
	env := cfn.Partitions[0]
	parent := app.In(env)

	var shared []string
	for id := range app.Resources {
		if _, ok := published.Resources[id]; ok {
			shared = append(shared, id)
		}
	}
	if len(shared) == 0 {
		t.Errorf("the app shares no logical ID with the published template, want one (its own Alarms): the example no longer shows what CfnInclude collides on")
	}

	stacks := app.Of("AWS::CloudFormation::Stack")
	if len(stacks) != 1 {
		t.Fatalf("got nested stacks %v, want 1", stacks)
	}
	nested := app.Resources[stacks[0]]
	values := map[string]string{}
	for name, v := range nested.Properties["Parameters"].(map[string]any) {
		s, err := parent.String(v)
		if err != nil {
			t.Fatalf("parameter %s: %v", name, err)
		}
		values[name] = s
	}
	if err := published.CheckParameters(values); err != nil {
		t.Errorf("the nested stack's parameters: %v", err)
	}

	roles := app.Of("AWS::IAM::Role")
	if len(roles) != 1 {
		t.Fatalf("got roles %v, want the team's 1", roles)
	}
	rolePath, err := parent.Property(roles[0], "Path")
	if err != nil {
		t.Fatal(err)
	}
	topics := app.Of("AWS::SNS::Topic")
	if len(topics) != 1 {
		t.Fatalf("got topics %v, want the team's 1", topics)
	}
	topic, err := parent.Ref(topics[0])
	if err != nil {
		t.Fatal(err)
	}
	codePrefix, ok := values["CodePrefix"]
	if !ok {
		codePrefix = published.Parameters["CodePrefix"].Default.(string)
	}
	for _, tc := range []struct{ parameter, want string }{
		{"InstanceRolePath", rolePath.(string)},
		{"AlarmTopicArn", topic.(string)},
		{"OptInTag", contract.OptIn},
	} {
		if got := values[tc.parameter]; got != tc.want {
			t.Errorf("parameter %s: got %q, want %q (the team's)", tc.parameter, got, tc.want)
		}
	}
	url, err := parent.String(nested.Properties["TemplateURL"])
	if err != nil {
		t.Fatal(err)
	}
	if want := "https://" + release.Bucket(values["CodeBucketPrefix"], env.Region) + ".s3." + env.Region + "." + env.URLSuffix() + "/" + codePrefix + publish.Template; url != want {
		t.Errorf("TemplateURL: got %s, want %s, where storecrypt stage puts the template", url, want)
	}

	read := map[string]bool{}
	for _, r := range app.Resources {
		nestedOutputs(r.Properties, stacks[0], read)
	}
	for _, o := range app.Outputs {
		nestedOutputs(o.Value, stacks[0], read)
	}
	for _, want := range []string{contract.OutputKeyARN, contract.OutputDocumentName} {
		if !read[want] {
			t.Errorf("the app reads outputs %v, want %s among them", read, want)
		}
	}
	for name := range read {
		if o, ok := published.Outputs[name]; !ok || o.Condition != "" {
			t.Errorf("the app reads output %s: in the published template: %t, condition %q; want one always there", name, ok, o.Condition)
		}
	}

	role, err := parent.String(map[string]any{"Fn::GetAtt": []any{roles[0], "Arn"}})
	if err != nil {
		t.Fatal(err)
	}
	// CloudFormation names a nested stack <parent>-<logical id>-<suffix>.
	child := env
	child.StackName, child.Parameters = "Platform-StoreCrypt-1ABCDEFGHIJK", values
	team{deployVariant(t, stackSetTemplate, child), role, "i-0d000000000000001"}.agentAllowed(t)
}

// TestPythonExample compiles the Python app of docs/cdk-languages.md and checks that it
// names the same parameters and outputs of the published template as the TypeScript
// app, so that the two show one thing and the checks of TestTypeScriptApp hold for both.
func TestPythonExample(t *testing.T) {
	doc := readFile(t, "../../docs/cdk-languages.md")
	blocks := regexp.MustCompile("(?s)```python\n(.*?)```").FindAllStringSubmatch(doc, -1)
	if len(blocks) != 1 {
		t.Fatalf("got %d python blocks in docs/cdk-languages.md, want 1", len(blocks))
	}
	py := filepath.Join(t.TempDir(), "app.py")
	if err := os.WriteFile(py, []byte(blocks[0][1]), 0o644); err != nil {
		t.Fatal(err)
	}
	runIn(t, ".", nil, "python3", "-m", "py_compile", py)
	published := templates[stackSetTemplate]
	if got, want := mentioned(published, blocks[0][1]), mentioned(published, readFile(t, filepath.Join(tsApp, "bin", "app.ts"))); !slices.Equal(got, want) {
		t.Errorf("the Python app names parameters and outputs %v, want the TypeScript app's %v", got, want)
	}
}

// mentioned are the names of tpl's parameters and outputs that source names, sorted.
func mentioned(tpl *cfn.Template, source string) []string {
	var out []string
	for _, name := range slices.Concat(slices.Collect(maps.Keys(tpl.Parameters)), slices.Collect(maps.Keys(tpl.Outputs))) {
		if regexp.MustCompile(`\b`+name+`\b`).MatchString(source) && !slices.Contains(out, name) {
			out = append(out, name)
		}
	}
	slices.Sort(out)
	return out
}
