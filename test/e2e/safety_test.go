package e2e

import (
	"bytes"
	"crypto/rand"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/storecrypt/storecrypt/internal/contract"
	"github.com/storecrypt/storecrypt/test/emu"
	"github.com/storecrypt/storecrypt/test/vm"
)

// TestRefusals: a disk that holds anything storecrypt did not write is left byte for byte
// as it was, and the run exits refused-unsafe, whether discovery or --devices found it;
// "anything" includes data blkid knows no signature for, wherever on the disk.
func TestRefusals(t *testing.T) {
	m := newMachine(t, machineOpts{disks: 5, prepare: func(t *testing.T, i int, path string) {
		switch i {
		case 0: // ext4 holding a user's file
			dir := t.TempDir()
			if err := os.WriteFile(filepath.Join(dir, "precious.txt"), []byte("do not format me\n"), 0o644); err != nil {
				t.Fatal(err)
			}
			run(t, "mkfs.ext4", "-q", "-d", dir, path)
		case 1: // somebody else's LUKS2 volume
			cmd := exec.Command("cryptsetup", "luksFormat", "--batch-mode", "--type", "luks2", "--pbkdf", "pbkdf2",
				"--pbkdf-force-iterations", "1000", "--label", "theirs", "--key-file", "-", path)
			cmd.Stdin = strings.NewReader("their passphrase")
			if out, err := cmd.CombinedOutput(); err != nil {
				t.Fatalf("luksFormat: %v\n%s", err, out)
			}
		case 3: // plain dm-crypt, say: 8 MiB of ciphertext at offset 0, no signature
			writeRandom(t, path, 0, 8<<20)
		case 4: // a raw-device database that wrote only in the middle of the 64 MiB disk
			writeRandom(t, path, 30<<20, 4<<20)
		}
	}})
	before := m.checksums()
	for _, tc := range []struct {
		name string
		args []string
		says string
	}{
		{"discovery sees a foreign disk among blank ones", nil, "holds ext4"},
		{"ext4 with data", []string{"--devices", "/dev/nvme0n1"}, "holds ext4"},
		{"someone else's LUKS", []string{"--devices", "/dev/nvme1n1"}, `crypto_LUKS (label "theirs")`},
		{"8 MiB of random data at offset 0", []string{"--devices", "/dev/nvme3n1"}, "data without a signature blkid knows (non-zero bytes at byte 0 of"},
		{"random data only in the middle", []string{"--devices", "/dev/nvme4n1"}, "data without a signature blkid knows (non-zero bytes at byte 3"},
		{"an EBS volume named by hand", []string{"--devices", "/dev/vdb"}, "not an instance-store NVMe namespace"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			args := append([]string{"apply", "--key-source", contract.KeySourceEphemeral, "--model", guestModel}, tc.args...)
			r := m.agent(args...).must(t, contract.ExitRefusedUnsafe)
			wantContains(t, "error", r.Report.Error, tc.says, "nothing was written")
			sameSums(t, before, m.checksums())
		})
	}
	if out := m.sh("ls /sys/block/vdb/serial >/dev/null && cat /sys/block/vdb/serial"); strings.TrimSpace(out) != "ebs" {
		t.Fatalf("/dev/vdb is %q, want the EBS stand-in", out)
	}
}

// writeRandom writes n random bytes at byte off of the disk image at path.
func writeRandom(t *testing.T, path string, off int64, n int) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	b := make([]byte, n)
	_, _ = rand.Read(b)
	if _, err := f.WriteAt(b, off); err != nil {
		t.Fatal(err)
	}
}

// TestAssembledLate: a ready array that is not running yet (apply --boot before udev
// assembled it) is never taken for a creation cut short. A --devices superset of it, or
// one of its disks named beside a blank one, is refused and leaves every disk as it was;
// its own disks assemble it, the user's file intact.
func TestAssembledLate(t *testing.T) {
	m := newMachine(t, machineOpts{disks: 3})
	apply := func(devices string) []string {
		return append(append([]string{"apply"}, m.KMSArgs()...), "--devices", devices)
	}
	ours := "/dev/nvme0n1,/dev/nvme1n1"
	m.agent(apply(ours)...).must(t, contract.ExitOK)
	m.sh("echo precious > " + userFile + " && sync")
	// What a boot shows before udev assembles the array: its members, idle.
	m.sh("umount " + mountPoint + " && cryptsetup close " + contract.MapperName + " && mdadm --stop /dev/md/" + contract.ArrayName)
	before := m.checksums()
	for _, tc := range []struct{ name, devices, says string }{
		{"a superset of the array", ours + ",/dev/nvme2n1", "a 2-disk storecrypt array and 3 disks were given"},
		{"one of its disks beside a blank one", "/dev/nvme0n1,/dev/nvme2n1", "is a member of an array that"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := m.agent(apply(tc.devices)...).must(t, contract.ExitRefusedUnsafe)
			wantContains(t, "error", r.Report.Error, tc.says, "nothing was written")
			sameSums(t, before, m.checksums())
		})
	}
	r := m.agent(apply(ours)...).must(t, contract.ExitOK)
	if !slices.Contains(r.changedSteps(), "raid-assemble") {
		t.Errorf("apply on its own disks changed %v, want raid-assemble", r.changedSteps())
	}
	if got := m.sh("cat " + userFile); got != "precious\n" {
		t.Errorf("user file reads %q, want %q", got, "precious\n")
	}
}

// TestPowerCut kills the guest at points inside apply. The next apply converges, and once
// a user has written, no later cut loses it.
func TestPowerCut(t *testing.T) {
	for _, tc := range []struct {
		step string
		done bool // cut when the step has finished; else while it runs
	}{
		{"raid-create", false},
		{"luks-format", true},
		{"luks-token", true},
		{"mkfs", false},
		{"mkfs", true},
	} {
		name, suffix := tc.step+" running", "..."
		if tc.done {
			name, suffix = tc.step+" done", "s)"
		}
		t.Run(name, func(t *testing.T) {
			m := newMachine(t, machineOpts{disks: 2})
			var once sync.Once
			var stderr strings.Builder
			// Progress lines: "[step] action ..." when a step starts, "[step] action (0.41s)"
			// when it ends. The cut follows the line by the few milliseconds a kill takes.
			_, _ = m.Guest.Exec(ctxTimeout(t), vm.Cmd{
				Argv: append([]string{"storecrypt-agent", "apply"}, m.KMSArgs()...),
				Env:  emu.Env(),
				OnStderr: func(chunk string) {
					stderr.WriteString(chunk)
					for _, line := range strings.Split(stderr.String(), "\n") {
						if strings.Contains(line, "["+tc.step+"]") && strings.HasSuffix(line, suffix) {
							once.Do(m.Guest.Kill)
						}
					}
				},
			}) // the run dies with the guest, so Exec reports an error by design
			if !strings.Contains(stderr.String(), "["+tc.step+"]") {
				t.Fatalf("apply never reached %s:\n%s", tc.step, stderr.String())
			}
			m.boot()
			r := m.agent(append([]string{"apply"}, m.KMSArgs()...)...).must(t, contract.ExitOK)
			t.Logf("cut after: %q; the next apply did %v, notes %v", lastLine(stderr.String()), r.changedSteps(), r.Report.Notes)
			m.sh("echo survived > " + userFile + " && sync")
			m.powerCut()
			m.agent(append([]string{"apply"}, m.KMSArgs()...)...).must(t, contract.ExitOK)
			if got := m.sh("cat " + userFile); got != "survived\n" {
				t.Errorf("user file after a later power cut reads %q", got)
			}
		})
	}
}

func lastLine(s string) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	return lines[len(lines)-1]
}

// TestSecretsStayOut: the data key appears in no output, no command line sampled during
// apply and unlock, and nowhere on the disks (the header keeps only the wrapped key).
func TestSecretsStayOut(t *testing.T) {
	m := newMachine(t, machineOpts{disks: 1})
	sampler := "i=0; while [ $i -lt 400 ]; do cat /proc/[0-9]*/cmdline 2>/dev/null; i=$((i+1)); done"
	var wg sync.WaitGroup
	var cmdlines string
	wg.Add(1)
	go func() {
		defer wg.Done()
		r, err := m.Guest.Run(ctxTimeout(t), []string{"sh", "-c", sampler}, nil)
		if err != nil {
			t.Errorf("sampling cmdlines: %v", err)
		}
		cmdlines = r.Stdout
	}()
	apply := m.agent(append([]string{"apply"}, m.KMSArgs()...)...).must(t, contract.ExitOK)
	wg.Wait()
	if !strings.Contains(cmdlines, "storecrypt-agent") {
		t.Fatalf("the sampler saw no agent command line; it proves nothing")
	}
	key := m.tokenPlaintext("/dev/nvme0n1")
	m.reboot()
	unlock := m.agent("unlock", "--model", guestModel).must(t, contract.ExitOK)
	m.sh("sync")
	m.Guest.Close()
	m.Guest = nil
	haystacks := map[string][]byte{
		"apply stdout": []byte(apply.Stdout), "apply stderr": []byte(apply.Stderr),
		"unlock stdout": []byte(unlock.Stdout), "unlock stderr": []byte(unlock.Stderr),
		"sampled cmdlines": []byte(cmdlines),
	}
	for _, d := range append(append([]vm.Disk{}, m.NVMe...), m.Root) {
		b, err := os.ReadFile(d.Path)
		if err != nil {
			t.Fatal(err)
		}
		haystacks[filepath.Base(d.Path)] = b
	}
	for _, enc := range [][]byte{key, []byte(b64(key))} {
		for name, hay := range haystacks {
			if bytes.Contains(hay, enc) {
				t.Errorf("the data key appears in %s", name)
			}
		}
	}
}

// TestConcurrentApply: two applies at once (a duplicate SSM command) do not race: one
// waits for the other and then finds nothing to do.
func TestConcurrentApply(t *testing.T) {
	m := newMachine(t, machineOpts{disks: 2})
	var wg sync.WaitGroup
	results := make([]agentResult, 2)
	for i := range results {
		wg.Add(1)
		go func() {
			defer wg.Done()
			results[i] = m.agent(append([]string{"apply"}, m.KMSArgs()...)...)
		}()
	}
	wg.Wait()
	formats := 0
	for _, r := range results {
		r.must(t, contract.ExitOK)
		for _, s := range r.changedSteps() {
			if s == "luks-format" {
				formats++
			}
		}
	}
	if formats != 1 {
		t.Errorf("%d runs formatted, want exactly 1", formats)
	}
	wantContains(t, "both stderrs", results[0].Stderr+results[1].Stderr, "waiting up to")
}
