package bench

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
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

// Boot measures boot-time mode on two disks of sizeMiB: the image has the agent
// installed (`storecrypt-agent install`), the instance boots, and the unit's timestamps
// are read; then, after a stop/start, the same guest boots with the bare unit instead.
func Boot(ctx context.Context, dir, agent string, sizeMiB int) ([]BootResult, error) {
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
	var out []BootResult
	for _, variant := range []struct{ name, unit string }{{"agent", contract.UnitName}, {"bare", "bare-mount.service"}} {
		if variant.name == "bare" {
			if _, err := tb.Sh(ctx, "systemctl disable --quiet "+contract.UnitName+" && systemctl enable --quiet bare-mount.service"); err != nil {
				return nil, err
			}
		}
		// The first boot of an instance: blank disks.
		if err := tb.StopStart(ctx); err != nil {
			return nil, err
		}
		res, err := unitTimes(ctx, tb, variant.unit)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", variant.name, err)
		}
		res.Variant, res.SizeMiB, res.Disks = variant.name, sizeMiB, 2
		out = append(out, res)
	}
	return out, nil
}

// unitTimes waits for unit to be active and reads its timestamps.
func unitTimes(ctx context.Context, tb *testbed.Testbed, unit string) (BootResult, error) {
	deadline := time.Now().Add(5 * time.Minute)
	for {
		state, _ := tb.Sh(ctx, "systemctl is-active "+unit+" || true")
		switch strings.TrimSpace(state) {
		case "active":
			t, err := tb.Monotonic(ctx, unit, "InactiveExitTimestampMonotonic", "ActiveEnterTimestampMonotonic")
			if err != nil {
				return BootResult{}, err
			}
			enter, exit := t["ActiveEnterTimestampMonotonic"], t["InactiveExitTimestampMonotonic"]
			return BootResult{KernelToMounted: enter.Seconds(), UnitSeconds: (enter - exit).Seconds()}, nil
		case "failed":
			journal, _ := tb.Sh(ctx, "journalctl -b -u "+unit+" --no-pager | tail -20")
			return BootResult{}, fmt.Errorf("%s failed:\n%s", unit, journal)
		}
		if time.Now().After(deadline) {
			return BootResult{}, fmt.Errorf("%s not active after 5 minutes (%s)", unit, strings.TrimSpace(state))
		}
		time.Sleep(time.Second)
	}
}
