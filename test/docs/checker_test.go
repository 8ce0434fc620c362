package docs

import (
	"errors"
	"strings"
	"testing"

	"github.com/storecrypt/storecrypt/test/mdblock"
)

// TestCheckerCatchesDrift: each case is a block a doc might hold; a line with one mistake
// must fail naming it, and the accepted cases keep the checker from refusing what the
// programs take.
func TestCheckerCatchesDrift(t *testing.T) {
	for _, tc := range []struct {
		name, info, text string
		want             string // a substring of the error; "" when the block is accepted
		lines            int    // the command lines found
	}{
		{"a storecrypt session", "console", "$ storecrypt rerun --targets tag:team=batch --dry-run\nDOCUMENT  x\n$ storecrypt --region eu-west-1 status\n", "", 2},
		{"a misspelt storecrypt flag", "sh", "storecrypt rerun --dryrun\n", "f.md:2: storecrypt rerun --dryrun: storecrypt rerun: unknown flag: --dryrun", 1},
		{"a flag of another command", "sh", "storecrypt status --instance i-1\n", "unknown flag: --instance", 1},
		{"an unknown storecrypt command", "sh", "storecrypt rerunn\n", `unknown command "rerunn"`, 1},
		{"a stray argument", "sh", "storecrypt status extra\n", `unexpected argument "extra"`, 1},
		{"an unknown completion shell", "sh", "storecrypt completion bsh\n", `storecrypt completion has no command "bsh"`, 1},
		{"a value the flag's type refuses", "sh", "storecrypt rerun --timeout soon\n", `invalid argument "soon"`, 1},
		{"placeholders and a release binary", "", "bin/storecrypt-linux-amd64 stage --release . --bucket-prefix <prefix> \\\n  --regions us-east-1\n", "", 1},
		{"a continuation in a session", "", "$ storecrypt verify \\\n    --instnace i-1\nVERDICT ok\n", "f.md:2: storecrypt verify --instnace i-1: storecrypt verify: unknown flag: --instnace", 1},
		{"the agent with sudo", "bash", "sudo /usr/local/sbin/storecrypt-agent install --kms-key-id alias/k \\\n  --bind-dirs /var/lib/containerd --now\n", "", 1},
		{"a misspelt agent flag", "bash", "storecrypt-agent apply --kms-key alias/k\n", "flag provided but not defined: -kms-key", 1},
		{"an agent flag of another command", "bash", "storecrypt-agent plan --retry-for 1m\n", "flag provided but not defined: -retry-for", 1},
		{"an unknown agent command", "bash", "storecrypt-agent format\n", `unknown command "format"`, 1},
		{"aws operations, a pipeline and a loop", "sh", "for r in a b; do\n  t=$(aws sns create-topic --region $r --name x --query TopicArn --output text)\ndone\n" +
			"aws cloudformation list-stack-instances --call-as SELF --stack-set-name s --max-items 5 | sha256sum\n" +
			"aws --region us-east-1 ec2 describe-instances --no-dry-run\naws s3api head-object --bucket b --key k\n", "", 5},
		{"an aws operation misspelt", "sh", "aws cloudformation create-stackset --stack-set-name s\n", "has no operation the aws CLI calls create-stackset", 1},
		{"an aws parameter misspelt", "sh", "aws cloudformation create-stack-set --callas SELF --stack-set-name s\n", "--callas is no member of CreateStackSet's input", 1},
		{"paging options on an operation that does not page", "sh", "aws cloudformation create-stack-set --stack-set-name s --max-items 5\n", "--max-items is no member", 1},
		{"an unknown global option", "sh", "aws --regoin x sns create-topic --name x\n", "--regoin is not a global option", 1},
		{"an unknown service", "sh", "aws nosuchservice do-it\n", "aws nosuchservice: reading botocore's models of nosuchservice", 1},
		{"aws s3 cp", "", "aws s3 cp \"$URL\" - --no-progress | gzip -dc > /tmp/a\n", "", 2},
		{"an option aws s3 cp does not have", "sh", "aws s3 cp a s3://b/a --server-side aws:kms\n", "aws s3 cp has no option --server-side", 1},
		{"make targets and a variable", "sh", "make test\nmake mutants ARGS=-guest\n", "", 2},
		{"a make target that does not exist", "sh", "make tests\n", `the Makefile has no target "tests"`, 1},
		{"cdk by npx", "", "make deploy   # builds first\nnpx aws-cdk@2.1148.1 deploy -c keySource=s3-kms\n", "", 2},
		{"a cdk command that does not exist", "sh", "cdk synthesise\n", `the CDK CLI has no command "synthesise"`, 1},
		{"a program nobody classified", "sh", "jq .Outputs out.json\n", `"jq" is not in the programs table`, 1},
		{"tagged shell that does not parse", "sh", "echo 'open\n", "f.md:2: not shell", 0},
		{"untagged output", "", "Usage: storecrypt-agent apply [flags]\n\nFlags:\n  --bogus\n", "", 0},
		{"the agent's help", "", agentHelpFirstLine() + "\nunder a key\n\nCommands:\n  apply  x\n", "", 0},
		{"another language", "yaml", "storecrypt: rerunn --bogus\n", "", 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			lines, err := commands(mdblock.Block{File: "f.md", Line: 2, Info: tc.info, Text: tc.text})
			var errs []error
			if err != nil {
				errs = append(errs, err)
			}
			for _, c := range lines {
				errs = append(errs, check(c))
			}
			got := errors.Join(errs...)
			switch {
			case tc.want == "" && got != nil:
				t.Errorf("got %v, want the block accepted", got)
			case tc.want != "" && (got == nil || !strings.Contains(got.Error(), tc.want)):
				t.Errorf("got %v, want an error saying %q", got, tc.want)
			}
			if len(lines) != tc.lines {
				t.Errorf("got %d command lines %v, want %d", len(lines), lines, tc.lines)
			}
		})
	}
}

// TestInlineCatchesDrift: each case is a code span the prose might hold; a command or a
// flag that does not exist must fail, and synopses, elisions and names that are not
// commands must not.
func TestInlineCatchesDrift(t *testing.T) {
	for _, tc := range []struct {
		span string
		want string // a substring of the error; "" when the span is accepted
	}{
		{"storecrypt rerun --targets", ""},
		{`storecrypt report --since --until [--output csv\|json\|html]`, ""},
		{"storecrypt rerun --max-concurrency/--max-errors", ""},
		{"storecrypt verify --role <arn>", ""},
		{"storecrypt --stack", ""},
		{"storecrypt Instance Blocked", ""},
		{"storecrypt completion zsh", ""},
		{"storecrypt rerun --max-concurency", "storecrypt rerun has no flag --max-concurency"},
		{"storecrypt --stak", "storecrypt has no flag --stak"},
		{"storecrypt rerunn", `unknown command "rerunn"`},
		{"storecrypt completion zssh", `storecrypt completion has no command "zssh"`},
		{"storecrypt-agent install", ""},
		{"storecrypt-agent unlock --retry-for", ""},
		{"storecrypt-agent instal", `unknown command "instal"`},
		{"storecrypt-agent plan --retry-for", "storecrypt-agent plan has no flag --retry-for"},
		{"make integ", ""},
		{"make integration", `the Makefile has no target "integration"`},
		{"aws cloudformation …stack-set…", ""},
		{"aws cloudformaton …stack-set…", "aws cloudformaton: reading botocore's models"},
		{`aws kms encrypt ... \| base64 --decode`, ""},
		{"aws sts assume-role --serial-number ... --token-code ...", ""},
		{"aws sts assume-role --serial ...", "--serial is no member of AssumeRole's input"},
		{"aws sso login --profile X", ""},
		{"aws sso login --no-browsers", "aws sso login has no option --no-browsers"},
		{"npx aws-cdk@2.1148.1 bootstrap", ""},
		{"cdk bootstrapp", `the CDK CLI has no command "bootstrapp"`},
		{"aws", ""},
		{"git log --oneline", ""},
	} {
		t.Run(tc.span, func(t *testing.T) {
			got := checkInline(mdblock.Span{File: "f.md", Line: 3, Text: tc.span})
			switch {
			case tc.want == "" && got != nil:
				t.Errorf("got %v, want the span accepted", got)
			case tc.want != "" && (got == nil || !strings.Contains(got.Error(), tc.want)):
				t.Errorf("got %v, want an error saying %q", got, tc.want)
			}
		})
	}
}
