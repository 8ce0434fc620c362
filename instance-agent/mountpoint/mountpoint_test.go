package mountpoint

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

func TestPrepare(t *testing.T) {
	for _, tc := range []struct {
		name  string
		setup func(root string)
		says  string // "" when it goes through
	}{
		{"created", nil, ""},
		{"already there and empty", func(root string) { mkdir(t, root, "mnt/instance-store") }, ""},
		{"a symlink in the path", func(root string) {
			mkdir(t, root, "elsewhere")
			if err := os.Symlink(filepath.Join(root, "elsewhere"), filepath.Join(root, "mnt")); err != nil {
				t.Fatal(err)
			}
		}, "goes through the symlink /mnt"},
		{"the mount point a symlink", func(root string) {
			mkdir(t, root, "mnt")
			if err := os.Symlink("/etc", filepath.Join(root, "mnt/instance-store")); err != nil {
				t.Fatal(err)
			}
		}, "goes through the symlink /mnt/instance-store"},
		{"a file in the path", func(root string) {
			if err := os.WriteFile(filepath.Join(root, "mnt"), nil, 0o644); err != nil {
				t.Fatal(err)
			}
		}, "which is not a directory"},
		{"files in it", func(root string) {
			mkdir(t, root, "mnt/instance-store")
			if err := os.WriteFile(filepath.Join(root, "mnt/instance-store/data.csv"), []byte("plaintext"), 0o644); err != nil {
				t.Fatal(err)
			}
		}, "holds files"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			root := t.TempDir()
			if tc.setup != nil {
				tc.setup(root)
			}
			var sealed string
			err := Prepare(root, "/mnt/instance-store", func(dir string) error { sealed = dir; return nil })
			if tc.says == "" {
				if err != nil || sealed != filepath.Join(root, "mnt/instance-store") {
					t.Fatalf("got %v, sealed %q", err, sealed)
				}
				return
			}
			var unsafe *UnsafeError
			if !errors.As(err, &unsafe) || !strings.Contains(err.Error(), tc.says) || sealed != "" {
				t.Fatalf("got %v (sealed %q), want a refusal saying %q", err, sealed, tc.says)
			}
		})
	}
}

func mkdir(t *testing.T, root, dir string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Join(root, dir), 0o755); err != nil {
		t.Fatal(err)
	}
}

// TestImmutable: nothing can be created in a sealed directory, not even by root; sealing
// again is harmless.
func TestImmutable(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "mp")
	mkdir(t, dir, "")
	err := Immutable(dir)
	switch {
	case errors.Is(err, ErrUnsupported), errors.Is(err, unix.EPERM):
		if os.Getenv("CI") != "" {
			t.Fatalf("CI runs as root on a filesystem with attributes: %v", err)
		}
		t.Skipf("this filesystem or user cannot set the attribute: %v (the real-kernel tests check it)", err)
	case err != nil:
		t.Fatal(err)
	}
	t.Cleanup(func() { unseal(t, dir) })
	if err := os.WriteFile(filepath.Join(dir, "x"), nil, 0o644); !errors.Is(err, os.ErrPermission) {
		t.Errorf("writing into the sealed directory: %v, want permission denied", err)
	}
	if err := Immutable(dir); err != nil {
		t.Errorf("sealing again: %v", err)
	}
}

func unseal(t *testing.T, dir string) {
	fd, err := unix.Open(dir, unix.O_RDONLY|unix.O_DIRECTORY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(fd)
	flags, err := unix.IoctlGetUint32(fd, unix.FS_IOC_GETFLAGS)
	if err == nil {
		err = unix.IoctlSetPointerInt(fd, unix.FS_IOC_SETFLAGS, int(flags&^immutableFlag))
	}
	if err != nil {
		t.Fatal(err)
	}
}
