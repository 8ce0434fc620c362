package bench

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/storecrypt/storecrypt/infra/artifact"
	"github.com/storecrypt/storecrypt/test/rie"
)

// TestDownloadPerRun: a run downloads its own architecture's object and nothing else.
func TestDownloadPerRun(t *testing.T) {
	dir := t.TempDir()
	if err := artifact.StandIns(dir); err != nil {
		t.Fatal(err)
	}
	// Different sizes, so a run that fetched the other architecture's object, or both,
	// would show.
	if err := os.WriteFile(filepath.Join(dir, "storecrypt-agent-linux-arm64.gz"), make([]byte, 1000), 0o644); err != nil {
		t.Fatal(err)
	}
	got, err := downloadPerRun(dir)
	if err != nil {
		t.Fatal(err)
	}
	amd, err := os.Stat(filepath.Join(dir, "storecrypt-agent-linux-amd64.gz"))
	if err != nil {
		t.Fatal(err)
	}
	if got["amd64"] != amd.Size() || got["arm64"] != 1000 {
		t.Errorf("per run %v, want amd64 %d and arm64 1000", got, amd.Size())
	}
}

// TestProbesCoverFunctions: the bench starts every function the stack deploys.
func TestProbesCoverFunctions(t *testing.T) {
	for _, fn := range artifact.Functions {
		p, ok := rie.Probes[fn]
		if !ok {
			t.Errorf("no probe for the %s function: its cold start would go unmeasured", fn)
			continue
		}
		if _, err := p.Payload(); err != nil {
			t.Errorf("the %s function's probe: %v", fn, err)
		}
	}
}
