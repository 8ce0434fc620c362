// Package mountpoint prepares the directory the encrypted volume mounts on so that it
// fails closed: while the volume is not mounted (after a stop/start, or with KMS
// unreachable at boot) nothing can be written there, where it would land in plaintext
// on the root volume and be hidden later by the mount. The directory is kept empty and
// made immutable (chattr +i); mounting over an immutable directory works, creating a
// file in it does not, for root too.
//
// It also refuses what would make the mount unsafe: a symlink anywhere in the path (the
// mount would land where the link points), a directory that already holds files (the
// mount would hide them, and they are plaintext), and a directory that is already the
// mount point of something else.
package mountpoint

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// UnsafeError says why a mount point cannot be used.
type UnsafeError struct {
	Dir    string
	Reason string
}

func (e *UnsafeError) Error() string {
	return fmt.Sprintf("mount point %s %s", e.Dir, e.Reason)
}

// ErrUnsupported means the filesystem under the mount point cannot make a directory
// immutable (tmpfs, for one); the directory is then writable while unmounted.
var ErrUnsupported = errors.New("the filesystem cannot make the mount point immutable")

// Seal makes dir immutable; the default is Immutable.
type Seal func(dir string) error

// Check refuses a mount point that is not safe to mount on, touching nothing: a symlink
// or a non-directory in its path, files in it, or another filesystem mounted on it. A
// path that does not exist yet is fine; Prepare creates it.
func Check(root, dir string) error {
	if exists, err := CheckPath(root, dir); err != nil || !exists {
		return err
	}
	full := filepath.Join(root, dir)
	empty, err := isEmpty(full)
	if err != nil {
		return err
	}
	if !empty {
		return &UnsafeError{Dir: dir, Reason: "holds files: they are on the root volume, unencrypted, and a mount would hide them; move them away"}
	}
	if mounted, err := isMountPoint(full); err != nil {
		return err
	} else if mounted {
		return &UnsafeError{Dir: dir, Reason: "is already the mount point of another filesystem"}
	}
	return nil
}

// CheckPath refuses a path (an absolute path under root) through a symlink or a
// non-directory, touching nothing, and says whether the whole path exists.
func CheckPath(root, dir string) (bool, error) {
	cur := root
	for _, part := range strings.Split(strings.Trim(dir, "/"), "/") {
		cur = filepath.Join(cur, part)
		st, err := os.Lstat(cur)
		switch {
		case errors.Is(err, os.ErrNotExist):
			return false, nil
		case err != nil:
			return false, fmt.Errorf("checking %s: %w", cur, err)
		case st.Mode()&os.ModeSymlink != 0:
			return false, &UnsafeError{Dir: dir, Reason: "goes through the symlink " + strings.TrimPrefix(cur, root)}
		case !st.IsDir():
			return false, &UnsafeError{Dir: dir, Reason: "goes through " + strings.TrimPrefix(cur, root) + ", which is not a directory"}
		}
	}
	return true, nil
}

// Prepare makes dir (an absolute path under root) ready to mount on: Check, then each
// missing component created as a real directory, then dir sealed. A seal the filesystem
// does not support is reported as ErrUnsupported after the rest is done.
func Prepare(root, dir string, seal Seal) error {
	if err := Check(root, dir); err != nil {
		return err
	}
	if seal == nil {
		seal = Immutable
	}
	cur := root
	for _, part := range strings.Split(strings.Trim(dir, "/"), "/") {
		cur = filepath.Join(cur, part)
		if err := os.Mkdir(cur, 0o755); err != nil && !errors.Is(err, os.ErrExist) {
			return fmt.Errorf("creating %s: %w", cur, err)
		}
	}
	// Created just now: the checks hold for what Check could not see.
	if err := Check(root, dir); err != nil {
		return err
	}
	return seal(filepath.Join(root, dir))
}

func isEmpty(dir string) (bool, error) {
	f, err := os.Open(dir)
	if err != nil {
		return false, fmt.Errorf("reading %s: %w", dir, err)
	}
	defer f.Close()
	_, err = f.Readdirnames(1)
	if errors.Is(err, io.EOF) {
		return true, nil
	}
	return false, err
}

// isMountPoint: dir is on another device than its parent.
func isMountPoint(dir string) (bool, error) {
	var self, parent unix.Stat_t
	if err := unix.Lstat(dir, &self); err != nil {
		return false, fmt.Errorf("checking %s: %w", dir, err)
	}
	if err := unix.Lstat(filepath.Dir(dir), &parent); err != nil {
		return false, fmt.Errorf("checking %s: %w", filepath.Dir(dir), err)
	}
	return self.Dev != parent.Dev, nil
}

// immutableFlag is FS_IMMUTABLE_FL of linux/fs.h, which x/sys/unix does not name.
const immutableFlag = 0x00000010

// Immutable sets the immutable attribute (FS_IMMUTABLE_FL, what chattr +i sets) on dir,
// a directory or a regular file, opened without following links.
func Immutable(dir string) error { return setImmutable(dir, true) }

// Mutable clears what Immutable set, for the agent's own changes and for uninstall.
func Mutable(dir string) error { return setImmutable(dir, false) }

func setImmutable(dir string, on bool) error {
	// O_NONBLOCK: what is opened is a directory or a regular file, and a FIFO swapped in
	// meanwhile must not block the run.
	fd, err := unix.Open(dir, unix.O_RDONLY|unix.O_NOFOLLOW|unix.O_CLOEXEC|unix.O_NONBLOCK, 0)
	if err != nil {
		return fmt.Errorf("opening %s: %w", dir, err)
	}
	defer unix.Close(fd)
	flags, err := unix.IoctlGetUint32(fd, unix.FS_IOC_GETFLAGS)
	if err != nil {
		return unsupported(dir, err)
	}
	want := flags &^ immutableFlag
	if on {
		want = flags | immutableFlag
	}
	if want == flags {
		return nil
	}
	if err := unix.IoctlSetPointerInt(fd, unix.FS_IOC_SETFLAGS, int(want)); err != nil {
		return unsupported(dir, err)
	}
	return nil
}

// PrepareParent makes dir (under root) hold the empty mount points dir/0 ... dir/n-1 and
// seals dir, so that nothing can be written beside them on the root volume. A dir sealed
// by an earlier layout is unsealed only while the missing mount points are made.
func PrepareParent(root, dir string, n int, seal Seal) error {
	if _, err := CheckPath(root, dir); err != nil {
		return err
	}
	full := filepath.Join(root, dir)
	if err := os.MkdirAll(full, 0o755); err != nil {
		return fmt.Errorf("creating %s: %w", full, err)
	}
	if mounted, err := isMountPoint(full); err != nil {
		return err
	} else if mounted {
		return &UnsafeError{Dir: dir, Reason: "is the mount point of another filesystem, not a directory that holds one per disk"}
	}
	for i := range n {
		child := filepath.Join(full, strconv.Itoa(i))
		err := os.Mkdir(child, 0o755)
		if errors.Is(err, os.ErrPermission) || errors.Is(err, unix.EPERM) {
			if err = Mutable(full); err == nil {
				err = os.Mkdir(child, 0o755)
			}
		}
		if err != nil && !errors.Is(err, os.ErrExist) {
			return fmt.Errorf("creating %s: %w", child, err)
		}
	}
	if seal == nil {
		seal = Immutable
	}
	return seal(full)
}

func unsupported(dir string, err error) error {
	if errors.Is(err, unix.ENOTTY) || errors.Is(err, unix.EOPNOTSUPP) || errors.Is(err, unix.EINVAL) {
		return fmt.Errorf("%s: %w", dir, ErrUnsupported)
	}
	return fmt.Errorf("making %s immutable: %w", dir, err)
}
