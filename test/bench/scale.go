package bench

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"

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

// Scale times the agent's apply on each shape and filesystem, on blank disks, with the
// bytes each of its commands wrote.
func Scale(ctx context.Context, dir, agent string, shapes []Shape) ([]ScaleResult, error) {
	var out []ScaleResult
	for _, s := range shapes {
		sub := filepath.Join(dir, fmt.Sprintf("scale-%dx%d", s.Disks, s.DiskMiB))
		if err := os.MkdirAll(sub, 0o755); err != nil {
			return nil, err
		}
		tb, err := testbed.New(ctx, sub, testbed.Options{Disks: s.Disks, SizeMB: s.DiskMiB, Agent: agent})
		if err != nil {
			return nil, err
		}
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
			out = append(out, r)
		}
		tb.Close()
	}
	return out, nil
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
