package bootunit

import (
	"flag"
	"os"
	"path/filepath"
	"testing"

	"github.com/storecrypt/storecrypt/internal/contract"
)

var update = flag.Bool("update", false, "rewrite the golden files")

func TestRenderGolden(t *testing.T) {
	got := Render([]string{contract.AgentPath, "unlock", "--mount-point", "/mnt/instance-store", "--model", contract.DefaultModel})
	golden := filepath.Join("testdata", "unlock.service")
	if *update {
		if err := os.WriteFile(golden, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(golden)
	if err != nil {
		t.Fatal(err)
	}
	if got != string(want) {
		t.Errorf("rendered unit differs from %s (rerun with -update and review the diff):\n%s", golden, got)
	}
}

func TestInstallIsIdempotent(t *testing.T) {
	root := t.TempDir()
	text := Render([]string{contract.AgentPath, "unlock"})
	for i, want := range []bool{true, false} {
		changed, err := Install(root, text)
		if err != nil {
			t.Fatal(err)
		}
		if changed != want {
			t.Errorf("install %d: changed %v, want %v", i+1, changed, want)
		}
	}
	link, err := os.Readlink(filepath.Join(root, "etc/systemd/system/multi-user.target.wants", contract.UnitName))
	if err != nil || link != "../"+contract.UnitName {
		t.Errorf("wants link %q, %v", link, err)
	}
	if changed, _ := Install(root, Render([]string{contract.AgentPath, "unlock", "--model", "X"})); !changed {
		t.Error("a new command line did not rewrite the unit")
	}
}
