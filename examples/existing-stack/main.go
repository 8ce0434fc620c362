// Command existing-stack is an app of a platform team's own that adds storecrypt to a
// stack it already has: storecrypt's alarms go to the team's existing on-call topic, the
// instance role is the team's own, and the operators' group gets storecrypt's policy.
// It is its own module, as an importing app is: `go run .` synthesizes into cdk.out (or
// CDK_OUTDIR); `cdk synth --app 'go run .'` does the same through the CDK CLI.
package main

import (
	"fmt"
	"os"

	"github.com/aws/aws-cdk-go/awscdk/v2"
	"github.com/aws/aws-cdk-go/awscdk/v2/awsiam"
	"github.com/aws/aws-cdk-go/awscdk/v2/awssns"
	"github.com/aws/jsii-runtime-go"

	"github.com/storecrypt/storecrypt/infra/storecrypt"
)

func main() {
	err := run()
	jsii.Close()
	if err != nil {
		fmt.Fprintln(os.Stderr, "existing-stack:", err)
		os.Exit(1)
	}
}

func run() error {
	// The CDK CLI names the output directory in CDK_OUTDIR; without it, CDK writes to a
	// temporary directory that jsii removes on exit, so `go run .` would write nothing.
	var props awscdk.AppProps
	if os.Getenv("CDK_OUTDIR") == "" {
		props.Outdir = jsii.String("cdk.out")
	}
	app := awscdk.NewApp(&props)
	stack := awscdk.NewStack(app, jsii.String("Platform"), nil)

	// What the team had before storecrypt.
	onCall := awssns.NewTopic(stack, jsii.String("OnCall"), &awssns.TopicProps{EnforceSSL: jsii.Bool(true)})
	workers := awsiam.NewRole(stack, jsii.String("Workers"), &awsiam.RoleProps{
		AssumedBy:       awsiam.NewServicePrincipal(jsii.String("ec2.amazonaws.com"), nil),
		ManagedPolicies: &[]awsiam.IManagedPolicy{awsiam.ManagedPolicy_FromAwsManagedPolicyName(jsii.String("AmazonSSMManagedInstanceCore"))},
	})
	operators := awsiam.NewGroup(stack, jsii.String("Operators"), nil)

	// storecrypt, for the workers' instances, its alarms to the on-call topic besides. No
	// BuildDir: the construct builds the agent and the functions from the storecrypt
	// module this app requires.
	sc := storecrypt.NewStoreCrypt(stack, jsii.String("InstanceStore"), &storecrypt.StoreCryptProps{
		InstanceRoles: &[]awsiam.IRole{workers},
		AlarmTopic:    onCall,
		Tags:          &map[string]*string{"cost-center": jsii.String("platform")},
	})
	operators.AddManagedPolicy(sc.OperatorPolicy())
	awscdk.Tags_Of(sc).Add(jsii.String("owner"), jsii.String("platform-team"), nil)

	// Props storecrypt refuses fail here, with the reason, as any construct's do.
	app.Synth(nil)
	return nil
}
