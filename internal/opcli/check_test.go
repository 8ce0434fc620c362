package opcli_test

import (
	"bytes"
	"context"
	"strings"
	"testing"

	"github.com/storecrypt/storecrypt/internal/awscfg"
	"github.com/storecrypt/storecrypt/internal/opcli"
)

// TestUsageBeforeAWS: every command checks what it was given before it asks for
// credentials, so a mistake is exit 2 with the usage line whether or not there are
// credentials, and never reaches the network.
func TestUsageBeforeAWS(t *testing.T) {
	for _, tc := range []struct {
		args  []string
		stdin string
		says  string
	}{
		{[]string{"report", "--since", "yesterday"}, "", `storecrypt report: --since: "yesterday": want YYYY-MM-DD or an RFC 3339 time`},
		{[]string{"report", "--until", "2026-13-01"}, "", "--until: "},
		{[]string{"report", "--since", "2026-11-02", "--until", "2026-11-01"}, "", "is not before --until"},
		{[]string{"report", "--accounts", "11112222333"}, "", `--accounts: "11112222333" is not an account id (12 digits), and all is alone`},
		{[]string{"report", "--accounts", "all,111122223333"}, "", `--accounts: "all" is not an account id`},
		{[]string{"report", "--accounts", "111122223333", "--stack", "StoreCrypt"}, "", "--stack names one account's stack"},
		{[]string{"report", "--regions", "eu-west-1"}, "", "--regions goes with --accounts"},
		{[]string{"report", "--accounts", "all", "--regions", "eu-west-1,Europe"}, "", `--regions: "Europe" is not a region name`},
		{[]string{"report", "--accounts", "all", "--role-name", "arn:aws:iam::111122223333:role/a"}, "", "want a role's name"},
		{[]string{"report", "--accounts", "all", "--concurrency", "0"}, "", "--concurrency 0: want 1 to 32"},
		{[]string{"verify"}, "", "give one of --instance or --role"},
		{[]string{"verify", "--instance", "i-1", "--role", "arn:aws:iam::111122223333:role/a"}, "", "give one of --instance or --role"},
		{[]string{"verify", "--instance", "bogus"}, "", `--instance "bogus": want an instance id, i- and 8 or 17 hex digits`},
		{[]string{"verify", "--instance", "i-0123456789abcdef"}, "", `--instance "i-0123456789abcdef"`},
		{[]string{"verify", "--instance", "i-0123456G"}, "", `--instance "i-0123456G"`},
		{[]string{"verify", "--role", "notanarn"}, "", `--role "notanarn": want an ARN`},
		{[]string{"verify", "--role", "arn:aws:iam::111122223333:user/ops"}, "", `--role "arn:aws:iam::111122223333:user/ops"`},
		{[]string{"verify", "--role", "arn:aws:sts::111122223333:role/ops"}, "", "arn:PARTITION:iam:"},
		{[]string{"verify", "--role", "arn:aws:iam::111122223333:role/"}, "", "want an ARN"},
		{[]string{"verify", "--instance", "i-01234567", "--kms-key-id", "arn:aws:kms:eu-west-1:111122223333:alias/x"}, "", `--kms-key-id "arn:aws:kms:eu-west-1:111122223333:alias/x"`},
		{[]string{"verify", "--instance", "i-01234567", "--key-source", "s3"}, "", `--key-source "s3": want one of kms-datakey, s3-kms, ephemeral`},
		{[]string{"verify", "--instance", "i-01234567", "--secret", "bucket/key"}, "", "--secret: "},
		{[]string{"put-secret", "--kms-key-id", "arn:aws:s3:::bucket"}, "pass\n", `--kms-key-id "arn:aws:s3:::bucket"`},
		{[]string{"rerun"}, "", "give one of --instance, --instances or --targets"},
		{[]string{"rerun", "--instance", "i-01234567", "--targets", "tag:a=b"}, "", "give one of"},
		{[]string{"rerun", "--instance", "web-1"}, "", `--instance "web-1"`},
		{[]string{"rerun", "--instances", "i-01234567,i-x", "--yes"}, "", `--instances "i-x"`},
		{[]string{"rerun", "--targets", "team=batch", "--yes"}, "", `--targets "team=batch"`},
		{[]string{"rerun", "--instance", "i-01234567", "--max-concurrency", "0"}, "", `--max-concurrency "0"`},
		{[]string{"rerun", "--instance", "i-01234567", "--max-errors", "101%"}, "", `--max-errors "101%"`},
		{[]string{"rerun", "--instances", "i-01234567"}, "", "stdin is not a terminal: pass --yes"},
		{[]string{"rerun", "--instance", "i-01234567", "--param", "Nope=1"}, "", `unknown parameter "Nope"`},
		{[]string{"status", "--output", "csv"}, "", `--output "csv"`},
		{[]string{"status", "--query", "[?status=="}, "", `--query "[?status==": `},
		{[]string{"report", "--output", "csv", "--query", "launches"}, "", "--query works with --output table, json or text, not csv"},
		{[]string{"version", "extra"}, "", `unexpected argument "extra"`},
	} {
		t.Run(strings.Join(tc.args, " "), func(t *testing.T) {
			var out, errOut bytes.Buffer
			code := opcli.Main(context.Background(), tc.args, strings.NewReader(tc.stdin), &out, &errOut,
				func(context.Context, awscfg.Options) (opcli.Clients, error) {
					t.Error("asked for AWS clients before the usage error")
					return opcli.Clients{}, context.Canceled
				})
			cmd := "storecrypt " + tc.args[0]
			if code != 2 || out.Len() != 0 || !strings.Contains(errOut.String(), tc.says) ||
				!strings.HasPrefix(errOut.String(), cmd+": ") || !strings.HasSuffix(errOut.String(), "Run '"+cmd+" --help' for usage.\n") {
				t.Errorf("got exit %d, stdout %q, stderr %q; want exit 2, stderr saying %q and pointing at --help", code, out.String(), errOut.String(), tc.says)
			}
		})
	}
}
