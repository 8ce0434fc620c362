// Command infra is storecrypt's CDK app, a thin user of the construct (package
// infra/storecrypt); cdk.json at the repository root runs it. CDK context (-c key=value,
// or cdk.json, which lists every key with its default) fills the construct's props
// (package infra/cdkcontext); see README "Deploy to your account".
package main

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/aws/aws-cdk-go/awscdk/v2"
	"github.com/aws/jsii-runtime-go"

	"github.com/storecrypt/storecrypt/infra/cdkcontext"
	"github.com/storecrypt/storecrypt/infra/publish"
	"github.com/storecrypt/storecrypt/infra/storecrypt"
)

func main() {
	err := run()
	jsii.Close()
	if err != nil {
		fmt.Fprintln(os.Stderr, "storecrypt:", err)
		os.Exit(1)
	}
}

func run() error {
	app := awscdk.NewApp(nil)
	get := func(key string) string {
		if v, ok := app.Node().TryGetContext(jsii.String(key)).(string); ok {
			return strings.TrimSpace(v)
		}
		return ""
	}
	name := cdkcontext.StackName(get)
	props := func(stack awscdk.Stack) (*storecrypt.StoreCryptProps, error) { return cdkcontext.Props(stack, get) }
	stackProps := awscdk.StackProps{Description: jsii.String("storecrypt: instance-store encryption under a customer-managed KMS key")}
	// The CDK CLI sets these from the credentials it deploys with; without them (a synth
	// with no account) the template stays environment-agnostic.
	if account, region := os.Getenv("CDK_DEFAULT_ACCOUNT"), os.Getenv("CDK_DEFAULT_REGION"); account != "" && region != "" {
		stackProps.Env = &awscdk.Environment{Account: jsii.String(account), Region: jsii.String(region)}
	}
	if dist := get(cdkcontext.PublishKey); dist != "" {
		files, err := publish.App(app, name, stackProps, props, dist)
		if err != nil {
			return fmt.Errorf("publishing into %s: %w", dist, err)
		}
		for _, f := range files {
			fmt.Fprintln(os.Stderr, "storecrypt: wrote", filepath.Join(dist, f))
		}
		return nil
	}
	stack := awscdk.NewStack(app, &name, &stackProps)
	// "Default": the stack holds storecrypt alone, so its logical IDs and output keys need
	// no prefix to tell storecrypt's apart.
	p, err := props(stack)
	if err != nil {
		return err
	}
	sc := storecrypt.NewStoreCrypt(stack, jsii.String("Default"), p)
	// Refused props would fail the synth as a panic's trace; said here, they are one line.
	if errs := *sc.Node().Validate(); len(errs) > 0 {
		return errors.New(*errs[0])
	}
	app.Synth(nil)
	return nil
}
