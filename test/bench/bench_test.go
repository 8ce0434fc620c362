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

// smokeIO keeps every job and variant of the I/O benchmark, on a few MiB each.
var smokeIO = IOJobs{MiB: 8, RandSeconds: 1}

// TestSmoke runs every benchmark small, so that `make bench` does not rot: it checks
// that each produces figures and that the comparisons point the right way, not speed.
// Each benchmark is a subtest, so a failure names it and the slowest tests show its time.
func TestSmoke(t *testing.T) {
	ctx := context.Background()
	res := &Results{At: time.Now(), Machine: Machine()}
	t.Run("fleet revoke", func(t *testing.T) {
		const n = 120
		r, err := FleetRevoke(ctx, n)
		if err != nil {
			t.Fatal(err)
		}
		res.FleetRevoke = append(res.FleetRevoke, r)
		// The key refuses the whole fleet after one call; every other call is bounded by
		// the fleet's size: a RevokeGrant per grant, the grants read 100 a page, a command
		// per 50 instances, a PutEvents per 10.
		bound := 1 + (n+1+99)/100 + n + (n+49)/50 + (n+9)/10
		if r.CallsToKeyRefusal != 1 || r.Revoked != n || r.Failed != 0 || r.Calls-r.Throttled > bound {
			t.Errorf("got %d calls to the key's refusal, %d revoked, %d failed, %d calls (%d throttled); want 1, %d, 0, at most %d calls besides throttled ones",
				r.CallsToKeyRefusal, r.Revoked, r.Failed, r.Calls, r.Throttled, n, bound)
		}
		t.Logf("fleet revoke of %d: %d AWS calls (%s), %d ledger calls, last command at %.1f s", n, r.Calls, byAPI(r.ByAPI), r.LedgerCalls, r.LastCommandS)
	})
	t.Run("control plane", func(t *testing.T) {
		for _, design := range []func(context.Context, int, uint64) (ControlPlaneResult, error){Batched, Naive} {
			r, err := design(ctx, smokeBurst, 1)
			if err != nil {
				t.Fatal(err)
			}
			res.ControlPlane = append(res.ControlPlane, r)
			// A baseline that commands nothing makes every ratio against it a comparison
			// with a design that does not work.
			if r.SendCommands == 0 || r.Unencrypted == r.Instances {
				t.Errorf("%s: %d commands sent, %d of %d instances left without one: the design does nothing", r.Design, r.SendCommands, r.Unencrypted, r.Instances)
			}
			t.Logf("%s: %d commands, %d of %d left, %.1f calls per instance", r.Design, r.SendCommands, r.Unencrypted, r.Instances, r.CallsPerInstance)
		}
		b, n := res.ControlPlane[0], res.ControlPlane[1]
		if b.Unencrypted != 0 || b.SendCommands == 0 || b.CallsPerInstance >= n.CallsPerInstance {
			t.Errorf("batched %+v against naive %+v", b, n)
		}
		// A tenth of the SSM agents are late: their messages come back after the function's
		// short delay, long before the queue's visibility timeout.
		if !(0 < b.ToCommandP50 && b.ToCommandP50 <= b.ToCommandP95 && b.ToCommandP95 <= b.ToCommandMax && b.ToCommandMax < contract.LaunchVisibility.Seconds()) {
			t.Errorf("launch to command p50 %.1f s, p95 %.1f s, max %.1f s", b.ToCommandP50, b.ToCommandP95, b.ToCommandMax)
		}
	})

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
		}
		if len(res.Scale) != 2 {
			t.Errorf("%d scale figures, want ext4's and xfs's", len(res.Scale))
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
