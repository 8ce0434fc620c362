// Command vmexec runs inside the test guest. It keeps one connection open to the harness
// (through a QEMU guestfwd rule, the guest's only way out), reads a command, and streams
// its output and exit status back; each accepted command runs while the next connection
// waits, so the harness can run commands concurrently.
package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"strconv"
	"sync"
	"time"

	"github.com/storecrypt/storecrypt/test/vm/wire"
)

func main() {
	for {
		conn, err := net.Dial("tcp", net.JoinHostPort(wire.HostIP, strconv.Itoa(wire.HarnessPort)))
		if err != nil {
			time.Sleep(50 * time.Millisecond)
			continue
		}
		var req wire.Request
		if err := json.NewDecoder(conn).Decode(&req); err != nil {
			conn.Close()
			time.Sleep(50 * time.Millisecond)
			continue
		}
		go serve(conn, req)
	}
}

type frameWriter struct {
	mu   *sync.Mutex
	conn io.Writer
	kind byte
}

func (w frameWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if err := wire.WriteFrame(w.conn, w.kind, p); err != nil {
		return 0, err
	}
	return len(p), nil
}

func serve(conn net.Conn, req wire.Request) {
	defer conn.Close()
	var mu sync.Mutex
	code := run(req, frameWriter{&mu, conn, wire.Stdout}, frameWriter{&mu, conn, wire.Stderr})
	mu.Lock()
	defer mu.Unlock()
	_ = wire.WriteFrame(conn, wire.Exit, []byte(strconv.Itoa(code)))
}

func run(req wire.Request, stdout, stderr io.Writer) int {
	if len(req.Argv) == 0 {
		fmt.Fprintln(stderr, "vmexec: empty argv")
		return 127
	}
	cmd := exec.Command(req.Argv[0], req.Argv[1:]...)
	cmd.Env = append(os.Environ(), req.Env...)
	cmd.Stdin = bytes.NewReader(req.Stdin)
	cmd.Stdout = stdout
	cmd.Stderr = stderr
	err := cmd.Run()
	var exitErr *exec.ExitError
	switch {
	case err == nil:
		return 0
	case errors.As(err, &exitErr):
		if exitErr.ExitCode() < 0 {
			return 128 + 9
		}
		return exitErr.ExitCode()
	default:
		fmt.Fprintf(stderr, "vmexec: %v\n", err)
		return 127
	}
}
