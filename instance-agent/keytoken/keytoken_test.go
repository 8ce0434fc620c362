package keytoken

import (
	"errors"
	"testing"

	"github.com/storecrypt/storecrypt/internal/contract"
)

// TestParse: a token is read only when it says how to get its key again; a kms-datakey
// token must name the context this agent builds, so one with no context_keys (an
// instance-id context) or other keys is refused with ContextKeysError instead of being
// opened under a context no key policy allows.
func TestParse(t *testing.T) {
	for _, tc := range []struct {
		name, raw   string
		ok, context bool // context: the error is a *ContextKeysError
	}{
		{"kms", `{"type":"storecrypt","keyslots":["0"],"key_source":"kms-datakey","key_id":"k","ciphertext":"YmxvYg==","context_keys":["storecrypt:instance-arn","storecrypt:volume"]}`, true, false},
		{"kms, no context keys (the instance-id context)", `{"type":"storecrypt","keyslots":["0"],"key_source":"kms-datakey","key_id":"k","ciphertext":"YmxvYg=="}`, false, true},
		{"kms, a context this agent does not know", `{"type":"storecrypt","keyslots":["0"],"key_source":"kms-datakey","key_id":"k","ciphertext":"YmxvYg==","context_keys":["storecrypt:tpm"]}`, false, true},
		{"s3", `{"type":"storecrypt","keyslots":["0"],"key_source":"s3-kms","secret":"s3://b/k"}`, true, false},
		{"ephemeral", `{"type":"storecrypt","keyslots":["0"],"key_source":"ephemeral"}`, true, false},
		{"other type", `{"type":"systemd-tpm2","keyslots":["0"]}`, false, false},
		{"kms without ciphertext", `{"type":"storecrypt","keyslots":["0"],"key_source":"kms-datakey","key_id":"k"}`, false, false},
		{"s3 without secret", `{"type":"storecrypt","keyslots":["0"],"key_source":"s3-kms"}`, false, false},
		{"unknown source", `{"type":"storecrypt","keyslots":["0"],"key_source":"tpm"}`, false, false},
		{"not json", `{`, false, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parse([]byte(tc.raw))
			if (err == nil) != tc.ok {
				t.Errorf("got %v, want ok=%v", err, tc.ok)
			}
			var ctxErr *ContextKeysError
			if errors.As(err, &ctxErr) != tc.context {
				t.Errorf("got %v, want a ContextKeysError: %v", err, tc.context)
			}
		})
	}
}

// TestJSONRoundTrips: what StoreToken imports is what Parse reads back, with the type
// set and an empty keyslots list (cryptsetup's --key-slot binds the slot).
func TestJSONRoundTrips(t *testing.T) {
	for _, tc := range []struct {
		name string
		tok  Token
		want string
	}{
		{"ephemeral", Token{KeySource: contract.KeySourceEphemeral}, `{"type":"storecrypt","keyslots":[],"key_source":"ephemeral"}`},
		{"s3-kms", Token{KeySource: contract.KeySourceS3KMS, KeyID: "k", Secret: "s3://b/k", SecretVersion: "v1", ProvisionedBy: contract.ProvisionedByBoot},
			`{"type":"storecrypt","keyslots":[],"key_source":"s3-kms","key_id":"k","secret":"s3://b/k","secret_version":"v1","provisioned_by":"` + contract.ProvisionedByBoot + `"}`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			raw := tc.tok.JSON()
			if string(raw) != tc.want {
				t.Errorf("got %s, want %s", raw, tc.want)
			}
			back, err := Parse(raw)
			if err != nil {
				t.Fatal(err)
			}
			if back.Describe() != tc.tok.Describe() || back.SecretVersion != tc.tok.SecretVersion || back.ProvisionedBy != tc.tok.ProvisionedBy {
				t.Errorf("got %+v, want %+v", back, tc.tok)
			}
		})
	}
}

func TestDescribe(t *testing.T) {
	for _, tc := range []struct {
		tok  Token
		want string
	}{
		{Token{KeySource: contract.KeySourceKMSDataKey, KeyID: "arn:k"}, "kms-datakey key from arn:k"},
		{Token{KeySource: contract.KeySourceEphemeral}, "ephemeral key"},
	} {
		if got := tc.tok.Describe(); got != tc.want {
			t.Errorf("got %q, want %q", got, tc.want)
		}
	}
}
