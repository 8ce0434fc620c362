package bench

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"syscall"
	"time"

	"github.com/storecrypt/storecrypt/instance-agent/filesystem"
	"github.com/storecrypt/storecrypt/internal/contract"
)

// Choice is a filesystem made with the agent's flags or with --fast-format's
// (filesystem.FastFlags), and what that costs afterwards, measured natively like Native:
// the make and the mount on a sparse file of the volume's size in memory, then a
// small-file workload on the mounted volume.
type Choice struct {
	Filesystem  string   `json:"filesystem"`
	Flags       []string `json:"flags"` // --fast-format's, added to the agent's; none: the agent's own
	VolumeBytes int64    `json:"volume_bytes"`
	Mkfs        float64  `json:"mkfs_seconds"`
	Written     int64    `json:"mkfs_bytes_written"`
	Mount       float64  `json:"mount_seconds"`
	// Files is the workload: that many 1 KiB files made in directories of 1,000, synced,
	// then removed and synced. Create and Remove are their seconds; BytesPerFile the space
	// each file took (statfs, before the removal).
	Files        int     `json:"files"`
	Create       float64 `json:"create_seconds"`
	Remove       float64 `json:"remove_seconds"`
	BytesPerFile float64 `json:"bytes_per_file"`
}

// MeasureChoices measures each filesystem with and without --fast-format on a volume of
// the given size, with a workload of that many files. It needs root, for the loop device.
func MeasureChoices(ctx context.Context, volumeBytes int64, files int) ([]Choice, error) {
	if os.Geteuid() != 0 {
		return nil, errNotRoot
	}
	dir, err := inMemory()
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(dir)
	var out []Choice
	for _, fs := range []string{contract.FilesystemExt4, contract.FilesystemXFS} {
		for _, flags := range [][]string{nil, filesystem.FastFlags[fs]} {
			c := Choice{Filesystem: fs, Flags: flags, VolumeBytes: volumeBytes, Files: files}
			if err := c.measure(ctx, dir); err != nil {
				return nil, fmt.Errorf("%s %v: %w", fs, flags, err)
			}
			out = append(out, c)
		}
	}
	return out, nil
}

func (c *Choice) measure(ctx context.Context, dir string) error {
	vol := filepath.Join(dir, plainFile)
	if err := os.WriteFile(vol, nil, 0o600); err != nil {
		return err
	}
	defer os.Remove(vol)
	if err := os.Truncate(vol, c.VolumeBytes); err != nil {
		return err
	}
	mkfs, err := filesystem.MakeCommand(c.Filesystem, vol, contract.VolumeLabel, len(c.Flags) > 0)
	if err != nil {
		return err
	}
	if c.Mkfs, err = timed(ctx, mkfs); err != nil {
		return err
	}
	var st syscall.Stat_t
	if err := syscall.Stat(vol, &st); err != nil {
		return err
	}
	c.Written = st.Blocks * 512
	loop, err := output(ctx, "losetup", "--find", "--show", vol)
	if err != nil {
		return err
	}
	defer output(context.WithoutCancel(ctx), "losetup", "-d", loop) //nolint:errcheck // the measurement's error matters more
	mnt := filepath.Join(dir, "mnt")
	if err := os.MkdirAll(mnt, 0o755); err != nil {
		return err
	}
	m := filesystem.MountCommand(loop, mnt, c.Filesystem)
	if c.Mount, err = timed(ctx, m); err != nil {
		return err
	}
	defer output(context.WithoutCancel(ctx), "umount", mnt) //nolint:errcheck // as above
	return c.workload(mnt)
}

// inMemory is a new directory in memory (tmpfs) for the native runs: on disk, their figure
// would be the disk's.
func inMemory() (string, error) { return os.MkdirTemp("/dev/shm", "storecrypt-bench-") }

// workload makes c.Files files of 1 KiB under root and removes them, each half synced.
func (c *Choice) workload(root string) error {
	if c.Files == 0 {
		return nil
	}
	free := func() (int64, error) {
		var s syscall.Statfs_t
		if err := syscall.Statfs(root, &s); err != nil {
			return 0, err
		}
		return int64(s.Bfree) * s.Bsize, nil
	}
	before, err := free()
	if err != nil {
		return err
	}
	data := make([]byte, 1024)
	t0 := time.Now()
	for i := range c.Files {
		d := filepath.Join(root, fmt.Sprintf("d%d", i/1000))
		if i%1000 == 0 {
			if err := os.Mkdir(d, 0o755); err != nil {
				return err
			}
		}
		if err := os.WriteFile(filepath.Join(d, fmt.Sprintf("f%d", i)), data, 0o644); err != nil {
			return err
		}
	}
	syscall.Sync()
	c.Create = time.Since(t0).Seconds()
	after, err := free()
	if err != nil {
		return err
	}
	c.BytesPerFile = float64(before-after) / float64(c.Files)
	t0 = time.Now()
	for i := 0; i < c.Files; i += 1000 {
		if err := os.RemoveAll(filepath.Join(root, fmt.Sprintf("d%d", i/1000))); err != nil {
			return err
		}
	}
	syscall.Sync()
	c.Remove = time.Since(t0).Seconds()
	return nil
}
