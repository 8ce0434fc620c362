package lock

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestSecondRunWaitsThenGivesUp(t *testing.T) {
	path := filepath.Join(t.TempDir(), "run", "lock", "storecrypt.lock")
	var progress bytes.Buffer
	release, err := Acquire(context.Background(), path, time.Second, &progress)
	if err != nil {
		t.Fatal(err)
	}
	_, err = Acquire(context.Background(), path, 300*time.Millisecond, &progress)
	if !errors.Is(err, ErrBusy) {
		t.Fatalf("second acquire: got %v, want ErrBusy", err)
	}
	if !strings.Contains(progress.String(), "waiting up to 300ms") {
		t.Errorf("progress %q does not say it waits", progress.String())
	}
	done := make(chan error, 1)
	go func() {
		r, err := Acquire(context.Background(), path, 5*time.Second, &progress)
		if err == nil {
			r()
		}
		done <- err
	}()
	time.Sleep(100 * time.Millisecond)
	release()
	if err := <-done; err != nil {
		t.Fatalf("after release: got %v, want the lock", err)
	}
}

func TestCancelWhileWaiting(t *testing.T) {
	path := filepath.Join(t.TempDir(), "l")
	release, err := Acquire(context.Background(), path, time.Second, &bytes.Buffer{})
	if err != nil {
		t.Fatal(err)
	}
	defer release()
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := Acquire(ctx, path, time.Minute, &bytes.Buffer{}); !errors.Is(err, context.Canceled) {
		t.Fatalf("got %v, want context.Canceled", err)
	}
}

// TestOthersCannotHoldTheLock: the lock lives where only its owner may create or open
// files; a directory that is a link, belongs to someone else or that others may write is
// refused rather than trusted.
func TestOthersCannotHoldTheLock(t *testing.T) {
	for _, tc := range []struct {
		name  string
		setup func(t *testing.T, dir string)
		says  string
	}{
		{"a fresh directory is made private", func(*testing.T, string) {}, ""},
		{"world-writable, like /run/lock", func(t *testing.T, dir string) { mkdir(t, dir, 0o1777) }, "writable by others"},
		{"a link to another directory", func(t *testing.T, dir string) {
			other := filepath.Join(filepath.Dir(dir), "elsewhere")
			mkdir(t, other, 0o700)
			if err := os.Symlink(other, dir); err != nil {
				t.Fatal(err)
			}
		}, "not a directory"},
		{"someone else's directory", func(t *testing.T, dir string) {
			if os.Geteuid() != 0 {
				if os.Getenv("CI") != "" {
					t.Fatal("CI runs as root: this case must run")
				}
				t.Skip("needs root to give the directory away (CI runs as root)")
			}
			mkdir(t, dir, 0o700)
			if err := os.Chown(dir, 65534, 65534); err != nil {
				t.Fatal(err)
			}
		}, "belongs to uid 65534"},
		{"a link at the lock file", func(t *testing.T, dir string) {
			mkdir(t, dir, 0o700)
			if err := os.Symlink("/etc/passwd", filepath.Join(dir, "agent.lock")); err != nil {
				t.Fatal(err)
			}
		}, "too many levels of symbolic links"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), "run", "storecrypt")
			if err := os.MkdirAll(filepath.Dir(dir), 0o755); err != nil {
				t.Fatal(err)
			}
			tc.setup(t, dir)
			release, err := Acquire(context.Background(), filepath.Join(dir, "agent.lock"), 0, &bytes.Buffer{})
			if tc.says == "" {
				if err != nil {
					t.Fatal(err)
				}
				release()
				if fi, err := os.Lstat(dir); err != nil || fi.Mode().Perm() != 0o700 || !fi.IsDir() {
					t.Errorf("lock directory %v, %v; want a 0700 directory", fi.Mode(), err)
				}
				return
			}
			if err == nil {
				release()
				t.Fatalf("took the lock; want a refusal saying %q", tc.says)
			}
			if !strings.Contains(err.Error(), tc.says) {
				t.Errorf("error %q, want it to say %q", err, tc.says)
			}
		})
	}
}

func mkdir(t *testing.T, dir string, mode os.FileMode) {
	t.Helper()
	if err := os.Mkdir(dir, mode); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(dir, mode); err != nil { // past the umask
		t.Fatal(err)
	}
}
