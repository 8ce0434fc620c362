package opcli_test

import (
	"fmt"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"

	"github.com/storecrypt/storecrypt/internal/opcli"
)

// TestTargetFilters: --targets takes the short form and SSM's own Key=...,Values=...,
// and refuses what SSM would not send or storecrypt does not rerun by.
func TestTargetFilters(t *testing.T) {
	for _, tc := range []struct {
		targets []string
		want    string // the filters as name=values;..., or the error
	}{
		{[]string{"tag:team=batch"}, "tag:team=batch"},
		{[]string{"tag:team=batch,web"}, "tag:team=batch,web"},
		{[]string{"tag-key=team"}, "tag-key=team"},
		{[]string{"Key=tag:team,Values=batch"}, "tag:team=batch"},
		{[]string{"Key=tag:team,Values=batch,web"}, "tag:team=batch,web"},
		{[]string{"Key=tag-key,Values=team,owner"}, "tag-key=team,owner"},
		{[]string{"Key=InstanceIds,Values=i-01234567,i-0123456789abcdef0"}, "instance-id=i-01234567,i-0123456789abcdef0"},
		{[]string{"Key=tag:team,Values=batch", "tag-key=owner"}, "tag:team=batch;tag-key=owner"},
		{[]string{"Key=InstanceIds,Values=i-1"}, `error: --targets "Key=InstanceIds,Values=i-1": Values "i-1": want an instance id`},
		{[]string{"Key=resource-groups:Name,Values=prod"}, `error: --targets "Key=resource-groups:Name,Values=prod": key "resource-groups:Name" is not one storecrypt reruns by`},
		{[]string{"Key=tag:team"}, `error: --targets "Key=tag:team": want tag:Key=Value`},
		{[]string{"Key=tag:team,Values="}, `error: --targets "Key=tag:team,Values=": want`},
		{[]string{"Key=tag:team,Values=a,,b"}, `error: --targets "Key=tag:team,Values=a,,b": want`},
		{[]string{"Key=tag:,Values=a"}, `error: --targets "Key=tag:,Values=a": key "tag:"`},
		{[]string{"team=batch"}, `error: --targets "team=batch": want`},
		{[]string{"tag:team="}, `error: --targets "tag:team=": want`},
	} {
		t.Run(strings.Join(tc.targets, " "), func(t *testing.T) {
			filters, err := opcli.TargetFilters(tc.targets)
			got := "error: " + fmt.Sprint(err)
			if err == nil {
				var fs []string
				for _, f := range filters {
					fs = append(fs, aws.ToString(f.Name)+"="+strings.Join(f.Values, ","))
				}
				got = strings.Join(fs, ";")
			}
			if !strings.HasPrefix(got, tc.want) {
				t.Errorf("got %q, want %q", got, tc.want)
			}
		})
	}
}
