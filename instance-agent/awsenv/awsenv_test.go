package awsenv

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kms"

	"github.com/storecrypt/storecrypt/instance-agent/keysource"
	"github.com/storecrypt/storecrypt/internal/contract"
	"github.com/storecrypt/storecrypt/test/emu"
)

// onInstance makes the SDK see what it sees on an instance: IMDS (the emulator), and no
// region, configuration or credentials of the host's.
func onInstance(t *testing.T, e *emu.Emulators) {
	t.Setenv("AWS_EC2_METADATA_SERVICE_ENDPOINT", "http://"+e.IMDSAddr)
	t.Setenv("AWS_REGION", "")
	t.Setenv("AWS_DEFAULT_REGION", "")
	t.Setenv("AWS_CONFIG_FILE", "/dev/null")
	t.Setenv("AWS_SHARED_CREDENTIALS_FILE", "/dev/null")
}

// TestIdentityFromIMDS reads region, instance id and ARN from amazon-ec2-metadata-mock in
// IMDSv2-only mode, through the SDK's standard endpoint variable.
func TestIdentityFromIMDS(t *testing.T) {
	e := emu.Start(t)
	onInstance(t, e)
	env := &Env{}
	id, arn, err := env.Instance(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if id != emu.InstanceID || arn != emu.InstanceARN {
		t.Errorf("instance %q %q, want %q %q", id, arn, emu.InstanceID, emu.InstanceARN)
	}
	cfg, err := env.load(context.Background())
	if err != nil || cfg.Region != emu.Region {
		t.Errorf("region %q, %v; want %q", cfg.Region, err, emu.Region)
	}
}

// TestS3KMSThroughTheEmulators: the s3-kms source reads its secret through the agent's own
// S3 client (package s3object), with the instance's IMDS credentials, at the endpoint the
// SDK's variable names, and decrypts it with KMS.
func TestS3KMSThroughTheEmulators(t *testing.T) {
	e := emu.Start(t)
	onInstance(t, e)
	t.Setenv("AWS_ENDPOINT_URL_KMS", "http://"+e.KMSAddr)
	t.Setenv("AWS_ENDPOINT_URL_S3", "http://"+e.S3Addr)
	ctx := context.Background()
	keyARN, err := e.CreateKey(ctx)
	if err != nil {
		t.Fatal(err)
	}
	seal := func(key, text, bucket, object string) { t.Helper(); seal(t, e, key, text, bucket, object) }
	seal(keyARN, "seed passphrase\n", "secrets", "storecrypt/seed")
	sources, err := (&Env{}).Keys(ctx)
	if err != nil {
		t.Fatal(err)
	}
	key, err := sources.New(ctx, contract.AgentOptions{KeySource: contract.KeySourceS3KMS, Secret: "s3://secrets/storecrypt/seed"}, keysource.Volume{})
	if err != nil {
		t.Fatal(err)
	}
	defer key.Zero()
	if string(key.Secret) != "seed passphrase" || key.Token.SecretVersion == "" || key.Token.KeyID != keyARN {
		t.Errorf("secret %q, token %+v", key.Secret, key.Token)
	}
	// A passphrase planted under another key the role may use is not the configured
	// key's: KMS refuses it because the agent names the key (Decrypt's KeyId).
	other, err := e.CreateKey(ctx)
	if err != nil {
		t.Fatal(err)
	}
	seal(other, "a passphrase the planter knows\n", "secrets", "storecrypt/planted")
	var unavailable *keysource.UnavailableError
	if key, err := sources.New(ctx, contract.AgentOptions{KeySource: contract.KeySourceS3KMS, KMSKeyID: keyARN, Secret: "s3://secrets/storecrypt/planted"}, keysource.Volume{}); !errors.As(err, &unavailable) {
		t.Errorf("a secret under another key: got %q, %v; want an UnavailableError", key.Secret, err)
	}
	// A bucket of the same name in another account (the stack's deleted, the name taken)
	// is not read: the agent names the instance's account as the owner.
	seal(other, "a passphrase the planter knows\n", "squatted", "storecrypt/seed")
	e.OwnBucket("squatted", "444455556666")
	if key, err := sources.New(ctx, contract.AgentOptions{KeySource: contract.KeySourceS3KMS, Secret: "s3://squatted/storecrypt/seed"}, keysource.Volume{}); !errors.As(err, &unavailable) || !strings.Contains(err.Error(), "AccessDenied") {
		t.Errorf("a bucket of another account: got %q, %v; want AccessDenied", key.Secret, err)
	}
}

// seal encrypts a passphrase under key, as the seed recipe does, and stores the raw
// ciphertext at bucket/object.
func seal(t *testing.T, e *emu.Emulators, key, text, bucket, object string) {
	t.Helper()
	ctx := context.Background()
	enc, err := e.KMS.Encrypt(ctx, &kms.EncryptInput{KeyId: aws.String(key), Plaintext: []byte(text)})
	if err != nil {
		t.Fatal(err)
	}
	if err := e.PutObject(ctx, bucket, object, enc.CiphertextBlob); err != nil {
		t.Fatal(err)
	}
}

// TestCredentialsOnlyFromIMDS: whatever credentials the environment or a shared file
// offers (the SSM Agent's DHMC credentials file above all), the agent's S3 and KMS calls
// are signed with the instance profile's, which IMDS serves; a shared file's settings do
// not reach it either. Settings the environment gives that do not choose who signs
// (the region, the endpoints) still apply.
func TestCredentialsOnlyFromIMDS(t *testing.T) {
	const other = "AKIAOTHERCREDENTIALS"
	dir := t.TempDir()
	file := func(name, text string) string {
		t.Helper()
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(text), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	// What the SSM Agent writes (appconfig.DefaultEC2SharedCredentialsFilePath) under DHMC.
	dhmc := file("credentials", "[default]\naws_access_key_id = "+other+"\naws_secret_access_key = dhmc\naws_session_token = dhmc\nregion = eu-west-1\n")
	profile := file("config", "[default]\nregion = eu-west-1\ncredential_process = /bin/echo {\"Version\":1,\"AccessKeyId\":\""+other+"\",\"SecretAccessKey\":\"x\"}\n")
	for _, tc := range []struct {
		name string
		env  map[string]string
	}{
		{"the SSM Agent's DHMC credentials file", map[string]string{"AWS_SHARED_CREDENTIALS_FILE": dhmc}},
		{"keys in the environment", map[string]string{"AWS_ACCESS_KEY_ID": other, "AWS_SECRET_ACCESS_KEY": "env", "AWS_SESSION_TOKEN": "env"}},
		{"a config file's credential_process and region", map[string]string{"AWS_CONFIG_FILE": profile}},
		{"a container credentials endpoint", map[string]string{"AWS_CONTAINER_CREDENTIALS_FULL_URI": "http://203.0.113.1/credentials"}},
		{"all at once", map[string]string{"AWS_SHARED_CREDENTIALS_FILE": dhmc, "AWS_CONFIG_FILE": profile, "AWS_ACCESS_KEY_ID": other, "AWS_SECRET_ACCESS_KEY": "env"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := emu.Start(t)
			onInstance(t, e)
			t.Setenv("AWS_ENDPOINT_URL_KMS", "http://"+e.KMSAddr)
			t.Setenv("AWS_ENDPOINT_URL_S3", "http://"+e.S3Addr)
			for k, v := range tc.env {
				t.Setenv(k, v)
			}
			ctx := context.Background()
			keyARN, err := e.CreateKey(ctx)
			if err != nil {
				t.Fatal(err)
			}
			seal(t, e, keyARN, "seed passphrase\n", "secrets", "storecrypt/seed")
			e.TakeAccessKeys() // the test's own calls
			env := &Env{}
			sources, err := env.Keys(ctx)
			if err != nil {
				t.Fatal(err)
			}
			key, err := sources.New(ctx, contract.AgentOptions{KeySource: contract.KeySourceS3KMS, Secret: "s3://secrets/storecrypt/seed"}, keysource.Volume{})
			if err != nil {
				t.Fatal(err)
			}
			key.Zero()
			signed := e.TakeAccessKeys()
			for _, service := range []string{"kms", "s3"} {
				if len(signed[service]) == 0 {
					t.Errorf("%s: got no signed requests, want the agent's", service)
				}
				for _, got := range signed[service] {
					if got != emu.RoleAccessKeyID {
						t.Errorf("%s request signed by %s, want %s (the instance profile's, from IMDS)", service, got, emu.RoleAccessKeyID)
					}
				}
			}
			if cfg, err := env.load(ctx); err != nil || cfg.Region != emu.Region {
				t.Errorf("got region %q, %v; want %q from IMDS", cfg.Region, err, emu.Region)
			}
		})
	}
}

// TestSettingsKept: the environment settings a regulated user sets, which do not choose
// who signs, still reach the agent's clients: FIPS and dual-stack endpoints, a CA bundle
// (one that cannot be read fails the run rather than being skipped), the region.
func TestSettingsKept(t *testing.T) {
	for _, tc := range []struct {
		name  string
		env   map[string]string
		check func(aws.Config, error) string
	}{
		{"AWS_USE_FIPS_ENDPOINT", map[string]string{"AWS_USE_FIPS_ENDPOINT": "true"}, func(cfg aws.Config, err error) string {
			if got := kms.NewFromConfig(cfg).Options().EndpointOptions.UseFIPSEndpoint; err != nil || got != aws.FIPSEndpointStateEnabled {
				return fmt.Sprintf("got FIPS %v, %v; want enabled", got, err)
			}
			return ""
		}},
		{"AWS_USE_DUALSTACK_ENDPOINT", map[string]string{"AWS_USE_DUALSTACK_ENDPOINT": "true"}, func(cfg aws.Config, err error) string {
			if got := kms.NewFromConfig(cfg).Options().EndpointOptions.UseDualStackEndpoint; err != nil || got != aws.DualStackEndpointStateEnabled {
				return fmt.Sprintf("got dual-stack %v, %v; want enabled", got, err)
			}
			return ""
		}},
		{"AWS_CA_BUNDLE", map[string]string{"AWS_CA_BUNDLE": "/nonexistent/ca.pem"}, func(_ aws.Config, err error) string {
			if err == nil || !strings.Contains(err.Error(), "/nonexistent/ca.pem") {
				return fmt.Sprintf("got %v, want an error naming the bundle", err)
			}
			return ""
		}},
		{"AWS_REGION", map[string]string{"AWS_REGION": "eu-central-1"}, func(cfg aws.Config, err error) string {
			if err != nil || cfg.Region != "eu-central-1" {
				return fmt.Sprintf("got region %q, %v; want eu-central-1", cfg.Region, err)
			}
			return ""
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Setenv("AWS_EC2_METADATA_SERVICE_ENDPOINT", "http://127.0.0.1:1")
			t.Setenv("AWS_REGION", "us-east-1")
			t.Setenv("AWS_CONFIG_FILE", "/dev/null")
			t.Setenv("AWS_SHARED_CREDENTIALS_FILE", "/dev/null")
			for k, v := range tc.env {
				t.Setenv(k, v)
			}
			if msg := tc.check((&Env{}).load(context.Background())); msg != "" {
				t.Error(msg)
			}
		})
	}
}

func TestEndpoint(t *testing.T) {
	for _, tc := range []struct {
		env  map[string]string
		want string
	}{
		{map[string]string{}, ""},
		{map[string]string{"AWS_ENDPOINT_URL": "http://all"}, "http://all"},
		{map[string]string{"AWS_ENDPOINT_URL": "http://all", "AWS_ENDPOINT_URL_S3": "http://s3"}, "http://s3"},
		{map[string]string{"AWS_ENDPOINT_URL_S3": "http://s3", "AWS_IGNORE_CONFIGURED_ENDPOINT_URLS": "true"}, ""},
	} {
		if got := endpoint(func(k string) string { return tc.env[k] }, "S3"); got != tc.want {
			t.Errorf("%v: %q, want %q", tc.env, got, tc.want)
		}
	}
}

// TestOneIMDSSession: the identity, the credentials and the account all come through one
// IMDSv2 session: one token request for a run, not one per read.
func TestOneIMDSSession(t *testing.T) {
	e := emu.Start(t)
	onInstance(t, e)
	var mu sync.Mutex
	tokens := 0
	target, err := url.Parse("http://" + e.IMDSAddr)
	if err != nil {
		t.Fatal(err)
	}
	proxy := httputil.NewSingleHostReverseProxy(target)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodPut && r.URL.Path == "/latest/api/token" {
			mu.Lock()
			tokens++
			mu.Unlock()
		}
		proxy.ServeHTTP(w, r)
	}))
	defer srv.Close()
	t.Setenv("AWS_EC2_METADATA_SERVICE_ENDPOINT", srv.URL)
	ctx := context.Background()
	env := &Env{}
	if _, _, err := env.Instance(ctx); err != nil {
		t.Fatal(err)
	}
	src, err := env.Keys(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := src.Owner(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := env.cfg.Credentials.Retrieve(ctx); err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	defer mu.Unlock()
	if tokens != 1 {
		t.Errorf("got %d IMDSv2 token requests, want 1", tokens)
	}
}
