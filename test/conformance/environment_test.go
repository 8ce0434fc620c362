package conformance

import (
	"slices"
	"sort"
	"testing"

	"github.com/storecrypt/storecrypt/internal/contract"
	"github.com/storecrypt/storecrypt/internal/launch"
	"github.com/storecrypt/storecrypt/internal/result"
	"github.com/storecrypt/storecrypt/test/cfn"
)

// TestFunctionEnvironment feeds each function's environment, as the template sets it in
// each partition, to its config loader: it loads, and every variable the loader reads
// is one the template sets or one contract.OptionalEnv documents.
func TestFunctionEnvironment(t *testing.T) {
	for _, source := range []string{contract.KeySourceKMSDataKey, contract.KeySourceS3KMS} {
		for _, env := range cfn.Partitions {
			t.Run(source+"/"+env.Partition, func(t *testing.T) {
				d := deploy(t, source, env)
				for name, tc := range map[string]struct {
					env  map[string]string
					load func(func(string) string) error
				}{
					"launch": {d.launchEnv, func(g func(string) string) error { _, err := launch.LoadConfig(g); return err }},
					"result": {d.resultEnv, func(g func(string) string) error { _, err := result.LoadConfig(g); return err }},
				} {
					var read []string
					getenv := func(k string) string { read = append(read, k); return tc.env[k] }
					if err := tc.load(getenv); err != nil {
						t.Errorf("%s: the template's environment does not load: %v", name, err)
					}
					sort.Strings(read)
					for _, k := range slices.Compact(read) {
						if _, set := tc.env[k]; !set && contract.OptionalEnv[k] == "" {
							t.Errorf("%s reads %s, which the template does not set and contract.OptionalEnv does not document", name, k)
						}
					}
					if len(read) == 0 {
						t.Errorf("%s read nothing", name)
					}
				}
			})
		}
	}
}
