// The names the revocation parts agree on: the three SSM documents that run the agent's
// revoke, resume and shred, their parameters, the stack outputs that name them, the
// ledger attributes that record who revoked, resumed or shredded an instance and why, the
// statuses and events that report it, and the key tag that cuts the whole fleet off at
// once. The CLI (storecrypt revoke, resume) writes and sends them, the stack deploys
// them, the result function records what the instance answered.

package contract

// The revocation documents' default names; the stack may prefix them as it does
// DocumentName. Three documents, not one with an action parameter, so that IAM can let a
// responder revoke and resume without letting them shred (ssm:SendCommand on a document
// ARN is the only place IAM can draw that line).
const (
	DocumentRevoke = "storecrypt-revoke"
	DocumentResume = "storecrypt-resume"
	DocumentShred  = "storecrypt-shred"
)

// Parameters of the revocation documents. Every one takes RevokeReasonParameter (the
// agent's --reason) and RevokeByParameter (its --by: the caller's ARN); the shred document also takes ShredConfirmParameter, the target's
// instance id, which becomes the agent's --confirm: SendCommand sends shred to one
// instance per call, so the id typed by the responder reaches only that instance.
const (
	RevokeReasonParameter = "Reason"
	RevokeByParameter     = "By"
	ShredConfirmParameter = "InstanceId"
	// PatternRevokeReason keeps the reason to one printable line that no shell or
	// document interpolation can break out of; it starts with a character that is not a
	// space, as the agent refuses a blank reason.
	PatternRevokeReason = `^[A-Za-z0-9._:/,()#@+=-][A-Za-z0-9 ._:/,()#@+=-]{0,255}$`
	// PatternRevokeBy is an IAM or STS ARN's alphabet.
	PatternRevokeBy = `^[A-Za-z0-9:/_+=,.@-]{1,512}$`
)

// Stack outputs naming the deployed revocation documents.
const (
	OutputRevokeDocumentName = "RevokeDocumentName"
	OutputResumeDocumentName = "ResumeDocumentName"
	OutputShredDocumentName  = "ShredDocumentName"
)

// Ledger attributes beside LedgerRevokedAt and LedgerShreddedAt: who (the caller's ARN,
// from sts:GetCallerIdentity; CloudTrail's record of the KMS call is the proof) and why
// (the required --reason). Resume removes the revoked_* attributes and sets the resumed_*
// ones, so who let the instance back and why stays in the ledger even when the instance
// never answers the resume document. These, and the item's key, are all the CLI writes:
// the story (entries, status) is the functions', so no responder can write a status.
const (
	LedgerRevokedBy      = "revoked_by"
	LedgerRevokedReason  = "revoked_reason"
	LedgerShreddedBy     = "shredded_by"
	LedgerShreddedReason = "shredded_reason"
	LedgerResumedAt      = "resumed_at"
	LedgerResumedBy      = "resumed_by"
	LedgerResumedReason  = "resumed_reason"
)

// Statuses (TagStatus and ledger entries) of an instance cut off its data.
const (
	StatusRevoked  = "revoked"
	StatusResumed  = "resumed" // a ledger entry only: the tag returns to encrypted
	StatusShredded = "shredded"
)

// Detail types of the revocation events (source EventSource, default bus). Their detail
// holds instance-id, by, reason and at (and, from the result function, the command's
// outcome).
const (
	EventInstanceRevoked  = "storecrypt Instance Revoked"
	EventInstanceResumed  = "storecrypt Instance Resumed"
	EventInstanceShredded = "storecrypt Instance Shredded"
)

// KeyTagRevoked on the stack's KMS key (value: the time, RFC 3339) revokes every
// instance at once: one key policy deny refuses the instance roles every use of the key
// while the tag is there (aws:ResourceTag). O(1) calls however large the fleet; KMS
// takes up to five minutes to apply a tag change, as it does a revoked grant.
const KeyTagRevoked = "storecrypt:revoked"
