package contract

import (
	"strconv"
	"strings"
	"time"
)

// DocumentName is the default name of the SSM Command document; the stack may prefix it.
const DocumentName = "storecrypt-apply"

// DocumentRunStep is the name of the document's step that runs the agent. SSM reports a
// multi-step document's output per step, so readers ask for this one by name
// (GetCommandInvocation's PluginName).
const DocumentRunStep = "apply"

// DocumentParameter maps one SSM document parameter onto the agent flag it becomes.
type DocumentParameter struct {
	Name        string // as the document and SendCommand spell it
	Flag        string // the agent flag
	Pattern     string // allowedPattern; also the flag's validation
	Description string
	// Values, for an enumerated parameter, are its allowedValues: the console shows a
	// drop-down instead of a text box.
	Values []string
}

// DocumentParameters are every parameter of the document, in document order. A test
// proves each is an agent flag and that the agent's validation and the patterns agree.
var DocumentParameters = []DocumentParameter{
	{"KeySource", FlagKeySource, `^(` + strings.Join(KeySources, "|") + `)$`, "Where a new volume's key comes from. kms-datakey: a KMS data key per volume, kept wrapped in the volume's LUKS2 header; only this instance can unwrap it. " +
		"s3-kms: the seed recipe's passphrase, an S3 object encrypted under KMS; one passphrase opens every volume made with it. ephemeral: a random key never stored; the data is gone at every reboot.", KeySources},
	{"KmsKeyId", FlagKMSKeyID, PatternKMSKeyID, "KMS key ARN, id or alias for kms-datakey.", nil},
	{"Secret", FlagSecret, PatternSecret, "s3://bucket/key of the KMS-encrypted passphrase for s3-kms.", nil},
	{"MountPoint", FlagMountPoint, PatternMountPoint, "Where to mount the encrypted filesystem.", nil},
	{"Filesystem", FlagFilesystem, `^(` + strings.Join(Filesystems, "|") + `)$`, "Filesystem made on a new volume; a volume that exists keeps its own.", Filesystems},
	{"Layout", FlagLayout, `^(` + strings.Join(Layouts, "|") + `)$`, "How a new volume combines several disks: raid0 (striped, all the capacity), raid10 (mirrored, half; its first resync runs after the volume is mounted) or per-disk (a volume and filesystem per disk, at MountPoint/0, /1, ...).", Layouts},
	{"Devices", FlagDevices, PatternDevices, "Comma-separated devices instead of discovery (each must still be instance store).", nil},
	{"Discard", FlagDiscard, `^(true|false)$`, "Pass discards (TRIM) through dm-crypt: true lets the SSD reclaim freed blocks, and shows someone with the raw disks which blocks are free.", []string{"true", "false"}},
	{"Wipe", FlagWipe, `^(true|false)$`, "Zero-fill a new volume before it is used: true takes time in proportion to the disks' size (hours on the largest instance store); with false, the disks' earlier content is still unreadable through the new key.", []string{"true", "false"}},
	{"RequiredBy", FlagRequiredBy, PatternRequiredBy, "Comma-separated systemd units (e.g. postgresql.service) that must not start at boot until the volume is mounted.", nil},
	{"BindDirs", FlagBindDirs, PatternBindDirs, "Comma-separated directories (e.g. /var/lib/containerd,/var/lib/kubelet,/var/log/pods) moved onto the volume and bind-mounted back at every boot; their content is copied on first use.", nil},
}

// DocumentValues turns agent options into the document's parameter values.
func (o AgentOptions) DocumentValues() map[string][]string {
	return map[string][]string{
		"KeySource": {o.KeySource}, "KmsKeyId": {o.KMSKeyID}, "Secret": {o.Secret},
		"MountPoint": {o.MountPoint}, "Filesystem": {o.Filesystem}, "Layout": {o.Layout},
		"Devices": {strings.Join(o.Devices, ",")}, "Discard": {strconv.FormatBool(o.Discard)}, "Wipe": {strconv.FormatBool(o.Wipe)},
		"RequiredBy": {strings.Join(o.RequiredBy, ",")}, "BindDirs": {strings.Join(o.BindDirs, ",")},
	}
}

// SecretReadActions are the S3 actions that read an s3-kms secret: the current object at
// format, the version a volume was made with at unlock (GetObject with a versionId is
// authorized as s3:GetObjectVersion).
var SecretReadActions = []string{"s3:GetObject", "s3:GetObjectVersion"}

// More tag keys the functions write.
const (
	TagAt         = "storecrypt:at"          // RFC 3339 time of the last status change
	TagCommandID  = "storecrypt:command-id"  // the SSM command that last ran the agent
	TagLaunchTime = "storecrypt:launch-time" // the instance's LaunchTime the status is for
	TagAttempt    = "storecrypt:attempt"     // commands sent for this launch: 1, 2, ...
)

// OptIn is the usual opt-in tag, key=value, for stacks that configure one; a stack
// without one takes the instance roles alone as its scope.
const OptIn = TagEncrypt + "=true"

// Reason is the code in TagReason: why an instance is blocked, skipped or failed.
type Reason string

// Reasons a binding check blocks an instance. Each is permanent until someone fixes IAM
// or KMS; the launch function never retries it.
const (
	ReasonNoInstanceProfile Reason = "no-instance-profile"
	ReasonRoleMissing       Reason = "role-missing"
	ReasonKeyNotFound       Reason = "key-not-found"
	ReasonKeyDisabled       Reason = "key-disabled"
	ReasonNotKeyUser        Reason = "not-key-user"
	ReasonSecretUnreadable  Reason = "secret-unreadable"
	// ReasonNoSSMCore: the instance role may not make the SSM Agent's own calls
	// (AmazonSSMManagedInstanceCore's), so the SSM Agent runs the document as the account's
	// Default Host Management role instead, or not at all.
	ReasonNoSSMCore       Reason = "no-ssm-core"
	ReasonNoInstanceStore Reason = "no-instance-store"
	// ReasonOptedOut: the instance carries storecrypt:encrypt=false and the stack allows
	// opt-outs (only then is the tag honoured).
	ReasonOptedOut Reason = "opted-out"
)

// Reasons an invocation failed that are not one of the agent's exit codes.
const (
	ReasonTimedOut         Reason = "timed-out"
	ReasonCancelled        Reason = "cancelled"
	ReasonDeliveryTimedOut Reason = "delivery-timed-out"
	ReasonUndeliverable    Reason = "undeliverable"
	ReasonTerminated       Reason = "terminated"
)

// Reasons an invocation that SSM calls a success is not recorded as encrypted: the
// status is then StatusUnverified.
const (
	ReasonNoReport          Reason = "no-report"          // no agent report in the output
	ReasonNotReady          Reason = "not-ready"          // the report does not show the volume open, ready and mounted
	ReasonWrongKey          Reason = "wrong-key"          // the volume's key is not the stack's key or key source
	ReasonWrongInstance     Reason = "wrong-instance"     // the report is another instance's
	ReasonUntrustedDocument Reason = "untrusted-document" // the document version is not the content the stack deployed
)

// Terminal says whether a failure needs a person, because running the document again
// changes nothing: the agent refused a disk, was given bad input or found no instance
// store, or the volume exists under another key or belongs to another instance (an
// apply opens an existing volume as it is). Other failures (the key was unavailable, a
// tool failed, the run timed out, the output held no report, an untrusted document ran)
// may pass on a later try, and the sweep retries them with backoff.
func (r Reason) Terminal() bool {
	switch r {
	case Reason(ExitRefusedUnsafe.String()), Reason(ExitBadInput.String()), Reason(ExitNoDevices.String()), ReasonWrongKey, ReasonWrongInstance:
		return true
	}
	return false
}

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
	EnvQueueURL        = "STORECRYPT_QUEUE_URL"        // the launch queue, for sweep mode
	EnvEventBus        = "STORECRYPT_EVENT_BUS"        // where alert events go
	EnvStaleAfter      = "STORECRYPT_STALE_AFTER"      // sweep: a pending status older than this is stale
	EnvAgentLogs       = "STORECRYPT_AGENT_LOGS"       // CloudWatch log group for the commands' output
	EnvLedgerTable     = "STORECRYPT_LEDGER_TABLE"     // the DynamoDB table of the ledger
	EnvSecurityHub     = "STORECRYPT_SECURITY_HUB"     // "true": file Security Hub findings
	EnvComplianceItems = "STORECRYPT_COMPLIANCE_ITEMS" // "true": write Systems Manager compliance
	EnvMetricNamespace = "STORECRYPT_METRIC_NAMESPACE" // the deployment's CloudWatch namespace
	// EnvModel is read by the agent, not the functions: the NVMe model of instance store
	// where it is not EC2's (the test guest's QEMU controller). It is not a document
	// parameter: on EC2 the model is fixed, and a parameter could only point the agent at
	// other disks.
	EnvModel = "STORECRYPT_MODEL"
	// EnvDocumentDigest is the digest (document.Digest) of the document content the stack
	// deployed: the launch function sends only a version with this content, and the
	// result function trusts only results of such a version.
	EnvDocumentDigest = "STORECRYPT_DOCUMENT_DIGEST"
)

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
	// LaunchBatchSize records per invocation: the calls the function makes are per 50
	// instances (SendCommand's limit) or more, so a batch of 10 paid a call per API for a
	// fifth of what one call could take. Above 10, Lambda requires a batching window.
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
	EnvSecret:          "no seed secret: the key source is " + KeySourceKMSDataKey,
	EnvOptInTag:        "no opt-in tag: the instance roles alone say what is in scope",
	EnvAllowOptOut:     "no opt-outs: storecrypt:encrypt=false is ignored",
	EnvLedgerTable:     "no ledger: only tags, metrics and events record what happened (the stack always sets it)",
	EnvSecurityHub:     "no Security Hub findings",
	EnvComplianceItems: "no Systems Manager compliance items",
	EnvMetricNamespace: "metrics in the namespace " + MetricNamespace,
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
)
