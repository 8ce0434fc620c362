package bench

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/storecrypt/storecrypt/infra/artifact"
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
