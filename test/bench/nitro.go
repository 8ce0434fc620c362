package bench

import (
	"context"
	"errors"
	"fmt"
	"math"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/storecrypt/storecrypt/instance-agent/filesystem"
	"github.com/storecrypt/storecrypt/instance-agent/luks"
	"github.com/storecrypt/storecrypt/instance-agent/sysexec"
)

// Native is the run's filesystem made and mounted on this host's own CPU, with the agent's
// own command lines (filesystem.MakeCommand, MountCommand), on a sparse file of the
// encrypted volume's size in memory (tmpfs), mounted through a loop device; and the same
// make in the guest on the same kind of file in its memory. Neither side has dm-crypt or
// disks in it, so guest ÷ native is the emulator's factor for the filesystem's per-group
// CPU work alone.
type Native struct {
	VolumeBytes int64   `json:"volume_bytes"`
	Mkfs        float64 `json:"mkfs_seconds"`
	GuestMkfs   float64 `json:"guest_mkfs_seconds"`
	Mount       float64 `json:"mount_seconds"`
	// Version and GuestVersion are `cryptsetup --version` here and in the guest, the mean
	// of versionRuns each timed the same way: a process's start and exit, whose ratio is
	// the factor for the run's other commands and the agent's own time.
	Version      float64 `json:"version_seconds"`
	GuestVersion float64 `json:"guest_version_seconds"`
}

// versionRuns is how many `cryptsetup --version` each side's figure is the mean of: the
// guest's clock (/proc/uptime) ticks in hundredths.
const versionRuns = 20

// Nitro is the estimate of a traced run's time on Nitro hardware, and what it rests on.
type Nitro struct {
	Seconds       float64 `json:"seconds"`
	MkfsFactor    float64 `json:"mkfs_factor"`         // guest ÷ native, the same mkfs on memory
	ProcessFactor float64 `json:"process_factor"`      // guest ÷ native, cryptsetup --version: processFactor
	FixedSeconds  float64 `json:"fixed_guest_seconds"` // fixedSeconds
	// WriteBytesPerSecond is what each byte the run writes costs there: the slower of
	// AES-XTS on one core of this host (dm-crypt's cipher, measured) and the instance
	// store's documented write rate (nvmeWriteBytesPerSecond).
	WriteBytesPerSecond float64 `json:"write_bytes_per_second"`
}

// nvmeWriteBytesPerSecond is the instance store's write rate from AWS's one published
// figure for it: 1.4 million write IOPS of 4,096 bytes on an i3.16xlarge (EC2 User Guide,
// "Storage optimized instances", SSD I/O performance). EC2 publishes no bandwidth for the
// i3en.24xlarge the scale shape copies; its IOPS are higher, so this is the cautious side.
const nvmeWriteBytesPerSecond = 1_400_000 * 4096

// processFactor is the median of the runs' guest ÷ native `cryptsetup --version`: the
// emulator's factor is the machine's, not a shape's, and one factor for every run keeps
// a few milliseconds' noise from moving one shape's estimate against another's.
func processFactor(ns []*Native) (float64, error) {
	var fs []float64
	for _, n := range ns {
		if n == nil || n.GuestVersion <= 0 || n.Version <= 0 {
			return 0, fmt.Errorf("process factor from %+v: a figure is missing", n)
		}
		fs = append(fs, n.GuestVersion/n.Version)
	}
	if len(fs) == 0 {
		return 0, errors.New("process factor from no runs")
	}
	slices.Sort(fs)
	if len(fs)%2 == 1 {
		return fs[len(fs)/2], nil
	}
	return (fs[len(fs)/2-1] + fs[len(fs)/2]) / 2, nil
}

// rest is the run's guest seconds outside mkfs and mount: the probes, the key, the header,
// the array and the agent's own work, some of them concurrent (so not a sum of steps),
// none growing with the disks' size.
func (s ScaleResult) rest() float64 {
	r := s.Seconds
	for _, st := range s.Steps {
		if strings.HasPrefix(st.Command, filesystem.Tool(s.Filesystem)) || st.Command == "mount -t" {
			r -= st.Seconds
		}
	}
	return r
}

// fixedSeconds is the least rest of the runs: it does not grow with size, and the least
// seen keeps one run's slow start from shrinking the ratio of the others to it.
func fixedSeconds(runs []ScaleResult) float64 {
	f := math.Inf(1)
	for _, s := range runs {
		f = min(f, s.rest())
	}
	return f
}

// estimate is the run on Nitro: mkfs and mount take their native seconds, the rest the
// fixed guest seconds over the process factor pf, and every byte written costs
// 1/WriteBytesPerSecond on top. The trace's own processes (traced) count in the rest,
// so the estimate errs long.
func estimate(s ScaleResult, n Native, pf, fixed, aes float64) (Nitro, error) {
	if pf <= 0 || fixed <= 0 || n.Mkfs <= 0 || n.Mount <= 0 || aes <= 0 {
		return Nitro{}, fmt.Errorf("estimate from %+v and %+v: a figure is missing", s, n)
	}
	e := Nitro{
		MkfsFactor:          n.GuestMkfs / n.Mkfs,
		ProcessFactor:       pf,
		FixedSeconds:        fixed,
		WriteBytesPerSecond: min(aes, nvmeWriteBytesPerSecond),
	}
	e.Seconds = fixed/pf + n.Mkfs + n.Mount
	for _, st := range s.Steps {
		e.Seconds += float64(st.Bytes) / e.WriteBytesPerSecond
	}
	return e, nil
}

// guestMkfs makes fs on a sparse file of the mounted volume's size in the guest's memory
// and prints the size, the seconds, and the seconds of a `cryptsetup --version` (the mean
// of its first argument's count).
const guestMkfs = `set -e
runs=$1; shift
dev=$(awk '$2 == "/mnt/scale" {print $1}' /proc/mounts)
size=$(blockdev --getsize64 "$dev")
mkdir -p /tmp/plain
mount -t tmpfs -o size=100% tmpfs /tmp/plain
truncate -s "$size" /tmp/plain/volume
t0=$(cut -d' ' -f1 /proc/uptime)
"$@" >/dev/null
t1=$(cut -d' ' -f1 /proc/uptime)
umount /tmp/plain
i=0; while [ $i -lt $runs ]; do cryptsetup --version >/dev/null; i=$((i + 1)); done
t2=$(cut -d' ' -f1 /proc/uptime)
echo "$size $(awk "BEGIN {print $t1 - $t0}") $(awk "BEGIN {print ($t2 - $t1) / $runs}")"`

// plainFile is where guestMkfs and MeasureNative put the volume's stand-in.
const plainFile = "volume"

var errNotRoot = errors.New("the native make and mount need root (a loop device)")

// MeasureNative runs the make and mount natively on a volume of n.VolumeBytes, in dir,
// which must be in memory (tmpfs) for the figure to be CPU work alone. It needs root, for
// the loop device.
func MeasureNative(ctx context.Context, dir, fs string, n *Native) error {
	if os.Geteuid() != 0 {
		return errNotRoot
	}
	c := Choice{Filesystem: fs, VolumeBytes: n.VolumeBytes}
	if err := c.measure(ctx, dir); err != nil {
		return err
	}
	n.Mkfs, n.Mount = c.Mkfs, c.Mount
	for range versionRuns {
		v, err := timed(ctx, sysexec.Command{Name: "cryptsetup", Args: []string{"--version"}})
		if err != nil {
			return err
		}
		n.Version += v / versionRuns
	}
	return nil
}

// AESBytesPerSecond is dm-crypt's cipher (luks.Cipher, luks.KeySizeBits) on one core of
// this host, 4 KiB at a time as a 4K-sector volume encrypts, by openssl's own benchmark.
func AESBytesPerSecond(ctx context.Context) (float64, error) {
	if luks.Cipher != "aes-xts-plain64" || luks.KeySizeBits != 512 {
		return 0, fmt.Errorf("the benchmark measures aes-256-xts, the agent formats with %s/%d", luks.Cipher, luks.KeySizeBits)
	}
	out, err := output(ctx, "openssl", "speed", "-mr", "-evp", "aes-256-xts", "-bytes", "4096", "-seconds", "1")
	if err != nil {
		return 0, err
	}
	for _, line := range strings.Split(out, "\n") {
		f := strings.Split(line, ":")
		if len(f) == 4 && f[0] == "+F" {
			return strconv.ParseFloat(f[3], 64)
		}
	}
	return 0, fmt.Errorf("openssl speed printed no rate: %q", out)
}

// timed runs c as the agent runs its commands (sysexec.OS) and returns its seconds.
func timed(ctx context.Context, c sysexec.Command) (float64, error) {
	t0 := time.Now()
	if _, err := output(ctx, c.Name, c.Args...); err != nil {
		return 0, err
	}
	return time.Since(t0).Seconds(), nil
}

// output is the trimmed standard output of name args, run as the agent runs its commands.
func output(ctx context.Context, name string, args ...string) (string, error) {
	out, err := sysexec.OS{}.Run(ctx, sysexec.Command{Name: name, Args: args})
	return strings.TrimSpace(string(out)), err
}
