// Package atomicfile replaces files so that a power cut leaves the old or the new
// content, never half of either.
package atomicfile

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"syscall"
)

// syncFile flushes f to disk; tests replace it to see what is flushed and in what order.
var syncFile = (*os.File).Sync

// Write replaces path with data: write a sibling, fsync it, rename it over path, fsync
// the directory. Without the last fsync the rename itself may not survive a power cut
// (rename(2) and fsync(2): the directory entry is the directory's data), and the old file
// would come back after the new one was reported written.
func Write(path string, data []byte, mode os.FileMode) error {
	return WriteFrom(path, bytes.NewReader(data), mode)
}

// WriteFrom is Write with the content read from r. From an *os.File the kernel copies
// (copy_file_range), so a large file never passes through the process's memory.
func WriteFrom(path string, r io.Reader, mode os.FileMode) error {
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("creating %s: %w", dir, err)
	}
	tmp := path + ".tmp"
	// Whatever an interrupted write or anyone else left at the temporary name goes, and
	// the new file is created there afresh: a link planted there is never written through.
	if err := os.Remove(tmp); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("removing %s: %w", tmp, err)
	}
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_EXCL|syscall.O_NOFOLLOW, mode)
	if err != nil {
		return fmt.Errorf("writing %s: %w", tmp, err)
	}
	if _, err := io.Copy(f, r); err != nil {
		f.Close()
		return fmt.Errorf("writing %s: %w", tmp, err)
	}
	if err := syncFile(f); err != nil {
		f.Close()
		return fmt.Errorf("syncing %s: %w", tmp, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("writing %s: %w", tmp, err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return fmt.Errorf("replacing %s: %w", path, err)
	}
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("syncing %s: %w", dir, err)
	}
	defer d.Close()
	if err := syncFile(d); err != nil {
		return fmt.Errorf("syncing %s: %w", dir, err)
	}
	return nil
}
