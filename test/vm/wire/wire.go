// Package wire is the protocol between the test harness and vmexec, the command runner
// inside the test guest: one request per TCP connection, answered by a stream of frames.
package wire

import (
	"encoding/binary"
	"fmt"
	"io"
)

// The guest's network is link-local, like EC2's view of IMDS: slirp forwards only to
// addresses inside its own network, so IMDS can sit at 169.254.169.254 only if the
// network is 169.254.169.0/24. HostIP is where the guest finds the harness (at
// HarnessPort) and the emulators.
const (
	GuestNet    = "169.254.169.0/24"
	HostIP      = "169.254.169.100"
	HarnessPort = 7000
)

// Forward makes GuestPort on HostIP (or GuestIP when set) reach HostAddr on the host. It
// lives here, beside the guest's network, so that the emulators can name their forwards
// without linking the guest's launcher: a test that links test/vm boots a guest
// (test/cmd/gotest runs those one at a time).
type Forward struct {
	GuestIP   string
	GuestPort int
	HostAddr  string
}

// Request asks the guest to run one command.
type Request struct {
	Argv  []string `json:"argv"`
	Env   []string `json:"env,omitempty"`
	Stdin []byte   `json:"stdin,omitempty"`
}

// Frame kinds: output on either stream, then exactly one exit frame.
const (
	Stdout byte = 'o'
	Stderr byte = 'e'
	Exit   byte = 'x'
)

// maxFrame bounds one frame so a corrupt length cannot make the reader allocate wildly.
const maxFrame = 1 << 24

// WriteFrame writes one frame: kind, big-endian length, payload.
func WriteFrame(w io.Writer, kind byte, p []byte) error {
	var hdr [5]byte
	hdr[0] = kind
	binary.BigEndian.PutUint32(hdr[1:], uint32(len(p)))
	if _, err := w.Write(hdr[:]); err != nil {
		return err
	}
	_, err := w.Write(p)
	return err
}

// ReadFrame reads one frame written by WriteFrame.
func ReadFrame(r io.Reader) (byte, []byte, error) {
	var hdr [5]byte
	if _, err := io.ReadFull(r, hdr[:]); err != nil {
		return 0, nil, err
	}
	n := binary.BigEndian.Uint32(hdr[1:])
	if n > maxFrame {
		return 0, nil, fmt.Errorf("frame of %d bytes exceeds %d", n, maxFrame)
	}
	p := make([]byte, n)
	if _, err := io.ReadFull(r, p); err != nil {
		return 0, nil, err
	}
	return hdr[0], p, nil
}
