package probe

import (
	"testing"
	"unsafe"
)

// TestAIOLayout: iocb and ioEvent are the kernel's structs byte for byte (aio_abi.h): a
// field out of place would have the kernel read into, or from, the wrong address.
func TestAIOLayout(t *testing.T) {
	var cb iocb
	var ev ioEvent
	for _, tc := range []struct {
		name      string
		got, want uintptr
	}{
		{"sizeof(struct iocb)", unsafe.Sizeof(cb), 64},
		{"aio_lio_opcode", unsafe.Offsetof(cb.opcode), 16},
		{"aio_fildes", unsafe.Offsetof(cb.fildes), 20},
		{"aio_buf", unsafe.Offsetof(cb.buf), 24},
		{"aio_nbytes", unsafe.Offsetof(cb.nbytes), 32},
		{"aio_offset", unsafe.Offsetof(cb.offset), 40},
		{"sizeof(struct io_event)", unsafe.Sizeof(ev), 32},
		{"io_event.res", unsafe.Offsetof(ev.res), 16},
	} {
		if tc.got != tc.want {
			t.Errorf("%s: got %d, want %d", tc.name, tc.got, tc.want)
		}
	}
}
