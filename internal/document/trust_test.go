package document_test

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/ssm"

	"github.com/storecrypt/storecrypt/internal/contract"
	"github.com/storecrypt/storecrypt/internal/document"
	"github.com/storecrypt/storecrypt/internal/fakeaws"
)

func deployed(t *testing.T) (*fakeaws.World, *document.Trust, string) {
	t.Helper()
	o := contract.DefaultAgentOptions()
	o.KMSKeyID = fakeaws.KeyARN
	content := document.Content(o, document.Agents{URLPrefix: "https://b/agent-", Each: []document.Agent{{Arch: "amd64", SHA256: strings.Repeat("a", 64), GzSHA256: strings.Repeat("c", 64)}}})
	digest, err := document.Digest(content)
	if err != nil {
		t.Fatal(err)
	}
	raw, _ := json.Marshal(content)
	w := fakeaws.NewAccount(t)
	w.AddDocument(doc, string(raw), true)
	now := time.Date(2026, 11, 28, 0, 0, 0, 0, time.UTC)
	tr := &document.Trust{SSM: ssm.NewFromConfig(w.Config()), Name: doc, Digest: digest, KeyID: fakeaws.KeyARN, TTL: time.Minute, Now: func() time.Time { return now }}
	return w, tr, string(raw)
}

// doc is the document's name; SSM's model wants 3 to 128 characters.
const doc = "storecrypt-test"

// TestTrustRemembers: the default is read once per TTL, a version's verdict for good,
// and a failure to find any trusted version is remembered like a success.
func TestTrustRemembers(t *testing.T) {
	w, tr, raw := deployed(t)
	ctx := context.Background()
	for range 3 {
		if p, err := tr.Version(ctx); err != nil || p.Version != "1" || p.Drift() {
			t.Fatalf("got %+v, %v", p, err)
		}
	}
	if n := w.TotalCalls(); n != 1 {
		t.Errorf("%d calls for three versions in a minute, want 1", n)
	}
	if err := tr.Check(ctx, "1"); err != nil || w.TotalCalls() != 1 {
		t.Errorf("checking the pinned version: %v after %d calls", err, w.TotalCalls())
	}

	w, tr, raw = deployed(t)
	w.With(func() { w.Documents[doc].Versions[0] = strings.Replace(raw, "set -eu", "set -u", 1) })
	for range 3 {
		if _, err := tr.Version(ctx); !errors.Is(err, document.ErrUntrusted) {
			t.Fatalf("got %v, want ErrUntrusted", err)
		}
	}
	if n := w.TotalCalls(); n != 2 {
		t.Errorf("%d calls for three failing versions in a minute, want 2 (GetDocument, ListDocumentVersions)", n)
	}
}

// TestCheckByName: a version named "$DEFAULT" is read as it resolves each time, never
// remembered under that name.
func TestCheckByName(t *testing.T) {
	w, tr, raw := deployed(t)
	ctx := context.Background()
	if err := tr.Check(ctx, "$DEFAULT"); err != nil {
		t.Fatal(err)
	}
	w.AddDocument(doc, strings.Replace(raw, "set -eu", "set -eu; id", 1), true)
	if err := tr.Check(ctx, "$DEFAULT"); !errors.Is(err, document.ErrUntrusted) {
		t.Errorf("after the default changed: %v, want ErrUntrusted", err)
	}
	if err := tr.Check(ctx, ""); !errors.Is(err, document.ErrUntrusted) {
		t.Errorf("no version named: %v, want ErrUntrusted", err)
	}
}
