package agent

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/storecrypt/storecrypt/instance-agent/keytoken"
	"github.com/storecrypt/storecrypt/instance-agent/plan"
	"github.com/storecrypt/storecrypt/instance-agent/sysexec"
	"github.com/storecrypt/storecrypt/internal/contract"
)

func readUnit(t *testing.T, root string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(root, "etc/systemd/system", contract.UnitName))
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// TestInstall: install writes a unit that runs apply --boot before the runtimes, touches
// no disk, and changes nothing the second time; --now starts the unit without waiting.
func TestInstall(t *testing.T) {
	root := t.TempDir()
	sysfs(t, root, merge(disk("nvme1n1", "259:0"), map[string]string{"run/systemd/system/": ""}))
	o := kmsOptions()
	o.RequiredBy = contract.DefaultBootRequiredBy
	o.BindDirs = []string{"/var/lib/containerd", "/var/log/pods"}
	a, fake, _ := newTestAgent(t, root, []sysexec.Call{{Argv: "systemctl daemon-reload"}}, &fakeKeys{})
	rep, err := a.Install(context.Background(), o)
	if err != nil {
		t.Fatal(err)
	}
	fake.Done()
	unit := readUnit(t, root)
	for _, want := range []string{
		"ExecStart=/usr/local/sbin/storecrypt-agent apply --key-source kms-datakey --kms-key-id " + keyARN +
			` --mount-point /mnt/instance-store --model "Amazon EC2 NVMe Instance Storage" --filesystem ext4 --layout raid0` +
			" --required-by containerd.service,docker.service,kubelet.service --bind-dirs /var/lib/containerd,/var/log/pods --discard=true --boot --retry-for=4m0s",
		"Before=multi-user.target containerd.service docker.service kubelet.service",
		"After=network-online.target",
	} {
		if !strings.Contains(unit, want) {
			t.Errorf("unit lacks %q:\n%s", want, unit)
		}
	}
	for _, held := range contract.DefaultBootRequiredBy {
		if target, err := os.Readlink(filepath.Join(root, "etc/systemd/system", held+".requires", contract.UnitName)); err != nil || target != "../"+contract.UnitName {
			t.Errorf("%s does not require the unit: %v", held, err)
		}
	}
	if !rep.Changed || rep.Command != "install" || !rep.Layout.BootMode || len(rep.Devices) != 0 {
		t.Errorf("report %+v layout %+v", rep, rep.Layout)
	}

	a, fake, _ = newTestAgent(t, root, []sysexec.Call{{Argv: "systemctl start --no-block " + contract.UnitName}}, &fakeKeys{})
	a.StartUnit = true
	rep, err = a.Install(context.Background(), o)
	if err != nil {
		t.Fatal(err)
	}
	fake.Done()
	if rep.Steps[0].Changed || rep.Steps[1].Name != "start" {
		t.Errorf("second install: %+v", rep.Steps)
	}
}

// TestInstallRefusesBadInput: a unit that could not run is never written.
func TestInstallRefusesBadInput(t *testing.T) {
	root := t.TempDir()
	o := contract.DefaultAgentOptions() // kms-datakey without a key
	a, fake, _ := newTestAgent(t, root, nil, &fakeKeys{})
	if _, err := a.Install(context.Background(), o); ExitCodeOf(err) != contract.ExitBadInput {
		t.Fatalf("got %v, want bad input", err)
	}
	fake.Done()
	if _, err := os.Stat(filepath.Join(root, "etc/systemd/system", contract.UnitName)); !os.IsNotExist(err) {
		t.Errorf("a unit was written: %v", err)
	}
}

// TestCommandKeepsTheBootUnit: an apply from the SSM document on an instance in
// boot-time mode leaves the unit as installed and says so; the volume records which path
// made it.
func TestCommandKeepsTheBootUnit(t *testing.T) {
	for _, boot := range []bool{false, true} {
		root := t.TempDir()
		sysfs(t, root, merge(disk("nvme1n1", "259:0")))
		o := kmsOptions()
		a, _, _ := newTestAgent(t, root, nil, &fakeKeys{})
		if _, err := a.Install(context.Background(), o); err != nil {
			t.Fatal(err)
		}
		installed := readUnit(t, root)
		keys := &fakeKeys{}
		a, fake, _ := newTestAgent(t, root, append([]sysexec.Call{
			{Argv: "cryptsetup --version", Stdout: version},
			{Argv: "blkid -p -o export /dev/nvme1n1", Code: 2},
		}, provisionCalls()...), keys)
		o.Boot = boot
		rep, err := a.Apply(context.Background(), o)
		if err != nil {
			t.Fatal(err)
		}
		fake.Done()
		if got := readUnit(t, root); got != installed {
			t.Errorf("boot=%t: the unit was rewritten:\n%s", boot, got)
		}
		want := map[bool]string{false: contract.ProvisionedByCommand, true: contract.ProvisionedByBoot}[boot]
		tok, err := keytoken.Parse(fake.Stdins[3])
		if err != nil || tok.ProvisionedBy != want || rep.Layout.ProvisionedBy != want || !rep.Layout.BootMode || !rep.Layout.BootUnit {
			t.Errorf("boot=%t: token %+v (%v), layout %+v", boot, tok, err, rep.Layout)
		}
		if said := strings.Join(rep.Notes, "\n"); strings.Contains(said, "left as installed") == boot {
			t.Errorf("boot=%t: notes %q", boot, said)
		}
		// The document's run makes the boot unit's agent its own; the boot unit's run is it.
		updates := slices.ContainsFunc(rep.Steps, func(s contract.Step) bool { return s.Name == "boot-agent" })
		if updates == boot {
			t.Errorf("boot=%t: got a boot-agent step %v, want %v: %+v", boot, updates, !boot, rep.Steps)
		}
	}
}

// TestUpdateBootAgent: in boot-time mode a run from the document replaces the installed
// agent when it is another build, and reports the version the boot unit ran until then
// apart from its own; the same build is left, and asks nothing.
func TestUpdateBootAgent(t *testing.T) {
	for _, tc := range []struct {
		name      string
		installed string // the bytes at contract.AgentPath; "" for none
		calls     []sysexec.Call
		changed   bool
		boot      string // BootAgentVersion
	}{
		{"another build", "agent build 1", []sysexec.Call{{Argv: contract.AgentPath + " version", Stdout: "v1.0.0\n"}}, true, "v1.0.0"},
		{"the same build", "agent build 2", nil, false, "v2.0.0"},
		{"an installed agent that does not answer", "garbage", []sysexec.Call{{Argv: contract.AgentPath + " version", Code: 126}}, true, "unknown"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			root := t.TempDir()
			self := filepath.Join(t.TempDir(), "storecrypt-agent")
			installed := filepath.Join(root, contract.AgentPath)
			if err := os.WriteFile(self, []byte("agent build 2"), 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.MkdirAll(filepath.Dir(installed), 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(installed, []byte(tc.installed), 0o755); err != nil {
				t.Fatal(err)
			}
			a, fake, _ := newTestAgent(t, root, tc.calls, &fakeKeys{})
			a.Self, a.Version = self, "v2.0.0"
			ex := &executor{run: &run{Agent: a, ctx: context.Background(), rep: &contract.Report{AgentVersion: a.Version}}}
			if err := ex.updateBootAgent(plan.Step{Name: "boot-agent"}); err != nil {
				t.Fatal(err)
			}
			fake.Done()
			if b, _ := os.ReadFile(installed); string(b) != "agent build 2" {
				t.Errorf("the installed agent holds %q, want this build", b)
			}
			if got := ex.rep.Steps[0].Changed; got != tc.changed {
				t.Errorf("got changed %v, want %v", got, tc.changed)
			}
			if got := ex.rep.BootAgentVersion; got != tc.boot || ex.rep.AgentVersion != "v2.0.0" {
				t.Errorf("got boot agent %q (running %q), want %q (running v2.0.0)", got, ex.rep.AgentVersion, tc.boot)
			}
		})
	}
}

// TestBindDirs: on first use a directory's content is copied onto the volume and bound
// back, its root-disk copy sealed whole; a directory that did not exist is made; a bound
// one is left; one that something else is mounted on is refused before anything is
// written.
func TestBindDirs(t *testing.T) {
	root := t.TempDir()
	sysfs(t, root, merge(disk("nvme1n1", "259:0"), map[string]string{"var/lib/containerd/io.containerd.content/blob": "layer"}))
	o := kmsOptions()
	o.BindDirs = []string{"/var/lib/containerd", "/var/log/pods"}
	target := func(d string) string { return filepath.Join(root, "mnt/instance-store", contract.BindRoot, d) }
	cp := func() error {
		return exec.Command("cp", "-a", filepath.Join(root, "var/lib/containerd"), target("/var/lib/containerd")+".partial").Run()
	}
	calls := append([]sysexec.Call{
		{Argv: "cryptsetup --version", Stdout: version},
		{Argv: "blkid -p -o export /dev/nvme1n1", Code: 2},
	}, provisionCalls()...)
	calls = append(calls,
		sysexec.Call{Argv: "cp -a " + filepath.Join(root, "var/lib/containerd") + " " + target("/var/lib/containerd") + ".partial", Do: cp},
		sysexec.Call{Argv: "mount --bind /mnt/instance-store/storecrypt-bind/var/lib/containerd /var/lib/containerd"},
		sysexec.Call{Argv: "mount --bind /mnt/instance-store/storecrypt-bind/var/log/pods /var/log/pods"},
	)
	rep, sealed := applySealed(t, root, calls, o)
	if b, err := os.ReadFile(filepath.Join(target("/var/lib/containerd"), "io.containerd.content/blob")); err != nil || string(b) != "layer" {
		t.Errorf("the content was not copied onto the volume: %q %v", b, err)
	}
	if st, err := os.Stat(target("/var/log/pods")); err != nil || !st.IsDir() {
		t.Errorf("/var/log/pods has no place on the volume: %v", err)
	}
	if st, err := os.Stat(filepath.Join(root, "var/log/pods")); err != nil || !st.IsDir() {
		t.Errorf("/var/log/pods was not made on the root disk: %v", err)
	}
	// The root disk's copy is sealed whole: a subdirectory and a file in it too, or a
	// runtime writes there while the volume is not bound (TestSealTree tries the writes).
	if want := []string{"/mnt/instance-store", "/var/lib/containerd", "/var/lib/containerd/io.containerd.content",
		"/var/lib/containerd/io.containerd.content/blob", "/var/log/pods"}; !slices.Equal(sealed, want) {
		t.Errorf("sealed %q, want %q", sealed, want)
	}
	if !slices.Equal(rep.Layout.BindDirs, o.BindDirs) {
		t.Errorf("layout bind dirs %q", rep.Layout.BindDirs)
	}
	if unit := readUnit(t, root); !strings.Contains(unit, "--bind-dirs /var/lib/containerd,/var/log/pods") {
		t.Errorf("the boot unit does not bind them again:\n%s", unit)
	}

	mapper := func(more string) map[string]string {
		return map[string]string{"proc/self/mountinfo": "23 1 259:9 / / rw - xfs /dev/nvme0n1p1 rw\n" +
			"40 23 253:0 / /mnt/instance-store rw - ext4 /dev/mapper/storecrypt rw\n" +
			"41 23 253:0 /storecrypt-bind/var/lib/containerd /var/lib/containerd rw - ext4 /dev/mapper/storecrypt rw\n" + more,
			"sys/block/nvme1n1/holders/dm-0/": "", "sys/block/dm-0/dm/name": "storecrypt\n", "sys/block/dm-0/dev": "253:0", "sys/block/dm-0/size": "2097152"}
	}
	header := `{"tokens":{"0":{"type":"storecrypt","keyslots":["0"],"key_source":"kms-datakey","key_id":"` + keyARN + `","ciphertext":"d3JhcHBlZA==","context_keys":["storecrypt:instance-arn","storecrypt:volume"]}},"segments":{"0":{"encryption":"aes-xts-plain64","sector_size":4096}},"config":{"flags":["allow-discards"]}}`
	opened := []sysexec.Call{
		{Argv: "cryptsetup --version", Stdout: version},
		{Argv: "blkid -p -o export /dev/nvme1n1", Stdout: "TYPE=crypto_LUKS\nLABEL=storecrypt\nSUBSYSTEM=storecrypt-ready\nUUID=" + volUUID + "\n"},
		{Argv: "cryptsetup luksDump --dump-json-metadata /dev/nvme1n1", Stdout: header},
		{Argv: "blkid -p -o export /dev/mapper/storecrypt", Stdout: "TYPE=ext4\n"},
	}
	t.Run("one bound, one not", func(t *testing.T) {
		sysfs(t, root, mapper(""))
		a, fake, _ := newTestAgent(t, root, append(opened, sysexec.Call{Argv: "mount --bind /mnt/instance-store/storecrypt-bind/var/log/pods /var/log/pods"}), &fakeKeys{})
		if _, err := a.Unlock(context.Background(), o); err != nil {
			t.Fatal(err)
		}
		fake.Done()
	})
	t.Run("a held-back unit running: bound at the next boot", func(t *testing.T) {
		sysfs(t, root, mapper(""))
		sysfs(t, root, map[string]string{"run/systemd/system/": ""})
		defer os.RemoveAll(filepath.Join(root, "run/systemd"))
		held := o
		held.RequiredBy = []string{"containerd.service"}
		a, fake, _ := newTestAgent(t, root, append(opened, sysexec.Call{Argv: "systemctl is-active --quiet containerd.service"}), &fakeKeys{})
		rep, err := a.Unlock(context.Background(), held)
		if err != nil {
			t.Fatal(err)
		}
		fake.Done()
		if said := strings.Join(rep.Notes, "\n"); !strings.Contains(said, "/var/log/pods is not bound now: containerd.service is running") {
			t.Errorf("notes %q", said)
		}
		if !slices.Equal(rep.Layout.BindDirs, []string{"/var/lib/containerd"}) {
			t.Errorf("the report says %q are bound", rep.Layout.BindDirs)
		}
	})
	t.Run("something else mounted there", func(t *testing.T) {
		sysfs(t, root, mapper("42 23 0:30 / /var/log/pods rw - tmpfs tmpfs rw\n"))
		a, fake, _ := newTestAgent(t, root, opened, &fakeKeys{})
		_, err := a.Unlock(context.Background(), o)
		if ExitCodeOf(err) != contract.ExitRefusedUnsafe || !strings.Contains(err.Error(), "/var/log/pods: it has tmpfs:/ mounted on it") {
			t.Fatalf("got %v, want a refusal", err)
		}
		fake.Done()
	})
}

// TestInstallSelf: the agent is copied to its installed path only when the file there
// does not hold the running binary already.
func TestInstallSelf(t *testing.T) {
	self := strings.Repeat("agent build 1 ", 20000)
	for _, tc := range []struct {
		name      string
		installed *string // nil: no file there
		link      bool    // the installed path is the running binary (the boot unit's run)
		copied    bool
	}{
		{name: "first install", copied: true},
		{name: "same bytes", installed: &self, copied: false},
		{name: "the running binary itself", link: true, copied: false},
		{name: "same size, other bytes", installed: ptr(strings.Replace(self, "1", "2", 1)), copied: true},
		{name: "other size", installed: ptr(self + "x"), copied: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			root := t.TempDir()
			src := filepath.Join(t.TempDir(), "storecrypt-agent")
			if err := os.WriteFile(src, []byte(self), 0o755); err != nil {
				t.Fatal(err)
			}
			dst := filepath.Join(root, contract.AgentPath)
			if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
				t.Fatal(err)
			}
			switch {
			case tc.link:
				if err := os.Link(src, dst); err != nil {
					t.Fatal(err)
				}
			case tc.installed != nil:
				if err := os.WriteFile(dst, []byte(*tc.installed), 0o755); err != nil {
					t.Fatal(err)
				}
			}
			r := &run{Agent: &Agent{Root: root, Self: src}}
			copied, err := r.installSelf(nil)
			if err != nil {
				t.Fatal(err)
			}
			if copied != tc.copied {
				t.Errorf("copied = %v, want %v", copied, tc.copied)
			}
			if got, err := os.ReadFile(dst); err != nil || string(got) != self {
				t.Errorf("the installed agent is not the running one (%d bytes, %v)", len(got), err)
			}
		})
	}
}

func ptr(s string) *string { return &s }

// TestUninstall: after install, uninstall removes the unit and its links, reloads
// systemd, and unseals the mount point and each bound directory as the root disk holds
// them (through a plain bind of /), touching no disk; a second run finds nothing to
// remove and unseals again, harmlessly.
func TestUninstall(t *testing.T) {
	root := t.TempDir()
	sysfs(t, root, merge(disk("nvme1n1", "259:0"), map[string]string{"run/systemd/system/": ""}))
	o := kmsOptions()
	o.RequiredBy = []string{"containerd.service"}
	o.BindDirs = []string{"/var/lib/containerd", "/var/log/pods"}
	a, fake, _ := newTestAgent(t, root, []sysexec.Call{{Argv: "systemctl daemon-reload"}}, &fakeKeys{})
	if _, err := a.Install(context.Background(), o); err != nil {
		t.Fatal(err)
	}
	fake.Done()
	// What the plain bind of / shows: the root disk's own directories.
	view := filepath.Join(root, "run/storecrypt/root")
	showRoot := func() error {
		for _, d := range []string{"mnt/instance-store", "var/lib/containerd/io.containerd.content", "var/log/pods"} {
			if err := os.MkdirAll(filepath.Join(view, d), 0o755); err != nil {
				return err
			}
		}
		return nil
	}
	unbind := []sysexec.Call{{Argv: "mount --bind / /run/storecrypt/root", Do: showRoot}, {Argv: "umount /run/storecrypt/root"}}
	for _, run := range []struct {
		name    string
		calls   []sysexec.Call
		changed bool
	}{
		{"first", append([]sysexec.Call{{Argv: "systemctl daemon-reload"}}, unbind...), true},
		{"again", unbind, false},
	} {
		t.Run(run.name, func(t *testing.T) {
			a, fake, progress := newTestAgent(t, root, run.calls, &fakeKeys{})
			var unsealed []string
			a.Unseal = func(p string) error { unsealed = append(unsealed, strings.TrimPrefix(p, view)); return nil }
			rep, err := a.Uninstall(context.Background(), o)
			if err != nil {
				t.Fatalf("%v\n%s", err, progress)
			}
			fake.Done()
			if rep.Steps[0].Changed != run.changed {
				t.Errorf("boot-unit step changed %v, want %v: %+v", rep.Steps[0].Changed, run.changed, rep.Steps[0])
			}
			left, _ := filepath.Glob(filepath.Join(root, "etc/systemd/system/*", contract.UnitName))
			if _, err := os.Stat(filepath.Join(root, "etc/systemd/system", contract.UnitName)); err == nil || len(left) > 0 {
				t.Errorf("got the unit or links %q left, want none", left)
			}
			want := []string{"/mnt/instance-store", "/var/lib/containerd", "/var/lib/containerd/io.containerd.content", "/var/log/pods"}
			if !slices.Equal(unsealed, want) {
				t.Errorf("unsealed %q, want %q", unsealed, want)
			}
		})
	}
}
