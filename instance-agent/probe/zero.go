package probe

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"strings"
)

// Instance store arrives zeroed: AWS resets every block of it at a stop, hibernation or
// termination, and trimmed NVMe reads zeros (docs/aws-fidelity.md). So a disk storecrypt
// may format is one that blkid finds no signature on AND that reads as zero: a signature
// is only what blkid knows, and plain dm-crypt, a detached-header LUKS volume or a
// database on the raw device carry none.
const (
	// edge is how much of each end is read whole: where nearly every on-disk format keeps
	// its metadata, and where dm-crypt and a detached-header LUKS volume begin their
	// ciphertext.
	edge = 1 << 20
	// Samples is how many blocks are read between the ends, evenly spaced, so any
	// written run longer than size/Samples (1.8 GB on a 7.5 TB disk, 256 KiB on the
	// test guest's 1 GiB) is found wherever it lies. 4096 reads of 4 KiB cost 16 MiB per
	// disk: on a trimmed NVMe namespace, which answers a deallocated block without
	// touching flash, well under a second; they are issued depth at a time (writtenDirect)
	// and disks are read in parallel (docs/security.md, "Data on a disk", has the
	// measurement).
	Samples = 4096
	sample  = 4 << 10
)

var zeros = make([]byte, edge)

// Written says where the bytes [from, to) of dev, read through fsys (dev without its
// leading "/"), are not all zero: the first and last MiB, and Samples blocks between.
// It returns "" when every byte read is zero, and stops at the first that is not.
func Written(fsys fs.FS, dev string, from, to int64) (string, error) {
	f, err := fsys.Open(strings.TrimPrefix(dev, "/"))
	if err != nil {
		return "", fmt.Errorf("opening %s to check that it reads as zero: %w", dev, err)
	}
	defer f.Close()
	r, ok := f.(io.ReaderAt)
	if !ok {
		return "", fmt.Errorf("reading %s: its file cannot be read at an offset", dev)
	}
	all := spans(from, to)
	if fd, ok := f.(interface{ Fd() uintptr }); ok {
		if where, err := writtenDirect(int(fd.Fd()), dev, all, to); !errors.Is(err, errNoDirect) {
			return where, err
		}
	}
	buf := make([]byte, edge)
	check := func(off, n int64) (string, error) {
		if _, err := r.ReadAt(buf[:n], off); err != nil {
			return "", fmt.Errorf("reading %s at byte %d: %w", dev, off, err)
		}
		if bytes.Equal(buf[:n], zeros[:n]) {
			return "", nil
		}
		return fmt.Sprintf("non-zero bytes at byte %d of %d", off+firstNonZero(buf[:n]), to), nil
	}
	for _, span := range all {
		if where, err := check(span[0], span[1]); where != "" || err != nil {
			return where, err
		}
	}
	return "", nil
}

// spans are the [offset, length] pairs Written reads, in order: the first MiB, the last
// MiB, and Samples blocks evenly spread between them, each aligned to 4 KiB.
func spans(from, to int64) [][2]int64 {
	size := to - from
	if size <= 0 {
		return nil
	}
	if size <= 2*edge {
		if size <= edge {
			return [][2]int64{{from, size}}
		}
		return [][2]int64{{from, edge}, {from + edge, size - edge}}
	}
	out := [][2]int64{{from, edge}, {to - edge, edge}}
	lo, hi := from+edge, to-edge-sample
	for i := int64(0); i < Samples && hi > lo; i++ {
		off := (lo + (hi-lo)*i/(Samples-1)) &^ (sample - 1)
		out = append(out, [2]int64{max(off, lo), sample})
	}
	return out
}

func firstNonZero(b []byte) int64 {
	for i, c := range b {
		if c != 0 {
			return int64(i)
		}
	}
	return -1
}
