package bench

import (
	"math"
	"strings"
	"testing"
)

func TestEstimate(t *testing.T) {
	run := ScaleResult{Filesystem: "xfs", Seconds: 10, Steps: []StepWrite{
		{Command: "cryptsetup --version", Seconds: 0.5},
		{Command: "cryptsetup luksFormat", Seconds: 1, Bytes: 1e9},
		{Command: "mkfs.xfs -q", Seconds: 6, Bytes: 2e9},
		{Command: "mount -t", Seconds: 0.5},
	}}
	native := Native{Mkfs: 0.3, GuestMkfs: 3, Mount: 0.2}
	if got := run.rest(); math.Abs(got-3.5) > 1e-9 {
		t.Errorf("the run's rest: %.2f s, want 10 less mkfs's 6 and mount's 0.5", got)
	}
	if got := fixedSeconds([]ScaleResult{run, {Filesystem: "ext4", Seconds: 2, Steps: []StepWrite{{Command: "mkfs.ext4 -q", Seconds: 1}}}}); got != 1 {
		t.Errorf("fixed seconds %.2f, want the least rest, 1", got)
	}
	for _, tc := range []struct {
		name string
		aes  float64
		want float64
	}{
		// 2 fixed seconds over process factor 50; mkfs and mount native; 3 GB at the
		// slower of the two rates.
		{"the disks are slower", 1e12, 0.04 + 0.3 + 0.2 + 3e9/nvmeWriteBytesPerSecond},
		{"the cipher is slower", 1e9, 0.04 + 0.3 + 0.2 + 3},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e, err := estimate(run, native, 50, 2, tc.aes)
			if err != nil {
				t.Fatal(err)
			}
			if math.Abs(e.Seconds-tc.want) > 1e-9 || e.ProcessFactor != 50 || e.MkfsFactor != 10 {
				t.Errorf("estimate %+v, want %.4f s, process factor 50, mkfs factor 10", e, tc.want)
			}
		})
	}
	if _, err := estimate(run, native, 0, 2, 1e9); err == nil || !strings.Contains(err.Error(), "missing") {
		t.Errorf("estimate without the process factor: %v, want an error", err)
	}
}

func TestProcessFactor(t *testing.T) {
	for _, tc := range []struct {
		name    string
		natives []*Native
		want    float64 // 0 for an error
	}{
		{"the median of three", []*Native{{Version: 0.01, GuestVersion: 0.2}, {Version: 0.01, GuestVersion: 0.9}, {Version: 0.02, GuestVersion: 0.6}}, 30},
		{"of two, their mean", []*Native{{Version: 0.01, GuestVersion: 0.2}, {Version: 0.01, GuestVersion: 0.4}}, 30},
		{"a run without the guest's figure", []*Native{{Version: 0.01, GuestVersion: 0.2}, {Version: 0.01}}, 0},
		{"no runs", nil, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := processFactor(tc.natives)
			if (err != nil) != (tc.want == 0) || math.Abs(got-tc.want) > 1e-9 {
				t.Errorf("got %v, %v; want %v", got, err, tc.want)
			}
		})
	}
}

// TestNitroFast: --fast-format's estimate swaps the largest run's native make and mount,
// and the bytes its mkfs wrote, for the choice's own, measured on the same volume.
func TestNitroFast(t *testing.T) {
	const w = 1e9
	large := ScaleResult{Filesystem: "xfs", Steps: []StepWrite{{Command: "mkfs.xfs -q", Bytes: 2e9}},
		Native: &Native{VolumeBytes: 60e12, Mkfs: 2, Mount: 0.1}, Nitro: &Nitro{Seconds: 5, WriteBytesPerSecond: w}}
	r := Results{Choices: []Choice{
		{Filesystem: "xfs", VolumeBytes: 60e12, Mkfs: 2, Mount: 0.1, Written: 2e9},
		{Filesystem: "xfs", Flags: []string{"-l", "size=512m"}, VolumeBytes: 60e12, Mkfs: 0.3, Mount: 0.05, Written: 5e8},
		{Filesystem: "ext4", Flags: []string{"-O", "bigalloc"}, VolumeBytes: 60e12, Mkfs: 0.1, Mount: 0.01, Written: 1e7},
	}}
	if got, want := r.nitroFast(&large), 5-2-0.1-2+0.3+0.05+0.5; math.Abs(got-want) > 1e-9 {
		t.Errorf("with --fast-format: %.3f s, want %.3f", got, want)
	}
	small := large
	small.Native = &Native{VolumeBytes: 4e9, Mkfs: 0.01, Mount: 0.01}
	if got := r.nitroFast(&small); got != 5 {
		t.Errorf("a volume the choices were not measured on: %.3f s, want its own estimate, 5", got)
	}
}
