package bootunit

import (
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/storecrypt/storecrypt/internal/contract"
	"github.com/storecrypt/storecrypt/internal/golden"
)

var unlock = []string{contract.AgentPath, "unlock", "--mount-point", "/mnt/instance-store", "--model", contract.DefaultModel, "--retry-for=4m0s"}

func TestRenderGolden(t *testing.T) {
	golden.Check(t, "unlock.service", []byte(Render(Unit{Exec: unlock})))
	golden.Check(t, "unlock-required-by.service", []byte(Render(Unit{Exec: unlock, RequiredBy: []string{"postgresql.service", "srv-data.mount"}})))
}

// TestSystemdAcceptsUnit has systemd's own parser read the unit: an unknown directive, a
// bad value or a malformed line is reported by systemd-analyze verify (Debian's systemd,
// installed by scripts/install-deps.sh).
func TestSystemdAcceptsUnit(t *testing.T) {
	analyze, err := exec.LookPath("systemd-analyze")
	if err != nil {
		t.Fatal("systemd-analyze is not installed: run scripts/install-deps.sh (Debian package systemd)")
	}
	dir := t.TempDir()
	// verify checks that ExecStart's program exists; the unit's own path is on instances.
	agent := filepath.Join(dir, "storecrypt-agent")
	if err := os.WriteFile(agent, []byte("#!/bin/sh\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	units := bothUnits()
	units["unlock, nothing held"] = Unit{Exec: unlock}
	for name, u := range units {
		u.Exec = append([]string{agent}, u.Exec[1:]...)
		unit := filepath.Join(dir, contract.UnitName)
		if err := os.WriteFile(unit, []byte(Render(u)), 0o644); err != nil {
			t.Fatal(err)
		}
		out, err := execCommand(analyze, "verify", unit)
		if err != nil || strings.TrimSpace(out) != "" {
			t.Errorf("systemd-analyze verify (%s): %v\n%s", name, err, out)
		}
	}
	// The check can fail: a directive systemd does not know is reported.
	bad := filepath.Join(dir, "bad", contract.UnitName)
	_ = os.MkdirAll(filepath.Dir(bad), 0o755)
	text := strings.Replace(Render(Unit{Exec: append([]string{agent}, unlock[1:]...)}), "RemainAfterExit=yes", "RemainAfterExit=yes\nRestartOnTuesdays=yes", 1)
	if err := os.WriteFile(bad, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	if out, _ := execCommand(analyze, "verify", bad); !strings.Contains(out, "RestartOnTuesdays") {
		t.Errorf("systemd-analyze verify did not report an unknown directive: %q", out)
	}
}

func execCommand(name string, args ...string) (string, error) {
	out, err := exec.Command(name, args...).CombinedOutput()
	return string(out), err
}

func TestInstall(t *testing.T) {
	root := t.TempDir()
	dir := filepath.Join(root, "etc/systemd/system")
	links := func() []string {
		found, _ := filepath.Glob(filepath.Join(dir, "*", contract.UnitName))
		var out []string
		for _, f := range found {
			if target, err := os.Readlink(f); err != nil || target != "../"+contract.UnitName {
				t.Errorf("%s links to %q (%v)", f, target, err)
			}
			out = append(out, filepath.Base(filepath.Dir(f)))
		}
		return out
	}
	steps := []struct {
		name    string
		unit    Unit
		changed bool
		links   []string
	}{
		{"first install", Unit{Exec: unlock}, true, []string{"multi-user.target.wants"}},
		{"again", Unit{Exec: unlock}, false, []string{"multi-user.target.wants"}},
		{"hold back two units", Unit{Exec: unlock, RequiredBy: []string{"postgresql.service", "srv-data.mount"}}, true,
			[]string{"multi-user.target.wants", "postgresql.service.requires", "srv-data.mount.requires"}},
		{"again, held", Unit{Exec: unlock, RequiredBy: []string{"postgresql.service", "srv-data.mount"}}, false,
			[]string{"multi-user.target.wants", "postgresql.service.requires", "srv-data.mount.requires"}},
		{"release one", Unit{Exec: unlock, RequiredBy: []string{"srv-data.mount"}}, true,
			[]string{"multi-user.target.wants", "srv-data.mount.requires"}},
		{"a new command line", Unit{Exec: append(slices.Clone(unlock), "--devices", "/dev/nvme1n1")}, true,
			[]string{"multi-user.target.wants"}},
	}
	for _, s := range steps {
		changed, err := Install(root, s.unit)
		if err != nil {
			t.Fatalf("%s: %v", s.name, err)
		}
		if changed != s.changed {
			t.Errorf("%s: changed %v, want %v", s.name, changed, s.changed)
		}
		if got := links(); !slices.Equal(got, s.links) {
			t.Errorf("%s: links in %v, want %v", s.name, got, s.links)
		}
		text, err := os.ReadFile(filepath.Join(dir, contract.UnitName))
		if err != nil || string(text) != Render(s.unit) {
			t.Errorf("%s: the unit on disk is not the rendered one (%v)", s.name, err)
		}
	}
}

// TestUninstall: after Install with units held back and a drop-in, nothing of the unit
// is left under /etc/systemd/system but what others put there; a second run changes
// nothing.
func TestUninstall(t *testing.T) {
	root := t.TempDir()
	dir := filepath.Join(root, "etc/systemd/system")
	if _, err := Install(root, Unit{Exec: unlock, RequiredBy: []string{"postgresql.service", "srv-data.mount"}}); err != nil {
		t.Fatal(err)
	}
	// A drop-in of ours, and another unit's requirement of postgresql, which stays.
	for path, text := range map[string]string{contract.UnitName + ".d/override.conf": "[Service]\nTimeoutStartSec=600\n", "postgresql.service.requires/other.service": ""} {
		if err := os.MkdirAll(filepath.Dir(filepath.Join(dir, path)), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, path), []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	for _, want := range []bool{true, false} {
		changed, err := Uninstall(root)
		if err != nil || changed != want {
			t.Fatalf("got changed %v, %v; want changed %v", changed, err, want)
		}
		var left []string
		_ = filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
			if err == nil && p != dir {
				left = append(left, strings.TrimPrefix(p, dir+"/"))
			}
			return nil
		})
		// multi-user.target.wants is everyone's: it stays, as systemctl disable leaves it.
		if want := []string{"multi-user.target.wants", "postgresql.service.requires", "postgresql.service.requires/other.service"}; !slices.Equal(left, want) {
			t.Errorf("left %q, want %q", left, want)
		}
	}
}

// TestFor: a key that survives a reboot is reopened at boot; an ephemeral one's volume is
// scratch again after a reboot, so the unit provisions it anew.
func TestFor(t *testing.T) {
	o := contract.AgentOptions{MountPoint: "/mnt/instance-store", Model: contract.DefaultModel, RequiredBy: []string{"docker.service"}}
	for keySource, want := range map[string]string{
		contract.KeySourceKMSDataKey: "unlock",
		contract.KeySourceS3KMS:      "unlock",
		contract.KeySourceEphemeral:  "apply",
	} {
		u := For(o, keySource)
		if got := u.Exec[1]; got != want {
			t.Errorf("%s: got %q at boot, want %q", keySource, got, want)
		}
		if !slices.Equal(u.RequiredBy, o.RequiredBy) {
			t.Errorf("%s: got RequiredBy %q, want %q", keySource, u.RequiredBy, o.RequiredBy)
		}
	}
	want := "install " + contract.UnitName + " and " + contract.AgentPath + "; hold back docker.service until the volume is mounted"
	if got := For(o, contract.KeySourceKMSDataKey).InstallAction(); got != want {
		t.Errorf("got action %q, want %q", got, want)
	}
}
