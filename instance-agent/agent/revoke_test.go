package agent

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/storecrypt/storecrypt/instance-agent/keysource"
	"github.com/storecrypt/storecrypt/instance-agent/sysexec"
	"github.com/storecrypt/storecrypt/internal/contract"
)

// dmUUID is the device-mapper UUID cryptsetup gives the mapping of volUUID.
const dmUUID = "CRYPT-LUKS2-6d5c4b3a000040008000000000000001-storecrypt\n"

// mapped is a root with /dev/nvme1n1 open as storecrypt (dm-0), mounted with a bind,
// suspended or not.
func mapped(t *testing.T, suspended bool) string {
	t.Helper()
	root := t.TempDir()
	s := "0\n"
	if suspended {
		s = "1\n"
	}
	sysfs(t, root, merge(disk("nvme1n1", "259:0"), map[string]string{
		"proc/self/mountinfo": "23 1 259:9 / / rw - xfs /dev/nvme0n1p1 rw\n" +
			"40 23 253:0 / /mnt/instance-store rw - ext4 /dev/mapper/storecrypt rw\n" +
			"41 23 253:0 /storecrypt-bind/var/lib/containerd /var/lib/containerd rw - ext4 /dev/mapper/storecrypt rw\n",
		"sys/block/nvme1n1/holders/dm-0/": "", "sys/block/dm-0/slaves/nvme1n1/": "", "sys/block/dm-0/dm/name": "storecrypt\n",
		"sys/block/dm-0/dm/uuid": dmUUID, "sys/block/dm-0/dm/suspended": s, "sys/block/dm-0/dev": "253:0", "sys/block/dm-0/size": "2097152",
		"proc/sys/vm/drop_caches": "",
	}))
	return root
}

const revokedHeader = `{"tokens":{"0":{"type":"storecrypt","keyslots":["0"],"key_source":"kms-datakey","key_id":"` + keyARN +
	`","ciphertext":"d3JhcHBlZA==","context_keys":["storecrypt:instance-arn","storecrypt:volume"]},"2":{"type":"other","keyslots":[]}},"segments":{},"config":{}}`

// markAt writes a mark in root.
func markAt(t *testing.T, root, state string) {
	t.Helper()
	b, _ := json.Marshal(contract.Revocation{State: state, Reason: "incident 7", By: "uid 0", At: "2026-11-27T06:00:00Z"})
	p := filepath.Join(root, contract.RevocationPath)
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, b, 0o644); err != nil {
		t.Fatal(err)
	}
}

func readMarkT(t *testing.T, root string) *contract.Revocation {
	t.Helper()
	m, err := readMark(root)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func argvs(steps []step) []string {
	var out []string
	for _, s := range steps {
		if s.sysfs != "" {
			out = append(out, "write "+s.value+" to /"+s.sysfs)
		} else {
			out = append(out, s.cmd.String())
		}
	}
	return out
}

// TestRevokeAndShredSteps: the order that takes the keys out of memory, leaves no page
// readable from cache, and erases before it tears down.
func TestRevokeAndShredSteps(t *testing.T) {
	open := member{Mapper: "storecrypt-0", Header: "/dev/nvme1n1", Mounts: []string{"/mnt/i/0", "/var/lib/containerd"}}
	done := member{Mapper: "storecrypt-1", Header: "/dev/nvme2n1", Mounts: []string{"/mnt/i/1"}, Suspended: true}
	closed := member{Mapper: "storecrypt-2", Header: "/dev/nvme3n1"}
	for _, tc := range []struct {
		name  string
		steps []step
		want  []string
	}{
		{"revoke: sync and suspend each open mapping, then drop the cache", revokeSteps([]member{open, done, closed}), []string{
			"sync -f /mnt/i/0", "cryptsetup luksSuspend storecrypt-0", "cryptsetup luksSuspend storecrypt-2", "write 3 to /proc/sys/vm/drop_caches"}},
		{"revoke again: nothing", revokeSteps([]member{done}), nil},
		{"shred: revoke, erase, remove every token, then tear down", shredSteps([]member{open, done}, map[string][]string{"/dev/nvme1n1": {"0", "2"}, "/dev/nvme2n1": {"0"}}), []string{
			"sync -f /mnt/i/0", "cryptsetup luksSuspend storecrypt-0", "write 3 to /proc/sys/vm/drop_caches",
			"cryptsetup erase --batch-mode /dev/nvme1n1", "cryptsetup token remove --token-id 0 /dev/nvme1n1", "cryptsetup token remove --token-id 2 /dev/nvme1n1",
			"cryptsetup erase --batch-mode /dev/nvme2n1", "cryptsetup token remove --token-id 0 /dev/nvme2n1",
			"dmsetup wipe_table storecrypt-0", "umount -l /var/lib/containerd", "umount -l /mnt/i/0", "dmsetup remove --deferred storecrypt-0",
			"dmsetup wipe_table storecrypt-1", "umount -l /mnt/i/1", "dmsetup remove --deferred storecrypt-1"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := argvs(tc.steps); !slices.Equal(got, tc.want) {
				t.Errorf("got\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(tc.want, "\n"))
			}
		})
	}
}

func TestOpenMembers(t *testing.T) {
	ms, err := openMembers(os.DirFS(mapped(t, true)))
	if err != nil {
		t.Fatal(err)
	}
	want := member{Mapper: "storecrypt", Header: "/dev/nvme1n1", UUID: volUUID, Mounts: []string{"/mnt/instance-store", "/var/lib/containerd"}, Suspended: true}
	if len(ms) != 1 || ms[0].Mapper != want.Mapper || ms[0].Header != want.Header || ms[0].UUID != want.UUID || !slices.Equal(ms[0].Mounts, want.Mounts) || !ms[0].Suspended {
		t.Errorf("got %+v, want %+v", ms, want)
	}
}

// TestRevoke: the key leaves the kernel, the cache is dropped and the mark records who
// and why; a second revoke changes nothing.
func TestRevoke(t *testing.T) {
	root := mapped(t, false)
	a, fake, progress := newTestAgent(t, root, []sysexec.Call{{Argv: "sync -f /mnt/instance-store"}, {Argv: "cryptsetup luksSuspend storecrypt"}}, &fakeKeys{})
	a.Reason, a.By = "incident 7", "arn:aws:iam::111122223333:user/responder"
	rep, err := a.Revoke(context.Background(), contract.DefaultAgentOptions())
	if err != nil {
		t.Fatalf("%v\n%s", err, progress)
	}
	fake.Done()
	if b, _ := os.ReadFile(filepath.Join(root, dropCaches)); string(b) != "3" {
		t.Errorf("got drop_caches %q, want %q", b, "3")
	}
	m := readMarkT(t, root)
	if m == nil || m.State != contract.Revoked || m.Reason != a.Reason || m.By != a.By || m.At != "2026-11-27T06:00:00Z" {
		t.Errorf("got mark %+v, want revoked by %s for %q", m, a.By, a.Reason)
	}
	if rep.Revocation == nil || !rep.Changed {
		t.Errorf("got report revocation %+v changed %v, want the mark and a change", rep.Revocation, rep.Changed)
	}

	sysfs(t, root, map[string]string{"sys/block/dm-0/dm/suspended": "1\n"})
	again, fake, _ := newTestAgent(t, root, nil, &fakeKeys{})
	again.Reason = "again"
	rep, err = again.Revoke(context.Background(), contract.DefaultAgentOptions())
	fake.Done()
	if err != nil || rep.Changed || !strings.Contains(strings.Join(rep.Notes, "\n"), "already revoked") {
		t.Errorf("got %v changed %v notes %q, want nothing changed and \"already revoked\"", err, rep.Changed, rep.Notes)
	}
	if m := readMarkT(t, root); m.Reason != "incident 7" {
		t.Errorf("got mark reason %q, want the first revoke's", m.Reason)
	}
}

// TestRevokedStaysClosed: with the mark, the boot unit's unlock and a rerun's apply
// refuse before they discover anything or ask for a key.
func TestRevokedStaysClosed(t *testing.T) {
	for _, state := range []string{contract.Revoked, contract.Shredded} {
		for _, run := range []struct {
			name string
			fn   func(*Agent) func(context.Context, contract.AgentOptions) (*contract.Report, error)
		}{
			{"unlock", func(a *Agent) func(context.Context, contract.AgentOptions) (*contract.Report, error) { return a.Unlock }},
			{"apply", func(a *Agent) func(context.Context, contract.AgentOptions) (*contract.Report, error) { return a.Apply }},
		} {
			t.Run(state+" "+run.name, func(t *testing.T) {
				root := t.TempDir()
				sysfs(t, root, merge(disk("nvme1n1", "259:0")))
				markAt(t, root, state)
				a, fake, _ := newTestAgent(t, root, nil, nil)
				a.Keys = func(context.Context) (Keys, error) { t.Fatal("asked for a key"); return nil, nil }
				_, err := run.fn(a)(context.Background(), kmsOptions())
				fake.Done()
				if ExitCodeOf(err) != contract.ExitRevoked || !strings.Contains(err.Error(), state) {
					t.Errorf("got %v, want exit %s saying %s", err, contract.ExitRevoked, state)
				}
			})
		}
	}
}

// TestUnreadableMarkStaysClosed: a mark that cannot be read keeps the volume closed
// rather than be opened against it.
func TestUnreadableMarkStaysClosed(t *testing.T) {
	for _, content := range []string{"{", `{"state":"lifted"}`} {
		t.Run(content, func(t *testing.T) {
			root := t.TempDir()
			sysfs(t, root, merge(disk("nvme1n1", "259:0"), map[string]string{strings.TrimPrefix(contract.RevocationPath, "/"): content}))
			a, fake, _ := newTestAgent(t, root, nil, nil)
			_, err := a.Unlock(context.Background(), kmsOptions())
			fake.Done()
			if err == nil || !strings.Contains(err.Error(), "stays closed") {
				t.Errorf("got %v, want an error saying the volume stays closed", err)
			}
		})
	}
}

// TestResume: every key is fetched before the first mapping resumes, on stdin only; a
// refused key changes nothing and keeps the mark.
func TestResume(t *testing.T) {
	calls := []sysexec.Call{{Argv: "cryptsetup luksDump --dump-json-metadata /dev/nvme1n1", Stdout: revokedHeader}}
	t.Run("resumed", func(t *testing.T) {
		root := mapped(t, true)
		markAt(t, root, contract.Revoked)
		keys := &fakeKeys{}
		a, fake, progress := newTestAgent(t, root, append(calls, sysexec.Call{Argv: "cryptsetup luksResume --key-file - storecrypt"}), keys)
		a.Reason = "contained"
		rep, err := a.Resume(context.Background(), contract.DefaultAgentOptions())
		if err != nil {
			t.Fatalf("%v\n%s", err, progress)
		}
		fake.Done()
		if !bytes.Equal(fake.Stdins[1], secret) {
			t.Errorf("got luksResume stdin %q, want the key", fake.Stdins[1])
		}
		if len(keys.volumes) != 1 || keys.volumes[0].UUID != volUUID {
			t.Errorf("got key asked for %+v, want volume %s", keys.volumes, volUUID)
		}
		if m := readMarkT(t, root); m != nil || rep.Revocation != nil {
			t.Errorf("got mark %+v after resume, want none", m)
		}
		for _, h := range keys.handed {
			if !bytes.Equal(h, make([]byte, len(h))) {
				t.Errorf("got key %q left in memory, want it zeroed", h)
			}
		}
	})
	t.Run("key refused", func(t *testing.T) {
		root := mapped(t, true)
		markAt(t, root, contract.Revoked)
		a, fake, _ := newTestAgent(t, root, calls, &fakeKeys{err: &keysource.UnavailableError{Op: "kms:Decrypt", Err: errors.New("AccessDeniedException")}})
		a.Reason = "contained"
		rep, err := a.Resume(context.Background(), contract.DefaultAgentOptions())
		fake.Done()
		if ExitCodeOf(err) != contract.ExitKeyUnavailable || rep.Changed {
			t.Errorf("got %v changed %v, want key-unavailable and nothing changed", err, rep.Changed)
		}
		if readMarkT(t, root) == nil {
			t.Error("got no mark after a refused resume, want it kept")
		}
	})
	t.Run("shredded", func(t *testing.T) {
		root := mapped(t, true)
		markAt(t, root, contract.Shredded)
		a, fake, _ := newTestAgent(t, root, nil, &fakeKeys{})
		a.Reason = "oops"
		_, err := a.Resume(context.Background(), contract.DefaultAgentOptions())
		fake.Done()
		if ExitCodeOf(err) != contract.ExitRevoked {
			t.Errorf("got %v, want %s", err, contract.ExitRevoked)
		}
	})
}

// TestShred: the instance id guards it; it removes every token erase leaves.
func TestShred(t *testing.T) {
	t.Run("wrong instance", func(t *testing.T) {
		root := mapped(t, false)
		a, fake, _ := newTestAgent(t, root, nil, &fakeKeys{})
		a.Reason, a.Confirm = "compromised", "i-0fedcba9876543210"
		_, err := a.Shred(context.Background(), contract.DefaultAgentOptions())
		fake.Done()
		if ExitCodeOf(err) != contract.ExitBadInput || !strings.Contains(err.Error(), "i-0123456789abcdef0") {
			t.Errorf("got %v, want bad-input naming this instance", err)
		}
		if readMarkT(t, root) != nil {
			t.Error("got a mark, want none")
		}
	})
	t.Run("an array is stopped after", func(t *testing.T) {
		root := mapped(t, false)
		os.RemoveAll(filepath.Join(root, "sys/block/dm-0/slaves/nvme1n1"))
		sysfs(t, root, map[string]string{"sys/block/dm-0/slaves/md127/": ""})
		a, fake, progress := newTestAgent(t, root, []sysexec.Call{
			{Argv: "cryptsetup luksDump --dump-json-metadata /dev/md127", Stdout: `{"tokens":{"0":{}}}`},
			{Argv: "sync -f /mnt/instance-store"}, {Argv: "cryptsetup luksSuspend storecrypt"},
			{Argv: "cryptsetup erase --batch-mode /dev/md127"}, {Argv: "cryptsetup token remove --token-id 0 /dev/md127"},
			{Argv: "dmsetup wipe_table storecrypt"}, {Argv: "umount -l /var/lib/containerd"}, {Argv: "umount -l /mnt/instance-store"},
			{Argv: "dmsetup remove --deferred storecrypt"},
			{Argv: "mdadm --stop /dev/md127"},
		}, &fakeKeys{})
		a.Reason, a.Confirm = "compromised", "i-0123456789abcdef0"
		if _, err := a.Shred(context.Background(), contract.DefaultAgentOptions()); err != nil {
			t.Fatalf("%v\n%s", err, progress)
		}
		fake.Done()
	})
	t.Run("shredded", func(t *testing.T) {
		root := mapped(t, false)
		a, fake, progress := newTestAgent(t, root, []sysexec.Call{
			{Argv: "cryptsetup luksDump --dump-json-metadata /dev/nvme1n1", Stdout: revokedHeader},
			{Argv: "sync -f /mnt/instance-store"}, {Argv: "cryptsetup luksSuspend storecrypt"},
			{Argv: "cryptsetup erase --batch-mode /dev/nvme1n1"},
			{Argv: "cryptsetup token remove --token-id 0 /dev/nvme1n1"}, {Argv: "cryptsetup token remove --token-id 2 /dev/nvme1n1"},
			{Argv: "dmsetup wipe_table storecrypt"}, {Argv: "umount -l /var/lib/containerd"}, {Argv: "umount -l /mnt/instance-store"},
			{Argv: "dmsetup remove --deferred storecrypt"},
		}, &fakeKeys{})
		a.Reason, a.Confirm = "compromised", "i-0123456789abcdef0"
		if _, err := a.Shred(context.Background(), contract.DefaultAgentOptions()); err != nil {
			t.Fatalf("%v\n%s", err, progress)
		}
		fake.Done()
		if m := readMarkT(t, root); m == nil || m.State != contract.Shredded || m.InstanceID != "i-0123456789abcdef0" {
			t.Errorf("got mark %+v, want shredded on i-0123456789abcdef0", m)
		}
		// Status reads no header that no longer holds a volume.
		st, fake, _ := newTestAgent(t, root, nil, &fakeKeys{})
		rep, err := st.Status(context.Background(), contract.DefaultAgentOptions())
		fake.Done()
		if err != nil || rep.Revocation == nil || rep.Revocation.State != contract.Shredded {
			t.Errorf("got status %v with %+v, want the shredded mark", err, rep.Revocation)
		}
	})
}

func TestReasonRequired(t *testing.T) {
	for _, name := range []string{"revoke", "resume", "shred"} {
		t.Run(name, func(t *testing.T) {
			a, fake, _ := newTestAgent(t, mapped(t, false), nil, &fakeKeys{})
			fn := map[string]func(context.Context, contract.AgentOptions) (*contract.Report, error){"revoke": a.Revoke, "resume": a.Resume, "shred": a.Shred}[name]
			_, err := fn(context.Background(), contract.DefaultAgentOptions())
			fake.Done()
			if ExitCodeOf(err) != contract.ExitBadInput || !strings.Contains(err.Error(), "--reason") {
				t.Errorf("got %v, want bad-input about --reason", err)
			}
		})
	}
}

// TestSuspendedNotProbed: status shows a revoked volume without reading the suspended
// mapping (a read would wait until resume), and unlock refuses it.
func TestSuspendedNotProbed(t *testing.T) {
	seen := []sysexec.Call{
		{Argv: "cryptsetup --version", Stdout: version},
		{Argv: "blkid -p -o export /dev/nvme1n1", Stdout: "TYPE=crypto_LUKS\nLABEL=storecrypt\nSUBSYSTEM=storecrypt-ready\nUUID=" + volUUID + "\n"},
		{Argv: "cryptsetup luksDump --dump-json-metadata /dev/nvme1n1", Stdout: revokedHeader},
	}
	root := mapped(t, true)
	a, fake, _ := newTestAgent(t, root, seen, &fakeKeys{})
	rep, err := a.Status(context.Background(), contract.DefaultAgentOptions())
	fake.Done()
	if err != nil || rep.Layout == nil || !rep.Layout.Suspended || !rep.Layout.Open || !rep.Layout.Mounted {
		t.Errorf("got %v layout %+v, want open, mounted and suspended", err, rep.Layout)
	}
	markAt(t, root, contract.Revoked)
	a, fake, _ = newTestAgent(t, root, seen, &fakeKeys{})
	rep, _ = a.Status(context.Background(), contract.DefaultAgentOptions())
	fake.Done()
	if rep.Revocation == nil || rep.Revocation.Reason != "incident 7" {
		t.Errorf("got status revocation %+v, want the mark", rep.Revocation)
	}
	os.Remove(filepath.Join(root, contract.RevocationPath))
	a, fake, _ = newTestAgent(t, root, seen, &fakeKeys{})
	_, err = a.Unlock(context.Background(), contract.DefaultAgentOptions())
	fake.Done()
	if ExitCodeOf(err) != contract.ExitRevoked {
		t.Errorf("got %v, want %s for a suspended mapping without the mark", err, contract.ExitRevoked)
	}
}

// TestResumeAfterReboot: with the mapping closed by a reboot, resume opens and mounts the
// volume as the boot unit would, and clears the mark only once it is open.
func TestResumeAfterReboot(t *testing.T) {
	for _, tc := range []struct {
		name     string
		keyErr   error
		opens    []sysexec.Call
		want     contract.ExitCode
		markKept bool
	}{
		{"opened", nil, []sysexec.Call{
			{Argv: "cryptsetup open --type luks2 --key-file - /dev/nvme1n1 storecrypt"},
			{Argv: "blkid -p -o export /dev/mapper/storecrypt", Stdout: "TYPE=ext4\n"},
			{Argv: "mount -t ext4 -o noatime /dev/mapper/storecrypt /mnt/instance-store"},
		}, contract.ExitOK, false},
		{"key refused", &keysource.UnavailableError{Op: "kms:Decrypt", Err: errors.New("AccessDeniedException")}, nil, contract.ExitKeyUnavailable, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			root := t.TempDir()
			sysfs(t, root, merge(disk("nvme1n1", "259:0")))
			markAt(t, root, contract.Revoked)
			a, fake, _ := newTestAgent(t, root, append([]sysexec.Call{
				{Argv: "cryptsetup --version", Stdout: version},
				{Argv: "blkid -p -o export /dev/nvme1n1", Stdout: "TYPE=crypto_LUKS\nLABEL=storecrypt\nSUBSYSTEM=storecrypt-ready\nUUID=" + volUUID + "\n"},
				{Argv: "cryptsetup luksDump --dump-json-metadata /dev/nvme1n1", Stdout: revokedHeader},
			}, tc.opens...), &fakeKeys{err: tc.keyErr})
			a.Reason = "contained"
			_, err := a.Resume(context.Background(), kmsOptions())
			fake.Done()
			if got := ExitCodeOf(err); got != tc.want {
				t.Errorf("got %s (%v), want %s", got, err, tc.want)
			}
			if kept := readMarkT(t, root) != nil; kept != tc.markKept {
				t.Errorf("got mark kept %v, want %v", kept, tc.markKept)
			}
		})
	}
}

// TestShredClosed: after a reboot while revoked no mapping holds the volume, and resume
// cannot open it once KMS refuses the key: shred erases the headers it finds on the
// disks, assembling the array for its header, without a key.
func TestShredClosed(t *testing.T) {
	ours := "TYPE=crypto_LUKS\nLABEL=storecrypt\nSUBSYSTEM=storecrypt-ready\nUUID=" + volUUID + "\n"
	for _, tc := range []struct {
		name  string
		disks map[string]string
		calls func(root string) []sysexec.Call
	}{
		{"one disk", merge(disk("nvme1n1", "259:0")), func(string) []sysexec.Call {
			return []sysexec.Call{
				{Argv: "blkid -p -o export /dev/nvme1n1", Stdout: ours},
				{Argv: "cryptsetup luksDump --dump-json-metadata /dev/nvme1n1", Stdout: revokedHeader},
				{Argv: "cryptsetup erase --batch-mode /dev/nvme1n1"},
				{Argv: "cryptsetup token remove --token-id 0 /dev/nvme1n1"}, {Argv: "cryptsetup token remove --token-id 2 /dev/nvme1n1"},
			}
		}},
		{"an array", merge(disk("nvme1n1", "259:0"), disk("nvme2n1", "259:1")), func(root string) []sysexec.Call {
			return []sysexec.Call{
				{Argv: "blkid -p -o export /dev/nvme1n1", Stdout: memberSig},
				{Argv: "blkid -p -o export /dev/nvme2n1", Stdout: memberSig},
				{Argv: "mdadm --assemble /dev/md/storecrypt --run /dev/nvme1n1 /dev/nvme2n1", Do: func() error {
					sysfs(t, root, md127("nvme1n1", "nvme2n1"))
					return nil
				}},
				{Argv: "cryptsetup luksDump --dump-json-metadata /dev/md127", Stdout: `{"tokens":{"0":{}}}`},
				{Argv: "cryptsetup erase --batch-mode /dev/md127"}, {Argv: "cryptsetup token remove --token-id 0 /dev/md127"},
				{Argv: "mdadm --stop /dev/md127"},
			}
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			root := t.TempDir()
			sysfs(t, root, tc.disks)
			markAt(t, root, contract.Revoked)
			a, fake, progress := newTestAgent(t, root, tc.calls(root), nil)
			a.Keys = func(context.Context) (Keys, error) { t.Fatal("asked for a key"); return nil, nil }
			a.Reason, a.Confirm = "compromised", "i-0123456789abcdef0"
			if _, err := a.Shred(context.Background(), contract.DefaultAgentOptions()); err != nil {
				t.Fatalf("%v\n%s", err, progress)
			}
			fake.Done()
			if m := readMarkT(t, root); m == nil || m.State != contract.Shredded {
				t.Errorf("got mark %+v, want shredded", m)
			}
		})
	}
}
