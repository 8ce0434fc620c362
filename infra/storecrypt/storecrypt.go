// Package storecrypt is storecrypt's CDK construct: the KMS key, the seed-compatible
// secret bucket, the agent binaries, the SSM document, the instance role, the launch queue
// and rules, both functions with least-privilege roles, alarms, an optional trail and the
// operator policy, added to any stack with NewStoreCrypt. Every name it shares with the agent and
// the functions comes from internal/contract.
//
// NewStoreCrypt wires the parts, each in its own file, each given what it needs from the others and
// returning what it built: key.go (the instance roles, the KMS key and its policy, the
// seed secret's bucket), code.go (the agents and the functions' code), document.go (the
// SSM document and its command output), functions.go (the queues, both functions and
// their roles, the rules), evidence.go (the ledger, the access logs, the trail, the
// operator policy), alarms.go (the alarms, their topic and the dashboard) and auditor.go
// (the role `storecrypt report --accounts` assumes).
package storecrypt

import (
	"errors"
	"fmt"
	"regexp"
	"slices"
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

	"github.com/storecrypt/storecrypt/internal/contract"
)

func (p *settings) defaults(c constructs.Construct) error {
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
	if p.AlarmTopic != nil && !unresolved(*p.AlarmTopic.TopicArn()) && !contract.SNSTopicARNPattern().MatchString(*p.AlarmTopic.TopicArn()) {
		return fmt.Errorf("alarmTopic %q: want an SNS topic's ARN, %s", *p.AlarmTopic.TopicArn(), contract.PatternSNSTopicARN)
	}
	if !slices.Contains(contract.Filesystems, p.Filesystem) {
		return fmt.Errorf("filesystem %q: want one of %s", p.Filesystem, strings.Join(contract.Filesystems, ", "))
	}
	if !slices.Contains(contract.Layouts, p.Layout) {
		return fmt.Errorf("layout %q: want one of %s", p.Layout, strings.Join(contract.Layouts, ", "))
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
	if err := p.checkRelease(); err != nil {
		return err
	}
	if !unresolved(p.LedgerTableName) && !strings.HasSuffix(p.LedgerTableName, contract.LedgerTableSuffix) {
		return fmt.Errorf("ledger table name %q: end it with %s (the example SCP protects storecrypt's ledgers by that suffix)", p.LedgerTableName, contract.LedgerTableSuffix)
	}
	if p.AuditorPrincipal != "" && !unresolved(p.AuditorPrincipal) && !auditorAccount.MatchString(p.AuditorPrincipal) && !auditorRoleARN.MatchString(p.AuditorPrincipal) {
		return fmt.Errorf("auditorPrincipal %q: want an account id (12 digits) or a role's ARN", p.AuditorPrincipal)
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
func (p *settings) checkInstanceRolePath() error {
	switch {
	case p.InstanceRolePath == "":
		return nil
	case p.KeySource != contract.KeySourceKMSDataKey:
		// The seed passphrase is one secret for every instance: a role under the path
		// would open every instance's volumes, not its own.
		return fmt.Errorf("instanceRolePath binds each role to its own instance's volumes, which keySource %s cannot: its one passphrase opens every instance's; use %s", p.KeySource, contract.KeySourceKMSDataKey)
	case p.Key != nil:
		return errors.New("instanceRolePath names key users in the policy of the key the stack creates, and an existing key's policy is yours: leave instanceRolePath empty and copy StoreCryptOwnVolumes and the deny statements of a template synthesized with it and without a key into your key's policy (docs/deploy.md: keyArn)")
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

// StoreCrypt is what NewStoreCrypt added: a construct (for awscdk.Tags_Of, dependencies
// or a scope of your own) whose parts are there for you to wire further: alarms to your
// own topics, the key to other grants, the roles to other policies. A part the props did
// not ask for is nil, and so is every part when the props are refused (the synth then
// fails with the reason).
type StoreCrypt interface {
	constructs.Construct
	// Key wraps the volume keys: the one created, or StoreCryptProps.Key.
	Key() awskms.IKey
	// Document is the SSM Command document; DocumentName, its name.
	Document() awsssm.CfnDocument
	DocumentName() *string
	// InstanceRoles are the roles whose instances are in scope, as the construct adds
	// its statements to them; InstanceProfile is nil unless it created the role.
	InstanceRoles() []awsiam.IRole
	InstanceProfile() awsiam.IInstanceProfile
	// LaunchFunction and ResultFunction carry their roles (Role()).
	LaunchFunction() awslambda.IFunction
	ResultFunction() awslambda.IFunction
	// LaunchQueue takes the launch events; the dead-letter queues, the ones given up on.
	LaunchQueue() awssqs.IQueue
	LaunchDeadLetterQueue() awssqs.IQueue
	ResultDeadLetterQueue() awssqs.IQueue
	// Alarms are every alarm the construct made. AlarmTopic, the topic of
	// StoreCryptProps.AlarmEmail, gets them (nil without it); OptOutAlarm counts opt-outs
	// (nil unless StoreCryptProps.AllowOptOut).
	// They are Alarms, not IAlarms, so that AddAlarmAction takes actions of your own.
	Alarms() []awscloudwatch.Alarm
	AlarmTopic() awssns.ITopic
	OptOutAlarm() awscloudwatch.Alarm
	// Ledger is the evidence table; AgentLogs, the group of the agents' command output.
	Ledger() awsdynamodb.ITable
	AgentLogs() awslogs.ILogGroup
	// OperatorPolicy is what `storecrypt` and the console need; attach it to operators.
	OperatorPolicy() awsiam.IManagedPolicy
	// ShredPolicy is the right to shred an instance's data, which the operator policy
	// leaves out: attach it beside the operator policy to the responders who may.
	ShredPolicy() awsiam.IManagedPolicy
	// AuditorRole is what `storecrypt report --accounts` assumes; nil without
	// StoreCryptProps.AuditorPrincipal.
	AuditorRole() awsiam.IRole
}

// storeCrypt is the construct itself, registered with jsii (NewConstruct_Override) so
// that it can be a scope and be passed to CDK's functions like any construct.
type storeCrypt struct {
	constructs.Construct
	key                               awskms.IKey
	document                          awsssm.CfnDocument
	documentName                      *string
	instanceRoles                     []awsiam.IRole
	instanceProfile                   awsiam.IInstanceProfile
	launchFunction, resultFunction    awslambda.IFunction
	launchQueue, launchDLQ, resultDLQ awssqs.IQueue
	alarms                            []awscloudwatch.Alarm
	alarmTopic                        awssns.ITopic
	optOutAlarm                       awscloudwatch.Alarm
	ledger                            awsdynamodb.ITable
	agentLogs                         awslogs.ILogGroup
	operatorPolicy                    awsiam.IManagedPolicy
	shredPolicy                       awsiam.IManagedPolicy
	auditorRole                       awsiam.IRole
}

func (sc *storeCrypt) Key() awskms.IKey                         { return sc.key }
func (sc *storeCrypt) Document() awsssm.CfnDocument             { return sc.document }
func (sc *storeCrypt) DocumentName() *string                    { return sc.documentName }
func (sc *storeCrypt) InstanceRoles() []awsiam.IRole            { return sc.instanceRoles }
func (sc *storeCrypt) InstanceProfile() awsiam.IInstanceProfile { return sc.instanceProfile }
func (sc *storeCrypt) LaunchFunction() awslambda.IFunction      { return sc.launchFunction }
func (sc *storeCrypt) ResultFunction() awslambda.IFunction      { return sc.resultFunction }
func (sc *storeCrypt) LaunchQueue() awssqs.IQueue               { return sc.launchQueue }
func (sc *storeCrypt) LaunchDeadLetterQueue() awssqs.IQueue     { return sc.launchDLQ }
func (sc *storeCrypt) ResultDeadLetterQueue() awssqs.IQueue     { return sc.resultDLQ }
func (sc *storeCrypt) Alarms() []awscloudwatch.Alarm            { return sc.alarms }
func (sc *storeCrypt) AlarmTopic() awssns.ITopic                { return sc.alarmTopic }
func (sc *storeCrypt) OptOutAlarm() awscloudwatch.Alarm         { return sc.optOutAlarm }
func (sc *storeCrypt) Ledger() awsdynamodb.ITable               { return sc.ledger }
func (sc *storeCrypt) AgentLogs() awslogs.ILogGroup             { return sc.agentLogs }
func (sc *storeCrypt) OperatorPolicy() awsiam.IManagedPolicy    { return sc.operatorPolicy }
func (sc *storeCrypt) ShredPolicy() awsiam.IManagedPolicy       { return sc.shredPolicy }
func (sc *storeCrypt) AuditorRole() awsiam.IRole                { return sc.auditorRole }

// builder is what every part is built with: the construct they go under, its stack
// (ARNs, region, partition) and the settings. Each part takes the others it needs as
// arguments and returns what it built.
type builder struct {
	c     constructs.Construct
	st    awscdk.Stack
	props *settings
}

// refused is props NewStoreCrypt will not build, reported as CDK reports invalid
// constructs: app.Synth() fails with the reason, under the construct's path.
type refused struct{ err error }

func (r *refused) Validate() *[]*string { return &[]*string{jsii.String(r.err.Error())} }

// NewStoreCrypt adds storecrypt to scope's stack under a construct named id. Props it
// refuses (a reserved name, a key source it does not deploy, a build that is not there)
// fail the synth with the reason, as CDK's own constructs do; nothing is built then.
//
// An id of "Default" gives the resources the logical IDs they would have as the stack's
// own (CDK leaves "Default" out of them) and the outputs keys without a prefix: the app
// in infra/ and package publish use it for a stack that holds storecrypt alone.
//
// A stack deployed with New (the API this replaced) updates in place: logical IDs come
// from the construct's path, which is the same, and roles given as objects are imported
// by their ARNs under the construct, as New imported the ARNs it took, so their policies
// keep theirs. Checked with diff on the templates synthesized before and after: the
// app's (defaults; an existing key, roles and central topic with every switch on;
// s3-kms; network-bound with a role path), the published one and the example's were the
// same, but for the published template's record of the publisher's choices.
func NewStoreCrypt(scope constructs.Construct, id *string, props *StoreCryptProps) StoreCrypt {
	sc := &storeCrypt{}
	constructs.NewConstruct_Override(sc, scope, id)
	if err := sc.build(props.settings()); err != nil {
		sc.Node().AddValidation(&refused{err})
	}
	return sc
}

func (sc *storeCrypt) build(p settings) error {
	if err := p.defaults(sc); err != nil {
		return err
	}
	files, err := codeFor(sc, p)
	if err != nil {
		return err
	}
	s := &builder{c: sc, st: awscdk.Stack_Of(sc), props: &p}
	for k, v := range p.Tags {
		awscdk.Tags_Of(sc).Add(jsii.String(k), jsii.String(v), nil)
	}
	logs := s.accessLogs()
	roles := s.instanceRoles()
	path := s.rolePath(roles.arns)
	key := s.kmsKey(roles, path)
	var secret awss3.Bucket
	if p.KeySource == contract.KeySourceS3KMS {
		secret = s.secretBucket(key, roles, logs)
	}
	code, err := s.stageCode(files)
	if err != nil {
		return err
	}
	secretURL := s.secretURL(secret)
	doc, err := s.ssmDocument(code.agents, key, secretURL)
	if err != nil {
		return err
	}
	revocation, err := s.revocationDocuments(code.agents, key, secretURL)
	if err != nil {
		return err
	}
	access := s.instanceAccess(code, doc, roles, path)
	queue, dlq := s.queues()
	table := s.ledgerTable(key)
	fns := s.functions(functionInputs{key: key, roles: roles, access: access, doc: doc, ledger: table, code: code, secret: secretURL, queue: queue, dlq: dlq, revocation: revocation})
	s.launchGrants(key, roles, path, fns.launch.Role())
	s.fleetRevoke(key, roles, path, fns.launch.Role())
	alarms := s.alarmsAndTopic(fns)
	s.dashboard(fns)
	if p.Trail {
		s.trail(logs)
	}
	sc.key, sc.document, sc.documentName = key, doc.resource, jsii.String(p.DocumentName)
	sc.instanceRoles, sc.instanceProfile = roles.roles, roles.profile
	sc.launchFunction, sc.resultFunction = fns.launch, fns.result
	sc.launchQueue, sc.launchDLQ, sc.resultDLQ = fns.queue, fns.dlq, fns.resultDLQ
	sc.alarms, sc.alarmTopic, sc.optOutAlarm = alarms.all, alarms.topic, alarms.optOut
	sc.ledger, sc.agentLogs = table, doc.agentLogs
	sc.operatorPolicy = s.operatorPolicy(key, doc, table, secret)
	sc.shredPolicy = s.shredPolicy(table)
	if p.AuditorPrincipal != "" {
		sc.auditorRole = s.auditorRole(key, table)
	}
	s.outputs(sc, doc, revocation, roles, code.objects, secret, access)
	return nil
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
func (s *builder) outputs(sc *storeCrypt, doc deployedDocument, revocation []revocationDocument, roles fleetRoles, agents []agentOutput, secret awss3.Bucket, access instanceGrants) {
	prefix := nonAlnum.ReplaceAllString(*s.c.Node().Id(), "")
	if prefix == "Default" {
		prefix = ""
	}
	out := func(id string, v *string, desc string) awscdk.CfnOutput {
		o := awscdk.NewCfnOutput(s.c, jsii.String(id), &awscdk.CfnOutputProps{Value: v, Description: jsii.String(desc)})
		o.OverrideLogicalId(jsii.String(prefix + id))
		return o
	}
	out(contract.OutputKeyARN, sc.key.KeyArn(), "KMS key that wraps the volume keys")
	out(contract.OutputKeySource, jsii.String(s.props.KeySource), "where the volume keys come from")
	out(contract.OutputDocumentName, doc.name, "SSM document to rerun from the console")
	for _, d := range revocation {
		out(d.Output, d.name, "SSM document that runs the agent's "+d.Command+" on an instance (storecrypt "+d.Command+" sends it)")
		out(d.OutputDigest, jsii.String(d.digest), "SHA-256 of the "+d.Command+" document content the stack deployed (storecrypt "+d.Command+" sends only a version with it)")
	}
	digest := out(contract.OutputDocumentDigest, jsii.String(doc.digest), "SHA-256 of the document content the stack deployed (storecrypt report trusts only runs of it)")
	exportParts := []*string{awscdk.Aws_STACK_NAME(), jsii.String(contract.StackExport)}
	if prefix != "" {
		exportParts = append(exportParts, jsii.String(prefix))
	}
	digest.SetExportName(awscdk.Fn_Join(jsii.String(":"), &exportParts))
	out(contract.OutputInstanceRoleARNs, awscdk.Fn_Join(jsii.String(","), &roles.arns), "roles whose instances are in scope")
	out("LaunchQueueUrl", sc.launchQueue.QueueUrl(), "queue of launch events")
	out(contract.OutputLedgerTable, sc.ledger.TableName(), "DynamoDB table of the ledger: one item per instance launch")
	out(contract.OutputAgentLogGroup, sc.agentLogs.LogGroupName(), "log group of the agents' command output (launch runs and storecrypt rerun)")
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
