package agent

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"

	"github.com/storecrypt/storecrypt/instance-agent/atomicfile"
	"github.com/storecrypt/storecrypt/instance-agent/bind"
	"github.com/storecrypt/storecrypt/instance-agent/bootunit"
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

// maxRounds bounds observe-decide-act: a plan stops to read the facts again only after
// assembling or creating the array and after opening the volume.
const maxRounds = 4

// converge observes the disks, decides a plan, and runs it; a step that needs new facts
// (an assembled array's content, an opened volume's filesystem) ends the round, and the
// rest is decided from what is read then.
func (r *run) converge(disks []discover.Disk) error {
	f, err := r.observe(disks)
	if err != nil {
		return err
	}
	ex := &executor{run: r, disks: disks}
	defer ex.key.Zero()
	for round := 1; ; round++ {
		p, err := plan.Decide(f)
		for _, n := range p.Notes {
			r.note("%s", n)
		}
		r.rep.Layout = ex.layout(p.Layout)
		if err != nil {
			return err
		}
		again, err := ex.execute(p, &f)
		r.rep.Layout = ex.layout(p.Layout)
		if err != nil || !again {
			return err
		}
		if round == maxRounds {
			return fmt.Errorf("the plan did not settle after %d rounds", maxRounds)
		}
	}
}

// observe reads what the plan decides from: each disk's signature, holders and mounts,
// the array when it runs, the volume's header when it is ours, and our mapping. It
// only reads.
func (r *run) observe(disks []discover.Disk) (plan.Facts, error) {
	m := plan.Apply
	switch r.mode {
	case modeUnlock:
		m = plan.Unlock
	case modePlan:
		m = plan.Preview
	case modeStatus:
		m = plan.Status
	}
	f := plan.Facts{Mode: m, Options: r.o, Perf: r.perf, NewUUID: r.NewUUID(), BootMode: bootunit.BootMode(r.Root), Mapper: r.mapper, NoBootUnit: r.noBootUnit}
	if len(r.o.BindDirs) > 0 {
		binds, err := bind.Observe(r.fsys, r.mapperPath(), r.o.BindDirs)
		if err != nil {
			return f, err
		}
		f.Binds = binds
	}
	for _, d := range disks {
		s, err := probe.Device(r.ctx, r.Exec, d.Path)
		if err != nil {
			return f, err
		}
		pd := plan.Disk{Path: d.Path, Name: d.Name, SizeBytes: d.SizeBytes, Sig: s, Mounts: d.Mounts, Partitions: d.Partitions}
		for _, h := range d.Holders {
			pd.Holders = append(pd.Holders, plan.Holder{Name: h, DMName: discover.DMName(r.fsys, h)})
		}
		if s.Type == raid.MemberType && s.Label == raid.MemberLabel(contract.ArrayName) {
			sb, err := r.md.Examine(r.ctx, d.Path)
			if err != nil {
				return f, err
			}
			pd.Super = &sb
		}
		f.Disks = append(f.Disks, pd)
	}
	if err := r.readZeros(f.Disks); err != nil {
		return f, err
	}
	for _, d := range f.Disks {
		for j := range r.rep.Devices {
			if r.rep.Devices[j].Path == d.Path {
				r.rep.Devices[j].Found = d.Sig.What()
			}
		}
	}
	if len(f.Disks) == 1 {
		d := f.Disks[0]
		return f, r.observeVolume(&f, d.Path, d.Name, d.Sig)
	}
	if a, ok := r.arrayOfAny(disks); ok {
		return f, r.observeArray(&f, a)
	}
	return f, nil
}

// readZeros reads whether each disk without a signature reads as zero, and whether each
// member's data area does (probe.Written), one disk per goroutine: each costs a few
// thousand small reads, and the disks answer them independently.
func (r *run) readZeros(disks []plan.Disk) error {
	errs := make([]error, len(disks))
	var wg sync.WaitGroup
	for i := range disks {
		d := &disks[i]
		var from int64
		var where *string
		switch {
		case d.Sig.Blank():
			where = &d.Sig.Data
		case d.Super != nil:
			from, where = d.Super.Data, &d.DataArea
		default:
			continue
		}
		wg.Go(func() { *where, errs[i] = probe.Written(r.fsys, d.Path, from, d.SizeBytes) })
	}
	wg.Wait()
	return errors.Join(errs...)
}

func (r *run) observeArray(f *plan.Facts, a plan.Array) error {
	s, err := probe.Device(r.ctx, r.Exec, a.Path)
	if err != nil {
		return err
	}
	a.Sig = s
	f.Array = &a
	return r.observeVolume(f, a.Path, a.Name, s)
}

// observeVolume reads the header of a volume that is ours, and our mapping on it.
func (r *run) observeVolume(f *plan.Facts, dev, name string, s probe.Signature) error {
	if s.Type != "crypto_LUKS" || s.Label != contract.VolumeLabel {
		return nil
	}
	meta, err := r.cs.Dump(r.ctx, dev)
	if err != nil {
		return err
	}
	h := &plan.Header{Meta: meta}
	if raw := meta.TokenOfType(contract.TokenType); raw != nil {
		t, err := keytoken.Parse(raw)
		if err != nil {
			return err
		}
		h.Token = &t
	}
	f.Header = h
	if dm := r.openMapping(name); dm != "" {
		return r.observeMapping(f, dm)
	}
	return nil
}

func (r *run) observeMapping(f *plan.Facts, dm string) error {
	s, err := probe.Device(r.ctx, r.Exec, r.mapperPath())
	if err != nil {
		return err
	}
	m := &plan.Mapping{FS: s}
	if d, err := discover.Inspect(r.fsys, dm); err == nil {
		m.Mounts = d.Mounts
	}
	f.Mapping = m
	return nil
}

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
	for _, s := range p.Steps {
		if ex.dry() {
			if s.Kind != plan.NewKey && s.Kind != plan.RecoverKey {
				ex.would(s)
			}
			continue
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
			errs = append(errs, mountpoint.Check(ex.Root, ex.o.MountPoint))
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
		did, err := bind.Move(ex.ctx, ex.Exec, ex.Root, ex.o.MountPoint, s.Dir, ex.Seal)
		if err != nil {
			return err
		}
		ex.record(s.Name, did+": "+s.Dir+" from "+bind.Target(ex.o.MountPoint, s.Dir), true, start)
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
			if raid.Level(ex.o.Layout) == 10 {
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
			dir := ex.o.MountPoint
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
	keys, err := ex.getKeys(ex.o.KeySource)
	if err != nil {
		return err
	}
	v, err := ex.volume(s.VolumeUUID, ex.o.KeySource)
	if err != nil {
		return err
	}
	return ex.inspect("key", func() (string, error) {
		key, err := keys.New(ex.ctx, ex.o, v)
		if err != nil {
			return "", err
		}
		key.Token.ProvisionedBy = ex.o.ProvisionedBy()
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
	if ex.o.Boot || !ex.systemdRuns() {
		return ""
	}
	for _, u := range ex.o.RequiredBy {
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
		a.Frozen = raid.Level(ex.o.Layout) == 10
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

// arrayOfAny returns the md array that holds any of the disks: neither a blank disk named
// first nor a member a RAID10 runs without may hide the array.
func (r *run) arrayOfAny(disks []discover.Disk) (plan.Array, bool) {
	for _, d := range disks {
		if a, ok := r.arrayOf(d.Name); ok {
			return a, true
		}
	}
	return plan.Array{}, false
}

// arrayOf returns the md array that holds the disk named name.
func (r *run) arrayOf(name string) (plan.Array, bool) {
	d, err := discover.Inspect(r.fsys, name)
	if err != nil {
		return plan.Array{}, false
	}
	for _, h := range d.Holders {
		if strings.HasPrefix(h, "md") {
			md, err := discover.Inspect(r.fsys, h)
			if err != nil {
				return plan.Array{}, false
			}
			level, _ := fs.ReadFile(r.fsys, path.Join("sys/block", md.Name, "md/level"))
			devices, _ := fs.ReadFile(r.fsys, path.Join("sys/block", md.Name, "md/raid_disks"))
			action, _ := fs.ReadFile(r.fsys, raid.SyncAction(md.Name))
			// An unreadable member count is 0, which matches no disks given: refused.
			n, _ := strconv.Atoi(strings.TrimSpace(string(devices)))
			return plan.Array{Path: md.Path, Name: md.Name, SizeBytes: md.SizeBytes, Devices: n,
				Level: strings.TrimSpace(string(level)), Frozen: strings.TrimSpace(string(action)) == "frozen"}, true
		}
	}
	return plan.Array{}, false
}

// openMapping returns the kernel name of our dm-crypt mapping on the device named name,
// or "".
func (r *run) openMapping(name string) string {
	if name == "" {
		return ""
	}
	d, err := discover.Inspect(r.fsys, name)
	if err != nil {
		return ""
	}
	for _, h := range d.Holders {
		if discover.DMName(r.fsys, h) == r.mapperName() {
			return h
		}
	}
	return ""
}

// installBoot copies the agent to a fixed path and installs the unit that runs it at boot.
func (ex *executor) installBoot(s plan.Step) error {
	start := ex.Now()
	changed, err := ex.installUnit(s.Unit)
	if err != nil {
		return err
	}
	ex.booted = true
	if changed {
		ex.record(s.Name, s.Action, true, start)
	} else {
		ex.record(s.Name, contract.UnitName+" is up to date", false, start)
	}
	return nil
}

// updateBootAgent makes contract.AgentPath this agent when it holds another build, and
// reports which agent the boot unit ran until now (Report.BootAgentVersion): that one,
// not this run's, provisioned or reopened the volume at boot. The file is replaced
// whole (atomicfile), so a boot cut short runs the old build or the new, never half.
func (ex *executor) updateBootAgent(s plan.Step) error {
	start := ex.Now()
	installed := ex.Version
	copied, err := ex.installSelf(func() {
		out, err := ex.Exec.Run(ex.ctx, sysexec.Command{Name: contract.AgentPath, Args: []string{"version"}})
		if installed = strings.TrimSpace(string(out)); err != nil || installed == "" {
			installed = "unknown"
			ex.note("%s does not say its version: %v", contract.AgentPath, err)
		}
	})
	if err != nil {
		return err
	}
	if ex.Self != "" {
		ex.rep.BootAgentVersion = installed
	}
	action := contract.AgentPath + " is this agent"
	if copied {
		action = fmt.Sprintf("replace %s (%s) with this agent (%s); the boot unit runs it from the next boot", contract.AgentPath, installed, ex.Version)
	}
	ex.record(s.Name, action, copied, start)
	return nil
}

// installUnit copies the agent to contract.AgentPath, installs u and, when systemd runs,
// has it read the change. It reports whether anything changed.
func (r *run) installUnit(u bootunit.Unit) (bool, error) {
	copied, err := r.installSelf(nil)
	if err != nil {
		return false, err
	}
	changed, err := bootunit.Install(r.Root, u)
	if err != nil {
		return false, err
	}
	if err := r.reloadSystemd(changed); err != nil {
		return false, err
	}
	return copied || changed, nil
}

// reloadSystemd has systemd read changed unit files, when it runs.
func (r *run) reloadSystemd(changed bool) error {
	if !changed || !r.systemdRuns() {
		return nil
	}
	if _, err := r.Exec.Run(r.ctx, sysexec.Command{Name: "systemctl", Args: []string{"daemon-reload"}}); err != nil {
		return fmt.Errorf("reloading systemd: %w", err)
	}
	return nil
}

// systemdRuns: systemd is the running init (sd_booted's test); at image build it is not.
func (r *run) systemdRuns() bool { return isDir(filepath.Join(r.Root, "run/systemd/system")) }

func (r *run) unitInstalled() bool {
	_, err := fs.Stat(r.fsys, path.Join("etc/systemd/system", contract.UnitName))
	return err == nil
}

func isDir(p string) bool {
	st, err := os.Stat(p)
	return err == nil && st.IsDir()
}

// installSelf copies the running binary to contract.AgentPath unless that file already
// holds it: the boot unit runs the installed copy itself, and a rerun of the same build
// finds the same bytes there. Neither file is read whole into memory. replacing, when
// set, runs just before the file is replaced.
func (r *run) installSelf(replacing func()) (bool, error) {
	if r.Self == "" {
		return false, nil
	}
	dst := filepath.Join(r.Root, contract.AgentPath)
	self, err := os.Open(r.Self)
	if err != nil {
		return false, fmt.Errorf("reading the agent binary: %w", err)
	}
	defer self.Close()
	if same, err := holds(dst, self); same || err != nil {
		return false, err
	}
	if _, err := self.Seek(0, io.SeekStart); err != nil {
		return false, fmt.Errorf("reading the agent binary: %w", err)
	}
	if replacing != nil {
		replacing()
	}
	return true, atomicfile.WriteFrom(dst, self, 0o755)
}

// holds reports whether the file at path is f, or has f's size and bytes; a missing or
// unreadable file does not hold it.
func holds(path string, f *os.File) (bool, error) {
	fi, err := f.Stat()
	if err != nil {
		return false, fmt.Errorf("reading %s: %w", f.Name(), err)
	}
	g, err := os.Open(path)
	if err != nil {
		return false, nil
	}
	defer g.Close()
	gi, err := g.Stat()
	switch {
	case err != nil || gi.Size() != fi.Size():
		return false, nil
	case os.SameFile(fi, gi):
		return true, nil
	}
	a, b := make([]byte, 1<<16), make([]byte, 1<<16)
	for {
		n, err := io.ReadFull(f, a)
		if _, gerr := io.ReadFull(g, b[:n]); gerr != nil || !bytes.Equal(a[:n], b[:n]) {
			return false, nil
		}
		switch {
		case errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF):
			return true, nil
		case err != nil:
			return false, fmt.Errorf("reading %s: %w", f.Name(), err)
		}
	}
}

func (r *run) saveState() error {
	b, err := json.MarshalIndent(r.rep, "", "  ")
	if err != nil {
		return err
	}
	return atomicfile.Write(filepath.Join(r.Root, contract.StatePath), b, 0o644)
}

func (r *run) loadLastRun() {
	b, err := os.ReadFile(filepath.Join(r.Root, contract.StatePath))
	if errors.Is(err, fs.ErrNotExist) {
		return
	}
	var last contract.Report
	if err != nil || json.Unmarshal(b, &last) != nil {
		r.note("the saved state %s is unreadable", contract.StatePath)
		return
	}
	r.rep.LastRun = &last
}
