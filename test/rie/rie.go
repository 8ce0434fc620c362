// Package rie runs a Lambda bootstrap under the AWS Lambda Runtime Interface Emulator, as
// provided.al2023 would, for tests and benchmarks: build it, start it, invoke it once.
package rie

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// Build compiles the function in pkg (as bootstrap, -tags lambda.norpc, for this host)
// and the emulator into dir.
func Build(dir, pkg string) (bootstrap, emulator string, err error) {
	if bootstrap, err = BuildBootstrap(dir, pkg); err != nil {
		return "", "", err
	}
	emulator = filepath.Join(dir, "aws-lambda-rie")
	return bootstrap, emulator, goBuild("-o", emulator, "github.com/aws/aws-lambda-runtime-interface-emulator/cmd/aws-lambda-rie")
}

// BuildBootstrap compiles the function in pkg into dir as Lambda runs it (bootstrap,
// -tags lambda.norpc), for this host.
func BuildBootstrap(dir, pkg string) (string, error) {
	bootstrap := filepath.Join(dir, "bootstrap")
	return bootstrap, goBuild("-trimpath", "-tags", "lambda.norpc", "-ldflags", "-s -w", "-o", bootstrap, pkg)
}

func goBuild(args ...string) error {
	cmd := exec.Command("go", append([]string{"build"}, args...)...)
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("go build %v: %w\n%s", args, err, out)
	}
	return nil
}

// Invocation is one cold start and its answer.
type Invocation struct {
	Answer string
	Cold   time.Duration // process start to the first answer
	Logs   string
	MaxRSS int64 // the function's peak resident memory, bytes (0 when not measured)
}

// Invoke starts the emulator with the function and posts payload once.
func Invoke(ctx context.Context, emulator, bootstrap string, env []string, payload string) (Invocation, error) {
	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	api, emu, err := freeAddr()
	if err != nil {
		return Invocation{}, err
	}
	cmd := exec.CommandContext(ctx, emulator, "--runtime-interface-emulator-address", emu, "--runtime-api-address", api, bootstrap)
	cmd.Env = append(os.Environ(), env...)
	var logs syncBuffer
	cmd.Stdout, cmd.Stderr = &logs, &logs
	// The emulator and the function share a process group so that stopping both closes
	// every writer of the log pipe: only then has all the function wrote been copied.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.WaitDelay = 5 * time.Second
	start := time.Now()
	if err := cmd.Start(); err != nil {
		return Invocation{}, err
	}
	stop := func() { _ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL); _ = cmd.Wait() }
	url := "http://" + emu + "/2015-03-31/functions/function/invocations"
	for {
		resp, err := http.Post(url, "application/json", strings.NewReader(payload))
		if err == nil {
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			inv := Invocation{Answer: string(b), Cold: time.Since(start)}
			inv.MaxRSS = childRSS(cmd.Process.Pid, filepath.Base(bootstrap))
			stop()
			inv.Logs = logs.String()
			return inv, nil
		}
		if ctx.Err() != nil {
			stop()
			return Invocation{}, fmt.Errorf("the emulator never answered: %w\n%s", err, logs.String())
		}
		time.Sleep(2 * time.Millisecond)
	}
}

// childRSS reads VmHWM of the emulator's child named name.
func childRSS(parent int, name string) int64 {
	tasks, _ := filepath.Glob(fmt.Sprintf("/proc/%d/task/*/children", parent))
	for _, t := range tasks {
		b, _ := os.ReadFile(t)
		for _, pid := range strings.Fields(string(b)) {
			comm, _ := os.ReadFile("/proc/" + pid + "/comm")
			if strings.TrimSpace(string(comm)) != name {
				continue
			}
			status, _ := os.ReadFile("/proc/" + pid + "/status")
			for _, line := range strings.Split(string(status), "\n") {
				if f := strings.Fields(line); len(f) >= 2 && f[0] == "VmHWM:" {
					kb, _ := strconv.ParseInt(f[1], 10, 64)
					return kb * 1024
				}
			}
		}
	}
	return 0
}

func freeAddr() (string, string, error) {
	var addrs []string
	for range 2 {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return "", "", err
		}
		addrs = append(addrs, ln.Addr().String())
		ln.Close()
	}
	return addrs[0], addrs[1], nil
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}
