package opcli_test

import (
	"bytes"
	"context"
	"encoding/base64"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/storecrypt/storecrypt/internal/opcli"
)

// awsHome gives the test an empty AWS environment: a temp HOME with config as its
// ~/.aws/config, no credentials from the environment, and no IMDS to wait on.
func awsHome(t *testing.T, config string) {
	t.Helper()
	home := t.TempDir()
	for _, k := range []string{"AWS_REGION", "AWS_DEFAULT_REGION", "AWS_PROFILE", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN",
		"AWS_WEB_IDENTITY_TOKEN_FILE", "AWS_CONTAINER_CREDENTIALS_FULL_URI", "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI", "AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_STS"} {
		t.Setenv(k, "")
		os.Unsetenv(k)
	}
	t.Setenv("HOME", home)
	t.Setenv("AWS_CONFIG_FILE", filepath.Join(home, "config"))
	t.Setenv("AWS_SHARED_CREDENTIALS_FILE", filepath.Join(home, "credentials"))
	t.Setenv("AWS_EC2_METADATA_DISABLED", "true")
	if err := os.WriteFile(filepath.Join(home, "config"), []byte(config), 0o600); err != nil {
		t.Fatal(err)
	}
}

const (
	roleARN   = "arn:aws:iam::111122223333:role/ops"
	mfaSerial = "arn:aws:iam::111122223333:mfa/alice"
	// sessionToken is what the fake STS hands out; --debug must never print it.
	sessionToken = "FwoGZXIvYXdzEXAMPLESESSIONTOKEN"
)

// profiles are a source profile with static keys, a role assumed from it, and the same
// role behind MFA.
var profiles = fmt.Sprintf(`[profile base]
aws_access_key_id = AKIAIOSFODNN7EXAMPLE
aws_secret_access_key = wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY
region = us-east-1

[profile ops]
role_arn = %[1]s
source_profile = base
region = us-east-1

[profile ops-mfa]
role_arn = %[1]s
source_profile = base
mfa_serial = %[2]s
region = us-east-1

[profile sso]
sso_start_url = https://example.awsapps.com/start
sso_region = us-east-1
sso_account_id = 111122223333
sso_role_name = ops
region = us-east-1

[profile sso-session]
sso_session = corp
sso_account_id = 111122223333
sso_role_name = ops
region = us-east-1

[sso-session corp]
sso_start_url = https://example.awsapps.com/start
sso_region = us-east-1
`, roleARN, mfaSerial)

// fakeAWS answers the few operations these tests reach, in each service's wire format:
// STS AssumeRole (query protocol, XML answer; refused unless allow), KMS Encrypt (JSON),
// S3 PutObject (REST). It records the AssumeRole form for the test to check.
func fakeAWS(t *testing.T, allow bool) (*httptest.Server, *http.Request) {
	t.Helper()
	assumed := &http.Request{}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		switch {
		case r.Method == http.MethodPost && strings.Contains(string(body), "Action=AssumeRole"):
			r.Body = io.NopCloser(bytes.NewReader(body))
			if err := r.ParseForm(); err != nil {
				t.Errorf("parsing AssumeRole: %v", err)
			}
			*assumed = *r
			w.Header().Set("Content-Type", "text/xml")
			if !allow {
				w.WriteHeader(http.StatusForbidden)
				fmt.Fprintf(w, `<ErrorResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/"><Error><Type>Sender</Type><Code>AccessDenied</Code><Message>User: arn:aws:iam::111122223333:user/alice is not authorized to perform: sts:AssumeRole on resource: %s</Message></Error><RequestId>1</RequestId></ErrorResponse>`, roleARN)
				return
			}
			fmt.Fprintf(w, `<AssumeRoleResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/"><AssumeRoleResult><Credentials><AccessKeyId>ASIAEXAMPLE</AccessKeyId><SecretAccessKey>assumedSecretKeyEXAMPLE</SecretAccessKey><SessionToken>%s</SessionToken><Expiration>2099-01-01T00:00:00Z</Expiration></Credentials><AssumedRoleUser><AssumedRoleId>AROAEXAMPLE:s</AssumedRoleId><Arn>arn:aws:sts::111122223333:assumed-role/ops/s</Arn></AssumedRoleUser></AssumeRoleResult><ResponseMetadata><RequestId>2</RequestId></ResponseMetadata></AssumeRoleResponse>`, sessionToken)
		case r.Header.Get("X-Amz-Target") == "TrentService.Encrypt":
			w.Header().Set("Content-Type", "application/x-amz-json-1.1")
			fmt.Fprintf(w, `{"CiphertextBlob":%q,"KeyId":"arn:aws:kms:us-east-1:111122223333:key/k"}`, base64.StdEncoding.EncodeToString([]byte("wrapped")))
		case r.Method == http.MethodPut:
			w.Header().Set("ETag", `"e"`)
			w.Header().Set("x-amz-version-id", "v1")
		default:
			t.Errorf("unexpected request %s %s %s", r.Method, r.URL, r.Header.Get("X-Amz-Target"))
			w.WriteHeader(http.StatusBadRequest)
		}
	}))
	t.Cleanup(srv.Close)
	return srv, assumed
}

// TestCredentialFailures: each way the credentials fail, produced for real by the SDK,
// gets its own line saying what to do, and exit 1.
func TestCredentialFailures(t *testing.T) {
	for _, tc := range []struct {
		name, config string
		args         []string
		want         []string
		terminal     bool
	}{
		{"no region", "", []string{"status"}, []string{"no AWS region: pass --region"}, false},
		{"no credentials", "", []string{"status", "--region", "us-east-1"}, []string{"no AWS credentials: run `aws configure`"}, false},
		{"profile not found", profiles, []string{"status", "--profile", "nosuch"}, []string{`no AWS profile "nosuch" in `, "/config or ", "/credentials"}, false},
		{"sso token missing", profiles, []string{"status", "--profile", "sso"}, []string{"run `aws sso login --profile sso`"}, false},
		{"sso-session token missing", profiles, []string{"status", "--profile", "sso-session"}, []string{"run `aws sso login --profile sso-session`"}, false},
		{"assume role refused", profiles, []string{"status", "--profile", "ops"}, []string{"could not assume role " + roleARN + " (AccessDenied)", "trust policy", "MFA"}, false},
		{"mfa without a terminal", profiles, []string{"status", "--profile", "ops-mfa"}, []string{"status: the profile's role needs an MFA code", "stdin is not a terminal", "run the command on a terminal", "aws sts get-session-token"}, false},
		{"mfa code not typed", profiles, []string{"status", "--profile", "ops-mfa"}, []string{"Enter MFA code for " + mfaSerial + ": storecrypt status: the profile's role needs an MFA code", "no code could be read from stdin (EOF)", "aws sts get-session-token"}, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			awsHome(t, tc.config)
			srv, _ := fakeAWS(t, false)
			t.Setenv("AWS_ENDPOINT_URL_STS", srv.URL)
			if tc.terminal {
				opcli.StdinIsTerminal(t)
			}
			var stdout, stderr bytes.Buffer
			code := opcli.Main(context.Background(), tc.args, strings.NewReader(""), &stdout, &stderr, opcli.AWSClients)
			lines := strings.Split(strings.TrimSpace(stderr.String()), "\n")
			if code != 1 || len(lines) != 1 || stdout.Len() != 0 {
				t.Errorf("got exit %d, stderr %q, stdout %q; want exit 1 and one line on stderr", code, stderr.String(), stdout.String())
			}
			for _, w := range tc.want {
				if !strings.Contains(stderr.String(), w) {
					t.Errorf("got %q, want it to say %q", stderr.String(), w)
				}
			}
		})
	}
}

// TestMFAPrompt: on a terminal, a role profile with mfa_serial prompts on stderr as the
// aws CLI does, sends the device and the code to AssumeRole, and leaves the rest of stdin
// (put-secret's passphrase) to the command.
func TestMFAPrompt(t *testing.T) {
	awsHome(t, profiles)
	srv, assumed := fakeAWS(t, true)
	opcli.StdinIsTerminal(t)
	var stdout, stderr bytes.Buffer
	code := opcli.Main(context.Background(), []string{"put-secret", "--profile", "ops-mfa", "--endpoint-url", srv.URL, "--bucket", "b", "--kms-key-id", "k", "--output", "json"},
		strings.NewReader("123456\nthe passphrase\n"), &stdout, &stderr, opcli.AWSClients)
	if code != 0 {
		t.Fatalf("got exit %d, stderr %q; want 0", code, stderr.String())
	}
	if want := "Enter MFA code for " + mfaSerial + ": "; !strings.HasPrefix(stderr.String(), want) {
		t.Errorf("got stderr %q, want the prompt %q", stderr.String(), want)
	}
	for k, want := range map[string]string{"RoleArn": roleARN, "SerialNumber": mfaSerial, "TokenCode": "123456"} {
		if got := assumed.PostForm.Get(k); got != want {
			t.Errorf("AssumeRole %s: got %q, want %q", k, got, want)
		}
	}
}

// TestDebugRedacts: --debug logs the requests, as the aws CLI's does, but never the
// passphrase put-secret sends (KMS Encrypt's Plaintext), the object it writes to S3, the
// session token, the assumed role's secret key or a request signature.
func TestDebugRedacts(t *testing.T) {
	awsHome(t, profiles)
	srv, _ := fakeAWS(t, true)
	t.Setenv("AWS_ENDPOINT_URL_STS", srv.URL)
	const pass = "correct horse battery staple"
	var stdout, stderr bytes.Buffer
	code := opcli.Main(context.Background(), []string{"put-secret", "--profile", "ops", "--endpoint-url", srv.URL, "--bucket", "b", "--kms-key-id", "k", "--debug"},
		strings.NewReader(pass+"\n"), &stdout, &stderr, opcli.AWSClients)
	if code != 0 {
		t.Fatalf("got exit %d, stderr %q; want 0", code, stderr.String())
	}
	log := stderr.String()
	for _, want := range []string{"Action=AssumeRole", "TrentService.Encrypt", "PUT /b/seed/passphrase", "Signature=REDACTED", "X-Amz-Security-Token: REDACTED"} {
		if !strings.Contains(log, want) {
			t.Errorf("--debug log lacks %q: got %s", want, log)
		}
	}
	for _, secret := range []string{pass, base64.StdEncoding.EncodeToString([]byte(pass)), sessionToken, "assumedSecretKeyEXAMPLE", "wrapped"} {
		if strings.Contains(log, secret) {
			t.Errorf("--debug log shows %q: got %s", secret, log)
		}
	}
}
