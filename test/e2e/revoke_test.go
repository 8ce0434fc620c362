package e2e

import (
	"context"
	"encoding/hex"
	"encoding/json"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kms"

	"github.com/storecrypt/storecrypt/internal/contract"
	"github.com/storecrypt/storecrypt/test/emu"
	"github.com/storecrypt/storecrypt/test/vm"
)

// TestRevokeResumeShred: revoke takes the volume key out of the kernel (dm-crypt's table
// and the keyring) and every read waits, a file read before the revoke too; resume gives
// the waiting reads their bytes; a reboot (a power cut) while revoked leaves the volume
// locked: the boot unit asks KMS nothing while the mark is there, and without the mark
// (an attacker removed it) KMS's refusal keeps it locked; resume after the reboot opens
// it with every byte; shred leaves a header with no keyslot and no token, which the
// passphrase KMS still unwraps from the saved token cannot open.
func TestRevokeResumeShred(t *testing.T) {
	m := newMachine(t, machineOpts{disks: 2})
	ap := m.agent(append([]string{"apply"}, m.KMSArgs()...)...).must(t, contract.ExitOK)
	l := ap.Report.Layout
	m.sh("for f in read unread; do head -c 1048576 /dev/urandom >" + mountPoint + "/$f; done; sync")
	sums := m.sh("cd " + mountPoint + " && sha256sum read unread")
	// Only read stays in the page cache: what was written is cached too until dropped.
	m.sh("echo 3 >/proc/sys/vm/drop_caches; cat " + mountPoint + "/read >/dev/null")

	saved := m.sh("cryptsetup luksDump --dump-json-metadata " + l.Volume)
	pass := m.passphrase(saved, l.LUKSUUID, ap.Report.InstanceID)
	volumeKey := m.volumeKey(l.Volume, pass)
	keyRef := "cryptsetup:" + l.LUKSUUID
	wantContains(t, "the kernel's table before revoke", m.sh("dmsetup table --showkeys storecrypt"), keyRef)

	revoke := func() {
		t.Helper()
		r := m.agent("revoke", "--reason", "incident 7", "--by", "responder").must(t, contract.ExitOK)
		if got, want := r.changedSteps(), []string{"sync", "luks-suspend", "drop-caches", "mark"}; !slices.Equal(got, want) {
			t.Errorf("revoke changed %v, want %v", got, want)
		}
		kernel := m.sh("dmsetup table --showkeys; cat /proc/keys")
		if strings.Contains(kernel, volumeKey) || strings.Contains(kernel, keyRef) {
			t.Errorf("after revoke the kernel still holds the volume key:\n%s", kernel)
		}
		if got := strings.TrimSpace(m.sh("cat /sys/block/dm-*/dm/suspended")); got != "1" {
			t.Errorf("dm suspended %q, want 1", got)
		}
	}

	t.Log("revoke: the key leaves the kernel, reads wait")
	revoke()
	m.sh("rm -f /tmp/*.rc; for f in read unread; do (cat " + mountPoint + "/$f >/tmp/$f.copy; echo $? >/tmp/$f.rc) </dev/null >/dev/null 2>&1 & done; sleep 5")
	if done := m.sh("ls /tmp | grep '\\.rc$' || true"); done != "" {
		t.Errorf("reads finished while revoked (%s): a cached or unsuspended file still reads", strings.Fields(done))
	}
	again := m.agent("revoke", "--reason", "again").must(t, contract.ExitOK)
	if again.Report.Changed {
		t.Errorf("a second revoke changed %v", again.changedSteps())
	}
	for _, cmd := range [][]string{{"unlock", "--model", guestModel}, append([]string{"apply"}, m.KMSArgs()...)} {
		m.agent(cmd...).must(t, contract.ExitRevoked)
	}
	st := m.agent("status", "--model", guestModel).must(t, contract.ExitOK)
	if rv := st.Report.Revocation; rv == nil || rv.State != contract.Revoked || rv.Reason != "incident 7" || rv.By != "responder" || !st.Report.Layout.Suspended {
		t.Errorf("status while revoked: %s", st.Stdout)
	}

	t.Log("resume: the waiting reads get their bytes")
	m.agent("resume", "--reason", "contained", "--model", guestModel).must(t, contract.ExitOK)
	m.waitFor("the waiting reads", "test -s /tmp/read.rc && test -s /tmp/unread.rc", 30*time.Second)
	if got := m.sh("cat /tmp/read.rc /tmp/unread.rc; cd /tmp && sha256sum read.copy unread.copy | sed 's/\\.copy//'"); got != "0\n0\n"+sums {
		t.Errorf("the reads that waited got %q, want exit 0 and %q", got, sums)
	}

	t.Log("revoke, reboot: locked, with and without the mark")
	revoke()
	// A power cut, not the harness's reboot: its sync(2) waits on the suspended mapping
	// until resume, as every sync on a revoked instance does. What was written before
	// the revoke is on the disks: revoke synced it.
	m.powerCut()
	boot := m.bootUnitArgs()
	m.Emu.TakeAccessKeys()
	r := m.agent(boot...).must(t, contract.ExitRevoked)
	if calls := m.Emu.TakeAccessKeys()["kms"]; len(calls) != 0 {
		t.Errorf("the boot unit made %d KMS calls while revoked, want none", len(calls))
	}
	wantContains(t, "the boot unit's error", r.Report.Error, "revoked", "resume")
	m.sh("mv " + contract.RevocationPath + " /tmp/mark")
	m.Emu.Deny("Decrypt")
	// The unit retries a refused key for minutes; once is enough to see it refused.
	m.agent(append(boot, "--"+contract.FlagRetryFor, "0s")...).must(t, contract.ExitKeyUnavailable)
	m.Emu.Deny()
	if out := m.sh("grep -c ' " + mountPoint + " ' /proc/mounts || true"); strings.TrimSpace(out) != "0" {
		t.Errorf("mounted while revoked: %s", out)
	}
	m.sh("mv /tmp/mark " + contract.RevocationPath)
	m.Emu.Deny("Decrypt")
	m.agent("resume", "--reason", "contained", "--model", guestModel).must(t, contract.ExitKeyUnavailable)
	m.Emu.Deny()
	m.sh("test -e " + contract.RevocationPath)

	res := m.agent("resume", "--reason", "contained", "--model", guestModel).must(t, contract.ExitOK)
	if !res.Report.Layout.Mounted {
		t.Errorf("resume after the reboot: %s", res.Stdout)
	}
	if got := m.sh("cd " + mountPoint + " && sha256sum read unread"); got != sums {
		t.Errorf("after resume the files read %q, want %q", got, sums)
	}

	t.Log("shred: no keyslot, no token, nothing opens")
	m.agent("shred", "--reason", "compromised", "--confirm", "i-0000000000000000").must(t, contract.ExitBadInput)
	sh := m.agent("shred", "--reason", "compromised", "--confirm", ap.Report.InstanceID).must(t, contract.ExitOK)
	want := []string{"sync", "luks-suspend", "drop-caches", "luks-erase", "luks-token-remove", "dm-error", "umount", "dm-remove", "raid-stop", "mark"}
	if got := sh.changedSteps(); !slices.Equal(got, want) {
		t.Errorf("shred changed %v, want %v", got, want)
	}
	if out := m.sh("grep -c ' " + mountPoint + " ' /proc/mounts || true"); strings.TrimSpace(out) != "0" {
		t.Errorf("mounted after shred: %s", out)
	}
	if l.RAID != "" {
		// Stopped by shred; without udev its /dev node stays behind.
		m.sh("mdadm --assemble " + l.Volume + " /dev/nvme0n1 /dev/nvme1n1")
	}
	m.shredded(l.Volume, pass)
	m.agent(append([]string{"apply"}, m.KMSArgs()...)...).must(t, contract.ExitRevoked)
	if rv := m.agent("status", "--model", guestModel).must(t, contract.ExitOK).Report.Revocation; rv == nil || rv.State != contract.Shredded {
		t.Errorf("status after shred shows %+v, want shredded", rv)
	}

	t.Log("shred after a reboot while revoked, with KMS refusing: no key needed")
	// The disks blank, as a stop and start leaves them: apply provisions only those.
	m.sh("mdadm --stop " + l.Volume + "; for d in /dev/nvme0n1 /dev/nvme1n1; do dd if=/dev/zero of=$d bs=1M count=64 2>/dev/null; done; rm " + contract.RevocationPath)
	ap = m.agent(append([]string{"apply"}, m.KMSArgs()...)...).must(t, contract.ExitOK)
	saved = m.sh("cryptsetup luksDump --dump-json-metadata " + ap.Report.Layout.Volume)
	pass = m.passphrase(saved, ap.Report.Layout.LUKSUUID, ap.Report.InstanceID)
	m.agent("revoke", "--reason", "incident 8").must(t, contract.ExitOK)
	m.powerCut()
	m.Emu.Deny("Decrypt")
	closed := m.agent("shred", "--reason", "compromised", "--confirm", ap.Report.InstanceID, "--model", guestModel).must(t, contract.ExitOK)
	m.Emu.Deny()
	if got, want := closed.changedSteps(), []string{"raid-assemble", "luks-erase", "luks-token-remove", "raid-stop", "mark"}; !slices.Equal(got, want) {
		t.Errorf("shred of the closed volume changed %v, want %v", got, want)
	}
	m.sh("mdadm --assemble " + ap.Report.Layout.Volume + " /dev/nvme0n1 /dev/nvme1n1")
	m.shredded(ap.Report.Layout.Volume, pass)
}

// shredded fails the test unless dev's header holds no keyslot and no token and pass,
// the passphrase KMS unwrapped before, opens nothing.
func (m *machine) shredded(dev string, pass []byte) {
	m.t.Helper()
	var h struct {
		Keyslots map[string]any `json:"keyslots"`
		Tokens   map[string]any `json:"tokens"`
	}
	if err := json.Unmarshal([]byte(m.sh("cryptsetup luksDump --dump-json-metadata "+dev)), &h); err != nil {
		m.t.Fatal(err)
	}
	if len(h.Keyslots) != 0 || len(h.Tokens) != 0 {
		m.t.Errorf("after shred the header of %s has keyslots %v and tokens %v, want none", dev, h.Keyslots, h.Tokens)
	}
	if r := m.stdin("cryptsetup open --test-passphrase --key-file - "+dev, pass); r.Code == 0 {
		m.t.Errorf("the passphrase from the saved token still opens the shredded %s", dev)
	}
}

// passphrase is what KMS unwraps from the storecrypt token of the header dump, under the
// context the agent sends: the volume's passphrase.
func (m *machine) passphrase(dump, uuid, instanceID string) []byte {
	m.t.Helper()
	var h struct {
		Tokens map[string]struct {
			Type       string `json:"type"`
			KeyID      string `json:"key_id"`
			Ciphertext []byte `json:"ciphertext"`
		} `json:"tokens"`
	}
	if err := json.Unmarshal([]byte(dump), &h); err != nil {
		m.t.Fatal(err)
	}
	tok := h.Tokens["0"]
	out, err := m.Emu.KMS.Decrypt(context.Background(), &kms.DecryptInput{CiphertextBlob: tok.Ciphertext, KeyId: aws.String(tok.KeyID),
		EncryptionContext: contract.EncryptionContext(contract.InstanceARN("aws", emu.Region, emu.Account, instanceID), uuid)})
	if err != nil {
		m.t.Fatalf("unwrapping the volume's passphrase: %v", err)
	}
	return out.Plaintext
}

// volumeKey is the volume key of dev in hex, as dm-crypt's table would show it.
func (m *machine) volumeKey(dev string, pass []byte) string {
	m.t.Helper()
	r := m.stdin("cryptsetup luksDump --dump-volume-key --batch-mode --key-file - "+dev, pass)
	if r.Code != 0 {
		m.t.Fatalf("dumping the volume key: exit %d: %s", r.Code, r.Stderr)
	}
	_, dump, ok := strings.Cut(r.Stdout, "MK dump:")
	if !ok {
		m.t.Fatalf("no MK dump in %q", r.Stdout)
	}
	key := strings.Join(strings.Fields(dump), "")
	if b, err := hex.DecodeString(key); err != nil || len(b) != 64 {
		m.t.Fatalf("volume key %q: %d bytes (%v), want 64", key, len(b), err)
	}
	return key
}

// stdin runs script in the guest with stdin and returns the result whatever its exit.
func (m *machine) stdin(script string, stdin []byte) vm.Result {
	m.t.Helper()
	r, err := m.Guest.Exec(ctxTimeout(m.t), vm.Cmd{Argv: []string{"sh", "-c", script}, Stdin: stdin})
	if err != nil {
		m.t.Fatal(err)
	}
	return r
}

// bootUnitArgs are the agent arguments of the installed boot unit's command line.
func (m *machine) bootUnitArgs() []string {
	m.t.Helper()
	line := m.sh("sed -n 's/^ExecStart=//p' /etc/systemd/system/" + contract.UnitName)
	// bootunit.Render quotes an argument with a space whole, and nothing else.
	var f []string
	for i, part := range strings.Split(strings.TrimSpace(line), `"`) {
		if i%2 == 1 {
			f = append(f, part)
		} else {
			f = append(f, strings.Fields(part)...)
		}
	}
	if len(f) < 2 || f[0] != contract.AgentPath {
		m.t.Fatalf("the boot unit runs %q, want %s", line, contract.AgentPath)
	}
	return f[1:]
}
