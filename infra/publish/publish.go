// Package publish turns the app's stack into a form an organization deploys with a
// service-managed StackSet: no CDK bootstrap in member accounts and no CDK assets, the
// code read from a bucket named by a parameter, and a parameter for each prop that may
// differ between accounts and regions without changing the template's resources. What
// changes the resources (the key source, an imported key, ...) is the publisher's choice,
// made once for the organization with the app's context, and recorded in the template.
package publish

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"

	"github.com/aws/aws-cdk-go/awscdk/v2"
	"github.com/aws/aws-cdk-go/awscdk/v2/awssns"
	"github.com/aws/constructs-go/constructs/v10"
	"github.com/aws/jsii-runtime-go"

	"github.com/storecrypt/storecrypt/infra/artifact"
	"github.com/storecrypt/storecrypt/infra/storecrypt"
	"github.com/storecrypt/storecrypt/internal/contract"
)

// Template is the file Write puts in the output directory.
const Template = "storecrypt.template.json"

// App adds the published stack named name to app, as the app in infra/ adds its own
// ("Default", so the logical IDs are the same), synthesizes it and writes it with its
// code objects into dist. It returns the files written, relative to dist.
// propsFor gives the props for the stack (which any key, role or topic they name is
// imported into).
func App(app awscdk.App, name string, stackProps awscdk.StackProps, propsFor func(awscdk.Stack) (*storecrypt.StoreCryptProps, error), dist string) ([]string, error) {
	// A StackSet deploys into other accounts and regions than the publisher's, which the
	// CDK CLI hands the app (CDK_DEFAULT_ACCOUNT, CDK_DEFAULT_REGION): without an
	// environment every ARN takes AWS::AccountId and AWS::Region as deployed.
	stackProps.Env = nil
	// The bootstrapless synthesizer adds no bootstrap version rule and refuses any asset,
	// so nothing in the template can point at a bootstrap bucket; and no CDKMetadata.
	stackProps.Synthesizer = awscdk.NewBootstraplessSynthesizer(nil)
	stackProps.AnalyticsReporting = jsii.Bool(false)
	stack := awscdk.NewStack(app, &name, &stackProps)
	props, err := propsFor(stack)
	if err != nil {
		return nil, err
	}
	if props.Release != nil {
		return nil, errors.New("release: publishing writes the code objects of a build, from buildDir; a release already holds a published template and its code")
	}
	if props.Key != nil || props.InstanceRoles != nil {
		return nil, errors.New("keyArn and instanceRoleArns name one account's key and roles, and a StackSet deploys to many: leave them empty (each account gets its own key, role and profile) and scope other instances with optInTag")
	}
	described := describe(props.WithDefaults())
	if err := parameterize(stack, props); err != nil {
		return nil, err
	}
	// The switches' resources are built, and made conditional once they exist.
	optOut := switchParameter(stack, "AllowOptOut", "true honours storecrypt:encrypt=false on instances in scope, each recorded, counted and alarmed",
		strconv.FormatBool(props.AllowOptOut != nil && *props.AllowOptOut), &awscdk.CfnParameterProps{AllowedValues: jsii.Strings("true", "false")})
	email := switchParameter(stack, "AlarmEmail", "an address subscribed to every alarm; empty: none", str(props.AlarmEmail),
		&awscdk.CfnParameterProps{AllowedPattern: jsii.String(`^([^@\s]+@[^@\s]+)?$`)})
	central := switchParameter(stack, "AlarmTopicArn", "an SNS topic every alarm notifies, e.g. the security account's: its name and account, in each region the stack is deployed to (CloudWatch takes a topic of the alarm's region only); empty: none",
		topicARN(props.AlarmTopic), &awscdk.CfnParameterProps{AllowedPattern: jsii.String("(" + contract.PatternSNSTopicARN + ")|^$")})
	auditor := switchParameter(stack, "AuditorPrincipal", "the account id (from the organization only) or role ARN that storecrypt report --accounts assumes the read-only auditor role from; empty: no role",
		str(props.AuditorPrincipal), &awscdk.CfnParameterProps{AllowedPattern: jsii.String(`^([0-9]{12}|arn:aws[a-z-]*:iam::[0-9]{12}:role/[\w+=,.@/-]{1,512})?$`)})
	// The central topic's switch sets every alarm's actions; the construct adds none.
	props.AllowOptOut, props.AlarmEmail, props.AlarmTopic, props.AuditorPrincipal = jsii.Bool(true), email.ValueAsString(), nil, auditor.ValueAsString()
	sc := storecrypt.NewStoreCrypt(stack, jsii.String("Default"), props)
	if errs := *sc.Node().Validate(); len(errs) > 0 {
		// Refused props would fail the synth below; said here, they are an error to return.
		return nil, fmt.Errorf("storecrypt: %s", *errs[0])
	}
	switches(stack, sc, optOut, email, central)
	onlyIf(sc.AuditorRole(), awscdk.NewCfnCondition(stack, jsii.String("HasAuditor"), &awscdk.CfnConditionProps{
		Expression: awscdk.Fn_ConditionNot(awscdk.Fn_ConditionEquals(auditor.ValueAsString(), jsii.String("")))}))
	stack.TemplateOptions().SetMetadata(&map[string]any{"storecrypt:published-with": described})
	assembly := app.Synth(nil)
	return Write(dist, *props.BuildDir, assembly.GetStackArtifact(&name).Template())
}

// parameter is one CloudFormation parameter and the prop it sets.
type parameter struct {
	name, prop, description, pattern string
	def                              func(p *storecrypt.StoreCryptProps) string // nil: required
	maxLength                        int                                        // 0: the pattern alone bounds it
}

// parameters: the props a StackSet instance may set. Each name's pattern is the rule
// AWS applies to it (the construct checks the same rules when they are not parameters).
var parameters = []parameter{
	{"CodeBucketPrefix", "CodeBucket", "Your code buckets are <this>-<region>, one per region the StackSet deploys to, each holding dist/'s objects under CodePrefix and readable by the organization (README: Roll out to an organization)",
		`^[a-z0-9][a-z0-9.-]{1,40}$`, nil, 0},
	{"CodePrefix", "CodePrefix", "Key prefix of dist/'s objects in the code bucket", `^[A-Za-z0-9!_.*'()/-]{0,200}$`,
		func(*storecrypt.StoreCryptProps) string { return "storecrypt/" }, 0},
	{"KeyAlias", "KeyAlias", "Alias of the key storecrypt creates", `^alias/[A-Za-z0-9/_-]{1,250}$`,
		func(p *storecrypt.StoreCryptProps) string { return str(p.KeyAlias) }, 0},
	{"DocumentName", "DocumentName", "Name of the SSM document (reruns from the console use it)", `^[A-Za-z0-9_.-]{3,128}$`,
		func(p *storecrypt.StoreCryptProps) string { return str(p.DocumentName) }, 0},
	{"LedgerTableName", "LedgerTableName", "DynamoDB table of the ledger; the example SCP protects names ending -storecrypt-ledger", `^[A-Za-z0-9_.-]{1,237}-storecrypt-ledger$`,
		func(p *storecrypt.StoreCryptProps) string { return str(p.LedgerTableName) }, 0},
	{"MetricNamespace", "MetricNamespace", "CloudWatch namespace of the functions' metrics and the alarms on them", `^[^:]{1,255}$`,
		func(p *storecrypt.StoreCryptProps) string { return str(p.MetricNamespace) }, 0},
	{"OptInTag", "OptInTag", "key=value that brings an instance into scope besides the roles; empty: the roles alone", `^([^=]+=.+)?$`,
		func(p *storecrypt.StoreCryptProps) string { return str(p.OptInTag) }, 0},
	{"InstanceRolePath", "InstanceRolePath", "IAM path (/storecrypt/instances/, say): every role of the account created under it may open its own instance's volumes, as the stack's role does (teams' roles; their instances come into scope by OptInTag). Each such role also needs the managed policy the stack then creates, " + contract.InstanceAccessPolicyPath + contract.InstanceAccessPolicyName("<region>") + " (output " + contract.OutputInstanceAccessPolicyARN + "), attached to read the agent and write its command's output; without it the instance is blocked (no-instance-access). Reserve creating roles under it to your pipeline with an SCP first (README: Roll out to an organization; docs/examples/scp-storecrypt.json), or whoever may create roles makes key users. Empty: the stack's role alone",
		"^(" + strings.TrimSuffix(strings.TrimPrefix(contract.InstanceRolePathPattern, "^"), "$") + ")?$",
		func(p *storecrypt.StoreCryptProps) string { return str(p.InstanceRolePath) }, contract.InstanceRolePathMax},
}

// ParameterOf is the template's parameter that sets prop, or "".
func ParameterOf(prop string) string {
	for _, p := range parameters {
		if p.prop == prop {
			return p.name
		}
	}
	if slices.Contains([]string{"AllowOptOut", "AlarmEmail", "AuditorPrincipal"}, prop) { // switches
		return prop
	}
	if prop == "AlarmTopic" {
		return "AlarmTopicArn" // a switch, of the topic's ARN
	}
	return ""
}

// AtPublish are the props the publisher sets once, with the app's context, and why each
// is not a parameter. Every prop is a parameter or here (TestParametersCoverProps).
var AtPublish = map[string]string{
	"BuildDir":               "where the code was built; its objects are in dist/",
	"Release":                "a release's code; refused: publishing builds the code that make release then packs with the template",
	"Name":                   "the names it would derive are parameters of their own",
	"Key":                    "an existing key is one account's; refused: each account gets its own key",
	"KeySource":              "s3-kms adds the secret bucket and changes the key policy",
	"SecretKey":              "the seed secret's object name is a document default, covered by the document's digest",
	"SecretVPCEndpoint":      "adds a statement to the secret bucket's policy",
	"RequireInstanceNetwork": "adds deny statements to the key policy, and each account then needs a KMS VPC endpoint in every VPC its instances run in: the organization's network decision, made once",
	"InstanceRoles":          "roles are one account's; refused: each account gets the stack's role and profile, and OptInTag scopes other instances",
	"MountPoint":             "a document default, covered by the document's digest",
	"Filesystem":             "a document default, covered by the document's digest",
	"Layout":                 "a document default, covered by the document's digest",
	"FastFormat":             "a document default, covered by the document's digest",
	"Trail":                  "adds a trail and its bucket",
	"SecurityHub":            "changes the functions' policies",
	"ComplianceItems":        "changes the functions' policies",
	"LogRetention":           "set for the organization's retention policy",
	"RemovalPolicy":          "CloudFormation takes no parameter in DeletionPolicy; an organization keeps its keys and records",
	"Tags":                   "a StackSet's own tags (--tags) reach every resource that takes tags",
}

// parameterize adds the parameters to stack and points props at them; the code bucket is
// <CodeBucketPrefix>-<region>.
func parameterize(stack awscdk.Stack, props *storecrypt.StoreCryptProps) error {
	for _, p := range parameters {
		pp := &awscdk.CfnParameterProps{Type: jsii.String("String"), Description: jsii.String(p.description), AllowedPattern: jsii.String(p.pattern)}
		if p.maxLength > 0 {
			pp.MaxLength = jsii.Number(p.maxLength)
		}
		if p.def != nil {
			def := p.def(props)
			if !regexp.MustCompile(p.pattern).MatchString(def) {
				return fmt.Errorf("the default of parameter %s, %q (prop %s), does not match %s", p.name, def, p.prop, p.pattern)
			}
			pp.Default = jsii.String(def)
		}
		param := awscdk.NewCfnParameter(stack, jsii.String(p.name), pp)
		value := param.ValueAsString()
		if p.prop == "CodeBucket" {
			value = awscdk.Fn_Sub(jsii.String("${"+p.name+"}-${AWS::Region}"), nil)
		}
		reflect.ValueOf(props).Elem().FieldByName(p.prop).Set(reflect.ValueOf(value))
	}
	return nil
}

// switchParameter adds a string parameter with a default.
func switchParameter(stack awscdk.Stack, name, description, def string, props *awscdk.CfnParameterProps) awscdk.CfnParameter {
	props.Type, props.Description, props.Default = jsii.String("String"), jsii.String(description), jsii.String(def)
	return awscdk.NewCfnParameter(stack, jsii.String(name), props)
}

// switches make the props that add a few resources parameters: the resources are in the
// template under a condition on the parameter. AllowOptOut: the OptedOut alarm, and the
// launch function's environment says it; AlarmEmail: the topic, its subscription, and
// an action of every alarm; AlarmTopicArn: another action of every alarm.
func switches(stack awscdk.Stack, sc storecrypt.StoreCrypt, optOut, email, central awscdk.CfnParameter) {
	optOutOn := awscdk.NewCfnCondition(stack, jsii.String("OptOutAllowed"), &awscdk.CfnConditionProps{
		Expression: awscdk.Fn_ConditionEquals(optOut.ValueAsString(), jsii.String("true"))})
	onlyIf(sc.OptOutAlarm(), optOutOn)
	sc.LaunchFunction().Node().DefaultChild().(awscdk.CfnResource).AddPropertyOverride(
		jsii.String("Environment.Variables."+contract.EnvAllowOptOut), optOut.ValueAsString())

	emailOn := awscdk.NewCfnCondition(stack, jsii.String("HasAlarmEmail"), &awscdk.CfnConditionProps{
		Expression: awscdk.Fn_ConditionNot(awscdk.Fn_ConditionEquals(email.ValueAsString(), jsii.String("")))})
	onlyIf(sc.AlarmTopic(), emailOn)
	centralOn := awscdk.NewCfnCondition(stack, jsii.String("HasAlarmTopicArn"), &awscdk.CfnConditionProps{
		Expression: awscdk.Fn_ConditionNot(awscdk.Fn_ConditionEquals(central.ValueAsString(), jsii.String("")))})
	// One parameter serves every region of the StackSet, and CloudWatch takes a topic of
	// the alarm's own region only: the alarms notify the topic of the parameter's name and
	// account in the region they are deployed to.
	arn := awscdk.Fn_Split(jsii.String(":"), central.ValueAsString(), jsii.Number(6))
	regional := awscdk.Fn_Join(jsii.String(":"), &[]*string{jsii.String("arn"), awscdk.Fn_Select(jsii.Number(1), arn), jsii.String("sns"),
		awscdk.Aws_REGION(), awscdk.Fn_Select(jsii.Number(4), arn), awscdk.Fn_Select(jsii.Number(5), arn)})
	for _, a := range sc.Alarms() {
		a.Node().DefaultChild().(awscdk.CfnResource).AddPropertyOverride(jsii.String("AlarmActions"), []any{
			awscdk.Fn_ConditionIf(emailOn.LogicalId(), sc.AlarmTopic().TopicArn(), awscdk.Aws_NO_VALUE()),
			awscdk.Fn_ConditionIf(centralOn.LogicalId(), regional, awscdk.Aws_NO_VALUE()),
		})
	}
}

func str(v *string) string {
	if v == nil {
		return ""
	}
	return *v
}

// topicARN is the topic's ARN, or "" without a topic.
func topicARN(t awssns.ITopic) string {
	if t == nil {
		return ""
	}
	return *t.TopicArn()
}

// onlyIf puts every CloudFormation resource under c under cond.
func onlyIf(c constructs.IConstruct, cond awscdk.CfnCondition) {
	for _, n := range *c.Node().FindAll(constructs.ConstructOrder_PREORDER) {
		if r, ok := n.(awscdk.CfnResource); ok {
			r.CfnOptions().SetCondition(cond)
		}
	}
}

// describe records the publisher's choices in the template, for whoever deploys it.
func describe(props *storecrypt.StoreCryptProps) map[string]any {
	out := map[string]any{}
	v := reflect.ValueOf(props).Elem()
	for name := range AtPublish {
		if name == "BuildDir" || name == "Release" || name == "Name" {
			continue // where the code was; the names are parameters
		}
		f := v.FieldByName(name)
		if !f.IsZero() {
			out[name] = f.Interface()
		}
	}
	return out
}

// Write puts the template and the code objects in out: upload out's contents to each
// region's code bucket under CodePrefix, then create the StackSet from the template.
func Write(out, buildDir string, template any) ([]string, error) {
	if err := os.MkdirAll(out, 0o755); err != nil {
		return nil, err
	}
	b, err := json.MarshalIndent(template, "", " ")
	if err != nil {
		return nil, fmt.Errorf("encoding the template: %w", err)
	}
	if err := os.WriteFile(filepath.Join(out, Template), append(b, '\n'), 0o644); err != nil {
		return nil, err
	}
	keys, err := artifact.Publish(buildDir, out)
	if err != nil {
		return nil, err
	}
	sort.Strings(keys)
	return append([]string{Template}, keys...), nil
}
