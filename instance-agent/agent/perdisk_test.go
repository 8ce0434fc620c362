package agent

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/storecrypt/storecrypt/instance-agent/sysexec"
	"github.com/storecrypt/storecrypt/internal/contract"
)

// TestPerDisk: every disk its own volume, mapping and mount point by serial order, the
// parent directory sealed once its mount points exist, one boot unit that reopens them
// all; and a refusal of one disk writes nothing on any.
func TestPerDisk(t *testing.T) {
	files := merge(disk("nvme1n1", "259:0"), disk("nvme2n1", "259:1"))
	// Serial order puts nvme2n1 first.
	files["sys/block/nvme1n1/device/serial"], files["sys/block/nvme2n1/device/serial"] = "AWS2", "AWS1"
	o := kmsOptions()
	o.Layout = contract.LayoutPerDisk

	t.Run("provisioned", func(t *testing.T) {
		root := t.TempDir()
		sysfs(t, root, files)
		calls := []sysexec.Call{
			{Argv: "cryptsetup --version", Stdout: version},
			// The plans, decided first from one probe of each disk, which the disks then
			// converge from: no second probe.
			{Argv: "blkid -p -o export /dev/nvme2n1", Code: 2},
			{Argv: "blkid -p -o export /dev/nvme1n1", Code: 2},
		}
		calls = append(calls, provisionAs("/dev/nvme2n1", "storecrypt-0", "/mnt/instance-store/0")...)
		calls = append(calls, provisionAs("/dev/nvme1n1", "storecrypt-1", "/mnt/instance-store/1")...)
		rep, sealed := applySealed(t, root, calls, o)
		if want := []string{"/mnt/instance-store", "/mnt/instance-store/0", "/mnt/instance-store/1"}; !slices.Equal(sealed, want) {
			t.Errorf("sealed %q, want %q", sealed, want)
		}
		l := rep.Layout
		if l.Level != contract.LayoutPerDisk || len(l.Volumes) != 2 || !l.Mounted || !l.Open || l.State != contract.StateReady || l.KeyID != keyARN || !l.BootUnit ||
			l.Volumes[0].Volume != "/dev/nvme2n1" || l.Volumes[1].MountPoint != "/mnt/instance-store/1" || l.Volumes[1].Mapper != "/dev/mapper/storecrypt-1" {
			t.Errorf("layout %+v", l)
		}
		unit := readUnit(t, root)
		if !strings.Contains(unit, `unlock --mount-point /mnt/instance-store --model "Amazon EC2 NVMe Instance Storage" --layout per-disk --retry-for=4m0s`) {
			t.Errorf("the boot unit does not reopen every disk:\n%s", unit)
		}
		n := 0
		for _, st := range rep.Steps {
			if st.Name == "boot-unit" {
				n++
			}
		}
		if n != 1 {
			t.Errorf("the boot unit was installed %d times", n)
		}
	})

	// A refusal of the second disk, by what it holds or by its mount point, comes before
	// anything is written on the first.
	for _, tc := range []struct {
		name    string
		nvme1n1 sysexec.Call // the second disk in serial order
		planted string       // a file left on the root disk, under root
		refused string
	}{
		{"one disk refused, nothing written", sysexec.Call{Argv: "blkid -p -o export /dev/nvme1n1", Stdout: "TYPE=xfs\n"}, "", "/dev/nvme1n1"},
		{"one mount point refused, nothing written", sysexec.Call{Argv: "blkid -p -o export /dev/nvme1n1", Code: 2}, "mnt/instance-store/1/data.csv", "/mnt/instance-store/1"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			root := t.TempDir()
			sysfs(t, root, files)
			if tc.planted != "" {
				sysfs(t, root, map[string]string{tc.planted: "plaintext"})
			}
			keys := &fakeKeys{}
			a, fake, _ := newTestAgent(t, root, []sysexec.Call{
				{Argv: "cryptsetup --version", Stdout: version},
				{Argv: "blkid -p -o export /dev/nvme2n1", Code: 2},
				tc.nvme1n1,
			}, keys)
			_, err := a.Apply(context.Background(), o)
			var refused *RefusedError
			if !errors.As(err, &refused) || refused.Device != tc.refused {
				t.Fatalf("got %v, want %s refused", err, tc.refused)
			}
			fake.Done()
			if len(keys.volumes) != 0 {
				t.Error("a key was made before the refusal")
			}
			if _, err := os.Stat(filepath.Join(root, "mnt/instance-store/0")); !os.IsNotExist(err) {
				t.Errorf("the first disk's mount point was made: %v", err)
			}
		})
	}
}

// TestSumUp: the per-disk layout reads as open, mounted, ready and under the key only
// when every volume is, so the result function never records a half-done instance.
func TestSumUp(t *testing.T) {
	vol := func(edit func(*contract.Layout)) contract.Layout {
		l := contract.Layout{LUKSUUID: "u", State: contract.StateReady, Open: true, Mounted: true, KeySource: contract.KeySourceKMSDataKey, KeyID: keyARN}
		if edit != nil {
			edit(&l)
		}
		return l
	}
	for _, tc := range []struct {
		name                    string
		vols                    []contract.Layout
		open, mounted, keyNamed bool
		state                   string
	}{
		{"all done", []contract.Layout{vol(nil), vol(nil)}, true, true, true, contract.StateReady},
		{"one not mounted", []contract.Layout{vol(nil), vol(func(l *contract.Layout) { l.Mounted = false })}, true, false, true, contract.StateReady},
		{"one still provisioning", []contract.Layout{vol(nil), vol(func(l *contract.Layout) { l.State = contract.StateProvisioning })}, true, true, true, contract.StateProvisioning},
		{"one under another key", []contract.Layout{vol(nil), vol(func(l *contract.Layout) { l.KeyID = "other" })}, true, true, false, contract.StateReady},
		{"none", nil, false, false, false, contract.StateReady},
	} {
		l := sumUp("/mnt/instance-store", tc.vols)
		if l.Open != tc.open || l.Mounted != tc.mounted || (l.KeyID == keyARN) != tc.keyNamed || l.State != tc.state {
			t.Errorf("%s: %+v", tc.name, l)
		}
	}
}
