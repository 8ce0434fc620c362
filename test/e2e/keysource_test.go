package e2e

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kms"

	"github.com/storecrypt/storecrypt/internal/contract"
)

// TestS3KMS is the seed-compatible source: the S3 object is the raw KMS ciphertext of a
// passphrase, with or without the newline `echo` adds. Either way the volume opens with
// the recipe's own `echo "$key" | cryptsetup`, so volumes stay interchangeable.
func TestS3KMS(t *testing.T) {
	for _, tc := range []struct{ name, stored string }{
		{"trailing newline", "correct horse battery staple\n"},
		{"no newline", "correct horse battery staple"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m := newMachine(t, machineOpts{disks: 1})
			if err := m.Emu.PutObject(context.Background(), "storecrypt-secrets", "seed/passphrase", m.encryptSecret(tc.stored)); err != nil {
				t.Fatal(err)
			}
			args := []string{"apply", "--model", guestModel, "--key-source", contract.KeySourceS3KMS, "--secret", "s3://storecrypt-secrets/seed/passphrase"}
			r := m.agent(args...).must(t, contract.ExitOK)
			if r.Report.Layout.KeySource != contract.KeySourceS3KMS || r.Report.Layout.Secret != "s3://storecrypt-secrets/seed/passphrase" {
				t.Errorf("layout %+v", *r.Report.Layout)
			}
			m.sh(`echo "correct horse battery staple" | cryptsetup open --test-passphrase /dev/nvme0n1`)
			m.sh("echo seed > " + userFile + " && sync")
			// The secret is replaced (put-secret --force): the volume keeps the version it
			// was made with.
			if err := m.Emu.PutObject(context.Background(), "storecrypt-secrets", "seed/passphrase", m.encryptSecret("a later passphrase")); err != nil {
				t.Fatal(err)
			}
			m.reboot()
			m.agent("unlock", "--model", guestModel).must(t, contract.ExitOK)
			if got := m.sh("cat " + userFile); got != "seed\n" {
				t.Errorf("after reboot the file reads %q", got)
			}
		})
	}
}

// TestEphemeral: no key is stored; after a reboot unlock says the key is gone, and apply
// (what the boot unit runs for ephemeral volumes) makes a fresh, empty volume.
func TestEphemeral(t *testing.T) {
	m := newMachine(t, machineOpts{disks: 2})
	m.agent("apply", "--model", guestModel, "--key-source", contract.KeySourceEphemeral).must(t, contract.ExitOK)
	unit := m.sh("cat /etc/systemd/system/" + contract.UnitName)
	wantContains(t, "the unit", unit, "storecrypt-agent apply --key-source ephemeral")
	m.sh("echo scratch > " + userFile + " && sync")
	m.reboot()
	un := m.agent("unlock", "--model", guestModel).must(t, contract.ExitKeyUnavailable)
	wantContains(t, "unlock error", un.Report.Error, "ephemeral")
	m.agent("apply", "--model", guestModel, "--key-source", contract.KeySourceEphemeral).must(t, contract.ExitOK)
	if out := m.sh("ls /mnt/instance-store"); strings.Contains(out, "user-data") {
		t.Errorf("the ephemeral volume kept data across a reboot: %s", out)
	}
}

// TestUnlockWhileKMSDown: at boot KMS may not be reachable yet. Unlock fails quickly with
// key-unavailable and changes nothing, and meanwhile the mount point takes no writes (they
// would land in plaintext on the root volume); unlock --retry-for, as the boot unit runs
// it, keeps trying and opens the volume once KMS answers.
func TestUnlockWhileKMSDown(t *testing.T) {
	m := newMachine(t, machineOpts{disks: 1})
	m.agent(append([]string{"apply"}, m.KMSArgs()...)...).must(t, contract.ExitOK)
	m.sh("echo kept > " + userFile + " && sync")
	m.reboot()
	m.Emu.KMSDown()
	start := time.Now()
	down := m.agent("unlock", "--model", guestModel).must(t, contract.ExitKeyUnavailable)
	t.Logf("unlock with KMS down failed in %.1fs", time.Since(start).Seconds())
	wantContains(t, "unlock error", down.Report.Error, "kms:Decrypt", "fix:")
	if out := m.sh("ls /dev/mapper"); strings.Contains(out, contract.MapperName) {
		t.Errorf("a mapping was left after the failed unlock: %s", out)
	}
	m.wantNoWrites(mountPoint)

	up := time.AfterFunc(8*time.Second, func() {
		if err := m.Emu.KMSUp(); err != nil {
			t.Error(err)
		}
	})
	defer up.Stop()
	r := m.agent("unlock", "--model", guestModel, "--retry-for", "2m").must(t, contract.ExitOK)
	wantContains(t, "unlock --retry-for", r.Stderr, "key-unavailable", "retrying in")
	if got := m.sh("cat " + userFile); got != "kept\n" {
		t.Errorf("after unlock the file reads %q", got)
	}
}

// wantNoWrites: nothing can be created in dir, or in a directory made there; it holds
// only the names in holds.
func (m *machine) wantNoWrites(dir string, holds ...string) {
	m.t.Helper()
	// A new file, a new directory, and an append to each file it holds.
	script := "for p in " + dir + "/plaintext " + dir + "/sub; do if touch $p 2>/dev/null || mkdir $p 2>/dev/null; then echo wrote $p; fi; done; "
	for _, f := range holds {
		script += "if [ -f " + dir + "/" + f + " ] && (echo plaintext >>" + dir + "/" + f + ") 2>/dev/null; then echo appended " + f + "; fi; "
	}
	out := m.sh(script + "ls -A " + dir)
	if got, want := strings.Fields(out), holds; strings.Join(got, " ") != strings.Join(want, " ") {
		m.t.Errorf("%s took writes while the volume was not mounted: %q (it held %q)", dir, out, want)
	}
}

// TestKeyUnavailable: when the key cannot be had, nothing is written to any disk and the
// message says what to fix.
func TestKeyUnavailable(t *testing.T) {
	m := newMachine(t, machineOpts{disks: 2})
	ctx := context.Background()
	for _, tc := range []struct {
		name  string
		setup func(t *testing.T) (args []string, undo func())
		says  []string
	}{
		{"KMS down", func(t *testing.T) ([]string, func()) {
			m.Emu.KMSDown()
			return m.KMSArgs(), func() {
				if err := m.Emu.KMSUp(); err != nil {
					t.Fatal(err)
				}
			}
		}, []string{"kms:GenerateDataKey", "unreachable"}},
		{"access denied", func(t *testing.T) ([]string, func()) {
			m.Emu.Deny("GenerateDataKey")
			return m.KMSArgs(), func() { m.Emu.Deny() }
		}, []string{"AccessDenied", "key user"}},
		{"disabled key", func(t *testing.T) ([]string, func()) {
			if _, err := m.Emu.KMS.DisableKey(ctx, &kms.DisableKeyInput{KeyId: aws.String(m.KeyARN)}); err != nil {
				t.Fatal(err)
			}
			return m.KMSArgs(), func() {
				if _, err := m.Emu.KMS.EnableKey(ctx, &kms.EnableKeyInput{KeyId: aws.String(m.KeyARN)}); err != nil {
					t.Fatal(err)
				}
			}
		}, []string{"kms:GenerateDataKey", "enable the KMS key"}},
		{"missing S3 object", func(t *testing.T) ([]string, func()) {
			if err := m.Emu.PutObject(ctx, "storecrypt-secrets", "other", []byte("x")); err != nil {
				t.Fatal(err)
			}
			return []string{"--model", guestModel, "--key-source", contract.KeySourceS3KMS, "--secret", "s3://storecrypt-secrets/missing"}, func() {}
		}, []string{"s3:GetObject", "put-secret"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := m.checksums()
			args, undo := tc.setup(t)
			r := m.agent(append([]string{"apply"}, args...)...)
			undo()
			r.must(t, contract.ExitKeyUnavailable)
			wantContains(t, "error", r.Report.Error, tc.says...)
			if c := r.changedSteps(); len(c) != 0 {
				t.Errorf("changed %v with no key", c)
			}
			sameSums(t, before, m.checksums())
		})
	}
}
