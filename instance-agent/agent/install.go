package agent

import (
	"context"
	"fmt"
	"path/filepath"

	"github.com/storecrypt/storecrypt/instance-agent/bootunit"
	"github.com/storecrypt/storecrypt/instance-agent/lock"
	"github.com/storecrypt/storecrypt/instance-agent/plan"
	"github.com/storecrypt/storecrypt/instance-agent/sysexec"
	"github.com/storecrypt/storecrypt/internal/contract"
)

// Install puts the boot-time mode in place: the agent at contract.AgentPath and a unit
// that runs apply at every boot, ordered after the network and before the units of
// o.RequiredBy, so the volume is provisioned (or reopened) and the directories of
// o.BindDirs are on it before a container runtime or database writes anything. It
// touches no disk, so it runs in an image build as well as in user data; with
// a.StartUnit it also starts the unit (without waiting for it), when systemd runs.
func (a *Agent) Install(ctx context.Context, o contract.AgentOptions) (*contract.Report, error) {
	return a.execute(ctx, modeInstall, o)
}

func (r *run) install() error {
	r.o.Boot = true
	if err := r.o.Validate(); err != nil {
		return err
	}
	release, err := lock.Acquire(r.ctx, filepath.Join(r.Root, contract.LockPath), r.Wait, r.Progress)
	if err != nil {
		return err
	}
	defer release()
	start := r.Now()
	changed, err := r.installUnit(bootunit.Unit{Exec: bootunit.ApplyAtBoot(r.o), RequiredBy: r.o.RequiredBy})
	if err != nil {
		return err
	}
	action := plan.InstallAction(r.o.RequiredBy) + "; it provisions or reopens the volume at every boot"
	if !changed {
		action = contract.UnitName + " is up to date"
	}
	r.record("boot-unit", action, changed, start)
	r.rep.Layout = &contract.Layout{MountPoint: r.o.MountPoint, KeySource: r.o.KeySource, KeyID: r.o.KMSKeyID, Secret: r.o.Secret,
		BootUnit: true, BootMode: true, BindDirs: r.o.BindDirs}
	if !r.StartUnit {
		return nil
	}
	if !r.systemdRuns() {
		r.note("systemd is not running: %s starts at the next boot", contract.UnitName)
		return nil
	}
	start = r.Now()
	if _, err := r.Run.Run(r.ctx, sysexec.Command{Name: "systemctl", Args: []string{"start", "--no-block", contract.UnitName}}); err != nil {
		return fmt.Errorf("starting %s: %w", contract.UnitName, err)
	}
	r.record("start", "start "+contract.UnitName+" (journalctl -u "+contract.UnitName+" shows its run)", true, start)
	return nil
}
