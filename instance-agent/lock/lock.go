// Package lock keeps two agent runs (a duplicate SSM command, the boot unit racing a
// rerun) from acting on the same disks at once: an flock(2) on a file in /run/lock, which
// the kernel drops when the holder dies and which a reboot clears.
package lock

import (
	"context"
	"errors"
	"fmt"
	"io"
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
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return nil, fmt.Errorf("creating the lock directory: %w", err)
	}
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("opening the lock %s: %w", path, err)
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
