package cdkcontext_test

import (
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

// synthesize returns the template of the app's stack with the props ctx gives, the
// code stood in for.
func synthesize(t *testing.T, ctx func(string) string) string {
	t.Helper()
	app := awscdk.NewApp(nil)
	st := awscdk.NewStack(app, jsii.String(cdkcontext.StackName(ctx)), nil)
	props, err := cdkcontext.Props(st, ctx)
	if err != nil {
		t.Fatal(err)
	}
	props.BuildDir = jsii.String(t.TempDir())
	if err := artifact.StandIns(*props.BuildDir); err != nil {
		t.Fatal(err)
	}
	storecrypt.NewStoreCrypt(st, jsii.String("Default"), props)
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
	fromDefaults := func(k string) string { read[k] = true; return "" }
	defaults := synthesize(t, fromDefaults)
	if got, want := slices.Sorted(maps.Keys(read)), slices.Sorted(maps.Keys(listed)); !slices.Equal(got, want) {
		t.Errorf("the app reads %v; cdk.json lists %v", got, want)
	}
	fromFile := func(k string) string { return listed[k] }
	if got, want := cdkcontext.StackName(fromFile), cdkcontext.StackName(fromDefaults); got != want {
		t.Errorf("cdk.json names the stack %s, the app %s", got, want)
	}
	if synthesize(t, fromFile) != defaults {
		t.Error("cdk.json's values are not the defaults: the templates differ")
	}
	for _, bad := range []map[string]string{{"tags": "team"}, {"removalPolicy": "snapshot"}} {
		st := awscdk.NewStack(awscdk.NewApp(nil), jsii.String("S"), nil)
		if _, err := cdkcontext.Props(st, func(k string) string { return bad[k] }); err == nil {
			t.Errorf("%v was accepted", bad)
		}
	}
}
