package cli

import (
	"bytes"
	"context"
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

func TestMainArguments(t *testing.T) {
	for _, tc := range []struct {
		name       string
		args       []string
		code       int
		stdout     string
		stderrSays string
	}{
		{"no command", nil, 2, "", "Commands:"},
		{"help", []string{"--help"}, 0, "", "Exit status: 0 ok, 1 system-error, 2 bad-input, 3 refused-unsafe, 4 key-unavailable, 5 busy, 6 no-devices."},
		{"version", []string{"version"}, 0, "dev\n", ""},
		{"unknown command", []string{"format"}, 2, "", `unknown command "format"`},
		{"apply help", []string{"apply", "--help"}, 0, "", "-kms-key-id"},
		{"bad flag", []string{"apply", "--no-such-flag"}, 2, "", "flag provided but not defined"},
		{"unlock retries", []string{"unlock", "--help"}, 0, "", "-retry-for"},
		{"plan does not retry", []string{"plan", "--retry-for", "1m"}, 2, "", "flag provided but not defined: -retry-for"},
		{"stray argument", []string{"unlock", "/dev/nvme1n1"}, 2, "", `unexpected argument "/dev/nvme1n1"`},
		{"uninstall listed", []string{"--help"}, 0, "", "  uninstall remove the boot unit"},
		{"uninstall help", []string{"uninstall", "--help"}, 0, "", "the volume and its data are left as they are"},
		{"uninstall takes the bound directories", []string{"uninstall", "--help"}, 0, "", "-bind-dirs"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			code := Main(context.Background(), tc.args, &stdout, &stderr, noAgent(t))
			if code != tc.code || stdout.String() != tc.stdout || !strings.Contains(stderr.String(), tc.stderrSays) {
				t.Errorf("exit %d stdout %q stderr:\n%s\nwant exit %d stdout %q stderr saying %q", code, stdout.String(), stderr.String(), tc.code, tc.stdout, tc.stderrSays)
			}
		})
	}
}
