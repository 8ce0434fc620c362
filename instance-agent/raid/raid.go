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

// Create makes an array of members named name at level.
func (m Mdadm) Create(ctx context.Context, name string, level int, members []string) error {
	return m.Run(ctx, CreateCommand(name, level, members))
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

// Assemble starts the existing array name from members.
func (m Mdadm) Assemble(ctx context.Context, name string, members []string) error {
	return m.Run(ctx, AssembleCommand(name, members))
}
