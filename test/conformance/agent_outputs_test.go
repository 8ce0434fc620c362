package conformance

import (
	"fmt"
	"strings"
	"testing"

	"github.com/storecrypt/storecrypt/internal/contract"
	"github.com/storecrypt/storecrypt/internal/document"
	"github.com/storecrypt/storecrypt/internal/fakeaws"
	"github.com/storecrypt/storecrypt/test/cfn"
)

// TestAgentOutputsAreTheDocumentsAgents: the agent the stack outputs for user data and
// image builds (boot-time mode) is the object the document downloads for that
// architecture, as the SSM Agent renders the deployed document, with the digest the
// document checks, in every partition.
func TestAgentOutputsAreTheDocumentsAgents(t *testing.T) {
	for _, env := range cfn.Partitions {
		d := deploy(t, contract.KeySourceKMSDataKey, env)
		for _, arch := range document.Architectures {
			plan, urls := d.planFor(t, arch)
			script := ""
			for _, s := range plan.Steps {
				if s.Action == "aws:runShellScript" {
					script = fmt.Sprint(s.Inputs["runCommand"])
				}
			}
			name := "Agent" + strings.ToUpper(arch[:1]) + arch[1:]
			s3url, sum := d.outputs[name+"S3Url"], d.outputs[name+"Sha256"]
			object, ok := strings.CutPrefix(s3url, "s3://")
			if len(urls) != 1 || !ok || !strings.HasSuffix(urls[0], "/"+object) {
				t.Errorf("%s: output %s is %q, the document downloads %q", env.Partition, name+"S3Url", s3url, urls)
			}
			if len(sum) != 64 || !strings.Contains(script, "arch="+arch+"; sum="+sum+";") {
				t.Errorf("%s: output %sSha256 %q is not the digest the document checks", env.Partition, name, sum)
			}
		}
	}
}

// planFor is the deployed document as the SSM Agent renders it on Linux for a command of
// arch, and the URLs its download steps fetch.
func (d *deployment) planFor(t *testing.T, arch string) (fakeaws.Plan, []string) {
	t.Helper()
	plan, err := fakeaws.PlanCommand(d.document, map[string][]string{document.ArchitectureParameter: {arch}}, "Linux")
	if err != nil {
		t.Fatal(err)
	}
	urls, err := plan.Downloads()
	if err != nil {
		t.Fatal(err)
	}
	return plan, urls
}
