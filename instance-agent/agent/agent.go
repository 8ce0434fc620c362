// Package agent is storecrypt-agent's engine: it inspects the instance's disks, decides
// what converges them to an encrypted, mounted volume, and acts, recording each step. A
// rerun inspects first and so changes nothing that is already done.
//
// Order matters for safety: every refusal (a foreign signature, a mounted or held disk)
// and every key fetch happen before the first write, so a refused run or a run without a
// key leaves the disks byte for byte as they were.
package agent

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/storecrypt/storecrypt/instance-agent/atomicfile"
	"github.com/storecrypt/storecrypt/instance-agent/discover"
	"github.com/storecrypt/storecrypt/instance-agent/filesystem"
	"github.com/storecrypt/storecrypt/instance-agent/keysource"
	"github.com/storecrypt/storecrypt/instance-agent/keytoken"
	"github.com/storecrypt/storecrypt/instance-agent/lock"
	"github.com/storecrypt/storecrypt/instance-agent/luks"
	"github.com/storecrypt/storecrypt/instance-agent/mountpoint"
	"github.com/storecrypt/storecrypt/instance-agent/plan"
	"github.com/storecrypt/storecrypt/instance-agent/raid"
	"github.com/storecrypt/storecrypt/instance-agent/sysexec"
	"github.com/storecrypt/storecrypt/internal/contract"
)

// Keys makes and recovers volume keys (keysource.Sources).
type Keys interface {
	New(ctx context.Context, o contract.AgentOptions, v keysource.Volume) (keysource.Key, error)
	Recover(ctx context.Context, t keytoken.Token, v keysource.Volume) (keysource.Key, error)
}

// Agent holds what a run needs from the machine. Main builds it; tests build it with a
// scripted Runner and a temporary Root holding a sysfs fixture.
type Agent struct {
	Root     string         // "/" on an instance
	Exec     sysexec.Runner // runs the system tools (cryptsetup, mdadm, mkfs, mount, systemctl)
	Progress io.Writer      // readable progress; stdout is for the JSON document only
	Version  string
	Self     string        // the running binary, copied to contract.AgentPath for the unit
	Wait     time.Duration // how long to wait for another run's lock
	// Keys is called only when a key is needed, so ephemeral runs and refusals never
	// touch IMDS or AWS.
	Keys func(ctx context.Context) (Keys, error)
	// Instance is called only for kms-datakey, whose encryption context names the
	// instance: its id and its ARN.
	Instance func(ctx context.Context) (id, arn string, err error)
	NewUUID  func() string
	Now      func() time.Time
	// Seal makes the empty mount point immutable before the volume mounts on it, so
	// nothing is written there while it is not mounted (mountpoint.Immutable when nil).
	Seal mountpoint.Seal
	// Unseal undoes Seal for uninstall (mountpoint.Mutable when nil).
	Unseal mountpoint.Seal
	// Sleep waits between Retrying's attempts (a timer that ctx can cut when nil).
	Sleep func(ctx context.Context, d time.Duration) error
	// StartUnit: Install also starts the unit, without waiting for it (install --now).
	StartUnit bool
	// Reason and By are why revoke, resume or shred runs and who asked: the mark records
	// them. Confirm is the instance id the operator typed for shred.
	Reason, By, Confirm string
}

type mode int

const (
	modeApply mode = iota
	modeUnlock
	modePlan
	modeStatus
	modeInstall
	modeUninstall
	modeRevoke
	modeResume
	modeShred
)

var modeNames = map[mode]string{modeApply: "apply", modeUnlock: "unlock", modePlan: "plan", modeStatus: "status", modeInstall: "install", modeUninstall: "uninstall",
	modeRevoke: "revoke", modeResume: "resume", modeShred: "shred"}

// Apply converges the instance store to an encrypted, mounted volume.
func (a *Agent) Apply(ctx context.Context, o contract.AgentOptions) (*contract.Report, error) {
	return a.execute(ctx, modeApply, o)
}

// Unlock opens and mounts an existing volume; it never formats.
func (a *Agent) Unlock(ctx context.Context, o contract.AgentOptions) (*contract.Report, error) {
	return a.execute(ctx, modeUnlock, o)
}

// Plan says what Apply would do, touching nothing and fetching no key.
func (a *Agent) Plan(ctx context.Context, o contract.AgentOptions) (*contract.Report, error) {
	return a.execute(ctx, modePlan, o)
}

// Status describes the volume as it is, with the last saved run.
func (a *Agent) Status(ctx context.Context, o contract.AgentOptions) (*contract.Report, error) {
	return a.execute(ctx, modeStatus, o)
}

// run is the state of one execution.
type run struct {
	*Agent
	ctx  context.Context
	mode mode
	opts contract.AgentOptions
	rep  *contract.Report
	fsys fs.FS
	cs   luks.Cryptsetup
	md   raid.Mdadm
	// toolVersion waits for the cryptsetup version check checkTools started, and says
	// whether the persistent no-workqueue flags are supported.
	toolVersion func() (perf bool, err error)
	keys        Keys
	// mapper is the volume's device-mapper name ("" for contract.MapperName); the
	// per-disk layout runs the engine once per disk, each with its own.
	mapper     string
	noBootUnit bool // the per-disk layout installs the boot unit once, for all disks
	// earlySelf waits for the agent's copy for the boot unit that stageSelfEarly started
	// while the disk steps run; nil when none was started.
	earlySelf func() (*atomicfile.Staged, error)
}

func (r *run) mapperName() string { return plan.MapperName(r.mapper) }

func (r *run) mapperPath() string { return plan.MapperPath(r.mapperName()) }

func (r *run) dry() bool { return r.mode == modePlan || r.mode == modeStatus }

func (a *Agent) execute(ctx context.Context, m mode, o contract.AgentOptions) (*contract.Report, error) {
	start := a.Now()
	r := &run{
		Agent: a, ctx: ctx, mode: m, opts: o,
		rep:  &contract.Report{Command: modeNames[m], AgentVersion: a.Version, Devices: []contract.Device{}, Steps: []contract.Step{}, StartedAt: start.UTC().Format(time.RFC3339)},
		fsys: os.DirFS(a.Root),
		cs:   luks.Cryptsetup{R: a.Exec},
		md:   raid.Mdadm{R: a.Exec},
	}
	if o.Boot {
		// The boot unit's run is the installed agent itself.
		r.rep.BootAgentVersion = a.Version
	}
	err := r.execute()
	r.rep.Seconds = seconds(a.Now().Sub(start))
	code := ExitCodeOf(err)
	r.rep.ExitCode = int(code)
	r.rep.Result = code.String()
	if err != nil {
		r.rep.Error = err.Error()
	}
	for _, s := range r.rep.Steps {
		r.rep.Changed = r.rep.Changed || s.Changed
	}
	if m == modeApply || m == modeUnlock {
		if serr := r.saveState(); serr != nil && err == nil {
			err = serr
		}
	}
	return r.rep, err
}

func (r *run) execute() error {
	switch r.mode {
	case modeInstall:
		return r.install()
	case modeUninstall:
		return r.uninstall()
	}
	validate := r.opts.Validate
	if r.mode != modeApply && r.mode != modePlan {
		validate = r.opts.ValidateUnlock
	}
	if err := validate(); err != nil {
		return err
	}
	if !r.dry() {
		release, err := lock.Acquire(r.ctx, filepath.Join(r.Root, contract.LockPath), r.Wait, r.Progress)
		if err != nil {
			return err
		}
		defer release()
	}
	mark, err := readMark(r.Root)
	if err != nil {
		return err
	}
	r.rep.Revocation = mark
	switch r.mode {
	case modeStatus:
		r.loadLastRun()
		if mark != nil && mark.State == contract.Shredded {
			// Its headers hold no keyslot and no token: there is no volume to describe.
			r.note("the volume was shredded at %s by %s (%q)", mark.At, mark.By, mark.Reason)
			return nil
		}
	case modeRevoke, modeResume, modeShred:
		return r.revocation(mark)
	case modeApply, modeUnlock:
		// Before discovery and any key: the boot unit and a rerun ask KMS nothing.
		if mark != nil {
			return &RevokedError{Mark: *mark}
		}
	}
	return r.engine()
}

// engineAs runs the engine as mode would (resume opens a closed volume as unlock does).
func (r *run) engineAs(m mode) error {
	saved := r.mode
	r.mode = m
	defer func() { r.mode = saved }()
	return r.engine()
}

// engine discovers the disks and converges them as the run's mode says.
func (r *run) engine() error {
	disks, err := r.discover()
	if err != nil {
		return err
	}
	if err := r.checkTools(len(disks)); err != nil {
		return err
	}
	if len(disks) > 1 && r.opts.Layout == contract.LayoutPerDisk {
		return r.convergeEach(disks)
	}
	err = r.converge(disks, nil)
	var other *plan.OtherLayoutError
	if errors.As(err, &other) && other.Layout == contract.LayoutPerDisk {
		r.note("the disks hold per-disk volumes; they are opened as they are (--layout %s applies to new volumes)", r.opts.Layout)
		r.opts.Layout = contract.LayoutPerDisk
		return r.convergeEach(disks)
	}
	return err
}

func (r *run) discover() ([]discover.Disk, error) {
	var disks []discover.Disk
	err := r.inspect("discover", func() (string, error) {
		var err error
		if len(r.opts.Devices) > 0 {
			disks, err = r.namedDevices()
		} else {
			disks, err = discover.InstanceStore(r.fsys, r.opts.Model)
		}
		if err != nil {
			return "", err
		}
		if len(disks) == 0 {
			return "", fmt.Errorf("%w: no NVMe namespace with model %q", ErrNoDevices, r.opts.Model)
		}
		names := make([]string, len(disks))
		for i, d := range disks {
			names[i] = d.Path
			r.rep.Devices = append(r.rep.Devices, contract.Device{Path: d.Path, Model: d.Model, Serial: d.Serial, SizeBytes: d.SizeBytes})
		}
		return fmt.Sprintf("%d instance-store disk(s): %s", len(disks), strings.Join(names, " ")), nil
	})
	return disks, err
}

// namedDevices resolves --devices. A named device must still be instance store: an
// operator's typo must not format an EBS volume.
func (r *run) namedDevices() ([]discover.Disk, error) {
	var disks []discover.Disk
	for _, p := range r.opts.Devices {
		real, err := filepath.EvalSymlinks(filepath.Join(r.Root, p))
		if err != nil {
			return nil, &contract.InvalidError{Flag: contract.FlagDevices, Value: p, Reason: err.Error()}
		}
		d, err := discover.Inspect(r.fsys, filepath.Base(real))
		if err != nil {
			return nil, &RefusedError{Device: p, Reason: err.Error()}
		}
		// EBS first: no --model makes an EBS volume instance store.
		switch {
		case discover.IsEBS(d.Model):
			return nil, &RefusedError{Device: p, Reason: "is an EBS volume, not instance store"}
		case d.Model != r.opts.Model:
			return nil, &RefusedError{Device: p, Reason: fmt.Sprintf("is not an instance-store NVMe namespace (model %q)", d.Model)}
		}
		disks = append(disks, d)
	}
	return disks, nil
}

// packages names the package that brings a program on each family of distributions:
// dnf's (Amazon Linux, RHEL) and apt's (Ubuntu, Debian), where their names differ.
type packages struct{ dnf, apt string }

// toolPackages names each program the agent runs and the packages that bring it.
var toolPackages = map[string]packages{
	"cryptsetup": {"cryptsetup", "cryptsetup"}, "blkid": {"util-linux", "util-linux"},
	"mount": {"util-linux", "mount"}, "umount": {"util-linux", "mount"}, "mdadm": {"mdadm", "mdadm"},
	"mkfs.ext4": {"e2fsprogs", "e2fsprogs"}, "mkfs.xfs": {"xfsprogs", "xfsprogs"},
	"dmsetup": {"device-mapper", "dmsetup"},
}

func (r *run) checkTools(disks int) error {
	need := []string{"cryptsetup", "blkid", "mount"}
	if disks > 1 {
		need = append(need, "mdadm")
	}
	if r.mode == modeApply || r.mode == modePlan {
		need = append(need, filesystem.Tool(r.opts.Filesystem))
	}
	var missing []string
	for _, t := range need {
		if _, err := r.Exec.LookPath(t); err != nil {
			missing = append(missing, t)
		}
	}
	if len(missing) > 0 {
		return &MissingToolError{Tools: missing}
	}
	// The version is read beside the disks' probes (observe waits for it): the process
	// costs as much as a probe, and neither needs the other.
	done := make(chan struct{})
	var perf bool
	var verr error
	go func() {
		defer close(done)
		perf, verr = r.checkVersion()
	}()
	r.toolVersion = sync.OnceValues(func() (bool, error) {
		<-done
		return perf, verr
	})
	return nil
}

// checkVersion refuses a cryptsetup too old for LUKS2 tokens, and says whether the
// persistent no-workqueue flags can be used.
func (r *run) checkVersion() (bool, error) {
	v, err := r.cs.GetVersion(r.ctx)
	if err != nil {
		return false, err
	}
	if !v.AtLeast(luks.MinVersion) {
		return false, &MissingToolError{Tools: []string{"cryptsetup"}, Detail: fmt.Sprintf("cryptsetup %s is too old: LUKS2 tokens need %s or later", v, luks.MinVersion)}
	}
	return v.AtLeast(luks.PerfFlagsVersion) && kernelAtLeast(r.fsys, 5, 9), nil
}

func kernelAtLeast(fsys fs.FS, major, minor int) bool {
	b, err := fs.ReadFile(fsys, "proc/sys/kernel/osrelease")
	if err != nil {
		return false
	}
	var ma, mi int
	if _, err := fmt.Sscanf(string(b), "%d.%d", &ma, &mi); err != nil {
		return false
	}
	return ma > major || (ma == major && mi >= minor)
}

// inspect records a step that only looks.
func (r *run) inspect(name string, fn func() (string, error)) error {
	start := r.Now()
	action, err := fn()
	if err != nil {
		return err
	}
	r.record(name, action, false, start)
	return nil
}

func (r *run) record(name, action string, changed bool, start time.Time) {
	d := seconds(r.Now().Sub(start))
	r.rep.Steps = append(r.rep.Steps, contract.Step{Name: name, Action: action, Changed: changed, Seconds: d})
	fmt.Fprintf(r.Progress, "storecrypt-agent: [%s] %s (%.2fs)\n", name, action, d)
}

func (r *run) note(format string, args ...any) {
	msg := fmt.Sprintf(format, args...)
	r.rep.Notes = append(r.rep.Notes, msg)
	fmt.Fprintf(r.Progress, "storecrypt-agent: note: %s\n", msg)
}

func seconds(d time.Duration) float64 {
	return float64(d.Round(time.Millisecond)) / float64(time.Second)
}

func (r *run) getKeys(keySource string) (Keys, error) {
	if keySource == contract.KeySourceEphemeral {
		// Random bytes need no AWS: an ephemeral run works where IMDS does not answer.
		return keysource.Sources{}, nil
	}
	if r.keys == nil {
		k, err := r.Keys(r.ctx)
		if err != nil {
			return nil, &keysource.UnavailableError{Op: "setting up the AWS clients", Err: err, Fix: "run on EC2 with IMDSv2 reachable, or set AWS_REGION"}
		}
		r.keys = k
	}
	return r.keys, nil
}

func (r *run) volume(uuid string, keySource string) (keysource.Volume, error) {
	v := keysource.Volume{UUID: uuid}
	if keySource != contract.KeySourceKMSDataKey {
		return v, nil
	}
	id, arn, err := r.Instance(r.ctx)
	if err != nil {
		return v, &keysource.UnavailableError{Op: "reading the instance's identity from IMDS", Err: err, Fix: "IMDSv2 must be reachable (hop limit 2 in containers)"}
	}
	r.rep.InstanceID = id
	v.InstanceARN = arn
	return v, nil
}

// ErrNoDevices means discovery found nothing to encrypt.
var ErrNoDevices = errors.New("no instance-store disks")

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
