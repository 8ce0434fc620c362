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
	s, err := Stage(path, r, mode)
	if err != nil {
		return err
	}
	return s.Commit()
}

// Staged is a new content for a file, written and flushed beside it and not yet in its
// place: until Commit, path still holds what it held.
type Staged struct{ path, tmp string }

// Stage writes r to a sibling of path and fsyncs it: the slow half of WriteFrom, which a
// caller can do ahead of time and Commit when the file is due.
func Stage(path string, r io.Reader, mode os.FileMode) (*Staged, error) {
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("creating %s: %w", dir, err)
	}
	tmp := path + ".tmp"
	// Whatever an interrupted write or anyone else left at the temporary name goes, and
	// the new file is created there afresh: a link planted there is never written through.
	if err := os.Remove(tmp); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("removing %s: %w", tmp, err)
	}
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_EXCL|syscall.O_NOFOLLOW, mode)
	if err != nil {
		return nil, fmt.Errorf("writing %s: %w", tmp, err)
	}
	if _, err := io.Copy(f, r); err != nil {
		f.Close()
		return nil, fmt.Errorf("writing %s: %w", tmp, err)
	}
	if err := syncFile(f); err != nil {
		f.Close()
		return nil, fmt.Errorf("syncing %s: %w", tmp, err)
	}
	if err := f.Close(); err != nil {
		return nil, fmt.Errorf("writing %s: %w", tmp, err)
	}
	return &Staged{path: path, tmp: tmp}, nil
}

// Commit renames the staged file over path and fsyncs the directory.
func (s *Staged) Commit() error {
	if err := os.Rename(s.tmp, s.path); err != nil {
		return fmt.Errorf("replacing %s: %w", s.path, err)
	}
	dir := filepath.Dir(s.path)
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

// Discard removes the staged file; path keeps what it held.
func (s *Staged) Discard() error {
	if err := os.Remove(s.tmp); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("removing %s: %w", s.tmp, err)
	}
	return nil
}
