// Command infra is storecrypt's CDK app, a thin user of the construct (package
// infra/storecrypt); cdk.json at the repository root runs it. CDK context (-c key=value,
// or cdk.json, which lists every key with its default) fills the construct's props; see
// README "Deploy to your account".
package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/aws/aws-cdk-go/awscdk/v2"
	"github.com/aws/jsii-runtime-go"

	"github.com/storecrypt/storecrypt/infra/publish"
	"github.com/storecrypt/storecrypt/infra/storecrypt"
	"github.com/storecrypt/storecrypt/internal/contract"
)

func main() {
	err := run(context.Background())
	jsii.Close()
	if err != nil {
		fmt.Fprintln(os.Stderr, "storecrypt:", err)
		os.Exit(1)
	}
}

// publishKey is the context key of `make publish`'s output directory.
const publishKey = "publish"

func run(ctx context.Context) error {
	app := awscdk.NewApp(nil)
	get := func(key string) string {
		if v, ok := app.Node().TryGetContext(jsii.String(key)).(string); ok {
			return strings.TrimSpace(v)
		}
		return ""
	}
	props, name, err := propsFromContext(get)
	if err != nil {
		return err
	}
	stackProps := awscdk.StackProps{Description: jsii.String("storecrypt: instance-store encryption under a customer-managed KMS key")}
	// The CDK CLI sets these from the credentials it deploys with; without them (a synth
	// with no account) the template stays environment-agnostic.
	if account, region := os.Getenv("CDK_DEFAULT_ACCOUNT"), os.Getenv("CDK_DEFAULT_REGION"); account != "" && region != "" {
		stackProps.Env = &awscdk.Environment{Account: jsii.String(account), Region: jsii.String(region)}
	}
	if dist := get(publishKey); dist != "" {
		files, err := publish.App(ctx, app, name, stackProps, props, dist)
		if err != nil {
			return fmt.Errorf("publishing into %s: %w", dist, err)
		}
		for _, f := range files {
			fmt.Fprintln(os.Stderr, "storecrypt: wrote", filepath.Join(dist, f))
		}
		return nil
	}
	stack := awscdk.NewStack(app, &name, &stackProps)
	// "Default": the resources keep the logical IDs of the releases before the construct,
	// so an update changes no key, table or bucket.
	if _, err := storecrypt.New(ctx, stack, "Default", props); err != nil {
		return err
	}
	app.Synth(nil)
	return nil
}

// propsFromContext maps the context keys to the construct's props. The app keeps the
// physical names of its earlier releases (alias/storecrypt, storecrypt-apply, the
// namespace storecrypt, <stack>-storecrypt-ledger) where the construct alone would derive
// them from its path.
func propsFromContext(ctx func(string) string) (*storecrypt.Props, string, error) {
	name := ctx("stackName")
	if name == "" {
		name = contract.StackName
	}
	p := &storecrypt.Props{
		BuildDir: "bin", Name: "storecrypt", MetricNamespace: contract.MetricNamespace,
		LedgerTableName: name + contract.LedgerTableSuffix, DocumentName: contract.DocumentName,
		KeyAlias: ctx("keyAlias"), KeyARN: ctx("keyArn"), KeySource: ctx("keySource"), SecretKey: ctx("secretKey"),
		SecretVPCEndpoint: ctx("secretVpcEndpoint"), OptInTag: ctx("optInTag"),
		MountPoint: ctx("mountPoint"), Filesystem: ctx("filesystem"), AlarmEmail: ctx("alarmEmail"),
		Trail: ctx("trail") == "true", RefuseLegacyVolumes: ctx("refuseLegacyVolumes") == "true",
		AllowOptOut: ctx("allowOptOut") == "true", NoSecurityHub: ctx("securityHub") == "false",
		ComplianceItems: ctx("complianceItems") == "true",
	}
	if d := ctx("documentName"); d != "" {
		p.DocumentName = d
	}
	for _, r := range strings.Split(ctx("instanceRoleArns"), ",") {
		if r = strings.TrimSpace(r); r != "" {
			p.InstanceRoleARNs = append(p.InstanceRoleARNs, r)
		}
	}
	switch rp := ctx("removalPolicy"); rp {
	case "", "retain":
		p.RemovalPolicy = awscdk.RemovalPolicy_RETAIN
	case "destroy":
		p.RemovalPolicy = awscdk.RemovalPolicy_DESTROY
	default:
		return nil, "", fmt.Errorf("removalPolicy %q: want retain or destroy", rp)
	}
	for _, kv := range strings.Split(ctx("tags"), ",") {
		if kv = strings.TrimSpace(kv); kv == "" {
			continue
		}
		k, v, ok := strings.Cut(kv, "=")
		if !ok || k == "" {
			return nil, "", fmt.Errorf("tags: %q is not key=value", kv)
		}
		if p.Tags == nil {
			p.Tags = map[string]string{}
		}
		p.Tags[k] = v
	}
	return p, name, nil
}
