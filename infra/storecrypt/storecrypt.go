// Package storecrypt is storecrypt's CDK construct: the KMS key, the seed-compatible
// secret bucket, the agent binaries, the SSM document, the instance role, the launch queue
// and rules, both functions with least-privilege roles, alarms, an optional trail and the
// operator policy, added to any stack with New. Every name it shares with the agent and
// the functions comes from internal/contract.
package storecrypt

import (
	"bytes"
	"compress/gzip"
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"time"

	"github.com/aws/aws-cdk-go/awscdk/v2"
	"github.com/aws/aws-cdk-go/awscdk/v2/awscloudtrail"
	"github.com/aws/aws-cdk-go/awscdk/v2/awscloudwatch"
	"github.com/aws/aws-cdk-go/awscdk/v2/awscloudwatchactions"
	"github.com/aws/aws-cdk-go/awscdk/v2/awsdynamodb"
	"github.com/aws/aws-cdk-go/awscdk/v2/awsevents"
	"github.com/aws/aws-cdk-go/awscdk/v2/awseventstargets"
	"github.com/aws/aws-cdk-go/awscdk/v2/awsiam"
	"github.com/aws/aws-cdk-go/awscdk/v2/awskms"
	"github.com/aws/aws-cdk-go/awscdk/v2/awslambda"
	"github.com/aws/aws-cdk-go/awscdk/v2/awslambdaeventsources"
	"github.com/aws/aws-cdk-go/awscdk/v2/awslogs"
	"github.com/aws/aws-cdk-go/awscdk/v2/awss3"
	"github.com/aws/aws-cdk-go/awscdk/v2/awssns"
	"github.com/aws/aws-cdk-go/awscdk/v2/awssnssubscriptions"
	"github.com/aws/aws-cdk-go/awscdk/v2/awssqs"
	"github.com/aws/aws-cdk-go/awscdk/v2/awsssm"
	"github.com/aws/constructs-go/constructs/v10"
	"github.com/aws/jsii-runtime-go"
	"github.com/cdklabs/cdk-nag-go/cdknag/v2"

	"github.com/storecrypt/storecrypt/infra/artifact"
	"github.com/storecrypt/storecrypt/internal/contract"
	"github.com/storecrypt/storecrypt/internal/document"
	"github.com/storecrypt/storecrypt/internal/ledger"
)

// staleAfter: a command pending this long has lost its result (the document's run step
// times out after 30 minutes).
const staleAfter = time.Hour

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
	// derived from Name one by one (the app keeps the names of its earlier releases).
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
	// IPv4 address: credentials copied off the instance (IMDS) no longer open its volume
	// from elsewhere. Every VPC the instances run in then needs a KMS interface endpoint
	// with private DNS, which the construct does not create: the VPCs are the user's.
	RequireInstanceNetwork bool
	// InstanceRoleARNs are the workloads' own roles; empty creates a role and profile.
	InstanceRoleARNs []string
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

// builder carries the constructs the parts share while they are built.
// (jsii cannot take a Go struct that embeds a construct as a scope, so c is a field.)
type builder struct {
	c           constructs.Construct
	st          awscdk.Stack // the stack c is in: ARNs, region, partition
	props       *Props
	key         awskms.IKey
	ownKey      awskms.Key // nil when the key is imported
	roles       []awsiam.IRole
	roleARNs    []*string
	bucket      awss3.Bucket // the secret bucket; nil for kms-datakey
	logs        awss3.Bucket
	docName     *string
	docARN      *string
	queue       awssqs.Queue
	dlq         awssqs.Queue
	resultDLQ   awssqs.Queue
	launch      awslambda.Function
	result      awslambda.Function
	agentLogs   awslogs.LogGroup
	profile     awsiam.InstanceProfile // nil when the roles are the user's own
	document    awsssm.CfnDocument
	digest      string // document.Digest of the document's content
	alarms      []awscloudwatch.Alarm
	ledger      awsdynamodb.Table
	operator    awsiam.ManagedPolicy
	agents      []agentObject       // the agent binaries, for user data and image builds
	code        awss3.IBucket       // Props.CodeBucket; nil until used
	topic       awssns.Topic        // nil without Props.AlarmEmail
	optOutAlarm awscloudwatch.Alarm // nil without Props.AllowOptOut
	// functionKeys are the functions' zips in the code bucket (Props.CodeBucket set).
	functionKeys map[string]string
}

// agentObject is one agent binary as an S3 object.
type agentObject struct {
	arch, s3URL, sha256 string
}

// New adds storecrypt to scope, in scope's stack, under a construct named id. An id of
// "Default" keeps the logical IDs of resources as if they were the stack's own (CDK
// leaves "Default" out of them), which is how the app in infra/ keeps those of its
// earlier releases.
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
	s := &builder{c: c, st: awscdk.Stack_Of(scope), props: &p, functionKeys: map[string]string{}}
	if p.CodeBucket != "" {
		for _, fn := range artifact.Functions {
			key, err := artifact.FunctionKey(p.BuildDir, fn)
			if err != nil {
				return nil, err
			}
			s.functionKeys[fn] = key
		}
	}
	for k, v := range p.Tags {
		awscdk.Tags_Of(c).Add(jsii.String(k), jsii.String(v), nil)
	}
	s.docName = jsii.String(p.DocumentName)
	s.docARN = s.st.FormatArn(&awscdk.ArnComponents{Service: jsii.String("ssm"), Resource: jsii.String("document"), ResourceName: s.docName})
	s.accessLogs()
	s.instanceRoles()
	s.kmsKey()
	if p.KeySource == contract.KeySourceS3KMS {
		s.secretBucket()
	}
	artifacts, err := s.agentArtifacts()
	if err != nil {
		return nil, err
	}
	if err := s.ssmDocument(artifacts); err != nil {
		return nil, err
	}
	s.queues()
	s.ledgerTable()
	s.launchFunction()
	s.resultFunction()
	s.rules()
	s.alarmsAndTopic()
	s.dashboard()
	if p.Trail {
		s.trail()
	}
	s.operatorPolicy()
	s.outputs()
	return &StoreCrypt{
		Construct: c, Props: p, Key: s.key, Document: s.document, DocumentName: p.DocumentName,
		InstanceRoles: s.roles, InstanceProfile: s.profile,
		LaunchFunction: s.launch, ResultFunction: s.result,
		LaunchQueue: s.queue, LaunchDLQ: s.dlq, ResultDLQ: s.resultDLQ,
		Alarms: s.alarms, AlarmTopic: s.topic, OptOutAlarm: s.optOutAlarm, Ledger: s.ledger, AgentLogs: s.agentLogs, OperatorPolicy: s.operator,
	}, nil
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

// accessLogs is the bucket that keeps the other buckets' access logs.
func (s *builder) accessLogs() {
	s.logs = awss3.NewBucket(s.c, jsii.String("AccessLogs"), &awss3.BucketProps{
		BlockPublicAccess: awss3.BlockPublicAccess_BLOCK_ALL(), EnforceSSL: jsii.Bool(true),
		Encryption: awss3.BucketEncryption_S3_MANAGED, ObjectOwnership: awss3.ObjectOwnership_BUCKET_OWNER_PREFERRED,
		Versioned: jsii.Bool(true), RemovalPolicy: s.props.RemovalPolicy,
		LifecycleRules: &[]*awss3.LifecycleRule{{Expiration: awscdk.Duration_Days(jsii.Number(400))}},
	})
	cdknag.NagSuppressions_AddResourceSuppressions(s.logs, &[]*cdknag.NagPackSuppression{{
		Id: jsii.String("AwsSolutions-S1"), Reason: jsii.String("This is the access-log bucket; logging it into itself would loop."),
	}}, jsii.Bool(true))
}

// instanceRoles creates the workload role and profile, or imports the user's roles.
func (s *builder) instanceRoles() {
	if len(s.props.InstanceRoleARNs) > 0 {
		for i, arn := range s.props.InstanceRoleARNs {
			r := awsiam.Role_FromRoleArn(s.c, jsii.String(fmt.Sprintf("InstanceRole%d", i)), jsii.String(arn), &awsiam.FromRoleArnOptions{Mutable: jsii.Bool(true)})
			s.roles = append(s.roles, r)
			s.roleARNs = append(s.roleARNs, jsii.String(arn))
		}
		return
	}
	role := awsiam.NewRole(s.c, jsii.String("InstanceRole"), &awsiam.RoleProps{
		AssumedBy:       awsiam.NewServicePrincipal(jsii.String("ec2.amazonaws.com"), nil),
		Description:     jsii.String("storecrypt workloads: SSM managed instance and key user for instance-store encryption"),
		ManagedPolicies: &[]awsiam.IManagedPolicy{awsiam.ManagedPolicy_FromAwsManagedPolicyName(jsii.String("AmazonSSMManagedInstanceCore"))},
	})
	cdknag.NagSuppressions_AddResourceSuppressions(role, &[]*cdknag.NagPackSuppression{{
		Id:        jsii.String("AwsSolutions-IAM4"),
		Reason:    jsii.String("AmazonSSMManagedInstanceCore is SSM's documented minimum for a managed instance; storecrypt's own rights are separate statements."),
		AppliesTo: &[]any{"Policy::arn:<AWS::Partition>:iam::aws:policy/AmazonSSMManagedInstanceCore"},
	}}, jsii.Bool(true))
	s.profile = awsiam.NewInstanceProfile(s.c, jsii.String("InstanceProfile"), &awsiam.InstanceProfileProps{Role: role})
	s.roles = []awsiam.IRole{role}
	s.roleARNs = []*string{role.RoleArn()}
}

// keyUse is one way the instance roles use the key: the actions and the conditions that
// confine them.
type keyUse struct {
	sid        string
	actions    []string
	conditions map[string]any
}

// keyUses: for kms-datakey, a volume's data key is made and opened only under the
// context that names the calling instance itself: the context's instance ARN must equal
// ec2:SourceInstanceARN, the ARN of the instance whose role credentials signed the call.
// KMS allows an IAM policy variable as the value of kms:EncryptionContext:<key>
// ("Using variables in an encryption context condition"), and ec2:SourceInstanceARN is a
// global key any policy may read. Each context key is required by a condition on its
// value (ForAllValues on kms:EncryptionContextKeys forbids other keys but requires none).
// For s3-kms, the seed recipe's passphrase carries no context: Decrypt without one, and
// only with an instance role's session (which stolen credentials keep: see Limits).
func (s *builder) keyUses() []keyUse {
	if s.props.KeySource == contract.KeySourceS3KMS {
		return []keyUse{{"StoreCryptSeedSecret", []string{"kms:Decrypt"}, map[string]any{
			"Null": map[string]any{"kms:EncryptionContextKeys": "true", "ec2:SourceInstanceARN": "false"},
		}}}
	}
	return []keyUse{{"StoreCryptOwnVolumes", []string{"kms:GenerateDataKey", "kms:Decrypt"}, map[string]any{
		"ForAllValues:StringEquals": map[string]any{"kms:EncryptionContextKeys": contract.ContextKeys},
		"StringEquals":              map[string]any{"kms:EncryptionContext:" + contract.ContextInstanceARN: "${ec2:SourceInstanceARN}"},
		"StringLike":                map[string]any{"kms:EncryptionContext:" + contract.ContextVolume: "*"},
	}}}
}

// kmsKey creates the key (rotation on) with the instance roles as key users, or imports one.
func (s *builder) kmsKey() {
	if s.props.KeyARN != "" {
		s.key = awskms.Key_FromKeyArn(s.c, jsii.String("Key"), jsii.String(s.props.KeyARN))
		for _, r := range s.roles {
			for _, u := range s.keyUses() {
				r.AddToPrincipalPolicy(statement(u.sid, u.actions, []*string{s.key.KeyArn()}, u.conditions))
			}
		}
		return
	}
	key := awskms.NewKey(s.c, jsii.String("Key"), &awskms.KeyProps{
		Alias:             jsii.String(s.props.KeyAlias),
		Description:       jsii.String("storecrypt: wraps the instance-store volume keys"),
		EnableKeyRotation: jsii.Bool(true),
		PendingWindow:     awscdk.Duration_Days(jsii.Number(30)),
		RemovalPolicy:     s.props.RemovalPolicy,
	})
	for _, u := range s.keyUses() {
		key.AddToResourcePolicy(awsiam.NewPolicyStatement(&awsiam.PolicyStatementProps{
			Sid: jsii.String(u.sid), Effect: awsiam.Effect_ALLOW,
			Principals: s.rolePrincipals(), Actions: jsii.Strings(u.actions...), Resources: jsii.Strings("*"),
			Conditions: &u.conditions,
		}), jsii.Bool(false))
	}
	for _, d := range s.keyDenials() {
		key.AddToResourcePolicy(d, jsii.Bool(false))
	}
	component(key, "key")
	s.key, s.ownKey = key, key
}

func (s *builder) rolePrincipals() *[]awsiam.IPrincipal {
	var p []awsiam.IPrincipal
	for _, arn := range s.roleARNs {
		p = append(p, awsiam.NewArnPrincipal(arn))
	}
	return &p
}

// keyDenials keep storecrypt's volume keys out of reach of everyone but the instance that
// owns each, whatever else the key policy or IAM policies allow (the account-root
// statement delegates the key to every IAM policy in the account, and an explicit deny in
// the key policy overrides any allow, grants included). Each applies to a request that
// carries any storecrypt:* context key, so the key's management (PutKeyPolicy,
// DescribeKey, ...), which carries none, stays with the account as KMS's lockout check
// wants:
//   - no principal may use a context that does not name its own instance: one naming
//     another instance, or none (a negated operator matches a missing key);
//   - no caller without ec2:SourceInstanceARN may use one. The deny above already refuses
//     it where IAM reads an unresolved ${ec2:SourceInstanceARN} as a null that
//     StringNotEquals matches ("Policy variables with no value"); the same page also says
//     an unresolved variable may make the statement invalid, and this deny holds then too;
//   - no principal but the instance roles may use one;
//   - no action but GenerateDataKey and Decrypt may carry one, so ReEncrypt*, Encrypt,
//     GenerateDataKeyWithoutPlaintext and CreateGrant do not depend on which context
//     (source, destination, a grant's constraints) KMS reads for them;
//   - with Props.RequireInstanceNetwork, networkDenials.
func (s *builder) keyDenials() []awsiam.PolicyStatement {
	// deny refuses every KMS action but notActions (none: all of them) to any principal,
	// for a request with a storecrypt context that meets conditions.
	deny := func(sid string, notActions []string, conditions map[string]any) awsiam.PolicyStatement {
		conditions["ForAnyValue:StringLike"] = map[string]any{"kms:EncryptionContextKeys": "storecrypt:*"}
		props := &awsiam.PolicyStatementProps{
			Sid: jsii.String(sid), Effect: awsiam.Effect_DENY,
			Principals: &[]awsiam.IPrincipal{awsiam.NewAnyPrincipal()}, Resources: jsii.Strings("*"), Conditions: &conditions,
		}
		if notActions != nil {
			props.NotActions = jsii.Strings(notActions...)
		} else {
			props.Actions = jsii.Strings("kms:*")
		}
		return awsiam.NewPolicyStatement(props)
	}
	denials := []awsiam.PolicyStatement{
		deny("StoreCryptOnlyTheOwningInstance", nil, map[string]any{
			"StringNotEquals": map[string]any{"kms:EncryptionContext:" + contract.ContextInstanceARN: "${ec2:SourceInstanceARN}"},
		}),
		deny("StoreCryptOnlyFromAnInstance", nil, map[string]any{"Null": map[string]any{"ec2:SourceInstanceARN": "true"}}),
		deny("StoreCryptOnlyTheInstanceRoles", nil, map[string]any{"ArnNotEquals": map[string]any{"aws:PrincipalArn": s.roleARNs}}),
		deny("StoreCryptOnlyDataKeyUse", []string{"kms:GenerateDataKey", "kms:Decrypt"}, map[string]any{}),
	}
	if s.props.RequireInstanceNetwork {
		denials = append(denials, networkDenials(deny)...)
	}
	return denials
}

// networkDenials confine a storecrypt context to the network of the instance whose
// credentials sign the request, as AWS's credential-relative keys allow: the session
// carries the VPC its credentials were delivered to (aws:Ec2InstanceSourceVpc) and the
// instance's primary private IPv4 address (aws:Ec2InstanceSourcePrivateIPv4); a request
// through a VPC endpoint carries the endpoint's VPC (aws:SourceVpc) and the caller's
// address in it (aws:VpcSourceIp). Each pair is compared in its own statement (one
// StringNotEquals over both keys would deny only when both differ). A caller that is not
// an instance session has no aws:Ec2InstanceSource* key, and the negated operator matches
// a missing key. A request not through an endpoint leaves the variables unresolved, which
// IAM reads as a null that StringNotEquals matches, or as an invalid statement: the Null
// denies refuse it under either reading, one per key, since a Null block over two keys
// matches only when both are missing.
func networkDenials(deny func(string, []string, map[string]any) awsiam.PolicyStatement) []awsiam.PolicyStatement {
	return []awsiam.PolicyStatement{
		deny("StoreCryptOnlyInTheInstanceVpc", nil, map[string]any{
			"StringNotEquals": map[string]any{"aws:Ec2InstanceSourceVpc": "${aws:SourceVpc}"},
		}),
		deny("StoreCryptOnlyFromTheInstanceAddress", nil, map[string]any{
			"StringNotEquals": map[string]any{"aws:Ec2InstanceSourcePrivateIPv4": "${aws:VpcSourceIp}"},
		}),
		deny("StoreCryptOnlyThroughAVpcEndpoint", nil, map[string]any{"Null": map[string]any{"aws:SourceVpc": "true"}}),
		deny("StoreCryptOnlyWithTheEndpointAddress", nil, map[string]any{"Null": map[string]any{"aws:VpcSourceIp": "true"}}),
	}
}

// secretBucket holds the seed-compatible passphrase for s3-kms.
func (s *builder) secretBucket() {
	b := awss3.NewBucket(s.c, jsii.String("SecretBucket"), &awss3.BucketProps{
		BlockPublicAccess: awss3.BlockPublicAccess_BLOCK_ALL(), EnforceSSL: jsii.Bool(true),
		Encryption: awss3.BucketEncryption_KMS, EncryptionKey: s.key, BucketKeyEnabled: jsii.Bool(true),
		Versioned: jsii.Bool(true), ObjectOwnership: awss3.ObjectOwnership_BUCKET_OWNER_ENFORCED,
		ServerAccessLogsBucket: s.logs, ServerAccessLogsPrefix: jsii.String("secret-bucket/"),
		RemovalPolicy: s.props.RemovalPolicy,
	})
	object := b.ArnForObjects(jsii.String(s.props.SecretKey))
	for _, r := range s.roles {
		// GetObjectVersion: a volume's token names the version of the secret it was made
		// with, and S3 authorizes a read by version as s3:GetObjectVersion.
		r.AddToPrincipalPolicy(statement("StoreCryptReadSecret", contract.SecretReadActions, []*string{object}, nil))
		// The object is SSE-KMS under the same key: S3 asks KMS to decrypt it on the
		// role's behalf, through S3 and with the bucket's ARN as the context (the bucket
		// uses an S3 Bucket Key). The key policy's own statement allows only the
		// context-free Decrypt of the passphrase, so this one goes through IAM.
		r.AddToPrincipalPolicy(statement("StoreCryptSecretThroughS3", []string{"kms:Decrypt"}, []*string{s.key.KeyArn()}, map[string]any{
			"StringEquals": map[string]any{
				"kms:ViaService":                   "s3." + *s.st.Region() + "." + *awscdk.Aws_URL_SUFFIX(),
				"kms:EncryptionContext:aws:s3:arn": b.BucketArn(),
			}}))
	}
	if s.props.SecretVPCEndpoint != "" {
		b.AddToResourcePolicy(awsiam.NewPolicyStatement(&awsiam.PolicyStatementProps{
			Sid: jsii.String("OnlyThroughTheVpcEndpoint"), Effect: awsiam.Effect_DENY,
			Principals: &[]awsiam.IPrincipal{awsiam.NewAnyPrincipal()}, Actions: jsii.Strings(contract.SecretReadActions...),
			Resources:  &[]*string{object},
			Conditions: &map[string]any{"StringNotEquals": map[string]any{"aws:SourceVpce": s.props.SecretVPCEndpoint}},
		}))
	}
	s.bucket = b
}

// agentArtifacts uploads the agents, gzipped, as file assets under keys that differ only
// in the architecture (storecrypt-agent-<build>-<arch>.gz, <build> from both objects'
// digests, so a new build is a new key), which lets one download step fetch only the
// instance's own; and lets the instance roles read exactly those objects. CDK names an
// awss3assets.Asset's object by its own hash, so the agents are staged and added to the
// synthesizer directly, as Asset does, with the key chosen here.
func (s *builder) agentArtifacts() (document.Agents, error) {
	var agents document.Agents
	path := func(arch string) string { return artifact.Agent(s.props.BuildDir, arch) }
	var digests []string
	for _, arch := range document.Architectures {
		a, err := agentDigests(path(arch))
		if err != nil {
			return agents, err
		}
		a.Arch = arch
		agents.Each = append(agents.Each, a)
		digests = append(digests, a.GzSHA256)
	}
	id := artifact.BuildID(digests...)
	if s.props.CodeBucket != "" {
		for _, a := range agents.Each {
			key := s.props.CodePrefix + artifact.AgentKey(id, a.Arch)
			s.agentObject(a, s.codeBucket(), key, "s3://"+s.props.CodeBucket+"/"+key)
		}
		agents.URLPrefix = s.objectURL(s.props.CodeBucket, s.props.CodePrefix+artifact.AgentKeyPrefix(id))
		return agents, nil
	}
	var keyPrefix string
	for _, a := range agents.Each {
		staged := awscdk.NewAssetStaging(s.c, jsii.String("Agent-"+a.Arch), &awscdk.AssetStagingProps{
			SourcePath: jsii.String(path(a.Arch) + document.GzSuffix), AssetHashType: awscdk.AssetHashType_CUSTOM, AssetHash: jsii.String(a.GzSHA256),
		})
		loc := s.st.Synthesizer().AddFileAsset(&awscdk.FileAssetSource{
			SourceHash: jsii.String(strings.TrimSuffix(artifact.AgentKey(id, a.Arch), document.GzSuffix)), FileName: staged.RelativeStagedPath(s.st), Packaging: awscdk.FileAssetPackaging_FILE,
		})
		// The URL HttpUrl would give, built here because HttpUrl is one opaque token.
		key, ok := strings.CutSuffix(*loc.ObjectKey, a.Arch+document.GzSuffix)
		if !ok || keyPrefix != "" && key != keyPrefix {
			return agents, fmt.Errorf("the agent for %s was published as %s, not beside the others", a.Arch, *loc.ObjectKey)
		}
		if keyPrefix == "" {
			// The bucket is a token; the same bucket for every file asset of the stack.
			keyPrefix = key
			agents.URLPrefix = s.objectURL(*loc.BucketName, key)
		}
		s.agentObject(a, awss3.Bucket_FromBucketName(s.c, jsii.String("AgentBucket-"+a.Arch), loc.BucketName), *loc.ObjectKey, *loc.S3ObjectUrl)
	}
	return agents, nil
}

// objectURL is the path-style HTTPS URL of an object, as aws:downloadContent takes it.
func (s *builder) objectURL(bucket, key string) string {
	return "https://s3." + *s.st.Region() + "." + *s.st.UrlSuffix() + "/" + bucket + "/" + key
}

// agentObject lets the instance roles read one agent object, and records it for outputs.
func (s *builder) agentObject(a document.Agent, bucket awss3.IBucket, key, s3URL string) {
	object := bucket.ArnForObjects(jsii.String(key))
	for _, r := range s.roles {
		r.AddToPrincipalPolicy(statement("StoreCryptAgent"+a.Arch, []string{"s3:GetObject"}, []*string{object}, nil))
	}
	s.agents = append(s.agents, agentObject{arch: a.Arch, s3URL: s3URL, sha256: a.SHA256})
}

// codeBucket is Props.CodeBucket, imported once.
func (s *builder) codeBucket() awss3.IBucket {
	if s.code == nil {
		s.code = awss3.Bucket_FromBucketName(s.c, jsii.String("CodeBucket"), jsii.String(s.props.CodeBucket))
	}
	return s.code
}

// agentDigests reads the .sha256 that `make build` wrote beside the agent at path and
// checks it against the binary and against what path.gz decompresses to, so neither a
// stale checksum nor a stale download can be deployed.
func agentDigests(path string) (document.Agent, error) {
	var a document.Agent
	b, err := os.ReadFile(path + ".sha256")
	if err != nil {
		return a, fmt.Errorf("reading the agent's checksum (run `make build`): %w", err)
	}
	fields := strings.Fields(string(b))
	binary, err := os.ReadFile(path)
	if err != nil {
		return a, fmt.Errorf("reading the agent (run `make build`): %w", err)
	}
	if len(fields) == 0 || fields[0] != artifact.SHA256(binary) {
		return a, fmt.Errorf("%s.sha256 does not match %s (run `make build`)", path, path)
	}
	gz, err := os.ReadFile(path + document.GzSuffix)
	if err != nil {
		return a, fmt.Errorf("reading the gzipped agent (run `make build`): %w", err)
	}
	zr, err := gzip.NewReader(bytes.NewReader(gz))
	if err != nil {
		return a, fmt.Errorf("%s%s: %w", path, document.GzSuffix, err)
	}
	inside, err := io.ReadAll(zr)
	if err != nil {
		return a, fmt.Errorf("%s%s: %w", path, document.GzSuffix, err)
	}
	if !bytes.Equal(inside, binary) {
		return a, fmt.Errorf("%s%s does not decompress to %s (run `make build`)", path, document.GzSuffix, path)
	}
	return document.Agent{SHA256: fields[0], GzSHA256: artifact.SHA256(gz)}, nil
}

// ssmDocument is the Command document an operator also reruns from the console. Its
// digest goes to both functions, which send and trust only versions with this content.
// UpdateMethod NewVersion: "the default version of the document is changed to the newly
// created version" (CloudFormation's AWS::SSM::Document), so every deploy's content is
// the default, and older versions stay for commands still running.
func (s *builder) ssmDocument(agents document.Agents) error {
	content := document.Content(s.documentDefaults(), agents)
	digest, err := document.Digest(content)
	if err != nil {
		return err
	}
	s.digest = digest
	s.document = awsssm.NewCfnDocument(s.c, jsii.String("Document"), &awsssm.CfnDocumentProps{
		Name: s.docName, DocumentType: jsii.String("Command"), DocumentFormat: jsii.String("JSON"),
		UpdateMethod: jsii.String("NewVersion"), Content: content,
	})
	component(s.document, "document")
	s.agentLogs = awslogs.NewLogGroup(s.c, jsii.String("AgentLogs"), &awslogs.LogGroupProps{
		Retention: s.props.LogRetention, RemovalPolicy: s.props.RemovalPolicy,
	})
	// Run Command's CloudWatch output: the SSM agent looks the group up and creates its
	// streams with the instance's credentials ("Configuring Amazon CloudWatch Logs for Run
	// Command"); without DescribeLogGroups it streams nothing. DescribeLogGroups names no
	// single group: its resource is every group of the account and region.
	groups := s.st.FormatArn(&awscdk.ArnComponents{Service: jsii.String("logs"), Resource: jsii.String("log-group"), ResourceName: jsii.String("*"),
		ArnFormat: awscdk.ArnFormat_COLON_RESOURCE_NAME})
	for _, r := range s.roles {
		r.AddToPrincipalPolicy(statement("StoreCryptCommandOutput", []string{"logs:CreateLogGroup", "logs:CreateLogStream", "logs:PutLogEvents", "logs:DescribeLogStreams"},
			[]*string{s.agentLogs.LogGroupArn()}, nil))
		r.AddToPrincipalPolicy(statement("StoreCryptFindOutputGroup", []string{"logs:DescribeLogGroups"}, []*string{groups}, nil))
		cdknag.NagSuppressions_AddResourceSuppressions(r, &[]*cdknag.NagPackSuppression{{
			Id:        jsii.String("AwsSolutions-IAM5"),
			Reason:    jsii.String("logs:DescribeLogGroups lists the groups of the account and region; the SSM agent needs it to stream the command's output."),
			AppliesTo: &[]any{appliesTo(`^Resource::arn:<AWS::Partition>:logs:[^:]+:[^:]+:log-group:\*$`)},
		}}, jsii.Bool(true))
	}
	return nil
}

// documentDefaults are the document's parameter defaults: the stack's choices.
func (s *builder) documentDefaults() contract.AgentOptions {
	defaults := contract.DefaultAgentOptions()
	defaults.KeySource, defaults.MountPoint, defaults.Filesystem = s.props.KeySource, s.props.MountPoint, s.props.Filesystem
	defaults.KMSKeyID = *s.key.KeyArn()
	defaults.Secret = s.secret()
	return defaults
}

// secret is the s3:// location of the seed secret, or "" for kms-datakey.
func (s *builder) secret() string {
	if s.bucket == nil {
		return ""
	}
	return "s3://" + *s.bucket.BucketName() + "/" + s.props.SecretKey
}

// ledgerTable is the ledger (package ledger): one item per instance launch, kept past
// the instance, the stack and mistakes: point-in-time recovery, deletion protection,
// retained on stack deletion, encrypted under the stack's key.
func (s *builder) ledgerTable() {
	attr := func(name string) *awsdynamodb.Attribute {
		return &awsdynamodb.Attribute{Name: jsii.String(name), Type: awsdynamodb.AttributeType_STRING}
	}
	s.ledger = awsdynamodb.NewTable(s.c, jsii.String("Ledger"), &awsdynamodb.TableProps{
		// The example SCP names storecrypt's ledgers by the suffix, and no other table.
		TableName:    jsii.String(s.props.LedgerTableName),
		PartitionKey: attr(ledger.AttrInstance), SortKey: attr(ledger.AttrLaunchTime),
		BillingMode:                      awsdynamodb.BillingMode_PAY_PER_REQUEST,
		PointInTimeRecoverySpecification: &awsdynamodb.PointInTimeRecoverySpecification{PointInTimeRecoveryEnabled: jsii.Bool(true)},
		DeletionProtection:               jsii.Bool(s.props.RemovalPolicy != awscdk.RemovalPolicy_DESTROY),
		Encryption:                       awsdynamodb.TableEncryption_CUSTOMER_MANAGED, EncryptionKey: s.key,
		RemovalPolicy: s.props.RemovalPolicy,
	})
}

// ledgerRights are the statements that let a principal use the ledger: the item actions
// it calls, and the key through DynamoDB for this table only (DynamoDB decrypts the
// table's key with the caller's credentials).
func (s *builder) ledgerRights(actions ...string) []awsiam.PolicyStatement {
	return []awsiam.PolicyStatement{
		statement("Ledger", actions, []*string{s.ledger.TableArn()}, nil),
		statement("LedgerKey", []string{"kms:Decrypt"}, []*string{s.key.KeyArn()}, map[string]any{
			"StringEquals": map[string]any{
				"kms:ViaService": awscdk.Fn_Join(jsii.String(""), &[]*string{jsii.String("dynamodb."), s.st.Region(), jsii.String("."), s.st.UrlSuffix()}),
				"kms:EncryptionContext:aws:dynamodb:tableName": s.ledger.TableName(),
			},
		}),
	}
}

// queues: the launch queue waits for late SSM agents. Its visibility timeout is 6x the
// function's timeout (AWS's advice for SQS event sources); a message the function hands
// back returns after 15 s, doubling to 5 minutes, and 15 receives keep it about 50
// minutes before the DLQ.
func (s *builder) queues() {
	s.dlq = awssqs.NewQueue(s.c, jsii.String("LaunchDLQ"), &awssqs.QueueProps{
		Encryption: awssqs.QueueEncryption_SQS_MANAGED, EnforceSSL: jsii.Bool(true), RetentionPeriod: awscdk.Duration_Days(jsii.Number(14)),
	})
	s.queue = awssqs.NewQueue(s.c, jsii.String("LaunchQueue"), &awssqs.QueueProps{
		Encryption: awssqs.QueueEncryption_SQS_MANAGED, EnforceSSL: jsii.Bool(true),
		VisibilityTimeout: awscdk.Duration_Seconds(jsii.Number(contract.LaunchVisibility.Seconds())),
		// An SSM agent needs 30 s or more after `running`; waiting that long first saves a retry.
		DeliveryDelay:   awscdk.Duration_Seconds(jsii.Number(30)),
		DeadLetterQueue: &awssqs.DeadLetterQueue{Queue: s.dlq, MaxReceiveCount: jsii.Number(contract.LaunchMaxReceives)},
	})
}

// function builds a Lambda with its own role and log group; the role gets only what grant adds.
func (s *builder) function(id, dir string, timeout float64, env map[string]*string, props *awslambda.FunctionProps) awslambda.Function {
	logs := awslogs.NewLogGroup(s.c, jsii.String(id+"Logs"), &awslogs.LogGroupProps{Retention: s.props.LogRetention, RemovalPolicy: awscdk.RemovalPolicy_DESTROY})
	// The path names the functions' roles as the only writers of storecrypt:* tags in
	// the example SCP (docs/examples), in every account the stack is deployed to.
	role := awsiam.NewRole(s.c, jsii.String(id+"Role"), &awsiam.RoleProps{AssumedBy: awsiam.NewServicePrincipal(jsii.String("lambda.amazonaws.com"), nil),
		Path: jsii.String(contract.FunctionRolePath)})
	role.AddToPrincipalPolicy(statement("Logs", []string{"logs:CreateLogStream", "logs:PutLogEvents"}, []*string{logs.LogGroupArn()}, nil))
	if !s.props.NoSecurityHub {
		// The Service Authorization Reference names no resource type for it: "*", held to
		// findings for this account by securityhub:TargetAccount.
		role.AddToPrincipalPolicy(statement("SecurityHubFindings", []string{"securityhub:BatchImportFindings"}, []*string{jsii.String("*")},
			map[string]any{"StringEquals": map[string]any{"securityhub:TargetAccount": s.st.Account()}}))
		// An update keeps the CreatedAt Security Hub holds: only this stack's hub is read.
		role.AddToPrincipalPolicy(statement("SecurityHubCreatedAt", []string{"securityhub:GetFindings"},
			[]*string{s.st.FormatArn(&awscdk.ArnComponents{Service: jsii.String("securityhub"), Resource: jsii.String("hub"), ResourceName: jsii.String("default")})}, nil))
		env[contract.EnvSecurityHub] = jsii.String("true")
	}
	if s.props.ComplianceItems {
		role.AddToPrincipalPolicy(statement("ComplianceItems", []string{"ssm:PutComplianceItems"}, []*string{s.instanceARN()}, nil))
		env[contract.EnvComplianceItems] = jsii.String("true")
	}
	// Both functions share what the stack decided; each reads what it needs.
	common := map[string]*string{
		contract.EnvKMSKeyARN:       s.key.KeyArn(),
		contract.EnvKeySource:       jsii.String(s.props.KeySource),
		contract.EnvDocumentName:    s.docName,
		contract.EnvDocumentDigest:  jsii.String(s.digest),
		contract.EnvEventBus:        jsii.String("default"),
		contract.EnvLedgerTable:     s.ledger.TableName(),
		contract.EnvMetricNamespace: jsii.String(s.props.MetricNamespace),
	}
	if secret := s.secret(); secret != "" {
		common[contract.EnvSecret] = jsii.String(secret)
	}
	for k, v := range common {
		env[k] = v
	}
	props.Runtime, props.Architecture, props.Handler = awslambda.Runtime_PROVIDED_AL2023(), awslambda.Architecture_ARM_64(), jsii.String("bootstrap")
	if key, ok := s.functionKeys[dir]; ok {
		props.Code = awslambda.Code_FromBucket(s.codeBucket(), jsii.String(s.props.CodePrefix+key), nil)
		awscdk.Annotations_Of(s.c).AcknowledgeWarning(jsii.String("@aws-cdk/aws-lambda:codeFromBucketObjectVersionNotSpecified"),
			jsii.String("the key names the code's digest: new code is a new key, which CloudFormation sees"))
	} else {
		props.Code = awslambda.Code_FromAsset(jsii.String(artifact.Function(s.props.BuildDir, dir)), nil)
	}
	props.Timeout, props.MemorySize = awscdk.Duration_Seconds(jsii.Number(timeout)), jsii.Number(256)
	props.Role, props.LogGroup, props.Environment = role, logs, &env
	props.Description = jsii.String("storecrypt " + dir + " function")
	fn := awslambda.NewFunction(s.c, jsii.String(id), props)
	component(fn, dir)
	// The document first, then the functions that trust only its digest: an update
	// never leaves a function trusting content that does not exist yet (the launch
	// function would send nothing). Until the functions follow, the old launch function
	// sends the version it trusts and counts the new default as drift, which the drift
	// alarm tolerates for that long.
	fn.Node().AddDependency(s.document)
	return fn
}

func (s *builder) launchFunction() {
	roles := jsii.String(strings.Join(s.props.InstanceRoleARNs, ","))
	if len(s.props.InstanceRoleARNs) == 0 {
		roles = s.roleARNs[0]
	}
	env := map[string]*string{
		contract.EnvMountPoint:    jsii.String(s.props.MountPoint),
		contract.EnvFilesystem:    jsii.String(s.props.Filesystem),
		contract.EnvQueueURL:      s.queue.QueueUrl(),
		contract.EnvAgentLogs:     s.agentLogs.LogGroupName(),
		contract.EnvStaleAfter:    jsii.String(staleAfter.String()),
		contract.EnvInstanceRoles: roles,
	}
	if s.props.OptInTag != "" {
		env[contract.EnvOptInTag] = jsii.String(s.props.OptInTag)
	}
	if s.props.AllowOptOut {
		env[contract.EnvAllowOptOut] = jsii.String("true")
	}
	fn := s.function("Launch", "launch", contract.LaunchFunctionTimeout.Seconds(), env, &awslambda.FunctionProps{})
	role := fn.Role()
	// ListCommandInvocations and GetCommandInvocation: SSM's record of the document's
	// runs decides whether an instance is done, not its tags.
	role.AddToPrincipalPolicy(statement("DescribeInstances", []string{"ec2:DescribeInstances", "ec2:DescribeInstanceTypes", "ssm:DescribeInstanceInformation",
		"ssm:ListCommandInvocations", "ssm:GetCommandInvocation"}, []*string{jsii.String("*")}, nil))
	role.AddToPrincipalPolicy(statement("SendTheDocument", []string{"ssm:SendCommand"}, []*string{s.docARN, s.instanceARN()}, nil))
	s.readDocument(role, "ssm:ListDocumentVersions")
	s.tagRights(role)
	role.AddToPrincipalPolicy(statement("ResolveRoles", []string{"iam:GetInstanceProfile"},
		[]*string{s.st.FormatArn(&awscdk.ArnComponents{Service: jsii.String("iam"), Region: jsii.String(""), Resource: jsii.String("instance-profile"), ResourceName: jsii.String("*")})}, nil))
	role.AddToPrincipalPolicy(statement("SimulateInstanceRoles", []string{"iam:SimulatePrincipalPolicy"},
		[]*string{s.st.FormatArn(&awscdk.ArnComponents{Service: jsii.String("iam"), Region: jsii.String(""), Resource: jsii.String("role"), ResourceName: jsii.String("*")})}, nil))
	role.AddToPrincipalPolicy(statement("InspectTheKey", []string{"kms:DescribeKey", "kms:GetKeyPolicy", "kms:ListGrants"}, []*string{s.key.KeyArn()}, nil))
	role.AddToPrincipalPolicy(statement("SweepQueue", []string{"sqs:SendMessage"}, []*string{s.queue.QueueArn()}, nil))
	s.putEventsRight(role)
	for _, st := range s.ledgerRights("dynamodb:UpdateItem", "dynamodb:Query") {
		role.AddToPrincipalPolicy(st)
	}
	fn.AddEventSource(awslambdaeventsources.NewSqsEventSource(s.queue, &awslambdaeventsources.SqsEventSourceProps{
		BatchSize: jsii.Number(contract.LaunchBatchSize), MaxBatchingWindow: awscdk.Duration_Seconds(jsii.Number(contract.LaunchBatchWindow.Seconds())),
		ReportBatchItemFailures: jsii.Bool(true),
	}))
	cdknag.NagSuppressions_AddResourceSuppressions(role, &[]*cdknag.NagPackSuppression{{
		Id: jsii.String("AwsSolutions-IAM5"),
		Reason: jsii.String("ec2:DescribeInstances, ec2:DescribeInstanceTypes, ssm:DescribeInstanceInformation, ssm:ListCommandInvocations, ssm:GetCommandInvocation and securityhub:BatchImportFindings (held to this account) support no resource-level permissions; " +
			"SendCommand and CreateTags must reach any instance that launches (CreateTags is limited to storecrypt:* tag keys); " +
			"GetInstanceProfile and SimulatePrincipalPolicy must read whichever profile and role an opted-in instance has."),
		AppliesTo: &[]any{"Resource::*", anyInstance, appliesTo(`^Resource::arn:<AWS::Partition>:iam::[^:]+:(instance-profile|role)/\*$`)},
	}}, jsii.Bool(true))
	s.launch = fn
}

// readDocument lets a function read the document's versions, to check their content.
func (s *builder) readDocument(role awsiam.IRole, more ...string) {
	role.AddToPrincipalPolicy(statement("ReadTheDocument", append([]string{"ssm:GetDocument"}, more...), []*string{s.docARN}, nil))
}

// tagRights lets a function write storecrypt's tags, and no others, on instances.
func (s *builder) tagRights(role awsiam.IRole) {
	role.AddToPrincipalPolicy(statement("TagStoreCryptKeysOnly", []string{"ec2:CreateTags"}, []*string{s.instanceARN()}, map[string]any{
		"ForAllValues:StringLike": map[string]any{"aws:TagKeys": []string{"storecrypt:*"}},
	}))
}

func (s *builder) putEventsRight(role awsiam.IRole) {
	bus := s.st.FormatArn(&awscdk.ArnComponents{Service: jsii.String("events"), Resource: jsii.String("event-bus"), ResourceName: jsii.String("default")})
	role.AddToPrincipalPolicy(statement("Alert", []string{"events:PutEvents"}, []*string{bus}, nil))
}

// resultFunction: EventBridge invokes it asynchronously; an event whose every attempt
// failed goes to its dead-letter queue (Lambda's asynchronous invocation: "two more
// times", then the DLQ), which an alarm watches.
func (s *builder) resultFunction() {
	s.resultDLQ = awssqs.NewQueue(s.c, jsii.String("ResultDLQ"), &awssqs.QueueProps{
		Encryption: awssqs.QueueEncryption_SQS_MANAGED, EnforceSSL: jsii.Bool(true), RetentionPeriod: awscdk.Duration_Days(jsii.Number(14)),
	})
	fn := s.function("Result", "result", 30, map[string]*string{}, &awslambda.FunctionProps{
		DeadLetterQueueEnabled: jsii.Bool(true), DeadLetterQueue: s.resultDLQ, RetryAttempts: jsii.Number(2),
	})
	role := fn.Role()
	role.AddToPrincipalPolicy(statement("ReadOutcome", []string{"ssm:GetCommandInvocation", "ssm:ListCommandInvocations", "ec2:DescribeInstances"}, []*string{jsii.String("*")}, nil))
	s.readDocument(role)
	s.tagRights(role)
	s.putEventsRight(role)
	for _, st := range s.ledgerRights("dynamodb:UpdateItem") {
		role.AddToPrincipalPolicy(st)
	}
	cdknag.NagSuppressions_AddResourceSuppressions(role, &[]*cdknag.NagPackSuppression{{
		Id:        jsii.String("AwsSolutions-IAM5"),
		Reason:    jsii.String("ssm:GetCommandInvocation, ssm:ListCommandInvocations, ec2:DescribeInstances and securityhub:BatchImportFindings (held to this account) support no resource-level permissions; CreateTags must reach any instance and is limited to storecrypt:* tag keys."),
		AppliesTo: &[]any{"Resource::*", anyInstance},
	}}, jsii.Bool(true))
	s.result = fn
}

// rules: EC2 running and terminated, and CloudTrail's RunInstances -> launch queue; the
// document's invocation status -> result function; a schedule -> the launch function's
// sweep.
// The RunInstances rule sees events only where a CloudTrail trail logs management events
// in this region ("To record events with one of the CloudTrail detail-type values, you
// must enable a CloudTrail trail with logging"): the trail option, or the account's own.
// Without one it stays silent and the running rule and the sweep do the work.
func (s *builder) rules() {
	stateRule := func(id, state, why string) {
		awsevents.NewRule(s.c, jsii.String(id), &awsevents.RuleProps{
			Description: jsii.String("storecrypt: " + why),
			EventPattern: &awsevents.EventPattern{
				Source: jsii.Strings("aws.ec2"), DetailType: jsii.Strings(contract.DetailStateChange),
				Detail: &map[string]any{"state": []string{state}, "instance-id": []any{map[string]any{"prefix": "i-"}}},
			},
			Targets: &[]awsevents.IRuleTarget{awseventstargets.NewSqsQueue(s.queue, nil)},
		})
	}
	stateRule("InstanceRunning", "running", "an instance entered running (also after every stop/start)")
	stateRule("InstanceTerminated", "terminated", "an instance terminated; the launch function closes its ledger item")
	awsevents.NewRule(s.c, jsii.String("RunInstances"), &awsevents.RuleProps{
		Description: jsii.String("storecrypt: RunInstances succeeded (needs a CloudTrail trail in this region)"),
		EventPattern: &awsevents.EventPattern{
			Source: jsii.Strings("aws.ec2"), DetailType: jsii.Strings(contract.DetailCloudTrail),
			Detail: &map[string]any{
				"eventSource": []string{"ec2.amazonaws.com"}, "eventName": []string{"RunInstances"},
				"errorCode": []any{map[string]any{"exists": false}},
			},
		},
		Targets: &[]awsevents.IRuleTarget{awseventstargets.NewSqsQueue(s.queue, nil)},
	})
	awsevents.NewRule(s.c, jsii.String("InvocationStatus"), &awsevents.RuleProps{
		Description: jsii.String("storecrypt: the document finished on an instance"),
		EventPattern: &awsevents.EventPattern{
			Source: jsii.Strings("aws.ssm"), DetailType: jsii.Strings(contract.DetailInvocationStatus),
			// Only final statuses: the result function ignores the rest, so there is no need
			// to invoke it for them. The event reference spells one "Canceled", the API
			// "Cancelled".
			Detail: &map[string]any{"document-name": []*string{s.docName}, "status": contract.FinalInvocationStatuses},
		},
		// The target's DLQ takes events EventBridge could not deliver; the function's own
		// DLQ takes those it failed to process.
		Targets: &[]awsevents.IRuleTarget{awseventstargets.NewLambdaFunction(s.result, &awseventstargets.LambdaFunctionProps{
			RetryAttempts: jsii.Number(4), DeadLetterQueue: s.resultDLQ})},
	})
	awsevents.NewRule(s.c, jsii.String("Sweep"), &awsevents.RuleProps{
		Description: jsii.String("storecrypt: find running instances whose events were lost"),
		Schedule:    awsevents.Schedule_Rate(awscdk.Duration_Minutes(jsii.Number(15))),
		Targets:     &[]awsevents.IRuleTarget{awseventstargets.NewLambdaFunction(s.launch, nil)},
	})
}

func (s *builder) alarm(id, what string, metric awscloudwatch.IMetric, periods float64) {
	s.alarms = append(s.alarms, awscloudwatch.NewAlarm(s.c, jsii.String(id), &awscloudwatch.AlarmProps{
		AlarmDescription: jsii.String("storecrypt: " + what), Metric: metric, Threshold: jsii.Number(0),
		ComparisonOperator: awscloudwatch.ComparisonOperator_GREATER_THAN_THRESHOLD, EvaluationPeriods: jsii.Number(periods),
		TreatMissingData: awscloudwatch.TreatMissingData_NOT_BREACHING,
	}))
}

// dashboard shows the fleet's flow on one page: instances sent the document, encrypted,
// blocked and failed; time from launch to encrypted; what waits in the dead-letter
// queues; the functions' errors. Every storecrypt metric is one the functions publish
// without dimensions (package emf publishes each that way too).
func (s *builder) dashboard() {
	five := awscdk.Duration_Minutes(jsii.Number(5))
	own := func(name, stat, label string) awscloudwatch.IMetric {
		return awscloudwatch.NewMetric(&awscloudwatch.MetricProps{Namespace: jsii.String(s.props.MetricNamespace), MetricName: jsii.String(name),
			Statistic: jsii.String(stat), Period: five, Label: jsii.String(label)})
	}
	graph := func(title string, left ...awscloudwatch.IMetric) awscloudwatch.IWidget {
		return awscloudwatch.NewGraphWidget(&awscloudwatch.GraphWidgetProps{Title: jsii.String(title), Left: &left, Width: jsii.Number(12), Height: jsii.Number(6)})
	}
	maxDepth := &awscloudwatch.MetricOptions{Period: five, Statistic: jsii.String("Maximum")}
	awscloudwatch.NewDashboard(s.c, jsii.String("Dashboard"), &awscloudwatch.DashboardProps{
		Widgets: &[]*[]awscloudwatch.IWidget{
			{
				graph("Instances", own(contract.MetricCommandsSent, "Sum", "sent the document"), own(contract.MetricEncrypted, "Sum", "encrypted"),
					own(contract.MetricBlocked, "Sum", "blocked"), own(contract.MetricFailed, "Sum", "failed or unverified")),
				graph("Launch to encrypted (seconds)", own(contract.MetricSecondsToEncrypted, "p50", "p50"),
					own(contract.MetricSecondsToEncrypted, "p95", "p95"), own(contract.MetricSecondsToEncrypted, "Maximum", "max")),
			},
			{
				graph("Dead-letter queues", s.dlq.MetricApproximateNumberOfMessagesVisible(maxDepth), s.resultDLQ.MetricApproximateNumberOfMessagesVisible(maxDepth)),
				graph("Function errors", s.launch.MetricErrors(&awscloudwatch.MetricOptions{Period: five}), s.result.MetricErrors(&awscloudwatch.MetricOptions{Period: five})),
			},
		},
	})
}

func (s *builder) alarmsAndTopic() {
	five := awscdk.Duration_Minutes(jsii.Number(5))
	s.alarm("DLQNotEmpty", "launch events gave up (SSM agent never came online, or a fault): see the DLQ",
		s.dlq.MetricApproximateNumberOfMessagesVisible(&awscloudwatch.MetricOptions{Period: five, Statistic: jsii.String("Maximum")}), 1)
	s.alarm("ResultDLQNotEmpty", "results the result function could not record: see its DLQ",
		s.resultDLQ.MetricApproximateNumberOfMessagesVisible(&awscloudwatch.MetricOptions{Period: five, Statistic: jsii.String("Maximum")}), 1)
	s.alarm("LaunchErrors", "the launch function failed", s.launch.MetricErrors(&awscloudwatch.MetricOptions{Period: five}), 1)
	s.alarm("ResultErrors", "the result function failed", s.result.MetricErrors(&awscloudwatch.MetricOptions{Period: five}), 1)
	// The functions publish these with no dimensions as well as per reason (package emf),
	// so an alarm without dimensions sees every instance.
	// Drift must last three periods: a deploy that changes the document updates it
	// minutes before the functions that trust the new content.
	type watched struct {
		name, what string
		periods    float64
	}
	metrics := []watched{
		{contract.MetricBlocked, "instances blocked: see the storecrypt:reason tag", 1},
		{contract.MetricFailed, "instances failed or unverified: see the storecrypt:reason tag", 1},
		{contract.MetricDocumentDrift, "the document's default version is not the content the stack deployed", 3},
	}
	if !s.props.NoSecurityHub {
		metrics = append(metrics, watched{contract.MetricFindingsNotImported, "findings Security Hub did not import: its evidence is incomplete (see the functions' logs)", 1})
	}
	if s.props.AllowOptOut {
		metrics = append(metrics, watched{contract.MetricOptedOut, "instances in scope left unencrypted by storecrypt:encrypt=false", 1})
	}
	for _, m := range metrics {
		s.alarm("Alarm"+m.name, m.what, awscloudwatch.NewMetric(&awscloudwatch.MetricProps{
			Namespace: jsii.String(s.props.MetricNamespace), MetricName: jsii.String(m.name), Statistic: jsii.String("Sum"), Period: five,
		}), m.periods)
		if m.name == contract.MetricOptedOut {
			s.optOutAlarm = s.alarms[len(s.alarms)-1]
		}
	}
	if s.props.AlarmEmail == "" {
		return
	}
	topic := awssns.NewTopic(s.c, jsii.String("Alarms"), &awssns.TopicProps{EnforceSSL: jsii.Bool(true)})
	s.topic = topic
	cdknag.NagSuppressions_AddResourceSuppressions(topic, &[]*cdknag.NagPackSuppression{{
		Id: jsii.String("AwsSolutions-SNS2"), Reason: jsii.String("Alarm notices carry alarm names and states, no cardholder or key data; CloudWatch cannot publish to a topic under the AWS-managed SNS key."),
	}}, jsii.Bool(true))
	topic.AddSubscription(awssnssubscriptions.NewEmailSubscription(jsii.String(s.props.AlarmEmail), nil))
	for _, a := range s.alarms {
		a.AddAlarmAction(awscloudwatchactions.NewSnsAction(topic))
	}
}

// trail records the account's management events, the key's use among them.
func (s *builder) trail() {
	b := awss3.NewBucket(s.c, jsii.String("TrailBucket"), &awss3.BucketProps{
		BlockPublicAccess: awss3.BlockPublicAccess_BLOCK_ALL(), EnforceSSL: jsii.Bool(true), Encryption: awss3.BucketEncryption_S3_MANAGED,
		Versioned: jsii.Bool(true), ServerAccessLogsBucket: s.logs, ServerAccessLogsPrefix: jsii.String("trail/"), RemovalPolicy: s.props.RemovalPolicy,
	})
	awscloudtrail.NewTrail(s.c, jsii.String("Trail"), &awscloudtrail.TrailProps{
		Bucket: b, EnableFileValidation: jsii.Bool(true), IncludeGlobalServiceEvents: jsii.Bool(true),
		SendToCloudWatchLogs: jsii.Bool(true), CloudWatchLogsRetention: s.props.LogRetention,
	})
}

// operatorPolicy is what `storecrypt` (and the SSM console) needs: rerun the document
// only with MFA, read results, verify bindings, report, and for s3-kms store the secret.
//
// MFA: aws:MultiFactorAuthPresent is true only in sessions that proved MFA to IAM (an
// IAM user's console session, GetSessionToken or AssumeRole with a token code); it is
// absent for access keys, and AWS documents no value for IAM Identity Center sessions,
// whose sign-in enforces MFA itself ("IAM Identity Center comes preconfigured with
// multi-factor authentication"). So reruns are allowed with MFA proven to IAM, or from a
// role Identity Center manages (aws:PrincipalArn under role/aws-reserved/sso.amazonaws.com/);
// any other session, and long-term keys, may not rerun.
func (s *builder) operatorPolicy() {
	ssoRoles := s.st.FormatArn(&awscdk.ArnComponents{Service: jsii.String("iam"), Region: jsii.String(""),
		Resource: jsii.String("role"), ResourceName: jsii.String("aws-reserved/sso.amazonaws.com/*")})
	key := []*string{s.key.KeyArn()}
	statements := []awsiam.PolicyStatement{
		statement("RerunWithMFA", []string{"ssm:SendCommand"}, []*string{s.docARN, s.instanceARN()},
			map[string]any{"Bool": map[string]any{"aws:MultiFactorAuthPresent": "true"}}),
		statement("RerunFromIdentityCenter", []string{"ssm:SendCommand"}, []*string{s.docARN, s.instanceARN()},
			map[string]any{"ArnLike": map[string]any{"aws:PrincipalArn": ssoRoles}}),
		statement("ReadResults", []string{"ssm:ListCommands", "ssm:ListCommandInvocations", "ssm:GetCommandInvocation",
			"ssm:DescribeInstanceInformation", "ec2:DescribeInstances", "ec2:DescribeInstanceTypes", "ec2:DescribeTags"}, []*string{jsii.String("*")}, nil),
		// The stack as deployed: a StackSet names its stack instances StackSet-<name>-<id>,
		// never what the template was synthesized as, so the name is AWS::StackName.
		statement("ReadTheStack", []string{"cloudformation:DescribeStacks"}, []*string{awscdk.Arn_Format(&awscdk.ArnComponents{
			Partition: awscdk.Aws_PARTITION(), Region: awscdk.Aws_REGION(), Account: awscdk.Aws_ACCOUNT_ID(),
			Service: jsii.String("cloudformation"), Resource: jsii.String("stack"), ResourceName: jsii.String(*awscdk.Aws_STACK_NAME() + "/*")}, s.st)}, nil),
		// rerun sends only a version with the deployed content (document.Trust): it reads the
		// default's content and, when that is not it, the other versions'.
		statement("ReadTheDocument", []string{"ssm:DescribeDocument", "ssm:GetDocument", "ssm:ListDocumentVersions"}, []*string{s.docARN}, nil),
		statement("VerifyBindings", []string{"iam:GetInstanceProfile", "iam:SimulatePrincipalPolicy"}, []*string{
			s.st.FormatArn(&awscdk.ArnComponents{Service: jsii.String("iam"), Region: jsii.String(""), Resource: jsii.String("instance-profile"), ResourceName: jsii.String("*")}),
			s.st.FormatArn(&awscdk.ArnComponents{Service: jsii.String("iam"), Region: jsii.String(""), Resource: jsii.String("role"), ResourceName: jsii.String("*")}),
		}, nil),
		statement("InspectTheKey", []string{"kms:DescribeKey", "kms:GetKeyPolicy", "kms:ListGrants", "kms:GetKeyRotationStatus"}, key, nil),
	}
	// report scans the ledger for a period; an operator reads one instance's story with Query.
	statements = append(statements, s.ledgerRights("dynamodb:Scan", "dynamodb:Query")...)
	if s.bucket != nil {
		statements = append(statements,
			statement("PutSecretEncrypt", []string{"kms:Encrypt"}, key, nil),
			statement("PutSecretObject", []string{"s3:PutObject"}, []*string{s.bucket.ArnForObjects(jsii.String(s.props.SecretKey))}, nil),
			// SSE-KMS: S3 asks KMS for a data key on the uploader's behalf.
			statement("PutSecretSSEKMS", []string{"kms:GenerateDataKey"}, key, map[string]any{
				"StringEquals": map[string]any{"kms:ViaService": "s3." + *s.st.Region() + "." + *awscdk.Aws_URL_SUFFIX()}}),
		)
	}
	s.operator = awsiam.NewManagedPolicy(s.c, jsii.String("OperatorPolicy"), &awsiam.ManagedPolicyProps{
		Description: jsii.String("storecrypt operators: rerun the document (with MFA, or from IAM Identity Center), read results, verify, report"),
		Statements:  &statements,
	})
	cdknag.NagSuppressions_AddResourceSuppressions(s.operator, &[]*cdknag.NagPackSuppression{{
		Id: jsii.String("AwsSolutions-IAM5"),
		Reason: jsii.String("The List/Get/Describe actions support no resource-level permissions; a rerun must reach any instance, and only with MFA; " +
			"verify reads whichever instance profile and role an instance has; a stack's ARN ends in an id CloudFormation chooses."),
		AppliesTo: &[]any{"Resource::*", anyInstance, appliesTo(`^Resource::arn:<AWS::Partition>:iam::[^:]+:(instance-profile|role)/\*$`),
			"Resource::arn:<AWS::Partition>:cloudformation:<AWS::Region>:<AWS::AccountId>:stack/<AWS::StackName>/*"},
	}}, jsii.Bool(true))
}

// outputs are what `storecrypt --stack` reads. Their keys are the contract's names,
// prefixed with the construct's id unless it is "Default" (the app's), so that the CLI
// finds them by suffix in a stack that holds other outputs.
func (s *builder) outputs() {
	prefix := nonAlnum.ReplaceAllString(*s.c.Node().Id(), "")
	if prefix == "Default" {
		prefix = ""
	}
	out := func(id string, v *string, desc string) awscdk.CfnOutput {
		o := awscdk.NewCfnOutput(s.c, jsii.String(id), &awscdk.CfnOutputProps{Value: v, Description: jsii.String(desc)})
		o.OverrideLogicalId(jsii.String(prefix + id))
		return o
	}
	out(contract.OutputKeyARN, s.key.KeyArn(), "KMS key that wraps the volume keys")
	out(contract.OutputKeySource, jsii.String(s.props.KeySource), "where the volume keys come from")
	out(contract.OutputDocumentName, s.docName, "SSM document to rerun from the console")
	out(contract.OutputDocumentDigest, jsii.String(s.digest), "SHA-256 of the document content the stack deployed (storecrypt report trusts only runs of it)")
	out(contract.OutputInstanceRoleARNs, awscdk.Fn_Join(jsii.String(","), &s.roleARNs), "roles whose instances are in scope")
	out("LaunchQueueUrl", s.queue.QueueUrl(), "queue of launch events")
	out(contract.OutputLedgerTable, s.ledger.TableName(), "DynamoDB table of the ledger: one item per instance launch")
	out(contract.OutputAgentLogGroup, s.agentLogs.LogGroupName(), "log group of the agents' command output (launch runs and storecrypt rerun)")
	for _, a := range s.agents {
		arch := strings.ToUpper(a.arch[:1]) + a.arch[1:]
		out("Agent"+arch+"S3Url", jsii.String(a.s3URL), "storecrypt-agent for linux/"+a.arch+", gzipped, for user data and image builds (boot-time mode); the instance roles may read it")
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
	if s.bucket != nil {
		out("SecretBucketName", s.bucket.BucketName(), "bucket of the seed passphrase (s3-kms)")
		out(contract.OutputSecret, jsii.String("s3://"+*s.bucket.BucketName()+"/"+s.props.SecretKey), "the seed passphrase's object (s3-kms)")
	}
	if s.profile != nil {
		out("InstanceRoleArn", s.roleARNs[0], "role for workloads")
		out("InstanceProfileName", s.profile.InstanceProfileName(), "instance profile for workloads (CloudFormation names it)")
		out("InstanceProfileArn", s.profile.InstanceProfileArn(), "instance profile for workloads")
	}
}
