package bench

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/storecrypt/storecrypt/internal/contract"
	"github.com/storecrypt/storecrypt/test/emu"
	"github.com/storecrypt/storecrypt/test/testbed"
	"github.com/storecrypt/storecrypt/test/vm"
)

// MountResult is the time from blank disk to mounted, encrypted filesystem.
type MountResult struct {
	Variant string  `json:"variant"` // agent, recipe, floor
	SizeMiB int     `json:"size_mib"`
	Seconds float64 `json:"seconds"`
}

// AgentMemory is the agent's peak resident memory during one apply.
type AgentMemory struct {
	SizeMiB int   `json:"size_mib"`
	PeakRSS int64 `json:"peak_rss_bytes"`
}

// passphrase stands for the recipe's shared secret; the recipe's S3 copy and KMS decrypt
// are left out of its time, which only flatters it.
const passphrase = "benchmark-passphrase"

// recipe is the seed recipe's own commands in order, including its zero fill.
const recipe = `set -e
echo "$PASS" | cryptsetup -y luksFormat /dev/nvme1n1 2>/dev/null
echo "$PASS" | cryptsetup luksOpen /dev/nvme1n1 recipe
dd if=/dev/zero of=/dev/mapper/recipe bs=1M 2>/dev/null || true
mke2fs -q -j -O dir_index /dev/mapper/recipe
mkdir -p /mnt/recipe && mount /dev/mapper/recipe /mnt/recipe`

// floor is what a careful operator would type: a cheap PBKDF (the key is random), 4K
// sectors, the workqueue flags, lazy init, no zero fill. No agent around it.
const floor = `set -e
printf %s "$PASS" | cryptsetup luksFormat --batch-mode --type luks2 --pbkdf pbkdf2 --pbkdf-force-iterations 1000 --sector-size 4096 --key-file - /dev/nvme2n1
printf %s "$PASS" | cryptsetup open --key-file - --perf-no_read_workqueue --perf-no_write_workqueue --allow-discards /dev/nvme2n1 floor
mkfs.ext4 -q -E lazy_itable_init=1,lazy_journal_init=1,nodiscard /dev/mapper/floor
mkdir -p /mnt/floor && mount -o noatime /dev/mapper/floor /mnt/floor`

// peakRSS runs the agent on the fourth disk and samples its VmHWM until it exits.
const peakRSS = `storecrypt-agent apply "$@" >/dev/null 2>&1 & p=$!
m=0
while kill -0 $p 2>/dev/null; do
  v=$(awk '/^VmHWM/{print $2}' /proc/$p/status 2>/dev/null)
  [ -n "$v" ] && m=$v
  usleep 20000
done
wait $p || exit
echo $m`

// Mount boots one guest per size with four blank disks and times the agent, the recipe
// and the floor on one disk each; a fourth run measures the agent's peak memory.
func Mount(ctx context.Context, dir, agent string, sizesMiB []int) ([]MountResult, []AgentMemory, error) {
	var results []MountResult
	var mems []AgentMemory
	for _, size := range sizesMiB {
		sub := filepath.Join(dir, fmt.Sprintf("mount-%d", size))
		if err := os.MkdirAll(sub, 0o755); err != nil {
			return nil, nil, err
		}
		tb, err := testbed.New(ctx, sub, testbed.Options{Disks: 4, SizeMB: size, Agent: agent})
		if err != nil {
			return nil, nil, err
		}
		r, m, err := mountOnce(ctx, tb, size)
		tb.Close()
		if err != nil {
			return nil, nil, fmt.Errorf("%d MiB: %w", size, err)
		}
		results = append(results, r...)
		mems = append(mems, m)
	}
	return results, mems, nil
}

func mountOnce(ctx context.Context, tb *testbed.Testbed, size int) ([]MountResult, AgentMemory, error) {
	if err := tb.Boot(ctx); err != nil {
		return nil, AgentMemory{}, err
	}
	agentArgs := func(dev, mp string) []string {
		return append(tb.KMSArgs(), "--devices", dev, "--mount-point", mp)
	}
	runs := []struct {
		variant string
		cmd     vm.Cmd
	}{
		{"agent", vm.Cmd{Argv: append([]string{"storecrypt-agent", "apply"}, agentArgs("/dev/nvme0n1", "/mnt/agent")...)}},
		{"recipe", vm.Cmd{Argv: []string{"sh", "-c", recipe}, Env: []string{"PASS=" + passphrase}}},
		{"floor", vm.Cmd{Argv: []string{"sh", "-c", floor}, Env: []string{"PASS=" + passphrase}}},
	}
	var out []MountResult
	for _, r := range runs {
		r.cmd.Env = append(r.cmd.Env, emu.Env()...)
		start := time.Now()
		res, err := tb.Guest.Exec(ctx, r.cmd)
		d := time.Since(start)
		if err != nil {
			return nil, AgentMemory{}, err
		}
		if res.Code != 0 {
			return nil, AgentMemory{}, fmt.Errorf("%s exited %d: %s", r.variant, res.Code, res.Stderr)
		}
		out = append(out, MountResult{Variant: r.variant, SizeMiB: size, Seconds: d.Seconds()})
	}
	// The first agent's volume holds the mapping name every apply uses; without closing it
	// the measured apply fails at its open, and its memory is a failed run's.
	closed, err := tb.Guest.Exec(ctx, vm.Cmd{Argv: []string{"sh", "-c", "umount /mnt/agent && cryptsetup close " + contract.MapperName}})
	if err != nil {
		return nil, AgentMemory{}, fmt.Errorf("closing the agent's volume: %w", err)
	}
	if closed.Code != 0 {
		return nil, AgentMemory{}, fmt.Errorf("closing the agent's volume: exit %d: %s", closed.Code, closed.Stderr)
	}
	mem, err := tb.Guest.Exec(ctx, vm.Cmd{Argv: append([]string{"sh", "-c", peakRSS, "sh"}, agentArgs("/dev/nvme3n1", "/mnt/memory")...), Env: emu.Env()})
	if err != nil {
		return nil, AgentMemory{}, fmt.Errorf("measuring the agent's memory: %w", err)
	}
	if mem.Code != 0 {
		return nil, AgentMemory{}, fmt.Errorf("measuring the agent's memory: exit %d: %s", mem.Code, mem.Stderr)
	}
	kb, err := strconv.ParseInt(strings.TrimSpace(mem.Stdout), 10, 64)
	if err != nil {
		return nil, AgentMemory{}, fmt.Errorf("peak memory %q: %w", mem.Stdout, err)
	}
	return out, AgentMemory{SizeMiB: size, PeakRSS: kb * 1024}, nil
}
