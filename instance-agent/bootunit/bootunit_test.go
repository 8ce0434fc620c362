package bootunit

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/storecrypt/storecrypt/internal/contract"
	"github.com/storecrypt/storecrypt/internal/golden"
)

func TestRenderGolden(t *testing.T) {
	got := Render([]string{contract.AgentPath, "unlock", "--mount-point", "/mnt/instance-store", "--model", contract.DefaultModel})
	golden.Check(t, "unlock.service", []byte(got))
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
