// Package lock keeps two agent runs (a duplicate SSM command, the boot unit racing a
// rerun) from acting on the same disks at once: an flock(2) on a file in a directory of
// its own under /run, which the kernel drops when the holder dies and which a reboot
// clears. The directory is the caller's alone (0700, not a link): in a world-writable one
// such as /run/lock any local user could create the file first, or open it, and hold the
// lock so that no run ever converges.
package lock

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"time"

	"golang.org/x/sys/unix"
)

// ErrBusy means another run held the lock for longer than the caller would wait.
var ErrBusy = errors.New("another storecrypt-agent run holds the lock")

// pollInterval is how often a waiting run retries; flock has no timeout of its own.
const pollInterval = 200 * time.Millisecond

// Acquire takes the lock at path, waiting up to wait and telling progress once when it
// has to wait. The returned func releases it.
func Acquire(ctx context.Context, path string, wait time.Duration, progress io.Writer) (func(), error) {
	f, err := open(path)
	if err != nil {
		return nil, err
	}
	deadline := time.Now().Add(wait)
	told := false
	for {
		err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB)
		if err == nil {
			return func() { _ = unix.Flock(int(f.Fd()), unix.LOCK_UN); f.Close() }, nil
		}
		if !errors.Is(err, unix.EWOULDBLOCK) {
			f.Close()
			return nil, fmt.Errorf("locking %s: %w", path, err)
		}
		if !time.Now().Before(deadline) {
			f.Close()
			return nil, fmt.Errorf("%w (waited %s)", ErrBusy, wait)
		}
		if !told {
			fmt.Fprintf(progress, "storecrypt-agent: waiting up to %s for another run to finish\n", wait)
			told = true
		}
		select {
		case <-ctx.Done():
			f.Close()
			return nil, ctx.Err()
		case <-time.After(pollInterval):
		}
	}
}

// open opens the lock file in a directory only the caller can write, following no link.
func open(path string) (*os.File, error) {
	dir := filepath.Dir(path)
	if err := os.MkdirAll(filepath.Dir(dir), 0o755); err != nil {
		return nil, fmt.Errorf("creating the lock directory: %w", err)
	}
	if err := os.Mkdir(dir, 0o700); err != nil && !errors.Is(err, fs.ErrExist) {
		return nil, fmt.Errorf("creating the lock directory: %w", err)
	}
	if err := private(dir); err != nil {
		return nil, err
	}
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|unix.O_NOFOLLOW, 0o600)
	if err != nil {
		return nil, fmt.Errorf("opening the lock %s: %w", path, err)
	}
	return f, nil
}

// private checks that dir is a directory (not a link to one) that belongs to this user
// and that nobody else may write.
func private(dir string) error {
	var st unix.Stat_t
	if err := unix.Lstat(dir, &st); err != nil {
		return fmt.Errorf("checking the lock directory: %w", err)
	}
	switch {
	case st.Mode&unix.S_IFMT != unix.S_IFDIR:
		return fmt.Errorf("the lock directory %s is not a directory (a link?); remove it", dir)
	case int(st.Uid) != os.Geteuid():
		return fmt.Errorf("the lock directory %s belongs to uid %d, not to this user; remove it", dir, st.Uid)
	case st.Mode&0o022 != 0:
		return fmt.Errorf("the lock directory %s is writable by others (mode %o); remove it", dir, st.Mode&0o777)
	}
	return nil
}
