// Package contract holds the names every part of storecrypt must agree on: the agent's
// flags and their validation, its exit codes, the key-source names, the volume names on
// the instance, and the tags and status values the functions write. The agent, the
// functions, the stack and the CLI import these; none of them spells the strings again.
package contract

import (
	"flag"
	"fmt"
	"net/url"
	"path"
	"regexp"
	"slices"
	"strings"
	"time"
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
	// FlagBoot marks a run by the boot-time unit that `storecrypt-agent install` puts in
	// place: the volume it provisions records that the boot unit made it.
	FlagBoot = "boot"
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

// Names of what the agent creates on the instance.
const (
	// VolumeLabel is the LUKS2 label that marks a volume as storecrypt's own.
	VolumeLabel = "storecrypt"
	// MapperName is the device-mapper name of the opened volume (/dev/mapper/storecrypt).
	MapperName = "storecrypt"
	// ArrayName is the md array's name; mdadm records it as "any:storecrypt".
	ArrayName = "storecrypt"
	// TokenType is the LUKS2 token type that holds how to recover the volume's key.
	TokenType = "storecrypt"
	// AgentPath is where apply installs the agent for the boot unit to run.
	AgentPath = "/usr/local/sbin/storecrypt-agent"
	// UnitName is the systemd unit that unlocks the volume at boot.
	UnitName = "storecrypt-unlock.service"
	// BindRoot is the directory on the volume, under the mount point, that holds the
	// directories --bind-dirs moves there: <mount point>/storecrypt-bind/var/lib/containerd.
	BindRoot = "storecrypt-bind"
	// BootRetryFor is how long the boot unit's run keeps trying to get the key (KMS may be
	// unreachable for the first seconds of a boot).
	BootRetryFor = 4 * time.Minute
	// StatePath holds the JSON document of the last apply or unlock (no secrets).
	StatePath = "/var/lib/storecrypt/state.json"
	// LockPath serialises runs; it lives on tmpfs so a crash cannot leave it behind a
	// reboot, in a directory only root may enter, so no other user can hold it.
	LockPath = "/run/storecrypt/agent.lock"
)

// Encryption-context keys of kms-datakey data keys. The agent rebuilds the context from
// IMDS and the volume at unlock, so a header copied to another instance does not decrypt;
// and the key policy requires ContextInstanceARN to be the caller's own instance
// (ec2:SourceInstanceARN), so no other instance's role can decrypt it either.
const (
	ContextInstanceARN = "storecrypt:instance-arn"
	ContextVolume      = "storecrypt:volume"
)

// ContextKeys are the keys of EncryptionContext, sorted.
var ContextKeys = []string{ContextInstanceARN, ContextVolume}

// EncryptionContext is the encryption context of a kms-datakey volume's data key: the
// agent sends it with GenerateDataKey and Decrypt, the key policy's conditions read it,
// and the launch function's binding check evaluates those conditions against it.
func EncryptionContext(instanceARN, volumeUUID string) map[string]string {
	return map[string]string{ContextInstanceARN: instanceARN, ContextVolume: volumeUUID}
}

// InstanceARN is an instance's ARN, as ec2:SourceInstanceARN carries it.
func InstanceARN(partition, region, account, instanceID string) string {
	return fmt.Sprintf("arn:%s:ec2:%s:%s:instance/%s", partition, region, account, instanceID)
}

// Tag keys and status values the functions write on instances.
const (
	TagEncrypt = "storecrypt:encrypt"
	TagStatus  = "storecrypt:status"
	TagReason  = "storecrypt:reason"
)

// Status values of TagStatus.
const (
	StatusPending   = "pending"
	StatusBlocked   = "blocked"
	StatusEncrypted = "encrypted"
	StatusFailed    = "failed"
	StatusSkipped   = "skipped"
	// StatusUnverified: SSM says the command succeeded, but its output does not prove the
	// volume is encrypted under the stack's key by the stack's document.
	StatusUnverified = "unverified"
)

// Patterns that flag values must match. They are also the SSM document's allowedPattern
// values, so that no parameter can carry shell syntax into a command line, and they
// hold the boot unit's ExecStart= line: no value may carry what systemd reads there as
// quoting, an escape, a variable, a specifier or a command separator (' " \ $ % ;),
// nor a tab or a newline (TestPatternsAdmitNoUnitSyntax).
var (
	PatternKMSKeyID = `^$|^(arn:aws[a-z-]*:kms:[a-z0-9-]+:[0-9]{12}:(key|alias)/[A-Za-z0-9/_-]+|alias/[A-Za-z0-9/_-]+|[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12})$`
	// S3's "safe" key characters but the apostrophe, which systemd reads as a quote.
	PatternSecret = `^$|^s3://[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]/[A-Za-z0-9!_.*()/-]+$`
	// A mount point is under /mnt, /data, /srv or /var/lib/<name>: places for data, where
	// a mount hides nothing the system needs. Every segment starts with a letter, digit,
	// _ or -: no ".", "..", or hidden names.
	PatternMountPoint = `^(/mnt(/[A-Za-z0-9_-][A-Za-z0-9._-]{0,63}){1,6}|/(data|srv)(/[A-Za-z0-9_-][A-Za-z0-9._-]{0,63}){0,6}|/var/lib(/[A-Za-z0-9_-][A-Za-z0-9._-]{0,63}){1,6})$`
	PatternModel      = `^[A-Za-z0-9 ._-]{1,64}$`
	PatternDevices    = `^$|^/dev/[A-Za-z0-9/_-]+(,/dev/[A-Za-z0-9/_-]+)*$`
	// Directories --bind-dirs moves onto the volume: state and logs of applications
	// (containerd, the kubelet, pods' logs, a database's data), never the system's own.
	PatternBindDirs = `^$|^` + bindDir + `(,` + bindDir + `)*$`
	// Units the boot unit holds back: services, mounts, sockets, timers or paths by name.
	// Targets are left out: holding one back holds back a stage of the boot.
	PatternRequiredBy = `^$|^` + unitName + `(,` + unitName + `)*$`
)

const bindDir = `/(var/lib|var/log|var/cache|opt|srv|data|home)(/[A-Za-z0-9_-][A-Za-z0-9._-]{0,63}){1,6}`

const unitName = `[A-Za-z0-9:_.@-]{1,200}\.(service|mount|socket|timer|path)`

// unheldUnits are units the boot unit must never hold back: without them nobody can
// reach the instance to mend a volume that did not open.
var unheldUnits = []string{"amazon-ssm-agent.service", "snap.amazon-ssm-agent.amazon-ssm-agent.service", "ssh.service", "sshd.service", UnitName}

var (
	reKMSKeyID   = regexp.MustCompile(PatternKMSKeyID)
	reSecret     = regexp.MustCompile(PatternSecret)
	reMountPoint = regexp.MustCompile(PatternMountPoint)
	reModel      = regexp.MustCompile(PatternModel)
	reDevices    = regexp.MustCompile(PatternDevices)
	reRequiredBy = regexp.MustCompile(PatternRequiredBy)
	reBindDirs   = regexp.MustCompile(PatternBindDirs)
)

// AgentOptions are the agent's settings that the SSM document passes as flags.
type AgentOptions struct {
	KeySource  string
	KMSKeyID   string
	Secret     string // s3://bucket/key of the seed-compatible secret
	MountPoint string
	Filesystem string
	Layout     string // how several disks are combined: Layouts
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

// InvalidError says which flag is wrong and why.
type InvalidError struct {
	Flag   string
	Value  string
	Reason string
}

func (e *InvalidError) Error() string {
	return fmt.Sprintf("--%s %q: %s", e.Flag, e.Value, e.Reason)
}

func invalid(flag, value, reason string) error {
	return &InvalidError{Flag: flag, Value: value, Reason: reason}
}

// Validate checks the options as apply needs them; unlock needs fewer (ValidateUnlock).
func (o AgentOptions) Validate() error {
	if err := o.ValidateUnlock(); err != nil {
		return err
	}
	switch o.KeySource {
	case KeySourceKMSDataKey:
		if o.KMSKeyID == "" {
			return invalid(FlagKMSKeyID, o.KMSKeyID, "required with --key-source "+KeySourceKMSDataKey)
		}
	case KeySourceS3KMS:
		if o.Secret == "" {
			return invalid(FlagSecret, o.Secret, "required with --key-source "+KeySourceS3KMS)
		}
	case KeySourceEphemeral:
	default:
		return invalid(FlagKeySource, o.KeySource, "want one of "+strings.Join(KeySources, ", "))
	}
	if !reKMSKeyID.MatchString(o.KMSKeyID) {
		return invalid(FlagKMSKeyID, o.KMSKeyID, "want a KMS key id, key ARN, alias name or alias ARN")
	}
	if !reSecret.MatchString(o.Secret) {
		return invalid(FlagSecret, o.Secret, "want s3://bucket/key")
	}
	if !slices.Contains(Filesystems, o.Filesystem) {
		return invalid(FlagFilesystem, o.Filesystem, "want one of "+strings.Join(Filesystems, ", "))
	}
	if !slices.Contains(Layouts, o.Layout) {
		return invalid(FlagLayout, o.Layout, "want one of "+strings.Join(Layouts, ", "))
	}
	return nil
}

// ValidateUnlock checks the options that unlock uses: where to look and where to mount.
func (o AgentOptions) ValidateUnlock() error {
	if !reMountPoint.MatchString(o.MountPoint) || path.Clean(o.MountPoint) != o.MountPoint {
		return invalid(FlagMountPoint, o.MountPoint, "want a clean path under /mnt, /data, /srv or /var/lib/<name>")
	}
	if systemState(o.MountPoint) {
		return invalid(FlagMountPoint, o.MountPoint, "is where the system keeps its own state")
	}
	if !reModel.MatchString(o.Model) {
		return invalid(FlagModel, o.Model, "want letters, digits, spaces, dots, dashes")
	}
	if strings.Contains(strings.ToLower(o.Model), "elastic block store") {
		return invalid(FlagModel, o.Model, "is the model of EBS volumes; storecrypt encrypts instance store only")
	}
	if !reDevices.MatchString(strings.Join(o.Devices, ",")) {
		return invalid(FlagDevices, strings.Join(o.Devices, ","), "want /dev paths separated by commas")
	}
	for _, d := range o.Devices {
		if path.Clean(d) != d {
			return invalid(FlagDevices, d, "want a clean /dev path")
		}
	}
	if !reRequiredBy.MatchString(strings.Join(o.RequiredBy, ",")) {
		return invalid(FlagRequiredBy, strings.Join(o.RequiredBy, ","), "want unit names (.service, .mount, .socket, .timer, .path) separated by commas")
	}
	for _, u := range o.RequiredBy {
		if slices.Contains(unheldUnits, u) || strings.HasPrefix(u, "systemd-") {
			return invalid(FlagRequiredBy, u, "must not wait for the volume: it is how the instance is reached or booted")
		}
	}
	return o.validateBindDirs()
}

func (o AgentOptions) validateBindDirs() error {
	if !reBindDirs.MatchString(strings.Join(o.BindDirs, ",")) {
		return invalid(FlagBindDirs, strings.Join(o.BindDirs, ","), "want directories under /var/lib, /var/log, /var/cache, /opt, /srv, /data or /home, separated by commas")
	}
	for i, d := range o.BindDirs {
		switch {
		case path.Clean(d) != d:
			return invalid(FlagBindDirs, d, "want a clean path")
		case systemState(d):
			return invalid(FlagBindDirs, d, "is where the system keeps its own state")
		case within(d, o.MountPoint) || within(o.MountPoint, d):
			return invalid(FlagBindDirs, d, "overlaps the mount point "+o.MountPoint)
		}
		for _, e := range o.BindDirs[:i] {
			if within(d, e) || within(e, d) {
				return invalid(FlagBindDirs, d, "overlaps "+e)
			}
		}
	}
	return nil
}

// within reports whether p is dir or below it.
func within(p, dir string) bool { return p == dir || strings.HasPrefix(p, dir+"/") }

// systemState: under /var/lib and /var/log, the state and logs of the system's own tools.
// Mounting over them would hide the package databases, systemd's state and journal, the
// SSM agent's state and logs, or storecrypt's own.
func systemState(p string) bool {
	for _, name := range []string{"storecrypt", "amazon", "systemd", "dpkg", "apt", "rpm", "dnf", "yum", "cloud"} {
		if within(p, "/var/lib/"+name) {
			return true
		}
	}
	for _, name := range []string{"journal", "amazon", "storecrypt"} {
		if within(p, "/var/log/"+name) {
			return true
		}
	}
	return false
}

// SecretLocation splits an s3://bucket/key secret into its parts.
func SecretLocation(secret string) (bucket, key string, err error) {
	u, err := url.Parse(secret)
	if err != nil || u.Scheme != "s3" || u.Host == "" || len(u.Path) < 2 {
		return "", "", invalid(FlagSecret, secret, "want s3://bucket/key")
	}
	return u.Host, strings.TrimPrefix(u.Path, "/"), nil
}

// Volume states, kept in the LUKS2 header's subsystem field. A volume is "provisioning"
// from luksFormat until its filesystem is made; nothing is mounted before "ready", so a
// provisioning volume provably holds no user data and may be formatted again.
const (
	StateProvisioning = "storecrypt-provisioning"
	StateReady        = "storecrypt-ready"
)

// Report is the agent's JSON document on stdout (and in StatePath). The result function
// reads it from the command output, the CLI from state and from SSM; its shape is the
// contract, golden-tested.
type Report struct {
	Command      string `json:"command"`
	AgentVersion string `json:"agent_version"` // the agent that made this report
	// BootAgentVersion, in boot-time mode, is the version of the agent the boot unit ran
	// (contract.AgentPath as this run found it): the one that provisioned or reopened the
	// volume at boot. A run from the document then makes the installed agent its own.
	BootAgentVersion string   `json:"boot_agent_version,omitempty"`
	Result           string   `json:"result"` // an ExitCodeNames value
	ExitCode         int      `json:"exit_code"`
	Error            string   `json:"error,omitempty"`
	Changed          bool     `json:"changed"`
	InstanceID       string   `json:"instance_id,omitempty"`
	Devices          []Device `json:"devices"`
	Layout           *Layout  `json:"layout,omitempty"`
	Steps            []Step   `json:"steps"`
	Notes            []string `json:"notes,omitempty"`
	StartedAt        string   `json:"started_at"`
	Seconds          float64  `json:"seconds"`
	LastRun          *Report  `json:"last_run,omitempty"` // status only: the saved apply or unlock
}

// Device is one instance-store disk as the agent found it.
type Device struct {
	Path      string `json:"path"`
	Model     string `json:"model"`
	Serial    string `json:"serial"`
	SizeBytes int64  `json:"size_bytes"`
	Found     string `json:"found"` // what was on it: nothing, crypto_LUKS (label ...), ext4 ...
}

// Layout is the encrypted volume.
type Layout struct {
	RAID        string   `json:"raid,omitempty"`  // the md array when there are several disks
	Level       string   `json:"level,omitempty"` // its RAID level: raid0, raid10
	Volume      string   `json:"volume"`          // the device that carries the LUKS2 header
	LUKSUUID    string   `json:"luks_uuid,omitempty"`
	State       string   `json:"state,omitempty"`
	Cipher      string   `json:"cipher,omitempty"`
	KeySizeBits int      `json:"key_size_bits,omitempty"`
	SectorSize  int      `json:"sector_size,omitempty"`
	Flags       []string `json:"flags,omitempty"` // persisted dm-crypt flags
	KeySource   string   `json:"key_source,omitempty"`
	KeyID       string   `json:"key_id,omitempty"`
	Secret      string   `json:"secret,omitempty"`
	Mapper      string   `json:"mapper,omitempty"`
	Open        bool     `json:"open"`
	Filesystem  string   `json:"filesystem,omitempty"`
	MountPoint  string   `json:"mount_point,omitempty"`
	Mounted     bool     `json:"mounted"`
	BootUnit    bool     `json:"boot_unit"`
	// BootMode: the boot unit provisions the volume at boot (`storecrypt-agent install`),
	// so a run from the SSM document checks and leaves the unit as installed.
	BootMode bool `json:"boot_mode,omitempty"`
	// Volumes are the per-disk layout's volumes, one per disk; the fields above then sum
	// them up (open and mounted when all are).
	Volumes []Layout `json:"volumes,omitempty"`
	// ProvisionedBy says which path made the volume: ProvisionedByBoot or
	// ProvisionedByCommand; empty for volumes made before it was recorded.
	ProvisionedBy string   `json:"provisioned_by,omitempty"`
	BindDirs      []string `json:"bind_dirs,omitempty"` // directories bind-mounted from the volume
}

// Paths that provision a volume (Layout.ProvisionedBy).
const (
	ProvisionedByBoot    = "boot-unit"   // the boot-time unit, before the workload started
	ProvisionedByCommand = "ssm-command" // apply, from the SSM document or by hand
)

// CipherSpec is the volume's cipher as one string: cipher/key size/sector size.
func (l *Layout) CipherSpec() string {
	return fmt.Sprintf("%s/%d-bit/%dB sectors", l.Cipher, l.KeySizeBits, l.SectorSize)
}

// Step is one thing a run did or, for plan, would do.
type Step struct {
	Name    string  `json:"step"`
	Action  string  `json:"action"`
	Command string  `json:"command,omitempty"` // the command line it runs; never a key
	Changed bool    `json:"changed"`
	Seconds float64 `json:"seconds"`
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
