// Package probe reads the on-disk signatures of a block device with blkid in low-level
// mode (-p), which looks at the device itself rather than the udev cache, so a disk that
// was written a moment ago is seen as it is.
package probe

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"strings"

	"github.com/storecrypt/storecrypt/instance-agent/sysexec"
)

// Signature is what blkid found on a device, and whether a device without a signature
// reads as zero. The zero value means blank: no filesystem, LUKS, RAID or
// partition-table signature, and nothing but zeros where Written reads.
type Signature struct {
	Type      string `json:"type,omitempty"` // ext4, xfs, crypto_LUKS, linux_raid_member
	Label     string `json:"label,omitempty"`
	UUID      string `json:"uuid,omitempty"`
	Subsystem string `json:"subsystem,omitempty"` // LUKS2 subsystem field
	PTType    string `json:"pttype,omitempty"`    // a partition table: gpt, dos
	Data      string `json:"data,omitempty"`      // where a disk without a signature is not zero (Written)
}

// Blank reports whether no signature was found.
func (s Signature) Blank() bool { return s == Signature{} }

// What describes the signature for messages: "ext4", "crypto_LUKS (label x)", "gpt partition table".
func (s Signature) What() string {
	switch {
	case s.Blank():
		return "nothing"
	case s.PTType != "":
		return s.PTType + " partition table"
	case s.Type == "" && s.Data != "":
		return "data without a signature blkid knows (" + s.Data + ")"
	case s.Label != "":
		return fmt.Sprintf("%s (label %q)", s.Type, s.Label)
	default:
		return s.Type
	}
}

// Exit codes of blkid -p (blkid(8)).
const (
	exitNothingFound = 2
	exitAmbivalent   = 8
)

// Device probes dev.
func Device(ctx context.Context, r sysexec.Runner, dev string) (Signature, error) {
	out, err := r.Run(ctx, sysexec.Command{Name: "blkid", Args: []string{"-p", "-o", "export", dev}})
	switch sysexec.ExitCode(err) {
	case -1:
		if err != nil {
			return Signature{}, fmt.Errorf("probing %s: %w", dev, err)
		}
	case 0:
	case exitNothingFound:
		return Signature{}, nil
	case exitAmbivalent:
		// Two signatures at once: certainly not blank, and not safely ours.
		return Signature{Type: "ambivalent"}, nil
	default:
		return Signature{}, fmt.Errorf("probing %s: %w", dev, err)
	}
	return parse(out), nil
}

func parse(out []byte) Signature {
	var s Signature
	sc := bufio.NewScanner(bytes.NewReader(out))
	for sc.Scan() {
		k, v, ok := strings.Cut(sc.Text(), "=")
		if !ok {
			continue
		}
		switch k {
		case "TYPE":
			s.Type = v
		case "LABEL":
			s.Label = v
		case "UUID":
			s.UUID = v
		case "SUBSYSTEM":
			s.Subsystem = v
		case "PTTYPE":
			s.PTType = v
		}
	}
	return s
}
