// Names the stack and the functions share: the functions' environment variables (the
// stack sets them, the functions read them), the event detail types the stack's rules
// match, the launch queue's tuning, the alert events, metrics, the ledger table's and
// roles' names, and the stack's outputs (the CLI reads them). Used by the stack,
// the control plane and the CLI; the agent reads none of them.

package contract

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"strings"
	"time"
)

// SecretReadActions are the S3 actions that read an s3-kms secret: the current object at
// format, the version a volume was made with at unlock (GetObject with a versionId is
// authorized as s3:GetObjectVersion).
var SecretReadActions = []string{"s3:GetObject", "s3:GetObjectVersion"}

// Environment variables of the functions, set by the stack.
const (
	EnvKMSKeyARN       = "STORECRYPT_KMS_KEY_ARN"
	EnvKeySource       = "STORECRYPT_KEY_SOURCE"
	EnvSecret          = "STORECRYPT_SECRET"
	EnvDocumentName    = "STORECRYPT_DOCUMENT_NAME"
	EnvInstanceRoles   = "STORECRYPT_INSTANCE_ROLES" // comma-separated role ARNs in scope
	EnvOptInTag        = "STORECRYPT_OPT_IN_TAG"     // key=value; unset: the roles alone are in scope
	EnvAllowOptOut     = "STORECRYPT_ALLOW_OPT_OUT"  // "true": storecrypt:encrypt=false is honoured
	EnvMountPoint      = "STORECRYPT_MOUNT_POINT"
	EnvFilesystem      = "STORECRYPT_FILESYSTEM"
	EnvLayout          = "STORECRYPT_LAYOUT"
	EnvFastFormat      = "STORECRYPT_FAST_FORMAT"
	EnvQueueURL        = "STORECRYPT_QUEUE_URL"        // the launch queue, for sweep mode
	EnvEventBus        = "STORECRYPT_EVENT_BUS"        // where alert events go
	EnvStaleAfter      = "STORECRYPT_STALE_AFTER"      // sweep: a pending status older than this is stale
	EnvAgentLogs       = "STORECRYPT_AGENT_LOGS"       // CloudWatch log group for the commands' output
	EnvLedgerTable     = "STORECRYPT_LEDGER_TABLE"     // the DynamoDB table of the ledger
	EnvSecurityHub     = "STORECRYPT_SECURITY_HUB"     // "true": file Security Hub findings
	EnvComplianceItems = "STORECRYPT_COMPLIANCE_ITEMS" // "true": write Systems Manager compliance
	EnvMetricNamespace = "STORECRYPT_METRIC_NAMESPACE" // the deployment's CloudWatch namespace
	// EnvDocumentDigest is the digest (document.Digest) of the document content the stack
	// deployed: the launch function sends only a version with this content, and the
	// result function trusts only results of such a version.
	EnvDocumentDigest = "STORECRYPT_DOCUMENT_DIGEST"
	// EnvInstanceAccessPolicy is the ARN of the instance access policy
	// (InstanceAccessPolicyName), set only when the stack has an instance role path;
	// EnvAgentObjects the agents' s3:// URLs, comma-separated, beside it. With them the
	// binding check also judges whether a role may download the agent and write the
	// command's output (InstanceAccess).
	EnvInstanceAccessPolicy = "STORECRYPT_INSTANCE_ACCESS_POLICY"
	EnvAgentObjects         = "STORECRYPT_AGENT_OBJECTS"
	// EnvLaunchRole is the launch function's own role, the retiring principal of the
	// grants it makes (kms-datakey): the key policy lets it grant only with itself as one.
	EnvLaunchRole = "STORECRYPT_LAUNCH_ROLE"
)

// The Go runtime's own variable GOGC, which the stack sets on every function. At 400 the
// first collection comes at 16 MB of heap, past what all packages' init allocate (5.06
// MB in the launch function, the larger), so a cold start runs no collection, which
// took 5-6 ms of its median under RIE (2026-12-07). lambdaenv.Init then bounds the heap
// by the function's memory, so the larger target cannot run it out.
const (
	EnvGOGC      = "GOGC"
	FunctionGOGC = "400"
)

// FunctionMemoryMB is each function's memory, which Lambda reports to it as
// AWS_LAMBDA_FUNCTION_MEMORY_SIZE.
const FunctionMemoryMB = 256

// StackChoice is a document parameter whose default the stack sets from its props, and
// the launch function's variable that carries the same value.
type StackChoice struct{ Parameter, Env string }

// StackChoices are all of them. The launch function sends every parameter (SendCommand),
// so a stack choice it did not carry would be replaced by the agent's own default on
// every launch: the stack sets each variable from the same options as the document's
// defaults, and the launch function reads each one.
var StackChoices = []StackChoice{
	{"MountPoint", EnvMountPoint}, {"Filesystem", EnvFilesystem}, {"Layout", EnvLayout}, {"FastFormat", EnvFastFormat},
}

// SetStackChoices sets o from the launch function's variables of StackChoices, as getenv
// reads them, each parsed as the agent parses the flag its parameter becomes; an unset
// one leaves its option alone.
func (o *AgentOptions) SetStackChoices(getenv func(string) string) error {
	flags := map[string]string{}
	for _, p := range DocumentParameters {
		flags[p.Name] = p.Flag
	}
	fs := flag.NewFlagSet("stack", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	o.RegisterFlags(fs)
	var errs []error
	for _, sc := range StackChoices {
		if v := getenv(sc.Env); v != "" {
			if err := fs.Set(flags[sc.Parameter], v); err != nil {
				errs = append(errs, fmt.Errorf("%s=%q: %w", sc.Env, v, err))
			}
		}
	}
	return errors.Join(errs...)
}

// Detail types of the AWS events the functions take: EC2's state change and CloudTrail's
// API call (the launch queue), SSM's invocation status (the result function).
const (
	DetailStateChange      = "EC2 Instance State-change Notification"
	DetailCloudTrail       = "AWS API Call via CloudTrail"
	DetailInvocationStatus = "EC2 Command Invocation Status-change Notification"
)

// The launch queue and the event source mapping that feeds it to the launch function. The
// stack builds them from these; the control-plane benchmark models the same numbers.
const (
	// LaunchBatchSize records per invocation: the calls the function makes take 50
	// instances (SendCommand's limit) or more each, so a batch must hold many more than
	// Lambda's default of 10 for each call to be full. Above 10, Lambda requires a
	// batching window.
	LaunchBatchSize   = 500
	LaunchBatchWindow = 5 * time.Second
	// LaunchFunctionTimeout and LaunchVisibility: Lambda advises a visibility timeout of
	// at least six times the function's timeout.
	LaunchFunctionTimeout = time.Minute
	LaunchVisibility      = 6 * time.Minute
	// LaunchMaxReceives is the redrive policy's maxReceiveCount. A message handed back
	// waits LaunchRetryDelay (not the visibility timeout), so 15 receives cover about 50
	// minutes of a late SSM agent before the DLQ.
	LaunchMaxReceives = 15
)

// LaunchRetryDelay is how long a launch message handed back on its n-th receive stays
// invisible: 15 s, doubling, at most 5 minutes. Most SSM agents come Online within a
// minute of running, so the first retries are the ones that count.
func LaunchRetryDelay(n int) time.Duration {
	d := 15 * time.Second
	for ; n > 1 && d < 5*time.Minute; n-- {
		d *= 2
	}
	return min(d, 5*time.Minute)
}

// FinalInvocationStatuses are the statuses of DetailInvocationStatus events that end an
// invocation: SSM's event reference lists Success, TimedOut, Canceled and Failed as the
// changes a rule can match (and spells Canceled so; the API says Cancelled).
var FinalInvocationStatuses = []string{"Success", "Failed", "TimedOut", "Cancelled", "Canceled"}

// OptionalEnv are the variables the stack may leave unset, with what their absence means;
// every other variable the functions read, the stack sets (a conformance test feeds the
// template's environment to each function's LoadConfig and checks).
var OptionalEnv = map[string]string{
	EnvSecret:               "no seed secret: the key source is " + KeySourceKMSDataKey,
	EnvOptInTag:             "no opt-in tag: the instance roles alone say what is in scope",
	EnvAllowOptOut:          "no opt-outs: storecrypt:encrypt=false is ignored",
	EnvLedgerTable:          "no ledger: only tags, metrics and events record what happened (the stack always sets it)",
	EnvSecurityHub:          "no Security Hub findings",
	EnvComplianceItems:      "no Systems Manager compliance items",
	EnvInstanceAccessPolicy: "no instance role path: the instance roles are the stack's, which it grants the agent's download and output itself",
	EnvAgentObjects:         "no instance role path (it goes with " + EnvInstanceAccessPolicy + ")",
	EnvMetricNamespace:      "metrics in the namespace " + MetricNamespace,
	EnvLaunchRole:           "no grants: the key source is not " + KeySourceKMSDataKey + ", whose volumes alone are reopened through a grant",
}

// EventSource and the detail types of the events storecrypt emits for alerting.
const (
	EventSource          = "storecrypt"
	EventInstanceBlocked = "storecrypt Instance Blocked"
	EventInstanceFailed  = "storecrypt Instance Failed"
	// EventInstanceOptedOut: an instance in scope was left unencrypted by its opt-out tag.
	EventInstanceOptedOut = "storecrypt Instance Opted Out"
	EventDocumentDrift    = "storecrypt Document Drift"
)

// MetricNamespace holds the functions' CloudWatch metrics (Embedded Metric Format) unless
// the stack names its own (EnvMetricNamespace): two deployments in one account must not
// count each other's instances.
const MetricNamespace = "storecrypt"

// Metric names. Failed counts failed and unverified instances alike: both are not
// encrypted. DocumentDrift counts batches that found the document's default version is
// not the content the stack deployed.
const (
	MetricEncrypted          = "Encrypted"
	MetricFailed             = "Failed"
	MetricBlocked            = "Blocked"
	MetricSecondsToEncrypted = "SecondsToEncrypted"
	MetricDocumentDrift      = "DocumentDrift"
	MetricOptedOut           = "OptedOut"
	MetricCommandsSent       = "CommandsSent" // instances sent the document (first runs and reruns)
	// MetricFindingsNotImported counts findings Security Hub refused or a failed call lost:
	// the verdict is in the ledger and the tags, but not where security teams look.
	MetricFindingsNotImported = "FindingsNotImported"
)

// MetricReason is the dimension that says why an instance was blocked or failed. Those
// metrics are also published without it, for alarms over every reason.
const MetricReason = "Reason"

// LedgerTableSuffix ends the ledger table's name, after the stack's: the example SCP
// reserves tables so named to storecrypt's functions.
const LedgerTableSuffix = "-storecrypt-ledger"

// FunctionRolePath is the IAM path of the launch and result functions' roles: the
// example SCP reserves storecrypt:* tag keys to roles under it.
const FunctionRolePath = "/storecrypt/functions/"

// TagComponent marks the resources whose change would change what storecrypt runs or
// records (the key, the two functions, the document) with the part each is: the example
// SCP finds them by this tag, since their names and ARNs differ in every deployment, and
// reserves their changes to the deployers.
const TagComponent = "storecrypt:component"

// StackName is the stack's name unless the deployer chooses another.
const StackName = "StoreCrypt"

// StackExport marks a storecrypt stack among its region's CloudFormation exports, so that
// the CLI finds the stack whatever it is called (a StackSet names each stack instance
// StackSet-<name>-<id>): the DocumentDigest output is exported as
// <stack name>:storecrypt, or <stack name>:storecrypt:<construct id> for a construct with
// an id of its own. Export names are unique in an account and region, and ListExports
// reads them all in one paginated call, where finding a stack by a tag would mean
// reading every stack.
const StackExport = "storecrypt"

// Outputs of the stack that the operator CLI reads for the stack's configuration: what is
// in scope, and what proves an instance encrypted.
const (
	OutputKeyARN           = "KeyArn"
	OutputKeySource        = "KeySource"
	OutputDocumentName     = "DocumentName"
	OutputDocumentDigest   = "DocumentDigest"
	OutputInstanceRoleARNs = "InstanceRoleArns" // comma-separated
	OutputOptInTag         = "OptInTag"         // key=value; absent when the stack has none
	OutputSecret           = "Secret"           // s3://bucket/key; s3-kms only
	OutputLedgerTable      = "LedgerTable"
	OutputAgentLogGroup    = "AgentLogGroupName" // where runs' output goes (CloudWatchOutputConfig)
	// OutputInstanceAccessPolicyARN is the instance access policy's ARN; absent when the
	// stack has no instance role path.
	OutputInstanceAccessPolicyARN = "InstanceAccessPolicyArn"
)

// OutputAgentS3URL is the output holding the s3:// URL of the agent for arch (amd64, arm64).
func OutputAgentS3URL(arch string) string {
	return "Agent" + strings.ToUpper(arch[:1]) + arch[1:] + "S3Url"
}

// SidOnlyTheInstanceRoles is the key policy's deny of storecrypt contexts to every
// principal but the instance roles: the binding check reads the roles and the role path
// it names to tell a blocked role what would make it a key user.
const SidOnlyTheInstanceRoles = "StoreCryptOnlyTheInstanceRoles"

// SidLaunchGrants is the statement that lets the launch function's role grant an instance
// role Decrypt under its instance's context (kms-datakey): the binding check reads the
// grantees it allows to judge a role's Decrypt as the grant the launch function will make.
const SidLaunchGrants = "StoreCryptLaunchGrants"

// PatternSNSTopicARN is an SNS topic's ARN (a standard topic's name: letters, digits,
// hyphens and underscores, up to 256), in any partition: the published template's
// AlarmTopicArn and the construct's AlarmTopicARN take it.
const PatternSNSTopicARN = `^arn:aws[a-z-]*:sns:[a-z0-9-]+:[0-9]{12}:[A-Za-z0-9_-]{1,256}$`

// SNSTopicARNPattern is PatternSNSTopicARN compiled (on first use: see compiled).
var SNSTopicARNPattern = compiled(PatternSNSTopicARN)
