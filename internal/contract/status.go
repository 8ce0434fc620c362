// What the functions record on an instance: the storecrypt:* tag keys, the status values
// and the reasons (why an instance is blocked, failed or unverified). Written by the
// control plane (launch and result functions, sweep), read by the CLI and the auditor's
// report; the stack's SCP examples reserve the tag keys. The agent neither reads nor
// writes them: an instance learns nothing from its own tags.

package contract

// Tag keys on instances. TagEncrypt is the operator's (opt in, or opt out); the
// functions write the others.
const (
	TagEncrypt    = "storecrypt:encrypt"
	TagStatus     = "storecrypt:status"
	TagReason     = "storecrypt:reason"
	TagAt         = "storecrypt:at"          // RFC 3339 time of the last status change
	TagCommandID  = "storecrypt:command-id"  // the SSM command that last ran the agent
	TagLaunchTime = "storecrypt:launch-time" // the instance's LaunchTime the status is for
	TagAttempt    = "storecrypt:attempt"     // commands sent for this launch: 1, 2, ...
)

// Status values of TagStatus.
const (
	StatusPending   = "pending"
	StatusBlocked   = "blocked"
	StatusEncrypted = "encrypted"
	StatusFailed    = "failed"
	StatusSkipped   = "skipped"
	// StatusUnverified: SSM says the command succeeded, but its output does not prove the
	// volume is encrypted under the stack's key by the stack's document.
	StatusUnverified = "unverified"
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
	ReasonNoSSMCore Reason = "no-ssm-core"
	// ReasonNoInstanceAccess: the instance role is a key user but may not download the
	// agent or write the command's output (InstanceAccess): the run could not end. The fix
	// is to attach the instance access policy.
	ReasonNoInstanceAccess Reason = "no-instance-access"
	ReasonNoInstanceStore  Reason = "no-instance-store"
	// ReasonOptedOut: the instance carries storecrypt:encrypt=false and the stack allows
	// opt-outs (only then is the tag honoured).
	ReasonOptedOut Reason = "opted-out"
	// ReasonRevoked and ReasonShredded: the ledger marks the instance revoked or shredded
	// (LedgerRevokedAt, LedgerShreddedAt); the launch function neither grants it the key
	// nor sends it the document.
	ReasonRevoked  Reason = "revoked"
	ReasonShredded Reason = "shredded"
)

// The ledger attributes that mark an instance revoked or shredded: `storecrypt revoke`
// sets one (a time, RFC 3339) on the instance's latest launch item, and resume removes
// revoked_at from every item of the instance. An instance is revoked while any of its
// items holds one, so a stop and start (a new item) does not end it.
const (
	LedgerRevokedAt  = "revoked_at"
	LedgerShreddedAt = "shredded_at"
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
// store or the volume's access was revoked, or the volume exists under another key or belongs to another instance (an
// apply opens an existing volume as it is). Other failures (the key was unavailable, a
// tool failed, the run timed out, the output held no report, an untrusted document ran)
// may pass on a later try, and the sweep retries them with backoff.
func (r Reason) Terminal() bool {
	switch r {
	case Reason(ExitRefusedUnsafe.String()), Reason(ExitBadInput.String()), Reason(ExitNoDevices.String()), Reason(ExitRevoked.String()), ReasonWrongKey, ReasonWrongInstance:
		return true
	}
	return false
}
