package bench

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/storecrypt/storecrypt/internal/contract"
	"github.com/storecrypt/storecrypt/test/testbed"
	"github.com/storecrypt/storecrypt/test/vm"
)

// BootResult is boot-time mode's figure: from the kernel's start to the encrypted volume
// mounted, on the first boot of an instance (blank disks), in the systemd guest.
type BootResult struct {
	Variant string `json:"variant"` // agent: storecrypt-unlock.service; bare: the same commands in a unit ordered alike
	SizeMiB int    `json:"size_mib"`
	Disks   int    `json:"disks"`
	// KernelToMounted is the unit's ActiveEnterTimestampMonotonic: seconds since the
	// kernel started.
	KernelToMounted float64 `json:"kernel_to_mounted_s"`
	// UnitSeconds is the unit's own run, from leaving inactive to active.
	UnitSeconds float64 `json:"unit_s"`
	// The figures above are the medians of these, one per boot: a unit's start time
	// varies by seconds between boots of the emulated guest.
	KernelToMountedRuns []float64 `json:"kernel_to_mounted_runs_s"`
	UnitRuns            []float64 `json:"unit_runs_s"`
}

// bareUnit provisions the same layout as the agent with the bare tools and a random key,
// ordered as the boot unit is (after the network): what an operator's own unit would do,
// without KMS, checks or records.
const bareUnit = `[Unit]
Description=bare commands at boot
Wants=network-online.target
After=network-online.target

[Service]
Type=oneshot
RemainAfterExit=yes
ExecStart=/bin/sh -c 'set -e; head -c 64 /dev/urandom > /run/bare.key; \
mdadm --create /dev/md/bare --run --level=0 --metadata=1.2 --raid-devices=2 /dev/nvme0n1 /dev/nvme1n1; \
cryptsetup luksFormat --batch-mode --type luks2 --pbkdf pbkdf2 --pbkdf-force-iterations 1000 --sector-size 4096 --key-file /run/bare.key /dev/md/bare; \
cryptsetup open --key-file /run/bare.key --perf-no_read_workqueue --perf-no_write_workqueue --allow-discards /dev/md/bare bare; \
mkfs.ext4 -q -E lazy_itable_init=1,lazy_journal_init=1,nodiscard /dev/mapper/bare; \
mkdir -p /mnt/bare && mount -o noatime /dev/mapper/bare /mnt/bare'

[Install]
WantedBy=multi-user.target
`

// Boot measures boot-time mode on two disks of sizeMiB, rounds times each way: the image
// has the agent installed (`storecrypt-agent install`) and the bare unit written, and
// each round boots the instance fresh (a stop/start: blank disks) once with the agent's
// unit enabled and once with the bare unit instead, reading the unit's timestamps.
// Alternating keeps a drift in the host's load from favouring either.
func Boot(ctx context.Context, dir, agent string, sizeMiB, rounds int) ([]BootResult, error) {
	sub := filepath.Join(dir, fmt.Sprintf("boot-%d", sizeMiB))
	if err := os.MkdirAll(sub, 0o755); err != nil {
		return nil, err
	}
	tb, err := testbed.New(ctx, sub, testbed.Options{Disks: 2, SizeMB: sizeMiB, Agent: agent, Systemd: true})
	if err != nil {
		return nil, err
	}
	defer tb.Close()
	if err := tb.Boot(ctx); err != nil {
		return nil, err
	}
	if err := tb.EmulatorsAtBoot(ctx); err != nil {
		return nil, err
	}
	if err := tb.WriteFile(ctx, "/etc/systemd/system/bare-mount.service", bareUnit); err != nil {
		return nil, err
	}
	r, _, err := tb.Agent(ctx, vm.Cmd{Argv: append([]string{"install"}, tb.KMSArgs()...)})
	if err != nil {
		return nil, err
	}
	if r.Code != 0 {
		return nil, fmt.Errorf("install: exit %d\n%s", r.Code, r.Stderr)
	}
	out := []BootResult{
		{Variant: "agent", SizeMiB: sizeMiB, Disks: 2},
		{Variant: "bare", SizeMiB: sizeMiB, Disks: 2},
	}
	units := []string{contract.UnitName, "bare-mount.service"}
	for range rounds {
		for i, unit := range units {
			if _, err := tb.Sh(ctx, "systemctl disable --quiet "+units[1-i]+" && systemctl enable --quiet "+unit); err != nil {
				return nil, err
			}
			if err := tb.StopStart(ctx); err != nil {
				return nil, err
			}
			toMounted, own, err := unitTimes(ctx, tb, unit)
			if err != nil {
				return nil, fmt.Errorf("%s: %w", out[i].Variant, err)
			}
			out[i].KernelToMountedRuns = append(out[i].KernelToMountedRuns, toMounted)
			out[i].UnitRuns = append(out[i].UnitRuns, own)
		}
	}
	for i := range out {
		out[i].KernelToMounted, out[i].UnitSeconds = median(out[i].KernelToMountedRuns), median(out[i].UnitRuns)
	}
	return out, nil
}

func median(xs []float64) float64 {
	s := slices.Sorted(slices.Values(xs))
	n := len(s)
	if n%2 == 1 {
		return s[n/2]
	}
	return (s[n/2-1] + s[n/2]) / 2
}

// unitTimes waits for unit to be active and reads its timestamps: seconds from the
// kernel's start to the unit active, and the unit's own run.
func unitTimes(ctx context.Context, tb *testbed.Testbed, unit string) (toActive, own float64, err error) {
	deadline := time.Now().Add(5 * time.Minute)
	for {
		state, _ := tb.Sh(ctx, "systemctl is-active "+unit+" || true")
		switch strings.TrimSpace(state) {
		case "active":
			t, err := tb.Monotonic(ctx, unit, "InactiveExitTimestampMonotonic", "ActiveEnterTimestampMonotonic")
			if err != nil {
				return 0, 0, err
			}
			enter, exit := t["ActiveEnterTimestampMonotonic"], t["InactiveExitTimestampMonotonic"]
			return enter.Seconds(), (enter - exit).Seconds(), nil
		case "failed":
			journal, _ := tb.Sh(ctx, "journalctl -b -u "+unit+" --no-pager | tail -20")
			return 0, 0, fmt.Errorf("%s failed:\n%s", unit, journal)
		}
		if time.Now().After(deadline) {
			return 0, 0, fmt.Errorf("%s not active after 5 minutes (%s)", unit, strings.TrimSpace(state))
		}
		time.Sleep(time.Second)
	}
}
