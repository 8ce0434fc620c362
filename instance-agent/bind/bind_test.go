package bind

import (
	"errors"
	"os"
	"path/filepath"
	"syscall"
	"testing"

	"github.com/storecrypt/storecrypt/instance-agent/mountpoint"
)

// TestSealTree seals a directory's root-disk copy with the real attribute and then writes
// as a runtime would while the volume is not bound: a new file at the top and in a
// subdirectory, a new subdirectory, an append to a file already there, a rename and a
// removal. Each must fail, for root too; unsealing makes them possible again.
func TestSealTree(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "containerd")
	for _, f := range []string{"io.containerd.content/blobs/sha256/layer", "io.containerd.metadata.v1.bolt/meta.db"} {
		if err := os.MkdirAll(filepath.Join(dir, filepath.Dir(f)), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, f), []byte("from the image"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Symlink("/etc/hostname", filepath.Join(dir, "link")); err != nil {
		t.Fatal(err)
	}
	err := SealTree(dir, mountpoint.Immutable)
	if errors.Is(err, mountpoint.ErrUnsupported) || errors.Is(err, syscall.EPERM) {
		if os.Getenv("CI") != "" {
			t.Fatalf("sealing needs root on ext4 or xfs: %v", err)
		}
		t.Skipf("sealing needs root on ext4 or xfs (run as root where the temporary directory is one): %v", err)
	}
	if err != nil {
		t.Fatal(err)
	}
	// The temporary directory must be removable afterwards, sealed or not.
	t.Cleanup(func() { _ = SealTree(dir, mountpoint.Mutable) })
	sealed := true
	writes := []struct {
		name string
		do   func() error
	}{
		{"a new file at the top", func() error { return os.WriteFile(filepath.Join(dir, "new"), nil, 0o644) }},
		{"a new file in a subdirectory", func() error {
			return os.WriteFile(filepath.Join(dir, "io.containerd.content/blobs/sha256/new"), []byte("plaintext"), 0o644)
		}},
		{"a new subdirectory", func() error { return os.Mkdir(filepath.Join(dir, "io.containerd.content/ingest"), 0o755) }},
		{"an append to a file from the image", func() error {
			f, err := os.OpenFile(filepath.Join(dir, "io.containerd.metadata.v1.bolt/meta.db"), os.O_WRONLY|os.O_APPEND, 0)
			if err == nil {
				_, err = f.Write([]byte("plaintext"))
				f.Close()
			}
			return err
		}},
		{"a rename", func() error {
			return os.Rename(filepath.Join(dir, "io.containerd.content/blobs/sha256/layer"), filepath.Join(dir, "io.containerd.content/blobs/sha256/moved"))
		}},
		{"a removal", func() error { return os.Remove(filepath.Join(dir, "io.containerd.metadata.v1.bolt/meta.db")) }},
	}
	for _, phase := range []string{"sealed", "unsealed"} {
		for _, w := range writes {
			t.Run(phase+": "+w.name, func(t *testing.T) {
				err := w.do()
				if sealed && !errors.Is(err, syscall.EPERM) {
					t.Errorf("got %v, want EPERM", err)
				}
				if !sealed && err != nil {
					t.Errorf("got %v, want the write done", err)
				}
			})
		}
		if err := SealTree(dir, mountpoint.Mutable); err != nil {
			t.Fatal(err)
		}
		sealed = false
	}
	// Idempotent: sealing twice is sealing once.
	for range 2 {
		if err := SealTree(dir, mountpoint.Immutable); err != nil {
			t.Fatalf("sealing again: %v", err)
		}
	}
}
