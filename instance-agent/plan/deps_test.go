package plan

import (
	"os/exec"
	"strings"
	"testing"
)

// TestLinksNoAWSSDK: the planner decides from facts and does no I/O, so nothing it links
// may reach AWS; a token type or helper it needs lives in an SDK-free package (keytoken),
// and the executor in the agent makes the calls. go test puts its own go first in PATH.
func TestLinksNoAWSSDK(t *testing.T) {
	out, err := exec.Command("go", "list", "-deps", "github.com/storecrypt/storecrypt/instance-agent/plan").Output()
	if err != nil {
		t.Fatalf("go list -deps: %v", err)
	}
	var aws []string
	for pkg := range strings.FieldsSeq(string(out)) {
		if strings.HasPrefix(pkg, "github.com/aws/") {
			aws = append(aws, pkg)
		}
	}
	if len(aws) > 0 {
		t.Errorf("plan links %d AWS SDK packages (%s ...), want none", len(aws), aws[0])
	}
}
