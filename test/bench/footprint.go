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

	"github.com/storecrypt/storecrypt/events"
	"github.com/storecrypt/storecrypt/internal/contract"
	"github.com/storecrypt/storecrypt/internal/document"
	"github.com/storecrypt/storecrypt/internal/fakeaws"
	"github.com/storecrypt/storecrypt/test/deployment"
	"github.com/storecrypt/storecrypt/test/rie"
)

// Footprint is what the functions and the agent cost to start and to hold.
type Footprint struct {
	ColdStartMedianMs float64 `json:"launch_cold_start_median_ms"` // process start to first answer under RIE
	ColdStartSamples  int     `json:"launch_cold_start_samples"`
	LaunchMaxRSS      int64   `json:"launch_max_rss_bytes"`
	LaunchBootstrap   int64   `json:"launch_bootstrap_bytes"` // linux/arm64, as deployed
	ResultBootstrap   int64   `json:"result_bootstrap_bytes"`
	AgentBinary       int64   `json:"agent_binary_bytes"` // linux/amd64
	AgentPeakRSS      int64   `json:"agent_peak_rss_bytes"`
	// DownloadPerRun is what one run of the document downloads on an instance of each
	// architecture (GOARCH): the objects of its download steps as the SSM Agent renders
	// them for that Architecture.
	DownloadPerRun map[string]int64 `json:"download_per_run_bytes"`
}

// MeasureFootprint starts the launch function under RIE samples times (a cold start each)
// and reads the sizes of the built artifacts in buildDir (`make build`'s bin/).
func MeasureFootprint(ctx context.Context, dir, buildDir string, samples int) (Footprint, error) {
	bootstrap, emulator, err := rie.Build(dir, "github.com/storecrypt/storecrypt/functions/launch")
	if err != nil {
		return Footprint{}, err
	}
	body, err := events.Read("ec2-stopped.json")
	if err != nil {
		return Footprint{}, err
	}
	payload := fmt.Sprintf(`{"Records":[{"messageId":"m-1","body":%q}]}`, body)
	// The whole configuration the stack gives it: with any of it missing the init fails,
	// and a failed init is no cold start.
	env := []string{
		contract.EnvKMSKeyARN + "=arn:aws:kms:us-east-1:111122223333:key/11111111-2222-4333-8444-555555555555",
		contract.EnvDocumentName + "=" + contract.DocumentName,
		contract.EnvDocumentDigest + "=" + strings.Repeat("ab", 32),
		contract.EnvInstanceRoles + "=arn:aws:iam::111122223333:role/storecrypt-instance",
		contract.EnvLaunchRole + "=" + deployment.LaunchRole("aws"),
		contract.EnvQueueURL + "=https://sqs.us-east-1.amazonaws.com/111122223333/storecrypt-launch",
		contract.EnvLedgerTable + "=storecrypt-ledger",
		"AWS_REGION=us-east-1", "AWS_ACCESS_KEY_ID=bench", "AWS_SECRET_ACCESS_KEY=bench",
	}
	var colds []time.Duration
	var f Footprint
	for range samples {
		inv, err := rie.Invoke(ctx, emulator, bootstrap, env, payload)
		if err != nil {
			return f, err
		}
		if strings.Contains(inv.Answer, "errorType") || inv.MaxRSS == 0 {
			return f, fmt.Errorf("the launch function did not answer (peak RSS %d): %s\n%s", inv.MaxRSS, inv.Answer, inv.Logs)
		}
		colds = append(colds, inv.Cold)
		f.LaunchMaxRSS = max(f.LaunchMaxRSS, inv.MaxRSS)
	}
	slices.Sort(colds)
	f.ColdStartMedianMs = float64(colds[len(colds)/2].Microseconds()) / 1000
	f.ColdStartSamples = samples
	if f.DownloadPerRun, err = downloadPerRun(buildDir); err != nil {
		return f, err
	}
	for path, dst := range map[string]*int64{
		"functions/launch/bootstrap":   &f.LaunchBootstrap,
		"functions/result/bootstrap":   &f.ResultBootstrap,
		"storecrypt-agent-linux-amd64": &f.AgentBinary,
	} {
		st, err := os.Stat(filepath.Join(buildDir, path))
		if err != nil {
			return f, fmt.Errorf("run `make build` first: %w", err)
		}
		*dst = st.Size()
	}
	return f, nil
}

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
