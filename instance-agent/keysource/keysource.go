// Package keysource gets the passphrase of a storecrypt volume: a new one when a volume is
// formatted, and the same one again when it is opened. Three sources:
//
//   - kms-datakey: a per-volume KMS data key, bound by encryption context to the instance
//     and the volume; its ciphertext lives in the volume's own LUKS2 token, the way
//     clevis and systemd-cryptenroll keep theirs. No shared secret, no S3 object.
//   - s3-kms: the seed recipe's shared passphrase, the raw KMS ciphertext in an S3 object.
//   - ephemeral: random, never stored; the volume is scratch that a reboot discards.
//
// Every key is a []byte that the caller zeroes with Key.Zero after use. What a volume's
// header records of its key is a keytoken.Token.
package keysource

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"net"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kms"
	kmstypes "github.com/aws/aws-sdk-go-v2/service/kms/types"
	"github.com/aws/smithy-go"

	"github.com/storecrypt/storecrypt/instance-agent/keytoken"
	"github.com/storecrypt/storecrypt/instance-agent/s3object"
	"github.com/storecrypt/storecrypt/internal/contract"
)

// KMS is the part of the KMS client the key sources use.
type KMS interface {
	GenerateDataKey(ctx context.Context, in *kms.GenerateDataKeyInput, optFns ...func(*kms.Options)) (*kms.GenerateDataKeyOutput, error)
	Decrypt(ctx context.Context, in *kms.DecryptInput, optFns ...func(*kms.Options)) (*kms.DecryptOutput, error)
}

// S3 reads the s3-kms source's secret object (s3object.Client).
type S3 interface {
	Get(ctx context.Context, bucket, key, version, owner string, limit int64) (s3object.Object, error)
}

// maxSecret bounds the secret object: a KMS ciphertext of a passphrase is a few hundred
// bytes.
const maxSecret = 64 << 10

// Volume names the volume a key is for.
type Volume struct {
	InstanceARN string // the instance's own ARN, as KMS sees it in ec2:SourceInstanceARN
	UUID        string // the LUKS UUID, chosen before format so the context can name it
}

// Key is a volume passphrase and how to find it again.
type Key struct {
	Secret []byte
	Token  keytoken.Token
	// FullEntropy: the secret is random (a data key or ephemeral), so a fast PBKDF is safe.
	FullEntropy bool
}

// Zero overwrites the secret.
func (k *Key) Zero() {
	clear(k.Secret)
	k.Secret = nil
}

// UnavailableError says the key could not be had and what would fix it.
type UnavailableError struct {
	Op  string // what was attempted: "kms:Decrypt of key X"
	Err error
	Fix string
}

func (e *UnavailableError) Error() string {
	msg := fmt.Sprintf("%s: %v", e.Op, e.Err)
	if e.Fix != "" {
		msg += " (fix: " + e.Fix + ")"
	}
	return msg
}

func (e *UnavailableError) Unwrap() error { return e.Err }

// Sources makes and recovers keys.
type Sources struct {
	KMS KMS
	S3  S3
	// Owner is the account the s3-kms secret's bucket must belong to: the instance's own
	// (its identity document), the account whose stack made the bucket.
	Owner func(ctx context.Context) (string, error)
	Rand  io.Reader // crypto/rand.Reader when nil
}

// New makes the key of a new volume.
func (s Sources) New(ctx context.Context, o contract.AgentOptions, v Volume) (Key, error) {
	switch o.KeySource {
	case contract.KeySourceKMSDataKey:
		out, err := s.KMS.GenerateDataKey(ctx, &kms.GenerateDataKeyInput{
			KeyId:             aws.String(o.KMSKeyID),
			KeySpec:           kmstypes.DataKeySpecAes256,
			EncryptionContext: contract.EncryptionContext(v.InstanceARN, v.UUID),
		})
		if err != nil {
			return Key{}, unavailable("kms:GenerateDataKey with key "+o.KMSKeyID, err)
		}
		return Key{
			Secret:      out.Plaintext,
			Token:       keytoken.Token{KeySource: o.KeySource, KeyID: aws.ToString(out.KeyId), Ciphertext: out.CiphertextBlob, ContextKeys: contract.ContextKeys},
			FullEntropy: true,
		}, nil
	case contract.KeySourceS3KMS:
		return s.fromS3(ctx, o.Secret, "", o.KMSKeyID)
	case contract.KeySourceEphemeral:
		b := make([]byte, 64)
		r := s.Rand
		if r == nil {
			r = rand.Reader
		}
		if _, err := io.ReadFull(r, b); err != nil {
			return Key{}, fmt.Errorf("reading random bytes: %w", err)
		}
		return Key{Secret: b, Token: keytoken.Token{KeySource: o.KeySource}, FullEntropy: true}, nil
	}
	return Key{}, fmt.Errorf("unknown key source %q", o.KeySource)
}

// Recover gets the key of an existing volume from its token.
func (s Sources) Recover(ctx context.Context, t keytoken.Token, v Volume) (Key, error) {
	switch t.KeySource {
	case contract.KeySourceKMSDataKey:
		// KMS decrypts only under the context the key was made with, which names this
		// instance and this volume: a header copied elsewhere does not open.
		out, err := s.KMS.Decrypt(ctx, &kms.DecryptInput{
			CiphertextBlob:    t.Ciphertext,
			KeyId:             aws.String(t.KeyID),
			EncryptionContext: contract.EncryptionContext(v.InstanceARN, v.UUID),
		})
		if err != nil {
			return Key{}, unavailable("kms:Decrypt with key "+t.KeyID, err)
		}
		return Key{Secret: out.Plaintext, Token: t, FullEntropy: true}, nil
	case contract.KeySourceS3KMS:
		return s.fromS3(ctx, t.Secret, t.SecretVersion, t.KeyID)
	case contract.KeySourceEphemeral:
		return Key{}, keytoken.ErrEphemeral
	}
	return Key{}, fmt.Errorf("unknown key source %q", t.KeySource)
}

// fromS3 reads the seed recipe's secret: the object is the raw KMS ciphertext of the
// passphrase, as `aws kms encrypt ... | base64 --decode` writes it. A version, when given,
// is the one read; the key's token records the version it read. keyID, when given (the
// configured key for a new volume, the token's for an existing one), is the only key
// KMS may decrypt it with: a ciphertext planted under another key the role can use
// (whose passphrase its planter knows) is refused, not made a volume's key. The bucket
// must be the instance's account's: one of the same name elsewhere is not read.
func (s Sources) fromS3(ctx context.Context, secret, version, keyID string) (Key, error) {
	bucket, key, err := contract.SecretLocation(secret)
	if err != nil {
		return Key{}, err
	}
	if s.Owner == nil {
		return Key{}, &UnavailableError{Op: "reading " + secret, Err: errors.New("the account the bucket must belong to is unknown"), Fix: "run on EC2 with IMDSv2 reachable"}
	}
	owner, err := s.Owner(ctx)
	if err != nil {
		return Key{}, &UnavailableError{Op: "reading the instance's account from IMDS", Err: err, Fix: "IMDSv2 must be reachable (hop limit 2 in containers)"}
	}
	obj, err := s.S3.Get(ctx, bucket, key, version, owner, maxSecret)
	if err != nil {
		return Key{}, unavailableObject(secret, err)
	}
	in, op := &kms.DecryptInput{CiphertextBlob: obj.Body}, "kms:Decrypt of "+secret
	if keyID != "" {
		in.KeyId, op = aws.String(keyID), op+" with key "+keyID
	}
	out, err := s.KMS.Decrypt(ctx, in)
	if err != nil {
		return Key{}, unavailable(op, err)
	}
	// The recipe piped `echo "$key"` into cryptsetup, which ends the passphrase at the
	// newline; stripping one trailing newline gives the same passphrase bytes.
	pass := out.Plaintext
	if n := len(pass); n > 0 && pass[n-1] == '\n' {
		pass[n-1] = 0
		pass = pass[:n-1]
	}
	if len(pass) == 0 || bytes.IndexByte(pass, '\n') >= 0 {
		clear(out.Plaintext)
		return Key{}, &UnavailableError{Op: "reading " + secret, Err: errors.New("the passphrase is empty or spans several lines"),
			Fix: "store a one-line passphrase with `storecrypt put-secret`"}
	}
	// S3 names the version of an object in an unversioned bucket "null" (GetObject,
	// "x-amz-version-id"), or sends none; there is nothing to pin then.
	if v := obj.VersionID; v != "null" && v != "" {
		version = v
	}
	return Key{Secret: pass, Token: keytoken.Token{KeySource: contract.KeySourceS3KMS, KeyID: aws.ToString(out.KeyId), Secret: secret, SecretVersion: version}}, nil
}

// unavailableObject: S3 answers a GetObject of a missing object with 403 AccessDenied,
// not 404, when the caller may not s3:ListBucket the bucket (GetObject, "Permissions"),
// which the instance role may not: so AccessDenied can mean either.
func unavailableObject(secret string, err error) error {
	var apiErr smithy.APIError
	if errors.As(err, &apiErr) && apiErr.ErrorCode() == "AccessDenied" {
		return &UnavailableError{Op: "s3:GetObject of " + secret, Err: err,
			Fix: "the secret does not exist (upload it with `storecrypt put-secret`), or the instance role may not s3:GetObject it; S3 says AccessDenied for both when the role may not list the bucket"}
	}
	return unavailable("s3:GetObject of "+secret, err)
}

// unavailable wraps an AWS error with the fix an operator needs.
func unavailable(op string, err error) error {
	fix := "check the instance role, the key and the network path to the service"
	var apiErr smithy.APIError
	var netErr net.Error
	switch {
	case errors.As(err, &apiErr):
		switch apiErr.ErrorCode() {
		case "AccessDeniedException", "AccessDenied":
			fix = "make the instance role a key user: kms:GenerateDataKey and kms:Decrypt on the key (key policy or grant), s3:GetObject on the secret"
		case "DisabledException", "KMSInvalidStateException":
			fix = "enable the KMS key (it is disabled or pending deletion)"
		case "NotFoundException":
			fix = "the KMS key does not exist in this region: check --kms-key-id"
		case "InvalidCiphertextException", "IncorrectKeyException":
			fix = "the ciphertext does not belong to this key, instance or volume"
		case "NoSuchKey", "NoSuchBucket", "NotFound":
			fix = "upload the secret with `storecrypt put-secret` or correct --secret"
		}
	case errors.As(err, &netErr):
		fix = "the endpoint is unreachable: check the VPC endpoint, route or proxy for KMS and S3"
	}
	return &UnavailableError{Op: op, Err: err, Fix: fix}
}
