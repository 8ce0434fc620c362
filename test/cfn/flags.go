package cfn

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
)

// UnsetFeatureFlags reads the feature-flag report CDK writes into a cloud assembly
// (manifest.json, artifact type cdk:feature-flag-report) and returns the flags that have a
// recommended value the app's context does not set: each one is a line of the CLI's
// "N feature flags are not configured" notice, and a behaviour that changes under the app
// when a CDK release changes the flag's default. It is an error when the assembly reports
// no flag at all, so that a check built on it cannot pass by reading nothing.
func UnsetFeatureFlags(assembly string) ([]string, error) {
	b, err := os.ReadFile(filepath.Join(assembly, "manifest.json"))
	if err != nil {
		return nil, err
	}
	var manifest struct {
		Artifacts map[string]struct {
			Type       string
			Properties struct {
				Flags map[string]struct {
					UserValue        any `json:"userValue"`
					RecommendedValue any `json:"recommendedValue"`
				}
			}
		}
	}
	if err := json.Unmarshal(b, &manifest); err != nil {
		return nil, fmt.Errorf("%s: %w", assembly, err)
	}
	var unset []string
	reported := 0
	for _, a := range manifest.Artifacts {
		if a.Type != "cdk:feature-flag-report" {
			continue
		}
		for name, f := range a.Properties.Flags {
			reported++
			if f.UserValue == nil && f.RecommendedValue != nil {
				unset = append(unset, name)
			}
		}
	}
	if reported == 0 {
		return nil, errors.New(assembly + " reports no feature flags")
	}
	slices.Sort(unset)
	return unset, nil
}
