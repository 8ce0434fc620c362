package cdkcontext_test

import (
	"context"
	"encoding/json"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/aws/aws-cdk-go/awscdk/v2"
	"github.com/aws/aws-cdk-go/awscdk/v2/assertions"
	"github.com/aws/jsii-runtime-go"
	"github.com/storecrypt/storecrypt/infra/artifact"
	"github.com/storecrypt/storecrypt/infra/cdkcontext"
	"github.com/storecrypt/storecrypt/infra/storecrypt"
)

// synthesize returns the template of the app's stack with props, the code stood in for.
func synthesize(t *testing.T, props *storecrypt.Props) string {
	t.Helper()
	props.BuildDir = t.TempDir()
	if err := artifact.StandIns(props.BuildDir); err != nil {
		t.Fatal(err)
	}
	app := awscdk.NewApp(nil)
	st := awscdk.NewStack(app, jsii.String("StoreCrypt"), nil)
	if _, err := storecrypt.New(context.Background(), st, "Default", props); err != nil {
		t.Fatal(err)
	}
	b, err := json.Marshal(assertions.Template_FromStack(st, nil).ToJSON())
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// TestContextDocumented: cdk.json lists every context key the app reads, each with the
// value the app takes when it is absent, so the file is the options' reference.
func TestContextDocumented(t *testing.T) {
	b, err := os.ReadFile(filepath.Join("..", "..", "cdk.json"))
	if err != nil {
		t.Fatal(err)
	}
	var cdk struct{ Context map[string]any }
	if err := json.Unmarshal(b, &cdk); err != nil {
		t.Fatal(err)
	}
	listed := map[string]string{}
	for k, v := range cdk.Context {
		if !strings.HasPrefix(k, "@") { // CDK's own feature flags
			listed[k], _ = v.(string)
		}
	}
	read := map[string]bool{}
	read[cdkcontext.PublishKey] = true // read by run: not a prop
	fromDefaults, stackFromDefaults, err := cdkcontext.Props(func(k string) string { read[k] = true; return "" })
	if err != nil {
		t.Fatal(err)
	}
	if got, want := slices.Sorted(maps.Keys(read)), slices.Sorted(maps.Keys(listed)); !slices.Equal(got, want) {
		t.Errorf("the app reads %v; cdk.json lists %v", got, want)
	}
	fromFile, stackFromFile, err := cdkcontext.Props(func(k string) string { return listed[k] })
	if err != nil {
		t.Fatal(err)
	}
	if stackFromFile != stackFromDefaults {
		t.Errorf("cdk.json names the stack %s, the app %s", stackFromFile, stackFromDefaults)
	}
	if a, b := synthesize(t, fromFile), synthesize(t, fromDefaults); a != b {
		t.Error("cdk.json's values are not the defaults: the templates differ")
	}
	if _, _, err := cdkcontext.Props(func(k string) string { return map[string]string{"tags": "team"}[k] }); err == nil {
		t.Error("tags=team (no value) was accepted")
	}
	if _, _, err := cdkcontext.Props(func(k string) string { return map[string]string{"removalPolicy": "snapshot"}[k] }); err == nil {
		t.Error("removalPolicy=snapshot was accepted")
	}
}
