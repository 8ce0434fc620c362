// Command infra is storecrypt's CDK app; cdk.json at the repository root runs it. Options
// come from CDK context (-c key=value or cdk.json); see README "Deploy to your account".
package main

import (
	"fmt"
	"os"
	"strings"

	"github.com/aws/aws-cdk-go/awscdk/v2"
	"github.com/aws/jsii-runtime-go"

	"github.com/storecrypt/storecrypt/infra/stack"
	"github.com/storecrypt/storecrypt/internal/contract"
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
	ctx := func(key string) string {
		if v, ok := app.Node().TryGetContext(jsii.String(key)).(string); ok {
			return v
		}
		return ""
	}
	var roles []string
	for _, r := range strings.Split(ctx("instanceRoleArns"), ",") {
		if r = strings.TrimSpace(r); r != "" {
			roles = append(roles, r)
		}
	}
	props := awscdk.StackProps{Description: jsii.String("storecrypt: instance-store encryption under a customer-managed KMS key")}
	// The CDK CLI sets these from the credentials it deploys with; without them (a synth
	// with no account) the template stays environment-agnostic.
	if account, region := os.Getenv("CDK_DEFAULT_ACCOUNT"), os.Getenv("CDK_DEFAULT_REGION"); account != "" && region != "" {
		props.Env = &awscdk.Environment{Account: jsii.String(account), Region: jsii.String(region)}
	}
	name := ctx("stackName")
	if name == "" {
		name = contract.StackName
	}
	_, err := stack.NewStoreCryptStack(app, name, &stack.StoreCryptStackProps{
		StackProps: props,
		KeyAlias:   ctx("keyAlias"), KeyARN: ctx("keyArn"), KeySource: ctx("keySource"), SecretKey: ctx("secretKey"),
		SecretVPCEndpoint: ctx("secretVpcEndpoint"), InstanceRoleARNs: roles, OptInTag: ctx("optInTag"),
		DocumentName: ctx("documentName"), MountPoint: ctx("mountPoint"), Filesystem: ctx("filesystem"),
		AlarmEmail: ctx("alarmEmail"), Trail: ctx("trail") == "true", RefuseLegacyVolumes: ctx("refuseLegacyVolumes") == "true",
		AllowOptOut: ctx("allowOptOut") == "true", NoSecurityHub: ctx("securityHub") == "false",
		ComplianceItems: ctx("complianceItems") == "true",
	})
	if err != nil {
		return err
	}
	app.Synth(nil)
	return nil
}
