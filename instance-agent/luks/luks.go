// Package luks builds cryptsetup's command lines for LUKS2 volumes (format, tokens, open,
// close, suspend, resume, erase), runs them, and reads a header and cryptsetup's version. Keys reach cryptsetup
// only on stdin (--key-file -), never in argv, the environment or a file: no builder
// takes a key.
package luks

import (
	"context"
	"encoding/json"
	"fmt"
	"regexp"
	"slices"
	"strconv"
	"strings"

	"github.com/storecrypt/storecrypt/instance-agent/sysexec"
)

// Cipher, key size and the fast PBKDF setting storecrypt formats with.
const (
	Cipher      = "aes-xts-plain64"
	KeySizeBits = 512 // XTS splits it: AES-256 for data, AES-256 for the tweak
	// FastIterations is cryptsetup's floor for PBKDF2. A full-entropy 256-bit KMS data key
	// cannot be guessed, so a slow or memory-hard PBKDF adds nothing but seconds per open
	// (argon2id took 11 s to format and 2.7 s to open in the test guest).
	FastIterations = 1000
)

// FormatOptions shape a new volume.
type FormatOptions struct {
	UUID       string
	Label      string
	Subsystem  string
	SectorSize int  // 4096 where the device allows; 0 leaves cryptsetup's default
	FastKDF    bool // the key has full entropy (see FastIterations)
}

// OpenOptions are the dm-crypt flags of the first open; Persist stores them in the header
// so a later plain open, at boot or by hand, keeps them.
type OpenOptions struct {
	Discard   bool
	Workqueue bool // false: no_read_workqueue + no_write_workqueue
	Persist   bool
}

// HeaderFlags are the names luksDump shows for the flags these options persist.
func (o OpenOptions) HeaderFlags() []string {
	var f []string
	if o.Discard {
		f = append(f, "allow-discards")
	}
	if !o.Workqueue {
		f = append(f, "no-read-workqueue", "no-write-workqueue")
	}
	return f
}

// Cryptsetup runs cryptsetup through a Runner.
type Cryptsetup struct {
	R sysexec.Runner
}

// FormatCommand writes a new LUKS2 header on dev; its stdin is the passphrase of key
// slot 0.
func FormatCommand(dev string, o FormatOptions) sysexec.Command {
	args := []string{"luksFormat", "--batch-mode", "--type", "luks2",
		"--cipher", Cipher, "--key-size", strconv.Itoa(KeySizeBits)}
	if o.SectorSize != 0 {
		args = append(args, "--sector-size", strconv.Itoa(o.SectorSize))
	}
	if o.UUID != "" {
		args = append(args, "--uuid", o.UUID)
	}
	if o.Label != "" {
		args = append(args, "--label", o.Label)
	}
	if o.Subsystem != "" {
		args = append(args, "--subsystem", o.Subsystem)
	}
	if o.FastKDF {
		args = append(args, "--pbkdf", "pbkdf2", "--pbkdf-force-iterations", strconv.Itoa(FastIterations))
	}
	args = append(args, "--key-slot", "0", "--key-file", "-", dev)
	return sysexec.Command{Name: "cryptsetup", Args: args}
}

// ImportTokenCommand stores the token on stdin (JSON with "type" and "keyslots") as
// token 0 of dev, bound to key slot 0 when bind is set.
func ImportTokenCommand(dev string, bind bool) sysexec.Command {
	args := []string{"token", "import", "--token-id", "0"}
	if bind {
		args = append(args, "--key-slot", "0")
	}
	return sysexec.Command{Name: "cryptsetup", Args: append(args, dev)}
}

// SetLabelsCommand rewrites the LUKS2 label and subsystem fields; storecrypt keeps the
// volume's provisioning state in the subsystem. Both are passed because `cryptsetup
// config` clears the one it is not given.
func SetLabelsCommand(dev, label, subsystem string) sysexec.Command {
	return sysexec.Command{Name: "cryptsetup", Args: []string{"config", "--label", label, "--subsystem", subsystem, dev}}
}

// OpenCommand maps dev to /dev/mapper/name; its stdin is the key.
func OpenCommand(dev, name string, o OpenOptions) sysexec.Command {
	args := []string{"open", "--type", "luks2", "--key-file", "-"}
	if o.Discard {
		args = append(args, "--allow-discards")
	}
	if !o.Workqueue {
		// dm-crypt's workqueues exist for spinning disks and old CPUs; on NVMe they add a
		// context switch per I/O (measured here: +33% write, +28% read without them).
		args = append(args, "--perf-no_read_workqueue", "--perf-no_write_workqueue")
	}
	if o.Persist {
		args = append(args, "--persistent")
	}
	return sysexec.Command{Name: "cryptsetup", Args: append(args, dev, name)}
}

// CloseCommand removes the mapping name.
func CloseCommand(name string) sysexec.Command {
	return sysexec.Command{Name: "cryptsetup", Args: []string{"close", name}}
}

// SuspendCommand suspends the mapping name and wipes its key from the kernel: dm-crypt's
// copy and the keyring's. I/O to it waits until ResumeCommand.
func SuspendCommand(name string) sysexec.Command {
	return sysexec.Command{Name: "cryptsetup", Args: []string{"luksSuspend", name}}
}

// ResumeCommand gives the suspended mapping name its key again; its stdin is the key.
func ResumeCommand(name string) sysexec.Command {
	return sysexec.Command{Name: "cryptsetup", Args: []string{"luksResume", "--key-file", "-", name}}
}

// EraseCommand erases every keyslot of dev's header: nothing opens it again.
func EraseCommand(dev string) sysexec.Command {
	return sysexec.Command{Name: "cryptsetup", Args: []string{"erase", "--batch-mode", dev}}
}

// RemoveTokenCommand removes token id from dev's header: erase leaves tokens, and ours
// holds the wrapped key.
func RemoveTokenCommand(dev, id string) sysexec.Command {
	return sysexec.Command{Name: "cryptsetup", Args: []string{"token", "remove", "--token-id", id, dev}}
}

// Run runs a command built here with stdin (a key or a token, or nil).
func (c Cryptsetup) Run(ctx context.Context, cmd sysexec.Command, stdin []byte) error {
	cmd.Stdin = stdin
	if _, err := c.R.Run(ctx, cmd); err != nil {
		return fmt.Errorf("cryptsetup %s: %w", cmd.Args[0], err)
	}
	return nil
}

// Metadata is the part of the LUKS2 JSON header storecrypt reads.
type Metadata struct {
	Tokens   map[string]json.RawMessage `json:"tokens"`
	Segments map[string]struct {
		Encryption string `json:"encryption"`
		SectorSize int    `json:"sector_size"`
	} `json:"segments"`
	Config struct {
		Flags []string `json:"flags"`
	} `json:"config"`
}

// Dump reads dev's LUKS2 JSON metadata.
func (c Cryptsetup) Dump(ctx context.Context, dev string) (Metadata, error) {
	out, err := c.R.Run(ctx, sysexec.Command{Name: "cryptsetup", Args: []string{"luksDump", "--dump-json-metadata", dev}})
	if err != nil {
		return Metadata{}, fmt.Errorf("reading the LUKS2 header of %s: %w", dev, err)
	}
	var m Metadata
	if err := json.Unmarshal(out, &m); err != nil {
		return Metadata{}, fmt.Errorf("parsing the LUKS2 header of %s: %w", dev, err)
	}
	return m, nil
}

// TokenIDs are the ids of the header's tokens, in order.
func (m Metadata) TokenIDs() []string {
	ids := make([]int, 0, len(m.Tokens))
	for id := range m.Tokens {
		if n, err := strconv.Atoi(id); err == nil {
			ids = append(ids, n)
		}
	}
	slices.Sort(ids)
	out := make([]string, len(ids))
	for i, n := range ids {
		out[i] = strconv.Itoa(n)
	}
	return out
}

// TokenOfType returns the token of the lowest id whose "type" is typ, or nil.
func (m Metadata) TokenOfType(typ string) json.RawMessage {
	for _, id := range m.TokenIDs() {
		raw := m.Tokens[id]
		var t struct {
			Type string `json:"type"`
		}
		if json.Unmarshal(raw, &t) == nil && t.Type == typ {
			return raw
		}
	}
	return nil
}

// Version is cryptsetup's version.
type Version struct{ Major, Minor, Patch int }

func (v Version) String() string { return fmt.Sprintf("%d.%d.%d", v.Major, v.Minor, v.Patch) }

// AtLeast reports whether v >= o.
func (v Version) AtLeast(o Version) bool {
	if v.Major != o.Major {
		return v.Major > o.Major
	}
	if v.Minor != o.Minor {
		return v.Minor > o.Minor
	}
	return v.Patch >= o.Patch
}

var versionRE = regexp.MustCompile(`cryptsetup ([0-9]+)\.([0-9]+)\.([0-9]+)`)

// GetVersion runs cryptsetup --version.
func (c Cryptsetup) GetVersion(ctx context.Context) (Version, error) {
	out, err := c.R.Run(ctx, sysexec.Command{Name: "cryptsetup", Args: []string{"--version"}})
	if err != nil {
		return Version{}, fmt.Errorf("reading the cryptsetup version: %w", err)
	}
	return ParseVersion(string(out))
}

// ParseVersion parses `cryptsetup --version` output.
func ParseVersion(s string) (Version, error) {
	m := versionRE.FindStringSubmatch(s)
	if m == nil {
		return Version{}, fmt.Errorf("unrecognised cryptsetup version %q", strings.TrimSpace(s))
	}
	var v Version
	v.Major, _ = strconv.Atoi(m[1])
	v.Minor, _ = strconv.Atoi(m[2])
	v.Patch, _ = strconv.Atoi(m[3])
	return v, nil
}

// Minimum versions: LUKS2 tokens import/export and --label/--subsystem at format need
// 2.1; persistent performance flags need 2.3.4.
var (
	MinVersion       = Version{2, 1, 0}
	PerfFlagsVersion = Version{2, 3, 4}
)
