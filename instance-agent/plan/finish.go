package plan

import (
	"github.com/storecrypt/storecrypt/instance-agent/bind"
	"github.com/storecrypt/storecrypt/instance-agent/bootunit"
	"github.com/storecrypt/storecrypt/instance-agent/filesystem"
	"github.com/storecrypt/storecrypt/internal/contract"
)

func (pl *planner) mount(fsType string) {
	dir := pl.facts.Options.MountPoint
	pl.add(Step{Kind: Mount, Name: "mount", Action: "mount " + pl.path() + " at " + dir + " (noatime)",
		Cmd: filesystem.MountCommand(pl.path(), dir, fsType), Leaves: "mounted at " + dir})
}

// resumeResync lets a RAID10 array's first resync run once the volume is mounted: apply
// paused it when it created the array, so that formatting and mkfs had the disks alone.
func (pl *planner) resumeResync() {
	a := pl.facts.Array
	switch {
	case a != nil && a.Frozen:
		pl.add(Step{Kind: ResumeResync, Name: "raid-resync", Action: "resume the RAID10 resync of " + a.Path + " in the background", Array: a.Name, Leaves: "the mirror resyncing"})
	case a == nil && pl.facts.Mode == Preview && pl.plan.Layout.Level == "raid10":
		pl.add(Step{Kind: ResumeResync, Name: "raid-resync", Action: "resume the RAID10 resync in the background", Leaves: "the mirror resyncing"})
	}
}

// bindDirs binds each directory of --bind-dirs that is not bound yet.
func (pl *planner) bindDirs() {
	o := pl.facts.Options
	for _, d := range pl.facts.Binds {
		if d.State == bind.Bound {
			continue
		}
		t := bind.Target(o.MountPoint, d.Path)
		pl.add(Step{Kind: BindDir, Name: "bind", Action: "bind " + t + " on " + d.Path + " (its content copied there on first use)",
			Cmd: bind.MountCommand(t, d.Path), Dir: d.Path, Leaves: d.Path + " on the volume"})
	}
	pl.plan.Layout.BindDirs = o.BindDirs
}

// installBoot adds the step that installs the boot unit (BootUnit), unless the caller
// installs it.
func (pl *planner) installBoot(keySource string) {
	if pl.facts.NoBootUnit {
		return
	}
	s, ok := BootUnit(pl.facts, keySource)
	if !ok {
		pl.plan.Layout.BootMode, pl.plan.Layout.BootUnit = true, true
		if s, ok := UpdateBootAgent(pl.facts); ok {
			pl.note("%s provisions this volume at boot (storecrypt-agent install); left as installed", contract.UnitName)
			pl.add(s)
		}
		return
	}
	pl.add(s)
}

// BootUnit is the step that installs the boot unit (bootunit.For). A boot-time unit (installed by `storecrypt-agent install`) already
// provisions at boot; it is left as installed, and ok is false.
func BootUnit(f Facts, keySource string) (s Step, ok bool) {
	o := f.Options
	if o.Boot || f.BootMode {
		return Step{}, false
	}
	u := bootunit.For(o, keySource)
	return Step{Kind: InstallBoot, Name: "boot-unit", Action: u.InstallAction(), Unit: u, Leaves: contract.UnitName + " installed"}, true
}

// UpdateBootAgent is the step of a run from the SSM document (or by hand) in boot-time
// mode that makes the agent the boot unit runs this run's: without it the boot unit
// would run the agent installed at image build for ever, whatever build the document
// now vouches for. ok is false outside boot-time mode, where InstallBoot copies the
// agent, and in the boot unit's own run, which is that agent.
func UpdateBootAgent(f Facts) (s Step, ok bool) {
	if !f.BootMode || f.Options.Boot {
		return Step{}, false
	}
	return Step{Kind: UpdateAgent, Name: "boot-agent", Action: "make " + contract.AgentPath + " this agent when it is another build (the boot unit runs it from the next boot)",
		Leaves: contract.AgentPath + " this build"}, true
}
