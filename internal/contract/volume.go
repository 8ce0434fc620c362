// What the agent makes on an instance and how a volume's key is bound to it: the names
// on disk and in systemd, the volume states in the LUKS2 header, the data key's
// encryption context. Used by the agent (which writes them), by the stack and the
// launch function's binding check (whose key-policy conditions read the encryption
// context), and by the tests that look at a guest's disks.

package contract

import (
	"fmt"
	"time"
)

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
	// RevocationPath holds the mark revoke and shred leave (Revocation): on the root disk,
	// so that it outlives a reboot and the boot unit finds it.
	RevocationPath = "/var/lib/storecrypt/revocation.json"
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

// Volume states, kept in the LUKS2 header's subsystem field. A volume is "provisioning"
// from luksFormat until its filesystem is made; nothing is mounted before "ready", so a
// provisioning volume provably holds no user data and may be formatted again.
const (
	StateProvisioning = "storecrypt-provisioning"
	StateReady        = "storecrypt-ready"
)

// Revocation states (Revocation.State).
const (
	Revoked  = "revoked"  // the key is out of kernel memory; resume restores access
	Shredded = "shredded" // every keyslot and token erased: the data is gone for good
)

// Revocation is the mark revoke and shred leave at RevocationPath, and what status shows.
// It is a courtesy that keeps the boot unit, a rerun and the document from asking KMS
// for a key that is refused anyway: someone who owns the instance can delete it, so the
// enforcement is KMS refusing the instance's key.
type Revocation struct {
	State      string `json:"state"` // Revoked or Shredded
	Reason     string `json:"reason"`
	By         string `json:"by"`
	At         string `json:"at"` // RFC 3339, UTC
	InstanceID string `json:"instance_id,omitempty"`
}
