// The agent's JSON report: what a run found and did. The agent writes it (stdout and
// StatePath); the result function, the CLI and the auditor's report read it from SSM's
// output or the ledger. Its shape is the contract between them, golden-tested; it holds
// no secret.

package contract

import (
	"fmt"
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
	// Revocation is the volume's revoke or shred mark, when it has one.
	Revocation *Revocation `json:"revocation,omitempty"`
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
	// Suspended: the mapping is open but suspended (revoke): its key is out of kernel
	// memory and I/O to it waits.
	Suspended bool `json:"suspended,omitempty"`
	BootUnit  bool `json:"boot_unit"`
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
