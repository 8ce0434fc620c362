// Package bench measures storecrypt against the alternatives, side by side in one run:
// the functions' footprint and, in the guest, time to a mounted, encrypted filesystem
// against the seed recipe and the bare commands; the control plane's figures come from
// its model (package controlplane), which boots no guest. `make bench` runs it in full
// and writes docs/benchmarks.md; `make test` runs a small smoke of each.
package bench

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"time"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/plotutil"
	"gonum.org/v1/plot/vg"

	"github.com/storecrypt/storecrypt/infra/artifact"
	"github.com/storecrypt/storecrypt/instance-agent/filesystem"
	"github.com/storecrypt/storecrypt/internal/contract"
	"github.com/storecrypt/storecrypt/internal/document"
	"github.com/storecrypt/storecrypt/test/bench/controlplane"
)

// Results is one run of every benchmark.
type Results struct {
	At           time.Time                        `json:"at"`
	Machine      string                           `json:"machine"`
	Mount        []MountResult                    `json:"mount"`
	AgentMemory  []AgentMemory                    `json:"agent_memory"`
	IO           []IOResult                       `json:"io"`
	ControlPlane []controlplane.BurstResult       `json:"control_plane"`
	FleetRevoke  []controlplane.FleetRevokeResult `json:"fleet_revoke"`
	Footprint    Footprint                        `json:"footprint"`
	Boot         []BootResult                     `json:"boot"`
	Scale        []ScaleResult                    `json:"scale"`
	Choices      []Choice                         `json:"choices"`
}

// Machine describes where the run happened.
func Machine() string {
	cpu := "unknown CPU"
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for _, l := range strings.Split(string(b), "\n") {
			if strings.HasPrefix(l, "model name") {
				cpu = strings.TrimSpace(strings.SplitN(l, ":", 2)[1])
				break
			}
		}
	}
	return fmt.Sprintf("%s, %d cores, %s/%s; guest: QEMU TCG (software emulation), 2 vCPUs, 1 GiB (%d MiB for the scale runs)", cpu, runtime.NumCPU(), runtime.GOOS, runtime.GOARCH, scaleGuestMiB)
}

func (r *Results) mount(variant string, size int) float64 {
	for _, m := range r.Mount {
		if m.Variant == variant && m.SizeMiB == size {
			return m.Seconds
		}
	}
	return 0
}

func (r *Results) io(variant, job string) IOResult {
	for _, x := range r.IO {
		if x.Variant == variant && x.Job == job {
			return x
		}
	}
	return IOResult{}
}

// Headline are the figures that have goals, each computed from this run alone.
type Headline struct {
	AgentOverRecipeLargest float64
	AgentOverFloorLargest  float64
	LargestOverSecond      float64
	WriteOverDefaults      float64
	ReadOverDefaults       float64
	CallsRatio             float64 // naive / batched at ComparedBurst, the largest burst both were run at
	ComparedBurst          int
	CallsPerInstance1k     float64 // batched, the 1,000 burst (the largest below it when not run), ledger calls included
	// OtherCallsPerInstance1k: of CallsPerInstance1k, what is neither a CreateGrant nor
	// the ledger's; GrantCallsPerInstance1k and LedgerCallsPerInstance1k those.
	OtherCallsPerInstance1k, GrantCallsPerInstance1k, LedgerCallsPerInstance1k float64
	LastCommandLargest                                                         float64 // batched, simulated seconds from launch to the last command of the largest burst
	// LargestBurst is the largest burst of the batched design; LastGrantLargest, DLQLargest
	// and LeftLargest its last grant (simulated s), its dead-lettered messages and the
	// instances left without a command.
	LargestBurst, DLQLargest, LeftLargest int
	LastGrantLargest                      float64
	BootOverBare                          float64 // boot-time mode: kernel to mounted, agent minus bare commands, seconds
	BootUnitOverBare                      float64 // the same for the units' own runs, which boot-to-boot variance in start time does not move
	// ScaleExt4, ScaleXFS: the agent's time to mounted on the largest shape over the
	// smallest (an i3en.24xlarge's 8 × 7,500 GB over 8 × 512 MiB); NitroExt4, NitroXFS the
	// same from the runs' estimates on Nitro hardware (Nitro); FastExt4, FastXFS those with
	// --fast-format's make and mount on the largest (Choices measured on its volume).
	ScaleExt4, ScaleXFS, NitroExt4, NitroXFS, FastExt4, FastXFS float64
	// DownloadPerRunMB is what one run downloads, in MB, on the architecture that
	// downloads most.
	DownloadPerRunMB float64
	// ColdStartWorstMs and BootstrapLargest: the slowest function's median cold start
	// and the largest function's bootstrap.
	ColdStartWorstMs float64
	BootstrapLargest int64
}

// Headlines computes them from the largest sizes measured.
func (r *Results) Headlines() Headline {
	var h Headline
	sizes := r.sizes()
	if n := len(sizes); n > 0 {
		big := sizes[n-1]
		h.AgentOverRecipeLargest = ratio(r.mount("agent", big), r.mount("recipe", big))
		h.AgentOverFloorLargest = ratio(r.mount("agent", big), r.mount("floor", big))
		if n > 1 {
			h.LargestOverSecond = ratio(r.mount("agent", big), r.mount("agent", sizes[n-2]))
		}
	}
	h.WriteOverDefaults = ratio(r.io("storecrypt", "seq-write-1m").MiBps, r.io("defaults", "seq-write-1m").MiBps)
	h.ReadOverDefaults = ratio(r.io("storecrypt", "seq-read-1m").MiBps, r.io("defaults", "seq-read-1m").MiBps)
	batched, naive := map[int]float64{}, map[int]float64{}
	for _, c := range r.ControlPlane {
		if !strings.HasPrefix(c.Design, "storecrypt") {
			naive[c.Instances] = c.CallsPerInstance
			if _, ok := batched[c.Instances]; ok && c.Instances > h.ComparedBurst {
				h.ComparedBurst = c.Instances
			}
			continue
		}
		batched[c.Instances], h.LastCommandLargest = c.CallsPerInstance, c.ToCommandMax
		h.LargestBurst, h.DLQLargest, h.LeftLargest, h.LastGrantLargest = c.Instances, c.DLQ, c.Unencrypted, c.LastGrantS
		if c.Instances <= 1000 {
			h.CallsPerInstance1k = c.CallsPerInstance
			h.OtherCallsPerInstance1k, h.GrantCallsPerInstance1k, h.LedgerCallsPerInstance1k = c.OtherCallsPerInstance, c.GrantCallsPerInstance, c.LedgerCallsPerInstance
		}
	}
	h.CallsRatio = ratio(naive[h.ComparedBurst], batched[h.ComparedBurst])
	guest := func(s *ScaleResult) float64 { return s.Seconds }
	nitro := func(s *ScaleResult) float64 {
		if s.Nitro == nil {
			return 0
		}
		return s.Nitro.Seconds
	}
	h.ScaleExt4, h.ScaleXFS = r.scaleRatio(contract.FilesystemExt4, guest), r.scaleRatio(contract.FilesystemXFS, guest)
	h.NitroExt4, h.NitroXFS = r.scaleRatio(contract.FilesystemExt4, nitro), r.scaleRatio(contract.FilesystemXFS, nitro)
	h.FastExt4, h.FastXFS = r.scaleRatio(contract.FilesystemExt4, r.nitroFast), r.scaleRatio(contract.FilesystemXFS, r.nitroFast)
	for _, b := range r.Footprint.DownloadPerRun {
		h.DownloadPerRunMB = max(h.DownloadPerRunMB, float64(b)/1e6)
	}
	for _, f := range r.Footprint.Functions {
		h.ColdStartWorstMs, h.BootstrapLargest = max(h.ColdStartWorstMs, f.ColdStartMedianMs), max(h.BootstrapLargest, f.Bootstrap)
	}
	if a, b := r.boot("agent"), r.boot("bare"); a != nil && b != nil {
		h.BootOverBare = a.KernelToMounted - b.KernelToMounted
		h.BootUnitOverBare = a.UnitSeconds - b.UnitSeconds
	}
	return h
}

// nitroFast is s's Nitro estimate with --fast-format's make and mount in place of the
// agent's own, where Choices measured them on s's volume; elsewhere its own estimate.
func (r *Results) nitroFast(s *ScaleResult) float64 {
	if s.Nitro == nil || s.Native == nil {
		return 0
	}
	for _, c := range r.Choices {
		if c.Filesystem != s.Filesystem || len(c.Flags) == 0 || c.VolumeBytes != s.Native.VolumeBytes {
			continue
		}
		e := s.Nitro.Seconds - s.Native.Mkfs - s.Native.Mount + c.Mkfs + c.Mount + float64(c.Written)/s.Nitro.WriteBytesPerSecond
		for _, st := range s.Steps {
			if strings.HasPrefix(st.Command, filesystem.Tool(s.Filesystem)) {
				e -= float64(st.Bytes) / s.Nitro.WriteBytesPerSecond
			}
		}
		return e
	}
	return s.Nitro.Seconds
}

// files is the choices' workload, in words.
func files(cs []Choice) string {
	if len(cs) == 0 {
		return "no"
	}
	return fmt.Sprintf("%d", cs[0].Files)
}

// scaleRatio is fs's time to mounted, by seconds, on the largest shape over the smallest.
func (r *Results) scaleRatio(fs string, seconds func(*ScaleResult) float64) float64 {
	var small, large *ScaleResult
	for i := range r.Scale {
		s := &r.Scale[i]
		if s.Filesystem != fs {
			continue
		}
		size := int64(s.Disks) * int64(s.DiskMiB)
		if small == nil || size < int64(small.Disks)*int64(small.DiskMiB) {
			small = s
		}
		if large == nil || size > int64(large.Disks)*int64(large.DiskMiB) {
			large = s
		}
	}
	if small == nil || small == large {
		return 0
	}
	return ratio(seconds(large), seconds(small))
}

func (r *Results) boot(variant string) *BootResult {
	for i := range r.Boot {
		if r.Boot[i].Variant == variant {
			return &r.Boot[i]
		}
	}
	return nil
}

func (r *Results) sizes() []int {
	var s []int
	for _, m := range r.Mount {
		if m.Variant == "agent" {
			s = append(s, m.SizeMiB)
		}
	}
	return s
}

func ratio(a, b float64) float64 {
	if b == 0 {
		return 0
	}
	return a / b
}

// WriteJSON writes the run to dir/runs/<time>.json and dir/latest.json.
func (r *Results) WriteJSON(dir string) error {
	b, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Join(dir, "runs"), 0o755); err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(dir, "runs", r.At.UTC().Format("20060102T150405Z")+".json"), b, 0o644); err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(dir, "latest.json"), b, 0o644)
}

// Plot draws time to mount against disk size, and calls per instance against burst size.
func (r *Results) Plot(dir string) error {
	p := plot.New()
	p.Title.Text = "Time to an encrypted, mounted filesystem"
	p.X.Label.Text = "disk size (MiB)"
	p.Y.Label.Text = "seconds"
	var lines []any
	for _, v := range []string{"recipe", "agent", "floor"} {
		var pts plotter.XYs
		for _, m := range r.Mount {
			if m.Variant == v {
				pts = append(pts, plotter.XY{X: float64(m.SizeMiB), Y: m.Seconds})
			}
		}
		lines = append(lines, v, pts)
	}
	if err := plotutil.AddLinePoints(p, lines...); err != nil {
		return err
	}
	if err := p.Save(6*vg.Inch, 4*vg.Inch, filepath.Join(dir, "mount.png")); err != nil {
		return err
	}
	q := plot.New()
	q.Title.Text = "AWS calls per instance in a launch burst"
	q.X.Label.Text = "instances launched at once"
	q.Y.Label.Text = "calls per instance (log)"
	q.Y.Scale = plot.LogScale{}
	q.Y.Tick.Marker = plot.LogTicks{Prec: -1}
	lines = nil
	for _, d := range []string{"storecrypt (batched)", "naive (per event)"} {
		var pts plotter.XYs
		for _, c := range r.ControlPlane {
			if c.Design == d {
				pts = append(pts, plotter.XY{X: float64(c.Instances), Y: c.CallsPerInstance})
			}
		}
		lines = append(lines, d, pts)
	}
	if err := plotutil.AddLinePoints(q, lines...); err != nil {
		return err
	}
	return q.Save(6*vg.Inch, 4*vg.Inch, filepath.Join(dir, "calls.png"))
}

// WriteMarkdown writes the tables.
func (r *Results) WriteMarkdown(w io.Writer) {
	h := r.Headlines()
	fmt.Fprintf(w, "Measured %s on %s.\n\n", r.At.UTC().Format("2006-01-02 15:04 MST"), r.Machine)
	fmt.Fprintf(w, "| headline | figure | goal |\n| --- | --- | --- |\n")
	fmt.Fprintf(w, "| agent / recipe, largest disk | %.3f | ≤ 0.03 |\n", h.AgentOverRecipeLargest)
	fmt.Fprintf(w, "| agent / floor, largest disk | %.2f | ≤ 1.5 |\n", h.AgentOverFloorLargest)
	fmt.Fprintf(w, "| agent, largest / second-largest disk | %.2f | ≤ 1.1 |\n", h.LargestOverSecond)
	fmt.Fprintf(w, "| storecrypt / defaults, sequential write | %.2f | ≥ 1.3 |\n", h.WriteOverDefaults)
	fmt.Fprintf(w, "| storecrypt / defaults, sequential read | %.2f | ≥ 1.3 |\n", h.ReadOverDefaults)
	fmt.Fprintf(w, "| naive / storecrypt AWS calls per instance, largest burst both ran (%d) | %.0f× | |\n", h.ComparedBurst, h.CallsRatio)
	fmt.Fprintf(w, "| storecrypt AWS calls per instance, 1,000 burst, throttled (ledger included) | %.3f | ≤ 0.10 |\n", h.CallsPerInstance1k)
	fmt.Fprintf(w, "| of which CreateGrant (one per instance by design) / the ledger's / everything else | %.3f / %.3f / %.3f | everything else ≤ 0.10 |\n", h.GrantCallsPerInstance1k, h.LedgerCallsPerInstance1k, h.OtherCallsPerInstance1k)
	fmt.Fprintf(w, "| storecrypt, launch to the last command of the largest burst (%d, simulated) | %.0f s | ≤ 120 s |\n", h.LargestBurst, h.LastCommandLargest)
	fmt.Fprintf(w, "| the same burst: last grant (s), messages dead-lettered, instances left without a command | %.0f s, %d, %d | DLQ 0 |\n", h.LastGrantLargest, h.DLQLargest, h.LeftLargest)
	fmt.Fprintf(w, "| boot-time mode: kernel to mounted, agent − bare commands | %+.2f s | ≤ 2 s |\n", h.BootOverBare)
	fmt.Fprintf(w, "| boot-time mode: the unit's own run, agent − bare commands | %+.2f s | ≤ 2 s |\n", h.BootUnitOverBare)
	fmt.Fprintf(w, "| time to mounted, 8 × 7,500 GB / 8 × 512 MiB, ext4 | %.2f | ≤ 2 |\n", h.ScaleExt4)
	fmt.Fprintf(w, "| time to mounted, 8 × 7,500 GB / 8 × 512 MiB, xfs | %.2f | ≤ 2 |\n", h.ScaleXFS)
	fmt.Fprintf(w, "| the same, estimated on Nitro hardware: ext4, xfs | %.2f, %.2f | ≤ 2 |\n", h.NitroExt4, h.NitroXFS)
	fmt.Fprintf(w, "| the same with `--fast-format` on the largest, estimated on Nitro hardware: ext4, xfs | %.2f, %.2f | ≤ 2 |\n", h.FastExt4, h.FastXFS)
	fmt.Fprintf(w, "| bytes an instance downloads per run, the larger architecture | %.2f MB | ≤ 8 MB |\n", h.DownloadPerRunMB)
	fmt.Fprintf(w, "| function cold start under RIE, median, the slowest function | %.1f ms | ≤ 25 ms |\n", h.ColdStartWorstMs)
	fmt.Fprintf(w, "| function `bootstrap` (linux/arm64), the largest | %.1f MiB | ≤ 10 MiB |\n\n", float64(h.BootstrapLargest)/(1<<20))

	fmt.Fprintf(w, "### Time to an encrypted, mounted filesystem\n\n| size | recipe (s) | agent (s) | floor (s) | agent/recipe | agent/floor | agent peak RSS |\n| --- | --- | --- | --- | --- | --- | --- |\n")
	for i, s := range r.sizes() {
		a, rc, f := r.mount("agent", s), r.mount("recipe", s), r.mount("floor", s)
		var rss int64
		if i < len(r.AgentMemory) {
			rss = r.AgentMemory[i].PeakRSS
		}
		fmt.Fprintf(w, "| %d MiB | %.1f | %.2f | %.2f | %.3f | %.2f | %.1f MiB |\n", s, rc, a, f, ratio(a, rc), ratio(a, f), float64(rss)/(1<<20))
	}
	fmt.Fprintf(w, "\n![time to mount](bench/mount.png)\n\n")

	fmt.Fprintf(w, "### Encrypted I/O (fio, direct I/O, psync, queue depth 1)\n\n| job | raw | cryptsetup defaults | storecrypt | defaults/raw | storecrypt/raw | storecrypt/defaults |\n| --- | --- | --- | --- | --- | --- | --- |\n")
	for _, j := range ioJobs {
		raw, def, sc := r.io("raw", j.name), r.io("defaults", j.name), r.io("storecrypt", j.name)
		unit, pick := "MiB/s", func(x IOResult) float64 { return x.MiBps }
		if strings.Contains(j.name, "4k") {
			unit, pick = "IOPS", func(x IOResult) float64 { return x.IOPS }
		}
		fmt.Fprintf(w, "| %s (%s) | %.0f | %.0f | %.0f | %.2f | %.2f | %.2f |\n", j.name, unit, pick(raw), pick(def), pick(sc), ratio(pick(def), pick(raw)), ratio(pick(sc), pick(raw)), ratio(pick(sc), pick(def)))
	}
	fmt.Fprintf(w, "\nThe dm-crypt flags storecrypt does not set, on 4K sectors, against its own (no_read/no_write_workqueue):\n\n| flags | seq-write-1m (MiB/s) | seq-read-1m (MiB/s) | rand-read-4k (IOPS) | storecrypt / these: write, read, 4K read |\n| --- | --- | --- | --- | --- |\n")
	for _, v := range flagVariants {
		wr, rd, rr := r.io(v.name, "seq-write-1m"), r.io(v.name, "seq-read-1m"), r.io(v.name, "rand-read-4k")
		if wr.MiBps == 0 {
			continue
		}
		sc := func(job string) IOResult { return r.io("storecrypt", job) }
		fmt.Fprintf(w, "| %s | %.0f | %.0f | %.0f | %.2f, %.2f, %.2f |\n", v.name, wr.MiBps, rd.MiBps, rr.IOPS,
			ratio(sc("seq-write-1m").MiBps, wr.MiBps), ratio(sc("seq-read-1m").MiBps, rd.MiBps), ratio(sc("rand-read-4k").IOPS, rr.IOPS))
	}

	fmt.Fprintln(w)
	r.WriteControlPlane(w)

	fmt.Fprintf(w, "### Boot-time mode: kernel start to an encrypted, mounted volume (first boot, systemd guest)\n\n| variant | disks | size | kernel to mounted (s), median | the unit's own run (s), median | each boot: kernel to mounted / own run (s) |\n| --- | --- | --- | --- | --- | --- |\n")
	for _, b := range r.Boot {
		runs := make([]string, len(b.UnitRuns))
		for i := range b.UnitRuns {
			runs[i] = fmt.Sprintf("%.2f / %.2f", b.KernelToMountedRuns[i], b.UnitRuns[i])
		}
		fmt.Fprintf(w, "| %s | %d | %d MiB | %.2f | %.2f | %s |\n", b.Variant, b.Disks, b.SizeMiB, b.KernelToMounted, b.UnitSeconds, strings.Join(runs, "; "))
	}
	fmt.Fprintln(w)

	fmt.Fprintf(w, "### Instance-store scale: the agent on 8 disks, each command's time and bytes written\n\n| filesystem | disks | total | apply (s) | each command: seconds, MiB written |\n| --- | --- | --- | --- | --- |\n")
	for _, s := range r.Scale {
		steps := make([]string, len(s.Steps))
		for i, st := range s.Steps {
			steps[i] = fmt.Sprintf("%s %.2f s, %.1f MiB", st.Command, st.Seconds, float64(st.Bytes)/(1<<20))
		}
		fmt.Fprintf(w, "| %s | %d × %s | %s | %.2f | %s |\n", s.Filesystem, s.Disks, size(int64(s.DiskMiB)<<20), size(int64(s.Disks)*int64(s.DiskMiB)<<20), s.Seconds, strings.Join(steps, "; "))
	}
	fmt.Fprintf(w, "\nThe same runs on Nitro hardware, estimated: mkfs and mount take their seconds on this host's CPU (the agent's own command lines, on a sparse file of the volume's size in memory, mounted through a loop device); the rest of the run (the probes, the key, the header, the array, the agent's own work: nothing that grows with the disks, so the least any run took, the trace's own processes included) takes its guest seconds over the emulator's factor for a process (`cryptsetup --version`, guest ÷ native, each side the mean of 20, the median over the runs); every byte written costs the slower of AES-XTS on one core here and the instance store's documented write rate. The mkfs factor is the same mkfs on the same kind of file in the guest's memory, over native: the emulator's cost for the filesystem's per-group work alone.\n\n| filesystem | total | guest (s) | mkfs: guest in memory / native (s), factor | mount, native (s) | the rest, guest (s) | process factor | write rate | Nitro, estimated (s) |\n| --- | --- | --- | --- | --- | --- | --- | --- | --- |\n")
	for _, s := range r.Scale {
		if s.Native == nil || s.Nitro == nil {
			continue
		}
		n, e := s.Native, s.Nitro
		fmt.Fprintf(w, "| %s | %s | %.2f | %.2f / %.2f, %.0f× | %.2f | %.2f (fixed: %.2f) | %.0f× | %.1f GB/s | %.2f |\n", s.Filesystem, size(n.VolumeBytes), s.Seconds, n.GuestMkfs, n.Mkfs, e.MkfsFactor, n.Mount, s.rest(), e.FixedSeconds, e.ProcessFactor, e.WriteBytesPerSecond/1e9, e.Seconds)
	}
	fmt.Fprintln(w)

	fmt.Fprintf(w, "### What a user can choose for a large volume (--fast-format), natively on this host (as above, without dm-crypt)\n\n| filesystem | flags added | volume | mkfs (s) | mkfs wrote | mount (s) | %s 1 KiB files: create + sync (s) | remove + sync (s) | space per file |\n| --- | --- | --- | --- | --- | --- | --- | --- | --- |\n", files(r.Choices))
	for _, c := range r.Choices {
		flags := "(the agent's own)"
		if len(c.Flags) > 0 {
			flags = "`" + strings.Join(c.Flags, " ") + "`"
		}
		fmt.Fprintf(w, "| %s | %s | %s | %.2f | %.0f MB | %.2f | %.2f | %.2f | %.1f KiB |\n", c.Filesystem, flags, size(c.VolumeBytes), c.Mkfs, float64(c.Written)/1e6, c.Mount, c.Create, c.Remove, c.BytesPerFile/1024)
	}
	fmt.Fprintln(w)

	f := r.Footprint
	fmt.Fprintf(w, "### Footprint\n\n| what | figure |\n| --- | --- |\n")
	for _, fn := range artifact.Functions {
		ff := f.Functions[fn]
		fmt.Fprintf(w, "| %s function: cold start under RIE (process start to first answer), median of %d (slowest) | %.1f ms (%.1f ms) |\n", fn, ff.ColdStartSamples, ff.ColdStartMedianMs, ff.ColdStartMaxMs)
		fmt.Fprintf(w, "| %s function: peak RSS (host build) | %.1f MiB |\n", fn, float64(ff.MaxRSS)/(1<<20))
		fmt.Fprintf(w, "| %s function: allocated by package init (garbage collections before the first request) | %.2f MB (%d) |\n", fn, float64(ff.InitBytes)/1e6, ff.InitCollections)
		fmt.Fprintf(w, "| %s function: `bootstrap` (linux/arm64) | %.1f MiB |\n", fn, float64(ff.Bootstrap)/(1<<20))
	}
	fmt.Fprintf(w, "| agent binary (linux/amd64, static) | %.1f MiB |\n", float64(f.AgentBinary)/(1<<20))
	fmt.Fprintf(w, "| agent peak RSS during apply, largest disk | %.1f MiB |\n", float64(f.AgentPeakRSS)/(1<<20))
	for _, arch := range document.Architectures {
		fmt.Fprintf(w, "| one run's download on a linux/%s instance (the document's download steps) | %.2f MB |\n", arch, float64(f.DownloadPerRun[arch])/1e6)
	}
}

// size prints bytes in the unit a reader of disk sizes expects: decimal GB and TB, as
// EC2 states instance store, below that MiB.
func size(b int64) string {
	switch {
	case b >= 1e12:
		return fmt.Sprintf("%.1f TB", float64(b)/1e12)
	case b >= 1e9:
		return fmt.Sprintf("%.0f GB", float64(b)/1e9)
	}
	return fmt.Sprintf("%d MiB", b>>20)
}

// WriteControlPlane writes the control plane's tables: the launch burst and the fleet
// revoke.
func (r *Results) WriteControlPlane(w io.Writer) {
	fmt.Fprintf(w, "### The control plane: a launch burst under throttling\n\nEach API at its documented rate (controlplane.Rates); AWS calls are the attempts, throttled ones included, the ledger's DynamoDB calls apart; per instance counts both, then splits them.\n\n"+
		"| design | instances | AWS calls | ledger calls | per instance | CreateGrant / ledger / other per instance | SendCommand | invocations | throttled attempts | launch to command p50 / p95 / max (s) | last grant (s) | simulated s to drain | left without a command | dead-lettered |\n"+
		"| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |\n")
	for _, c := range r.ControlPlane {
		fmt.Fprintf(w, "| %s | %d | %d | %d | %.3f | %.3f / %.3f / %.3f | %d | %d | %d | %.0f / %.0f / %.0f | %.0f | %.0f | %d | %d |\n", c.Design, c.Instances, c.Calls, c.LedgerCalls, c.CallsPerInstance,
			c.GrantCallsPerInstance, c.LedgerCallsPerInstance, c.OtherCallsPerInstance, c.SendCommands, c.Invocations, c.Throttled,
			c.ToCommandP50, c.ToCommandP95, c.ToCommandMax, c.LastGrantS, c.DrainSeconds, c.Unencrypted, c.DLQ)
	}
	for _, c := range r.ControlPlane {
		if !strings.HasPrefix(c.Design, "storecrypt") && 2*c.Unencrypted > c.Instances {
			fmt.Fprintf(w, "\nAt %d launches the %s design leaves %d without a command: a ratio against it compares with a design that mostly does not work.\n", c.Instances, c.Design, c.Unencrypted)
		}
	}
	if h := r.Headlines(); h.ComparedBurst < h.LargestBurst {
		fmt.Fprintf(w, "\nThe naive design is simulated up to %d launches: one invocation per event takes too long to simulate beyond (`-naive-max`).\n", h.ComparedBurst)
	}
	fmt.Fprintf(w, "\n![calls per instance](bench/calls.png)\n\n")

	fmt.Fprintf(w, "### Fleet revoke: `storecrypt revoke --all` under the same throttling\n\nSimulated seconds from the responder's confirmation, one call at a time; KMS applies the key tag and each revoked grant within up to five minutes after the call.\n\n| instances | calls to the key's refusal (key tagged, s) | AWS calls | ledger calls | per instance | last grant revoked (s) | last command (s) | throttled attempts | revoked / failed | calls by API |\n| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |\n")
	for _, f := range r.FleetRevoke {
		fmt.Fprintf(w, "| %d | %d (%.2f) | %d | %d | %.2f | %.1f | %.1f | %d | %d / %d | %s |\n", f.Instances, f.CallsToKeyRefusal, f.KeyTaggedS, f.Calls, f.LedgerCalls, f.CallsPerInstance,
			f.LastGrantRevokedS, f.LastCommandS, f.Throttled, f.Revoked, f.Failed, controlplane.ByAPI(f.ByAPI))
	}
	fmt.Fprintln(w)
}
