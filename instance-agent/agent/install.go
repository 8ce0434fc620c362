package agent

import (
	"context"
	"fmt"
	"path/filepath"
	"time"

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
// touches no disk, so it runs in an image build as well as in user data; with now it
// also starts the unit (without waiting for it), when systemd runs.
func (a *Agent) Install(ctx context.Context, o contract.AgentOptions, now bool) (*contract.Report, error) {
	start := a.Now()
	r := &run{Agent: a, ctx: ctx, o: o,
		rep: &contract.Report{Command: "install", AgentVersion: a.Version, Devices: []contract.Device{}, Steps: []contract.Step{}, StartedAt: start.UTC().Format(time.RFC3339)}}
	err := r.install(now)
	r.rep.Seconds = seconds(a.Now().Sub(start))
	code := ExitCodeOf(err)
	r.rep.ExitCode, r.rep.Result = int(code), code.String()
	if err != nil {
		r.rep.Error = err.Error()
	}
	for _, s := range r.rep.Steps {
		r.rep.Changed = r.rep.Changed || s.Changed
	}
	return r.rep, err
}

func (r *run) install(now bool) error {
	r.o.Boot = true
	if err := r.o.Validate(); err != nil {
		return err
	}
	release, err := lock.Acquire(r.ctx, filepath.Join(r.Root, contract.LockPath), r.Wait, r.Progress)
	if err != nil {
		return err
	}
	defer release()
	argv := append([]string{contract.AgentPath, "apply"}, r.o.Args()...)
	argv = append(argv, fmt.Sprintf("--%s=%s", contract.FlagRetryFor, contract.BootRetryFor))
	start := r.Now()
	changed, err := r.installUnit(bootunit.Unit{Exec: argv, RequiredBy: r.o.RequiredBy})
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
	if !now {
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
