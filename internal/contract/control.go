package contract

import (
	"strconv"
	"strings"
)

// DocumentName is the default name of the SSM Command document; the stack may prefix it.
const DocumentName = "storecrypt-apply"

// DocumentParameter maps one SSM document parameter onto the agent flag it becomes.
type DocumentParameter struct {
	Name        string // as the document and SendCommand spell it
	Flag        string // the agent flag
	Pattern     string // allowedPattern; also the flag's validation
	Description string
}

// DocumentParameters are every parameter of the document, in document order. A test
// proves each is an agent flag and that the agent's validation and the patterns agree.
var DocumentParameters = []DocumentParameter{
	{"KeySource", FlagKeySource, `^(` + strings.Join(KeySources, "|") + `)$`, "Where the volume key comes from: " + strings.Join(KeySources, ", ") + "."},
	{"KmsKeyId", FlagKMSKeyID, PatternKMSKeyID, "KMS key ARN, id or alias for kms-datakey."},
	{"Secret", FlagSecret, PatternSecret, "s3://bucket/key of the KMS-encrypted passphrase for s3-kms."},
	{"MountPoint", FlagMountPoint, PatternMountPoint, "Where to mount the encrypted filesystem."},
	{"Filesystem", FlagFilesystem, `^(` + strings.Join(Filesystems, "|") + `)$`, "Filesystem to make on a new volume."},
	{"Model", FlagModel, PatternModel, "NVMe controller model of the instance-store disks."},
	{"Devices", FlagDevices, PatternDevices, "Comma-separated devices instead of discovery (each must still be instance store)."},
	{"Discard", FlagDiscard, `^(true|false)$`, "Pass discards (TRIM) through dm-crypt."},
	{"Wipe", FlagWipe, `^(true|false)$`, "Zero-fill a new volume (slow: O(device size))."},
}

// DocumentValues turns agent options into the document's parameter values.
func (o AgentOptions) DocumentValues() map[string][]string {
	return map[string][]string{
		"KeySource": {o.KeySource}, "KmsKeyId": {o.KMSKeyID}, "Secret": {o.Secret},
		"MountPoint": {o.MountPoint}, "Filesystem": {o.Filesystem}, "Model": {o.Model},
		"Devices": {strings.Join(o.Devices, ",")}, "Discard": {strconv.FormatBool(o.Discard)}, "Wipe": {strconv.FormatBool(o.Wipe)},
	}
}

// More tag keys the functions write.
const (
	TagAt         = "storecrypt:at"          // RFC 3339 time of the last status change
	TagCommandID  = "storecrypt:command-id"  // the SSM command that last ran the agent
	TagLaunchTime = "storecrypt:launch-time" // the instance's LaunchTime the status is for
)

// DefaultOptIn is the opt-in tag, key=value.
const DefaultOptIn = TagEncrypt + "=true"

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
	ReasonNoInstanceStore   Reason = "no-instance-store"
)

// Reasons an invocation failed that are not one of the agent's exit codes.
const (
	ReasonTimedOut         Reason = "timed-out"
	ReasonCancelled        Reason = "cancelled"
	ReasonDeliveryTimedOut Reason = "delivery-timed-out"
)

// Environment variables of the functions, set by the stack.
const (
	EnvKMSKeyARN     = "STORECRYPT_KMS_KEY_ARN"
	EnvKeySource     = "STORECRYPT_KEY_SOURCE"
	EnvSecret        = "STORECRYPT_SECRET"
	EnvDocumentName  = "STORECRYPT_DOCUMENT_NAME"
	EnvInstanceRoles = "STORECRYPT_INSTANCE_ROLES" // comma-separated role ARNs in scope
	EnvOptInTag      = "STORECRYPT_OPT_IN_TAG"     // key=value
	EnvMountPoint    = "STORECRYPT_MOUNT_POINT"
	EnvFilesystem    = "STORECRYPT_FILESYSTEM"
	EnvQueueURL      = "STORECRYPT_QUEUE_URL"   // the launch queue, for sweep mode
	EnvEventBus      = "STORECRYPT_EVENT_BUS"   // where alert events go
	EnvStaleAfter    = "STORECRYPT_STALE_AFTER" // sweep: a pending status older than this is stale
	EnvAgentLogs     = "STORECRYPT_AGENT_LOGS"  // CloudWatch log group for the commands' output
	EnvModel         = "STORECRYPT_MODEL"       // the instance-store NVMe model (tests and non-EC2 hosts)
)

// EventSource and the detail types of the events storecrypt emits for alerting.
const (
	EventSource          = "storecrypt"
	EventInstanceBlocked = "storecrypt Instance Blocked"
	EventInstanceFailed  = "storecrypt Instance Failed"
)

// MetricNamespace holds the functions' CloudWatch metrics (Embedded Metric Format).
const MetricNamespace = "storecrypt"

// Metric names.
const (
	MetricEncrypted          = "Encrypted"
	MetricFailed             = "Failed"
	MetricBlocked            = "Blocked"
	MetricSecondsToEncrypted = "SecondsToEncrypted"
)
