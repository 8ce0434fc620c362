package agent

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/storecrypt/storecrypt/instance-agent/keysource"
	"github.com/storecrypt/storecrypt/instance-agent/keytoken"
	"github.com/storecrypt/storecrypt/instance-agent/plan"
	"github.com/storecrypt/storecrypt/instance-agent/sysexec"
	"github.com/storecrypt/storecrypt/internal/contract"
	"github.com/storecrypt/storecrypt/internal/golden"
)

const (
	model   = "Amazon EC2 NVMe Instance Storage"
	keyARN  = "arn:aws:kms:us-east-1:111122223333:key/1234abcd-12ab-34cd-56ef-1234567890ab"
	volUUID = "6d5c4b3a-0000-4000-8000-000000000001"
)

// secret is the fake data key; tests assert it reaches cryptsetup only on stdin.
var secret = []byte("0123456789abcdef0123456789abcdef")

// fakeKeys hands out copies of secret and records the volumes asked for.
type fakeKeys struct {
	err     error
	volumes []keysource.Volume
	handed  [][]byte // every secret handed out, to see that the agent zeroes it
}

func (f *fakeKeys) key(t keytoken.Token) keysource.Key {
	k := keysource.Key{Secret: bytes.Clone(secret), Token: t, FullEntropy: true}
	f.handed = append(f.handed, k.Secret)
	return k
}

func (f *fakeKeys) New(_ context.Context, o contract.AgentOptions, v keysource.Volume) (keysource.Key, error) {
	f.volumes = append(f.volumes, v)
	if f.err != nil {
		return keysource.Key{}, f.err
	}
	return f.key(keytoken.Token{KeySource: o.KeySource, KeyID: keyARN, Ciphertext: []byte("wrapped"), ContextKeys: contract.ContextKeys}), nil
}

func (f *fakeKeys) Recover(_ context.Context, t keytoken.Token, v keysource.Volume) (keysource.Key, error) {
	f.volumes = append(f.volumes, v)
	if f.err != nil {
		return keysource.Key{}, f.err
	}
	return f.key(t), nil
}

// sysfs writes a fixture tree under root: one file per entry, directories for "/"-ended
// keys. Each NVMe disk of the tree arrives as instance store does, zeroed: a sparse file
// of its sysfs size at dev/<name>, unless the tree has one; noise entries then write on
// it.
func sysfs(t *testing.T, root string, files map[string]string) {
	t.Helper()
	defer func() {
		for name, at := range files {
			if dev, ok := strings.CutPrefix(name, noisePrefix); ok {
				scribble(t, filepath.Join(root, "dev", dev), at)
			}
		}
	}()
	for name, data := range files {
		if strings.HasPrefix(name, noisePrefix) {
			continue
		}
		disk, ok := strings.CutSuffix(strings.TrimPrefix(name, "sys/block/"), "/size")
		if _, has := files["dev/"+disk]; ok && strings.HasPrefix(disk, "nvme") && !has {
			sectors, err := strconv.ParseInt(data, 10, 64)
			if err != nil {
				t.Fatal(err)
			}
			zeroed(t, filepath.Join(root, "dev", disk), sectors*512)
		}
		p := filepath.Join(root, name)
		if strings.HasSuffix(name, "/") {
			if err := os.MkdirAll(p, 0o755); err != nil {
				t.Fatal(err)
			}
			continue
		}
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(data), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// zeroed makes a sparse file of size bytes at p, which reads as zero.
func zeroed(t *testing.T, p string, size int64) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	f, err := os.Create(p)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := f.Truncate(size); err != nil {
		t.Fatal(err)
	}
}

// noise asks for 8 MiB of random data on the disk name at byte at (scribble): what blkid
// finds no signature in, as plain dm-crypt or a raw-device database.
func noise(name string, at int64) map[string]string {
	return map[string]string{noisePrefix + name: strconv.FormatInt(at, 10)}
}

const noisePrefix = "noise:"

// scribble writes 8 MiB of random data at byte at (a decimal string) of the file p.
func scribble(t *testing.T, p, at string) {
	t.Helper()
	off, err := strconv.ParseInt(at, 10, 64)
	if err != nil {
		t.Fatal(err)
	}
	f, err := os.OpenFile(p, os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.WriteAt(randomBytes(8<<20), off); err != nil {
		t.Fatal(err)
	}
}

func randomBytes(n int) []byte {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return b
}

// memberSig is what blkid reports of a member of storecrypt's array.
const memberSig = "TYPE=linux_raid_member\nLABEL=any:storecrypt\nUUID=3a1b2c4d-5e6f-7081-92a3-b4c5d6e7f809\n"

// examine is mdadm --examine's report of a member of a two-disk storecrypt array, with
// its data area 1 MiB in (the lines the agent reads, as mdadm 4.2 prints them).
func examine(events, role int) string {
	return fmt.Sprintf("     Array UUID : 3a1b2c4d:5e6f7081:92a3b4c5:d6e7f809\n           Name : any:storecrypt\n   Raid Devices : 2\n"+
		"    Data Offset : 2048 sectors\n         Events : %d\n   Device Role : Active device %d\n", events, role)
}

// md127 is a running raid0 array md127 of the disks named.
func md127(members ...string) map[string]string {
	files := merge(disk("md127", "9:127"), map[string]string{"sys/block/md127/md/level": "raid0\n", "sys/block/md127/md/raid_disks": strconv.Itoa(len(members)) + "\n"})
	for _, m := range members {
		files["sys/block/"+m+"/holders/md127/"] = ""
	}
	return files
}

func disk(name, dev string) map[string]string {
	return map[string]string{
		"sys/block/" + name + "/dev":           dev,
		"sys/block/" + name + "/size":          "2097152",
		"sys/block/" + name + "/device/model":  model + "  ",
		"sys/block/" + name + "/device/serial": "AWS" + name,
		"sys/block/" + name + "/holders/":      "",
	}
}

func merge(ms ...map[string]string) map[string]string {
	out := map[string]string{"proc/self/mountinfo": "23 1 259:9 / / rw - xfs /dev/nvme0n1p1 rw\n", "proc/sys/kernel/osrelease": "6.1.0-56-amd64\n"}
	for _, m := range ms {
		for k, v := range m {
			out[k] = v
		}
	}
	return out
}

// probes are the commands observe runs concurrently: cryptsetup's version beside every
// disk's blkid and, for a member of our array, mdadm --examine.
func probes(argv string) bool {
	for _, p := range []string{"cryptsetup --version", "blkid -p -o export /dev/nvme", "mdadm --examine "} {
		if strings.HasPrefix(argv, p) {
			return true
		}
	}
	return false
}

func newTestAgent(t *testing.T, root string, calls []sysexec.Call, keys *fakeKeys) (*Agent, *sysexec.Fake, *bytes.Buffer) {
	fake := &sysexec.Fake{T: t, Calls: calls, Unordered: probes}
	var progress bytes.Buffer
	now := time.Date(2026, 11, 27, 6, 0, 0, 0, time.UTC)
	a := &Agent{
		Root: root, Exec: fake, Progress: &progress, Version: "test", Wait: time.Second, By: "uid:0",
		Keys: func(context.Context) (Keys, error) { return keys, nil },
		Instance: func(context.Context) (string, string, error) {
			return "i-0123456789abcdef0", "arn:aws:ec2:us-east-1:111122223333:instance/i-0123456789abcdef0", nil
		},
		NewUUID: func() string { return volUUID },
		// The real seal makes the mount point immutable, which the test's temporary
		// directory could then not remove; the real-kernel tests use it.
		Seal: func(string) error { return nil },
		Now:  func() time.Time { now = now.Add(10 * time.Millisecond); return now },
	}
	return a, fake, &progress
}

// applySealed runs apply with calls scripted and returns the report and the directories
// it sealed, under root.
func applySealed(t *testing.T, root string, calls []sysexec.Call, o contract.AgentOptions) (*contract.Report, []string) {
	t.Helper()
	var sealed []string
	a, fake, progress := newTestAgent(t, root, calls, &fakeKeys{})
	a.Seal = func(dir string) error { sealed = append(sealed, strings.TrimPrefix(dir, root)); return nil }
	rep, err := a.Apply(context.Background(), o)
	if err != nil {
		t.Fatalf("%v\n%s", err, progress)
	}
	fake.Done()
	return rep, sealed
}

// report compares the report a user reads with testdata/name.
func report(t *testing.T, name string, rep *contract.Report) {
	t.Helper()
	got, err := json.MarshalIndent(rep, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	golden.Check(t, name, append(got, '\n'))
}

func kmsOptions() contract.AgentOptions {
	o := contract.DefaultAgentOptions()
	o.KMSKeyID = keyARN
	return o
}

// provisionCalls is what apply runs to provision /dev/nvme1n1 once it has decided to format it.
func provisionCalls() []sysexec.Call {
	return provisionAs("/dev/nvme1n1", contract.MapperName, contract.DefaultMountPoint)
}

// provisionAs is what apply runs to provision dev as the volume mapper, mounted at dir.
func provisionAs(dev, mapper, dir string) []sysexec.Call {
	return []sysexec.Call{
		{Argv: "cryptsetup luksFormat --batch-mode --type luks2 --cipher aes-xts-plain64 --key-size 512 --sector-size 4096 --uuid " + volUUID +
			" --label storecrypt --subsystem storecrypt-provisioning --pbkdf pbkdf2 --pbkdf-force-iterations 1000 --key-slot 0 --key-file - " + dev},
		{Argv: "cryptsetup token import --token-id 0 --key-slot 0 " + dev},
		{Argv: "cryptsetup open --type luks2 --key-file - --allow-discards --perf-no_read_workqueue --perf-no_write_workqueue --persistent " + dev + " " + mapper},
		{Argv: "mkfs.ext4 -q -F -L storecrypt -m 0 -O meta_bg,^resize_inode -E lazy_itable_init=1,lazy_journal_init=1,nodiscard /dev/mapper/" + mapper},
		{Argv: "cryptsetup config --label storecrypt --subsystem storecrypt-ready " + dev},
		{Argv: "mount -t ext4 -o noatime /dev/mapper/" + mapper + " " + dir},
	}
}

const version = "cryptsetup 2.6.1 flags: UDEV BLKID KEYRING KERNEL_CAPI\n"

func TestApplyFreshDisk(t *testing.T) {
	root := t.TempDir()
	sysfs(t, root, merge(disk("nvme1n1", "259:0")))
	keys := &fakeKeys{}
	token := `{"type":"storecrypt","keyslots":[],"key_source":"kms-datakey","key_id":"` + keyARN + `","ciphertext":"d3JhcHBlZA==","context_keys":["storecrypt:instance-arn","storecrypt:volume"],"provisioned_by":"ssm-command"}`
	a, fake, progress := newTestAgent(t, root, append([]sysexec.Call{
		{Argv: "cryptsetup --version", Stdout: version},
		{Argv: "blkid -p -o export /dev/nvme1n1", Code: 2},
	}, provisionCalls()...), keys)
	rep, err := a.Apply(context.Background(), kmsOptions())
	if err != nil {
		t.Fatalf("apply: %v\n%s", err, progress)
	}
	fake.Done()
	if len(keys.volumes) != 1 || keys.volumes[0] != (keysource.Volume{InstanceARN: "arn:aws:ec2:us-east-1:111122223333:instance/i-0123456789abcdef0", UUID: volUUID}) {
		t.Errorf("key asked for %+v, want the instance and the new volume's UUID", keys.volumes)
	}
	// The key goes to format and open on stdin; the token carries only the wrapped key.
	for i, want := range map[int][]byte{2: secret, 3: []byte(token), 4: secret} {
		if !bytes.Equal(fake.Stdins[i], want) {
			t.Errorf("call %d stdin = %q, want %q", i, fake.Stdins[i], want)
		}
	}
	for _, c := range fake.Calls {
		if strings.Contains(c.Argv, string(secret)) {
			t.Errorf("the key is in argv: %s", c.Argv)
		}
	}
	if strings.Contains(progress.String(), string(secret)) {
		t.Error("the key is in the progress output")
	}
	for _, k := range keys.handed {
		if !bytes.Equal(k, make([]byte, len(k))) {
			t.Errorf("got the key %q in memory after apply, want it zeroed", k)
		}
	}
	report(t, "apply-fresh.json", rep)
	if !rep.Changed || rep.Result != "ok" || rep.Layout.KeyID != keyARN || rep.Layout.SectorSize != 4096 || !rep.Layout.BootUnit {
		t.Errorf("report %+v layout %+v", rep, rep.Layout)
	}
	unit, err := os.ReadFile(filepath.Join(root, "etc/systemd/system", contract.UnitName))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(unit), `ExecStart=/usr/local/sbin/storecrypt-agent unlock --mount-point /mnt/instance-store --model "Amazon EC2 NVMe Instance Storage"`) {
		t.Errorf("unit:\n%s", unit)
	}
	if _, err := os.Stat(filepath.Join(root, contract.StatePath)); err != nil {
		t.Errorf("no state file: %v", err)
	}
}

// TestRefusesBeforeWriting: one foreign disk among blank ones stops the run before any
// write and before any key is fetched.
func TestRefusesBeforeWriting(t *testing.T) {
	for _, tc := range []struct {
		name  string
		files map[string]string
		calls []sysexec.Call
		says  string
	}{
		{"ext4 among blanks", merge(disk("nvme1n1", "259:0"), disk("nvme2n1", "259:1")), []sysexec.Call{
			{Argv: "cryptsetup --version", Stdout: version},
			{Argv: "blkid -p -o export /dev/nvme1n1", Code: 2},
			{Argv: "blkid -p -o export /dev/nvme2n1", Stdout: "TYPE=ext4\nUUID=abc\n"},
		}, "/dev/nvme2n1: it holds ext4"},
		{"partition table", merge(disk("nvme1n1", "259:0")), []sysexec.Call{
			{Argv: "cryptsetup --version", Stdout: version},
			{Argv: "blkid -p -o export /dev/nvme1n1", Stdout: "PTTYPE=gpt\n"},
		}, "gpt partition table"},
		{"someone else's LUKS", merge(disk("nvme1n1", "259:0")), []sysexec.Call{
			{Argv: "cryptsetup --version", Stdout: version},
			{Argv: "blkid -p -o export /dev/nvme1n1", Stdout: "TYPE=crypto_LUKS\nLABEL=theirs\nUUID=u\n"},
		}, `crypto_LUKS (label "theirs"), which storecrypt did not write`},
		{"mounted disk", merge(disk("nvme1n1", "259:0"), map[string]string{"proc/self/mountinfo": "30 1 259:0 / /data rw - ext4 /dev/nvme1n1 rw\n"}), []sysexec.Call{
			{Argv: "cryptsetup --version", Stdout: version},
			{Argv: "blkid -p -o export /dev/nvme1n1", Stdout: "TYPE=ext4\n"},
		}, "mounted at /data"},
		{"held by LVM", merge(disk("nvme1n1", "259:0"), map[string]string{"sys/block/nvme1n1/holders/dm-3/": "", "sys/block/dm-3/dm/name": "vg-lv\n"}), []sysexec.Call{
			{Argv: "cryptsetup --version", Stdout: version},
			{Argv: "blkid -p -o export /dev/nvme1n1", Stdout: "TYPE=LVM2_member\n"},
		}, "held by dm-3"},
		{"files in the mount point", merge(disk("nvme1n1", "259:0"), map[string]string{"mnt/instance-store/orders.csv": "plaintext"}), []sysexec.Call{
			{Argv: "cryptsetup --version", Stdout: version},
			{Argv: "blkid -p -o export /dev/nvme1n1", Code: 2},
		}, "/mnt/instance-store: it holds files"},
		{"a symlink for a mount point", merge(disk("nvme1n1", "259:0"), map[string]string{"etc/ssh/": ""}), []sysexec.Call{
			{Argv: "cryptsetup --version", Stdout: version},
			{Argv: "blkid -p -o export /dev/nvme1n1", Code: 2},
		}, "goes through the symlink /mnt/instance-store"},
		{"another array", merge(disk("nvme1n1", "259:0"), disk("nvme2n1", "259:1")), []sysexec.Call{
			{Argv: "cryptsetup --version", Stdout: version},
			{Argv: "blkid -p -o export /dev/nvme1n1", Stdout: "TYPE=linux_raid_member\nLABEL=web01:data\n"},
			{Argv: "blkid -p -o export /dev/nvme2n1", Code: 2},
		}, `linux_raid_member (label "web01:data")`},
		{"8 MiB of random data at offset 0", merge(disk("nvme1n1", "259:0"), noise("nvme1n1", 0)), []sysexec.Call{
			{Argv: "cryptsetup --version", Stdout: version},
			{Argv: "blkid -p -o export /dev/nvme1n1", Code: 2},
		}, "/dev/nvme1n1: it holds data without a signature blkid knows (non-zero bytes at byte 0 of 1073741824)"},
		{"random data only in the middle", merge(disk("nvme1n1", "259:0"), disk("nvme2n1", "259:1"), noise("nvme2n1", 512<<20)), []sysexec.Call{
			{Argv: "cryptsetup --version", Stdout: version},
			{Argv: "blkid -p -o export /dev/nvme1n1", Code: 2},
			{Argv: "blkid -p -o export /dev/nvme2n1", Code: 2},
		}, "/dev/nvme2n1: it holds data without a signature blkid knows (non-zero bytes at byte 5369"},
		{"a ready array's disk named beside a blank one", merge(disk("nvme1n1", "259:0"), disk("nvme2n1", "259:1")), []sysexec.Call{
			{Argv: "cryptsetup --version", Stdout: version},
			{Argv: "blkid -p -o export /dev/nvme1n1", Stdout: memberSig},
			{Argv: "mdadm --examine /dev/nvme1n1", Stdout: examine(3, 0)},
			{Argv: "blkid -p -o export /dev/nvme2n1", Code: 2},
		}, "/dev/nvme1n1: it is a member of an array that ran (its superblock's events count is 3)"},
		{"a ready raid0's disk named beside a blank one, its events count still 0", merge(disk("nvme1n1", "259:0"), disk("nvme2n1", "259:1"), noise("nvme1n1", 1<<20)), []sysexec.Call{
			{Argv: "cryptsetup --version", Stdout: version},
			{Argv: "blkid -p -o export /dev/nvme1n1", Stdout: memberSig},
			{Argv: "mdadm --examine /dev/nvme1n1", Stdout: examine(0, 0)},
			{Argv: "blkid -p -o export /dev/nvme2n1", Code: 2},
		}, "/dev/nvme1n1: it is a member of an array that held data (non-zero bytes at byte 1048576 of 1073741824 in its data area)"},
		{"a running array named after a blank disk", merge(disk("nvme1n1", "259:0"), disk("nvme2n1", "259:1"), disk("nvme3n1", "259:2"), md127("nvme2n1", "nvme3n1")), []sysexec.Call{
			{Argv: "cryptsetup --version", Stdout: version},
			{Argv: "blkid -p -o export /dev/nvme1n1", Code: 2},
			{Argv: "blkid -p -o export /dev/nvme2n1", Stdout: memberSig},
			{Argv: "mdadm --examine /dev/nvme2n1", Stdout: examine(0, 0)},
			{Argv: "blkid -p -o export /dev/nvme3n1", Stdout: memberSig},
			{Argv: "mdadm --examine /dev/nvme3n1", Stdout: examine(0, 1)},
			{Argv: "blkid -p -o export /dev/md127", Stdout: "TYPE=crypto_LUKS\nLABEL=storecrypt\nUUID=" + volUUID + "\nSUBSYSTEM=storecrypt-ready\n"},
			{Argv: "cryptsetup luksDump --dump-json-metadata /dev/md127", Stdout: `{"keyslots":{},"tokens":{},"segments":{},"digests":{},"config":{}}`},
		}, "/dev/nvme2n1: it is a member of a running array while /dev/nvme1n1 is blank"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			root := t.TempDir()
			sysfs(t, root, tc.files)
			if strings.HasPrefix(tc.name, "a symlink") {
				// A mount there would land on /etc/ssh.
				if err := os.MkdirAll(filepath.Join(root, "mnt"), 0o755); err != nil {
					t.Fatal(err)
				}
				if err := os.Symlink(filepath.Join(root, "etc/ssh"), filepath.Join(root, "mnt/instance-store")); err != nil {
					t.Fatal(err)
				}
			}
			keys := &fakeKeys{}
			a, fake, _ := newTestAgent(t, root, tc.calls, keys)
			rep, err := a.Apply(context.Background(), kmsOptions())
			fake.Done()
			var refused *RefusedError
			if !errors.As(err, &refused) || ExitCodeOf(err) != contract.ExitRefusedUnsafe {
				t.Fatalf("got %v, want a refusal", err)
			}
			if !strings.Contains(err.Error(), tc.says) || !strings.Contains(rep.Error, "nothing was written") {
				t.Errorf("error %q does not say %q", rep.Error, tc.says)
			}
			if len(keys.volumes) != 0 {
				t.Errorf("a key was fetched before refusing")
			}
		})
	}
}

func TestKeyUnavailableWritesNothing(t *testing.T) {
	root := t.TempDir()
	sysfs(t, root, merge(disk("nvme1n1", "259:0"), disk("nvme2n1", "259:1")))
	keys := &fakeKeys{err: &keysource.UnavailableError{Op: "kms:GenerateDataKey", Err: errors.New("AccessDeniedException"), Fix: "make the role a key user"}}
	a, fake, _ := newTestAgent(t, root, []sysexec.Call{
		{Argv: "cryptsetup --version", Stdout: version},
		{Argv: "blkid -p -o export /dev/nvme1n1", Code: 2},
		{Argv: "blkid -p -o export /dev/nvme2n1", Code: 2},
	}, keys)
	rep, err := a.Apply(context.Background(), kmsOptions())
	fake.Done()
	if ExitCodeOf(err) != contract.ExitKeyUnavailable || rep.Result != "key-unavailable" || !strings.Contains(rep.Error, "make the role a key user") {
		t.Fatalf("got %v (%s), want key-unavailable with the fix", err, rep.Result)
	}
}

// TestPlanTouchesNothing: plan on blank disks lists the steps apply would take, runs only
// probes, and fetches no key.
func TestPlanTouchesNothing(t *testing.T) {
	root := t.TempDir()
	sysfs(t, root, merge(disk("nvme1n1", "259:0"), disk("nvme2n1", "259:1")))
	keys := &fakeKeys{}
	a, fake, _ := newTestAgent(t, root, []sysexec.Call{
		{Argv: "cryptsetup --version", Stdout: version},
		{Argv: "blkid -p -o export /dev/nvme1n1", Code: 2},
		{Argv: "blkid -p -o export /dev/nvme2n1", Code: 2},
	}, keys)
	rep, err := a.Plan(context.Background(), kmsOptions())
	if err != nil {
		t.Fatal(err)
	}
	fake.Done()
	var got []string
	for _, s := range rep.Steps {
		if strings.HasPrefix(s.Action, "would ") {
			got = append(got, s.Name)
		}
	}
	want := "raid-create luks-format luks-token luks-open mkfs mark-ready mount boot-unit"
	if strings.Join(got, " ") != want {
		t.Errorf("plan steps %v, want %s", got, want)
	}
	// The plan shows the commands apply runs, and no key.
	if c := rep.Steps[1].Command; c != "mdadm --create /dev/md/storecrypt --run --level=0 --metadata=1.2 --raid-devices=2 --homehost=any --name=storecrypt /dev/nvme1n1 /dev/nvme2n1" {
		t.Errorf("raid-create shows %q", c)
	}
	if len(keys.volumes) != 0 || rep.Changed {
		t.Errorf("plan fetched a key or changed something")
	}
	if _, err := os.Stat(filepath.Join(root, contract.StatePath)); err == nil {
		t.Errorf("plan wrote the state file")
	}
}

// TestReformatsOnlyProvisioning: a volume of ours still marked provisioning holds no user
// data and is formatted again; one marked ready is opened, never formatted.
func TestReformatsOnlyProvisioning(t *testing.T) {
	header := `{"tokens":{"0":{"type":"storecrypt","keyslots":["0"],"key_source":"kms-datakey","key_id":"` + keyARN + `","ciphertext":"d3JhcHBlZA==","context_keys":["storecrypt:instance-arn","storecrypt:volume"]}},"segments":{"0":{"encryption":"aes-xts-plain64","sector_size":4096}},"config":{"flags":["allow-discards"]}}`
	probeOurs := func(state string) sysexec.Call {
		return sysexec.Call{Argv: "blkid -p -o export /dev/nvme1n1", Stdout: "TYPE=crypto_LUKS\nLABEL=storecrypt\nUUID=" + volUUID + "\nSUBSYSTEM=" + state + "\n"}
	}
	t.Run("provisioning", func(t *testing.T) {
		root := t.TempDir()
		sysfs(t, root, merge(disk("nvme1n1", "259:0")))
		a, fake, progress := newTestAgent(t, root, append([]sysexec.Call{
			{Argv: "cryptsetup --version", Stdout: version},
			probeOurs(contract.StateProvisioning),
			{Argv: "cryptsetup luksDump --dump-json-metadata /dev/nvme1n1", Stdout: header},
		}, provisionCalls()...), &fakeKeys{})
		if _, err := a.Apply(context.Background(), kmsOptions()); err != nil {
			t.Fatalf("%v\n%s", err, progress)
		}
		fake.Done()
		if !strings.Contains(progress.String(), "holds no user data") {
			t.Errorf("progress does not say why it formats again:\n%s", progress)
		}
	})
	t.Run("ready", func(t *testing.T) {
		root := t.TempDir()
		sysfs(t, root, merge(disk("nvme1n1", "259:0")))
		keys := &fakeKeys{}
		a, fake, progress := newTestAgent(t, root, []sysexec.Call{
			{Argv: "cryptsetup --version", Stdout: version},
			probeOurs(contract.StateReady),
			{Argv: "cryptsetup luksDump --dump-json-metadata /dev/nvme1n1", Stdout: header},
			{Argv: "cryptsetup open --type luks2 --key-file - /dev/nvme1n1 storecrypt"},
			{Argv: "blkid -p -o export /dev/mapper/storecrypt", Stdout: "TYPE=ext4\n"},
			{Argv: "mount -t ext4 -o noatime /dev/mapper/storecrypt /mnt/instance-store"},
		}, keys)
		rep, err := a.Unlock(context.Background(), kmsOptions())
		if err != nil {
			t.Fatalf("%v\n%s", err, progress)
		}
		fake.Done()
		if len(keys.volumes) != 1 || keys.volumes[0].UUID != volUUID || keys.volumes[0].InstanceARN != "arn:aws:ec2:us-east-1:111122223333:instance/i-0123456789abcdef0" {
			t.Errorf("recovered with %+v, want this instance and the volume's UUID", keys.volumes)
		}
		if !bytes.Equal(fake.Stdins[3], secret) {
			t.Errorf("open got stdin %q", fake.Stdins[3])
		}
		if rep.Layout.KeySource != contract.KeySourceKMSDataKey || rep.Layout.KeyID != keyARN {
			t.Errorf("layout %+v", rep.Layout)
		}
	})
}

func TestMissingTools(t *testing.T) {
	root := t.TempDir()
	sysfs(t, root, merge(disk("nvme1n1", "259:0"), disk("nvme2n1", "259:1")))
	a, fake, _ := newTestAgent(t, root, nil, &fakeKeys{})
	fake.Missing = []string{"mdadm", "mkfs.xfs"}
	o := kmsOptions()
	o.Filesystem = contract.FilesystemXFS
	_, err := a.Apply(context.Background(), o)
	if ExitCodeOf(err) != contract.ExitBadInput {
		t.Fatalf("got %v, want bad input", err)
	}
	for _, want := range []string{"missing mdadm, mkfs.xfs", "dnf install -y mdadm xfsprogs", "apt-get install -y mdadm xfsprogs"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("%q does not say %q", err, want)
		}
	}
}

// TestMissingToolPackages: every program the agent looks for is named with the package
// that brings it on each family, where the names differ (dmsetup, which shred needs).
func TestMissingToolPackages(t *testing.T) {
	for _, tc := range []struct {
		tools    []string
		dnf, apt string
	}{
		{[]string{"dmsetup", "umount"}, "dnf install -y device-mapper util-linux`", "apt-get install -y dmsetup mount`"},
		{[]string{"dmsetup", "umount", "mdadm"}, "dnf install -y device-mapper util-linux mdadm`", "apt-get install -y dmsetup mount mdadm`"},
		{[]string{"cryptsetup", "blkid", "mount"}, "dnf install -y cryptsetup util-linux`", "apt-get install -y cryptsetup util-linux mount`"},
		{[]string{"mkfs.ext4", "mkfs.xfs"}, "dnf install -y e2fsprogs xfsprogs`", "apt-get install -y e2fsprogs xfsprogs`"},
	} {
		msg := (&MissingToolError{Tools: tc.tools}).Error()
		for _, want := range []string{tc.dnf, tc.apt} {
			if !strings.Contains(msg, want) {
				t.Errorf("tools %v: got %q, want it to say %q", tc.tools, msg, want)
			}
		}
	}
	for tool, p := range toolPackages {
		if p.dnf == "" || p.apt == "" {
			t.Errorf("%s: got packages %+v, want one for dnf and one for apt", tool, p)
		}
	}
}

func TestNoDevices(t *testing.T) {
	root := t.TempDir()
	sysfs(t, root, merge(map[string]string{"sys/block/": ""}))
	a, fake, _ := newTestAgent(t, root, nil, &fakeKeys{})
	_, err := a.Apply(context.Background(), kmsOptions())
	fake.Done()
	if ExitCodeOf(err) != contract.ExitNoDevices {
		t.Fatalf("got %v, want no-devices", err)
	}
}

func TestExitCodeOf(t *testing.T) {
	for _, tc := range []struct {
		err  error
		want contract.ExitCode
	}{
		{nil, contract.ExitOK},
		{&RefusedError{Device: "/dev/x", Reason: "r"}, contract.ExitRefusedUnsafe},
		{fmt.Errorf("observing /dev/x: %w", &keytoken.ContextKeysError{}), contract.ExitRefusedUnsafe},
		{&keysource.UnavailableError{Op: "x", Err: errors.New("y")}, contract.ExitKeyUnavailable},
		{keytoken.ErrEphemeral, contract.ExitKeyUnavailable},
		{&contract.InvalidError{Flag: "f"}, contract.ExitBadInput},
		{&MissingToolError{Tools: []string{"mdadm"}}, contract.ExitBadInput},
		{ErrNoDevices, contract.ExitNoDevices},
		{&RevokedError{Mark: contract.Revocation{State: contract.Revoked}}, contract.ExitRevoked},
		{fmt.Errorf("/dev/nvme1n1: %w", plan.ErrSuspended), contract.ExitRevoked},
		{errors.New("mkfs failed"), contract.ExitSystemError},
	} {
		if got := ExitCodeOf(tc.err); got != tc.want {
			t.Errorf("ExitCodeOf(%v) = %v, want %v", tc.err, got, tc.want)
		}
	}
}

// TestCutShortPreview: superblocks mdadm --create wrote on some disks before it was cut
// short (events 0, a data area that reads as zero) beside a blank disk are erased and
// the array created again.
func TestCutShortPreview(t *testing.T) {
	root := t.TempDir()
	sysfs(t, root, merge(disk("nvme1n1", "259:0"), disk("nvme2n1", "259:1")))
	a, fake, _ := newTestAgent(t, root, []sysexec.Call{
		{Argv: "cryptsetup --version", Stdout: version},
		{Argv: "blkid -p -o export /dev/nvme1n1", Stdout: memberSig},
		{Argv: "mdadm --examine /dev/nvme1n1", Stdout: examine(0, 0)},
		{Argv: "blkid -p -o export /dev/nvme2n1", Code: 2},
	}, &fakeKeys{})
	rep, err := a.Plan(context.Background(), kmsOptions())
	if err != nil {
		t.Fatal(err)
	}
	fake.Done()
	if len(rep.Steps) < 3 || rep.Steps[1].Command != "mdadm --zero-superblock /dev/nvme1n1" {
		t.Errorf("got steps %+v, want the discover step, then raid-zero of /dev/nvme1n1", rep.Steps)
	}
}
