// The agent's command line: its exit codes, flags, their defaults and the options they
// fill, and the one environment variable it reads. Used by the agent (which parses
// them), the document (whose parameters become these flags), the functions and the CLI
// (which read the exit codes and rerun the agent with options). Validation is in
// validate.go.

package contract

import (
	"flag"
	"fmt"
	"strings"
)

// ExitCode is the agent's process status. The result function and the CLI read it to tell
// a fault that a retry may fix from one that needs a person.
type ExitCode int

// Exit codes of storecrypt-agent.
const (
	ExitOK             ExitCode = 0 // converged; see the JSON document for what changed
	ExitSystemError    ExitCode = 1 // a tool or the kernel failed; a rerun may succeed
	ExitBadInput       ExitCode = 2 // a flag is missing or invalid, or a tool is not installed
	ExitRefusedUnsafe  ExitCode = 3 // a disk holds something not ours; nothing was written
	ExitKeyUnavailable ExitCode = 4 // KMS or S3 did not give the key; nothing was written
	ExitBusy           ExitCode = 5 // another run held the lock for longer than --wait
	ExitNoDevices      ExitCode = 6 // this instance has no instance-store disk to encrypt
	// ExitRevoked: the volume's access was revoked or it was shredded on this instance
	// (RevocationPath), so apply and unlock leave it closed; resume lifts a revoke.
	ExitRevoked ExitCode = 7
)

// ExitCodeNames are the words the JSON document and the result function use for each code.
var ExitCodeNames = map[ExitCode]string{
	ExitOK:             "ok",
	ExitSystemError:    "system-error",
	ExitBadInput:       "bad-input",
	ExitRefusedUnsafe:  "refused-unsafe",
	ExitKeyUnavailable: "key-unavailable",
	ExitBusy:           "busy",
	ExitNoDevices:      "no-devices",
	ExitRevoked:        "revoked",
}

func (c ExitCode) String() string {
	if s, ok := ExitCodeNames[c]; ok {
		return s
	}
	return fmt.Sprintf("exit-%d", int(c))
}

// Key sources (flag --key-source).
const (
	KeySourceKMSDataKey = "kms-datakey"
	KeySourceS3KMS      = "s3-kms"
	KeySourceEphemeral  = "ephemeral"
)

// KeySources lists the key sources in the order --help shows them.
var KeySources = []string{KeySourceKMSDataKey, KeySourceS3KMS, KeySourceEphemeral}

// Filesystems the agent can make (flag --filesystem).
const (
	FilesystemExt4 = "ext4"
	FilesystemXFS  = "xfs"
)

// Filesystems lists the supported filesystems.
var Filesystems = []string{FilesystemExt4, FilesystemXFS}

// Layouts of several disks (flag --layout).
const (
	// LayoutRAID0 stripes the disks: every disk's bandwidth and capacity, no redundancy
	// (instance store has none to keep: a stop loses every disk).
	LayoutRAID0 = "raid0"
	// LayoutRAID10 mirrors and stripes them: half the capacity, and the volume survives a
	// failed disk while the instance runs.
	LayoutRAID10 = "raid10"
	// LayoutPerDisk makes one volume per disk, each with its own key and filesystem,
	// mounted at <mount point>/0, /1, ... (as nodeadm's Mount strategy lays them out).
	LayoutPerDisk = "per-disk"
)

// Layouts lists the supported layouts.
var Layouts = []string{LayoutRAID0, LayoutRAID10, LayoutPerDisk}

// Agent flag names. The SSM document's parameters map onto these one to one.
const (
	FlagKeySource  = "key-source"
	FlagKMSKeyID   = "kms-key-id"
	FlagSecret     = "secret"
	FlagMountPoint = "mount-point"
	FlagFilesystem = "filesystem"
	FlagModel      = "model"
	FlagDevices    = "devices"
	FlagDiscard    = "discard"
	FlagWipe       = "wipe"
	FlagWait       = "wait"
	FlagRetryFor   = "retry-for"
	FlagRequiredBy = "required-by"
	FlagBindDirs   = "bind-dirs"
	FlagLayout     = "layout"
	FlagFastFormat = "fast-format"
	// FlagBoot marks a run by the boot-time unit that `storecrypt-agent install` puts in
	// place: the volume it provisions records that the boot unit made it.
	FlagBoot = "boot"
	// FlagReason, FlagBy and FlagConfirm are revoke's, resume's and shred's: why, who
	// asks (both recorded), and for shred the instance id the operator typed.
	FlagReason  = "reason"
	FlagBy      = "by"
	FlagConfirm = "confirm"
)

// Defaults for the agent's flags.
const (
	DefaultModel      = "Amazon EC2 NVMe Instance Storage"
	DefaultMountPoint = "/mnt/instance-store"
	DefaultFilesystem = FilesystemExt4
	DefaultKeySource  = KeySourceKMSDataKey
	DefaultLayout     = LayoutRAID0
)

// DefaultBootRequiredBy are the units the boot-time unit holds back unless told others:
// the container runtimes and the kubelet, whose state --bind-dirs usually moves.
var DefaultBootRequiredBy = []string{"containerd.service", "docker.service", "kubelet.service"}

// EnvModel is read by the agent, not the functions: the NVMe model of instance store
// where it is not EC2's (the test guest's QEMU controller). It is not a document
// parameter: on EC2 the model is fixed, and a parameter could only point the agent at
// other disks.
const EnvModel = "STORECRYPT_MODEL"

// AgentOptions are the agent's settings that the SSM document passes as flags.
type AgentOptions struct {
	KeySource  string
	KMSKeyID   string
	Secret     string // s3://bucket/key of the seed-compatible secret
	MountPoint string
	Filesystem string
	Layout     string // how several disks are combined: Layouts
	// FastFormat makes a new filesystem with package filesystem's FastFlags: a large
	// volume is made and mounted in a fraction of the time, for what those flags cost.
	FastFormat bool
	Model      string
	Devices    []string // explicit devices; empty means discover by Model
	Discard    bool
	Wipe       bool
	RequiredBy []string // units that must not start until the volume is mounted
	BindDirs   []string // directories moved onto the volume and bind-mounted back
	Boot       bool     // run by the boot-time unit (FlagBoot)
}

// DefaultAgentOptions returns the options an unconfigured run uses.
func DefaultAgentOptions() AgentOptions {
	return AgentOptions{
		KeySource:  DefaultKeySource,
		MountPoint: DefaultMountPoint,
		Filesystem: DefaultFilesystem,
		Layout:     DefaultLayout,
		Model:      DefaultModel,
		Discard:    true,
	}
}

// RegisterFlags defines the agent's flags on fs, bound to o. The flag set is the one
// source of the flags' names, defaults and help; the SSM document is checked against it.
func (o *AgentOptions) RegisterFlags(fs *flag.FlagSet) {
	fs.StringVar(&o.KeySource, FlagKeySource, o.KeySource, "where the volume key comes from: "+strings.Join(KeySources, ", "))
	fs.StringVar(&o.KMSKeyID, FlagKMSKeyID, o.KMSKeyID, "KMS key id, ARN or alias for "+KeySourceKMSDataKey)
	fs.StringVar(&o.Secret, FlagSecret, o.Secret, "s3://bucket/key of the KMS-encrypted passphrase for "+KeySourceS3KMS)
	fs.StringVar(&o.MountPoint, FlagMountPoint, o.MountPoint, "where to mount the encrypted filesystem")
	fs.StringVar(&o.Filesystem, FlagFilesystem, o.Filesystem, "filesystem to make: "+strings.Join(Filesystems, ", "))
	fs.StringVar(&o.Layout, FlagLayout, o.Layout, "how a new volume combines several disks: "+strings.Join(Layouts, ", ")+" (raid10: mirrored, half the capacity, its first resync after the mount; per-disk: a volume and filesystem per disk at <mount point>/0, /1, ...)")
	fs.BoolVar(&o.FastFormat, FlagFastFormat, o.FastFormat, "make a new filesystem fast on a large volume: ext4 with 64 KiB clusters (every file takes at least 64 KiB), xfs with a 512 MiB log (mkfs writes the whole log, up to 2 GiB by default)")
	fs.StringVar(&o.Model, FlagModel, o.Model, "NVMe controller model of the instance-store disks")
	fs.Var((*commaList)(&o.Devices), FlagDevices, "comma-separated devices to use instead of discovery (each must still be instance store)")
	fs.BoolVar(&o.Discard, FlagDiscard, o.Discard, "pass discards (TRIM) through dm-crypt")
	fs.BoolVar(&o.Wipe, FlagWipe, o.Wipe, "zero-fill the volume after format (slow: O(device size))")
	fs.Var((*commaList)(&o.RequiredBy), FlagRequiredBy, "comma-separated systemd units that must not start at boot until the volume is mounted")
	fs.Var((*commaList)(&o.BindDirs), FlagBindDirs, "comma-separated directories (e.g. /var/lib/containerd,/var/lib/kubelet,/var/log/pods) to move onto the volume and bind-mount back, at every boot before the units that need them")
}

// ProvisionedBy is the path a volume made by a run with these options was made by.
func (o AgentOptions) ProvisionedBy() string {
	if o.Boot {
		return ProvisionedByBoot
	}
	return ProvisionedByCommand
}

// Args are the flags that give a run the options o (the boot unit's command line).
// Flags at their zero value are left out, so the line says what was chosen.
func (o AgentOptions) Args() []string {
	a := []string{"--" + FlagKeySource, o.KeySource}
	for _, f := range []struct{ name, value string }{
		{FlagKMSKeyID, o.KMSKeyID}, {FlagSecret, o.Secret}, {FlagMountPoint, o.MountPoint},
		{FlagModel, o.Model}, {FlagFilesystem, o.Filesystem}, {FlagLayout, o.Layout}, {FlagDevices, strings.Join(o.Devices, ",")},
		{FlagRequiredBy, strings.Join(o.RequiredBy, ",")}, {FlagBindDirs, strings.Join(o.BindDirs, ",")},
	} {
		if f.value != "" {
			a = append(a, "--"+f.name, f.value)
		}
	}
	a = append(a, fmt.Sprintf("--%s=%t", FlagDiscard, o.Discard))
	if o.Wipe {
		a = append(a, "--"+FlagWipe)
	}
	if o.FastFormat {
		a = append(a, "--"+FlagFastFormat)
	}
	if o.Boot {
		a = append(a, "--"+FlagBoot)
	}
	return a
}

type commaList []string

func (d *commaList) String() string { return strings.Join(*d, ",") }

func (d *commaList) Set(s string) error {
	*d = nil
	for _, p := range strings.Split(s, ",") {
		if p = strings.TrimSpace(p); p != "" {
			*d = append(*d, p)
		}
	}
	return nil
}
