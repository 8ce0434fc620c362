package probe

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"testing/fstest"

	"golang.org/x/sys/unix"
)

// TestWritten: a disk reads as zero only when its ends and every sample do; whatever is
// found says where.
func TestWritten(t *testing.T) {
	const size = int64(1) << 30
	gap := (size - 2*edge - sample) / (Samples - 1)
	for _, tc := range []struct {
		name  string
		at    int64 // where one non-zero byte is written; -1 for none
		n     int   // how many
		where string
	}{
		{"all zero", -1, 0, ""},
		{"8 MiB of random data at offset 0", 0, 8 << 20, "at byte 0 of "},
		{"one byte in the first MiB", edge - 1, 1, "at byte 1048575 of "},
		{"one byte in the last MiB", size - 1, 1, "at byte 1073741823 of "},
		{"data only in the middle, longer than a sample's gap", size/2 - gap/2, int(gap), "non-zero bytes at byte "},
		{"a sample's first block", edge, 1, "at byte 1048576 of "},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			dev := filepath.Join(dir, "dev/nvme1n1")
			if err := os.MkdirAll(filepath.Dir(dev), 0o755); err != nil {
				t.Fatal(err)
			}
			sparseDevice(t, dev, size, tc.at, []byte(strings.Repeat("\x5a", tc.n)))
			where, err := Written(os.DirFS(dir), "/dev/nvme1n1", 0, size)
			if err != nil {
				t.Fatal(err)
			}
			if tc.where == "" && where != "" || tc.where != "" && !strings.Contains(where, tc.where) {
				t.Errorf("got %q, want %q", where, tc.where)
			}
		})
	}
}

// TestWrittenRange: a member's data area is read from its data offset; what lies before
// (the md superblock) is not its business.
func TestWrittenRange(t *testing.T) {
	for _, tc := range []struct {
		name         string
		from, to, at int64 // at: where one non-zero byte is, past the superblock; 0 for none
		where        string
	}{
		{"the superblock before the range", 8192, 3 << 20, 0, ""},
		{"a short device read whole", 4096, 8192, 8000, "non-zero bytes at byte 8000 of 8192"},
		{"between one and two MiB: the tail", 4096, 2 * edge, 2*edge - 3, "non-zero bytes at byte 2097149 of 2097152"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b := make([]byte, tc.to)
			copy(b, "superblock")
			if tc.at > 0 {
				b[tc.at] = 'x'
			}
			fsys := fstest.MapFS{"dev/x": {Data: b}}
			where, err := Written(fsys, "/dev/x", tc.from, tc.to)
			if err != nil || where != tc.where {
				t.Errorf("got %q, %v; want %q", where, err, tc.where)
			}
		})
	}
	if _, err := Written(fstest.MapFS{"dev/x": {Data: make([]byte, 10)}}, "/dev/x", 0, 4096); err == nil {
		t.Error("a device shorter than its size read: got no error, want one")
	}
}

// TestWrittenInBatches: where the device allows O_DIRECT, the reads go to the kernel
// depth at a time, and stop after the batch that holds the first non-zero span.
func TestWrittenInBatches(t *testing.T) {
	// 4098 spans, 64 at a time.
	const size = int64(1) << 30
	for _, tc := range []struct {
		name    string
		at      int64 // one non-zero byte; -1 for none
		batches int
		where   string
	}{
		{"all zero", -1, 65, ""},
		{"in the first MiB", 4096, 1, "non-zero bytes at byte 4096 of 1073741824"},
		{"in the last sample", size - edge - sample, 65, "non-zero bytes at byte 1072689152 of 1073741824"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			dev := filepath.Join(dir, "nvme1n1")
			sparseDevice(t, dev, size, tc.at, []byte{1})
			if fd, err := unix.Open(dev, unix.O_RDONLY|unix.O_DIRECT, 0); err != nil {
				// CI's TMPDIR is on a disk; elsewhere tmpfs refuses O_DIRECT.
				if os.Getenv("CI") != "" {
					t.Fatalf("%s cannot be opened with O_DIRECT: %v", dir, err)
				}
				t.Skipf("%s cannot be opened with O_DIRECT (%v): put TMPDIR on a disk filesystem", dir, err)
			} else {
				unix.Close(fd)
			}
			batches := 0
			real := submit
			submit = func(ctx uintptr, cbs []*iocb) (int, error) { batches++; return real(ctx, cbs) }
			defer func() { submit = real }()
			where, err := Written(os.DirFS(dir), "/nvme1n1", 0, size)
			if err != nil || where != tc.where || batches != tc.batches {
				t.Errorf("got %q, %v in %d batches; want %q in %d", where, err, batches, tc.where, tc.batches)
			}
		})
	}
}

// sparseDevice makes a sparse file of size at path standing for a trimmed instance-store
// disk (it reads as zero), with data written at at unless at is negative.
func sparseDevice(t *testing.T, path string, size, at int64, data []byte) {
	t.Helper()
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := f.Truncate(size); err != nil {
		t.Fatal(err)
	}
	if at >= 0 {
		if _, err := f.WriteAt(data, at); err != nil {
			t.Fatal(err)
		}
	}
}
