package contract

import "testing"

// TestCLIExitCodes: the CLI's own codes never take a number the agent uses for another
// meaning, and each agent code maps to a status of its own that a shell can report.
func TestCLIExitCodes(t *testing.T) {
	own := map[CLIExitCode]string{CLIExitOK: "ok", CLIExitError: "error", CLIExitUsage: "usage", CLIExitBlocked: "blocked", CLIExitRerunFailed: "rerun failed", CLIExitUntrusted: "untrusted document", CLIExitUnreachable: "unreachable"}
	// The agent's meanings the CLI shares by number.
	same := map[CLIExitCode]ExitCode{CLIExitOK: ExitOK, CLIExitError: ExitSystemError, CLIExitUsage: ExitBadInput}
	for c, name := range own {
		if a, ok := same[c]; ok {
			if int(a) != int(c) {
				t.Errorf("CLI %s is %d, want the agent's %s, %d", name, c, a, a)
			}
			continue
		}
		if _, clash := ExitCodeNames[ExitCode(c)]; clash {
			t.Errorf("CLI %s is %d, which the agent uses for %s", name, c, ExitCode(c))
		}
	}
	seen := map[CLIExitCode]ExitCode{}
	for a := range ExitCodeNames {
		if a == ExitOK {
			continue
		}
		c := CLIExitForAgent(a)
		if _, clash := own[c]; clash {
			t.Errorf("agent %s maps to %d, the CLI's own %s", a, c, own[c])
		}
		if prev, dup := seen[c]; dup {
			t.Errorf("agent %s and %s both map to %d", a, prev, c)
		}
		if c > 125 { // 126 and above mean "not executable", "not found", signals
			t.Errorf("agent %s maps to %d, which shells reserve", a, c)
		}
		seen[c] = a
	}
	for _, a := range []ExitCode{ExitOK, 127, -1} {
		if c := CLIExitForAgent(a); c != CLIExitRerunFailed {
			t.Errorf("agent code %d maps to %d, want %d", a, c, CLIExitRerunFailed)
		}
	}
}
