package agent

import (
	"errors"
	"fmt"
	"io/fs"
	"path"
	"strconv"
	"strings"
	"sync"

	"github.com/storecrypt/storecrypt/instance-agent/bind"
	"github.com/storecrypt/storecrypt/instance-agent/bootunit"
	"github.com/storecrypt/storecrypt/instance-agent/discover"
	"github.com/storecrypt/storecrypt/instance-agent/keytoken"
	"github.com/storecrypt/storecrypt/instance-agent/plan"
	"github.com/storecrypt/storecrypt/instance-agent/probe"
	"github.com/storecrypt/storecrypt/instance-agent/raid"
	"github.com/storecrypt/storecrypt/internal/contract"
)

// maxRounds bounds observe-decide-act: a plan stops to read the facts again only after
// assembling or creating the array and after opening the volume.
const maxRounds = 4

// converge observes the disks, decides a plan, and runs it; a step that needs new facts
// (an assembled array's content, an opened volume's filesystem) ends the round, and the
// rest is decided from what is read then. The first round decides from observed when
// the caller has read the disks already, and observes them otherwise.
func (r *run) converge(disks []discover.Disk, observed *plan.Facts) error {
	var f plan.Facts
	if observed != nil {
		f = *observed
	} else {
		var err error
		if f, err = r.observe(disks); err != nil {
			return err
		}
	}
	ex := &executor{run: r, disks: disks}
	defer ex.key.Zero()
	defer ex.discardSelf()
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
	f := plan.Facts{Mode: m, Options: r.opts, NewUUID: r.NewUUID(), BootMode: bootunit.BootMode(r.Root), Mapper: r.mapper, NoBootUnit: r.noBootUnit}
	if len(r.opts.BindDirs) > 0 {
		binds, err := bind.Observe(r.fsys, r.mapperPath(), r.opts.BindDirs)
		if err != nil {
			return f, err
		}
		f.Binds = binds
	}
	f.Disks = make([]plan.Disk, len(disks))
	err := concurrently(len(disks), func(i int) (err error) {
		f.Disks[i], err = r.observeDisk(disks[i])
		return err
	})
	// cryptsetup's version ran beside the probes; it decides before what they found.
	perf, verr := r.toolVersion()
	if verr != nil {
		return f, verr
	}
	if err != nil {
		return f, err
	}
	f.Perf = perf
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

// probeParallel bounds the disks probed at once. A probe is a blkid process and a few
// thousand small reads, and the disks answer independently: 8 blkid -p one after another
// took 0.9 s in the test guest.
const probeParallel = 8

// concurrently runs fn for 0..n-1, at most probeParallel at once, and returns every
// error, in index order.
func concurrently(n int, fn func(i int) error) error {
	errs := make([]error, n)
	sem := make(chan struct{}, probeParallel)
	var wg sync.WaitGroup
	for i := range n {
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			errs[i] = fn(i)
		})
	}
	wg.Wait()
	return errors.Join(errs...)
}

// observeDisk reads one disk: its signature, its md superblock when it is a member of our
// array, and whether the disk without a signature, or the member's data area, reads as
// zero (probe.Written).
func (r *run) observeDisk(d discover.Disk) (plan.Disk, error) {
	s, err := probe.Device(r.ctx, r.Exec, d.Path)
	if err != nil {
		return plan.Disk{}, err
	}
	pd := plan.Disk{Path: d.Path, Name: d.Name, SizeBytes: d.SizeBytes, Sig: s, Mounts: d.Mounts, Partitions: d.Partitions}
	for _, h := range d.Holders {
		pd.Holders = append(pd.Holders, plan.Holder{Name: h, DMName: discover.DMName(r.fsys, h)})
	}
	switch {
	case s.Blank():
		pd.Sig.Data, err = probe.Written(r.fsys, d.Path, 0, d.SizeBytes)
	case s.Type == raid.MemberType && s.Label == raid.MemberLabel(contract.ArrayName):
		sb, err := r.md.Examine(r.ctx, d.Path)
		if err != nil {
			return pd, err
		}
		pd.Super = &sb
		pd.DataArea, err = probe.Written(r.fsys, d.Path, sb.Data, d.SizeBytes)
		return pd, err
	}
	return pd, err
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
	m := &plan.Mapping{Suspended: suspended(r.fsys, dm)}
	if d, err := discover.Inspect(r.fsys, dm); err == nil {
		m.Mounts = d.Mounts
	}
	f.Mapping = m
	if m.Suspended {
		return nil
	}
	s, err := probe.Device(r.ctx, r.Exec, r.mapperPath())
	m.FS = s
	return err
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
