// Package storecrypt is storecrypt's CDK construct: the KMS key, the seed-compatible
// secret bucket, the agent binaries, the SSM document, the instance role, the launch queue
// and rules, both functions with least-privilege roles, alarms, an optional trail and the
// operator policy, added to any stack with New. Every name it shares with the agent and
// the functions comes from internal/contract.
//
// New wires the parts, each in its own file, each given what it needs from the others and
// returning what it built: key.go (the instance roles, the KMS key and its policy, the
// seed secret's bucket), code.go (the agents and the functions' code), document.go (the
// SSM document and its command output), functions.go (the queues, both functions and
// their roles, the rules), evidence.go (the ledger, the access logs, the trail, the
// operator policy) and alarms.go (the alarms, their topic and the dashboard).
package storecrypt

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"

	"github.com/aws/aws-cdk-go/awscdk/v2"
	"github.com/aws/aws-cdk-go/awscdk/v2/awscloudwatch"
	"github.com/aws/aws-cdk-go/awscdk/v2/awsdynamodb"
	"github.com/aws/aws-cdk-go/awscdk/v2/awsiam"
	"github.com/aws/aws-cdk-go/awscdk/v2/awskms"
	"github.com/aws/aws-cdk-go/awscdk/v2/awslambda"
	"github.com/aws/aws-cdk-go/awscdk/v2/awslogs"
	"github.com/aws/aws-cdk-go/awscdk/v2/awss3"
	"github.com/aws/aws-cdk-go/awscdk/v2/awssns"
	"github.com/aws/aws-cdk-go/awscdk/v2/awssqs"
	"github.com/aws/aws-cdk-go/awscdk/v2/awsssm"
	"github.com/aws/constructs-go/constructs/v10"
	"github.com/aws/jsii-runtime-go"
	"github.com/cdklabs/cdk-nag-go/cdknag/v2"

	"github.com/storecrypt/storecrypt/infra/artifact"
	"github.com/storecrypt/storecrypt/internal/contract"
)

// Props configures storecrypt; zero values take the defaults.
type Props struct {
	// BuildDir holds the code the construct deploys, laid out as `make build` writes bin/:
	// storecrypt-agent-linux-{amd64,arm64} with their .sha256 and .gz files, and
	// functions/{launch,result}/bootstrap. Empty: New builds it (package artifact) into
	// the user's cache directory, from the storecrypt module the app imports; that needs
	// the go command, as any Go CDK app does.
	BuildDir string
	// CodeBucket, when set, is where the code is instead of CDK's file assets, which need
	// a bootstrapped account: the bucket (a name, or a token such as a CfnParameter's) that
	// holds what package artifact's Publish wrote, under CodePrefix. The instance roles
	// and Lambda read it in the deployment's account and region (Lambda takes code only
	// from a bucket in the function's region).
	CodeBucket, CodePrefix string
	// Name is the base of the physical names two deployments in one account must not
	// share: the key alias (alias/<Name>), the document (<Name>-apply), the ledger
	// table (<Name>-storecrypt-ledger) and the metric namespace (storecrypt/<Name>).
	// Empty: derived from the construct's path, unique in the account and region.
	Name string
	// KeyAlias, DocumentName, LedgerTableName and MetricNamespace override the names
	// derived from Name one by one: the app in infra/ gives the names its README and
	// cdk.json document (cdkcontext.AppNames), and a published template makes each a
	// parameter.
	KeyAlias, DocumentName, LedgerTableName, MetricNamespace string
	// KeyARN uses an existing key instead; its policy must then delegate to IAM and the
	// construct grants the instance roles through their identity policies.
	KeyARN string
	// KeySource is what instances use: kms-datakey (default) or s3-kms.
	KeySource string
	// SecretKey is the object key of the seed passphrase in the secret bucket (s3-kms).
	SecretKey string
	// SecretVPCEndpoint, when set, lets the secret be read only through that endpoint.
	SecretVPCEndpoint string
	// RequireInstanceNetwork (kms-datakey only) lets a volume's key be made and opened only
	// by a request that comes through a KMS interface VPC endpoint in the VPC of the
	// instance whose role credentials signed it, from that instance's primary private
	// IPv4 address: credentials copied off the instance (IMDS) then cannot open its volume
	// from elsewhere. Every VPC the instances run in then needs a KMS interface endpoint
	// with private DNS, which the construct does not create: the VPCs are the user's.
	RequireInstanceNetwork bool
	// InstanceRoleARNs are the workloads' own roles; empty creates a role and profile.
	InstanceRoleARNs []string
	// InstanceRolePath (/storecrypt/instances/, say) makes every role of the account
	// created under that IAM path a key user too, each for its own instance's volumes
	// alone, as the stack's roles are: teams' own instance roles, in every account a
	// StackSet reaches. A role's path is fixed when the role is created, so the SCP that
	// reserves creating roles under it (README: Roll out to an organization) decides who
	// can make a key user. Instances under such roles come into scope by OptInTag.
	// Each such role also needs what the stack grants its own role besides the key (the
	// agent's download, the command's output): the stack creates it as a managed policy,
	// contract.InstanceAccessPolicyPath + contract.InstanceAccessPolicyName(region), for
	// the teams to attach (one stack with a path per account and region: the name is
	// fixed). kms-datakey with the key the stack creates only. Empty: the stack's roles
	// alone.
	InstanceRolePath string
	// OptInTag is key=value (storecrypt:encrypt=true, say) that brings an instance into
	// scope besides the roles; none by default: scope is the roles alone.
	OptInTag string
	// AllowOptOut honours storecrypt:encrypt=false on instances in scope: each opt-out is
	// recorded (skipped, opted-out), counted (OptedOut, alarmed) and sent as an event.
	// Without it the tag is ignored: whoever may tag an instance could otherwise switch
	// its encryption off.
	AllowOptOut bool
	// MountPoint and Filesystem are the document's defaults (/mnt/instance-store, ext4).
	MountPoint, Filesystem string
	// AlarmEmail, when set, subscribes to the alarms' SNS topic.
	AlarmEmail string
	// Trail creates a CloudTrail trail for the key's audit trail.
	Trail bool
	// NoSecurityHub stops the functions filing Security Hub findings. With it unset they
	// file them where Security Hub is enabled, and stop trying where it is not.
	NoSecurityHub bool
	// ComplianceItems also writes each verdict as the instance's Custom:StoreCrypt
	// compliance in Systems Manager: one more call per verdict, so it is asked for.
	ComplianceItems bool
	// LogRetention keeps the agents', functions' and trail's logs (default one year).
	LogRetention awslogs.RetentionDays
	// RemovalPolicy is what deleting the stack does to what holds data or evidence: the
	// key, the ledger, the buckets and the agents' logs. Default RETAIN. DESTROY (for
	// test stacks) schedules the key's deletion, drops the ledger's deletion protection,
	// and fails on a bucket that is not empty.
	RemovalPolicy awscdk.RemovalPolicy
	// Tags are added to every resource of the construct that takes tags.
	Tags map[string]string
}

func (p *Props) defaults(c constructs.Construct) error {
	def := func(v *string, d string) {
		if *v == "" {
			*v = d
		}
	}
	if p.Name == "" {
		// A name of the construct's path (stack and ids) with a hash of it: unique per
		// account and region as the stack name is, and short enough for every use below.
		p.Name = *awscdk.Names_UniqueResourceName(c, &awscdk.UniqueResourceNameOptions{MaxLength: jsii.Number(64), Separator: jsii.String("-")})
	}
	def(&p.KeyAlias, "alias/"+p.Name)
	def(&p.DocumentName, p.Name+"-apply")
	def(&p.LedgerTableName, p.Name+contract.LedgerTableSuffix)
	def(&p.MetricNamespace, contract.MetricNamespace+"/"+p.Name)
	def(&p.KeySource, contract.KeySourceKMSDataKey)
	def(&p.SecretKey, "seed/passphrase")
	def(&p.MountPoint, contract.DefaultMountPoint)
	def(&p.Filesystem, contract.DefaultFilesystem)
	if p.LogRetention == "" {
		p.LogRetention = awslogs.RetentionDays_ONE_YEAR
	}
	if p.RemovalPolicy == "" {
		p.RemovalPolicy = awscdk.RemovalPolicy_RETAIN
	}
	if p.KeySource != contract.KeySourceKMSDataKey && p.KeySource != contract.KeySourceS3KMS {
		return fmt.Errorf("keySource %q: storecrypt deploys %s or %s (ephemeral needs no stack)", p.KeySource, contract.KeySourceKMSDataKey, contract.KeySourceS3KMS)
	}
	if p.RequireInstanceNetwork && p.KeySource != contract.KeySourceKMSDataKey {
		// s3-kms's passphrase carries no storecrypt context and is also read by S3 on the
		// caller's behalf, where the caller's network keys describe S3's request, not the
		// instance's.
		return fmt.Errorf("requireInstanceNetwork binds %s volume contexts; keySource %s has none", contract.KeySourceKMSDataKey, p.KeySource)
	}
	if err := p.checkInstanceRolePath(); err != nil {
		return err
	}
	if !unresolved(p.LedgerTableName) && !strings.HasSuffix(p.LedgerTableName, contract.LedgerTableSuffix) {
		return fmt.Errorf("ledger table name %q: end it with %s (the example SCP protects storecrypt's ledgers by that suffix)", p.LedgerTableName, contract.LedgerTableSuffix)
	}
	for _, n := range []struct {
		what, value, rule string
		ok                *regexp.Regexp
		reserved          []string
	}{
		{"key alias", p.KeyAlias, "alias/ then letters, digits, /, _ and -, at most 256 in all", keyAlias, []string{"alias/aws/"}},
		{"document name", p.DocumentName, "3 to 128 letters, digits, _, - and .", documentName, []string{"aws", "amazon", "amzn"}},
		{"ledger table name", p.LedgerTableName, "3 to 255 letters, digits, _, - and .", tableName, nil},
		{"metric namespace", p.MetricNamespace, "1 to 255 printable ASCII characters, not starting with :", metricNamespace, []string{"aws/"}},
	} {
		if unresolved(n.value) {
			continue // a parameter's value: its AllowedPattern holds the rule
		}
		bad := !n.ok.MatchString(n.value)
		for _, r := range n.reserved {
			bad = bad || strings.HasPrefix(strings.ToLower(n.value), r)
		}
		if bad && n.reserved != nil {
			return fmt.Errorf("%s %q: AWS takes %s, and none starting with %s", n.what, n.value, n.rule, strings.Join(n.reserved, ", "))
		}
		if bad {
			return fmt.Errorf("%s %q: AWS takes %s", n.what, n.value, n.rule)
		}
	}
	return nil
}

// checkInstanceRolePath refuses a path the key policy cannot bind or the key source
// cannot keep apart. A parameter's value is checked by its AllowedPattern and rule.
func (p *Props) checkInstanceRolePath() error {
	switch {
	case p.InstanceRolePath == "":
		return nil
	case p.KeySource != contract.KeySourceKMSDataKey:
		// The seed passphrase is one secret for every instance: a role under the path
		// would open every instance's volumes, not its own.
		return fmt.Errorf("instanceRolePath binds each role to its own instance's volumes, which keySource %s cannot: its one passphrase opens every instance's; use %s", p.KeySource, contract.KeySourceKMSDataKey)
	case p.KeyARN != "":
		return errors.New("instanceRolePath names key users in the policy of the key the stack creates, and keyArn's policy is yours: leave instanceRolePath empty and copy StoreCryptOwnVolumes and the deny statements of a template synthesized with it and without keyArn into your key's policy (README: keyArn)")
	case unresolved(p.InstanceRolePath):
		return nil
	}
	return contract.CheckInstanceRolePath(p.InstanceRolePath)
}

// unresolved: v is a token (a CfnParameter's value, say), known only at deploy time.
func unresolved(v string) bool { return *awscdk.Token_IsUnresolved(jsii.String(v)) }

// The names AWS accepts: KMS "Create aliases" (1-256 characters of alphanumerics, /, _ and
// -; alias/aws/ is reserved), SSM CreateDocument ("[a-zA-Z0-9_\-.]{3,128}"; "you can't use
// ... aws, amazon, amzn" as prefixes), DynamoDB's table naming rules (3-255 of a-z, A-Z,
// 0-9, _, - and .), CloudWatch's Metric Namespace (1-255, "[^:].*", ASCII without control
// characters; "AWS/" is reserved for AWS's own).
var (
	keyAlias        = regexp.MustCompile(`^alias/[A-Za-z0-9/_-]{1,250}$`)
	documentName    = regexp.MustCompile(`^[A-Za-z0-9_.-]{3,128}$`)
	tableName       = regexp.MustCompile(`^[A-Za-z0-9_.-]{3,255}$`)
	metricNamespace = regexp.MustCompile(`^[\x20-\x39\x3b-\x7e][\x20-\x7e]{0,254}$`)
	nonAlnum        = regexp.MustCompile(`[^A-Za-z0-9]`)
)

// StoreCrypt is what New added, for the caller to wire further: alarms to its own
// topics, the key to other grants, the roles to other policies.
type StoreCrypt struct {
	// Construct is the scope every resource is under.
	Construct constructs.Construct
	// Props are the props as New applied them: defaults filled in, names derived.
	Props Props
	// Key wraps the volume keys (imported when Props.KeyARN is set).
	Key awskms.IKey
	// Document is the SSM Command document; DocumentName its name.
	Document     awsssm.CfnDocument
	DocumentName string
	// InstanceRoles are the roles whose instances are in scope; InstanceProfile is nil
	// unless the construct created the role.
	InstanceRoles   []awsiam.IRole
	InstanceProfile awsiam.InstanceProfile
	// LaunchFunction and ResultFunction carry their roles (Role()).
	LaunchFunction, ResultFunction awslambda.Function
	// LaunchQueue takes the launch events; its dead-letter queue the ones given up on.
	LaunchQueue, LaunchDLQ, ResultDLQ awssqs.Queue
	// Alarms are every alarm the construct made; AlarmTopic, the topic of
	// Props.AlarmEmail, gets them (nil without it); OptOutAlarm counts opt-outs (nil
	// unless Props.AllowOptOut).
	Alarms      []awscloudwatch.Alarm
	AlarmTopic  awssns.Topic
	OptOutAlarm awscloudwatch.Alarm
	// Ledger is the evidence table; AgentLogs the group of the agents' command output.
	Ledger    awsdynamodb.Table
	AgentLogs awslogs.LogGroup
	// OperatorPolicy is what `storecrypt` and the console need; attach it to operators.
	OperatorPolicy awsiam.ManagedPolicy
}

// builder is what every part is built with: the construct they go under, its stack
// (ARNs, region, partition) and the props. Each part takes the others it needs as
// arguments and returns what it built.
// (jsii cannot take a Go struct that embeds a construct as a scope, so c is a field.)
type builder struct {
	c     constructs.Construct
	st    awscdk.Stack
	props *Props
}

// New adds storecrypt to scope, in scope's stack, under a construct named id. An id of
// "Default" gives the resources the logical IDs they would have as the stack's own (CDK
// leaves "Default" out of them) and the outputs keys without a prefix: the app in infra/
// and package publish use it for a stack that holds storecrypt alone.
func New(ctx context.Context, scope constructs.Construct, id string, props *Props) (*StoreCrypt, error) {
	var p Props
	if props != nil {
		p = *props
	}
	c := constructs.NewConstruct(scope, &id)
	if err := p.defaults(c); err != nil {
		return nil, err
	}
	if p.BuildDir == "" {
		cache, err := os.UserCacheDir()
		if err != nil {
			return nil, fmt.Errorf("no directory to build storecrypt in (set Props.BuildDir): %w", err)
		}
		p.BuildDir = filepath.Join(cache, "storecrypt", "build")
		if err := artifact.Build(ctx, p.BuildDir, artifact.Options{Log: os.Stderr}); err != nil {
			return nil, err
		}
	}
	s := &builder{c: c, st: awscdk.Stack_Of(scope), props: &p}
	for k, v := range p.Tags {
		awscdk.Tags_Of(c).Add(jsii.String(k), jsii.String(v), nil)
	}
	logs := s.accessLogs()
	roles := s.instanceRoles()
	path := s.rolePath(roles.arns)
	key := s.kmsKey(roles, path)
	var secret awss3.Bucket
	if p.KeySource == contract.KeySourceS3KMS {
		secret = s.secretBucket(key, roles, logs)
	}
	code, err := s.stageCode()
	if err != nil {
		return nil, err
	}
	secretURL := s.secretURL(secret)
	doc, err := s.ssmDocument(code.agents, key, secretURL)
	if err != nil {
		return nil, err
	}
	access := s.instanceAccess(code, doc, roles, path)
	queue, dlq := s.queues()
	table := s.ledgerTable(key)
	fns := s.functions(functionInputs{key: key, roles: roles, access: access, doc: doc, ledger: table, code: code, secret: secretURL, queue: queue, dlq: dlq})
	alarms := s.alarmsAndTopic(fns)
	s.dashboard(fns)
	if p.Trail {
		s.trail(logs)
	}
	operator := s.operatorPolicy(key, doc, table, secret)
	sc := &StoreCrypt{
		Construct: c, Props: p, Key: key, Document: doc.resource, DocumentName: p.DocumentName,
		InstanceRoles: roles.roles, InstanceProfile: roles.profile,
		LaunchFunction: fns.launch, ResultFunction: fns.result,
		LaunchQueue: fns.queue, LaunchDLQ: fns.dlq, ResultDLQ: fns.resultDLQ,
		Alarms: alarms.all, AlarmTopic: alarms.topic, OptOutAlarm: alarms.optOut, Ledger: table, AgentLogs: doc.agentLogs,
		OperatorPolicy: operator,
	}
	s.outputs(sc, doc, roles, code.objects, secret, access)
	return sc, nil
}

// component tags what the example SCP keeps to the deployers (contract.TagComponent): its
// function names, document name and key ARN are not known before a deployment, its tag is.
func component(c constructs.IConstruct, part string) {
	awscdk.Tags_Of(c).Add(jsii.String(contract.TagComponent), jsii.String(part), nil)
}

func statement(sid string, actions []string, resources []*string, conditions map[string]any) awsiam.PolicyStatement {
	return awsiam.NewPolicyStatement(&awsiam.PolicyStatementProps{
		Sid: jsii.String(sid), Effect: awsiam.Effect_ALLOW, Actions: jsii.Strings(actions...),
		Resources: &resources, Conditions: &conditions,
	})
}

// appliesTo matches the finding's resource whether the stack's account and region are
// concrete or tokens.
func appliesTo(re string) *cdknag.RegexAppliesTo {
	return &cdknag.RegexAppliesTo{Regex: jsii.String("/" + re + "/g")}
}

var anyInstance = appliesTo(`^Resource::arn:<AWS::Partition>:ec2:[^:]+:[^:]+:instance/\*$`)

func (s *builder) instanceARN() *string {
	return s.st.FormatArn(&awscdk.ArnComponents{Service: jsii.String("ec2"), Resource: jsii.String("instance"), ResourceName: jsii.String("*")})
}

// outputs are what `storecrypt --stack` reads. Their keys are the contract's names,
// prefixed with the construct's id unless it is "Default" (the app's), so that the CLI
// finds them by suffix in a stack that holds other outputs.
func (s *builder) outputs(sc *StoreCrypt, doc deployedDocument, roles fleetRoles, agents []agentOutput, secret awss3.Bucket, access instanceGrants) {
	prefix := nonAlnum.ReplaceAllString(*s.c.Node().Id(), "")
	if prefix == "Default" {
		prefix = ""
	}
	out := func(id string, v *string, desc string) awscdk.CfnOutput {
		o := awscdk.NewCfnOutput(s.c, jsii.String(id), &awscdk.CfnOutputProps{Value: v, Description: jsii.String(desc)})
		o.OverrideLogicalId(jsii.String(prefix + id))
		return o
	}
	out(contract.OutputKeyARN, sc.Key.KeyArn(), "KMS key that wraps the volume keys")
	out(contract.OutputKeySource, jsii.String(s.props.KeySource), "where the volume keys come from")
	out(contract.OutputDocumentName, doc.name, "SSM document to rerun from the console")
	digest := out(contract.OutputDocumentDigest, jsii.String(doc.digest), "SHA-256 of the document content the stack deployed (storecrypt report trusts only runs of it)")
	exportParts := []*string{awscdk.Aws_STACK_NAME(), jsii.String(contract.StackExport)}
	if prefix != "" {
		exportParts = append(exportParts, jsii.String(prefix))
	}
	digest.SetExportName(awscdk.Fn_Join(jsii.String(":"), &exportParts))
	out(contract.OutputInstanceRoleARNs, awscdk.Fn_Join(jsii.String(","), &roles.arns), "roles whose instances are in scope")
	out("LaunchQueueUrl", sc.LaunchQueue.QueueUrl(), "queue of launch events")
	out(contract.OutputLedgerTable, sc.Ledger.TableName(), "DynamoDB table of the ledger: one item per instance launch")
	out(contract.OutputAgentLogGroup, sc.AgentLogs.LogGroupName(), "log group of the agents' command output (launch runs and storecrypt rerun)")
	for _, a := range agents {
		arch := strings.ToUpper(a.arch[:1]) + a.arch[1:]
		out(contract.OutputAgentS3URL(a.arch), jsii.String(a.s3URL), "storecrypt-agent for linux/"+a.arch+", gzipped, for user data and image builds (boot-time mode); the instance roles may read it")
		out("Agent"+arch+"Sha256", jsii.String(a.sha256), "SHA-256 of storecrypt-agent for linux/"+a.arch+" once decompressed: check it before installing")
	}
	if s.props.OptInTag != "" {
		o := out(contract.OutputOptInTag, jsii.String(s.props.OptInTag), "tag an instance with this to opt it in")
		if unresolved(s.props.OptInTag) {
			// A parameter that may be empty: CloudFormation takes no empty output.
			o.SetCondition(awscdk.NewCfnCondition(s.c, jsii.String("HasOptInTag"), &awscdk.CfnConditionProps{
				Expression: awscdk.Fn_ConditionNot(awscdk.Fn_ConditionEquals(s.props.OptInTag, jsii.String(""))),
			}))
		}
	}
	if access.policy != nil {
		o := out(contract.OutputInstanceAccessPolicyARN, access.policy.ManagedPolicyArn(), "managed policy to attach to each instance role under InstanceRolePath: lets it read the agent and write its command's output")
		if access.path.cond != nil {
			o.SetCondition(access.path.cond)
		}
	}
	if secret != nil {
		out("SecretBucketName", secret.BucketName(), "bucket of the seed passphrase (s3-kms)")
		out(contract.OutputSecret, jsii.String(s.secretURL(secret)), "the seed passphrase's object (s3-kms)")
	}
	if roles.profile != nil {
		out("InstanceRoleArn", roles.arns[0], "role for workloads")
		out("InstanceProfileName", roles.profile.InstanceProfileName(), "instance profile for workloads (CloudFormation names it)")
		out("InstanceProfileArn", roles.profile.InstanceProfileArn(), "instance profile for workloads")
	}
}
