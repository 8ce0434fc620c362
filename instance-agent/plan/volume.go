package plan

import (
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/storecrypt/storecrypt/instance-agent/filesystem"
	"github.com/storecrypt/storecrypt/instance-agent/keytoken"
	"github.com/storecrypt/storecrypt/instance-agent/luks"
	"github.com/storecrypt/storecrypt/instance-agent/probe"
	"github.com/storecrypt/storecrypt/instance-agent/raid"
	"github.com/storecrypt/storecrypt/internal/contract"
)

// fresh provisions a new volume on v: the key first, so that a key failure writes
// nothing; then, for several disks, the array (zeroing what a cut-short creation left).
func (pl *planner) fresh(v volume, stripe, leftovers []Disk) error {
	if !pl.facts.Mode.formats() {
		if pl.facts.Mode == Unlock {
			pl.note("the instance store is blank (new after a stop/start): nothing to unlock; apply provisions it")
		} else {
			pl.note("the instance store is blank: not provisioned yet")
		}
		return nil
	}
	pl.newKey()
	if len(leftovers) > 0 {
		pl.add(Step{Kind: ZeroSuperblocks, Name: "raid-zero", Action: "erase the superblocks of the array creation that was cut short",
			Cmd: raid.ZeroCommand(paths(leftovers)), Leaves: "every disk blank"})
	}
	if stripe != nil {
		level := raid.Level(pl.facts.Options.Layout)
		pl.plan.Layout.RAID, pl.plan.Layout.Level = v.Path, fmt.Sprintf("raid%d", level)
		action := fmt.Sprintf("stripe %d disks into RAID0 %s", len(stripe), v.Path)
		if level == 10 {
			v.SizeBytes /= 2
			action = fmt.Sprintf("mirror and stripe %d disks into RAID10 %s, its resync paused until the volume is mounted", len(stripe), v.Path)
		}
		// Apply learns the array's kernel device after creating it, and decides the rest
		// then; the preview goes on with the name mdadm gives it.
		pl.add(Step{Kind: CreateArray, Name: "raid-create", Action: action,
			Cmd: raid.CreateCommand(contract.ArrayName, level, paths(stripe)), Leaves: "blank array " + v.Path, Replan: pl.facts.Mode == Apply})
		if pl.facts.Mode == Apply {
			return nil
		}
	}
	return pl.provision(v)
}

func (pl *planner) newKey() {
	if pl.facts.KeyHeld {
		return
	}
	o := pl.facts.Options
	pl.add(Step{Kind: NewKey, Name: "key", Action: "new " + o.KeySource + " key", VolumeUUID: pl.facts.NewUUID, Leaves: "a key in memory"})
}

// provision formats v, stores the token, opens it, makes the filesystem, marks it ready,
// mounts it and installs the boot unit. The volume is "provisioning" from the format
// until it is marked ready, and nothing mounts it before: a provisioning volume
// provably holds no user data.
func (pl *planner) provision(v volume) error {
	o := pl.facts.Options
	l := &pl.plan.Layout
	l.Volume, l.LUKSUUID = v.Path, pl.facts.NewUUID
	l.Cipher, l.KeySizeBits, l.KeySource = luks.Cipher, luks.KeySizeBits, o.KeySource
	// 4K sectors halve dm-crypt's per-I/O work against 512-byte ones; NVMe sizes are always
	// a multiple of 4 KiB, but an odd-sized device falls back to cryptsetup's default.
	if v.SizeBytes%4096 == 0 {
		l.SectorSize = 4096
	}
	format := luks.FormatOptions{UUID: pl.facts.NewUUID, Label: contract.VolumeLabel, Subsystem: contract.StateProvisioning,
		SectorSize: l.SectorSize, FastKDF: o.KeySource != contract.KeySourceS3KMS}
	pl.add(Step{Kind: Format, Name: "luks-format", Action: "format " + v.Path + " as LUKS2 " + luks.Cipher,
		Cmd: luks.FormatCommand(v.Path, format), Leaves: "volume " + contract.StateProvisioning})
	pl.add(Step{Kind: StoreToken, Name: "luks-token", Action: "store the " + o.KeySource + " token in the header",
		Cmd: luks.ImportTokenCommand(v.Path, true), Leaves: "the token in the header"})
	open := luks.OpenOptions{Discard: o.Discard, Workqueue: !pl.facts.Perf, Persist: true}
	pl.add(Step{Kind: Open, Name: "luks-open", Action: "open " + v.Path + " as " + pl.path() + flagWords(open),
		Cmd: luks.OpenCommand(v.Path, pl.facts.MapperName(), open), Leaves: pl.path() + " open"})
	l.Mapper, l.Flags = pl.path(), open.HeaderFlags()
	if o.Wipe {
		pl.add(Step{Kind: Wipe, Name: "wipe", Action: "zero-fill " + pl.path() + " (--wipe)", Leaves: pl.path() + " zeroed"})
	}
	mkfs, err := filesystem.MakeCommand(o.Filesystem, pl.path(), contract.VolumeLabel, o.FastFormat)
	if err != nil {
		return err
	}
	made := "make " + o.Filesystem + " on " + pl.path()
	if o.FastFormat {
		made += " (--fast-format: " + strings.Join(filesystem.FastFlags[o.Filesystem], " ") + ")"
	}
	pl.add(Step{Kind: MakeFS, Name: "mkfs", Action: made, Cmd: mkfs, Leaves: o.Filesystem + " on " + pl.path()})
	pl.add(Step{Kind: MarkReady, Name: "mark-ready", Action: "mark the volume ready in its header",
		Cmd: luks.SetLabelsCommand(v.Path, contract.VolumeLabel, contract.StateReady), Leaves: "volume " + contract.StateReady})
	l.State, l.Filesystem = contract.StateReady, o.Filesystem
	l.ProvisionedBy = o.ProvisionedBy()
	pl.mount(o.Filesystem)
	pl.resumeResync()
	pl.bindDirs()
	pl.installBoot(o.KeySource)
	return nil
}

func flagWords(o luks.OpenOptions) string {
	var w []string
	if o.Discard {
		w = append(w, "discards")
	}
	if !o.Workqueue {
		w = append(w, "no workqueues")
	}
	if len(w) == 0 {
		return ""
	}
	return " (" + strings.Join(w, ", ") + ", persisted)"
}

// ErrNoToken is a ready volume whose header lost its token: it cannot be opened.
var ErrNoToken = errors.New("a ready storecrypt volume without a storecrypt token")

// existing handles a volume device that has a signature: ours is opened (or, when it
// provably holds no user data, formatted again); anything else is refused.
func (pl *planner) existing(v volume, s probe.Signature) error {
	l := &pl.plan.Layout
	l.Volume = v.Path
	if s.Type != "crypto_LUKS" || s.Label != contract.VolumeLabel {
		return refuse(v.Path, "holds %s, which storecrypt did not write", s.What())
	}
	l.LUKSUUID, l.State = s.UUID, s.Subsystem
	h := pl.facts.Header
	if h == nil {
		return fmt.Errorf("%s: the header of a storecrypt volume was not read", v.Path)
	}
	if seg, ok := h.Meta.Segments["0"]; ok {
		l.Cipher, l.SectorSize, l.KeySizeBits = seg.Encryption, seg.SectorSize, luks.KeySizeBits
	}
	l.Flags = h.Meta.Config.Flags
	if t := h.Token; t != nil {
		l.KeySource, l.KeyID, l.Secret, l.ProvisionedBy = t.KeySource, t.KeyID, t.Secret, t.ProvisionedBy
	}
	switch s.Subsystem {
	case contract.StateProvisioning:
		if !pl.facts.Mode.formats() {
			pl.note("%s was being provisioned when an earlier apply stopped; apply finishes it", v.Path)
			return nil
		}
		pl.note("%s: an earlier apply stopped before the filesystem was ready, so it holds no user data; formatting it again", v.Path)
		return pl.reprovision(v)
	case contract.StateReady:
		if h.Token == nil {
			return fmt.Errorf("%s: %w", v.Path, ErrNoToken)
		}
		return pl.openAndMount(v, *h.Token)
	}
	return refuse(v.Path, "is a storecrypt volume in unknown state %q", s.Subsystem)
}

// reprovision formats one of our volumes again, closing a mapping a killed run left.
func (pl *planner) reprovision(v volume) error {
	pl.newKey()
	if pl.facts.Mapping != nil {
		pl.add(Step{Kind: CloseMapping, Name: "luks-close", Action: "close the mapping an interrupted run left open",
			Cmd: luks.CloseCommand(pl.facts.MapperName()), Leaves: pl.path() + " closed"})
	}
	pl.plan.Layout.KeyID, pl.plan.Layout.Secret, pl.plan.Layout.ProvisionedBy = "", "", ""
	return pl.provision(v)
}

// openAndMount opens a ready volume with its token's key and mounts it. The filesystem
// an opened volume holds is read after the open, so a plan that opens ends there and is
// decided again.
func (pl *planner) openAndMount(v volume, tok keytoken.Token) error {
	o, l := pl.facts.Options, &pl.plan.Layout
	if pl.facts.Mapping == nil {
		if tok.KeySource == contract.KeySourceEphemeral {
			if !pl.facts.Mode.formats() {
				return keytoken.ErrEphemeral
			}
			pl.note("%s had an ephemeral key, which a reboot discards by design; formatting it anew", v.Path)
			return pl.reprovision(v)
		}
		if pl.facts.Mode == Apply && tok.KeySource != o.KeySource {
			pl.note("%s keeps its %s key; --key-source %s applies to new volumes only", v.Path, tok.KeySource, o.KeySource)
		}
		pl.add(Step{Kind: RecoverKey, Name: "key", Action: tok.Describe(), VolumeUUID: l.LUKSUUID, Token: &tok, Leaves: "the key in memory"})
		// The flags persisted at format apply by themselves; none are passed again.
		pl.add(Step{Kind: Open, Name: "luks-open", Action: "open " + v.Path + " as " + pl.path(),
			Cmd: luks.OpenCommand(v.Path, pl.facts.MapperName(), luks.OpenOptions{Workqueue: true}), Leaves: pl.path() + " open", Replan: true})
		l.Mapper = pl.path()
		return nil
	}
	l.Mapper, l.Open = pl.path(), true
	m := pl.facts.Mapping
	if m.Suspended {
		if pl.facts.Mode != Status {
			return ErrSuspended
		}
		l.Suspended, l.Mounted = true, slices.Contains(m.Mounts, o.MountPoint)
		pl.note("%s is suspended (revoked): its key is out of kernel memory and I/O to it waits until resume", pl.path())
		return nil
	}
	if !slices.Contains(contract.Filesystems, m.FS.Type) {
		return refuse(pl.path(), "is a ready storecrypt volume that holds %s instead of its filesystem", m.FS.What())
	}
	l.Filesystem = m.FS.Type
	switch {
	case slices.Contains(m.Mounts, o.MountPoint):
		l.Mounted = true
		pl.note("%s is already open and mounted at %s", pl.path(), o.MountPoint)
		pl.bindDirs()
	case len(m.Mounts) > 0:
		pl.note("%s is mounted at %s, not at %s; left as it is", pl.path(), strings.Join(m.Mounts, ", "), o.MountPoint)
	default:
		pl.mount(m.FS.Type)
		pl.bindDirs()
	}
	if !pl.facts.Mode.Dry() {
		pl.resumeResync()
	}
	if pl.facts.Mode.formats() {
		pl.installBoot(tok.KeySource)
	}
	return nil
}
