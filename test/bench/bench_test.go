package bench

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/storecrypt/storecrypt/infra/artifact"
	"github.com/storecrypt/storecrypt/internal/contract"
	"github.com/storecrypt/storecrypt/test/bench/controlplane"
	"github.com/storecrypt/storecrypt/test/testbed"
	"github.com/storecrypt/storecrypt/test/vm"
)

// The smoke's sizes: the smallest at which each benchmark still does all it does at full
// size (`make bench`), so that a broken benchmark fails here in a couple of minutes.
const (
	smokeBurst   = 20
	smokeSamples = 1
	smokeDiskMiB = 64
)

// smokeScale is the smallest RAID0 xfs accepts (300 MB) once LUKS and md take their share.
var smokeScale = Shape{Disks: 2, DiskMiB: 256}

// smokeChoiceBytes is the smallest volume whose xfs gets the largest default log (2 GB),
// so that a smaller one shows; smokeChoiceFiles fills a couple of directories.
const (
	smokeChoiceBytes = 4 << 40
	smokeChoiceFiles = 2000
)

// smokeIO keeps every job and variant of the I/O benchmark, on a few MiB each.
var smokeIO = IOJobs{MiB: 8, RandSeconds: 1}

// TestSmoke runs every benchmark small, so that `make bench` does not rot: it checks
// that each produces figures and that the comparisons point the right way, not speed.
// Each benchmark is a subtest, so a failure names it and the slowest tests show its time.
func TestSmoke(t *testing.T) {
	ctx := context.Background()
	res := &Results{At: time.Now(), Machine: Machine()}
	if err := vm.Available(); err != nil {
		if os.Getenv("CI") != "" {
			t.Fatal(err)
		}
		t.Skip(err)
	}
	dir := t.TempDir()
	t.Run("footprint", func(t *testing.T) {
		var err error
		if res.Footprint, err = MeasureFootprint(ctx, dir, filepath.Join("..", "..", "bin"), smokeSamples); err != nil {
			if os.Getenv("CI") != "" {
				t.Fatal(err)
			}
			t.Skip(err)
		}
		if f := res.Footprint; f.ColdStartMedianMs <= 0 || f.LaunchMaxRSS <= 0 || f.AgentBinary <= 0 || len(f.DownloadPerRun) == 0 || len(f.Functions) != len(artifact.Functions) {
			t.Errorf("footprint %+v", f)
		}
		for fn, ff := range res.Footprint.Functions {
			if ff.ColdStartMedianMs <= 0 || ff.MaxRSS <= 0 || ff.Bootstrap <= 0 || ff.InitBytes <= 0 {
				t.Errorf("the %s function's footprint %+v: want every figure measured", fn, ff)
			}
		}
	})
	agent, err := testbed.Agent(dir)
	if err != nil {
		t.Fatal(err)
	}
	t.Run("mount", func(t *testing.T) {
		var err error
		if res.Mount, res.AgentMemory, err = Mount(ctx, dir, agent, []int{smokeDiskMiB}); err != nil {
			t.Fatal(err)
		}
		if a, r := res.mount("agent", smokeDiskMiB), res.mount("recipe", smokeDiskMiB); a <= 0 || a >= r {
			t.Errorf("agent %.2fs, recipe %.2fs", a, r)
		}
		if res.AgentMemory[0].PeakRSS <= 0 {
			t.Errorf("no peak memory measured")
		}
	})
	t.Run("boot", func(t *testing.T) {
		var err error
		if res.Boot, err = Boot(ctx, dir, agent, smokeDiskMiB, 1); err != nil {
			t.Fatal(err)
		}
		for _, b := range res.Boot {
			if b.UnitSeconds <= 0 || b.KernelToMounted <= b.UnitSeconds {
				t.Errorf("boot figures %+v", b)
			}
		}
		if len(res.Boot) != 2 {
			t.Errorf("%d boot figures, want the agent's and the bare commands'", len(res.Boot))
		}
	})
	t.Run("scale", func(t *testing.T) {
		var err error
		if res.Scale, err = Scale(ctx, dir, agent, []Shape{smokeScale}); err != nil {
			t.Fatal(err)
		}
		for _, s := range res.Scale {
			var wrote int64
			for _, st := range s.Steps {
				wrote += st.Bytes
			}
			if s.Seconds <= 0 || len(s.Steps) < 4 || wrote <= 0 {
				t.Errorf("scale figures %+v", s)
			}
			if n, e := s.Native, s.Nitro; n == nil || e == nil || n.Mkfs <= 0 || n.Mount <= 0 || n.GuestMkfs <= n.Mkfs || e.Seconds <= 0 || e.Seconds >= s.Seconds {
				t.Errorf("%s: native figures %+v and Nitro estimate %+v: want each measured, the guest slower than this host and the estimate under the guest's %.2f s", s.Filesystem, n, e, s.Seconds)
			}
		}
		if len(res.Scale) != 2 {
			t.Errorf("%d scale figures, want ext4's and xfs's", len(res.Scale))
		}
	})
	t.Run("choices", func(t *testing.T) {
		var err error
		if res.Choices, err = MeasureChoices(ctx, smokeChoiceBytes, smokeChoiceFiles); err != nil {
			t.Fatal(err)
		}
		if len(res.Choices) != 4 {
			t.Fatalf("%d choices measured, want ext4 and xfs each with and without --fast-format", len(res.Choices))
		}
		own := map[string]Choice{}
		for _, c := range res.Choices {
			if c.Mkfs <= 0 || c.Mount <= 0 || c.Written <= 0 || c.Create <= 0 || c.Remove <= 0 || c.BytesPerFile <= 0 {
				t.Errorf("choice figures %+v", c)
			}
			if len(c.Flags) == 0 {
				own[c.Filesystem] = c
				continue
			}
			// Each choice is there to write less at mkfs; bigalloc's price is the space.
			if o := own[c.Filesystem]; c.Written >= o.Written {
				t.Errorf("%s %v wrote %d bytes at mkfs, the agent's own flags %d: want fewer", c.Filesystem, c.Flags, c.Written, o.Written)
			}
			if o := own[c.Filesystem]; c.Filesystem == contract.FilesystemExt4 && c.BytesPerFile < 8*o.BytesPerFile {
				t.Errorf("ext4 %v took %.0f bytes a file, the agent's own flags %.0f: want a cluster each", c.Flags, c.BytesPerFile, o.BytesPerFile)
			}
		}
	})
	t.Run("io", func(t *testing.T) {
		var err error
		if res.IO, err = IO(ctx, dir, agent, smokeDiskMiB, smokeIO); err != nil {
			t.Fatal(err)
		}
		if want := len(ioJobs) * (3 + len(flagVariants)); len(res.IO) != want {
			t.Errorf("%d fio figures, want %d", len(res.IO), want)
		}
		for _, x := range res.IO {
			if x.MiBps <= 0 || x.IOPS <= 0 {
				t.Errorf("fio gave %+v", x)
			}
		}
	})
	t.Run("report", func(t *testing.T) {
		// The control plane's checks are its own package's (controlplane); here only its
		// rows and plot in the report.
		for _, design := range []func(context.Context, int, uint64) (controlplane.BurstResult, error){controlplane.Batched, controlplane.Naive} {
			r, err := design(ctx, smokeBurst, 1)
			if err != nil {
				t.Fatal(err)
			}
			res.ControlPlane = append(res.ControlPlane, r)
		}
		out := t.TempDir()
		if err := res.WriteJSON(out); err != nil {
			t.Fatal(err)
		}
		if err := res.Plot(out); err != nil {
			t.Fatal(err)
		}
		for _, f := range []string{"latest.json", "mount.png", "calls.png"} {
			if st, err := os.Stat(filepath.Join(out, f)); err != nil || st.Size() == 0 {
				t.Errorf("%s was not written: %v", f, err)
			}
		}
		var md strings.Builder
		res.WriteMarkdown(&md)
		t.Log("\n" + md.String())
	})
}
