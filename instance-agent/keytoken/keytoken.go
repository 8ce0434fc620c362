// Package keytoken is the LUKS2 token storecrypt writes in a volume's header: which key
// source made the volume's key and where to get it again, and nothing that is secret on
// its own. It is data only (encode, decode, check) and links no AWS SDK, so the planner,
// which decides from a header's token, stays free of I/O; keysource turns a token into
// a key with KMS and S3.
package keytoken

import (
	"encoding/json"
	"errors"
	"fmt"
	"slices"

	"github.com/storecrypt/storecrypt/internal/contract"
)

// Token is the LUKS2 token storecrypt writes.
type Token struct {
	Type       string   `json:"type"`
	Keyslots   []string `json:"keyslots"`
	KeySource  string   `json:"key_source"`
	KeyID      string   `json:"key_id,omitempty"`     // the KMS key ARN
	Ciphertext []byte   `json:"ciphertext,omitempty"` // kms-datakey: the wrapped data key
	// kms-datakey: the encryption context's keys (contract.ContextKeys). Unlock rebuilds
	// the context from them; a token naming other keys is refused (ContextKeysError).
	ContextKeys []string `json:"context_keys,omitempty"`
	Secret      string   `json:"secret,omitempty"` // s3-kms: s3://bucket/key
	// s3-kms: the object version the volume was made with, so that a later put-secret
	// --force does not lock the volume out. Empty for a bucket without versioning, whose
	// current object is read.
	SecretVersion string `json:"secret_version,omitempty"`
	// ProvisionedBy is the path that made the volume (contract.ProvisionedByBoot or
	// ProvisionedByCommand).
	ProvisionedBy string `json:"provisioned_by,omitempty"`
}

// Parse decodes a token read from a LUKS2 header, refusing one that does not say how to
// get its key again.
func Parse(raw []byte) (Token, error) {
	var t Token
	if err := json.Unmarshal(raw, &t); err != nil {
		return Token{}, fmt.Errorf("parsing the storecrypt token: %w", err)
	}
	if t.Type != contract.TokenType {
		return Token{}, fmt.Errorf("parsing the storecrypt token: type %q, want %q", t.Type, contract.TokenType)
	}
	switch t.KeySource {
	case contract.KeySourceKMSDataKey:
		if len(t.Ciphertext) == 0 || t.KeyID == "" {
			return Token{}, errors.New("parsing the storecrypt token: kms-datakey token without key id or ciphertext")
		}
		if !slices.Equal(t.ContextKeys, contract.ContextKeys) {
			return Token{}, &ContextKeysError{Keys: t.ContextKeys}
		}
	case contract.KeySourceS3KMS:
		if _, _, err := contract.SecretLocation(t.Secret); err != nil {
			return Token{}, fmt.Errorf("parsing the storecrypt token: %w", err)
		}
	case contract.KeySourceEphemeral:
	default:
		return Token{}, fmt.Errorf("parsing the storecrypt token: unknown key source %q", t.KeySource)
	}
	return t, nil
}

// ContextKeysError is a kms-datakey token whose encryption context this agent does not
// build (none, or other keys). Opening it under another context could only fail at KMS,
// and formatting it would destroy the data.
type ContextKeysError struct {
	Keys []string // the token's context_keys; nil when it has none
}

func (e *ContextKeysError) Error() string {
	return fmt.Sprintf("parsing the storecrypt token: encryption context keys %q, want %q: no key policy of this agent's opens the volume", e.Keys, contract.ContextKeys)
}

// JSON encodes the token for cryptsetup token import. The keyslots list is left empty:
// import's --key-slot binds the slot.
func (t Token) JSON() []byte {
	t.Type = contract.TokenType
	if t.Keyslots == nil {
		t.Keyslots = []string{}
	}
	b, _ := json.Marshal(t) // a struct of strings and bytes always encodes
	return b
}

// Describe names the key as the report shows it: "kms-datakey key from arn:...".
func (t Token) Describe() string {
	if t.KeyID == "" {
		return t.KeySource + " key"
	}
	return t.KeySource + " key from " + t.KeyID
}

// ErrEphemeral is an ephemeral volume's key asked for again: by design it is gone.
var ErrEphemeral = errors.New("the volume's key was ephemeral and is gone; apply formats it anew")
