// Package testbed is one storecrypt test instance: disk images (NVMe instance store, an
// EBS stand-in full of data, a root volume that keeps the boot unit and state), the AWS
// emulators with a KMS key, the agent binary, and the QEMU guest that joins them. The
// real-kernel tests and `make demo` both drive it.
package testbed

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/storecrypt/storecrypt/internal/contract"
	"github.com/storecrypt/storecrypt/test/emu"
	"github.com/storecrypt/storecrypt/test/vm"
)

// GuestModel is the model string of QEMU's NVMe controller (QEMU 7.2 cannot set it), so the
// agent runs with --model GuestModel where EC2 would show "Amazon EC2 NVMe Instance Storage".
const GuestModel = "QEMU NVMe Ctrl"

// AgentEnv names a storecrypt-agent for linux/amd64 already built: `make test` builds
// bin/ once (make build) and every package that boots a guest takes the agent from there
// instead of linking its own.
const AgentEnv = "STORECRYPT_AGENT"

// Agent returns the agent for the guest: the one AgentEnv names, else one built into dir.
func Agent(dir string) (string, error) {
	if bin := os.Getenv(AgentEnv); bin != "" {
		if _, err := os.Stat(bin); err != nil {
			return "", fmt.Errorf("%s: %w", AgentEnv, err)
		}
		return bin, nil
	}
	return BuildAgent(dir)
}

// BuildAgent builds storecrypt-agent for the guest into dir.
func BuildAgent(dir string) (string, error) {
	bin := filepath.Join(dir, "storecrypt-agent")
	build := exec.Command("go", "build", "-trimpath", "-ldflags", "-s -w", "-o", bin, "github.com/storecrypt/storecrypt/instance-agent/cmd/storecrypt-agent")
	build.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS=linux", "GOARCH=amd64")
	if out, err := build.CombinedOutput(); err != nil {
		return "", fmt.Errorf("building the agent: %w\n%s", err, out)
	}
	return bin, nil
}

// Options shape a testbed.
type Options struct {
	Disks  int
	SizeMB int // per NVMe disk; 64 when zero
	Agent  string
	// InstanceID is what IMDS reports; the emulator's default when empty.
	InstanceID string
	// GuestTools are extra host programs for the guest image (fio for the benchmarks).
	GuestTools []string
	// Prepare fills NVMe disk i before the first boot; nil leaves it blank.
	Prepare func(i int, path string) error
	// Systemd boots a Debian root with systemd as init (vm.SystemdRoot) instead of the
	// busybox guest; reboots are then clean shutdowns.
	Systemd bool
	// MemoryMB is the guest's memory; vm.Config's default when zero.
	MemoryMB int
}

// Testbed is one instance under test.
type Testbed struct {
	Dir     string
	NVMe    []vm.Disk
	EBS     vm.Disk
	Root    vm.Disk
	Emu     *emu.Emulators
	Guest   *vm.Guest
	KeyARN  string
	agent   string
	tools   []string
	systemd bool
	memory  int
}

// New makes the disks, starts the emulators and creates the KMS key; Boot starts the guest.
func New(ctx context.Context, dir string, o Options) (*Testbed, error) {
	if o.SizeMB == 0 {
		o.SizeMB = 64
	}
	tb := &Testbed{Dir: dir, agent: o.Agent, tools: o.GuestTools, systemd: o.Systemd, memory: o.MemoryMB}
	for i := range o.Disks {
		d := vm.Disk{Path: filepath.Join(dir, fmt.Sprintf("nvme%d.img", i)), Serial: fmt.Sprintf("IS%d", i)}
		if err := sparse(d.Path, o.SizeMB); err != nil {
			return nil, err
		}
		if o.Prepare != nil {
			if err := o.Prepare(i, d.Path); err != nil {
				return nil, fmt.Errorf("preparing disk %d: %w", i, err)
			}
		}
		if err := warm(d.Path); err != nil {
			return nil, err
		}
		tb.NVMe = append(tb.NVMe, d)
	}
	tb.EBS = vm.Disk{Path: filepath.Join(dir, "ebs.img"), Serial: "ebs"}
	data := bytes.Repeat([]byte("EBS volume data that storecrypt must never touch\n"), 1<<14)
	if err := os.WriteFile(tb.EBS.Path, data, 0o644); err != nil {
		return nil, err
	}
	tb.Root = vm.Disk{Path: filepath.Join(dir, "root.img"), Serial: "root"}
	if err := makeRoot(ctx, tb.Root.Path, o.Systemd); err != nil {
		return nil, err
	}
	e, err := emu.New(filepath.Join(dir, "emu"), o.InstanceID)
	if err != nil {
		return nil, err
	}
	tb.Emu = e
	if tb.KeyARN, err = e.CreateKey(ctx); err != nil {
		tb.Close()
		return nil, err
	}
	return tb, nil
}

// makeRoot makes the root volume: an empty ext4 for the busybox guest, a copy of the
// Debian root for the systemd guest.
func makeRoot(ctx context.Context, path string, systemd bool) error {
	if !systemd {
		if err := sparse(path, 128); err != nil {
			return err
		}
		if out, err := exec.Command("mkfs.ext4", "-q", path).CombinedOutput(); err != nil {
			return fmt.Errorf("making the root volume: %w: %s", err, out)
		}
		return nil
	}
	img, err := vm.SystemdRoot(ctx)
	if err != nil {
		return err
	}
	if out, err := exec.Command("cp", "--sparse=always", img, path).CombinedOutput(); err != nil {
		return fmt.Errorf("copying the systemd root: %w: %s", err, out)
	}
	return nil
}

// warmLimit is the largest disk image warm reads: up to it, the agent's 4,096 evenly
// spread samples (probe.Samples) are at most 2 MiB apart, within the host's readahead.
const warmLimit = 8 << 30

// warm reads a disk image up to warmLimit once, so that the host's page cache holds its
// zeros before the guest starts. Without it, the agent's first strided reads of a small
// sparse image made QEMU's host fill its page cache with the whole image's zeros through
// readahead: 7 to 10 s of a first `plan` on 8 × 512 MiB (1.3 s warm), a cost of this
// harness that a trimmed NVMe namespace, which answers a deallocated block without
// touching flash, does not have. Beyond warmLimit the samples are farther apart than
// readahead reaches, and a first plan on 8 × 7.5 TB took 1.9 s unwarmed.
func warm(path string) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil || st.Size() > warmLimit {
		return err
	}
	if _, err := io.Copy(io.Discard, f); err != nil {
		return fmt.Errorf("warming %s: %w", path, err)
	}
	return nil
}

func sparse(path string, mb int) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	defer f.Close()
	return f.Truncate(int64(mb) << 20)
}

// Boot starts the guest (stopping a running one first) on the current disk images.
func (tb *Testbed) Boot(ctx context.Context) error {
	if tb.Guest != nil {
		tb.Guest.Close()
		tb.Guest = nil
	}
	g, err := vm.Start(ctx, vm.Config{
		NVMe:     tb.NVMe,
		Virtio:   []vm.Disk{tb.Root, tb.EBS},
		Forwards: tb.Emu.Forwards(),
		Files:    map[string]string{"/usr/local/bin/storecrypt-agent": tb.agent},
		Tools:    tb.tools,
		Systemd:  tb.systemd,
		MemoryMB: tb.memory,
	})
	if err != nil {
		return err
	}
	tb.Guest = g
	return nil
}

// Reboot restarts the guest on the same disks: the busybox guest syncs and stops, the
// systemd guest shuts down cleanly.
func (tb *Testbed) Reboot(ctx context.Context) error {
	if !tb.systemd {
		return tb.Guest.Reboot(ctx)
	}
	if err := tb.Guest.Shutdown(ctx); err != nil {
		return err
	}
	return tb.Guest.Restart(ctx)
}

// StopStart is an EC2 stop and start: a clean shutdown, then the instance store comes
// back blank while the root volume keeps what it had.
func (tb *Testbed) StopStart(ctx context.Context) error {
	if tb.systemd {
		if err := tb.Guest.Shutdown(ctx); err != nil {
			return err
		}
	} else if _, err := tb.Sh(ctx, "sync"); err != nil {
		return err
	}
	tb.Guest.Kill()
	for _, d := range tb.NVMe {
		st, err := os.Stat(d.Path)
		if err != nil {
			return err
		}
		if err := sparse(d.Path, int(st.Size()>>20)); err != nil {
			return err
		}
	}
	return tb.Boot(ctx)
}

// Agent runs storecrypt-agent in the guest with the emulators' endpoints and parses its
// report. An error means the run's fate is unknown; a non-zero exit is in the Result.
func (tb *Testbed) Agent(ctx context.Context, c vm.Cmd) (vm.Result, contract.Report, error) {
	c.Argv = append([]string{"storecrypt-agent"}, c.Argv...)
	c.Env = append(c.Env, emu.Env()...)
	r, err := tb.Guest.Exec(ctx, c)
	if err != nil {
		return r, contract.Report{}, fmt.Errorf("storecrypt-agent %v: %w\nstderr:\n%s", c.Argv[1:], err, r.Stderr)
	}
	var rep contract.Report
	if err := json.Unmarshal([]byte(r.Stdout), &rep); err != nil {
		return r, rep, fmt.Errorf("storecrypt-agent %v: stdout is not one JSON report: %w\n%s\nstderr:\n%s", c.Argv[1:], err, r.Stdout, r.Stderr)
	}
	return r, rep, nil
}

// EmulatorsAtBoot points the boot unit's agent at the emulators, as a VPC endpoint's
// DNS name would point it at KMS: a drop-in with the endpoints Env names.
func (tb *Testbed) EmulatorsAtBoot(ctx context.Context) error {
	return tb.WriteFile(ctx, "/etc/systemd/system/"+contract.UnitName+".d/emulators.conf", "[Service]\nEnvironment="+strings.Join(emu.Env(), " ")+"\n")
}

// WriteFile writes text to path in the guest, making its directory.
func (tb *Testbed) WriteFile(ctx context.Context, path, text string) error {
	r, err := tb.Guest.Exec(ctx, vm.Cmd{Argv: []string{"sh", "-c", `mkdir -p "$(dirname "$1")" && cat > "$1"`, "sh", path}, Stdin: []byte(text)})
	if err != nil {
		return fmt.Errorf("writing %s in the guest: %w", path, err)
	}
	if r.Code != 0 {
		return fmt.Errorf("writing %s in the guest: exit %d %s", path, r.Code, r.Stderr)
	}
	return nil
}

// Monotonic reads a unit's timestamp properties (ActiveEnterTimestampMonotonic, ...):
// the time since the kernel started.
func (tb *Testbed) Monotonic(ctx context.Context, unit string, props ...string) (map[string]time.Duration, error) {
	args := []string{"show", unit}
	for _, p := range props {
		args = append(args, "-p", p)
	}
	out, err := tb.Sh(ctx, "systemctl "+strings.Join(args, " "))
	if err != nil {
		return nil, err
	}
	times := map[string]time.Duration{}
	for _, l := range strings.Fields(out) {
		k, v, _ := strings.Cut(l, "=")
		us, err := strconv.ParseInt(v, 10, 64)
		if err != nil {
			return nil, fmt.Errorf("%s of %s: %w", l, unit, err)
		}
		times[k] = time.Duration(us) * time.Microsecond
	}
	return times, nil
}

// KMSArgs are the agent flags for the kms-datakey source with the testbed's key.
func (tb *Testbed) KMSArgs() []string {
	return []string{"--model", GuestModel, "--key-source", contract.KeySourceKMSDataKey, "--kms-key-id", tb.KeyARN}
}

// Sh runs a shell command in the guest; a non-zero exit is an error.
func (tb *Testbed) Sh(ctx context.Context, script string) (string, error) {
	r, err := tb.Guest.Run(ctx, []string{"sh", "-c", script}, nil)
	if err != nil {
		return "", fmt.Errorf("guest: %s: %w", script, err)
	}
	if r.Code != 0 {
		return r.Stdout, fmt.Errorf("guest: %s: exit %d\n%s%s", script, r.Code, r.Stdout, r.Stderr)
	}
	return r.Stdout, nil
}

// Checksums hashes the NVMe and EBS images on the host.
func (tb *Testbed) Checksums() (map[string]string, error) {
	sums := map[string]string{}
	for _, d := range append(append([]vm.Disk{}, tb.NVMe...), tb.EBS) {
		b, err := os.ReadFile(d.Path)
		if err != nil {
			return nil, err
		}
		h := sha256.Sum256(b)
		sums[filepath.Base(d.Path)] = hex.EncodeToString(h[:])
	}
	return sums, nil
}

// Close stops the guest and the emulators.
func (tb *Testbed) Close() {
	if tb.Guest != nil {
		tb.Guest.Close()
	}
	tb.Emu.Close()
}
