package storecrypt

import (
	"strings"
	"time"

	"github.com/aws/aws-cdk-go/awscdk/v2"
	"github.com/aws/aws-cdk-go/awscdk/v2/awsdynamodb"
	"github.com/aws/aws-cdk-go/awscdk/v2/awsevents"
	"github.com/aws/aws-cdk-go/awscdk/v2/awseventstargets"
	"github.com/aws/aws-cdk-go/awscdk/v2/awsiam"
	"github.com/aws/aws-cdk-go/awscdk/v2/awskms"
	"github.com/aws/aws-cdk-go/awscdk/v2/awslambda"
	"github.com/aws/aws-cdk-go/awscdk/v2/awslambdaeventsources"
	"github.com/aws/aws-cdk-go/awscdk/v2/awslogs"
	"github.com/aws/aws-cdk-go/awscdk/v2/awssqs"
	"github.com/aws/jsii-runtime-go"
	"github.com/cdklabs/cdk-nag-go/cdknag/v2"

	"github.com/storecrypt/storecrypt/internal/contract"
)

// staleAfter: a command pending this long has lost its result (the document's run step
// times out after 30 minutes).
const staleAfter = time.Hour

// functionInputs are what the functions act on: the stack's other parts.
type functionInputs struct {
	key    awskms.IKey
	roles  fleetRoles
	access instanceGrants
	doc    deployedDocument
	ledger awsdynamodb.Table
	code   code
	secret string // the seed secret's s3:// location; "" for kms-datakey
	// queue takes the launch events; dlq those given up on.
	queue, dlq awssqs.Queue
	// revocation are the revoke, resume and shred documents, whose results the result
	// function records.
	revocation []revocationDocument
}

// functionSet is the launch and result functions and the queues they take events from.
type functionSet struct {
	launch, result        awslambda.Function
	queue, dlq, resultDLQ awssqs.Queue
}

// functions builds both functions and the rules that feed them.
func (s *builder) functions(in functionInputs) functionSet {
	f := functionSet{queue: in.queue, dlq: in.dlq}
	f.launch = s.launchFunction(in)
	f.result, f.resultDLQ = s.resultFunction(in)
	s.rules(in, f)
	return f
}

// queues: the launch queue waits for late SSM agents. Its visibility timeout is 6x the
// function's timeout (AWS's advice for SQS event sources); a message the function hands
// back returns after 15 s, doubling to 5 minutes, and 15 receives keep it about 50
// minutes before the DLQ.
func (s *builder) queues() (queue, dlq awssqs.Queue) {
	dlq = awssqs.NewQueue(s.c, jsii.String("LaunchDLQ"), &awssqs.QueueProps{
		Encryption: awssqs.QueueEncryption_SQS_MANAGED, EnforceSSL: jsii.Bool(true), RetentionPeriod: awscdk.Duration_Days(jsii.Number(14)),
	})
	queue = awssqs.NewQueue(s.c, jsii.String("LaunchQueue"), &awssqs.QueueProps{
		Encryption: awssqs.QueueEncryption_SQS_MANAGED, EnforceSSL: jsii.Bool(true),
		VisibilityTimeout: awscdk.Duration_Seconds(jsii.Number(contract.LaunchVisibility.Seconds())),
		// An SSM agent needs 30 s or more after `running`; waiting that long first saves a retry.
		DeliveryDelay:   awscdk.Duration_Seconds(jsii.Number(30)),
		DeadLetterQueue: &awssqs.DeadLetterQueue{Queue: dlq, MaxReceiveCount: jsii.Number(contract.LaunchMaxReceives)},
	})
	return queue, dlq
}

// function builds a Lambda with its own role and log group; the role gets only what its
// caller adds.
func (s *builder) function(in functionInputs, id, dir string, timeout float64, env map[string]*string, props *awslambda.FunctionProps) awslambda.Function {
	logs := awslogs.NewLogGroup(s.c, jsii.String(id+"Logs"), &awslogs.LogGroupProps{Retention: s.props.LogRetention, RemovalPolicy: awscdk.RemovalPolicy_DESTROY})
	// The path names the functions' roles as the only writers of storecrypt:* tags in
	// the example SCP (docs/examples), in every account the stack is deployed to.
	role := awsiam.NewRole(s.c, jsii.String(id+"Role"), &awsiam.RoleProps{AssumedBy: awsiam.NewServicePrincipal(jsii.String("lambda.amazonaws.com"), nil),
		Path: jsii.String(contract.FunctionRolePath)})
	role.AddToPrincipalPolicy(statement("Logs", []string{"logs:CreateLogStream", "logs:PutLogEvents"}, []*string{logs.LogGroupArn()}, nil))
	if s.props.SecurityHub {
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
		contract.EnvKMSKeyARN:       in.key.KeyArn(),
		contract.EnvKeySource:       jsii.String(s.props.KeySource),
		contract.EnvDocumentName:    in.doc.name,
		contract.EnvDocumentDigest:  jsii.String(in.doc.digest),
		contract.EnvEventBus:        jsii.String("default"),
		contract.EnvLedgerTable:     in.ledger.TableName(),
		contract.EnvMetricNamespace: jsii.String(s.props.MetricNamespace),
		contract.EnvGOGC:            jsii.String(contract.FunctionGOGC),
	}
	if in.secret != "" {
		common[contract.EnvSecret] = jsii.String(in.secret)
	}
	for k, v := range common {
		env[k] = v
	}
	props.Runtime, props.Architecture, props.Handler = awslambda.Runtime_PROVIDED_AL2023(), awslambda.Architecture_ARM_64(), jsii.String("bootstrap")
	props.Code = s.functionCode(in.code, dir)
	props.Timeout, props.MemorySize = awscdk.Duration_Seconds(jsii.Number(timeout)), jsii.Number(contract.FunctionMemoryMB)
	props.Role, props.LogGroup, props.Environment = role, logs, &env
	props.Description = jsii.String("storecrypt " + dir + " function")
	fn := awslambda.NewFunction(s.c, jsii.String(id), props)
	component(fn, dir)
	// The document first, then the functions that trust only its digest: an update
	// never leaves a function trusting content that does not exist yet (the launch
	// function would send nothing). Until the functions follow, the old launch function
	// sends the version it trusts and counts the new default as drift, which the drift
	// alarm tolerates for that long.
	fn.Node().AddDependency(in.doc.resource)
	return fn
}

func (s *builder) launchFunction(in functionInputs) awslambda.Function {
	var arns []string
	for _, a := range in.roles.arns {
		arns = append(arns, *a)
	}
	roles := jsii.String(strings.Join(arns, ","))
	env := map[string]*string{
		contract.EnvQueueURL:      in.queue.QueueUrl(),
		contract.EnvAgentLogs:     in.doc.agentLogs.LogGroupName(),
		contract.EnvStaleAfter:    jsii.String(staleAfter.String()),
		contract.EnvInstanceRoles: roles,
	}
	chosen := s.documentDefaults(in.key, in.secret).DocumentValues()
	for _, sc := range contract.StackChoices {
		env[sc.Env] = jsii.String(chosen[sc.Parameter][0])
	}
	if s.props.OptInTag != "" {
		env[contract.EnvOptInTag] = jsii.String(s.props.OptInTag)
	}
	if s.props.AllowOptOut {
		env[contract.EnvAllowOptOut] = jsii.String("true")
	}
	in.access.launchEnv(env)
	fn := s.function(in, "Launch", "launch", contract.LaunchFunctionTimeout.Seconds(), env, &awslambda.FunctionProps{})
	role := fn.Role()
	if s.grants() {
		fn.AddEnvironment(jsii.String(contract.EnvLaunchRole), role.RoleArn(), nil)
	}
	// Which instances run, whether their type has an instance store, whether their SSM
	// agent is online.
	role.AddToPrincipalPolicy(statement("ReadTheFleet", []string{"ec2:DescribeInstances", "ec2:DescribeInstanceTypes", "ssm:DescribeInstanceInformation"},
		[]*string{jsii.String("*")}, nil))
	// SSM's record of the document's runs decides whether an instance is done, not its tags.
	role.AddToPrincipalPolicy(statement("ReadTheDocumentRuns", []string{"ssm:ListCommandInvocations", "ssm:GetCommandInvocation"}, []*string{jsii.String("*")}, nil))
	role.AddToPrincipalPolicy(statement("SendTheDocument", []string{"ssm:SendCommand"}, []*string{in.doc.arn, s.instanceARN()}, nil))
	readDocument(role, in.doc, "ssm:ListDocumentVersions")
	s.tagRights(role)
	role.AddToPrincipalPolicy(statement("ResolveRoles", []string{"iam:GetInstanceProfile"},
		[]*string{s.st.FormatArn(&awscdk.ArnComponents{Service: jsii.String("iam"), Region: jsii.String(""), Resource: jsii.String("instance-profile"), ResourceName: jsii.String("*")})}, nil))
	role.AddToPrincipalPolicy(statement("SimulateInstanceRoles", []string{"iam:SimulatePrincipalPolicy"},
		[]*string{s.st.FormatArn(&awscdk.ArnComponents{Service: jsii.String("iam"), Region: jsii.String(""), Resource: jsii.String("role"), ResourceName: jsii.String("*")})}, nil))
	role.AddToPrincipalPolicy(statement("InspectTheKey", []string{"kms:DescribeKey", "kms:GetKeyPolicy", "kms:ListGrants"}, []*string{in.key.KeyArn()}, nil))
	role.AddToPrincipalPolicy(statement("SweepQueue", []string{"sqs:SendMessage"}, []*string{in.queue.QueueArn()}, nil))
	s.putEventsRight(role)
	for _, st := range s.ledgerRights(in.ledger, in.key, "dynamodb:UpdateItem", "dynamodb:Query") {
		role.AddToPrincipalPolicy(st)
	}
	fn.AddEventSource(awslambdaeventsources.NewSqsEventSource(in.queue, &awslambdaeventsources.SqsEventSourceProps{
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
	return fn
}

// readDocument lets a function read the document's versions, to check their content.
func readDocument(role awsiam.IRole, doc deployedDocument, more ...string) {
	role.AddToPrincipalPolicy(statement("ReadTheDocument", append([]string{"ssm:GetDocument"}, more...), []*string{doc.arn}, nil))
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
func (s *builder) resultFunction(in functionInputs) (fn awslambda.Function, dlq awssqs.Queue) {
	dlq = awssqs.NewQueue(s.c, jsii.String("ResultDLQ"), &awssqs.QueueProps{
		Encryption: awssqs.QueueEncryption_SQS_MANAGED, EnforceSSL: jsii.Bool(true), RetentionPeriod: awscdk.Duration_Days(jsii.Number(14)),
	})
	env := map[string]*string{}
	for _, d := range in.revocation {
		env[d.EnvName], env[d.EnvDigest] = d.name, jsii.String(d.digest)
	}
	fn = s.function(in, "Result", "result", 30, env, &awslambda.FunctionProps{
		DeadLetterQueueEnabled: jsii.Bool(true), DeadLetterQueue: dlq, RetryAttempts: jsii.Number(2),
	})
	role := fn.Role()
	role.AddToPrincipalPolicy(statement("ReadOutcome", []string{"ssm:GetCommandInvocation", "ssm:ListCommandInvocations", "ec2:DescribeInstances"}, []*string{jsii.String("*")}, nil))
	readDocument(role, in.doc)
	// It trusts a revocation document's run only with the deployed content, as apply's.
	docs := []*string{}
	for _, d := range in.revocation {
		docs = append(docs, d.arn)
		fn.Node().AddDependency(d.resource)
	}
	if len(docs) > 0 {
		role.AddToPrincipalPolicy(statement("ReadTheRevocationDocuments", []string{"ssm:GetDocument"}, docs, nil))
	}
	s.tagRights(role)
	s.putEventsRight(role)
	for _, st := range s.ledgerRights(in.ledger, in.key, "dynamodb:UpdateItem") {
		role.AddToPrincipalPolicy(st)
	}
	cdknag.NagSuppressions_AddResourceSuppressions(role, &[]*cdknag.NagPackSuppression{{
		Id:        jsii.String("AwsSolutions-IAM5"),
		Reason:    jsii.String("ssm:GetCommandInvocation, ssm:ListCommandInvocations, ec2:DescribeInstances and securityhub:BatchImportFindings (held to this account) support no resource-level permissions; CreateTags must reach any instance and is limited to storecrypt:* tag keys."),
		AppliesTo: &[]any{"Resource::*", anyInstance},
	}}, jsii.Bool(true))
	return fn, dlq
}

// rules: EC2 running and terminated, and CloudTrail's RunInstances -> launch queue; the
// document's invocation status -> result function; a schedule -> the launch function's
// sweep.
// The RunInstances rule sees events only where a CloudTrail trail logs management events
// in this region ("To record events with one of the CloudTrail detail-type values, you
// must enable a CloudTrail trail with logging"): the trail option, or the account's own.
// Without one it stays silent and the running rule and the sweep do the work.
func (s *builder) rules(in functionInputs, f functionSet) {
	stateRule := func(id, state, why string) {
		awsevents.NewRule(s.c, jsii.String(id), &awsevents.RuleProps{
			Description: jsii.String("storecrypt: " + why),
			EventPattern: &awsevents.EventPattern{
				Source: jsii.Strings("aws.ec2"), DetailType: jsii.Strings(contract.DetailStateChange),
				Detail: &map[string]any{"state": []string{state}, "instance-id": []any{map[string]any{"prefix": "i-"}}},
			},
			Targets: &[]awsevents.IRuleTarget{awseventstargets.NewSqsQueue(f.queue, nil)},
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
		Targets: &[]awsevents.IRuleTarget{awseventstargets.NewSqsQueue(f.queue, nil)},
	})
	names := []*string{in.doc.name}
	for _, d := range in.revocation {
		names = append(names, d.name)
	}
	awsevents.NewRule(s.c, jsii.String("InvocationStatus"), &awsevents.RuleProps{
		Description: jsii.String("storecrypt: a document (apply, revoke, resume, shred) finished on an instance"),
		EventPattern: &awsevents.EventPattern{
			Source: jsii.Strings("aws.ssm"), DetailType: jsii.Strings(contract.DetailInvocationStatus),
			// Only final statuses: the result function ignores the rest, so there is no need
			// to invoke it for them. The event reference spells one "Canceled", the API
			// "Cancelled".
			Detail: &map[string]any{"document-name": names, "status": contract.FinalInvocationStatuses},
		},
		// The target's DLQ takes events EventBridge could not deliver; the function's own
		// DLQ takes those it failed to process.
		Targets: &[]awsevents.IRuleTarget{awseventstargets.NewLambdaFunction(f.result, &awseventstargets.LambdaFunctionProps{
			RetryAttempts: jsii.Number(4), DeadLetterQueue: f.resultDLQ})},
	})
	awsevents.NewRule(s.c, jsii.String("Sweep"), &awsevents.RuleProps{
		Description: jsii.String("storecrypt: find running instances whose events were lost"),
		Schedule:    awsevents.Schedule_Rate(awscdk.Duration_Minutes(jsii.Number(15))),
		Targets:     &[]awsevents.IRuleTarget{awseventstargets.NewLambdaFunction(f.launch, nil)},
	})
}
