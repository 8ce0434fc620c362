// Package bind moves directories onto the encrypted volume and bind-mounts them back in
// their place (--bind-dirs), so that what a container runtime, the kubelet or a database
// writes under /var/lib/containerd, /var/lib/kubelet or /var/log/pods lands on the
// volume, not on the root disk. A directory lives on the volume at
// <mount point>/storecrypt-bind/<its path>; on first use its content is copied there
// (owners, modes, links and times kept), and at every boot it is bound again before the
// units that use it start.
package bind

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"syscall"

	"github.com/storecrypt/storecrypt/instance-agent/discover"
	"github.com/storecrypt/storecrypt/instance-agent/mountpoint"
	"github.com/storecrypt/storecrypt/instance-agent/sysexec"
	"github.com/storecrypt/storecrypt/internal/contract"
)

// Target is where dir lives on the volume mounted at mountPoint.
func Target(mountPoint, dir string) string {
	return path.Join(mountPoint, contract.BindRoot, dir)
}

// State is what holds a directory now.
type State int

// States of a directory.
const (
	Unbound State = iota // nothing is mounted on it
	Bound                // its place on the volume is bound on it
	Other                // something else is mounted on it
)

// Dir is one directory of --bind-dirs as found.
type Dir struct {
	Path   string
	State  State
	Source string // for Other: what is mounted there
}

// Observe reads proc/self/mountinfo under fsys and says, for each dir, whether its place
// on the volume (source is the volume's device) is bound on it, or something else is.
func Observe(fsys fs.FS, source string, dirs []string) ([]Dir, error) {
	mounts, err := discover.Mounts(fsys)
	if err != nil {
		return nil, err
	}
	at := map[string][]discover.Mount{}
	for _, m := range mounts {
		at[m.Point] = append(at[m.Point], m)
	}
	out := make([]Dir, len(dirs))
	for i, d := range dirs {
		out[i] = Dir{Path: d}
		ms := at[d]
		if len(ms) == 0 {
			continue
		}
		// The last mount on a path is the one that shows.
		m := ms[len(ms)-1]
		if m.Source == source && m.Root == path.Join("/", contract.BindRoot, d) {
			out[i].State = Bound
		} else {
			out[i].State, out[i].Source = Other, m.Source+":"+m.Root
		}
	}
	return out, nil
}

// Check refuses a directory that must not be bound, touching nothing: a symlink or a
// non-directory in its path (mountpoint.UnsafeError), or something else mounted on it.
func Check(root string, d Dir) error {
	if d.State == Other {
		return &mountpoint.UnsafeError{Dir: d.Path, Reason: "has " + d.Source + " mounted on it"}
	}
	_, err := mountpoint.CheckPath(root, d.Path)
	return err
}

// Move binds dir's place on the volume (mounted at mountPoint) on dir, copying dir's
// content there first when the volume has no copy yet. The copy is made beside its place
// and renamed into it, so a run cut short copies again rather than binding half a copy.
// The directory's copy on the root disk is then sealed whole (SealTree), so while the
// volume is not bound nothing can be written anywhere in it. It reports what it did.
func Move(ctx context.Context, run sysexec.Runner, root, mountPoint, dir string, seal mountpoint.Seal) (string, error) {
	src := filepath.Join(root, dir)
	dst := filepath.Join(root, Target(mountPoint, dir))
	did := "bound"
	if _, err := os.Lstat(dst); errors.Is(err, fs.ErrNotExist) {
		if err := copyInto(ctx, run, src, dst); err != nil {
			return "", fmt.Errorf("copying %s onto the volume: %w", dir, err)
		}
		did = "copied and bound"
	} else if err != nil {
		return "", fmt.Errorf("checking %s: %w", dst, err)
	}
	if seal == nil {
		seal = mountpoint.Immutable
	}
	if err := SealTree(src, seal); errors.Is(err, mountpoint.ErrUnsupported) {
		did += " (the root filesystem cannot seal " + dir + ")"
	} else if err != nil {
		return "", err
	}
	if _, err := run.Run(ctx, MountCommand(Target(mountPoint, dir), dir)); err != nil {
		return "", fmt.Errorf("binding %s on %s: %w", Target(mountPoint, dir), dir, err)
	}
	return did, nil
}

// SealTree applies seal (mountpoint.Immutable, or Mutable to undo it) to dir and to every
// directory and regular file under it on dir's filesystem. Sealing only dir would stop a
// new name in dir but not in its subdirectories, nor a write to a file already there:
// while the volume is not bound (KMS down at boot), a runtime would write plaintext to
// the root disk that the bind later hides. A sealed file can be neither written, renamed
// nor removed, so it holds exactly what the image carried (the copy on the volume is
// the one in use). Links are not followed, other filesystems mounted below are left
// alone, and FIFOs, sockets and devices hold no data of their own. Sealing is
// idempotent: a flag already as wanted is left. ErrUnsupported comes from dir itself.
func SealTree(dir string, seal mountpoint.Seal) error {
	top, err := os.Lstat(dir)
	if err != nil {
		return fmt.Errorf("sealing %s: %w", dir, err)
	}
	dev := device(top)
	return filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return fmt.Errorf("sealing %s: %w", p, err)
		}
		if !d.IsDir() && !d.Type().IsRegular() {
			return nil
		}
		if d.IsDir() && p != dir {
			if st, err := os.Lstat(p); err != nil {
				return fmt.Errorf("sealing %s: %w", p, err)
			} else if device(st) != dev {
				return fs.SkipDir
			}
		}
		return seal(p)
	})
}

func device(fi fs.FileInfo) uint64 {
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		return st.Dev
	}
	return 0
}

// MountCommand binds target on dir.
func MountCommand(target, dir string) sysexec.Command {
	return sysexec.Command{Name: "mount", Args: []string{"--bind", target, dir}}
}

// copyInto makes dst a copy of src (created empty when src does not exist).
func copyInto(ctx context.Context, run sysexec.Runner, src, dst string) error {
	partial := dst + ".partial"
	if err := os.RemoveAll(partial); err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
		return err
	}
	switch _, err := os.Lstat(src); {
	case errors.Is(err, fs.ErrNotExist):
		if err := os.MkdirAll(src, 0o755); err != nil {
			return err
		}
		if err := os.Mkdir(partial, 0o755); err != nil {
			return err
		}
	case err != nil:
		return err
	default:
		// cp -a keeps owners, modes, links, times and (GNU cp) extended attributes; both
		// GNU and busybox cp take this form.
		if _, err := run.Run(ctx, sysexec.Command{Name: "cp", Args: []string{"-a", src, partial}}); err != nil {
			return err
		}
	}
	// The copy must be on the volume before its name says it is complete.
	syscall.Sync()
	if err := os.Rename(partial, dst); err != nil {
		return err
	}
	return syncDir(filepath.Dir(dst))
}

func syncDir(dir string) error {
	f, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer f.Close()
	return f.Sync()
}
