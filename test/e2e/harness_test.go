// Package e2e runs storecrypt-agent on a real Linux kernel: a QEMU guest with NVMe disks
// for instance store, a virtio disk for EBS that must come out untouched, a virtio root
// disk that keeps the boot unit and state across reboots, and the AWS emulators.
package e2e

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/storecrypt/storecrypt/internal/contract"
	"github.com/storecrypt/storecrypt/test/testbed"
	"github.com/storecrypt/storecrypt/test/vm"
)

const guestModel = testbed.GuestModel

var agentBinary string

func TestMain(m *testing.M) {
	if err := vm.Available(); err != nil {
		if os.Getenv("CI") != "" {
			fmt.Fprintf(os.Stderr, "real-kernel tests cannot run in CI: %v\n", err)
			os.Exit(1)
		}
		fmt.Fprintf(os.Stderr, "skipping the real-kernel tests: %v\n", err)
		os.Exit(0)
	}
	dir, err := os.MkdirTemp("", "storecrypt-e2e-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	if agentBinary, err = testbed.BuildAgent(dir); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// machine is a testbed with test-failing helpers.
type machine struct {
	*testbed.Testbed
	t *testing.T
}

type machineOpts struct {
	disks   int
	sizeMB  int
	prepare func(t *testing.T, i int, path string)
	systemd bool // boot Debian with systemd instead of the busybox guest
}

func newMachine(t *testing.T, o machineOpts) *machine {
	t.Helper()
	opts := testbed.Options{Disks: o.disks, SizeMB: o.sizeMB, Agent: agentBinary, Systemd: o.systemd}
	if o.prepare != nil {
		opts.Prepare = func(i int, path string) error { o.prepare(t, i, path); return nil }
	}
	tb, err := testbed.New(context.Background(), t.TempDir(), opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(tb.Close)
	tb.Emu.Models.FailOn(t) // the agent's KMS requests, as the emulator received them
	m := &machine{Testbed: tb, t: t}
	m.boot()
	return m
}

func ctxTimeout(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	t.Cleanup(cancel)
	return ctx
}

func (m *machine) boot() {
	m.t.Helper()
	if err := m.Boot(ctxTimeout(m.t)); err != nil {
		m.t.Fatal(err)
	}
	m.t.Logf("guest booted in %.1fs", m.Guest.Booted.Seconds())
}

func (m *machine) reboot() {
	m.t.Helper()
	if err := m.Reboot(ctxTimeout(m.t)); err != nil {
		m.t.Fatalf("reboot: %v", err)
	}
}

// powerCut kills the guest without a sync and boots it again.
func (m *machine) powerCut() {
	m.t.Helper()
	m.Guest.Kill()
	m.boot()
}

func (m *machine) stopStart() {
	m.t.Helper()
	if err := m.StopStart(ctxTimeout(m.t)); err != nil {
		m.t.Fatal(err)
	}
}

// agentResult is one agent run.
type agentResult struct {
	vm.Result
	Report contract.Report
}

func (m *machine) agent(args ...string) agentResult {
	m.t.Helper()
	r, rep, err := m.Agent(ctxTimeout(m.t), vm.Cmd{Argv: args})
	if err != nil {
		m.t.Fatal(err)
	}
	return agentResult{Result: r, Report: rep}
}

// must fails the test unless the run exited with want.
func (r agentResult) must(t *testing.T, want contract.ExitCode) agentResult {
	t.Helper()
	if r.Code != int(want) {
		t.Fatalf("exit %d (%s), want %d (%s)\nstdout:\n%s\nstderr:\n%s", r.Code, contract.ExitCode(r.Code), want, want, r.Stdout, r.Stderr)
	}
	if r.Report.ExitCode != r.Code {
		t.Fatalf("report exit_code %d, process exit %d", r.Report.ExitCode, r.Code)
	}
	return r
}

func (r agentResult) changedSteps() []string {
	var s []string
	for _, st := range r.Report.Steps {
		if st.Changed {
			s = append(s, st.Name)
		}
	}
	return s
}

// sh runs a shell command in the guest and fails the test unless it exits 0.
func (m *machine) sh(script string) string {
	m.t.Helper()
	out, err := m.Sh(ctxTimeout(m.t), script)
	if err != nil {
		m.t.Fatal(err)
	}
	return out
}

func (m *machine) checksums() map[string]string {
	m.t.Helper()
	sums, err := m.Checksums()
	if err != nil {
		m.t.Fatal(err)
	}
	return sums
}

func sameSums(t *testing.T, before, after map[string]string) {
	t.Helper()
	for name, sum := range before {
		if after[name] != sum {
			t.Errorf("%s changed: sha256 %s, want %s", name, after[name][:12], sum[:12])
		}
	}
}

func wantContains(t *testing.T, what, got string, wants ...string) {
	t.Helper()
	for _, w := range wants {
		if !strings.Contains(got, w) {
			t.Errorf("%s does not say %q:\n%s", what, w, got)
		}
	}
}

func run(t *testing.T, name string, args ...string) {
	t.Helper()
	if out, err := exec.Command(name, args...).CombinedOutput(); err != nil {
		t.Fatalf("%s %v: %v\n%s", name, args, err, out)
	}
}
