package bench

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/storecrypt/storecrypt/infra/artifact"
	"github.com/storecrypt/storecrypt/internal/contract"
	"github.com/storecrypt/storecrypt/internal/document"
	"github.com/storecrypt/storecrypt/internal/fakeaws"
	"github.com/storecrypt/storecrypt/test/rie"
)

// Footprint is what the functions and the agent cost to start and to hold.
type Footprint struct {
	// The launch function's figures, kept under their first names so that earlier runs'
	// latest.json still compare; Functions holds them for every function.
	ColdStartMedianMs float64 `json:"launch_cold_start_median_ms"` // process start to first answer under RIE
	ColdStartSamples  int     `json:"launch_cold_start_samples"`
	LaunchMaxRSS      int64   `json:"launch_max_rss_bytes"`
	LaunchBootstrap   int64   `json:"launch_bootstrap_bytes"` // linux/arm64, as deployed
	ResultBootstrap   int64   `json:"result_bootstrap_bytes"`
	// Functions is each Lambda function's footprint, by its name in artifact.Functions.
	Functions    map[string]FunctionFootprint `json:"functions"`
	AgentBinary  int64                        `json:"agent_binary_bytes"` // linux/amd64
	AgentPeakRSS int64                        `json:"agent_peak_rss_bytes"`
	// DownloadPerRun is what one run of the document downloads on an instance of each
	// architecture (GOARCH): the objects of its download steps as the SSM Agent renders
	// them for that Architecture.
	DownloadPerRun map[string]int64 `json:"download_per_run_bytes"`
}

// FunctionFootprint is one function's cost to start and to hold.
type FunctionFootprint struct {
	ColdStartMedianMs float64 `json:"cold_start_median_ms"` // process start to first answer under RIE
	ColdStartMaxMs    float64 `json:"cold_start_max_ms"`
	ColdStartSamples  int     `json:"cold_start_samples"`
	MaxRSS            int64   `json:"max_rss_bytes"`   // host build
	Bootstrap         int64   `json:"bootstrap_bytes"` // linux/arm64, as deployed
	// InitBytes is what every package's init allocates (GODEBUG=inittrace=1): unlike
	// the milliseconds, the same on a loaded machine as on an idle one.
	InitBytes int64 `json:"init_alloc_bytes"`
	// InitCollections is how many garbage collections ran before the first request.
	InitCollections int `json:"init_collections"`
}

// MeasureFootprint starts each function under RIE samples times (a cold start each) and
// reads the sizes of the built artifacts in buildDir (`make build`'s bin/).
func MeasureFootprint(ctx context.Context, dir, buildDir string, samples int) (Footprint, error) {
	f := Footprint{Functions: map[string]FunctionFootprint{}}
	for _, fn := range artifact.Functions {
		fnDir := filepath.Join(dir, fn)
		if err := os.MkdirAll(fnDir, 0o755); err != nil {
			return f, err
		}
		ff, err := measureFunction(ctx, fnDir, fn, samples)
		if err != nil {
			return f, fmt.Errorf("the %s function: %w", fn, err)
		}
		st, err := os.Stat(filepath.Join(artifact.Function(buildDir, fn), "bootstrap"))
		if err != nil {
			return f, fmt.Errorf("run `make build` first: %w", err)
		}
		ff.Bootstrap = st.Size()
		f.Functions[fn] = ff
	}
	launch := f.Functions["launch"]
	f.ColdStartMedianMs, f.ColdStartSamples, f.LaunchMaxRSS = launch.ColdStartMedianMs, launch.ColdStartSamples, launch.MaxRSS
	f.LaunchBootstrap, f.ResultBootstrap = launch.Bootstrap, f.Functions["result"].Bootstrap
	var err error
	if f.DownloadPerRun, err = downloadPerRun(buildDir); err != nil {
		return f, err
	}
	st, err := os.Stat(filepath.Join(buildDir, "storecrypt-agent-linux-amd64"))
	if err != nil {
		return f, fmt.Errorf("run `make build` first: %w", err)
	}
	f.AgentBinary = st.Size()
	return f, nil
}

// measureFunction builds the function for this host into dir and starts it samples times
// with its probe (rie.Probes).
func measureFunction(ctx context.Context, dir, fn string, samples int) (FunctionFootprint, error) {
	p, ok := rie.Probes[fn]
	if !ok {
		return FunctionFootprint{}, fmt.Errorf("no probe: add one to rie.Probes")
	}
	bootstrap, emulator, err := rie.Build(dir, "github.com/storecrypt/storecrypt/functions/"+fn)
	if err != nil {
		return FunctionFootprint{}, err
	}
	payload, err := p.Payload()
	if err != nil {
		return FunctionFootprint{}, err
	}
	var ff FunctionFootprint
	st, err := rie.InitCosts(ctx, bootstrap, p.Env)
	if err != nil {
		return ff, err
	}
	for _, c := range st.Packages {
		ff.InitBytes += c.Bytes
	}
	ff.InitCollections = st.Collections
	var colds []time.Duration
	for range samples {
		inv, err := rie.Invoke(ctx, emulator, bootstrap, p.Env, payload)
		if err != nil {
			return ff, err
		}
		if strings.Contains(inv.Answer, "errorType") || inv.MaxRSS == 0 {
			return ff, fmt.Errorf("did not answer (peak RSS %d): %s\n%s", inv.MaxRSS, inv.Answer, inv.Logs)
		}
		colds = append(colds, inv.Cold)
		ff.MaxRSS = max(ff.MaxRSS, inv.MaxRSS)
	}
	slices.Sort(colds)
	ff.ColdStartMedianMs = ms(colds[len(colds)/2])
	ff.ColdStartMaxMs = ms(colds[len(colds)-1])
	ff.ColdStartSamples = samples
	return ff, nil
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

// downloadPerRun renders the document over the built agents (make build's bin/, each URL
// a file there) for each architecture, with the SSM Agent model, and sums the sizes of
// the files its download steps fetch.
func downloadPerRun(buildDir string) (map[string]int64, error) {
	agents := document.Agents{URLPrefix: "file://" + filepath.Join(buildDir, "storecrypt-agent-linux-")}
	for _, arch := range document.Architectures {
		agents.Each = append(agents.Each, document.Agent{Arch: arch, SHA256: strings.Repeat("0", 64), GzSHA256: strings.Repeat("0", 64)})
	}
	content, err := json.Marshal(document.Content(contract.DefaultAgentOptions(), agents))
	if err != nil {
		return nil, err
	}
	out := map[string]int64{}
	for _, arch := range document.Architectures {
		plan, err := fakeaws.PlanCommand(string(content), map[string][]string{document.ArchitectureParameter: {arch}}, "Linux")
		if err != nil {
			return nil, err
		}
		paths, err := plan.Downloads()
		if err != nil {
			return nil, err
		}
		for _, path := range paths {
			st, err := os.Stat(strings.TrimPrefix(path, "file://"))
			if err != nil {
				return nil, fmt.Errorf("run `make build` first: %w", err)
			}
			out[arch] += st.Size()
		}
	}
	return out, nil
}
