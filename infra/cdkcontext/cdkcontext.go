// Package cdkcontext maps the CDK app's context keys (-c key=value, or cdk.json, which
// lists every key with its default) to the construct's props: the app in infra/ is the
// construct filled in from them.
package cdkcontext

import (
	"fmt"
	"strings"

	"github.com/aws/aws-cdk-go/awscdk/v2"
	"github.com/aws/aws-cdk-go/awscdk/v2/awsiam"
	"github.com/aws/aws-cdk-go/awscdk/v2/awskms"
	"github.com/aws/aws-cdk-go/awscdk/v2/awssns"
	"github.com/aws/jsii-runtime-go"

	"github.com/storecrypt/storecrypt/infra/storecrypt"
	"github.com/storecrypt/storecrypt/internal/contract"
)

// PublishKey is the context key of `make publish`'s output directory; the app reads it
// besides the props.
const PublishKey = "publish"

// StackName is the stack's name: stackName, or storecrypt's.
func StackName(ctx func(string) string) string {
	if name := ctx("stackName"); name != "" {
		return name
	}
	return contract.StackName
}

// Props maps the context keys (ctx returns "" for one not set) to the construct's props
// for stack, into which it imports the key, roles and topic the context names by ARN.
func Props(stack awscdk.Stack, ctx func(string) string) (*storecrypt.StoreCryptProps, error) {
	str := func(key string) *string {
		if v := ctx(key); v != "" {
			return jsii.String(v)
		}
		return nil
	}
	// cdk.json lists every key with its default, so "false" and "true" are both
	// spelled out; the construct's own defaults apply to a key that is not.
	boolean := func(key string) *bool {
		switch ctx(key) {
		case "true":
			return jsii.Bool(true)
		case "false":
			return jsii.Bool(false)
		}
		return nil
	}
	p := &storecrypt.StoreCryptProps{
		BuildDir: jsii.String("bin"), DocumentName: str("documentName"),
		KeyAlias: str("keyAlias"), KeySource: storecrypt.KeySource(ctx("keySource")), SecretKey: str("secretKey"),
		SecretVPCEndpoint: str("secretVpcEndpoint"), OptInTag: str("optInTag"), InstanceRolePath: str("instanceRolePath"),
		MountPoint: str("mountPoint"), Filesystem: storecrypt.Filesystem(ctx("filesystem")), Layout: storecrypt.Layout(ctx("layout")), FastFormat: boolean("fastFormat"), AlarmEmail: str("alarmEmail"),
		Trail: boolean("trail"), AllowOptOut: boolean("allowOptOut"), SecurityHub: boolean("securityHub"),
		ComplianceItems: boolean("complianceItems"), RequireInstanceNetwork: boolean("requireInstanceNetwork"),
	}
	if arn := ctx("keyArn"); arn != "" {
		p.Key = awskms.Key_FromKeyArn(stack, jsii.String("ContextKey"), jsii.String(arn))
	}
	if arn := ctx("alarmTopicArn"); arn != "" {
		p.AlarmTopic = awssns.Topic_FromTopicArn(stack, jsii.String("ContextAlarmTopic"), jsii.String(arn))
	}
	var roles []awsiam.IRole
	for _, r := range strings.Split(ctx("instanceRoleArns"), ",") {
		if r = strings.TrimSpace(r); r != "" {
			roles = append(roles, awsiam.Role_FromRoleArn(stack, jsii.String(fmt.Sprintf("ContextInstanceRole%d", len(roles))), jsii.String(r), nil))
		}
	}
	if roles != nil {
		p.InstanceRoles = &roles
	}
	switch rp := ctx("removalPolicy"); rp {
	case "", "retain":
		p.RemovalPolicy = awscdk.RemovalPolicy_RETAIN
	case "destroy":
		p.RemovalPolicy = awscdk.RemovalPolicy_DESTROY
	default:
		return nil, fmt.Errorf("removalPolicy %q: want retain or destroy", rp)
	}
	for _, kv := range strings.Split(ctx("tags"), ",") {
		if kv = strings.TrimSpace(kv); kv == "" {
			continue
		}
		k, v, ok := strings.Cut(kv, "=")
		if !ok || k == "" {
			return nil, fmt.Errorf("tags: %q is not key=value", kv)
		}
		if p.Tags == nil {
			p.Tags = &map[string]*string{}
		}
		(*p.Tags)[k] = jsii.String(v)
	}
	AppNames(p, *stack.StackName())
	return p, nil
}

// AppNames gives p, where it has none of its own, the app's physical names
// (alias/storecrypt, storecrypt-apply, <stack>-storecrypt-ledger, the namespace
// storecrypt): the ones cdk.json lists and the README's instructions use (the agent's
// --kms-key-id in user data, the document an operator reruns from the console); the
// namespace is also the functions' default. The construct alone would derive names from
// its path, which no instruction could name in advance.
func AppNames(p *storecrypt.StoreCryptProps, stackName string) {
	def := func(v **string, d string) {
		if *v == nil {
			*v = jsii.String(d)
		}
	}
	def(&p.Name, "storecrypt")
	def(&p.KeyAlias, "alias/storecrypt")
	def(&p.DocumentName, contract.DocumentName)
	def(&p.LedgerTableName, stackName+contract.LedgerTableSuffix)
	def(&p.MetricNamespace, contract.MetricNamespace)
}
