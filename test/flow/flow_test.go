package flow

import (
	"context"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

// TestFlow runs `make demo`'s flow: the first instance ends encrypted, the second blocked
// with no command sent; status and report show both, and the ledger's items are printed.
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
	page := filepath.Join(t.TempDir(), "report.html")
	if err := Run(ctx, &out, cdkOut, page); err != nil {
		t.Fatalf("%v\n%s", err, out.String())
	}
	html, err := os.ReadFile(page)
	if err != nil || !strings.Contains(string(html), "50.0%") || !strings.Contains(string(html), guestID) {
		t.Errorf("the HTML report %s: %v\n%.500s", page, err, html)
	}
	for _, want := range []string{
		`tagged encrypted`,
		guestID + `\s+i4i\.large\s+running\s+yes\s+encrypted\s`, // status
		blockedID + `\s+i4i\.large\s+running\s+yes\s+blocked\s+not-key-user`,
		`COVERAGE\s+50\.0% \(1 of 2 launches`, // report, from the ledger
		guestID + `\s+\S+\s+i4i\.large\s+encrypted\s.*aes-xts-plain64/512-bit/4096B sectors`,
		`the ledger's item for ` + guestID, // its item, printed
	} {
		if !regexp.MustCompile(want).MatchString(out.String()) {
			t.Errorf("the demo's output lacks %q:\n%s", want, out.String())
		}
	}
	t.Log("\n" + out.String())
}
