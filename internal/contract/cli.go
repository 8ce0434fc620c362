// The operator CLI's exit codes, kept apart from the agent's so a script can tell the
// two apart. Used by internal/opcli (which exits with them) and the tests that run
// the CLI; they sit beside the agent's codes because a single-instance rerun reports the
// agent's code through them.

package contract

// CLIExitCode is the status of the operator CLI, storecrypt. A script must be able to
// tell the CLI's own failures from the agent's, so the CLI's codes never take a number
// the agent uses for something else: 1 and 2 mean what the agent's 1 and 2 mean (an
// error; bad input), the CLI's own verdicts sit above the agent's codes, and a
// single-instance rerun reports the agent's code N as CLIExitAgentBase+N.
type CLIExitCode int

// Exit codes of storecrypt.
const (
	CLIExitOK    CLIExitCode = 0
	CLIExitError CLIExitCode = 1 // an AWS call or the input failed; nothing more is known
	CLIExitUsage CLIExitCode = 2 // the command line is wrong: a flag, a value, an argument
	// CLIExitBlocked: verify found that the role cannot use the key.
	CLIExitBlocked CLIExitCode = 10
	// CLIExitRerunFailed: rerun's command did not succeed on at least one instance, or on
	// one instance ended with no agent code (timed out, cancelled, undeliverable).
	CLIExitRerunFailed CLIExitCode = 11
	// CLIExitUntrusted: rerun sent nothing, or revoke or resume did not send its
	// revocation document, because no version of the document holds the content the
	// stack deployed (its DocumentDigest, or the revocation document's digest output).
	CLIExitUntrusted CLIExitCode = 12
	// CLIExitUnreachable: report --accounts wrote its report, but could not read some
	// account or region, which the report lists.
	CLIExitUnreachable CLIExitCode = 13
	// CLIExitAgentBase plus the agent's ExitCode is a single-instance rerun's status when
	// the agent ran and failed: 24 is key-unavailable.
	CLIExitAgentBase CLIExitCode = 20
)

// CLIExitForAgent is a single-instance rerun's status when the agent ended with c. A
// code the agent does not define (the document's shell failed before the agent ran, say)
// is CLIExitRerunFailed.
func CLIExitForAgent(c ExitCode) CLIExitCode {
	if _, ok := ExitCodeNames[c]; !ok || c == ExitOK {
		return CLIExitRerunFailed
	}
	return CLIExitAgentBase + CLIExitCode(c)
}
