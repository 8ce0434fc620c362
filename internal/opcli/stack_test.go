package opcli

import (
	"strings"
	"testing"

	"github.com/storecrypt/storecrypt/internal/contract"
)

// TestOutputsOfAnEmbeddedStack: built into another stack, every output key carries the
// construct's prefix, and DocumentName is a suffix of the revocation documents' names:
// each name still finds its own output, and two constructs' keys are still refused.
func TestOutputsOfAnEmbeddedStack(t *testing.T) {
	o := outputs{}
	for _, name := range append([]string{contract.OutputKeyARN, contract.OutputDocumentName, contract.OutputDocumentDigest}, ownOutputs...) {
		o["WebTier"+name] = "value of " + name
	}
	for _, name := range append([]string{contract.OutputKeyARN, contract.OutputDocumentName, contract.OutputDocumentDigest}, ownOutputs...) {
		got, err := o.get(name)
		if err != nil || got != "value of "+name {
			t.Errorf("get(%s): got %q, %v; want %q", name, got, err, "value of "+name)
		}
	}
	o["BatchDocumentName"] = "another construct's"
	if _, err := o.get(contract.OutputDocumentName); err == nil || !strings.Contains(err.Error(), "BatchDocumentName, WebTierDocumentName") {
		t.Errorf("two constructs: got %v, want both named", err)
	}
}
