// Package opcli is `storecrypt`, the operator CLI: put-secret, verify, rerun, status and
// report, with aws-cli habits (--region, --profile, --output, --help on every command,
// progress on stderr). main only calls Main.
package opcli

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"runtime"
	"runtime/debug"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/aws-sdk-go-v2/service/kms"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/ssm"

	"github.com/storecrypt/storecrypt/internal/binding"
	"github.com/storecrypt/storecrypt/internal/ledger"
)

// EC2 is the part of the EC2 client the CLI uses.
type EC2 interface {
	DescribeInstances(ctx context.Context, in *ec2.DescribeInstancesInput, optFns ...func(*ec2.Options)) (*ec2.DescribeInstancesOutput, error)
	DescribeInstanceTypes(ctx context.Context, in *ec2.DescribeInstanceTypesInput, optFns ...func(*ec2.Options)) (*ec2.DescribeInstanceTypesOutput, error)
}

// SSM is the part of the SSM client the CLI uses.
type SSM interface {
	DescribeDocument(ctx context.Context, in *ssm.DescribeDocumentInput, optFns ...func(*ssm.Options)) (*ssm.DescribeDocumentOutput, error)
	SendCommand(ctx context.Context, in *ssm.SendCommandInput, optFns ...func(*ssm.Options)) (*ssm.SendCommandOutput, error)
	GetCommandInvocation(ctx context.Context, in *ssm.GetCommandInvocationInput, optFns ...func(*ssm.Options)) (*ssm.GetCommandInvocationOutput, error)
}

// KMS is the part of the KMS client the CLI uses (and the binding check's).
type KMS interface {
	binding.KMS
	Encrypt(ctx context.Context, in *kms.EncryptInput, optFns ...func(*kms.Options)) (*kms.EncryptOutput, error)
	GetKeyRotationStatus(ctx context.Context, in *kms.GetKeyRotationStatusInput, optFns ...func(*kms.Options)) (*kms.GetKeyRotationStatusOutput, error)
}

// S3 is the part of the S3 client put-secret uses.
type S3 interface {
	PutObject(ctx context.Context, in *s3.PutObjectInput, optFns ...func(*s3.Options)) (*s3.PutObjectOutput, error)
}

// Clients are the AWS clients for one region and profile.
type Clients struct {
	EC2            EC2
	SSM            SSM
	IAM            binding.IAM
	KMS            KMS
	S3             S3
	CloudFormation CloudFormation
	DynamoDB       ledger.DynamoDB
	// Now is the clock; time.Now when nil.
	Now func() time.Time
}

// NewClients builds the clients for --region and --profile.
type NewClients func(ctx context.Context, region, profile string) (Clients, error)

// Exit codes of storecrypt.
const (
	exitOK      = 0
	exitError   = 1
	exitUsage   = 2
	exitBlocked = 3 // verify: the role cannot use the key
)

// UsageError is a mistake in the command line.
type UsageError struct{ msg string }

func (e *UsageError) Error() string { return e.msg }

func usageErr(msg string) error { return &UsageError{msg} }

// exitError carries a command's chosen exit code (verify's blocked, rerun's agent code).
type codeError struct {
	code int
	err  error
}

func (e *codeError) Error() string { return e.err.Error() }
func (e *codeError) Unwrap() error { return e.err }

// env is what a command runs with.
type env struct {
	Clients
	out, errOut io.Writer
	output      string // table, json (csv for report)
	stdin       io.Reader
	poll        time.Duration
}

func (e *env) now() time.Time {
	if e.Now != nil {
		return e.Now()
	}
	return time.Now()
}

type command struct {
	name, summary string
	flags         func(fs *flag.FlagSet) func(ctx context.Context, e *env) error
}

var commands = []command{
	{"put-secret", "encrypt a passphrase (stdin or --generate) with KMS and store the raw ciphertext in S3 for the s3-kms key source", putSecretFlags},
	{"verify", "check that an instance's (or a role's) binding to the key lets the agent work; print the verdict and the fix", verifyFlags},
	{"rerun", "run the storecrypt document on an instance again, wait, and show the agent's result", rerunFlags},
	{"status", "list every running instance in the stack's scope with instance store (tagged or not), with its storecrypt tags", statusFlags},
	{"report", "evidence for an auditor from the ledger, for a period (--since, --until): coverage overall, per role and per type, time to encrypted, every exception and every launch with its evidence", reportFlags},
	{"version", "print the CLI's version, the commit it was built from and the Go release", nil},
}

func usage(w io.Writer) {
	fmt.Fprint(w, `storecrypt is the operator CLI for storecrypt: encryption of EC2 instance store under your KMS key.

Usage: storecrypt [--region R] [--profile P] [--output table|json] <command> [flags]

Commands:
`)
	for _, c := range commands {
		fmt.Fprintf(w, "  %-11s %s\n", c.name, c.summary)
	}
	fmt.Fprint(w, `
Run 'storecrypt <command> --help' for its flags. Credentials and region come from the
usual AWS sources (environment, ~/.aws, SSO, instance role).
Exit status: 0 ok, 1 error, 2 usage, 3 verify found the binding broken; rerun exits with the agent's code.
`)
}

// Main runs the CLI and returns the exit status.
func Main(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer, newClients NewClients) int {
	global := flag.NewFlagSet("storecrypt", flag.ContinueOnError)
	global.SetOutput(stderr)
	region := global.String("region", "", "AWS region (default: from the environment or profile)")
	profile := global.String("profile", "", "AWS shared-config profile")
	output := global.String("output", "table", "table or json")
	global.Usage = func() { usage(stderr) }
	if err := global.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return exitOK
		}
		return exitUsage
	}
	if global.NArg() == 0 {
		usage(stderr)
		return exitUsage
	}
	var cmd *command
	for i := range commands {
		if commands[i].name == global.Arg(0) {
			cmd = &commands[i]
		}
	}
	if cmd == nil {
		fmt.Fprintf(stderr, "storecrypt: unknown command %q\n\n", global.Arg(0))
		usage(stderr)
		return exitUsage
	}
	fs := flag.NewFlagSet("storecrypt "+cmd.name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	run := printVersion
	if cmd.flags != nil {
		run = cmd.flags(fs)
	}
	// The global flags are taken after the command too, as the aws CLI takes them.
	fs.StringVar(output, "output", *output, "table or json")
	fs.StringVar(region, "region", *region, "AWS region (default: from the environment or profile)")
	fs.StringVar(profile, "profile", *profile, "AWS shared-config profile")
	fs.Usage = func() {
		fmt.Fprintf(stderr, "Usage: storecrypt %s [flags]\n\n%s.\n\nFlags:\n", cmd.name, cmd.summary)
		fs.PrintDefaults()
	}
	if err := fs.Parse(global.Args()[1:]); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return exitOK
		}
		return exitUsage
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "storecrypt %s: unexpected argument %q\n", cmd.name, fs.Arg(0))
		return exitUsage
	}
	validOutput := *output == "table" || *output == "json" || cmd.name == "report" && (*output == "csv" || *output == "html")
	if !validOutput {
		want := "table or json"
		if cmd.name == "report" {
			want = "table, json, csv or html"
		}
		fmt.Fprintf(stderr, "storecrypt: --output %q: want %s\n", *output, want)
		return exitUsage
	}
	e := &env{out: stdout, errOut: stderr, output: *output, stdin: stdin, poll: 2 * time.Second}
	if cmd.flags != nil {
		// Only the commands that call AWS need a configuration (version does not).
		clients, err := newClients(ctx, *region, *profile)
		if err != nil {
			fmt.Fprintf(stderr, "storecrypt: %v\n", err)
			return exitError
		}
		e.Clients = clients
	}
	err := run(ctx, e)
	var usageErr *UsageError
	var coded *codeError
	switch {
	case err == nil:
		return exitOK
	case errors.As(err, &usageErr):
		fmt.Fprintf(stderr, "storecrypt %s: %v\n", cmd.name, err)
		return exitUsage
	case errors.As(err, &coded):
		fmt.Fprintf(stderr, "storecrypt %s: %v\n", cmd.name, err)
		return coded.code
	default:
		fmt.Fprintf(stderr, "storecrypt %s: %v\n", cmd.name, strings.TrimSpace(err.Error()))
		return exitError
	}
}

// buildInfo is the CLI's version as the Go toolchain recorded it.
type buildInfo struct {
	Version  string `json:"version"`
	Revision string `json:"revision,omitempty"`
	Modified bool   `json:"modified,omitempty"`
	Go       string `json:"go"`
}

func printVersion(_ context.Context, e *env) error {
	v := buildInfo{Version: "unknown", Go: runtime.Version()}
	if bi, ok := debug.ReadBuildInfo(); ok {
		v.Version = bi.Main.Version
		for _, s := range bi.Settings {
			switch s.Key {
			case "vcs.revision":
				v.Revision = s.Value
			case "vcs.modified":
				v.Modified = s.Value == "true"
			}
		}
	}
	if e.output == "json" {
		return writeJSON(e.out, v)
	}
	fmt.Fprintf(e.out, "storecrypt %s", v.Version)
	if v.Revision != "" {
		fmt.Fprintf(e.out, " (commit %s", v.Revision)
		if v.Modified {
			fmt.Fprint(e.out, ", modified")
		}
		fmt.Fprint(e.out, ")")
	}
	fmt.Fprintf(e.out, " %s\n", v.Go)
	return nil
}
