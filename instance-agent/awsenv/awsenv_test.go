package awsenv

import (
	"context"
	"errors"
	"strings"
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
	// seal encrypts a passphrase under key, as the seed recipe does, and stores the raw
	// ciphertext at bucket/object.
	seal := func(key, text, bucket, object string) {
		t.Helper()
		enc, err := e.KMS.Encrypt(ctx, &kms.EncryptInput{KeyId: aws.String(key), Plaintext: []byte(text)})
		if err != nil {
			t.Fatal(err)
		}
		if err := e.PutObject(ctx, bucket, object, enc.CiphertextBlob); err != nil {
			t.Fatal(err)
		}
	}
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
