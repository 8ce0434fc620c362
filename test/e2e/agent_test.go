package e2e

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kms"

	"github.com/storecrypt/storecrypt/internal/contract"
	"github.com/storecrypt/storecrypt/test/emu"
)

const (
	mountPoint = "/mnt/instance-store"
	userFile   = mountPoint + "/user-data.txt"
)

// TestApplyRebootUnlock is the agent's life on one and on two disks: apply, write, apply
// again (nothing changes), reboot, unlock, read back.
func TestApplyRebootUnlock(t *testing.T) {
	for _, tc := range []struct {
		name   string
		disks  int
		layout func(t *testing.T, l *contract.Layout)
	}{
		{"one disk", 1, func(t *testing.T, l *contract.Layout) {
			if l.RAID != "" || l.Volume != "/dev/nvme0n1" {
				t.Errorf("layout raid %q volume %q, want no raid on /dev/nvme0n1", l.RAID, l.Volume)
			}
		}},
		{"two disks RAID0", 2, func(t *testing.T, l *contract.Layout) {
			if !strings.HasPrefix(l.RAID, "/dev/md") || l.Volume != l.RAID {
				t.Errorf("layout raid %q volume %q, want LUKS on an md array", l.RAID, l.Volume)
			}
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m := newMachine(t, machineOpts{disks: tc.disks})
			before := m.checksums()
			first := m.agent(append([]string{"apply"}, m.KMSArgs()...)...).must(t, contract.ExitOK)
			l := first.Report.Layout
			tc.layout(t, l)
			if !l.Mounted || !l.Open || l.State != contract.StateReady || l.Cipher != "aes-xts-plain64" || l.SectorSize != 4096 || l.KeySource != contract.KeySourceKMSDataKey || l.KeyID != m.KeyARN || !l.BootUnit {
				t.Errorf("layout after apply: %+v", *l)
			}
			wantSteps := []string{"luks-format", "luks-token", "luks-open", "mkfs", "mark-ready", "mount", "boot-unit"}
			if tc.disks > 1 {
				wantSteps = append([]string{"raid-create"}, wantSteps...)
			}
			if got := first.changedSteps(); !slices.Equal(got, wantSteps) {
				t.Errorf("changed steps %v, want %v", got, wantSteps)
			}
			var timings []string
			for _, s := range first.Report.Steps {
				if s.Seconds < 0 {
					t.Errorf("step %s has negative duration", s.Name)
				}
				timings = append(timings, fmt.Sprintf("%s %.2fs", s.Name, s.Seconds))
			}
			t.Logf("apply on %d disk(s) in %.2fs: %s", tc.disks, first.Report.Seconds, strings.Join(timings, ", "))
			wantContains(t, "stderr", first.Stderr, "[luks-format]", "[mkfs]", "[mount]")
			m.sh("echo hello-from-" + strings.ReplaceAll(tc.name, " ", "-") + " > " + userFile + " && sync")
			mounts := m.sh("grep ' /mnt/instance-store ' /proc/mounts")
			wantContains(t, "/proc/mounts", mounts, "/dev/mapper/storecrypt", "noatime")
			flags := m.sh("cryptsetup luksDump " + l.Volume)
			wantContains(t, "luksDump", flags, "allow-discards", "no-read-workqueue", "no-write-workqueue", "sector: 4096")

			second := m.agent(append([]string{"apply"}, m.KMSArgs()...)...).must(t, contract.ExitOK)
			if second.Report.Changed || len(second.changedSteps()) != 0 {
				t.Errorf("second apply changed %v, want nothing", second.changedSteps())
			}
			wantContains(t, "second apply", second.Stderr, "already open and mounted")

			sameSums(t, map[string]string{"ebs.img": before["ebs.img"]}, m.checksums())
			m.reboot()
			if out := m.sh("grep -c ' /mnt/instance-store ' /proc/mounts || true"); strings.TrimSpace(out) != "0" {
				t.Fatalf("mounted before unlock after reboot: %s", out)
			}
			un := m.agent("unlock", "--model", guestModel).must(t, contract.ExitOK)
			// No udev in the guest: the array is assembled by the agent, as it would be on
			// an AMI whose udev rules do not assemble arrays by themselves.
			wantUnlock := []string{"luks-open", "mount"}
			if tc.disks > 1 {
				wantUnlock = append([]string{"raid-assemble"}, wantUnlock...)
			}
			if got := un.changedSteps(); !slices.Equal(got, wantUnlock) {
				t.Errorf("unlock changed %v, want %v", got, wantUnlock)
			}
			if got := m.sh("cat " + userFile); !strings.Contains(got, "hello-from-") {
				t.Errorf("after reboot the file reads %q", got)
			}
			st := m.agent("status", "--model", guestModel).must(t, contract.ExitOK)
			if st.Report.LastRun == nil || st.Report.LastRun.Command != "unlock" || !st.Report.Layout.Mounted {
				t.Errorf("status: last run %+v, layout %+v", st.Report.LastRun, st.Report.Layout)
			}
			sameSums(t, map[string]string{"ebs.img": before["ebs.img"]}, m.checksums())
		})
	}
}

// TestXFS: the optional filesystem, on a disk large enough for mkfs.xfs (300 MB minimum).
func TestXFS(t *testing.T) {
	m := newMachine(t, machineOpts{disks: 1, sizeMB: 320})
	r := m.agent("apply", "--model", guestModel, "--key-source", contract.KeySourceEphemeral, "--filesystem", contract.FilesystemXFS).must(t, contract.ExitOK)
	if r.Report.Layout.Filesystem != contract.FilesystemXFS {
		t.Errorf("filesystem %q, want xfs", r.Report.Layout.Filesystem)
	}
	wantContains(t, "/proc/mounts", m.sh("grep ' /mnt/instance-store ' /proc/mounts"), "xfs", "noatime")
}

// tokenPlaintext reads the volume's token from the guest and unwraps its data key on the
// host with the same encryption context, so tests can look for the key where it must not be.
func (m *machine) tokenPlaintext(dev string) []byte {
	m.t.Helper()
	var tok struct {
		Ciphertext []byte `json:"ciphertext"`
	}
	out := m.sh("cryptsetup token export --token-id 0 " + dev)
	if err := json.Unmarshal([]byte(out), &tok); err != nil {
		m.t.Fatalf("token %q: %v", out, err)
	}
	uuid := strings.TrimSpace(m.sh("cryptsetup luksUUID " + dev))
	dec, err := m.Emu.KMS.Decrypt(context.Background(), &kms.DecryptInput{
		CiphertextBlob:    tok.Ciphertext,
		EncryptionContext: contract.EncryptionContext(emu.InstanceARN, uuid),
	})
	if err != nil {
		m.t.Fatalf("unwrapping the token's data key with the instance and volume context: %v", err)
	}
	return dec.Plaintext
}

// encryptSecret makes the seed recipe's S3 object: the raw KMS ciphertext of the passphrase.
func (m *machine) encryptSecret(pass string) []byte {
	m.t.Helper()
	out, err := m.Emu.KMS.Encrypt(context.Background(), &kms.EncryptInput{KeyId: aws.String(m.KeyARN), Plaintext: []byte(pass)})
	if err != nil {
		m.t.Fatal(err)
	}
	return out.CiphertextBlob
}

func b64(b []byte) string { return base64.StdEncoding.EncodeToString(b) }
