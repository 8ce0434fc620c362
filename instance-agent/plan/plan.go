// Package plan decides what converges an instance's disks to an encrypted, mounted
// volume. From what the agent found (the disks and their signatures, a running array,
// the volume's LUKS2 header, its mapping and mounts) Decide computes an ordered list of
// steps, each with the command it runs and the state it leaves, or a refusal. It does
// no I/O: the agent gathers the facts and a small executor runs the steps, so every
// decision is a table test, and `storecrypt-agent plan` prints exactly what apply runs.
//
// Safety is in the order: every refusal is decided before any step, and a new key is the
// first step of every plan that writes, so a refused run or a run without a key leaves
// the disks byte for byte as they were.
package plan

import (
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/storecrypt/storecrypt/instance-agent/bind"
	"github.com/storecrypt/storecrypt/instance-agent/bootunit"
	"github.com/storecrypt/storecrypt/instance-agent/filesystem"
	"github.com/storecrypt/storecrypt/instance-agent/keytoken"
	"github.com/storecrypt/storecrypt/instance-agent/luks"
	"github.com/storecrypt/storecrypt/instance-agent/probe"
	"github.com/storecrypt/storecrypt/instance-agent/raid"
	"github.com/storecrypt/storecrypt/instance-agent/sysexec"
	"github.com/storecrypt/storecrypt/internal/contract"
)

// Mode is what the run is for.
type Mode int

// Modes.
const (
	Apply   Mode = iota // converge: provision, open, mount, install the boot unit
	Unlock              // at boot: open and mount an existing volume, never format
	Preview             // `plan`: what Apply would do, touching nothing
	Status              // what Unlock would do, touching nothing
)

// Dry reports whether the mode only looks.
func (m Mode) Dry() bool { return m == Preview || m == Status }

// formats reports whether the mode may provision.
func (m Mode) formats() bool { return m == Apply || m == Preview }

// MapperPath is where the opened volume named mapper appears.
func MapperPath(mapper string) string { return "/dev/mapper/" + mapper }

// Disk is one instance-store disk as the agent found it.
type Disk struct {
	Path       string
	Name       string // kernel name in /sys/block
	SizeBytes  int64
	Sig        probe.Signature
	Holders    []Holder
	Mounts     []string
	Partitions []string
	// For a member of storecrypt's array: its md superblock, and where its data area is
	// not zero ("" when it reads as zero: the array never held a LUKS2 header).
	Super    *raid.Superblock
	DataArea string
}

// Holder is a device stacked on a disk: an md array or a device-mapper target.
type Holder struct {
	Name   string // kernel name: md127, dm-3
	DMName string // the device-mapper name, "" for an md array
}

// Array is storecrypt's md array, running over the disks.
type Array struct {
	Path      string
	Name      string
	SizeBytes int64
	Sig       probe.Signature
	Level     string // md's name for it: raid0, raid10
	Devices   int    // its member count (md/raid_disks)
	Frozen    bool   // its resync is paused (raid10 while provisioning)
}

// Header is what a volume's LUKS2 header holds, for a volume whose signature is
// storecrypt's (crypto_LUKS, label storecrypt).
type Header struct {
	Meta  luks.Metadata
	Token *keytoken.Token // nil when the header has no storecrypt token
}

// Mapping is storecrypt's open dm-crypt mapping on the volume.
type Mapping struct {
	FS     probe.Signature // what /dev/mapper/storecrypt holds
	Mounts []string
}

// Facts are what the agent found, and the options of the run.
type Facts struct {
	Mode    Mode
	Options contract.AgentOptions
	Disks   []Disk
	Array   *Array   // several disks: the array, when it runs
	Header  *Header  // the volume's header, when the volume is storecrypt's
	Mapping *Mapping // our mapping, when it is open on the volume
	// Perf: cryptsetup and the kernel keep no_read/no_write_workqueue in the header.
	Perf bool
	// NewUUID is the UUID a volume formatted by this plan gets.
	NewUUID string
	// KeyHeld: this run already holds the new volume's key (made before the array).
	KeyHeld bool
	// Binds are the directories of --bind-dirs as found.
	Binds []bind.Dir
	// BootMode: the installed boot unit provisions at boot (`storecrypt-agent install`).
	BootMode bool
	// Mapper is the volume's device-mapper name (contract.MapperName when empty; one per
	// disk in the per-disk layout).
	Mapper string
	// NoBootUnit: the caller installs the boot unit (the per-disk layout, once for all).
	NoBootUnit bool
}

// MapperName is the volume's device-mapper name.
func (f Facts) MapperName() string { return MapperName(f.Mapper) }

// MapperName is mapper, or contract.MapperName when it is empty.
func MapperName(mapper string) string {
	if mapper != "" {
		return mapper
	}
	return contract.MapperName
}

// Kind is what a step does; the executor runs each kind.
type Kind int

// Kinds of step, in the order a full provisioning runs them.
const (
	NewKey          Kind = iota // make the new volume's key (KMS, S3 or random)
	ZeroSuperblocks             // erase the md superblocks a creation cut short left
	CreateArray                 // stripe the disks
	AssembleArray               // start the existing array; the facts are read again after
	CloseMapping                // close a mapping an interrupted run left open
	Format                      // write the LUKS2 header; stdin: the key
	StoreToken                  // store the token in the header; stdin: the token
	RecoverKey                  // get an existing volume's key from its token
	Open                        // open the volume; stdin: the key
	Wipe                        // zero-fill the opened volume
	MakeFS                      // make the filesystem
	MarkReady                   // mark the volume ready in its header
	Mount                       // mount it
	ResumeResync                // let a RAID10 array's paused resync run
	BindDir                     // bind a directory's place on the volume on it
	InstallBoot                 // install the boot unit and the agent it runs
	UpdateAgent                 // boot-time mode: make the boot unit's agent this run's
)

// Step is one thing the plan does.
type Step struct {
	Kind   Kind
	Name   string          // as the report names it
	Action string          // what it does, for people
	Cmd    sysexec.Command // the command it runs (Name "" for none); never holds a key
	Leaves string          // the state it leaves
	// Replan: the facts are read again after this step, and the rest decided then (an
	// assembled array's content, an opened volume's filesystem).
	Replan bool
	// For the key steps: the volume's UUID (the encryption context names it), and for
	// RecoverKey the token to recover from.
	VolumeUUID string
	Token      *keytoken.Token
	// For InstallBoot: the command line the unit runs at boot and the units it holds back.
	Unit bootunit.Unit
	// For BindDir: the directory.
	Dir string
	// For ResumeResync: the array's kernel name.
	Array string
}

// Plan is the decision: its steps, what it could not decide alone, and the volume as the
// plan leaves it.
type Plan struct {
	Steps  []Step
	Notes  []string
	Layout contract.Layout
}

// RefusedError is a disk (or a mount point) the agent will not touch: it holds something
// that is not storecrypt's, or is in use. Nothing was written.
type RefusedError struct {
	Device string
	Reason string
}

func (e *RefusedError) Error() string {
	return fmt.Sprintf("refusing %s: it %s; nothing was written", e.Device, e.Reason)
}

func refuse(dev, format string, args ...any) error {
	return &RefusedError{Device: dev, Reason: fmt.Sprintf(format, args...)}
}

// volume is the device that carries (or will carry) the LUKS2 header.
type volume struct {
	Path      string
	SizeBytes int64
}

type planner struct {
	f Facts
	p Plan
}

// Decide computes the plan.
func Decide(f Facts) (Plan, error) {
	pl := &planner{f: f, p: Plan{Layout: contract.Layout{MountPoint: f.Options.MountPoint, BootMode: f.BootMode || f.Options.Boot}}}
	err := pl.decide()
	return pl.p, err
}

// path is where the volume appears when open.
func (pl *planner) path() string { return MapperPath(pl.f.MapperName()) }

func (pl *planner) note(format string, args ...any) {
	pl.p.Notes = append(pl.p.Notes, fmt.Sprintf(format, args...))
}

func (pl *planner) add(s Step) { pl.p.Steps = append(pl.p.Steps, s) }

func (pl *planner) decide() error {
	f := pl.f
	for _, d := range f.Disks {
		if len(d.Mounts) > 0 {
			return refuse(d.Path, "is mounted at %s", strings.Join(d.Mounts, ", "))
		}
		if len(d.Partitions) > 0 {
			return refuse(d.Path, "has partitions (%s)", strings.Join(d.Partitions, ", "))
		}
	}
	if layout := existingLayout(f.Disks); layout != "" && (len(f.Disks) == 1) != (layout == contract.LayoutPerDisk) {
		return &OtherLayoutError{Layout: layout}
	}
	if len(f.Disks) == 1 {
		d := f.Disks[0]
		for _, h := range d.Holders {
			if h.DMName != pl.f.MapperName() {
				return refuse(d.Path, "is held by %s", h.Name)
			}
		}
		v := volume{Path: d.Path, SizeBytes: d.SizeBytes}
		if d.Sig.Blank() {
			return pl.fresh(v, nil, nil)
		}
		return pl.existing(v, d.Sig)
	}
	var members, blanks []Disk
	for _, d := range f.Disks {
		switch s := d.Sig; {
		case s.Blank():
			if len(d.Holders) > 0 {
				return refuse(d.Path, "is held by %s", holderNames(d.Holders))
			}
			blanks = append(blanks, d)
		case s.Type == raid.MemberType && s.Label == raid.MemberLabel(contract.ArrayName):
			// A member held by anything but the running array the facts name is in use
			// by something this run knows nothing of.
			for _, h := range d.Holders {
				if f.Array == nil || h.Name != f.Array.Name {
					return refuse(d.Path, "is held by %s", holderNames(d.Holders))
				}
			}
			members = append(members, d)
		default:
			return refuse(d.Path, "holds %s", s.What())
		}
	}
	array := volume{Path: "/dev/md/" + contract.ArrayName, SizeBytes: sumSizes(f.Disks)}
	switch {
	case len(blanks) == len(f.Disks):
		return pl.fresh(array, f.Disks, nil)
	case len(members) == len(f.Disks) && f.Array != nil:
		if err := pl.runningArray(members); err != nil {
			return err
		}
		v := volume{Path: f.Array.Path, SizeBytes: f.Array.SizeBytes}
		pl.p.Layout.RAID, pl.p.Layout.Level = v.Path, f.Array.Level
		if want := fmt.Sprintf("raid%d", raid.Level(f.Options.Layout)); f.Mode == Apply && f.Array.Level != "" && f.Array.Level != want && !f.Array.Sig.Blank() {
			pl.note("%s stays %s; --layout %s applies to new volumes (after a stop/start)", v.Path, f.Array.Level, f.Options.Layout)
		}
		if f.Array.Sig.Blank() {
			// mdadm --create finished but luksFormat never ran: nothing of a user's exists.
			return pl.fresh(v, nil, nil)
		}
		return pl.existing(v, f.Array.Sig)
	case len(members) == len(f.Disks):
		if err := pl.oneArray(members); err != nil {
			return err
		}
		pl.add(Step{Kind: AssembleArray, Name: "raid-assemble", Action: "assemble the array from " + strings.Join(paths(f.Disks), " "),
			Cmd: raid.AssembleCommand(contract.ArrayName, paths(f.Disks)), Leaves: "array " + array.Path + " running", Replan: true})
		if f.Mode.Dry() {
			pl.note("the array is not running; what follows assembling depends on what it holds")
		}
		return nil
	case f.Array != nil:
		return refuse(members[0].Path, "is a member of a running array while %s is blank", blanks[0].Path)
	default:
		if err := pl.cutShort(members); err != nil {
			return err
		}
		pl.note("%d of %d disks carry superblocks of a storecrypt array that never ran and the rest are blank: an earlier run was cut short while creating the array, which never held data; creating it again",
			len(members), len(f.Disks))
		return pl.fresh(array, f.Disks, members)
	}
}

// runningArray checks that the running array is made of the disks given: as many
// members as disks, and every superblock read of the same array. A member may be given
// that the array does not hold: a RAID10 runs on without a failed disk.
func (pl *planner) runningArray(members []Disk) error {
	a := pl.f.Array
	if a.Devices != len(pl.f.Disks) {
		return refuse(a.Path, "has %d members and %d disks were given; name exactly its disks", a.Devices, len(pl.f.Disks))
	}
	// The members of an array this run created carry no superblock read before it.
	read := slices.DeleteFunc(slices.Clone(members), func(d Disk) bool { return d.Super == nil })
	return pl.oneArray(read)
}

// oneArray checks that the members' superblocks describe one array of exactly the disks
// given: the same array UUID, and as many devices as disks. Assembling a superset or a
// subset of an array, or two arrays as one, is not what the operator asked for.
func (pl *planner) oneArray(members []Disk) error {
	var uuid string
	for _, d := range members {
		sb := d.Super
		switch {
		case sb == nil:
			return fmt.Errorf("%s: the md superblock of a storecrypt array member was not read", d.Path)
		case sb.RaidDevices != len(pl.f.Disks):
			return refuse(d.Path, "is a member of a %d-disk storecrypt array and %d disks were given; name exactly its disks", sb.RaidDevices, len(pl.f.Disks))
		case uuid != "" && sb.ArrayUUID != uuid:
			return refuse(d.Path, "is a member of array %s, not of %s", sb.ArrayUUID, uuid)
		}
		uuid = sb.ArrayUUID
	}
	return nil
}

// cutShort checks that members, beside disks that are blank, are what a cut-short
// mdadm --create leaves, and so the array never held data. mdadm writes every member's
// superblock, each with the array's UUID, its device count, a distinct role and an
// event count of 0, before it starts the array (Create.c: write_init_super, then
// RUN_ARRAY), and the kernel adds to the count when it writes them. RAID0 may keep 0
// while it runs, so the count alone proves nothing there: the members' data areas must
// also read as zero, which no array that held storecrypt's LUKS2 header (and its
// random-filled keyslot area, spread over every member's first chunks) does.
// Anything else is a ready array missing disks, or another array: refused.
func (pl *planner) cutShort(members []Disk) error {
	if err := pl.oneArray(members); err != nil {
		return err
	}
	roles := map[int]bool{}
	for _, d := range members {
		sb := d.Super
		switch {
		case sb.Events != 0:
			return refuse(d.Path, "is a member of an array that ran (its superblock's events count is %d): its other disks are missing, not blank", sb.Events)
		case sb.Role < 0 || sb.Role >= sb.RaidDevices || roles[sb.Role]:
			return refuse(d.Path, "is a member with role %d, which no disk of a new %d-disk array has alone", sb.Role, sb.RaidDevices)
		case d.DataArea != "":
			return refuse(d.Path, "is a member of an array that held data (%s in its data area): its other disks are missing, not blank", d.DataArea)
		}
		roles[sb.Role] = true
	}
	return nil
}

// OtherLayoutError says the disks hold storecrypt volumes of another layout than the one
// asked for: the agent opens them as they are, since a layout applies to new volumes.
type OtherLayoutError struct {
	Layout string // contract.LayoutPerDisk, or "raid" for an array
}

func (e *OtherLayoutError) Error() string {
	return "the disks hold storecrypt's " + e.Layout + " volumes"
}

// existingLayout says what storecrypt made on the disks: an array ("raid") when one
// carries its md superblock, per-disk volumes when one carries its LUKS2 header and the
// rest are blank or carry one too, "" otherwise.
func existingLayout(disks []Disk) string {
	luks := 0
	for _, d := range disks {
		switch s := d.Sig; {
		case s.Type == raid.MemberType && s.Label == raid.MemberLabel(contract.ArrayName):
			return "raid"
		case s.Type == "crypto_LUKS" && s.Label == contract.VolumeLabel:
			luks++
		case !s.Blank():
			return ""
		}
	}
	if luks > 0 && len(disks) > 1 {
		return contract.LayoutPerDisk
	}
	return ""
}

func holderNames(hs []Holder) string {
	names := make([]string, len(hs))
	for i, h := range hs {
		names[i] = h.Name
	}
	return strings.Join(names, ", ")
}

func paths(disks []Disk) []string {
	out := make([]string, len(disks))
	for i, d := range disks {
		out[i] = d.Path
	}
	return out
}

func sumSizes(disks []Disk) int64 {
	var n int64
	for _, d := range disks {
		n += d.SizeBytes
	}
	return n
}

// fresh provisions a new volume on v: the key first, so that a key failure writes
// nothing; then, for several disks, the array (zeroing what a cut-short creation left).
func (pl *planner) fresh(v volume, stripe, leftovers []Disk) error {
	if !pl.f.Mode.formats() {
		if pl.f.Mode == Unlock {
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
		level := raid.Level(pl.f.Options.Layout)
		pl.p.Layout.RAID, pl.p.Layout.Level = v.Path, fmt.Sprintf("raid%d", level)
		action := fmt.Sprintf("stripe %d disks into RAID0 %s", len(stripe), v.Path)
		if level == 10 {
			v.SizeBytes /= 2
			action = fmt.Sprintf("mirror and stripe %d disks into RAID10 %s, its resync paused until the volume is mounted", len(stripe), v.Path)
		}
		// Apply learns the array's kernel device after creating it, and decides the rest
		// then; the preview goes on with the name mdadm gives it.
		pl.add(Step{Kind: CreateArray, Name: "raid-create", Action: action,
			Cmd: raid.CreateCommand(contract.ArrayName, level, paths(stripe)), Leaves: "blank array " + v.Path, Replan: pl.f.Mode == Apply})
		if pl.f.Mode == Apply {
			return nil
		}
	}
	return pl.provision(v)
}

func (pl *planner) newKey() {
	if pl.f.KeyHeld {
		return
	}
	o := pl.f.Options
	pl.add(Step{Kind: NewKey, Name: "key", Action: "new " + o.KeySource + " key", VolumeUUID: pl.f.NewUUID, Leaves: "a key in memory"})
}

// provision formats v, stores the token, opens it, makes the filesystem, marks it ready,
// mounts it and installs the boot unit. The volume is "provisioning" from the format
// until it is marked ready, and nothing mounts it before: a provisioning volume
// provably holds no user data.
func (pl *planner) provision(v volume) error {
	o := pl.f.Options
	l := &pl.p.Layout
	l.Volume, l.LUKSUUID = v.Path, pl.f.NewUUID
	l.Cipher, l.KeySizeBits, l.KeySource = luks.Cipher, luks.KeySizeBits, o.KeySource
	// 4K sectors halve dm-crypt's per-I/O work against 512-byte ones; NVMe sizes are always
	// a multiple of 4 KiB, but an odd-sized device falls back to cryptsetup's default.
	if v.SizeBytes%4096 == 0 {
		l.SectorSize = 4096
	}
	format := luks.FormatOptions{UUID: pl.f.NewUUID, Label: contract.VolumeLabel, Subsystem: contract.StateProvisioning,
		SectorSize: l.SectorSize, FastKDF: o.KeySource != contract.KeySourceS3KMS}
	pl.add(Step{Kind: Format, Name: "luks-format", Action: "format " + v.Path + " as LUKS2 " + luks.Cipher,
		Cmd: luks.FormatCommand(v.Path, format), Leaves: "volume " + contract.StateProvisioning})
	pl.add(Step{Kind: StoreToken, Name: "luks-token", Action: "store the " + o.KeySource + " token in the header",
		Cmd: luks.ImportTokenCommand(v.Path, true), Leaves: "the token in the header"})
	open := luks.OpenOptions{Discard: o.Discard, Workqueue: !pl.f.Perf, Persist: true}
	pl.add(Step{Kind: Open, Name: "luks-open", Action: "open " + v.Path + " as " + pl.path() + flagWords(open),
		Cmd: luks.OpenCommand(v.Path, pl.f.MapperName(), open), Leaves: pl.path() + " open"})
	l.Mapper, l.Flags = pl.path(), open.HeaderFlags()
	if o.Wipe {
		pl.add(Step{Kind: Wipe, Name: "wipe", Action: "zero-fill " + pl.path() + " (--wipe)", Leaves: pl.path() + " zeroed"})
	}
	mkfs, err := filesystem.MakeCommand(o.Filesystem, pl.path(), contract.VolumeLabel)
	if err != nil {
		return err
	}
	pl.add(Step{Kind: MakeFS, Name: "mkfs", Action: "make " + o.Filesystem + " on " + pl.path(), Cmd: mkfs, Leaves: o.Filesystem + " on " + pl.path()})
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
	l := &pl.p.Layout
	l.Volume = v.Path
	if s.Type != "crypto_LUKS" || s.Label != contract.VolumeLabel {
		return refuse(v.Path, "holds %s, which storecrypt did not write", s.What())
	}
	l.LUKSUUID, l.State = s.UUID, s.Subsystem
	h := pl.f.Header
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
		if !pl.f.Mode.formats() {
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
	if pl.f.Mapping != nil {
		pl.add(Step{Kind: CloseMapping, Name: "luks-close", Action: "close the mapping an interrupted run left open",
			Cmd: luks.CloseCommand(pl.f.MapperName()), Leaves: pl.path() + " closed"})
	}
	pl.p.Layout.KeyID, pl.p.Layout.Secret, pl.p.Layout.ProvisionedBy = "", "", ""
	return pl.provision(v)
}

// openAndMount opens a ready volume with its token's key and mounts it. The filesystem
// an opened volume holds is read after the open, so a plan that opens ends there and is
// decided again.
func (pl *planner) openAndMount(v volume, tok keytoken.Token) error {
	o, l := pl.f.Options, &pl.p.Layout
	if pl.f.Mapping == nil {
		if tok.KeySource == contract.KeySourceEphemeral {
			if !pl.f.Mode.formats() {
				return keytoken.ErrEphemeral
			}
			pl.note("%s had an ephemeral key, which a reboot discards by design; formatting it anew", v.Path)
			return pl.reprovision(v)
		}
		if pl.f.Mode == Apply && tok.KeySource != o.KeySource {
			pl.note("%s keeps its %s key; --key-source %s applies to new volumes only", v.Path, tok.KeySource, o.KeySource)
		}
		pl.add(Step{Kind: RecoverKey, Name: "key", Action: tok.Describe(), VolumeUUID: l.LUKSUUID, Token: &tok, Leaves: "the key in memory"})
		// The flags persisted at format apply by themselves; none are passed again.
		pl.add(Step{Kind: Open, Name: "luks-open", Action: "open " + v.Path + " as " + pl.path(),
			Cmd: luks.OpenCommand(v.Path, pl.f.MapperName(), luks.OpenOptions{Workqueue: true}), Leaves: pl.path() + " open", Replan: true})
		l.Mapper = pl.path()
		return nil
	}
	l.Mapper, l.Open = pl.path(), true
	m := pl.f.Mapping
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
	if !pl.f.Mode.Dry() {
		pl.resumeResync()
	}
	if pl.f.Mode.formats() {
		pl.installBoot(tok.KeySource)
	}
	return nil
}

func (pl *planner) mount(fsType string) {
	dir := pl.f.Options.MountPoint
	pl.add(Step{Kind: Mount, Name: "mount", Action: "mount " + pl.path() + " at " + dir + " (noatime)",
		Cmd: filesystem.MountCommand(pl.path(), dir, fsType), Leaves: "mounted at " + dir})
}

// resumeResync lets a RAID10 array's first resync run once the volume is mounted: apply
// paused it when it created the array, so that formatting and mkfs had the disks alone.
func (pl *planner) resumeResync() {
	a := pl.f.Array
	switch {
	case a != nil && a.Frozen:
		pl.add(Step{Kind: ResumeResync, Name: "raid-resync", Action: "resume the RAID10 resync of " + a.Path + " in the background", Array: a.Name, Leaves: "the mirror resyncing"})
	case a == nil && pl.f.Mode == Preview && pl.p.Layout.Level == "raid10":
		pl.add(Step{Kind: ResumeResync, Name: "raid-resync", Action: "resume the RAID10 resync in the background", Leaves: "the mirror resyncing"})
	}
}

// bindDirs binds each directory of --bind-dirs that is not bound yet.
func (pl *planner) bindDirs() {
	o := pl.f.Options
	for _, d := range pl.f.Binds {
		if d.State == bind.Bound {
			continue
		}
		t := bind.Target(o.MountPoint, d.Path)
		pl.add(Step{Kind: BindDir, Name: "bind", Action: "bind " + t + " on " + d.Path + " (its content copied there on first use)",
			Cmd: bind.MountCommand(t, d.Path), Dir: d.Path, Leaves: d.Path + " on the volume"})
	}
	pl.p.Layout.BindDirs = o.BindDirs
}

// installBoot adds the step that installs the boot unit (BootUnit), unless the caller
// installs it.
func (pl *planner) installBoot(keySource string) {
	if pl.f.NoBootUnit {
		return
	}
	s, ok := BootUnit(pl.f, keySource)
	if !ok {
		pl.p.Layout.BootMode, pl.p.Layout.BootUnit = true, true
		if s, ok := UpdateBootAgent(pl.f); ok {
			pl.note("%s provisions this volume at boot (storecrypt-agent install); left as installed", contract.UnitName)
			pl.add(s)
		}
		return
	}
	pl.add(s)
}

// BootUnit is the step that installs the boot unit. The unit runs unlock at boot for
// keys that survive a reboot, and apply for ephemeral ones, whose volume a reboot turns
// back into scratch. Either retries for a while: at boot the network, and so KMS, may
// not be up yet. A boot-time unit (installed by `storecrypt-agent install`) already
// provisions at boot; it is left as installed, and ok is false.
func BootUnit(f Facts, keySource string) (s Step, ok bool) {
	o := f.Options
	if o.Boot || f.BootMode {
		return Step{}, false
	}
	argv := bootunit.ApplyAtBoot(o)
	if keySource != contract.KeySourceEphemeral {
		argv = bootunit.UnlockAtBoot(o)
	}
	return Step{Kind: InstallBoot, Name: "boot-unit", Action: InstallAction(o.RequiredBy),
		Unit: bootunit.Unit{Exec: argv, RequiredBy: o.RequiredBy}, Leaves: contract.UnitName + " installed"}, true
}

// UpdateBootAgent is the step of a run from the SSM document (or by hand) in boot-time
// mode that makes the agent the boot unit runs this run's: without it the boot unit
// would run the agent installed at image build for ever, whatever build the document
// now vouches for. ok is false outside boot-time mode, where InstallBoot copies the
// agent, and in the boot unit's own run, which is that agent.
func UpdateBootAgent(f Facts) (s Step, ok bool) {
	if !f.BootMode || f.Options.Boot {
		return Step{}, false
	}
	return Step{Kind: UpdateAgent, Name: "boot-agent", Action: "make " + contract.AgentPath + " this agent when it is another build (the boot unit runs it from the next boot)",
		Leaves: contract.AgentPath + " this build"}, true
}

// InstallAction says what installing the boot unit does.
func InstallAction(requiredBy []string) string {
	action := "install " + contract.UnitName + " and " + contract.AgentPath
	if len(requiredBy) > 0 {
		action += "; hold back " + strings.Join(requiredBy, ", ") + " until the volume is mounted"
	}
	return action
}
