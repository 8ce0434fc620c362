package deployment

import (
	"encoding/json"
	"fmt"

	"github.com/storecrypt/storecrypt/internal/contract"
	"github.com/storecrypt/storecrypt/internal/fakeaws"
)

// RevocationDocuments registers the revoke, resume and shred documents in w, with the
// parameters the contract names (their steps are the stack's, not the CLI's concern), and
// names them in the stack's outputs when Into deployed it.
func RevocationDocuments(w *fakeaws.World) {
	param := func(pattern string) map[string]string {
		return map[string]string{"type": "String", "allowedPattern": pattern}
	}
	for _, d := range []struct {
		name, output string
		shred        bool
	}{
		{contract.DocumentRevoke, contract.OutputRevokeDocumentName, false},
		{contract.DocumentResume, contract.OutputResumeDocumentName, false},
		{contract.DocumentShred, contract.OutputShredDocumentName, true},
	} {
		params := map[string]any{contract.RevokeReasonParameter: param(contract.PatternRevokeReason), contract.RevokeByParameter: param(contract.PatternRevokeBy)}
		if d.shred {
			params[contract.ShredConfirmParameter] = param(`^i-[0-9a-f]{8,17}$`)
		}
		raw, err := json.Marshal(map[string]any{"schemaVersion": "2.2", "description": d.name, "parameters": params,
			"mainSteps": []map[string]any{{"action": "aws:runShellScript", "name": contract.DocumentRunStep, "inputs": map[string]any{"runCommand": []string{"true"}}}}})
		if err != nil {
			panic(fmt.Sprintf("encoding document %s: %v", d.name, err)) // a literal always encodes
		}
		w.AddDocument(d.name, string(raw), true)
		w.With(func() {
			if s := w.Stacks[contract.StackName]; s != nil {
				s.Outputs[d.output] = d.name
			}
		})
	}
}
