package document

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
)

// placeholder stands in for the values that are CloudFormation tokens when the stack
// computes the digest, and account-specific strings when SSM returns the content.
const placeholder = "<deployment>"

// Digest fingerprints a document's content: SHA-256 over its canonical JSON (keys
// sorted, no spaces), with the values that only exist once CloudFormation has deployed
// it set to a placeholder. Those are the download steps' sourceInfo, which names the
// agent's object in the asset bucket (the run step checks the download against the
// SHA-256 written into the script, which the digest covers), and the defaults of
// KmsKeyId and Secret, which Verify checks against the values the functions know.
// Everything that runs (the steps, the script, the parameters and their patterns) is
// covered.
func Digest(content any) (string, error) {
	doc, err := normalize(content)
	if err != nil {
		return "", err
	}
	mask(doc)
	b, err := json.Marshal(doc)
	if err != nil {
		return "", err
	}
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:]), nil
}

// ErrUntrusted means a document's content is not the content the stack deployed.
var ErrUntrusted = errors.New("the document is not the content the stack deployed")

// Verify checks content as SSM returns it (GetDocument's Content) against the digest
// the stack computed, with the KmsKeyId and Secret defaults the deployment gave it.
func Verify(content, want, keyID, secret string) error {
	var doc map[string]any
	if err := json.Unmarshal([]byte(content), &doc); err != nil {
		return fmt.Errorf("%w: not JSON: %w", ErrUntrusted, err)
	}
	for name, value := range map[string]string{"KmsKeyId": keyID, "Secret": secret} {
		if got := paramDefault(doc, name); got != value {
			return fmt.Errorf("%w: the default of %s is %q, want %q", ErrUntrusted, name, got, value)
		}
	}
	got, err := Digest(doc)
	if err != nil {
		return err
	}
	if got != want {
		return fmt.Errorf("%w: digest %s, want %s", ErrUntrusted, got, want)
	}
	return nil
}

// normalize turns a Go value (Content's maps) or decoded JSON into plain JSON values.
func normalize(content any) (map[string]any, error) {
	b, err := json.Marshal(content)
	if err != nil {
		return nil, fmt.Errorf("encoding the document: %w", err)
	}
	var doc map[string]any
	if err := json.Unmarshal(b, &doc); err != nil {
		return nil, fmt.Errorf("decoding the document: %w", err)
	}
	return doc, nil
}

func mask(doc map[string]any) {
	params, _ := doc["parameters"].(map[string]any)
	for _, name := range []string{"KmsKeyId", "Secret"} {
		if p, ok := params[name].(map[string]any); ok {
			p["default"] = placeholder
		}
	}
	steps, _ := doc["mainSteps"].([]any)
	for _, s := range steps {
		step, _ := s.(map[string]any)
		inputs, _ := step["inputs"].(map[string]any)
		if step["action"] == "aws:downloadContent" && inputs != nil {
			inputs["sourceInfo"] = placeholder
		}
	}
}

func paramDefault(doc map[string]any, name string) string {
	params, _ := doc["parameters"].(map[string]any)
	p, _ := params[name].(map[string]any)
	s, _ := p["default"].(string)
	return s
}
