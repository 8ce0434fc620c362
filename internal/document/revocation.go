package document

import (
	"fmt"
	"strings"

	"github.com/storecrypt/storecrypt/internal/contract"
)

// RevocationParameters are the parameters of a revocation document, each the agent flag
// it becomes. None has a default: SSM refuses a command without them, so no revoke goes
// unexplained and no shred reaches an instance whose id the responder did not type.
func RevocationParameters(d contract.RevocationDocument) []contract.DocumentParameter {
	ps := []contract.DocumentParameter{
		{Name: contract.RevokeReasonParameter, Flag: contract.FlagReason, Pattern: contract.PatternRevokeReason,
			Description: "(Required) Why, in one line: recorded with who asked and when, in the instance's mark, the agent's report and the ledger."},
		{Name: contract.RevokeByParameter, Flag: contract.FlagBy, Pattern: contract.PatternRevokeBy,
			Description: "(Required) Who asks: the caller's IAM ARN (storecrypt revoke fills it in from sts:GetCallerIdentity). Recorded as given; CloudTrail's record of SendCommand names the real caller."},
	}
	if d.Mark == contract.Shredded {
		ps = append(ps, contract.DocumentParameter{Name: contract.ShredConfirmParameter, Flag: contract.FlagConfirm, Pattern: contract.PatternInstanceID,
			Description: "(Required) The id of the one instance to shred, typed again: the agent shreds only the instance whose id it is. Send the command to that instance alone."})
	}
	return ps
}

// revocationSummary is each document's description, as the console shows it.
var revocationSummary = map[string]string{
	contract.Revoked: "storecrypt: take this instance's volume key out of kernel memory now (each storecrypt mapping is synced and suspended; reads and writes wait) " +
		"and leave a mark that keeps the boot unit, apply and unlock from opening it again (idempotent). KMS's refusal of the key, which storecrypt revoke makes first, does not depend on this run.",
	"": "storecrypt: end a revoke: get the volume's key again (KMS must grant it to the instance again first), give it back to the suspended mappings " +
		"or open the volume when a reboot closed it, and clear the revoked mark. Nothing changes when KMS refuses the key.",
	contract.Shredded: "storecrypt: IRREVERSIBLE. Revoke, then erase every keyslot and token of this instance's LUKS2 headers and tear the volume down: " +
		"its data cannot be read again, even with the KMS key. InstanceId must be this instance's id.",
}

// RevocationContent returns a revocation document's content. Its one step runs the agent
// that apply installed at contract.AgentPath, after checking that it is the build whose
// SHA-256 the document names (agents: the stack's, as the apply document's), copied into
// a private directory first so that what runs is what was checked. It downloads nothing:
// one command may reach a whole fleet by tag, of both architectures, where no one
// Architecture parameter fits; the root disk holds the agent across a reboot while
// revoked, and an incident does not wait on the asset bucket. defaults are the stack's
// choices for the apply document: resume reopens a volume a reboot closed where apply
// mounted it.
func RevocationContent(d contract.RevocationDocument, defaults contract.AgentOptions, agents []Agent) map[string]any {
	params := map[string]any{}
	for _, p := range RevocationParameters(d) {
		params[p.Name] = map[string]any{
			"type":              "String",
			"description":       p.Description,
			"allowedPattern":    p.Pattern,
			"interpolationType": "ENV_VAR",
		}
	}
	return map[string]any{
		"schemaVersion": "2.2",
		"description":   revocationSummary[d.Mark],
		"parameters":    params,
		"mainSteps": []any{map[string]any{
			"action":       "aws:runShellScript",
			"name":         d.Command,
			"precondition": linux,
			"inputs": map[string]any{
				// Past the agent's --wait for a run that holds the lock (10 minutes).
				"timeoutSeconds": "900",
				"runCommand":     revocationScript(d, defaults, agents),
			},
		}},
	}
}

// revocationScript is a revocation document's run step: check the SSM Agent sets the
// SSM_<name> variables, copy the installed agent into a private directory, check its
// SHA-256 is this machine's build of the document's, run the command. An installed agent
// of another build (an instance not applied since the stack changed its agent) is not
// run: the step says to run the apply document first, which installs this one.
func revocationScript(d contract.RevocationDocument, defaults contract.AgentOptions, agents []Agent) []string {
	ps := RevocationParameters(d)
	names := make([]string, len(ps))
	argv := []string{`"$bin"`, d.Command}
	for i, p := range ps {
		names[i] = p.Name
		argv = append(argv, fmt.Sprintf(`--%s="$SSM_%s"`, p.Flag, p.Name))
	}
	if d.Mark == "" {
		argv = append(argv, "--"+contract.FlagMountPoint+"="+quote(defaults.MountPoint))
		if len(defaults.BindDirs) > 0 {
			argv = append(argv, "--"+contract.FlagBindDirs+"="+quote(strings.Join(defaults.BindDirs, ",")))
		}
	}
	lines := append(prologue(), needEnv(names))
	lines = append(lines, machineDigests(agents)...)
	lines = append(lines, privateDir()...)
	lines = append(lines,
		fmt.Sprintf(`cp %s "$bin" || { echo "storecrypt: no agent at %s: the apply document installs it; run it on this instance first" >&2; exit 2; }`, contract.AgentPath, contract.AgentPath),
		fmt.Sprintf(`echo "$sum  $bin" | sha256sum -c >/dev/null 2>&1 || { echo "storecrypt: %s is not the agent this document trusts (SHA-256 $sum): run the apply document on this instance (storecrypt rerun), which installs it, then this one again" >&2; exit 2; }`, contract.AgentPath),
		`chmod 0700 "$bin"`,
	)
	return append(lines, runAgent(argv)...)
}

// quote makes s one shell word.
func quote(s string) string { return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'" }
