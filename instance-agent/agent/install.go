package agent

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/storecrypt/storecrypt/instance-agent/bind"
	"github.com/storecrypt/storecrypt/instance-agent/bootunit"
	"github.com/storecrypt/storecrypt/instance-agent/lock"
	"github.com/storecrypt/storecrypt/instance-agent/mountpoint"
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
	r.opts.Boot = true
	release, err := r.validLocked(r.opts.Validate)
	if err != nil {
		return err
	}
	defer release()
	start := r.Now()
	u := bootunit.Unit{Exec: bootunit.ApplyAtBoot(r.opts), RequiredBy: r.opts.RequiredBy}
	changed, err := r.installUnit(u)
	if err != nil {
		return err
	}
	action := u.InstallAction() + "; it provisions or reopens the volume at every boot"
	if !changed {
		action = contract.UnitName + " is up to date"
	}
	r.record("boot-unit", action, changed, start)
	r.rep.Layout = &contract.Layout{MountPoint: r.opts.MountPoint, KeySource: r.opts.KeySource, KeyID: r.opts.KMSKeyID, Secret: r.opts.Secret,
		BootUnit: true, BootMode: true, BindDirs: r.opts.BindDirs}
	if !r.StartUnit {
		return nil
	}
	if !r.systemdRuns() {
		r.note("systemd is not running: %s starts at the next boot", contract.UnitName)
		return nil
	}
	start = r.Now()
	if _, err := r.Exec.Run(r.ctx, sysexec.Command{Name: "systemctl", Args: []string{"start", "--no-block", contract.UnitName}}); err != nil {
		return fmt.Errorf("starting %s: %w", contract.UnitName, err)
	}
	r.record("start", "start "+contract.UnitName+" (journalctl -u "+contract.UnitName+" shows its run)", true, start)
	return nil
}

// Uninstall takes the boot-time pieces away: the boot unit with its links and drop-ins,
// and the seals on the mount point and the --bind-dirs directories, so the root disk's
// directories are ordinary again. It touches no disk, mapping, mount or file on the
// volume: the volume stays open and mounted until the next boot, and its data stays.
// What is already gone is fine, so it can run again.
func (a *Agent) Uninstall(ctx context.Context, o contract.AgentOptions) (*contract.Report, error) {
	return a.execute(ctx, modeUninstall, o)
}

// validLocked checks the options with validate, then takes the lock that serialises runs.
func (r *run) validLocked(validate func() error) (release func(), err error) {
	if err := validate(); err != nil {
		return nil, err
	}
	return lock.Acquire(r.ctx, filepath.Join(r.Root, contract.LockPath), r.Wait, r.Progress)
}

// rootView is where uninstall binds the root filesystem alone (mount --bind, not
// --rbind): there the mount point and the bound directories are the root disk's own
// directories, not what is mounted on them now.
const rootView = "/run/storecrypt/root"

func (r *run) uninstall() error {
	release, err := r.validLocked(r.opts.ValidateUnlock)
	if err != nil {
		return err
	}
	defer release()
	start := r.Now()
	changed, err := bootunit.Uninstall(r.Root)
	if err != nil {
		return err
	}
	if err := r.reloadSystemd(changed); err != nil {
		return err
	}
	action := "remove " + contract.UnitName + ", its links and drop-ins (the volume stays open and mounted until the next boot)"
	if !changed {
		action = contract.UnitName + " is not installed"
	}
	r.record("boot-unit", action, changed, start)
	return r.unsealAll(append([]string{r.opts.MountPoint}, r.opts.BindDirs...))
}

// unsealAll makes each of dirs (and all under it on the root disk) writable again, seen
// through rootView.
func (r *run) unsealAll(dirs []string) error {
	start := r.Now()
	view := filepath.Join(r.Root, rootView)
	if err := os.MkdirAll(view, 0o700); err != nil {
		return fmt.Errorf("creating %s: %w", rootView, err)
	}
	if _, err := r.Exec.Run(r.ctx, sysexec.Command{Name: "mount", Args: []string{"--bind", "/", rootView}}); err != nil {
		return fmt.Errorf("binding the root filesystem at %s: %w", rootView, err)
	}
	unseal := r.Unseal
	if unseal == nil {
		unseal = mountpoint.Mutable
	}
	var done []string
	var errs []error
	for _, d := range dirs {
		// A symlink in the path would lead the walk off the root disk: leave it.
		if exists, err := mountpoint.CheckPath(view, d); err != nil || !exists {
			errs = append(errs, err)
			continue
		}
		err := bind.SealTree(filepath.Join(view, d), unseal)
		if errors.Is(err, mountpoint.ErrUnsupported) || errors.Is(err, fs.ErrNotExist) {
			continue
		}
		errs = append(errs, err)
		if err == nil {
			done = append(done, d)
		}
	}
	if _, err := r.Exec.Run(r.ctx, sysexec.Command{Name: "umount", Args: []string{rootView}}); err != nil {
		errs = append(errs, fmt.Errorf("unmounting %s: %w", rootView, err))
	}
	if err := errors.Join(errs...); err != nil {
		return err
	}
	r.record("unseal", fmt.Sprintf("make %s writable again on the root disk", strings.Join(done, ", ")), len(done) > 0, start)
	return nil
}
