package plan

import (
	"errors"
	"slices"
	"strings"
	"testing"

	"github.com/storecrypt/storecrypt/instance-agent/keytoken"
	"github.com/storecrypt/storecrypt/instance-agent/luks"
	"github.com/storecrypt/storecrypt/instance-agent/probe"
	"github.com/storecrypt/storecrypt/instance-agent/raid"
	"github.com/storecrypt/storecrypt/internal/contract"
)

const (
	uuid      = "6d5c4b3a-0000-4000-8000-000000000001"
	arrayUUID = "3a1b2c4d:5e6f7081:92a3b4c5:d6e7f809"
	keyARN    = "arn:aws:kms:us-east-1:111122223333:key/1234abcd-12ab-34cd-56ef-1234567890ab"
	gib       = int64(1) << 30
)

var (
	blank  = probe.Signature{}
	member = probe.Signature{Type: "linux_raid_member", Label: "any:storecrypt"}
	ext4   = probe.Signature{Type: "ext4"}
	// written: blkid found nothing, but the disk does not read as zero.
	written = probe.Signature{Data: "non-zero bytes at byte 0 of 1073741824"}
)

func ours(state string) probe.Signature {
	return probe.Signature{Type: "crypto_LUKS", Label: contract.VolumeLabel, UUID: uuid, Subsystem: state}
}

func header(source string) *Header {
	h := &Header{Token: &keytoken.Token{Type: contract.TokenType, KeySource: source, KeyID: keyARN}}
	h.Meta.Config.Flags = []string{"allow-discards"}
	return h
}

// disks are disks with these signatures; a member carries the superblock mdadm --create
// writes for an array of them all, the disk's place its role.
func disks(sigs ...probe.Signature) []Disk {
	var out []Disk
	for i, s := range sigs {
		name := "nvme" + string(rune('1'+i)) + "n1"
		d := Disk{Path: "/dev/" + name, Name: name, SizeBytes: gib, Sig: s}
		if s == member {
			d.Super = &raid.Superblock{ArrayUUID: arrayUUID, RaidDevices: len(sigs), Role: i, Data: 1 << 20}
		}
		out = append(out, d)
	}
	return out
}

// running makes the disks the members of a running array, which it returns to edit.
func running(f *Facts) *Array {
	a := &Array{Path: "/dev/md127", Name: "md127", SizeBytes: 2 * gib, Devices: len(f.Disks)}
	for i := range f.Disks {
		f.Disks[i].Holders = []Holder{{Name: a.Name}}
	}
	f.Array = a
	return a
}

func facts(m Mode, d []Disk) Facts {
	o := contract.DefaultAgentOptions()
	o.KMSKeyID = keyARN
	return Facts{Mode: m, Options: o, Disks: d, Perf: true, NewUUID: uuid}
}

// TestDecide: each decision the agent makes, as data. Steps are listed by name; a "*"
// marks a step after which the facts are read again.
func TestDecide(t *testing.T) {
	full := "key luks-format luks-token luks-open mkfs mark-ready mount boot-unit"
	for _, tc := range []struct {
		name  string
		f     Facts
		edit  func(*Facts)
		steps string
		note  string
		err   string // a refusal's or error's words
	}{
		{"one blank disk: provision", facts(Apply, disks(blank)), nil, full, "", ""},
		{"one blank disk, previewed: the same steps", facts(Preview, disks(blank)), nil, full, "", ""},
		{"one blank disk at boot: nothing to unlock", facts(Unlock, disks(blank)), nil, "", "nothing to unlock", ""},
		{"one blank disk, status", facts(Status, disks(blank)), nil, "", "not provisioned yet", ""},
		{"two blank disks: the key, then the array, then read again", facts(Apply, disks(blank, blank)), nil, "key raid-create*", "", ""},
		{"two blank disks, previewed: all the way", facts(Preview, disks(blank, blank)), nil, "key raid-create " + strings.TrimPrefix(full, "key "), "", ""},
		{"after creating the array: no second key", facts(Apply, disks(member, member)), func(f *Facts) {
			a := running(f)
			f.Array, f.KeyHeld = a, true
		}, strings.TrimPrefix(full, "key "), "", ""},
		{"our array, not running: assemble, then read again", facts(Apply, disks(member, member)), nil, "raid-assemble*", "", ""},
		{"raid10, previewed: the resync runs after the mount", facts(Preview, disks(blank, blank)), func(f *Facts) { f.Options.Layout = contract.LayoutRAID10 },
			"key raid-create luks-format luks-token luks-open mkfs mark-ready mount raid-resync boot-unit", "", ""},
		{"raid10 array just created, its resync paused: resumed after the mount", facts(Apply, disks(member, member)), func(f *Facts) {
			a := running(f)
			a.Level, a.Frozen, f.Options.Layout = "raid10", true, contract.LayoutRAID10
			f.Array, f.KeyHeld = a, true
		}, "luks-format luks-token luks-open mkfs mark-ready mount raid-resync boot-unit", "", ""},
		{"raid10, ready and mounted, its resync left paused by a cut-short run: resumed", facts(Unlock, disks(member, member)), func(f *Facts) {
			a := running(f)
			a.Sig, a.Level, a.Frozen = ours(contract.StateReady), "raid10", true
			f.Array, f.Header, f.Mapping = a, header(contract.KeySourceKMSDataKey), &Mapping{FS: ext4, Mounts: []string{contract.DefaultMountPoint}}
		}, "raid-resync", "already open and mounted", ""},
		{"a raid0 volume asked to be raid10: kept", facts(Apply, disks(member, member)), func(f *Facts) {
			a := running(f)
			a.Sig, a.Level, f.Options.Layout = ours(contract.StateReady), "raid0", contract.LayoutRAID10
			f.Array, f.Header, f.Mapping = a, header(contract.KeySourceKMSDataKey), &Mapping{FS: ext4, Mounts: []string{contract.DefaultMountPoint}}
		}, "boot-unit", "stays raid0; --layout raid10 applies to new volumes", ""},
		{"per-disk volumes, asked for an array: opened as they are", facts(Apply, disks(ours(contract.StateReady), ours(contract.StateReady))), nil, "", "", "hold storecrypt's per-disk volumes"},
		{"per-disk volumes, one cut short before its format: still per-disk", facts(Unlock, disks(ours(contract.StateReady), blank)), nil, "", "", "per-disk volumes"},
		{"one disk of an array, asked for per-disk: the array is opened", facts(Apply, disks(member)), nil, "", "", "hold storecrypt's raid volumes"},
		{"raid10 with one disk: no array", facts(Preview, disks(blank)), func(f *Facts) { f.Options.Layout = contract.LayoutRAID10 }, full, "", ""},
		{"our array, previewed before assembling", facts(Preview, disks(member, member)), nil, "raid-assemble*", "depends on what it holds", ""},
		{"our array, running, created but never formatted", facts(Apply, disks(member, member)), func(f *Facts) {
			a := running(f)
			f.Array = a
		}, full, "", ""},
		{"our array, ready, closed: recover the key, open, read again", facts(Unlock, disks(member, member)), func(f *Facts) {
			a := running(f)
			a.Sig = ours(contract.StateReady)
			f.Array, f.Header = a, header(contract.KeySourceKMSDataKey)
		}, "key luks-open*", "", ""},
		{"a creation cut short: zero what it left, create again", facts(Apply, disks(member, blank)), nil, "key raid-zero raid-create*", "cut short", ""},
		{"a creation cut short, previewed", facts(Preview, disks(member, blank, blank)), nil, "key raid-zero raid-create " + strings.TrimPrefix(full, "key "), "cut short", ""},
		{"ready and open, not mounted: mount and install the unit", facts(Apply, disks(ours(contract.StateReady))), func(f *Facts) {
			f.Header, f.Mapping = header(contract.KeySourceKMSDataKey), &Mapping{FS: ext4}
		}, "mount boot-unit", "", ""},
		{"ready and open at boot: mount only", facts(Unlock, disks(ours(contract.StateReady))), func(f *Facts) {
			f.Header, f.Mapping = header(contract.KeySourceKMSDataKey), &Mapping{FS: ext4}
		}, "mount", "", ""},
		{"ready, open and mounted: nothing but the unit check", facts(Apply, disks(ours(contract.StateReady))), func(f *Facts) {
			f.Header, f.Mapping = header(contract.KeySourceKMSDataKey), &Mapping{FS: ext4, Mounts: []string{contract.DefaultMountPoint}}
		}, "boot-unit", "already open and mounted", ""},
		{"ready, mounted elsewhere: left as it is", facts(Unlock, disks(ours(contract.StateReady))), func(f *Facts) {
			f.Header, f.Mapping = header(contract.KeySourceKMSDataKey), &Mapping{FS: ext4, Mounts: []string{"/data"}}
		}, "", "left as it is", ""},
		{"ready, but the mapping holds no filesystem of ours", facts(Apply, disks(ours(contract.StateReady))), func(f *Facts) {
			f.Header, f.Mapping = header(contract.KeySourceKMSDataKey), &Mapping{FS: probe.Signature{Type: "swap"}}
		}, "", "", "holds swap instead of its filesystem"},
		{"ready under another key source: kept", facts(Apply, disks(ours(contract.StateReady))), func(f *Facts) {
			f.Header = header(contract.KeySourceS3KMS)
		}, "key luks-open*", "keeps its s3-kms key", ""},
		{"provisioning: no user data, format again", facts(Apply, disks(ours(contract.StateProvisioning))), func(f *Facts) {
			f.Header = header(contract.KeySourceKMSDataKey)
		}, full, "holds no user data", ""},
		{"provisioning with a mapping left open: close it first", facts(Apply, disks(ours(contract.StateProvisioning))), func(f *Facts) {
			f.Header, f.Mapping = header(contract.KeySourceKMSDataKey), &Mapping{}
		}, "key luks-close luks-format luks-token luks-open mkfs mark-ready mount boot-unit", "holds no user data", ""},
		{"provisioning at boot: left for apply", facts(Unlock, disks(ours(contract.StateProvisioning))), func(f *Facts) {
			f.Header = header(contract.KeySourceKMSDataKey)
		}, "", "apply finishes it", ""},
		{"ephemeral after a reboot: scratch again", facts(Apply, disks(ours(contract.StateReady))), func(f *Facts) {
			f.Header = header(contract.KeySourceEphemeral)
		}, full, "discards by design", ""},
		{"ephemeral at boot: its key is gone", facts(Unlock, disks(ours(contract.StateReady))), func(f *Facts) {
			f.Header = header(contract.KeySourceEphemeral)
		}, "", "", keytoken.ErrEphemeral.Error()},
		{"ready without a token", facts(Unlock, disks(ours(contract.StateReady))), func(f *Facts) { f.Header = &Header{} }, "", "", "without a storecrypt token"},
		{"unknown state", facts(Apply, disks(ours("storecrypt-future"))), func(f *Facts) { f.Header = header(contract.KeySourceKMSDataKey) }, "", "", `unknown state "storecrypt-future"`},
		{"someone else's LUKS", facts(Apply, disks(probe.Signature{Type: "crypto_LUKS", Label: "theirs"})), nil, "", "", "which storecrypt did not write"},
		{"a filesystem", facts(Apply, disks(ext4)), nil, "", "", "holds ext4, which storecrypt did not write"},
		{"a filesystem among blanks", facts(Apply, disks(blank, ext4)), nil, "", "", "/dev/nvme2n1: it holds ext4"},
		{"another host's array", facts(Apply, disks(probe.Signature{Type: "linux_raid_member", Label: "web01:data"}, blank)), nil, "", "", `label "web01:data"`},
		{"a mounted disk", facts(Apply, disks(ext4)), func(f *Facts) { f.Disks[0].Mounts = []string{"/data"} }, "", "", "is mounted at /data"},
		{"a partitioned disk", facts(Apply, disks(probe.Signature{PTType: "gpt"})), func(f *Facts) { f.Disks[0].Partitions = []string{"nvme1n1p1"} }, "", "", "has partitions"},
		{"held by LVM", facts(Apply, disks(blank)), func(f *Facts) { f.Disks[0].Holders = []Holder{{Name: "dm-3", DMName: "vg-lv"}} }, "", "", "is held by dm-3"},
		{"held by our own mapping", facts(Apply, disks(ours(contract.StateReady))), func(f *Facts) {
			f.Disks[0].Holders = []Holder{{Name: "dm-0", DMName: contract.MapperName}}
			f.Header, f.Mapping = header(contract.KeySourceKMSDataKey), &Mapping{FS: ext4, Mounts: []string{contract.DefaultMountPoint}}
		}, "boot-unit", "already open and mounted", ""},
		{"a blank disk of several held by something", facts(Apply, disks(blank, blank)), func(f *Facts) { f.Disks[1].Holders = []Holder{{Name: "md5"}} }, "", "", "is held by md5"},
		{"a member of a running array beside a blank disk", facts(Apply, disks(member, blank)), func(f *Facts) {
			running(f)
			f.Disks[1].Holders = nil
		}, "", "", "a member of a running array"},
		{"no signature, but not zero: not ours", facts(Apply, disks(written)), nil, "", "",
			"/dev/nvme1n1: it holds data without a signature blkid knows (non-zero bytes at byte 0 of 1073741824), which storecrypt did not write"},
		{"not zero, among blanks", facts(Apply, disks(blank, written)), nil, "", "", "/dev/nvme2n1: it holds data without a signature blkid knows"},
		{"not zero, beside a member cut short", facts(Apply, disks(member, written)), nil, "", "", "/dev/nvme2n1: it holds data without a signature blkid knows"},
		// Each of the next ones is a ready array named with a disk too many, too few or
		// another in place of one: erasing its superblocks as a cut-short creation's would
		// destroy it.
		{"a --devices superset of a ready array, not assembled", facts(Apply, disks(member, member, blank)), func(f *Facts) {
			f.Disks[0].Super.RaidDevices, f.Disks[1].Super.RaidDevices = 2, 2
		}, "", "", "/dev/nvme1n1: it is a member of a 2-disk storecrypt array and 3 disks were given"},
		{"a --devices superset of a running array, named after a blank disk", facts(Apply, disks(blank, member, member)), func(f *Facts) {
			running(f)
			f.Array, f.Disks[0].Holders = nil, nil // the array looked up from the blank first disk alone: none is found
		}, "", "", "/dev/nvme2n1: it is held by md127"},
		{"a ready array not yet assembled, one disk named in place of another", facts(Apply, disks(member, blank)), func(f *Facts) {
			f.Disks[0].Super.Events = 7
		}, "", "", "its superblock's events count is 7): its other disks are missing"},
		{"a ready raid0 not yet assembled, its events count still 0", facts(Apply, disks(member, blank)), func(f *Facts) {
			f.Disks[0].DataArea = "non-zero bytes at byte 1048576 of 1073741824"
		}, "", "", "an array that held data (non-zero bytes at byte 1048576 of 1073741824 in its data area)"},
		{"raid-devices not the disks given", facts(Apply, disks(member, blank, blank)), func(f *Facts) {
			f.Disks[0].Super.RaidDevices = 2
		}, "", "", "a 2-disk storecrypt array and 3 disks were given"},
		{"members of two arrays", facts(Apply, disks(member, member, blank)), func(f *Facts) {
			f.Disks[1].Super.ArrayUUID = "ffffffff:5e6f7081:92a3b4c5:d6e7f809"
		}, "", "", "/dev/nvme2n1: it is a member of array ffffffff:5e6f7081:92a3b4c5:d6e7f809, not of " + arrayUUID},
		{"two members in one role", facts(Apply, disks(member, member, blank)), func(f *Facts) {
			f.Disks[1].Super.Role = 0
		}, "", "", "/dev/nvme2n1: it is a member with role 0"},
		{"a spare", facts(Apply, disks(member, blank)), func(f *Facts) { f.Disks[0].Super.Role = -1 }, "", "", "role -1"},
		{"members of two arrays, not assembled", facts(Apply, disks(member, member)), func(f *Facts) {
			f.Disks[1].Super.ArrayUUID = "ffffffff:5e6f7081:92a3b4c5:d6e7f809"
		}, "", "", "not of " + arrayUUID},
		{"a running array with a member not given", facts(Apply, disks(member, member)), func(f *Facts) { running(f).Devices = 3 }, "", "", "/dev/md127: it has 3 members and 2 disks were given"},
		{"a disk of another array beside the running one", facts(Apply, disks(member, member)), func(f *Facts) {
			running(f)
			f.Disks[1].Holders, f.Disks[1].Super.ArrayUUID = nil, "ffffffff:5e6f7081:92a3b4c5:d6e7f809"
		}, "", "", "/dev/nvme2n1: it is a member of array ffffffff:5e6f7081:92a3b4c5:d6e7f809, not of " + arrayUUID},
		{"a raid10 running without its failed disk: opened", facts(Unlock, disks(member, member)), func(f *Facts) {
			a := running(f)
			a.Sig, a.Level, f.Header = ours(contract.StateReady), "raid10", header(contract.KeySourceKMSDataKey)
			f.Disks[1].Holders = nil
		}, "key luks-open*", "", ""},
		{"a member held by another array", facts(Apply, disks(member, member)), func(f *Facts) {
			running(f)
			f.Disks[1].Holders = []Holder{{Name: "md5"}}
		}, "", "", "/dev/nvme2n1: it is held by md5"},
		{"--wipe", facts(Apply, disks(blank)), func(f *Facts) { f.Options.Wipe = true }, "key luks-format luks-token luks-open wipe mkfs mark-ready mount boot-unit", "", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := tc.f
			if tc.edit != nil {
				tc.edit(&f)
			}
			p, err := Decide(f)
			switch {
			case tc.err == "" && err != nil:
				t.Fatalf("got %v", err)
			case tc.err != "" && (err == nil || !strings.Contains(err.Error(), tc.err)):
				t.Fatalf("got %v, want an error saying %q", err, tc.err)
			}
			var refused *RefusedError
			if err != nil && errors.As(err, &refused) && len(p.Steps) > 0 {
				t.Errorf("a refusal with steps: %v", p.Steps)
			}
			var names []string
			for _, s := range p.Steps {
				n := s.Name
				if s.Replan {
					n += "*"
				}
				names = append(names, n)
			}
			if got := strings.Join(names, " "); got != tc.steps {
				t.Errorf("steps %q, want %q", got, tc.steps)
			}
			if notes := strings.Join(p.Notes, " | "); tc.note != "" && !strings.Contains(notes, tc.note) || tc.note == "" && notes != "" {
				t.Errorf("notes %q, want %q", notes, tc.note)
			}
			// Safety: nothing is written before the key exists.
			for i, s := range p.Steps {
				if s.Kind == NewKey && i != 0 {
					t.Errorf("the new key is step %d, not the first", i)
				}
				if writes(s.Kind) && !hasKeyBefore(p.Steps[:i], f) && s.Kind != AssembleArray {
					t.Errorf("step %s writes before any key is in hand", s.Name)
				}
			}
		})
	}
}

func writes(k Kind) bool {
	switch k {
	case ZeroSuperblocks, CreateArray, CloseMapping, Format, StoreToken, Wipe, MakeFS, MarkReady:
		return true
	}
	return false
}

func hasKeyBefore(steps []Step, f Facts) bool {
	if f.KeyHeld {
		return true
	}
	for _, s := range steps {
		if s.Kind == NewKey || s.Kind == RecoverKey {
			return true
		}
	}
	return false
}

// TestCommands: the commands the plan runs, as the agent's exec seam will see them (the
// key goes on stdin; argv never holds it).
func TestCommands(t *testing.T) {
	for _, tc := range []struct {
		name string
		edit func(*Facts)
		step string
		want string
	}{
		{"format with 4K sectors and the fast KDF", nil, "luks-format",
			"cryptsetup luksFormat --batch-mode --type luks2 --cipher aes-xts-plain64 --key-size 512 --sector-size 4096 --uuid " + uuid +
				" --label storecrypt --subsystem storecrypt-provisioning --pbkdf pbkdf2 --pbkdf-force-iterations 1000 --key-slot 0 --key-file - /dev/nvme1n1"},
		{"s3-kms keeps cryptsetup's PBKDF: its passphrase may be a person's", func(f *Facts) { f.Options.KeySource = contract.KeySourceS3KMS }, "luks-format",
			"cryptsetup luksFormat --batch-mode --type luks2 --cipher aes-xts-plain64 --key-size 512 --sector-size 4096 --uuid " + uuid +
				" --label storecrypt --subsystem storecrypt-provisioning --key-slot 0 --key-file - /dev/nvme1n1"},
		{"an odd size keeps cryptsetup's sector size", func(f *Facts) { f.Disks[0].SizeBytes = gib + 512 }, "luks-format",
			"cryptsetup luksFormat --batch-mode --type luks2 --cipher aes-xts-plain64 --key-size 512 --uuid " + uuid +
				" --label storecrypt --subsystem storecrypt-provisioning --pbkdf pbkdf2 --pbkdf-force-iterations 1000 --key-slot 0 --key-file - /dev/nvme1n1"},
		{"open persists discards and no workqueues", nil, "luks-open",
			"cryptsetup open --type luks2 --key-file - --allow-discards --perf-no_read_workqueue --perf-no_write_workqueue --persistent /dev/nvme1n1 storecrypt"},
		{"an old kernel keeps the workqueues", func(f *Facts) { f.Perf = false }, "luks-open",
			"cryptsetup open --type luks2 --key-file - --allow-discards --persistent /dev/nvme1n1 storecrypt"},
		{"no discards", func(f *Facts) { f.Options.Discard = false }, "luks-open",
			"cryptsetup open --type luks2 --key-file - --perf-no_read_workqueue --perf-no_write_workqueue --persistent /dev/nvme1n1 storecrypt"},
		{"xfs", func(f *Facts) { f.Options.Filesystem = contract.FilesystemXFS }, "mkfs", "mkfs.xfs -q -f -K -L storecrypt /dev/mapper/storecrypt"},
		{"fast format", func(f *Facts) { f.Options.Filesystem, f.Options.FastFormat = contract.FilesystemXFS, true }, "mkfs", "mkfs.xfs -q -f -K -L storecrypt -l size=512m /dev/mapper/storecrypt"},
		{"mark ready keeps the label", nil, "mark-ready", "cryptsetup config --label storecrypt --subsystem storecrypt-ready /dev/nvme1n1"},
		{"mount with noatime", nil, "mount", "mount -t ext4 -o noatime /dev/mapper/storecrypt /mnt/instance-store"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := facts(Apply, disks(blank))
			if tc.edit != nil {
				tc.edit(&f)
			}
			p, err := Decide(f)
			if err != nil {
				t.Fatal(err)
			}
			for _, s := range p.Steps {
				if s.Name == tc.step {
					if got := s.Cmd.String(); got != tc.want {
						t.Errorf("got  %s\nwant %s", got, tc.want)
					}
					return
				}
			}
			t.Fatalf("no step %s", tc.step)
		})
	}
}

// TestLayout: the plan says what the volume will be.
func TestLayout(t *testing.T) {
	p, err := Decide(facts(Preview, disks(blank, blank)))
	if err != nil {
		t.Fatal(err)
	}
	l := p.Layout
	if l.RAID != "/dev/md/storecrypt" || l.Volume != "/dev/md/storecrypt" || l.LUKSUUID != uuid || l.State != contract.StateReady ||
		l.Cipher != luks.Cipher || l.SectorSize != 4096 || l.Filesystem != "ext4" || l.KeySource != contract.KeySourceKMSDataKey ||
		l.Open || l.Mounted || strings.Join(l.Flags, ",") != "allow-discards,no-read-workqueue,no-write-workqueue" {
		t.Errorf("layout %+v", l)
	}
}

func TestBootUnit(t *testing.T) {
	for _, tc := range []struct {
		name    string
		edit    func(*contract.AgentOptions)
		exec    string
		held    []string
		sayHeld bool
	}{
		{"unlock at boot, retrying", func(*contract.AgentOptions) {},
			contract.AgentPath + " unlock --mount-point /mnt/instance-store --model Amazon EC2 NVMe Instance Storage --retry-for=4m0s", nil, false},
		{"units held back", func(o *contract.AgentOptions) { o.RequiredBy = []string{"postgresql.service"} },
			contract.AgentPath + " unlock --mount-point /mnt/instance-store --model Amazon EC2 NVMe Instance Storage --retry-for=4m0s", []string{"postgresql.service"}, true},
		{"ephemeral: apply again at boot, holding the same units", func(o *contract.AgentOptions) {
			o.KeySource, o.KMSKeyID, o.RequiredBy = contract.KeySourceEphemeral, "", []string{"postgresql.service"}
		}, contract.AgentPath + " apply --key-source ephemeral --mount-point /mnt/instance-store --model Amazon EC2 NVMe Instance Storage --filesystem ext4 --layout raid0 --required-by postgresql.service --discard=true --retry-for=4m0s", []string{"postgresql.service"}, true},
		{"directories bound again at boot", func(o *contract.AgentOptions) { o.BindDirs = []string{"/var/lib/containerd", "/var/log/pods"} },
			contract.AgentPath + " unlock --mount-point /mnt/instance-store --model Amazon EC2 NVMe Instance Storage --bind-dirs /var/lib/containerd,/var/log/pods --retry-for=4m0s", nil, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := facts(Preview, disks(blank))
			tc.edit(&f.Options)
			p, err := Decide(f)
			if err != nil {
				t.Fatal(err)
			}
			s := p.Steps[len(p.Steps)-1]
			if s.Kind != InstallBoot || strings.Join(s.Unit.Exec, " ") != tc.exec || !slices.Equal(s.Unit.RequiredBy, tc.held) {
				t.Errorf("unit %q holding %v, want %q holding %v", s.Unit.Exec, s.Unit.RequiredBy, tc.exec, tc.held)
			}
			if strings.Contains(s.Action, "hold back") != tc.sayHeld {
				t.Errorf("action %q", s.Action)
			}
		})
	}
}
