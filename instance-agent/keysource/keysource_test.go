package keysource

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"maps"
	"net"
	"slices"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kms"
	"github.com/aws/smithy-go"

	"github.com/storecrypt/storecrypt/instance-agent/keytoken"
	"github.com/storecrypt/storecrypt/instance-agent/s3object"
	"github.com/storecrypt/storecrypt/internal/contract"
)

const keyARN = "arn:aws:kms:us-east-1:111122223333:key/1234abcd-12ab-34cd-56ef-1234567890ab"

// fakeKMS has one func per method; an unset one fails the test when called.
type fakeKMS struct {
	t        *testing.T
	generate func(*kms.GenerateDataKeyInput) (*kms.GenerateDataKeyOutput, error)
	decrypt  func(*kms.DecryptInput) (*kms.DecryptOutput, error)
}

var _ KMS = (*fakeKMS)(nil)

func (f *fakeKMS) GenerateDataKey(_ context.Context, in *kms.GenerateDataKeyInput, _ ...func(*kms.Options)) (*kms.GenerateDataKeyOutput, error) {
	if f.generate == nil {
		f.t.Fatal("unexpected GenerateDataKey")
	}
	return f.generate(in)
}

func (f *fakeKMS) Decrypt(_ context.Context, in *kms.DecryptInput, _ ...func(*kms.Options)) (*kms.DecryptOutput, error) {
	if f.decrypt == nil {
		f.t.Fatal("unexpected Decrypt")
	}
	return f.decrypt(in)
}

// fakeS3 holds each object's versions, oldest first, named v1, v2, ... as in a versioned
// bucket; an unversioned bucket answers every read with version "null".
// Every bucket is the instance's account's but those in others, which S3 refuses to a
// GET naming another owner (403 AccessDenied, x-amz-expected-bucket-owner).
type fakeS3 struct {
	objects     map[string][]string
	unversioned bool
	others      map[string]string // bucket: its account, when not the instance's
}

func (f fakeS3) Get(_ context.Context, bucket, key, v, owner string, _ int64) (s3object.Object, error) {
	if actual, ok := f.others[bucket]; ok && owner != "" && owner != actual {
		return s3object.Object{}, &smithy.GenericAPIError{Code: "AccessDenied", Message: "Access Denied"}
	}
	versions := f.objects[bucket+"/"+key]
	if len(versions) == 0 {
		return s3object.Object{}, &smithy.GenericAPIError{Code: "NoSuchKey", Message: "The specified key does not exist."}
	}
	i := len(versions) - 1
	if v != "" {
		if _, err := fmt.Sscanf(v, "v%d", &i); err != nil || i < 1 || i > len(versions) || f.unversioned {
			return s3object.Object{}, &smithy.GenericAPIError{Code: "NoSuchVersion", Message: "The specified version does not exist."}
		}
		i--
	}
	version := fmt.Sprintf("v%d", i+1)
	if f.unversioned {
		version = "null"
	}
	return s3object.Object{Body: []byte(versions[i]), VersionID: version}, nil
}

const instanceARN = "arn:aws:ec2:us-east-1:111122223333:instance/i-0abc"

// account is the instance's account, as its identity document gives it.
func account(context.Context) (string, error) { return "111122223333", nil }

// TestKMSDataKeyBindsInstanceAndVolume: a volume's key is made and recovered under the
// context that names the instance by ARN (which the key policy ties to the caller's own
// ec2:SourceInstanceARN) and the volume.
func TestKMSDataKeyBindsInstanceAndVolume(t *testing.T) {
	v := Volume{InstanceARN: instanceARN, UUID: "uuid-1"}
	want := map[string]string{contract.ContextInstanceARN: instanceARN, contract.ContextVolume: "uuid-1"}
	var gotGen, gotDec map[string]string
	k := &fakeKMS{t: t,
		generate: func(in *kms.GenerateDataKeyInput) (*kms.GenerateDataKeyOutput, error) {
			gotGen = in.EncryptionContext
			return &kms.GenerateDataKeyOutput{Plaintext: []byte("plaintext-key-32-bytes-long-xxxx"), CiphertextBlob: []byte("blob"), KeyId: aws.String(keyARN)}, nil
		},
		decrypt: func(in *kms.DecryptInput) (*kms.DecryptOutput, error) {
			gotDec = in.EncryptionContext
			if string(in.CiphertextBlob) != "blob" || aws.ToString(in.KeyId) != keyARN {
				t.Errorf("decrypt got blob %q key %q, want blob %q key %q", in.CiphertextBlob, aws.ToString(in.KeyId), "blob", keyARN)
			}
			return &kms.DecryptOutput{Plaintext: []byte("plaintext-key-32-bytes-long-xxxx")}, nil
		},
	}
	s := Sources{KMS: k}
	o := contract.AgentOptions{KeySource: contract.KeySourceKMSDataKey, KMSKeyID: "alias/storecrypt"}
	key, err := s.New(context.Background(), o, v)
	if err != nil {
		t.Fatal(err)
	}
	if !key.FullEntropy || key.Token.KeyID != keyARN || string(key.Token.Ciphertext) != "blob" || !slices.Equal(key.Token.ContextKeys, contract.ContextKeys) {
		t.Errorf("got token %+v, want key %s, ciphertext blob, context keys %v", key.Token, keyARN, contract.ContextKeys)
	}
	if !maps.Equal(gotGen, want) {
		t.Errorf("GenerateDataKey context %v, want %v", gotGen, want)
	}
	parsed, err := keytoken.Parse(key.Token.JSON())
	if err != nil {
		t.Fatal(err)
	}
	again, err := s.Recover(context.Background(), parsed, v)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(again.Secret, key.Secret) {
		t.Errorf("recovered a different key")
	}
	if !maps.Equal(gotDec, want) {
		t.Errorf("Decrypt context %v, want %v", gotDec, want)
	}
	again.Zero()
	if again.Secret != nil {
		t.Error("Zero left the secret")
	}
}

func TestS3KMSStripsOneNewline(t *testing.T) {
	for _, tc := range []struct {
		stored, want string
		wantErr      bool
	}{
		{"hunter2\n", "hunter2", false},
		{"hunter2", "hunter2", false},
		{"hunter2\n\n", "", true}, // two lines: echo never writes that
		{"\n", "", true},
	} {
		k := &fakeKMS{t: t, decrypt: func(in *kms.DecryptInput) (*kms.DecryptOutput, error) {
			if string(in.CiphertextBlob) != "ciphertext" || in.EncryptionContext != nil {
				t.Errorf("decrypt got %q with context %v", in.CiphertextBlob, in.EncryptionContext)
			}
			return &kms.DecryptOutput{Plaintext: []byte(tc.stored), KeyId: aws.String(keyARN)}, nil
		}}
		s := Sources{KMS: k, S3: fakeS3{objects: map[string][]string{"bucket/seed": {"ciphertext"}}}, Owner: account}
		key, err := s.New(context.Background(), contract.AgentOptions{KeySource: contract.KeySourceS3KMS, Secret: "s3://bucket/seed"}, Volume{})
		if tc.wantErr {
			var u *UnavailableError
			if !errors.As(err, &u) {
				t.Errorf("%q: got %v, want an UnavailableError", tc.stored, err)
			}
			continue
		}
		if err != nil || string(key.Secret) != tc.want || key.FullEntropy || key.Token.Secret != "s3://bucket/seed" || key.Token.KeyID != keyARN {
			t.Errorf("%q: got %q %+v %v, want %q", tc.stored, key.Secret, key.Token, err, tc.want)
		}
	}
}

func TestUnavailableSaysTheFix(t *testing.T) {
	for _, tc := range []struct {
		err  error
		want string
	}{
		{&smithy.GenericAPIError{Code: "AccessDeniedException"}, "key user"},
		{&smithy.GenericAPIError{Code: "DisabledException"}, "enable the KMS key"},
		{&smithy.GenericAPIError{Code: "NotFoundException"}, "does not exist"},
		{&smithy.GenericAPIError{Code: "NoSuchKey"}, "put-secret"},
		{&net.OpError{Op: "dial", Err: errors.New("connection refused")}, "unreachable"},
	} {
		k := &fakeKMS{t: t, generate: func(*kms.GenerateDataKeyInput) (*kms.GenerateDataKeyOutput, error) { return nil, tc.err }}
		_, err := Sources{KMS: k}.New(context.Background(), contract.AgentOptions{KeySource: contract.KeySourceKMSDataKey, KMSKeyID: keyARN}, Volume{})
		var u *UnavailableError
		if !errors.As(err, &u) || !strings.Contains(u.Fix, tc.want) || !errors.Is(err, tc.err) {
			t.Errorf("%v: got %v, want a fix saying %q", tc.err, err, tc.want)
		}
	}
}

// TestMissingSecretMayBeAccessDenied: S3 answers 403 for a missing object when the
// caller may not list the bucket, so the fix names both causes.
func TestMissingSecretMayBeAccessDenied(t *testing.T) {
	denied := &smithy.GenericAPIError{Code: "AccessDenied", Message: "Access Denied"}
	_, err := Sources{S3: deniedS3{denied}, Owner: account}.New(context.Background(), contract.AgentOptions{KeySource: contract.KeySourceS3KMS, Secret: "s3://bucket/seed"}, Volume{})
	var u *UnavailableError
	if !errors.As(err, &u) || !strings.Contains(u.Fix, "does not exist") || !strings.Contains(u.Fix, "may not s3:GetObject") || !errors.Is(err, denied) {
		t.Errorf("got %v, want a fix naming a missing object and a missing permission", err)
	}
}

type deniedS3 struct{ err error }

func (d deniedS3) Get(context.Context, string, string, string, string, int64) (s3object.Object, error) {
	return s3object.Object{}, d.err
}

func TestEphemeral(t *testing.T) {
	s := Sources{Rand: bytes.NewReader(bytes.Repeat([]byte{7}, 64))}
	key, err := s.New(context.Background(), contract.AgentOptions{KeySource: contract.KeySourceEphemeral}, Volume{})
	if err != nil || len(key.Secret) != 64 || !key.FullEntropy {
		t.Fatalf("got %d bytes, %v", len(key.Secret), err)
	}
	if _, err := s.Recover(context.Background(), key.Token, Volume{}); !errors.Is(err, keytoken.ErrEphemeral) {
		t.Errorf("recover: got %v, want ErrEphemeral", err)
	}
}

// TestS3KMSReadsTheVersionItWasMadeWith: put-secret --force writes a new version of the
// secret; volumes made with the old one keep opening, because their token names it.
func TestS3KMSReadsTheVersionItWasMadeWith(t *testing.T) {
	k := &fakeKMS{t: t, decrypt: func(in *kms.DecryptInput) (*kms.DecryptOutput, error) {
		return &kms.DecryptOutput{Plaintext: []byte("pass of " + string(in.CiphertextBlob)), KeyId: aws.String(keyARN)}, nil
	}}
	for _, tc := range []struct {
		name        string
		unversioned bool
		token       func(keytoken.Token) keytoken.Token
		want        string
		pinned      string
	}{
		{"versioned bucket: the token's version", false, func(t keytoken.Token) keytoken.Token { return t }, "pass of first", "v1"},
		{"a token without a version: the current object", false, func(t keytoken.Token) keytoken.Token { t.SecretVersion = ""; return t }, "pass of second", "v1"},
		{"unversioned bucket: nothing to pin", true, func(t keytoken.Token) keytoken.Token { return t }, "pass of second", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			store := fakeS3{objects: map[string][]string{"bucket/seed": {"first"}}, unversioned: tc.unversioned}
			s := Sources{KMS: k, S3: store, Owner: account}
			key, err := s.New(context.Background(), contract.AgentOptions{KeySource: contract.KeySourceS3KMS, Secret: "s3://bucket/seed"}, Volume{})
			if err != nil {
				t.Fatal(err)
			}
			if key.Token.SecretVersion != tc.pinned {
				t.Errorf("token pins version %q, want %q", key.Token.SecretVersion, tc.pinned)
			}
			parsed, err := keytoken.Parse(key.Token.JSON())
			if err != nil {
				t.Fatal(err)
			}
			store.objects["bucket/seed"] = append(store.objects["bucket/seed"], "second") // put-secret --force
			again, err := s.Recover(context.Background(), tc.token(parsed), Volume{})
			if err != nil {
				t.Fatal(err)
			}
			if string(again.Secret) != tc.want {
				t.Errorf("recovered %q, want %q", again.Secret, tc.want)
			}
		})
	}
}

// kmsModel decrypts as KMS does a symmetric key's ciphertext, which names the key that
// made it ("key:<arn>:<plaintext>" here): with a KeyId, "the Decrypt operation succeeds
// only if the specified KMS key was used to encrypt the ciphertext" (Decrypt, KeyId;
// IncorrectKeyException otherwise).
func kmsModel(t *testing.T) *fakeKMS {
	return &fakeKMS{t: t, decrypt: func(in *kms.DecryptInput) (*kms.DecryptOutput, error) {
		_, rest, _ := strings.Cut(string(in.CiphertextBlob), "key:")
		arn, plain, _ := strings.Cut(rest, "|")
		if in.KeyId != nil && *in.KeyId != arn {
			return nil, &smithy.GenericAPIError{Code: "IncorrectKeyException", Message: "The key ID in the request does not identify a CMK that can perform this operation."}
		}
		return &kms.DecryptOutput{Plaintext: []byte(plain), KeyId: aws.String(arn)}, nil
	}}
}

// TestS3KMSTrustsOnlyItsKeyAndAccount: the secret is decrypted only with the configured
// key (a new volume) or the token's (an existing one), and read only from a bucket of the
// instance's account; a passphrase planted under another key, or in a bucket of the same
// name elsewhere, is refused.
func TestS3KMSTrustsOnlyItsKeyAndAccount(t *testing.T) {
	const otherKey = "arn:aws:kms:us-east-1:444455556666:key/99999999-2222-4333-8444-555555555555"
	ours, planted := "key:"+keyARN+"|our passphrase", "key:"+otherKey+"|a passphrase the planter knows"
	for _, tc := range []struct {
		name    string
		store   fakeS3
		recover bool // the token's key, not the configured one
		wantErr string
	}{
		{"our key", fakeS3{objects: map[string][]string{"bucket/seed": {ours}}}, false, ""},
		{"planted under another key", fakeS3{objects: map[string][]string{"bucket/seed": {planted}}}, false, "IncorrectKeyException"},
		{"planted after the volume was made", fakeS3{objects: map[string][]string{"bucket/seed": {planted}}, unversioned: true}, true, "IncorrectKeyException"},
		{"a bucket of another account", fakeS3{objects: map[string][]string{"bucket/seed": {ours}}, others: map[string]string{"bucket": "444455556666"}}, false, "AccessDenied"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := Sources{KMS: kmsModel(t), S3: tc.store, Owner: account}
			var key Key
			var err error
			if tc.recover {
				key, err = s.Recover(context.Background(), keytoken.Token{KeySource: contract.KeySourceS3KMS, KeyID: keyARN, Secret: "s3://bucket/seed"}, Volume{})
			} else {
				key, err = s.New(context.Background(), contract.AgentOptions{KeySource: contract.KeySourceS3KMS, KMSKeyID: keyARN, Secret: "s3://bucket/seed"}, Volume{})
			}
			var u *UnavailableError
			switch {
			case tc.wantErr == "" && (err != nil || string(key.Secret) != "our passphrase"):
				t.Errorf("got %q, %v; want our passphrase", key.Secret, err)
			case tc.wantErr != "" && (!errors.As(err, &u) || !strings.Contains(err.Error(), tc.wantErr)):
				t.Errorf("got %q, %v; want an UnavailableError with %s", key.Secret, err, tc.wantErr)
			}
		})
	}
}
