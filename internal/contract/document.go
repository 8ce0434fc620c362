// The SSM document's name, the step that runs the agent, and its parameters, each mapped
// onto the agent flag it becomes. Used by internal/document (which generates the
// document from them), the stack, the launch function and the CLI's rerun (which send
// parameter values); the agent never reads them: it sees only its flags.

package contract

import (
	"strconv"
	"strings"
)

// DocumentName is the default name of the SSM Command document; the stack may prefix it.
const DocumentName = "storecrypt-apply"

// DocumentRunStep is the name of the document's step that runs the agent. SSM reports a
// multi-step document's output per step, so readers ask for this one by name
// (GetCommandInvocation's PluginName).
const DocumentRunStep = "apply"

// DocumentParameter maps one SSM document parameter onto the agent flag it becomes.
type DocumentParameter struct {
	Name        string // as the document and SendCommand spell it
	Flag        string // the agent flag
	Pattern     string // allowedPattern; also the flag's validation
	Description string
	// Values, for an enumerated parameter, are its allowedValues: the console shows a
	// drop-down instead of a text box.
	Values []string
}

// DocumentParameters are every parameter of the document, in document order. A test
// proves each is an agent flag and that the agent's validation and the patterns agree.
var DocumentParameters = []DocumentParameter{
	{"KeySource", FlagKeySource, `^(` + strings.Join(KeySources, "|") + `)$`, "Where a new volume's key comes from. kms-datakey: a KMS data key per volume, kept wrapped in the volume's LUKS2 header; only this instance can unwrap it. " +
		"s3-kms: the seed recipe's passphrase, an S3 object encrypted under KMS; one passphrase opens every volume made with it. ephemeral: a random key never stored; the data is gone at every reboot.", KeySources},
	{"KmsKeyId", FlagKMSKeyID, PatternKMSKeyID, "KMS key ARN, id or alias for kms-datakey.", nil},
	{"Secret", FlagSecret, PatternSecret, "s3://bucket/key of the KMS-encrypted passphrase for s3-kms.", nil},
	{"MountPoint", FlagMountPoint, PatternMountPoint, "Where to mount the encrypted filesystem.", nil},
	{"Filesystem", FlagFilesystem, `^(` + strings.Join(Filesystems, "|") + `)$`, "Filesystem made on a new volume; a volume that exists keeps its own.", Filesystems},
	{"Layout", FlagLayout, `^(` + strings.Join(Layouts, "|") + `)$`, "How a new volume combines several disks: raid0 (striped, all the capacity), raid10 (mirrored, half; its first resync runs after the volume is mounted) or per-disk (a volume and filesystem per disk, at MountPoint/0, /1, ...).", Layouts},
	{"FastFormat", FlagFastFormat, `^(true|false)$`, "Make a new volume's filesystem in a fraction of the time on a large instance store, for a cost: ext4 gets 64 KiB clusters (every file takes at least 64 KiB), xfs a 512 MiB log instead of up to 2 GiB (fewer metadata changes in flight). A volume that exists keeps its own.", []string{"true", "false"}},
	{"Devices", FlagDevices, PatternDevices, "Comma-separated devices instead of discovery (each must still be instance store).", nil},
	{"Discard", FlagDiscard, `^(true|false)$`, "Pass discards (TRIM) through dm-crypt: true lets the SSD reclaim freed blocks, and shows someone with the raw disks which blocks are free.", []string{"true", "false"}},
	{"Wipe", FlagWipe, `^(true|false)$`, "Zero-fill a new volume before it is used: true takes time in proportion to the disks' size (hours on the largest instance store); with false, the disks' earlier content is still unreadable through the new key.", []string{"true", "false"}},
	{"RequiredBy", FlagRequiredBy, PatternRequiredBy, "Comma-separated systemd units (e.g. postgresql.service) that must not start at boot until the volume is mounted.", nil},
	{"BindDirs", FlagBindDirs, PatternBindDirs, "Comma-separated directories (e.g. /var/lib/containerd,/var/lib/kubelet,/var/log/pods) moved onto the volume and bind-mounted back at every boot; their content is copied on first use.", nil},
}

// DocumentValues turns agent options into the document's parameter values.
func (o AgentOptions) DocumentValues() map[string][]string {
	return map[string][]string{
		"KeySource": {o.KeySource}, "KmsKeyId": {o.KMSKeyID}, "Secret": {o.Secret},
		"MountPoint": {o.MountPoint}, "Filesystem": {o.Filesystem}, "Layout": {o.Layout}, "FastFormat": {strconv.FormatBool(o.FastFormat)},
		"Devices": {strings.Join(o.Devices, ",")}, "Discard": {strconv.FormatBool(o.Discard)}, "Wipe": {strconv.FormatBool(o.Wipe)},
		"RequiredBy": {strings.Join(o.RequiredBy, ",")}, "BindDirs": {strings.Join(o.BindDirs, ",")},
	}
}
