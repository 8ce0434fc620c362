// Package cdkcontext maps the CDK app's context keys (-c key=value, or cdk.json, which
// lists every key with its default) to the construct's props: the app in infra/ is the
// construct filled in from them.
package cdkcontext

import (
	"fmt"
	"strings"

	"github.com/aws/aws-cdk-go/awscdk/v2"

	"github.com/storecrypt/storecrypt/infra/storecrypt"
	"github.com/storecrypt/storecrypt/internal/contract"
)

// PublishKey is the context key of `make publish`'s output directory; the app reads it
// besides the props.
const PublishKey = "publish"

// Props maps the context keys (ctx returns "" for one not set) to the construct's props
// and the stack's name.
func Props(ctx func(string) string) (*storecrypt.Props, string, error) {
	name := ctx("stackName")
	if name == "" {
		name = contract.StackName
	}
	p := &storecrypt.Props{
		BuildDir: "bin", DocumentName: ctx("documentName"),
		KeyAlias: ctx("keyAlias"), KeyARN: ctx("keyArn"), KeySource: ctx("keySource"), SecretKey: ctx("secretKey"),
		SecretVPCEndpoint: ctx("secretVpcEndpoint"), OptInTag: ctx("optInTag"), InstanceRolePath: ctx("instanceRolePath"),
		MountPoint: ctx("mountPoint"), Filesystem: ctx("filesystem"), AlarmEmail: ctx("alarmEmail"), AlarmTopicARN: ctx("alarmTopicArn"),
		Trail: ctx("trail") == "true", AllowOptOut: ctx("allowOptOut") == "true", NoSecurityHub: ctx("securityHub") == "false",
		ComplianceItems: ctx("complianceItems") == "true", RequireInstanceNetwork: ctx("requireInstanceNetwork") == "true",
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
	AppNames(p, name)
	return p, name, nil
}

// AppNames gives p, where it has none of its own, the app's physical names
// (alias/storecrypt, storecrypt-apply, <stack>-storecrypt-ledger, the namespace
// storecrypt): the ones cdk.json lists and the README's instructions use (the agent's
// --kms-key-id in user data, the document an operator reruns from the console); the
// namespace is also the functions' default. The construct alone would derive names from
// its path, which no instruction could name in advance.
func AppNames(p *storecrypt.Props, stackName string) {
	def := func(v *string, d string) {
		if *v == "" {
			*v = d
		}
	}
	def(&p.Name, "storecrypt")
	def(&p.KeyAlias, "alias/storecrypt")
	def(&p.DocumentName, contract.DocumentName)
	def(&p.LedgerTableName, stackName+contract.LedgerTableSuffix)
	def(&p.MetricNamespace, contract.MetricNamespace)
}
