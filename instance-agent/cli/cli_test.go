package cli

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/storecrypt/storecrypt/instance-agent/agent"
)

func noAgent(t *testing.T) func() *agent.Agent {
	return func() *agent.Agent {
		t.Fatal("the agent ran for an invocation that should stop at the flags")
		return nil
	}
}

// TestMainArguments: help asked for goes to stdout with the flags spelled --name; help
// after a mistake goes to stderr, and stdout stays empty for whatever reads the report.
func TestMainArguments(t *testing.T) {
	for _, tc := range []struct {
		name       string
		args       []string
		code       int
		stdoutSays string
		stderrSays string
	}{
		{"no command", nil, 2, "", "Commands:"},
		{"help", []string{"--help"}, 0, "Exit status: 0 ok, 1 system-error, 2 bad-input, 3 refused-unsafe, 4 key-unavailable, 5 busy, 6 no-devices, 7 revoked.", ""},
		{"help word", []string{"help"}, 0, "Commands:", ""},
		{"version", []string{"version"}, 0, "dev\n", ""},
		{"unknown command", []string{"format"}, 2, "", `unknown command "format"`},
		{"apply help", []string{"apply", "--help"}, 0, "\n  --kms-key-id string\n", ""},
		{"apply -h", []string{"apply", "-h"}, 0, "\n  --layout string\n", ""},
		{"bad flag", []string{"apply", "--no-such-flag"}, 2, "", "flag provided but not defined"},
		{"bad flag shows the flags", []string{"apply", "--no-such-flag"}, 2, "", "\n  --mount-point string\n"},
		{"plan does not retry", []string{"plan", "--retry-for", "1m"}, 2, "", "flag provided but not defined: -retry-for"},
		{"unlock retries", []string{"unlock", "--help"}, 0, "\n  --retry-for duration\n", ""},
		{"defaults shown", []string{"apply", "--help"}, 0, `(default "raid0")`, ""},
		{"stray argument", []string{"unlock", "/dev/nvme1n1"}, 2, "", `unexpected argument "/dev/nvme1n1"`},
		{"uninstall listed", []string{"--help"}, 0, "  uninstall remove the boot unit", ""},
		{"uninstall help", []string{"uninstall", "--help"}, 0, "the volume and its data are left as they are", ""},
		{"revoke asks why", []string{"revoke", "--help"}, 0, "\n  --reason string\n", ""},
		{"revoke says what a cache keeps", []string{"revoke", "--help"}, 0, "drop the page cache", ""},
		{"shred says it is irreversible", []string{"shred", "--help"}, 0, "IRREVERSIBLE", ""},
		{"shred asks for the instance id", []string{"shred", "--help"}, 0, "\n  --confirm string\n", ""},
		{"only shred confirms", []string{"revoke", "--confirm", "i-0123"}, 2, "", "flag provided but not defined: -confirm"},
		{"uninstall takes the bound directories", []string{"uninstall", "--help"}, 0, "\n  --bind-dirs value\n", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			code := Main(context.Background(), tc.args, &stdout, &stderr, noAgent(t))
			if code != tc.code || !strings.Contains(stdout.String(), tc.stdoutSays) || !strings.Contains(stderr.String(), tc.stderrSays) {
				t.Errorf("exit %d stdout:\n%s\nstderr:\n%s\nwant exit %d, stdout saying %q, stderr saying %q", code, stdout.String(), stderr.String(), tc.code, tc.stdoutSays, tc.stderrSays)
			}
			if code != 0 && stdout.Len() > 0 {
				t.Errorf("exit %d with stdout %q: want it empty", code, stdout.String())
			}
			if code == 0 && tc.args[0] != "version" && stderr.Len() > 0 {
				t.Errorf("help on stderr %q: want it on stdout", stderr.String())
			}
		})
	}
}

// TestDocumentedHelp: every copy of the agent's help in the README and docs/ is what the
// binary prints, so the documentation cannot drift from the flags.
func TestDocumentedHelp(t *testing.T) {
	docs, err := filepath.Glob("../../docs/*.md")
	if err != nil {
		t.Fatal(err)
	}
	found := 0
	for _, path := range append(docs, "../../README.md") {
		text, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		for _, block := range strings.Split(string(text), "```\n")[1:] {
			var args []string
			switch first, _, _ := strings.Cut(block, "\n"); {
			case strings.HasPrefix(first, "storecrypt-agent encrypts"):
				args = []string{"--help"}
			case strings.HasPrefix(first, "Usage: storecrypt-agent ") && !strings.HasPrefix(first, "Usage: storecrypt-agent <"):
				args = []string{strings.Fields(first)[2], "--help"}
			default:
				continue
			}
			found++
			var stdout, stderr bytes.Buffer
			Main(context.Background(), args, &stdout, &stderr, noAgent(t))
			if got := stdout.String(); got != block {
				t.Errorf("%s: the copy of storecrypt-agent %s differs from the binary's; want:\n%s", path, strings.Join(args, " "), got)
			}
		}
	}
	if found == 0 {
		t.Fatal("no copy of the agent's help found in the README or docs/: the test reads nothing")
	}
}
