package conformance

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"

	"github.com/storecrypt/storecrypt/internal/contract"
	"github.com/storecrypt/storecrypt/test/cfn"
)

// TestAgentOutputsAreTheDocumentsAgents: the agent the stack outputs for user data and
// image builds (boot-time mode) is the object the document downloads, with the digest
// the document checks, in every partition.
func TestAgentOutputsAreTheDocumentsAgents(t *testing.T) {
	for _, env := range cfn.Partitions {
		d := deploy(t, contract.KeySourceKMSDataKey, env)
		var doc struct {
			MainSteps []struct {
				Name   string
				Inputs map[string]any
			}
		}
		if err := json.Unmarshal([]byte(d.document), &doc); err != nil {
			t.Fatal(err)
		}
		urls := map[string]string{}
		script := ""
		for _, s := range doc.MainSteps {
			if arch, ok := strings.CutPrefix(s.Name, "download_"); ok {
				var info struct{ Path string }
				if err := json.Unmarshal([]byte(fmt.Sprint(s.Inputs["sourceInfo"])), &info); err != nil {
					t.Fatal(err)
				}
				urls[arch] = info.Path
			} else {
				script = fmt.Sprint(s.Inputs["runCommand"])
			}
		}
		for arch, url := range urls {
			name := "Agent" + strings.ToUpper(arch[:1]) + arch[1:]
			s3url, sum := d.outputs[name+"S3Url"], d.outputs[name+"Sha256"]
			object, ok := strings.CutPrefix(s3url, "s3://")
			if !ok || !strings.HasSuffix(url, "/"+object) {
				t.Errorf("%s: output %s is %q, the document downloads %q", env.Partition, name+"S3Url", s3url, url)
			}
			if len(sum) != 64 || !strings.Contains(script, "arch="+arch+"; sum="+sum) {
				t.Errorf("%s: output %sSha256 %q is not the digest the document checks", env.Partition, name, sum)
			}
		}
		if len(urls) != 2 {
			t.Errorf("%s: the document downloads %d agents", env.Partition, len(urls))
		}
	}
}
