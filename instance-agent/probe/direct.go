package probe

import (
	"bytes"
	"errors"
	"fmt"
	"strconv"
	"unsafe"

	"golang.org/x/sys/unix"
)

// depth is how many reads writtenDirect keeps in flight. In the test guest 4096 reads of
// 4 KiB took 2.0 s one at a time and 0.5 s sixteen at a time (fio, libaio against
// psync); threads did not help there, each read costing a system call and an interrupt.
const depth = 64

// iocb and ioEvent are Linux AIO's struct iocb and struct io_event (linux/aio_abi.h) on
// a little-endian machine, which every architecture the agent is built for is.
// The fields left blank (key, rw_flags, reqprio, reserved2, flags, resfd) stay zero, as
// does the opcode, IOCB_CMD_PREAD.
type iocb struct {
	data   uint64
	_      uint32
	_      int32
	opcode uint16
	_      int16
	fildes uint32
	buf    uint64
	nbytes uint64
	offset int64
	_      uint64
	_      uint32
	_      uint32
}

const iocbCmdPread = 0

type ioEvent struct {
	data, obj uint64
	res, res2 int64
}

// submit is io_submit; a test wraps it to count the batches.
var submit = func(ctx uintptr, cbs []*iocb) (int, error) {
	n, _, errno := unix.Syscall(unix.SYS_IO_SUBMIT, ctx, uintptr(len(cbs)), uintptr(unsafe.Pointer(&cbs[0])))
	if errno != 0 {
		return int(n), errno
	}
	return int(n), nil
}

// errNoDirect: the device cannot be read with O_DIRECT and Linux AIO here (tmpfs, a
// kernel without AIO, spans not aligned to 4 KiB); Written then reads one span at a time.
var errNoDirect = errors.New("no direct reads")

// writtenDirect is Written's loop over spans with up to depth reads in flight, through
// a second, O_DIRECT descriptor of the open file fd. It reads the spans in windows of
// depth, in order, and stops after the first window with a span not all zero: the
// answer is the one a serial read gives.
func writtenDirect(fd int, dev string, all [][2]int64, to int64) (string, error) {
	for _, s := range all {
		if s[0]%sample != 0 || s[1]%sample != 0 || s[1] > edge {
			return "", errNoDirect
		}
	}
	dfd, err := unix.Open("/proc/self/fd/"+strconv.Itoa(fd), unix.O_RDONLY|unix.O_DIRECT|unix.O_CLOEXEC, 0)
	if err != nil {
		return "", errNoDirect
	}
	defer unix.Close(dfd)
	var ctx uintptr
	if _, _, errno := unix.Syscall(unix.SYS_IO_SETUP, depth, uintptr(unsafe.Pointer(&ctx)), 0); errno != 0 {
		return "", errNoDirect
	}
	// The kernel writes into the buffers after io_submit returns: they live outside the
	// Go heap, and are unmapped only after io_destroy has waited for every read.
	// Spans lie back to back in it: at most two of them (the ends) are longer than a
	// sample, so a window takes at most 2 MiB and depth samples (a slot of the longest
	// span for each read took 64 MiB, which transparent huge pages made resident).
	mem, err := unix.Mmap(-1, 0, 2*edge+depth*sample, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_PRIVATE|unix.MAP_ANONYMOUS)
	if err != nil {
		destroy(ctx)
		return "", errNoDirect
	}
	// Deferred in this order, io_destroy, which waits for reads still in flight, runs
	// before the buffers they write into are unmapped.
	defer func() { _ = unix.Munmap(mem) }()
	defer destroy(ctx)
	cbs := make([]iocb, depth)
	ptrs := make([]*iocb, depth)
	events := make([]ioEvent, depth)
	for start := 0; start < len(all); start += depth {
		window := all[start:min(start+depth, len(all))]
		at := make([]int, len(window)+1) // where each span's bytes are in mem
		for i, s := range window {
			at[i+1] = at[i] + int(s[1])
			if at[i+1] > len(mem) {
				return "", errNoDirect
			}
			cbs[i] = iocb{data: uint64(i), opcode: iocbCmdPread, fildes: uint32(dfd), buf: uint64(uintptr(unsafe.Pointer(&mem[at[i]]))), nbytes: uint64(s[1]), offset: s[0]}
			ptrs[i] = &cbs[i]
		}
		for sent := 0; sent < len(window); {
			n, err := submit(ctx, ptrs[sent:len(window)])
			if err != nil && !errors.Is(err, unix.EINTR) && !errors.Is(err, unix.EAGAIN) {
				if sent == 0 && start == 0 {
					return "", errNoDirect
				}
				return "", fmt.Errorf("reading %s: io_submit: %w", dev, err)
			}
			sent += max(n, 0)
		}
		res := make([]int64, len(window))
		for got := 0; got < len(window); {
			n, _, errno := unix.Syscall6(unix.SYS_IO_GETEVENTS, ctx, 1, uintptr(len(window)-got), uintptr(unsafe.Pointer(&events[0])), 0, 0)
			if errno == unix.EINTR {
				continue
			}
			if errno != 0 {
				return "", fmt.Errorf("reading %s: io_getevents: %w", dev, errno)
			}
			for _, e := range events[:n] {
				res[e.data] = e.res
			}
			got += int(n)
		}
		for i, s := range window {
			if res[i] != s[1] {
				return "", fmt.Errorf("reading %s at byte %d: read %d bytes of %d (%w)", dev, s[0], max(res[i], 0), s[1], readErr(res[i]))
			}
			b := mem[at[i]:at[i+1]]
			if !bytes.Equal(b, zeros[:s[1]]) {
				return fmt.Sprintf("non-zero bytes at byte %d of %d", s[0]+firstNonZero(b), to), nil
			}
		}
	}
	return "", nil
}

// destroy is io_destroy: it cancels or waits for the context's reads, then frees it. An
// error leaves nothing to undo.
func destroy(ctx uintptr) { _, _, _ = unix.Syscall(unix.SYS_IO_DESTROY, ctx, 0, 0) }

// readErr is the error of an AIO read's result: a negative errno, or a short read.
func readErr(res int64) error {
	if res < 0 {
		return unix.Errno(-res)
	}
	return errors.New("short read")
}
