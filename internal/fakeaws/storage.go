package fakeaws

import (
	"bytes"
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"io"
	"slices"
	"sort"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kms"
	kmstypes "github.com/aws/aws-sdk-go-v2/service/kms/types"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	s3types "github.com/aws/aws-sdk-go-v2/service/s3/types"
	"github.com/aws/smithy-go"
)

// The key operations and S3 objects the agent and put-secret use, so their calls are
// recorded and checked against the template's policies like the functions' are. The
// agent's real-kernel tests run against local-kms and gofakes3 instead.
func init() {
	register("KMS", map[string]handler{
		"GenerateDataKey": (*World).generateDataKey,
		"Decrypt":         (*World).decrypt,
		"Encrypt":         (*World).encrypt,
	})
	register("S3", map[string]handler{
		"GetObject": (*World).getObject,
		"PutObject": (*World).putObject,
	})
}

// sealed is a ciphertext blob: which key, and the data sealed with the encryption
// context as additional data, so Decrypt fails for any other context ("must be an
// exact, case-sensitive match for the encryption context that is specified in the
// encryption operation").
type sealed struct {
	Key   string `json:"k"`
	Nonce []byte `json:"n"`
	Data  []byte `json:"d"`
}

func (w *World) cipherFor(k *Key) (cipher.AEAD, error) {
	if k.secret == nil {
		k.secret = make([]byte, 32)
		if _, err := rand.Read(k.secret); err != nil {
			return nil, err
		}
	}
	block, err := aes.NewCipher(k.secret)
	if err != nil {
		return nil, err
	}
	return cipher.NewGCM(block)
}

func contextAAD(ctx map[string]string) []byte {
	keys := make([]string, 0, len(ctx))
	for k := range ctx {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var b bytes.Buffer
	for _, k := range keys {
		fmt.Fprintf(&b, "%q=%q;", k, ctx[k])
	}
	return b.Bytes()
}

func (w *World) seal(keyID *string, plaintext []byte, ctx map[string]string) (*Key, []byte, error) {
	k, err := w.key(keyID, true)
	if err != nil {
		return nil, nil, err
	}
	if k.State != "Enabled" {
		return nil, nil, &kmstypes.DisabledException{Message: aws.String(k.ARN + " is disabled.")}
	}
	aead, err := w.cipherFor(k)
	if err != nil {
		return nil, nil, err
	}
	nonce := make([]byte, aead.NonceSize())
	if _, err := rand.Read(nonce); err != nil {
		return nil, nil, err
	}
	blob, err := json.Marshal(sealed{Key: k.ARN, Nonce: nonce, Data: aead.Seal(nil, nonce, plaintext, contextAAD(ctx))})
	return k, blob, err
}

func (w *World) generateDataKey(params any) (any, error) {
	in := params.(*kms.GenerateDataKeyInput)
	if in.KeySpec == "" && in.NumberOfBytes == nil {
		return nil, invalid("ValidationException", "Please specify either number of bytes or key spec.")
	}
	plain := make([]byte, 32)
	if in.NumberOfBytes != nil {
		plain = make([]byte, *in.NumberOfBytes)
	}
	if _, err := rand.Read(plain); err != nil {
		return nil, err
	}
	k, blob, err := w.seal(in.KeyId, plain, in.EncryptionContext)
	if err != nil {
		return nil, err
	}
	return &kms.GenerateDataKeyOutput{KeyId: aws.String(k.ARN), Plaintext: plain, CiphertextBlob: blob}, nil
}

func (w *World) encrypt(params any) (any, error) {
	in := params.(*kms.EncryptInput)
	k, blob, err := w.seal(in.KeyId, in.Plaintext, in.EncryptionContext)
	if err != nil {
		return nil, err
	}
	return &kms.EncryptOutput{KeyId: aws.String(k.ARN), CiphertextBlob: blob}, nil
}

func (w *World) decrypt(params any) (any, error) {
	in := params.(*kms.DecryptInput)
	var s sealed
	if err := json.Unmarshal(in.CiphertextBlob, &s); err != nil {
		return nil, &kmstypes.InvalidCiphertextException{Message: aws.String("invalid ciphertext")}
	}
	if in.KeyId != nil {
		k, err := w.key(in.KeyId, true)
		if err != nil {
			return nil, err
		}
		if k.ARN != s.Key {
			return nil, &kmstypes.IncorrectKeyException{Message: aws.String("The key ID in the request does not identify a KMS key that can perform this operation.")}
		}
	}
	k, err := w.key(&s.Key, false)
	if err != nil {
		return nil, err
	}
	if k.State != "Enabled" {
		return nil, &kmstypes.DisabledException{Message: aws.String(k.ARN + " is disabled.")}
	}
	aead, err := w.cipherFor(k)
	if err != nil {
		return nil, err
	}
	plain, err := aead.Open(nil, s.Nonce, s.Data, contextAAD(in.EncryptionContext))
	if err != nil {
		return nil, &kmstypes.InvalidCiphertextException{Message: aws.String("the encryption context does not match")}
	}
	return &kms.DecryptOutput{KeyId: aws.String(k.ARN), Plaintext: plain}, nil
}

// Object is an S3 object of the world. The stack's buckets are versioned, so every object
// has a version id; Noncurrent keeps the versions it replaced.
type Object struct {
	Body       []byte
	SSEKMSID   string
	Version    string
	Noncurrent []Object // newest first
}

// getObject returns the current version, or with VersionId that version: "By default, the
// GET operation returns the current version of an object. To return a different version,
// use the versionId subresource" (S3 API Reference, GetObject).
func (w *World) getObject(params any) (any, error) {
	in := params.(*s3.GetObjectInput)
	o, ok := w.Objects[aws.ToString(in.Bucket)+"/"+aws.ToString(in.Key)]
	if !ok {
		return nil, &s3types.NoSuchKey{Message: aws.String("The specified key does not exist.")}
	}
	if v := aws.ToString(in.VersionId); v != "" && v != o.Version {
		i := slices.IndexFunc(o.Noncurrent, func(n Object) bool { return n.Version == v })
		if i < 0 {
			return nil, &smithy.GenericAPIError{Code: "NoSuchVersion", Message: "The specified version does not exist."}
		}
		o = o.Noncurrent[i]
	}
	return &s3.GetObjectOutput{Body: io.NopCloser(bytes.NewReader(o.Body)), ContentLength: aws.Int64(int64(len(o.Body))), VersionId: aws.String(o.Version)}, nil
}

// putObject stores a new current version. With If-None-Match: * it writes only when no
// object exists at the key, and answers 412 Precondition Failed otherwise (S3 User Guide,
// "Add preconditions to S3 operations with conditional requests").
func (w *World) putObject(params any) (any, error) {
	in := params.(*s3.PutObjectInput)
	body, err := io.ReadAll(in.Body)
	if err != nil {
		return nil, err
	}
	if w.Objects == nil {
		w.Objects = map[string]Object{}
	}
	name := aws.ToString(in.Bucket) + "/" + aws.ToString(in.Key)
	old, exists := w.Objects[name]
	if exists && aws.ToString(in.IfNoneMatch) == "*" {
		return nil, &smithy.GenericAPIError{Code: "PreconditionFailed", Message: "At least one of the pre-conditions you specified did not hold"}
	}
	w.versions++
	o := Object{Body: body, SSEKMSID: aws.ToString(in.SSEKMSKeyId), Version: fmt.Sprintf("v%d", w.versions)}
	if exists {
		o.Noncurrent = append([]Object{{Body: old.Body, SSEKMSID: old.SSEKMSID, Version: old.Version}}, old.Noncurrent...)
	}
	w.Objects[name] = o
	return &s3.PutObjectOutput{VersionId: aws.String(o.Version)}, nil
}
