package bench

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/storecrypt/storecrypt/internal/contract"
	"github.com/storecrypt/storecrypt/test/testbed"
	"github.com/storecrypt/storecrypt/test/vm"
)

// TestSmoke runs every benchmark small, so that `make bench` does not rot: it checks
// that each produces figures and that the comparisons point the right way, not speed.
func TestSmoke(t *testing.T) {
	ctx := context.Background()
	res := &Results{At: time.Now(), Machine: Machine()}
	for _, design := range []func(context.Context, int, uint64) (ControlPlaneResult, error){Batched, Naive} {
		r, err := design(ctx, 100, 1)
		if err != nil {
			t.Fatal(err)
		}
		res.ControlPlane = append(res.ControlPlane, r)
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

	if err := vm.Available(); err != nil {
		if os.Getenv("CI") != "" {
			t.Fatal(err)
		}
		t.Skip(err)
	}
	dir := t.TempDir()
	build := filepath.Join("..", "..", "bin")
	var err error
	if res.Footprint, err = MeasureFootprint(ctx, dir, build, 3); err != nil {
		if os.Getenv("CI") != "" {
			t.Fatal(err)
		}
		t.Skip(err)
	}
	agent, err := testbed.BuildAgent(dir)
	if err != nil {
		t.Fatal(err)
	}
	if res.Mount, res.AgentMemory, err = Mount(ctx, dir, agent, []int{64}); err != nil {
		t.Fatal(err)
	}
	if a, r := res.mount("agent", 64), res.mount("recipe", 64); a <= 0 || a >= r {
		t.Errorf("agent %.2fs, recipe %.2fs", a, r)
	}
	if res.AgentMemory[0].PeakRSS <= 0 {
		t.Errorf("no peak memory measured")
	}
	if res.Boot, err = Boot(ctx, dir, agent, 64, 1); err != nil {
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
	if res.Scale, err = Scale(ctx, dir, agent, []Shape{{Disks: 2, DiskMiB: 256}}); err != nil {
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
	if res.IO, err = IO(ctx, dir, agent, 128); err != nil {
		t.Fatal(err)
	}
	for _, x := range res.IO {
		if x.MiBps <= 0 || x.IOPS <= 0 {
			t.Errorf("fio gave %+v", x)
		}
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
}
