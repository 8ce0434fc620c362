package fakeaws

import (
	"encoding/json"
	"fmt"
	"slices"
	"strings"
)

// TagPolicyAllows is AWS Organizations' enforcement of a tag policy on one tagging
// operation: the tags a resource of resourceType ("ec2:instance") would carry. Written from
// the Organizations User Guide, "Tag policy syntax" and "Enforcing consistency with tag
// policies":
//   - a policy's tag_key names the key with its compliant capitalization: a tag whose key
//     matches it ignoring case but not exactly is noncompliant;
//   - tag_value lists the compliant values, compared exactly; a value may end in a
//     single * that matches any rest;
//   - enforced_for lists the resource types on which a noncompliant operation fails;
//     elsewhere it is only reported, so it is allowed here.
func TagPolicyAllows(policyJSON, resourceType string, tags map[string]string) error {
	var doc struct {
		Tags map[string]struct {
			Key struct {
				Assign string `json:"@@assign"`
			} `json:"tag_key"`
			Value struct {
				Assign []string `json:"@@assign"`
			} `json:"tag_value"`
			Enforced struct {
				Assign []string `json:"@@assign"`
			} `json:"enforced_for"`
		} `json:"tags"`
	}
	if err := json.Unmarshal([]byte(policyJSON), &doc); err != nil {
		return fmt.Errorf("tag policy: %w", err)
	}
	for _, p := range doc.Tags {
		if p.Key.Assign == "" {
			return fmt.Errorf("tag policy: a tag without tag_key")
		}
		if !slices.Contains(p.Enforced.Assign, resourceType) {
			continue
		}
		for k, v := range tags {
			if !strings.EqualFold(k, p.Key.Assign) {
				continue
			}
			if k != p.Key.Assign {
				return fmt.Errorf("tag key %q: the policy capitalizes it %q", k, p.Key.Assign)
			}
			if p.Value.Assign != nil && !slices.ContainsFunc(p.Value.Assign, func(allowed string) bool {
				prefix, wild := strings.CutSuffix(allowed, "*")
				return v == allowed || wild && strings.HasPrefix(v, prefix)
			}) {
				return fmt.Errorf("tag %s=%q: the policy allows only %v", k, v, p.Value.Assign)
			}
		}
	}
	return nil
}
