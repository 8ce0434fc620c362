package agent

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"

	"github.com/storecrypt/storecrypt/instance-agent/bind"
	"github.com/storecrypt/storecrypt/instance-agent/discover"
	"github.com/storecrypt/storecrypt/instance-agent/keysource"
	"github.com/storecrypt/storecrypt/instance-agent/keytoken"
	"github.com/storecrypt/storecrypt/instance-agent/mountpoint"
	"github.com/storecrypt/storecrypt/instance-agent/plan"
	"github.com/storecrypt/storecrypt/instance-agent/probe"
	"github.com/storecrypt/storecrypt/instance-agent/raid"
	"github.com/storecrypt/storecrypt/instance-agent/sysexec"
	"github.com/storecrypt/storecrypt/internal/contract"
)

// executor runs a plan's steps and remembers, across rounds, what they did.
type executor struct {
	*run
	disks                   []discover.Disk
	key                     keysource.Key
	token                   *keytoken.Token // the key's token, once made or recovered
	opened, mounted, booted bool
	deferred                []string // directories of --bind-dirs left for the next boot
}

// layout is the plan's layout with what the steps did.
func (ex *executor) layout(l contract.Layout) *contract.Layout {
	if t := ex.token; t != nil {
		l.KeySource, l.KeyID, l.Secret, l.ProvisionedBy = t.KeySource, t.KeyID, t.Secret, t.ProvisionedBy
	}
	l.BindDirs = slices.DeleteFunc(slices.Clone(l.BindDirs), func(d string) bool { return slices.Contains(ex.deferred, d) })
	l.Open = l.Open || ex.opened
	l.Mounted = l.Mounted || ex.mounted
	l.BootUnit = ex.booted || l.BootUnit || ex.unitInstalled() && ex.mode != modeApply
	return &l
}

// execute runs the steps, in plan and status mode only saying what they would do. It
// reports whether a step asked for the facts to be read again, after updating f.
func (ex *executor) execute(p plan.Plan, f *plan.Facts) (bool, error) {
	// The mount point is checked before the first step: a run that would mount on a
	// symlink or over files refuses before it formats anything.
	if err := ex.check(p, f); err != nil {
		return false, err
	}
	// The boot unit's copy of the agent starts with the first step past the key.
	early := !ex.dry() && slices.ContainsFunc(p.Steps, func(s plan.Step) bool { return s.Kind == plan.InstallBoot })
	for _, s := range p.Steps {
		if ex.dry() {
			if s.Kind != plan.NewKey && s.Kind != plan.RecoverKey {
				ex.would(s)
			}
			continue
		}
		if early && s.Kind != plan.NewKey && s.Kind != plan.RecoverKey {
			ex.stageSelfEarly()
			early = false
		}
		if err := ex.step(s); err != nil {
			return false, err
		}
		if s.Replan {
			return true, ex.refresh(f, s)
		}
	}
	return false, nil
}

// check refuses, before the first step, a mount point or a directory to bind that is not
// safe: a run that would mount on a symlink or over files refuses before it formats.
func (ex *executor) check(p plan.Plan, f *plan.Facts) error {
	var errs []error
	for _, s := range p.Steps {
		switch s.Kind {
		case plan.Mount:
			errs = append(errs, mountpoint.Check(ex.Root, ex.opts.MountPoint))
		case plan.BindDir:
			for _, d := range f.Binds {
				errs = append(errs, bind.Check(ex.Root, d))
			}
		}
	}
	for _, err := range errs {
		var unsafe *mountpoint.UnsafeError
		if errors.As(err, &unsafe) {
			return &RefusedError{Device: unsafe.Dir, Reason: unsafe.Reason}
		} else if err != nil {
			return err
		}
	}
	return nil
}

func (ex *executor) would(s plan.Step) {
	ex.rep.Steps = append(ex.rep.Steps, contract.Step{Name: s.Name, Action: "would " + s.Action, Command: command(s)})
	fmt.Fprintf(ex.Progress, "storecrypt-agent: [%s] would %s\n", s.Name, s.Action)
}

// command is a step's command line as the report shows it; keys never appear in one.
func command(s plan.Step) string {
	if s.Cmd.Name == "" {
		return ""
	}
	return s.Cmd.String()
}

func (ex *executor) step(s plan.Step) error {
	switch s.Kind {
	case plan.NewKey:
		return ex.newKey(s)
	case plan.RecoverKey:
		return ex.recoverKey(s)
	case plan.InstallBoot:
		return ex.installBoot(s)
	case plan.UpdateAgent:
		return ex.updateBootAgent(s)
	case plan.BindDir:
		start := ex.Now()
		if unit := ex.runningHeldUnit(); unit != "" {
			// Binding under a running runtime would split its state between two places.
			ex.note("%s is not bound now: %s is running; the boot unit binds it before %s starts, at the next boot", s.Dir, unit, unit)
			ex.deferred = append(ex.deferred, s.Dir)
			return nil
		}
		did, err := bind.Move(ex.ctx, ex.Exec, ex.Root, ex.opts.MountPoint, s.Dir, ex.Seal)
		if err != nil {
			return err
		}
		ex.record(s.Name, did+": "+s.Dir+" from "+bind.Target(ex.opts.MountPoint, s.Dir), true, start)
		ex.rep.Steps[len(ex.rep.Steps)-1].Command = command(s)
		return nil
	}
	return ex.act(s, func() error {
		switch s.Kind {
		case plan.ZeroSuperblocks, plan.AssembleArray:
			return ex.md.Run(ex.ctx, s.Cmd)
		case plan.CreateArray:
			if err := ex.md.Run(ex.ctx, s.Cmd); err != nil {
				return err
			}
			if raid.Level(ex.opts.Layout) == 10 {
				return ex.syncAction(ex.disks[0].Name, "frozen")
			}
			return nil
		case plan.ResumeResync:
			return ex.writeSysfs(raid.SyncAction(s.Array), "idle")
		case plan.Format, plan.Open:
			if err := ex.cs.Run(ex.ctx, s.Cmd, ex.key.Secret); err != nil {
				return err
			}
			if s.Kind == plan.Open {
				ex.opened = true
				// The key is not needed again in this run.
				ex.key.Zero()
			}
			return nil
		case plan.StoreToken:
			return ex.cs.Run(ex.ctx, s.Cmd, ex.token.JSON())
		case plan.CloseMapping, plan.MarkReady:
			return ex.cs.Run(ex.ctx, s.Cmd, nil)
		case plan.Wipe:
			return wipe(ex.ctx, filepath.Join(ex.Root, ex.mapperPath()), ex.Progress)
		case plan.MakeFS:
			_, err := ex.Exec.Run(ex.ctx, s.Cmd)
			return err
		case plan.Mount:
			dir := ex.opts.MountPoint
			err := mountpoint.Prepare(ex.Root, dir, ex.Seal)
			var unsafe *mountpoint.UnsafeError
			switch {
			case errors.Is(err, mountpoint.ErrUnsupported):
				ex.note("%s stays writable while the volume is not mounted: the root filesystem cannot make it immutable", dir)
			case errors.As(err, &unsafe):
				return &RefusedError{Device: dir, Reason: unsafe.Reason}
			case err != nil:
				return err
			}
			if _, err := ex.Exec.Run(ex.ctx, s.Cmd); err != nil {
				return fmt.Errorf("mounting %s at %s: %w", ex.mapperPath(), dir, err)
			}
			ex.mounted = true
			return nil
		}
		return fmt.Errorf("step %s: kind %d has no executor", s.Name, s.Kind)
	})
}

// act runs a step that changes something, with progress and its time in the report.
func (ex *executor) act(s plan.Step, fn func() error) error {
	fmt.Fprintf(ex.Progress, "storecrypt-agent: [%s] %s ...\n", s.Name, s.Action)
	start := ex.Now()
	if err := fn(); err != nil {
		fmt.Fprintf(ex.Progress, "storecrypt-agent: [%s] failed after %.1fs\n", s.Name, seconds(ex.Now().Sub(start)))
		return err
	}
	ex.record(s.Name, s.Action, true, start)
	ex.rep.Steps[len(ex.rep.Steps)-1].Command = command(s)
	return nil
}

func (ex *executor) newKey(s plan.Step) error {
	keys, err := ex.getKeys(ex.opts.KeySource)
	if err != nil {
		return err
	}
	v, err := ex.volume(s.VolumeUUID, ex.opts.KeySource)
	if err != nil {
		return err
	}
	return ex.inspect("key", func() (string, error) {
		key, err := keys.New(ex.ctx, ex.opts, v)
		if err != nil {
			return "", err
		}
		key.Token.ProvisionedBy = ex.opts.ProvisionedBy()
		ex.key, ex.token = key, &key.Token
		return "new " + key.Token.Describe(), nil
	})
}

func (ex *executor) recoverKey(s plan.Step) error {
	tok := *s.Token
	keys, err := ex.getKeys(tok.KeySource)
	if err != nil {
		return err
	}
	v, err := ex.volume(s.VolumeUUID, tok.KeySource)
	if err != nil {
		return err
	}
	return ex.inspect("key", func() (string, error) {
		key, err := keys.Recover(ex.ctx, tok, v)
		if err != nil {
			return "", err
		}
		ex.key, ex.token = key, &tok
		return s.Action, nil
	})
}

// runningHeldUnit names a unit of --required-by that is running now, when this is not
// the boot unit's run (which runs before them); "" when none is, or systemd is not init.
func (ex *executor) runningHeldUnit() string {
	if ex.opts.Boot || !ex.systemdRuns() {
		return ""
	}
	for _, u := range ex.opts.RequiredBy {
		if _, err := ex.Exec.Run(ex.ctx, sysexec.Command{Name: "systemctl", Args: []string{"is-active", "--quiet", u}}); err == nil {
			return u
		}
	}
	return ""
}

// syncAction writes action to the sync_action of the array that holds the disk named name.
func (ex *executor) syncAction(name, action string) error {
	a, ok := ex.arrayOf(name)
	if !ok {
		return fmt.Errorf("creating the array: %s has no md holder afterwards", name)
	}
	return ex.writeSysfs(raid.SyncAction(a.Name), action)
}

// writeSysfs writes value to a sysfs file under the root.
func (r *run) writeSysfs(file, value string) error {
	if err := os.WriteFile(filepath.Join(r.Root, file), []byte(value), 0o644); err != nil {
		return fmt.Errorf("writing %s to /%s: %w", value, file, err)
	}
	return nil
}

// refresh reads what a step that ends a round changed: the array it created or
// assembled, or the filesystem of the volume it opened.
func (ex *executor) refresh(f *plan.Facts, s plan.Step) error {
	switch s.Kind {
	case plan.CreateArray:
		a, ok := ex.arrayOfAny(ex.disks)
		if !ok {
			return fmt.Errorf("creating the array: no disk has an md holder afterwards")
		}
		// What mdadm --create leaves: every disk a member, the array blank, and the key
		// made before it still in hand.
		for i := range f.Disks {
			f.Disks[i].Sig = probe.Signature{Type: raid.MemberType, Label: raid.MemberLabel(contract.ArrayName)}
			f.Disks[i].Holders = []plan.Holder{{Name: a.Name}}
		}
		a.Frozen = raid.Level(ex.opts.Layout) == 10
		f.Array, f.KeyHeld = &a, true
		return nil
	case plan.AssembleArray:
		a, ok := ex.arrayOfAny(ex.disks)
		if !ok {
			return fmt.Errorf("assembling the array: no disk has an md holder afterwards")
		}
		return ex.observeArray(f, a)
	case plan.Open:
		return ex.observeMapping(f, ex.mapperName())
	}
	return fmt.Errorf("step %s: nothing to read again after it", s.Name)
}
