// Package awscfg loads the AWS configuration for the operator CLI the way the aws CLI
// does: --region, --profile, --endpoint-url, --debug, the MFA prompt of a role profile,
// and one actionable line for each way the credentials can fail. It is apart from opcli
// because none of it depends on the commands, and its tests need real SDK failures (temp
// config files, httptest endpoints) rather than the fake AWS the commands are tested on.
package awscfg

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/credentials/stscreds"
	"github.com/aws/smithy-go"
	"github.com/aws/smithy-go/logging"
)

// Options are the aws CLI's global flags, and the streams the MFA prompt uses.
type Options struct {
	Region, Profile string
	// EndpointURL is --endpoint-url: every service's base endpoint.
	EndpointURL string
	// Debug is --debug: the SDK's request and response log on Stderr, secrets redacted.
	Debug bool
	// Stdin is read for the MFA code, and only when Terminal says a person is there.
	Stdin    io.Reader
	Stderr   io.Writer
	Terminal bool
}

// HeadersOnly is the log mode of a client whose bodies carry secrets in a form the
// redaction cannot see (S3 objects are opaque bytes).
const HeadersOnly = aws.LogRequest | aws.LogResponse | aws.LogRetries

// Load resolves the region and the credentials, and retrieves the credentials once, so
// that a failure is reported before any command starts, in one line saying what to do.
func Load(ctx context.Context, o Options) (aws.Config, error) {
	opts := []func(*config.LoadOptions) error{
		config.WithLogger(logging.Nop{}),
		config.WithAssumeRoleCredentialOptions(func(a *stscreds.AssumeRoleOptions) { a.TokenProvider = o.mfaCode }),
	}
	if o.Debug {
		opts = append(opts, config.WithLogger(redactingLogger{o.Stderr}),
			config.WithClientLogMode(aws.LogRequestWithBody|aws.LogResponseWithBody|aws.LogRetries))
	}
	if o.Region != "" {
		opts = append(opts, config.WithRegion(o.Region))
	}
	if o.Profile != "" {
		opts = append(opts, config.WithSharedConfigProfile(o.Profile))
	}
	if o.EndpointURL != "" {
		opts = append(opts, config.WithBaseEndpoint(o.EndpointURL))
	}
	cfg, err := config.LoadDefaultConfig(ctx, opts...)
	if err != nil {
		return aws.Config{}, explain(ctx, o, err)
	}
	if cfg.Region == "" {
		return aws.Config{}, errors.New("no AWS region: pass --region, or set AWS_REGION, or set region in your profile (aws configure)")
	}
	if _, err := cfg.Credentials.Retrieve(ctx); err != nil {
		return aws.Config{}, explain(ctx, o, err)
	}
	return cfg, nil
}

// mfaCode asks for the code of the profile's mfa_serial, as the aws CLI does. Without a
// terminal there is nobody to ask: a pipe on stdin is put-secret's passphrase, not a code.
func (o Options) mfaCode() (string, error) {
	if !o.Terminal || o.Stdin == nil {
		return "", &MFAError{}
	}
	fmt.Fprintf(o.Stderr, "Enter MFA code for %s: ", o.mfaSerial())
	code, err := readLine(o.Stdin)
	if err != nil {
		return "", &MFAError{Read: err}
	}
	return code, nil
}

// mfaSerial names the device of the profile being loaded, for the prompt.
func (o Options) mfaSerial() string {
	if sc := sharedProfile(context.Background(), profileName(o)); sc.MFASerial != "" {
		return sc.MFASerial
	}
	return "your MFA device"
}

// readLine reads one line a byte at a time: a buffered read would swallow what follows
// the code on stdin (put-secret's passphrase, typed next).
func readLine(r io.Reader) (string, error) {
	var line []byte
	b := make([]byte, 1)
	for {
		n, err := r.Read(b)
		switch {
		case n == 1 && b[0] == '\n':
			return strings.TrimSpace(string(line)), nil
		case n == 1:
			line = append(line, b[0])
		case err != nil:
			return "", err
		}
	}
}

// MFAError is an MFA code wanted where nobody can give it: stdin is not a terminal, or
// it ended before a line (</dev/null passes for a terminal: it is a character device).
type MFAError struct{ Read error }

func (e *MFAError) Error() string {
	why := "stdin is not a terminal"
	if e.Read != nil {
		why = fmt.Sprintf("no code could be read from stdin (%v)", e.Read)
	}
	return "the profile's role needs an MFA code (mfa_serial) and " + why + ": run the command on a terminal to be prompted, or use credentials from `aws sts get-session-token --serial-number ARN --token-code CODE` (environment variables), or a profile without mfa_serial"
}

// profileName is the profile the SDK loads: --profile, else AWS_PROFILE, else default.
func profileName(o Options) string {
	if o.Profile != "" {
		return o.Profile
	}
	if p := os.Getenv("AWS_PROFILE"); p != "" {
		return p
	}
	return "default"
}

// explain turns a failure to load or retrieve credentials into what to do about it.
func explain(ctx context.Context, o Options, err error) error {
	var (
		mfa      *MFAError
		notExist config.SharedConfigProfileNotExistError
		op       *smithy.OperationError
		api      smithy.APIError
	)
	profile := profileName(o)
	switch {
	case errors.As(err, &mfa):
		return mfa // without the SDK's "failed to refresh cached credentials"
	case errors.As(err, &notExist):
		return fmt.Errorf("no AWS profile %q in %s: check the name, or run `aws configure --profile %s`", notExist.Profile, strings.Join(sharedFiles(), " or "), notExist.Profile)
	case isSSO(sharedProfile(ctx, profile)):
		return fmt.Errorf("the SSO session of profile %s has expired or was never started: run `aws sso login --profile %s` (%w)", profile, profile, err)
	case errors.As(err, &op) && op.Service() == "STS" && op.Operation() == "AssumeRole" && errors.As(err, &api):
		return fmt.Errorf("profile %s could not assume role %s (%s): the role's trust policy must allow your identity, and if it asks for MFA, mfa_serial must be set and the code right", profile, roleARN(ctx, profile), api.ErrorCode())
	}
	return errors.New("no AWS credentials: run `aws configure` or `aws sso login`, pass --profile, or set AWS_PROFILE; on an instance, attach a role")
}

// isSSO says the profile gets its credentials from IAM Identity Center, whose failures
// all want `aws sso login`. The profile says it, not the error: the SDK types the failure
// (ssocreds.InvalidTokenError) only for a legacy profile (sso_start_url in it); one with
// an sso_session fails with an untyped error when its cached token is missing or expired.
func isSSO(sc config.SharedConfig) bool {
	return sc.SSOSessionName != "" || sc.SSOStartURL != ""
}

// roleARN is the role_arn of the profile, for the message.
func roleARN(ctx context.Context, profile string) string {
	if sc := sharedProfile(ctx, profile); sc.RoleARN != "" {
		return sc.RoleARN
	}
	return "(its role_arn)"
}

// sharedProfile reads a profile from the files the SDK read it from, for a message; the
// SDK has already reported any error reading them.
func sharedProfile(ctx context.Context, profile string) config.SharedConfig {
	files := sharedFiles()
	sc, _ := config.LoadSharedConfigProfile(ctx, profile, func(o *config.LoadSharedConfigOptions) {
		o.ConfigFiles, o.CredentialsFiles = files[:1], files[1:]
	})
	return sc
}

// sharedFiles are where the SDK looks for profiles, as the aws CLI: the files the
// environment names, else ~/.aws/config and ~/.aws/credentials.
func sharedFiles() []string {
	conf, creds := os.Getenv("AWS_CONFIG_FILE"), os.Getenv("AWS_SHARED_CREDENTIALS_FILE")
	if conf == "" {
		conf = config.DefaultSharedConfigFilename()
	}
	if creds == "" {
		creds = config.DefaultSharedCredentialsFilename()
	}
	return []string{conf, creds}
}
