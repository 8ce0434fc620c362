// Package raid combines several instance-store disks into one md array with mdadm, under
// one LUKS2 header (one key, one token, one open). RAID0 by default: instance store has no
// redundancy to protect across a stop, and striping gives every disk's bandwidth to one
// filesystem. RAID10 for those who want the volume to survive a failed disk while the
// instance runs, at half the capacity; its first resync is paused while the volume is
// provisioned (through SyncAction), so it never delays the mount.
package raid

import (
	"context"
	"fmt"
	"strconv"
	"strings"

	"github.com/storecrypt/storecrypt/instance-agent/sysexec"
	"github.com/storecrypt/storecrypt/internal/contract"
)

// MemberLabel is how blkid labels a member of storecrypt's array: mdadm records the name
// as homehost:name, and homehost "any" keeps it the same on whatever host assembles it.
func MemberLabel(name string) string { return "any:" + name }

// MemberType is blkid's TYPE for an md member.
const MemberType = "linux_raid_member"

// Mdadm runs mdadm through a Runner.
type Mdadm struct {
	R sysexec.Runner
}

// CreateCommand makes an array of members named name at level (0 or 10).
func CreateCommand(name string, level int, members []string) sysexec.Command {
	args := []string{"--create", "/dev/md/" + name, "--run", "--level=" + strconv.Itoa(level), "--metadata=1.2",
		"--raid-devices=" + strconv.Itoa(len(members)), "--homehost=any", "--name=" + name}
	return sysexec.Command{Name: "mdadm", Args: append(args, members...)}
}

// AssembleCommand starts the existing array name from members.
func AssembleCommand(name string, members []string) sysexec.Command {
	return sysexec.Command{Name: "mdadm", Args: append([]string{"--assemble", "/dev/md/" + name, "--run"}, members...)}
}

// ZeroCommand erases the md superblocks of members (a creation cut short leaves some).
func ZeroCommand(members []string) sysexec.Command {
	return sysexec.Command{Name: "mdadm", Args: append([]string{"--zero-superblock"}, members...)}
}

// Run runs a command built here.
func (m Mdadm) Run(ctx context.Context, c sysexec.Command) error {
	if _, err := m.R.Run(ctx, c); err != nil {
		return fmt.Errorf("running mdadm %s: %w", c.Args[0], err)
	}
	return nil
}

// SyncAction is the sysfs file, under the root, that starts and stops the array's resync
// (md(4)): writing "frozen" stops it and keeps it stopped, "idle" lets md resume it
// from where it stopped.
func SyncAction(kernelName string) string {
	return "sys/block/" + kernelName + "/md/sync_action"
}

// Level is the level of a layout's array (contract.Layouts): 0 or 10.
func Level(layout string) int {
	if layout == contract.LayoutRAID10 {
		return 10
	}
	return 0
}

// Superblock is what `mdadm --examine` reports of a member's md superblock: enough to
// tell one array's members from another's, and an array that ran from one whose
// creation was cut short.
type Superblock struct {
	ArrayUUID   string
	RaidDevices int
	// Events counts the superblock's updates: mdadm --create writes every member's with
	// 0 (super1.c, write_init_super1) before it starts the array, and the kernel adds
	// one each time it writes them (md_update_sb), as it does when the array is started
	// with redundancy and on each clean/dirty change.
	Events uint64
	Role   int   // "Active device N", or -1 (a spare, a replacement)
	Data   int64 // where the data area begins, in bytes
}

// ExamineCommand reads the md superblock on dev.
func ExamineCommand(dev string) sysexec.Command {
	return sysexec.Command{Name: "mdadm", Args: []string{"--examine", dev}}
}

// Examine reads the md superblock on dev.
func (m Mdadm) Examine(ctx context.Context, dev string) (Superblock, error) {
	out, err := m.R.Run(ctx, ExamineCommand(dev))
	if err != nil {
		return Superblock{}, fmt.Errorf("examining the md superblock of %s: %w", dev, err)
	}
	sb, err := ParseExamine(out)
	if err != nil {
		return Superblock{}, fmt.Errorf("examining the md superblock of %s: %w", dev, err)
	}
	return sb, nil
}

// ParseExamine reads mdadm --examine's report of a 1.x superblock (super1.c,
// examine_super1: "Key : value" lines; the agent runs tools with LC_ALL=C).
func ParseExamine(out []byte) (Superblock, error) {
	sb := Superblock{Role: -1}
	seen := map[string]bool{}
	for line := range strings.Lines(string(out)) {
		k, v, ok := strings.Cut(line, " : ")
		if !ok {
			continue
		}
		k, v = strings.TrimSpace(k), strings.TrimSpace(v)
		var err error
		switch k {
		case "Array UUID":
			sb.ArrayUUID = v
		case "Raid Devices":
			sb.RaidDevices, err = strconv.Atoi(v)
		case "Events":
			sb.Events, err = strconv.ParseUint(v, 10, 64)
		case "Data Offset":
			var sectors int64
			sectors, err = strconv.ParseInt(strings.TrimSuffix(v, " sectors"), 10, 64)
			sb.Data = sectors * 512
		case "Device Role":
			if n, ok := strings.CutPrefix(v, "Active device "); ok {
				sb.Role, err = strconv.Atoi(n)
			}
		default:
			continue
		}
		if err != nil {
			return Superblock{}, fmt.Errorf("reading %q: %w", strings.TrimSpace(line), err)
		}
		seen[k] = true
	}
	for _, k := range []string{"Array UUID", "Raid Devices", "Events", "Data Offset", "Device Role"} {
		if !seen[k] {
			return Superblock{}, fmt.Errorf("no %q in mdadm's report", k)
		}
	}
	return sb, nil
}
