// Package opcli is `storecrypt`, the operator CLI: put-secret, verify, rerun, status and
// report, with the aws CLI's habits by way of cobra (--region, --profile, --output and
// --stack anywhere on the line, --help on every command, completion, progress on stderr).
// main only calls Main.
package opcli

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"runtime"
	"runtime/debug"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials/stscreds"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/aws-sdk-go-v2/service/kms"
	"github.com/aws/aws-sdk-go-v2/service/organizations"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/ssm"
	"github.com/aws/aws-sdk-go-v2/service/sts"
	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
	"golang.org/x/term"

	"github.com/storecrypt/storecrypt/internal/alert"
	"github.com/storecrypt/storecrypt/internal/awscfg"
	"github.com/storecrypt/storecrypt/internal/binding"
	"github.com/storecrypt/storecrypt/internal/contract"
	"github.com/storecrypt/storecrypt/internal/document"
	"github.com/storecrypt/storecrypt/internal/ledger"
	"github.com/storecrypt/storecrypt/internal/revoke"
)

// EC2 is the part of the EC2 client the CLI uses.
type EC2 interface {
	DescribeInstances(ctx context.Context, in *ec2.DescribeInstancesInput, optFns ...func(*ec2.Options)) (*ec2.DescribeInstancesOutput, error)
	DescribeInstanceTypes(ctx context.Context, in *ec2.DescribeInstanceTypesInput, optFns ...func(*ec2.Options)) (*ec2.DescribeInstanceTypesOutput, error)
}

// SSM is the part of the SSM client the CLI uses.
type SSM interface {
	document.SSM // rerun sends only a version with the deployed content (document.Trust)
	SendCommand(ctx context.Context, in *ssm.SendCommandInput, optFns ...func(*ssm.Options)) (*ssm.SendCommandOutput, error)
	GetCommandInvocation(ctx context.Context, in *ssm.GetCommandInvocationInput, optFns ...func(*ssm.Options)) (*ssm.GetCommandInvocationOutput, error)
	ListCommandInvocations(ctx context.Context, in *ssm.ListCommandInvocationsInput, optFns ...func(*ssm.Options)) (*ssm.ListCommandInvocationsOutput, error)
}

// KMS is the part of the KMS client the CLI uses (and the binding check's, and
// revoke's).
type KMS interface {
	binding.KMS
	revoke.KMS
	Encrypt(ctx context.Context, in *kms.EncryptInput, optFns ...func(*kms.Options)) (*kms.EncryptOutput, error)
	GetKeyRotationStatus(ctx context.Context, in *kms.GetKeyRotationStatusInput, optFns ...func(*kms.Options)) (*kms.GetKeyRotationStatusOutput, error)
}

// S3 is the part of the S3 client put-secret and stage use.
type S3 interface {
	PutObject(ctx context.Context, in *s3.PutObjectInput, optFns ...func(*s3.Options)) (*s3.PutObjectOutput, error)
	HeadObject(ctx context.Context, in *s3.HeadObjectInput, optFns ...func(*s3.Options)) (*s3.HeadObjectOutput, error)
	HeadBucket(ctx context.Context, in *s3.HeadBucketInput, optFns ...func(*s3.Options)) (*s3.HeadBucketOutput, error)
	CreateBucket(ctx context.Context, in *s3.CreateBucketInput, optFns ...func(*s3.Options)) (*s3.CreateBucketOutput, error)
	PutPublicAccessBlock(ctx context.Context, in *s3.PutPublicAccessBlockInput, optFns ...func(*s3.Options)) (*s3.PutPublicAccessBlockOutput, error)
	PutBucketEncryption(ctx context.Context, in *s3.PutBucketEncryptionInput, optFns ...func(*s3.Options)) (*s3.PutBucketEncryptionOutput, error)
	PutBucketPolicy(ctx context.Context, in *s3.PutBucketPolicyInput, optFns ...func(*s3.Options)) (*s3.PutBucketPolicyOutput, error)
}

// STS is the part of the STS client report --accounts uses: who the caller is, and the
// auditor role's sessions in each account.
type STS interface {
	stscreds.AssumeRoleAPIClient
	GetCallerIdentity(ctx context.Context, in *sts.GetCallerIdentityInput, optFns ...func(*sts.Options)) (*sts.GetCallerIdentityOutput, error)
}

// Organizations is the part of the Organizations client stage and report --accounts use:
// the organization stage's bucket policy lets read, and the accounts a report covers.
type Organizations interface {
	organizations.ListAccountsAPIClient
	DescribeOrganization(ctx context.Context, in *organizations.DescribeOrganizationInput, optFns ...func(*organizations.Options)) (*organizations.DescribeOrganizationOutput, error)
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
	STS            STS
	Organizations  Organizations
	// Events gets revoke's and resume's events.
	Events alert.EventBridge
	// Region is the region the clients call: report --accounts' default --regions.
	Region string
	// In builds the clients of another account's session (creds) in region.
	In func(ctx context.Context, region string, creds aws.CredentialsProvider) (Clients, error)
	// Now is the clock; time.Now when nil.
	Now func() time.Time
}

// NewClients builds the clients for the global flags (--region, --profile, --endpoint-url,
// --debug), with the streams an MFA prompt uses.
type NewClients func(ctx context.Context, o awscfg.Options) (Clients, error)

// UsageError is a mistake in the command line.
type UsageError struct{ msg string }

func (e *UsageError) Error() string { return e.msg }

func usageErr(msg string) error { return &UsageError{msg} }

// codeError carries a command's chosen exit code (verify's blocked, rerun's failures).
type codeError struct {
	code contract.CLIExitCode
	err  error
}

func (e *codeError) Error() string { return e.err.Error() }
func (e *codeError) Unwrap() error { return e.err }

// ranError marks an error a command's own run returned, so that Main tells it from the
// errors cobra returns while parsing the command line, which are all usage errors.
type ranError struct{ err error }

func (e *ranError) Error() string { return e.err.Error() }
func (e *ranError) Unwrap() error { return e.err }

// env is what a command runs with.
type env struct {
	Clients
	out, errOut io.Writer
	output      string // table, json, text (csv and html for report)
	stack       string // --stack
	stdin       io.Reader
	poll        time.Duration
	// live says errOut is a terminal, where progress may rewrite its line.
	live bool
	// ask says stdin is a terminal, where rerun may ask before it sends.
	ask bool
	// args are the command's positional arguments.
	args []string
	// answers reads stdin for every question a command asks: one reader, so that what it
	// buffered for the first answer is there for the next.
	answers *bufio.Reader
}

func (e *env) now() time.Time {
	if e.Now != nil {
		return e.Now()
	}
	return time.Now()
}

// runFunc runs a subcommand, as its flags configured it.
type runFunc func(ctx context.Context, e *env) error

// command is one subcommand: its flags, and the run they configure.
type command struct {
	name, summary string
	// long is --help's text when the summary is not enough.
	long string
	// args is the usage of the positional arguments the command takes ("": none).
	args string
	// outputs are the --output formats it writes besides table, json and text.
	outputs []string
	// aws says it calls AWS, and so needs a region and credentials.
	aws bool
	// define registers the command's flags on fs and returns what checks them.
	define func(fs *pflag.FlagSet) checkFunc
}

var commands = []command{
	{name: "put-secret", summary: "encrypt a passphrase (stdin or --generate) with KMS and store the raw ciphertext in S3 for the s3-kms key source", aws: true, define: runPutSecret},
	{name: "verify", summary: "check that an instance's (or a role's) binding to the key lets the agent work; print the verdict and the fix", aws: true, define: runVerify},
	{name: "rerun", summary: "run the deployed storecrypt document again on instances in the stack's scope: one (--instance: its agent's report) or many (--instances, --targets: listed and confirmed first, then a line each and a summary), and wait", aws: true, define: runRerun},
	{name: "revoke", summary: "cut instances in the stack's scope off their data: the ledger marks them, KMS refuses them the key, the volume key leaves the kernel; --shred erases the volume for good",
		long: revokeLong, args: "[INSTANCE_ID...]", aws: true, define: runRevoke},
	{name: "resume", summary: "let revoked instances back to their data: the ledger mark removed, the key granted again by the launch function, the volume reopened",
		long: resumeLong, args: "[INSTANCE_ID...]", aws: true, define: runResume},
	{name: "status", summary: "list every running instance in the stack's scope with instance store (tagged or not), with its storecrypt tags", aws: true, define: runStatus},
	{name: "report", summary: "evidence for an auditor from the ledger, for a period (--since, --until): coverage overall, per role and per type, time to encrypted, every exception and every launch with its evidence",
		outputs: []string{"csv", "html"}, aws: true, define: runReport},
	{name: "stage", summary: "upload a release (make release's tarball) to a code bucket per region, <bucket-prefix>-<region>, created if absent and readable by the organization alone: a line per region and object, a summary, and nothing uploaded twice",
		aws: true, define: runStage},
	{name: "version", summary: "print the CLI's version, the commit it was built from and the Go release", define: func(*pflag.FlagSet) checkFunc { return checked(printVersion) }},
}

// globals are the flags every command takes, before or after its name.
type globals struct {
	region, profile, output, stack, query string
	endpointURL                           string
	debug                                 bool
}

// rootLong is storecrypt's --help text; the exit codes are contract's.
var rootLong = fmt.Sprintf(`storecrypt is the operator CLI for storecrypt: encryption of EC2 instance store under your KMS key.

Credentials and region come from the usual AWS sources (environment, ~/.aws, SSO,
instance role); --region and --profile override them.
Exit status: %d ok, %d error, %d usage, %d verify found the binding broken, %d rerun failed on
some instance, %d rerun sent nothing, or revoke or resume did not send its document,
because no version of the document holds the content the stack deployed, %d report
--accounts wrote its report but could not read some account or region (the report lists
each), %d+N a single-instance rerun whose agent exited N.`,
	contract.CLIExitOK, contract.CLIExitError, contract.CLIExitUsage, contract.CLIExitBlocked, contract.CLIExitRerunFailed,
	contract.CLIExitUntrusted, contract.CLIExitUnreachable, contract.CLIExitAgentBase)

// newRoot builds the command tree. Help goes to stdout, errors to stderr.
func newRoot(stdin io.Reader, stdout, stderr io.Writer, newClients NewClients) *cobra.Command {
	g := &globals{}
	root := &cobra.Command{
		Use: "storecrypt", Short: "the operator CLI for storecrypt", Long: rootLong,
		// Main prints errors once, in its own words; a usage error points at --help
		// rather than repeating the whole usage.
		SilenceErrors: true, SilenceUsage: true,
	}
	root.SetIn(stdin)
	root.SetOut(stdout)
	root.SetErr(stderr)
	root.SetFlagErrorFunc(func(_ *cobra.Command, err error) error { return usageErr(err.Error()) })
	// As aws --version: the line storecrypt version prints. Declared here, without
	// cobra's -v, which the aws CLI does not have.
	root.Version = readBuildInfo().String()
	root.SetVersionTemplate("{{.Version}}\n")
	root.Flags().Bool("version", false, "print the version, as storecrypt version does")
	pf := root.PersistentFlags()
	pf.StringVar(&g.region, "region", "", "AWS region (default: from the environment or profile)")
	pf.StringVar(&g.profile, "profile", "", "AWS shared-config profile")
	pf.StringVar(&g.output, "output", "", "output format: table, json or text (report: also csv, html) (default: AWS_DEFAULT_OUTPUT, else the profile's output, else table)")
	pf.StringVar(&g.query, "query", "", "a JMESPath query, as the aws CLI's: it selects from what --output json prints, and the result is printed in the --output format")
	pf.StringVar(&g.stack, "stack", "", "the storecrypt stack's name: its outputs say what is in scope and where the key and the document are (default: the one stack in the account and region that exports storecrypt's mark, whatever its name)")
	pf.StringVar(&g.endpointURL, "endpoint-url", "", "send every AWS request to this URL instead of the service's own (an emulator, a VPC endpoint)")
	pf.BoolVar(&g.debug, "debug", false, "log every AWS request and response on stderr, with signatures, session tokens and secrets redacted")
	for _, c := range commands {
		root.AddCommand(c.cobra(g, stdin, stdout, stderr, newClients))
	}
	return root
}

func (c command) cobra(g *globals, stdin io.Reader, stdout, stderr io.Writer, newClients NewClients) *cobra.Command {
	outputs := append([]string{"table", "json", "text"}, c.outputs...)
	cc := &cobra.Command{Use: c.name, Short: c.summary, Long: c.summary + ".", Args: noArgs}
	if c.long != "" {
		cc.Long = c.long
	}
	if c.args != "" {
		cc.Use, cc.Args = c.name+" "+c.args, cobra.ArbitraryArgs
	}
	check := c.define(cc.Flags())
	cc.RunE = func(cmd *cobra.Command, args []string) error {
		output, err := g.outputFormat(cmd.Flags().Changed("output"), outputs)
		if err != nil {
			return &ranError{err}
		}
		query, err := compileQuery(g.query, output)
		if err != nil {
			return &ranError{err}
		}
		e := &env{out: stdout, errOut: stderr, output: output, stack: g.stack, stdin: stdin, poll: 2 * time.Second, live: isTerminal(stderr), ask: stdinIsTerminal(stdin), args: args}
		var printed bytes.Buffer
		if query != nil {
			// The command prints its JSON for the query to select from.
			e.out, e.output = &printed, "json"
		}
		run, err := check(e)
		if err != nil {
			return &ranError{err}
		}
		if c.aws {
			clients, err := newClients(cmd.Context(), awscfg.Options{Region: g.region, Profile: g.profile, EndpointURL: g.endpointURL, Debug: g.debug,
				Stdin: stdin, Stderr: stderr, Terminal: e.ask})
			if err != nil {
				return &ranError{err}
			}
			e.Clients = clients
		}
		err = run(cmd.Context(), e)
		// What a command prints before it fails (verify's blocked verdict) is shown too.
		if query != nil && printed.Len() > 0 {
			if qerr := printQuery(stdout, output, query, printed.Bytes()); qerr != nil && err == nil {
				err = qerr
			}
		}
		if err != nil {
			return &ranError{err}
		}
		return nil
	}
	return cc
}

// outputFormat is --output when given, else the aws CLI's default for the profile, if it
// is one of the command's outputs.
func (g *globals) outputFormat(given bool, outputs []string) (string, error) {
	output, from := g.output, ""
	if !given {
		var err error
		if output, from, err = defaultOutput(g.profile); err != nil {
			return "", err
		}
	}
	if !slices.Contains(outputs, output) {
		if from != "" {
			from = " (from " + from + "; give --output to override it)"
		}
		return "", usageErr(fmt.Sprintf("--output %q%s: want one of %s", output, from, strings.Join(outputs, ", ")))
	}
	return output, nil
}

// stdinIsTerminal is isTerminal for stdin; tests stand in a terminal for it.
var stdinIsTerminal = func(r io.Reader) bool { return isTerminal(r) }

// isTerminal says whether f (stdin, stdout or stderr) is a terminal. A character device is
// not enough: /dev/null is one, and a prompt read from it would wait for nobody.
func isTerminal(f any) bool {
	file, ok := f.(*os.File)
	return ok && term.IsTerminal(int(file.Fd()))
}

func noArgs(_ *cobra.Command, args []string) error {
	if len(args) > 0 {
		return usageErr(fmt.Sprintf("unexpected argument %q", args[0]))
	}
	return nil
}

// Main runs the CLI and returns the exit status.
func Main(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer, newClients NewClients) int {
	root := newRoot(stdin, stdout, stderr, newClients)
	if len(args) == 0 {
		// As the aws CLI: no command is a usage error, not a request for help.
		fmt.Fprint(stderr, root.UsageString())
		return int(contract.CLIExitUsage)
	}
	root.SetArgs(args)
	cmd, err := root.ExecuteContextC(ctx)
	if err == nil {
		return int(contract.CLIExitOK)
	}
	var usage *UsageError
	var coded *codeError
	var ran *ranError
	msg := strings.TrimSpace(err.Error())
	switch {
	case errors.As(err, &usage) || !errors.As(err, &ran):
		// What cobra returns unmarked is its own parsing's: an unknown command or flag.
		fmt.Fprintf(stderr, "%s: %s\nRun '%s --help' for usage.\n", cmd.CommandPath(), msg, cmd.CommandPath())
		return int(contract.CLIExitUsage)
	case errors.As(err, &coded):
		fmt.Fprintf(stderr, "%s: %s\n", cmd.CommandPath(), msg)
		return int(coded.code)
	default:
		fmt.Fprintf(stderr, "%s: %s\n", cmd.CommandPath(), msg)
		return int(contract.CLIExitError)
	}
}

// buildInfo is the CLI's version as the Go toolchain recorded it.
type buildInfo struct {
	Version  string `json:"version"`
	Revision string `json:"revision,omitempty"`
	Modified bool   `json:"modified,omitempty"`
	Go       string `json:"go"`
}

// Version is set at build time by make build and make release (-ldflags -X, from git
// describe); without it, the module version the Go toolchain recorded: the tag for
// `go install …@v1.2.3`, "(devel)" for a build in a checkout.
var Version string

func readBuildInfo() buildInfo {
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
	if Version != "" {
		v.Version = Version
	}
	return v
}

// String is the version line of `storecrypt version` and `storecrypt --version`.
func (v buildInfo) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "storecrypt %s", v.Version)
	if v.Revision != "" {
		fmt.Fprintf(&b, " (commit %s", v.Revision)
		if v.Modified {
			b.WriteString(", modified")
		}
		b.WriteString(")")
	}
	fmt.Fprintf(&b, " %s", v.Go)
	return b.String()
}

func printVersion(_ context.Context, e *env) error {
	v := readBuildInfo()
	switch e.output {
	case "json":
		return writeJSON(e.out, v)
	case "text":
		// A name and a value a line, the json's names: one record has no columns to head,
		// and a script still takes a field with awk '$1=="revision" {print $2}'.
		return writeText(e.out, [][]string{{"version", v.Version}, {"revision", v.Revision}, {"modified", strconv.FormatBool(v.Modified)}, {"go", v.Go}})
	}
	_, err := fmt.Fprintln(e.out, v)
	return err
}
