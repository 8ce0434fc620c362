package contract

// RevocationDocument ties each revocation document to what the stack, the result
// function and the agent call it: its default name, the stack outputs naming it and
// giving the digest of its content, the result function's environment (its deployed
// name and that digest), the agent command its run step runs, the mark that command
// leaves, and the status the result function records when the instance reports it done.
type RevocationDocument struct {
	Default string // DocumentRevoke, DocumentResume, DocumentShred
	Suffix  string // the stack names it <Name>-<Suffix>, as the apply document <Name>-apply
	Output  string
	// OutputDigest is the stack output of its content's digest (document.Digest): the CLI
	// sends only a version with that content, as rerun does the apply document's
	// (OutputDocumentDigest), never whatever the default has become.
	OutputDigest string
	EnvName      string
	EnvDigest    string
	Command      string // the agent's subcommand
	Mark         string // Revocation.State the command leaves; "" for resume, which clears it
	Status       string
}

// RevocationDocuments are the three, in the order a responder meets them.
var RevocationDocuments = []RevocationDocument{
	{DocumentRevoke, "revoke", OutputRevokeDocumentName, OutputRevokeDocumentDigest, "STORECRYPT_REVOKE_DOCUMENT_NAME", "STORECRYPT_REVOKE_DOCUMENT_DIGEST", "revoke", Revoked, StatusRevoked},
	{DocumentResume, "resume", OutputResumeDocumentName, OutputResumeDocumentDigest, "STORECRYPT_RESUME_DOCUMENT_NAME", "STORECRYPT_RESUME_DOCUMENT_DIGEST", "resume", "", StatusResumed},
	{DocumentShred, "shred", OutputShredDocumentName, OutputShredDocumentDigest, "STORECRYPT_SHRED_DOCUMENT_NAME", "STORECRYPT_SHRED_DOCUMENT_DIGEST", "shred", Shredded, StatusShredded},
}

// Stack outputs of the revocation documents' digests, beside the outputs naming them
// (OutputRevokeDocumentName...). Not "...DocumentDigest": the CLI finds a prefixed
// stack's output by the one key that ends with its name, and RevokeDocumentDigest would
// end with OutputDocumentDigest.
const (
	OutputRevokeDocumentDigest = "RevokeContentDigest"
	OutputResumeDocumentDigest = "ResumeContentDigest"
	OutputShredDocumentDigest  = "ShredContentDigest"
)

// PatternInstanceID is an EC2 instance id, the shred document's InstanceId.
const PatternInstanceID = `^i-([0-9a-f]{8}|[0-9a-f]{17})$`
