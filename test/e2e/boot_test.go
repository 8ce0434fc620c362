package e2e

import (
	"strings"
	"testing"
	"time"

	"github.com/storecrypt/storecrypt/internal/contract"
)

// stateSource is what the stand-in containerd (test/vm/systemd/containerd.service) found
// holding its state directory when it started: the volume, bound from its place there.
const stateSource = "/dev/mapper/storecrypt[/storecrypt-bind/var/lib/containerd]"

// TestBootTimeMode: on a guest that boots Debian with systemd, `storecrypt-agent install`
// (as an image build runs it) makes every boot provision or reopen the volume and bind
// containerd's state onto it before containerd starts; with KMS down at boot containerd
// waits and nothing reaches the root disk; a stop/start provisions anew; the SSM
// document's apply afterwards recognises the boot unit's work and redoes nothing.
func TestBootTimeMode(t *testing.T) {
	m := newMachine(t, machineOpts{disks: 2, systemd: true})
	if err := m.EmulatorsAtBoot(ctxTimeout(t)); err != nil {
		t.Fatal(err)
	}
	binds := "/var/lib/containerd,/var/log/pods"
	inst := m.agent(append([]string{"install", "--bind-dirs", binds}, m.KMSArgs()...)...).must(t, contract.ExitOK)
	if !inst.Report.Layout.BootMode || len(inst.Report.Devices) != 0 {
		t.Errorf("install report: %s", inst.Stdout)
	}
	m.sh("systemctl enable --quiet containerd.service")
	// State the image carries below the top: the root disk's copy is sealed whole, so
	// nothing lands in a subdirectory or an existing file either while KMS is down.
	m.sh("mkdir -p /var/lib/containerd/io.containerd.content && echo a layer the image carried >/var/lib/containerd/io.containerd.content/blob")
	ebs := m.checksums()["ebs.img"]

	t.Log("first boot from the image: provision before containerd")
	m.reboot()
	first := m.bootedBeforeContainerd(1)
	st := m.agent("status", "--model", guestModel, "--bind-dirs", binds).must(t, contract.ExitOK)
	if l := st.Report.Layout; l == nil || l.ProvisionedBy != contract.ProvisionedByBoot || !l.Mounted || l.RAID == "" || !l.BootMode {
		t.Fatalf("status after the first boot: %s", st.Stdout)
	}
	if got := m.sh("cat " + mountPoint + "/storecrypt-bind/var/lib/containerd/from-the-image"); got != "content the image carried\n" {
		t.Errorf("the image's content was not carried onto the volume: %q", got)
	}
	if got := m.sh("cat " + mountPoint + "/storecrypt-bind/var/lib/containerd/io.containerd.content/blob"); got != "a layer the image carried\n" {
		t.Errorf("the image's subdirectory was not carried onto the volume: %q", got)
	}
	m.rootDiskHasNoStarts()

	t.Log("the SSM document's apply after the boot unit: nothing redone")
	ssm := m.agent(append([]string{"apply", "--bind-dirs", binds}, m.KMSArgs()...)...).must(t, contract.ExitOK)
	if ssm.Report.Changed || ssm.Report.Layout.ProvisionedBy != contract.ProvisionedByBoot || !ssm.Report.Layout.BootMode {
		t.Errorf("apply after boot-time provisioning changed %v: %s", ssm.changedSteps(), ssm.Stdout)
	}
	wantContains(t, "apply's notes", strings.Join(ssm.Report.Notes, "\n"), "left as installed")

	t.Log("reboot: reopened before containerd")
	m.reboot()
	m.bootedBeforeContainerd(2)
	m.rootDiskHasNoStarts()

	t.Log("KMS down at boot: containerd waits, nothing written to the root disk")
	m.Emu.KMSDown()
	m.reboot()
	m.waitFor("the boot unit retrying", "journalctl -b -u "+contract.UnitName+" | grep -q 'retrying in'", 2*time.Minute)
	if got := strings.TrimSpace(m.run("systemctl is-active containerd.service")); got != "inactive" {
		t.Errorf("containerd is %s while the volume is locked", got)
	}
	if out := m.run("findmnt -n /var/lib/containerd"); strings.TrimSpace(out) != "" {
		t.Errorf("/var/lib/containerd is mounted while the volume is locked: %s", out)
	}
	m.wantNoWrites("/var/lib/containerd", "from-the-image", "io.containerd.content")
	m.wantNoWrites("/var/lib/containerd/io.containerd.content", "blob")
	m.wantNoWrites(mountPoint)
	if err := m.Emu.KMSUp(); err != nil {
		t.Fatal(err)
	}
	m.bootedBeforeContainerd(3)
	m.rootDiskHasNoStarts()

	t.Log("stop and start: blank disks, provisioned again at boot")
	m.stopStart()
	m.bootedBeforeContainerd(1)
	again := m.agent("status", "--model", guestModel, "--bind-dirs", binds).must(t, contract.ExitOK)
	if again.Report.Layout.LUKSUUID == st.Report.Layout.LUKSUUID || again.Report.Layout.ProvisionedBy != contract.ProvisionedByBoot {
		t.Errorf("after stop/start the volume is %s (was %s)", again.Report.Layout.LUKSUUID, st.Report.Layout.LUKSUUID)
	}
	m.rootDiskHasNoStarts()
	if m.checksums()["ebs.img"] != ebs {
		t.Error("the EBS volume changed")
	}
	t.Logf("boot to mounted on the first boot: %.2fs", first.Seconds())
}

// bootedBeforeContainerd waits for the stand-in containerd to run and checks that the
// boot unit finished first, that containerd's state directory was on the volume when it
// started, and that it has started starts times on this volume. It logs the journal's
// lines that show the order and returns the time from the kernel's start to the volume
// mounted.
func (m *machine) bootedBeforeContainerd(starts int) time.Duration {
	m.t.Helper()
	m.waitFor("containerd running", "systemctl is-active --quiet containerd.service", 5*time.Minute)
	mounted := m.monotonic(contract.UnitName, "ActiveEnterTimestampMonotonic")
	began := m.monotonic("containerd.service", "InactiveExitTimestampMonotonic")
	if mounted == 0 || began < mounted {
		m.t.Errorf("containerd began starting at %s, the volume was ready at %s", began, mounted)
	}
	if got := strings.TrimSpace(m.sh("cat /run/containerd-state-source")); got != stateSource {
		m.t.Errorf("containerd started with its state on %q, want %q", got, stateSource)
	}
	if got := strings.Count(m.sh("cat /var/lib/containerd/starts"), "started in boot"); got != starts {
		m.t.Errorf("the volume records %d starts of containerd, want %d", got, starts)
	}
	var order []string
	for _, line := range strings.Split(m.sh("journalctl -b -o short-monotonic --no-hostname -u "+contract.UnitName+" -u containerd.service"), "\n") {
		for _, w := range []string{"Starting", "Started", "Finished", "[mount]", "[bind]", "retrying"} {
			if strings.Contains(line, w) {
				order = append(order, line)
				break
			}
		}
	}
	m.t.Logf("journal:\n%s", strings.Join(order, "\n"))
	m.t.Logf("the volume was mounted %.2fs after the kernel started; containerd began %.2fs after", mounted.Seconds(), began.Seconds())
	return mounted
}

// monotonic reads a unit's timestamp property: the time since the kernel started.
func (m *machine) monotonic(unit, prop string) time.Duration {
	m.t.Helper()
	times, err := m.Monotonic(ctxTimeout(m.t), unit, prop)
	if err != nil {
		m.t.Fatal(err)
	}
	return times[prop]
}

// rootDiskHasNoStarts: what containerd wrote is on the volume only. A second, plain bind
// of / shows the root disk under every mount.
func (m *machine) rootDiskHasNoStarts() {
	m.t.Helper()
	out := m.sh("mkdir -p /run/rootview && mount --bind / /run/rootview && ls -A /run/rootview/var/lib/containerd /run/rootview" + mountPoint + "; umount /run/rootview")
	if strings.Contains(out, "starts") || strings.Contains(out, contract.BindRoot) {
		m.t.Errorf("the root disk holds what was written on the volume:\n%s", out)
	}
}

// run runs a shell command in the guest and returns its stdout whatever its exit.
func (m *machine) run(script string) string {
	m.t.Helper()
	r, err := m.Guest.Run(ctxTimeout(m.t), []string{"sh", "-c", script}, nil)
	if err != nil {
		m.t.Fatal(err)
	}
	return r.Stdout
}

// waitFor polls script in the guest until it exits 0.
func (m *machine) waitFor(what, script string, d time.Duration) {
	m.t.Helper()
	deadline := time.Now().Add(d)
	for {
		r, err := m.Guest.Run(ctxTimeout(m.t), []string{"sh", "-c", script}, nil)
		if err != nil {
			m.t.Fatal(err)
		}
		if r.Code == 0 {
			return
		}
		if time.Now().After(deadline) {
			m.t.Fatalf("waited %s for %s\njournal:\n%s", d, what, m.run("journalctl -b --no-pager -n 80"))
		}
		time.Sleep(time.Second)
	}
}
