package e2e

import (
	"slices"
	"strings"
	"testing"

	"github.com/storecrypt/storecrypt/internal/contract"
)

// TestLayouts: a RAID0 volume; a stop/start brings blank instance store while the root
// volume keeps the boot unit and state, and unlock neither hangs nor formats nor lets the
// mount point take writes. Then a RAID10 volume on the same disks, with the recipe's zero
// fill (storecrypt leaves it off by default); RAID10's first resync is paused while it is
// provisioned and runs after the mount, it keeps the data through a failed disk, and a
// reboot reopens it degraded. Then, after another stop/start, a volume per disk under the
// same mount point, reopened after a reboot, with nothing writable beside them. (One
// machine for all three: each stop/start is the next layout's fresh instance.)
func TestLayouts(t *testing.T) {
	m := newMachine(t, machineOpts{disks: 2})
	r0 := m.agent(append([]string{"apply"}, m.KMSArgs()...)...).must(t, contract.ExitOK)
	if l := r0.Report.Layout; l.Level != "raid0" || !strings.Contains(m.sh("cat /proc/mdstat"), "raid0") {
		t.Fatalf("default layout %q:\n%s", l.Level, m.sh("cat /proc/mdstat"))
	}

	m.stopStart()
	wantContains(t, "root volume", m.sh("cat /etc/systemd/system/"+contract.UnitName+" /var/lib/storecrypt/state.json"), "ExecStart=", `"command": "apply"`)
	blank := m.checksums()
	un := m.agent("unlock", "--model", guestModel).must(t, contract.ExitOK)
	wantContains(t, "unlock notes", strings.Join(un.Report.Notes, "\n"), "blank")
	if c := un.changedSteps(); len(c) != 0 {
		t.Errorf("unlock on blank disks changed %v", c)
	}
	sameSums(t, blank, m.checksums())
	m.wantNoWrites(mountPoint)

	r10 := m.agent(append([]string{"apply", "--wipe", "--layout", "raid10"}, m.KMSArgs()...)...).must(t, contract.ExitOK)
	if l := r10.Report.Layout; l.Level != "raid10" || !l.Mounted {
		t.Fatalf("raid10 layout %+v", *l)
	}
	steps := r10.changedSteps()
	if !slices.Contains(steps, "wipe") {
		t.Errorf("apply --wipe changed %v, want a wipe step", steps)
	}
	if i, j := slices.Index(steps, "mount"), slices.Index(steps, "raid-resync"); i < 0 || j < i {
		t.Errorf("changed steps %v: the resync must resume after the mount", steps)
	}
	md := strings.TrimSpace(m.sh("basename $(readlink -f /dev/md/storecrypt)"))
	wantContains(t, "/proc/mdstat", m.sh("cat /proc/mdstat"), "raid10")
	if got := strings.TrimSpace(m.sh("cat /sys/block/" + md + "/md/sync_action")); got == "frozen" {
		t.Errorf("the resync is still paused after apply")
	}
	m.sh("echo kept > " + userFile + " && sync && mdadm --wait /dev/md/storecrypt || true")

	m.sh("mdadm /dev/md/storecrypt --fail /dev/nvme1n1 >/dev/null 2>&1")
	if got := m.sh("echo 3 > /proc/sys/vm/drop_caches; cat " + userFile); got != "kept\n" {
		t.Errorf("with a failed disk the file reads %q", got)
	}
	m.reboot()
	u := m.agent("unlock", "--model", guestModel).must(t, contract.ExitOK)
	if l := u.Report.Layout; l.Level != "raid10" || !l.Mounted {
		t.Errorf("unlock of the degraded raid10: %+v", *l)
	}
	if got := m.sh("cat " + userFile); got != "kept\n" {
		t.Errorf("after reboot the file reads %q", got)
	}

	m.stopStart()
	pd := m.agent(append([]string{"apply", "--layout", "per-disk"}, m.KMSArgs()...)...).must(t, contract.ExitOK)
	if l := pd.Report.Layout; l.Level != contract.LayoutPerDisk || len(l.Volumes) != 2 || !l.Mounted || strings.Count(l.LUKSUUID, ",") != 1 {
		t.Fatalf("per-disk layout %+v", *l)
	}
	m.sh("echo zero > " + mountPoint + "/0/f && echo one > " + mountPoint + "/1/f && sync")
	wantContains(t, "mounts", m.sh("cat /proc/mounts"), "/dev/mapper/storecrypt-0 "+mountPoint+"/0 ", "/dev/mapper/storecrypt-1 "+mountPoint+"/1 ")
	m.wantNoWrites(mountPoint, "0", "1")
	m.reboot()
	m.agent("unlock", "--model", guestModel, "--layout", "per-disk").must(t, contract.ExitOK)
	if got := m.sh("cat " + mountPoint + "/0/f " + mountPoint + "/1/f"); got != "zero\none\n" {
		t.Errorf("after reboot the per-disk files read %q", got)
	}
	// The document's default layout on per-disk volumes: they stay as they are.
	again := m.agent(append([]string{"apply"}, m.KMSArgs()...)...).must(t, contract.ExitOK)
	if again.Report.Changed || again.Report.Layout.Level != contract.LayoutPerDisk {
		t.Errorf("apply with the default layout changed %v: %+v", again.changedSteps(), *again.Report.Layout)
	}
}
