// Package e2e runs storecrypt-agent on a real Linux kernel: a QEMU guest with NVMe disks
// for instance store, a virtio disk for EBS that must come out untouched, a virtio root
// disk that keeps the boot unit and state across reboots, and the AWS emulators.
package e2e

import (
	"context"
	"fmt"
	"maps"
	"os"
	"os/exec"
	"strings"
	"sync"
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
	if agentBinary, err = testbed.Agent(dir); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	machines = dir
	start := time.Now()
	code := m.Run()
	spare.close()
	fmt.Println(guests.summary(time.Since(start)))
	os.RemoveAll(dir)
	os.Exit(code)
}

// machines holds the testbeds' files: a machine handed on outlives its test's TempDir.
var machines string

// machine is a testbed with test-failing helpers.
type machine struct {
	*testbed.Testbed
	t     *testing.T
	o     machineOpts
	boots int               // since the test took it
	sums  map[string]string // the disks when the test took it
}

type machineOpts struct {
	disks   int
	sizeMB  int
	prepare func(t *testing.T, i int, path string)
	systemd bool // boot Debian with systemd instead of the busybox guest
}

// sharable: a machine of this shape can pass from test to test; prepared disks and the
// systemd guest's first boot belong to one test.
func (o machineOpts) sharable() bool { return o.prepare == nil && !o.systemd }

// newMachine returns a booted guest on blank disks of the shape o asks for. Where the test
// before left such a machine as it found it (spare), the test takes that one instead of
// booting its own: a boot is most of what a scenario without reboots costs.
func newMachine(t *testing.T, o machineOpts) *machine {
	t.Helper()
	if m := spare.take(t, o); m != nil {
		m.watch(t)
		return m
	}
	opts := testbed.Options{Disks: o.disks, SizeMB: o.sizeMB, Agent: agentBinary, Systemd: o.systemd}
	if o.prepare != nil {
		opts.Prepare = func(i int, path string) error { o.prepare(t, i, path); return nil }
	}
	dir, err := os.MkdirTemp(machines, "machine-")
	if err != nil {
		t.Fatal(err)
	}
	tb, err := testbed.New(context.Background(), dir, opts)
	if err != nil {
		t.Fatal(err)
	}
	m := &machine{Testbed: tb, t: t, o: o}
	m.watch(t)
	m.boot()
	m.boots = 0
	if o.sharable() {
		m.sums = m.checksums()
	}
	return m
}

// watch has the test hand its machine on (or close it) at its end, and fail on any KMS
// request of the agent's that breaks the API model, as the emulator received it. The check
// is registered last so that it runs first: a test it fails closes its machine.
func (m *machine) watch(t *testing.T) {
	t.Cleanup(m.handOn)
	m.Emu.Models.FailOn(t)
}

// handOn, at the end of a test, keeps its machine for the next test when the test passed
// and left it as it took it: the same boot, the disks byte for byte as they were. Else
// the machine is closed.
func (m *machine) handOn() {
	if m.t.Failed() || !m.o.sharable() || m.boots > 0 || m.Guest == nil {
		m.close()
		return
	}
	sums, err := m.Checksums()
	if err != nil || !maps.Equal(sums, m.sums) {
		m.close()
		return
	}
	spare.close()
	spare.m = m
}

func (m *machine) close() {
	m.Close()
	os.RemoveAll(m.Dir)
}

// spare is the machine the last test handed on; one guest at a time runs on the host, so
// a test that cannot take it closes it before booting its own.
var spare spareMachine

type spareMachine struct{ m *machine }

func (s *spareMachine) close() {
	if s.m != nil {
		s.m.close()
		s.m = nil
	}
}

func (s *spareMachine) take(t *testing.T, o machineOpts) *machine {
	m := s.m
	s.m = nil
	if m == nil {
		return nil
	}
	if !o.sharable() || o.disks != m.o.disks || o.sizeMB != m.o.sizeMB {
		m.close()
		return nil
	}
	if _, err := m.Sh(ctxTimeout(t), "true"); err != nil {
		t.Logf("the machine handed on does not answer (%v); booting another", err)
		m.close()
		return nil
	}
	m.t = t
	guests.Lock()
	guests.handed++
	guests.Unlock()
	t.Log("took the booted machine the test before left as it found it")
	return m
}

func ctxTimeout(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	t.Cleanup(cancel)
	return ctx
}

// guests adds up what the package spends getting guests up, printed at its end so that a
// change to the harness or the guest can be weighed.
var guests bootLog

type bootLog struct {
	sync.Mutex
	boots  int
	up     time.Duration // boot, reboot, stop/start and power cut as the tests call them
	kernel time.Duration // of which QEMU's start to the first command (vm.Guest.Booted)
	handed int           // tests that took the machine the test before handed on
}

func (l *bootLog) summary(all time.Duration) string {
	l.Lock()
	defer l.Unlock()
	return fmt.Sprintf("e2e: %d guest boots took %.0fs (%.0fs of it QEMU's start to the first command) of the run's %.0fs; %d tests took the booted machine the test before handed on",
		l.boots, l.up.Seconds(), l.kernel.Seconds(), all.Seconds(), l.handed)
}

// timed runs one boot of m's guest and counts it.
func (m *machine) timed(boot func(context.Context) error) error {
	start := time.Now()
	err := boot(ctxTimeout(m.t))
	m.boots++
	guests.Lock()
	defer guests.Unlock()
	guests.boots++
	guests.up += time.Since(start)
	if err == nil {
		guests.kernel += m.Guest.Booted
	}
	return err
}

func (m *machine) boot() {
	m.t.Helper()
	if err := m.timed(m.Boot); err != nil {
		m.t.Fatal(err)
	}
	m.t.Logf("guest booted in %.1fs", m.Guest.Booted.Seconds())
}

func (m *machine) reboot() {
	m.t.Helper()
	if err := m.timed(m.Reboot); err != nil {
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
	if err := m.timed(m.StopStart); err != nil {
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
