package flow

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestFlow runs `make demo`'s flow: the first instance ends encrypted, the second blocked
// with no command sent, and status and report show both.
func TestFlow(t *testing.T) {
	cdkOut := filepath.Join("..", "..", "cdk.out")
	if _, err := os.Stat(filepath.Join(cdkOut, "StoreCrypt.template.json")); err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("no synthesized template (make test runs `make synth` first): %v", err)
		}
		t.Skip("no cdk.out: run `make synth` first")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 8*time.Minute)
	defer cancel()
	var out strings.Builder
	if err := Run(ctx, &out, cdkOut); err != nil {
		t.Fatalf("%v\n%s", err, out.String())
	}
	for _, want := range []string{"tagged encrypted", guestID + "  i4i.large  running  encrypted", blockedID + "  i4i.large  running  blocked    not-key-user", "aes-xts-plain64/512-bit/4096B sectors"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("the demo's output lacks %q:\n%s", want, out.String())
		}
	}
	t.Log("\n" + out.String())
}
