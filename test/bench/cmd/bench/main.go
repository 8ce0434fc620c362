// Command bench is `make bench`: every benchmark at full size, written to
// docs/benchmarks.md (between its results markers), docs/bench/*.png and
// docs/bench/runs/<time>.json.
package main

import (
	"bytes"
	"context"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/storecrypt/storecrypt/test/bench"
	"github.com/storecrypt/storecrypt/test/bench/controlplane"
	"github.com/storecrypt/storecrypt/test/testbed"
)

func ints(s string) ([]int, error) {
	var out []int
	for _, f := range strings.Split(s, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil {
			return nil, fmt.Errorf("%q: %w", s, err)
		}
		out = append(out, n)
	}
	return out, nil
}

func main() {
	sizes := flag.String("sizes", "256,1024,4096", "disk sizes in MiB for time to mount")
	bursts := flag.String("bursts", "100,1000,10000,100000", "launch burst sizes")
	naiveMax := flag.Int("naive-max", 10000, "the largest burst the naive design is simulated at")
	fleets := flag.String("fleets", "1000", "fleet sizes `storecrypt revoke --all` is run over")
	ioSize := flag.Int("io-size", 512, "disk size in MiB for the I/O benchmark")
	samples := flag.Int("samples", 20, "cold starts to take the median of")
	bootRounds := flag.Int("boot-rounds", 3, "first boots of each kind to take the median of, in boot-time mode")
	docs := flag.String("docs", "docs", "where benchmarks.md and bench/ are")
	only := flag.String("only", "", `"controlplane": only the launch bursts and fleet revokes (no guest), their tables printed, nothing written`)
	flag.Parse()
	var err error
	switch *only {
	case "":
		err = run(*sizes, *bursts, *fleets, *naiveMax, *ioSize, *samples, *bootRounds, *docs)
	case "controlplane":
		res := &bench.Results{At: time.Now(), Machine: bench.Machine()}
		if err = controlPlane(context.Background(), res, *bursts, *fleets, *naiveMax); err == nil {
			res.WriteControlPlane(os.Stdout)
		}
	default:
		err = fmt.Errorf("-only %q: the only part is controlplane", *only)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
}

func progress(format string, args ...any) { fmt.Fprintf(os.Stderr, "bench: "+format+"\n", args...) }

// controlPlane runs the launch bursts, storecrypt's at every size and the naive design's
// up to naiveMax (its one invocation per event takes long to simulate past that), then
// the fleet revokes.
func controlPlane(ctx context.Context, res *bench.Results, burstsFlag, fleetsFlag string, naiveMax int) error {
	bursts, err := ints(burstsFlag)
	if err != nil {
		return err
	}
	fleets, err := ints(fleetsFlag)
	if err != nil {
		return err
	}
	for _, n := range bursts {
		designs := []func(context.Context, int, uint64) (controlplane.BurstResult, error){controlplane.Batched}
		if n <= naiveMax {
			designs = append(designs, controlplane.Naive)
		}
		for _, design := range designs {
			start := time.Now()
			r, err := design(ctx, n, 1)
			if err != nil {
				return err
			}
			progress("control plane, %s, burst of %d: simulated in %s", r.Design, n, time.Since(start).Round(time.Millisecond))
			res.ControlPlane = append(res.ControlPlane, r)
		}
	}
	for _, n := range fleets {
		progress("fleet revoke of %d instances", n)
		r, err := controlplane.FleetRevoke(ctx, n)
		if err != nil {
			return err
		}
		res.FleetRevoke = append(res.FleetRevoke, r)
	}
	return nil
}

func run(sizesFlag, burstsFlag, fleetsFlag string, naiveMax, ioSize, samples, bootRounds int, docs string) error {
	sizes, err := ints(sizesFlag)
	if err != nil {
		return err
	}
	ctx := context.Background()
	dir, err := os.MkdirTemp("", "storecrypt-bench-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	res := &bench.Results{At: time.Now(), Machine: bench.Machine()}
	if err := controlPlane(ctx, res, burstsFlag, fleetsFlag, naiveMax); err != nil {
		return err
	}
	progress("footprint (%d cold starts)", samples)
	if res.Footprint, err = bench.MeasureFootprint(ctx, dir, "bin", samples); err != nil {
		return err
	}
	agent, err := testbed.BuildAgent(dir)
	if err != nil {
		return err
	}
	progress("time to mount at %v MiB (the recipe zero-fills: minutes at 4 GiB)", sizes)
	if res.Mount, res.AgentMemory, err = bench.Mount(ctx, dir, agent, sizes); err != nil {
		return err
	}
	if len(res.AgentMemory) > 0 {
		res.Footprint.AgentPeakRSS = res.AgentMemory[len(res.AgentMemory)-1].PeakRSS
	}
	progress("boot-time mode: kernel to mounted on 2 × %d MiB, agent and bare commands, %d boots each", sizes[len(sizes)-1], bootRounds)
	if res.Boot, err = bench.Boot(ctx, dir, agent, sizes[len(sizes)-1], bootRounds); err != nil {
		return err
	}
	shapes := []bench.Shape{{Disks: bench.I3en24xlarge.Disks, DiskMiB: 512}, bench.I3en24xlarge}
	progress("instance-store scale: the agent on %v (disks × MiB, sparse), ext4 and xfs", shapes)
	if res.Scale, err = bench.Scale(ctx, dir, agent, shapes); err != nil {
		return err
	}
	largest := res.Scale[len(res.Scale)-1].Native.VolumeBytes
	progress("--fast-format or not, ext4 and xfs on %d bytes, natively, with %d small files", largest, choiceFiles)
	if res.Choices, err = bench.MeasureChoices(ctx, largest, choiceFiles); err != nil {
		return err
	}
	progress("encrypted I/O with fio on %d MiB disks", ioSize)
	if res.IO, err = bench.IO(ctx, dir, agent, ioSize, bench.FullIO); err != nil {
		return err
	}
	out := filepath.Join(docs, "bench")
	if err := res.WriteJSON(out); err != nil {
		return err
	}
	if err := res.Plot(out); err != nil {
		return err
	}
	return writeDoc(filepath.Join(docs, "benchmarks.md"), res)
}

// choiceFiles is the choices' small-file workload: 100 directories, about 15 s a choice
// on this machine.
const choiceFiles = 100_000

// writeDoc replaces the generated part of benchmarks.md, keeping the prose around it.
func writeDoc(path string, res *bench.Results) error {
	const begin, end = "<!-- results: generated by make bench -->", "<!-- end of results -->"
	doc, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	i, j := bytes.Index(doc, []byte(begin)), bytes.Index(doc, []byte(end))
	if i < 0 || j < i {
		return fmt.Errorf("%s has no results markers", path)
	}
	var b bytes.Buffer
	b.Write(doc[:i+len(begin)])
	b.WriteString("\n")
	res.WriteMarkdown(&b)
	b.Write(doc[j:])
	return os.WriteFile(path, b.Bytes(), 0o644)
}
