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
//
// Decide reads in the order a run goes: disks.go picks the device that carries the
// volume (one disk, or the array over several) and refuses what is not storecrypt's;
// volume.go formats a new volume or opens an existing one; finish.go mounts it, binds
// the directories of --bind-dirs and installs the boot unit.
package plan

import (
	"errors"
	"fmt"

	"github.com/storecrypt/storecrypt/instance-agent/bind"
	"github.com/storecrypt/storecrypt/instance-agent/bootunit"
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
	// Suspended: revoke took the key out of the mapping; its filesystem is not probed,
	// since a read of the device would wait until resume.
	Suspended bool
}

// ErrSuspended is a mapping revoke suspended, found by a run that would use it.
var ErrSuspended = errors.New("the volume's mapping is suspended (revoked): its key is out of kernel memory; storecrypt-agent resume restores access")

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

// planner builds one plan from one set of facts.
type planner struct {
	facts Facts
	plan  Plan
}

// Decide computes the plan.
func Decide(f Facts) (Plan, error) {
	pl := &planner{facts: f, plan: Plan{Layout: contract.Layout{MountPoint: f.Options.MountPoint, BootMode: f.BootMode || f.Options.Boot}}}
	err := pl.decide()
	return pl.plan, err
}

// path is where the volume appears when open.
func (pl *planner) path() string { return MapperPath(pl.facts.MapperName()) }

func (pl *planner) note(format string, args ...any) {
	pl.plan.Notes = append(pl.plan.Notes, fmt.Sprintf(format, args...))
}

func (pl *planner) add(s Step) { pl.plan.Steps = append(pl.plan.Steps, s) }
