package agent

import (
	"cmp"
	"errors"
	"fmt"
	"path"
	"slices"
	"strconv"
	"strings"

	"github.com/storecrypt/storecrypt/instance-agent/discover"
	"github.com/storecrypt/storecrypt/instance-agent/mountpoint"
	"github.com/storecrypt/storecrypt/instance-agent/plan"
	"github.com/storecrypt/storecrypt/internal/contract"
)

// convergeEach is the per-disk layout: every disk its own volume, key, mapping
// (storecrypt-<i>) and filesystem, mounted at <mount point>/<i>, where i is the disk's
// place in serial order, which a reboot keeps. The directories of --bind-dirs go on
// volume 0. Every disk's plan is decided before any disk is written, so a refusal of
// one leaves them all as they were; the boot unit is installed once, for all.
func (r *run) convergeEach(disks []discover.Disk) error {
	disks = slices.Clone(disks)
	slices.SortFunc(disks, func(a, b discover.Disk) int { return cmp.Compare(a.Serial, b.Serial) })
	subs := make([]run, len(disks))
	for i := range disks {
		subs[i] = *r
		sub := &subs[i]
		sub.opts.MountPoint = path.Join(r.opts.MountPoint, strconv.Itoa(i))
		sub.mapper = contract.MapperName + "-" + strconv.Itoa(i)
		sub.noBootUnit = true
		if i > 0 {
			sub.opts.BindDirs = nil
		}
	}
	// Each disk is probed once, all at once: the facts its plan is checked on here are
	// the ones it converges from below, for nothing writes on a disk in between.
	facts := make([]plan.Facts, len(disks))
	if err := concurrently(len(disks), func(i int) (err error) {
		facts[i], err = subs[i].observe([]discover.Disk{disks[i]})
		return err
	}); err != nil {
		return err
	}
	for i, d := range disks {
		f := facts[i]
		p, err := plan.Decide(f)
		var other *plan.OtherLayoutError
		if errors.As(err, &other) {
			r.note("the disks hold a storecrypt array; it is opened as it is (--layout %s applies to new volumes)", r.opts.Layout)
			r.opts.Layout = contract.DefaultLayout
			return r.converge(disks, nil)
		}
		if err != nil {
			return err
		}
		ex := &executor{run: &subs[i], disks: []discover.Disk{d}}
		if err := ex.check(p, &f); err != nil {
			return err
		}
	}
	if !r.dry() {
		if err := mountpoint.PrepareParent(r.Root, r.opts.MountPoint, len(disks), r.Seal); err != nil {
			var unsafe *mountpoint.UnsafeError
			if errors.As(err, &unsafe) {
				return &RefusedError{Device: unsafe.Dir, Reason: unsafe.Reason}
			}
			return err
		}
	}
	var vols []contract.Layout
	for i, d := range disks {
		subs[i].keys = r.keys
		err := subs[i].converge([]discover.Disk{d}, &facts[i])
		r.keys = subs[i].keys
		if r.rep.Layout != nil {
			vols = append(vols, *r.rep.Layout)
		}
		if err != nil {
			r.rep.Layout = sumUp(r.opts.MountPoint, vols)
			return fmt.Errorf("%s: %w", d.Path, err)
		}
	}
	r.rep.Layout = sumUp(r.opts.MountPoint, vols)
	if r.mode == modeApply || r.mode == modePlan {
		return r.installBootOnce(vols)
	}
	return nil
}

// installBootOnce installs the boot unit for every disk's volume.
func (r *run) installBootOnce(vols []contract.Layout) error {
	keySource := r.opts.KeySource
	if len(vols) > 0 && vols[0].KeySource != "" {
		keySource = vols[0].KeySource
	}
	f := plan.Facts{Options: r.opts, BootMode: r.rep.Layout.BootMode}
	s, ok := plan.BootUnit(f, keySource)
	if !ok {
		r.rep.Layout.BootMode, r.rep.Layout.BootUnit = true, true
		if s, ok = plan.UpdateBootAgent(f); !ok {
			return nil
		}
	}
	ex := &executor{run: r}
	if r.dry() {
		ex.would(s)
		return nil
	}
	if err := ex.step(s); err != nil {
		return err
	}
	r.rep.Layout.BootUnit = true
	return nil
}

// sumUp is the per-disk layout as one: open, mounted and ready when every volume is, the
// key and cipher they share, and every volume's UUID.
func sumUp(mountPoint string, vols []contract.Layout) *contract.Layout {
	l := &contract.Layout{Level: contract.LayoutPerDisk, MountPoint: mountPoint, Volumes: vols, Open: len(vols) > 0, Mounted: len(vols) > 0, State: contract.StateReady}
	var uuids []string
	for i, v := range vols {
		if i == 0 {
			l.Cipher, l.KeySizeBits, l.SectorSize, l.Flags = v.Cipher, v.KeySizeBits, v.SectorSize, v.Flags
			l.KeySource, l.KeyID, l.Secret, l.Filesystem, l.ProvisionedBy = v.KeySource, v.KeyID, v.Secret, v.Filesystem, v.ProvisionedBy
			l.BindDirs, l.BootMode, l.BootUnit = v.BindDirs, v.BootMode, v.BootUnit
		}
		if v.KeyID != l.KeyID || v.KeySource != l.KeySource {
			l.KeyID = "" // volumes under different keys: none can be named for all
		}
		l.Open, l.Mounted, l.Suspended = l.Open && v.Open, l.Mounted && v.Mounted, l.Suspended || v.Suspended
		if v.State != contract.StateReady {
			l.State = v.State
		}
		uuids = append(uuids, v.LUKSUUID)
	}
	l.LUKSUUID = strings.Join(uuids, ",")
	return l
}
