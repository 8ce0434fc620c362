package audit_test

import (
	"bytes"
	"context"
	"image"
	"image/png"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/storecrypt/storecrypt/internal/audit"
	"github.com/storecrypt/storecrypt/internal/golden"
)

// TestHTML: the page holds the report's data (a golden file, reviewed in the diff).
func TestHTML(t *testing.T) {
	items, running := fixture()
	var b bytes.Buffer
	if err := audit.Build(items, running, since, until, now, key).HTML(&b); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"54.5%", "i-00000000000000005", "not-key-user", "no-record", "rotation", "<svg", "How to verify a record",
		"Revoked and shredded", "INC-42 host compromised", "assumed-role/responder/alice"} {
		if !strings.Contains(b.String(), want) {
			t.Errorf("the page lacks %q", want)
		}
	}
	if strings.Contains(b.String(), "<script") || regexp.MustCompile(`(src|href)="https?:`).MatchString(b.String()) {
		t.Error("the page runs a script or fetches something: it must stand alone")
	}
	golden.Check(t, "report.html", b.Bytes())
}

// TestHTMLInChromium renders the page in headless Chromium (Debian's package) as an
// auditor's browser would: no console error, and a screenshot that is not blank. With
// -update the screenshot is kept as testdata/report.png for review.
func TestHTMLInChromium(t *testing.T) {
	browser, err := exec.LookPath("chromium")
	if err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("chromium is not installed (make deps installs it): %v", err)
		}
		t.Skip("no chromium: run make deps")
	}
	items, running := fixture()
	dir := t.TempDir()
	page := filepath.Join(dir, "report.html")
	var b bytes.Buffer
	if err := audit.Build(items, running, since, until, now, key).HTML(&b); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(page, b.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	shot := filepath.Join(dir, "report.png")
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, browser, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--hide-scrollbars",
		"--user-data-dir="+filepath.Join(dir, "profile"), "--window-size=1280,2200", "--enable-logging=stderr", "--v=0",
		"--screenshot="+shot, "file://"+page)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("chromium: %v\n%s", err, out)
	}
	for _, line := range strings.Split(string(out), "\n") {
		if strings.Contains(line, "CONSOLE") || strings.Contains(line, "Uncaught") {
			t.Errorf("the page logged to the console: %s", line)
		}
	}
	f, err := os.Open(shot)
	if err != nil {
		t.Fatalf("no screenshot: %v\n%s", err, out)
	}
	defer f.Close()
	img, err := png.Decode(f)
	if err != nil {
		t.Fatal(err)
	}
	if n := colors(img); n < 8 {
		t.Errorf("the screenshot has %d colours: blank", n)
	}
	if golden.Updating() {
		data, _ := os.ReadFile(shot)
		if err := os.WriteFile(filepath.Join("testdata", "report.png"), data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	t.Logf("rendered %s: %s", page, shot)
}

// colors counts distinct colours, up to 64.
func colors(img image.Image) int {
	seen := map[[4]uint32]bool{}
	b := img.Bounds()
	for y := b.Min.Y; y < b.Max.Y && len(seen) < 64; y += 3 {
		for x := b.Min.X; x < b.Max.X && len(seen) < 64; x += 3 {
			r, g, bl, a := img.At(x, y).RGBA()
			seen[[4]uint32{r >> 8, g >> 8, bl >> 8, a >> 8}] = true
		}
	}
	return len(seen)
}
