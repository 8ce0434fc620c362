// Package filesystem builds the command lines that make and mount the filesystem on the
// opened volume.
package filesystem

import (
	"fmt"
	"slices"

	"github.com/storecrypt/storecrypt/instance-agent/sysexec"
	"github.com/storecrypt/storecrypt/internal/contract"
)

// Tool returns the mkfs program for fstype, for the start-up check.
func Tool(fstype string) string { return "mkfs." + fstype }

// MakeCommand creates a fstype filesystem labelled label on dev; fast adds FastFlags.
func MakeCommand(fstype, dev, label string, fast bool) (sysexec.Command, error) {
	var args []string
	switch fstype {
	case contract.FilesystemExt4:
		// Lazy init defers inode-table and journal zeroing to the kernel after mount, so
		// mkfs time does not grow with the device. nodiscard: the volume was just
		// formatted on a trimmed device; discarding it again costs time for nothing.
		// -m 0: scratch space has no root-only reserve to keep. meta_bg keeps three copies
		// of each group-descriptor block (sparse_super wrote one in every group numbered
		// 0, 1 or a power of 3, 5 or 7): 8 × 7.5 TB got 4× fewer bytes written at mkfs,
		// and a 4 GiB volume 3×. resize_inode reserves room for growing the volume, which
		// instance store never does (meta_bg excludes it anyway). Every kernel and
		// e2fsprogs with ext4 supports both.
		args = []string{"-q", "-F", "-L", label, "-m", "0", "-O", "meta_bg,^resize_inode", "-E", "lazy_itable_init=1,lazy_journal_init=1,nodiscard", dev}
	case contract.FilesystemXFS:
		args = []string{"-q", "-f", "-K", "-L", label, dev}
	default:
		return sysexec.Command{}, fmt.Errorf("making a filesystem on %s: unsupported type %q", dev, fstype)
	}
	if fast {
		// The device stays last.
		args = slices.Insert(args, len(args)-1, FastFlags[fstype]...)
	}
	return sysexec.Command{Name: Tool(fstype), Args: args}, nil
}

// FastFlags make a large volume's filesystem in a fraction of the time (--fast-format),
// each for a cost the default does not pay; docs/benchmarks.md measures both.
//   - ext4, bigalloc with 64 KiB clusters: 16 times fewer block groups for mkfs to write
//     and for the mount to check (about 450,000 on 60 TB); every file takes at least a cluster.
//   - xfs, a 512 MiB log: mkfs writes the whole log, 2 GiB by default from about 4 TB up;
//     a smaller log holds fewer metadata changes before they must be written back.
var FastFlags = map[string][]string{
	contract.FilesystemExt4: {"-O", "bigalloc", "-C", "65536"},
	contract.FilesystemXFS:  {"-l", "size=512m"},
}

// MountCommand mounts dev at dir with noatime: atime updates turn every read into a
// metadata write, which scratch data never needs.
func MountCommand(dev, dir, fstype string) sysexec.Command {
	return sysexec.Command{Name: "mount", Args: []string{"-t", fstype, "-o", "noatime", dev, dir}}
}
