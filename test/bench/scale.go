package bench

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/storecrypt/storecrypt/instance-agent/filesystem"
	"github.com/storecrypt/storecrypt/internal/contract"
	"github.com/storecrypt/storecrypt/test/emu"
	"github.com/storecrypt/storecrypt/test/testbed"
	"github.com/storecrypt/storecrypt/test/vm"
)

// ScaleResult is the agent's time to a mounted volume on one shape of instance store, and
// what each command it ran took and wrote to the disks.
type ScaleResult struct {
	Filesystem string      `json:"filesystem"`
	Disks      int         `json:"disks"`
	DiskMiB    int         `json:"disk_mib"` // each
	Seconds    float64     `json:"seconds"`  // apply, process start to exit
	Steps      []StepWrite `json:"steps"`
	Native     *Native     `json:"native,omitempty"`
	Nitro      *Nitro      `json:"nitro,omitempty"`
}

// StepWrite is one command of the agent's run: its seconds and the bytes the NVMe disks
// took while it ran.
type StepWrite struct {
	Command string  `json:"command"`
	Seconds float64 `json:"seconds"`
	Bytes   int64   `json:"bytes_written"`
}

// I3en24xlarge is an i3en.24xlarge's instance store: 8 disks of 7,500 GB.
var I3en24xlarge = Shape{Disks: 8, DiskMiB: 7_500_000_000_000 >> 20}

// Shape is a number of disks and their size.
type Shape struct{ Disks, DiskMiB int }

// traced wraps each tool the agent runs in a shell function's stead: a script in front of
// it on PATH that logs the command, its seconds and the sectors the NVMe disks wrote
// meanwhile (/sys/block/*/stat, field 7), one tab-separated line each.
const traced = `set -e
mkdir -p /tmp/trace
for t in cryptsetup mdadm mkfs.ext4 mkfs.xfs mount blkid; do
  real=$(command -v $t)
  cat > /tmp/trace/$t <<EOF
#!/bin/sh
w() { cat /sys/block/nvme*n1/stat | awk '{s += \$7} END {print s}'; }
t0=\$(cut -d' ' -f1 /proc/uptime); s0=\$(w)
rc=0; $real "\$@" || rc=\$?
t1=\$(cut -d' ' -f1 /proc/uptime); s1=\$(w)
printf '%s\t%s\t%s\n' "$t \$1" "\$(awk "BEGIN {print \$t1 - \$t0}")" "\$((s1 - s0))" >> /tmp/trace.log
exit \$rc
EOF
  chmod +x /tmp/trace/$t
done
: > /tmp/trace.log
t0=$(cut -d' ' -f1 /proc/uptime)
PATH=/tmp/trace:$PATH storecrypt-agent apply "$@" >/dev/null
t1=$(cut -d' ' -f1 /proc/uptime)
echo "total	$(awk "BEGIN {print $t1 - $t0}")	0"
cat /tmp/trace.log`

// scaleGuestMiB holds the largest shape's xfs in the guest's memory for guestMkfs: its
// 2 GiB log.
const scaleGuestMiB = 4096

// Scale times the agent's apply on each shape and filesystem, on blank disks, with the
// bytes each of its commands wrote; then its make and mount natively, and from both the
// estimate on Nitro hardware.
func Scale(ctx context.Context, dir, agent string, shapes []Shape) ([]ScaleResult, error) {
	aes, err := AESBytesPerSecond(ctx)
	if err != nil {
		return nil, err
	}
	mem, err := inMemory()
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(mem)
	var out []ScaleResult
	for _, s := range shapes {
		sub := filepath.Join(dir, fmt.Sprintf("scale-%dx%d", s.Disks, s.DiskMiB))
		if err := os.MkdirAll(sub, 0o755); err != nil {
			return nil, err
		}
		tb, err := testbed.New(ctx, sub, testbed.Options{Disks: s.Disks, SizeMB: s.DiskMiB, Agent: agent, MemoryMB: scaleGuestMiB})
		if err != nil {
			return nil, err
		}
		first := len(out)
		for i, fs := range []string{contract.FilesystemExt4, contract.FilesystemXFS} {
			boot := tb.Boot
			if i > 0 {
				boot = tb.StopStart // blank disks again
			}
			if err := boot(ctx); err != nil {
				tb.Close()
				return nil, err
			}
			r, err := scaleOnce(ctx, tb, fs)
			if err != nil {
				tb.Close()
				return nil, fmt.Errorf("%d × %d MiB, %s: %w", s.Disks, s.DiskMiB, fs, err)
			}
			r.Disks, r.DiskMiB = s.Disks, s.DiskMiB
			if r.Native, err = plainMkfs(ctx, tb, fs); err != nil {
				tb.Close()
				return nil, fmt.Errorf("%d × %d MiB, %s in memory: %w", s.Disks, s.DiskMiB, fs, err)
			}
			out = append(out, r)
		}
		tb.Close()
		// After the guest, so that the emulator does not share the CPU with them.
		for i := first; i < len(out); i++ {
			if err := MeasureNative(ctx, mem, out[i].Filesystem, out[i].Native); err != nil {
				return nil, fmt.Errorf("%d × %d MiB, %s natively: %w", s.Disks, s.DiskMiB, out[i].Filesystem, err)
			}
		}
	}
	natives := make([]*Native, len(out))
	for i := range out {
		natives[i] = out[i].Native
	}
	pf, err := processFactor(natives)
	if err != nil {
		return nil, err
	}
	fixed := fixedSeconds(out)
	for i := range out {
		e, err := estimate(out[i], *out[i].Native, pf, fixed, aes)
		if err != nil {
			return nil, err
		}
		out[i].Nitro = &e
	}
	return out, nil
}

// plainMkfs runs guestMkfs with the agent's command line for fs.
func plainMkfs(ctx context.Context, tb *testbed.Testbed, fs string) (*Native, error) {
	mkfs, err := filesystem.MakeCommand(fs, "/tmp/plain/"+plainFile, contract.VolumeLabel, false)
	if err != nil {
		return nil, err
	}
	res, err := tb.Guest.Run(ctx, append([]string{"sh", "-c", guestMkfs, "sh", strconv.Itoa(versionRuns), mkfs.Name}, mkfs.Args...), nil)
	if err != nil {
		return nil, err
	}
	if res.Code != 0 {
		return nil, fmt.Errorf("exited %d: %s", res.Code, res.Stderr)
	}
	var n Native
	if _, err := fmt.Sscan(res.Stdout, &n.VolumeBytes, &n.GuestMkfs, &n.GuestVersion); err != nil || n.VolumeBytes <= 0 || n.GuestMkfs <= 0 || n.GuestVersion <= 0 {
		return nil, fmt.Errorf("printed %q", res.Stdout)
	}
	return &n, nil
}

func scaleOnce(ctx context.Context, tb *testbed.Testbed, fs string) (ScaleResult, error) {
	args := append(tb.KMSArgs(), "--filesystem", fs, "--mount-point", "/mnt/scale")
	res, err := tb.Guest.Exec(ctx, vm.Cmd{Argv: append([]string{"sh", "-c", traced, "sh"}, args...), Env: emu.Env()})
	if err != nil {
		return ScaleResult{}, err
	}
	if res.Code != 0 {
		return ScaleResult{}, fmt.Errorf("apply exited %d: %s", res.Code, res.Stderr)
	}
	r := ScaleResult{Filesystem: fs}
	for _, line := range strings.Split(strings.TrimSpace(res.Stdout), "\n") {
		f := strings.Split(line, "\t")
		if len(f) != 3 {
			return ScaleResult{}, fmt.Errorf("trace line %q", line)
		}
		secs, err1 := strconv.ParseFloat(f[1], 64)
		sectors, err2 := strconv.ParseInt(f[2], 10, 64)
		if err1 != nil || err2 != nil {
			return ScaleResult{}, fmt.Errorf("trace line %q", line)
		}
		if f[0] == "total" {
			r.Seconds = secs
			continue
		}
		r.Steps = append(r.Steps, StepWrite{Command: f[0], Seconds: secs, Bytes: sectors * 512})
	}
	if r.Seconds == 0 || len(r.Steps) == 0 {
		return ScaleResult{}, fmt.Errorf("no trace in %q", res.Stdout)
	}
	return r, nil
}
