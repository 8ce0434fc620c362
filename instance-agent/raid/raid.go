// Package raid stripes several instance-store disks into one md RAID0 array with mdadm.
// RAID0 because instance store has no redundancy to protect: a lost disk loses the
// instance's scratch data either way, and striping gives every disk's bandwidth to one
// filesystem under one LUKS2 header (one key, one token, one open).
package raid

import (
	"context"
	"fmt"
	"strconv"

	"github.com/storecrypt/storecrypt/instance-agent/sysexec"
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

// CreateCommand makes a RAID0 array of members named name.
func CreateCommand(name string, members []string) sysexec.Command {
	args := []string{"--create", "/dev/md/" + name, "--run", "--level=0", "--metadata=1.2",
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

// Create makes a RAID0 array of members named name.
func (m Mdadm) Create(ctx context.Context, name string, members []string) error {
	return m.Run(ctx, CreateCommand(name, members))
}

// Assemble starts the existing array name from members.
func (m Mdadm) Assemble(ctx context.Context, name string, members []string) error {
	return m.Run(ctx, AssembleCommand(name, members))
}
