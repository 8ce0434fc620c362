package contract_test

import (
	"reflect"
	"strings"
	"testing"

	"github.com/storecrypt/storecrypt/internal/contract"
)

// TestAgentAccess: the grants the binding check simulates, from what a stack's outputs
// say, in the stack's partition, region and account (the key's).
func TestAgentAccess(t *testing.T) {
	const policy = "arn:aws-cn:iam::111122223333:policy/storecrypt/storecrypt-instance-access-cn-north-1"
	a, err := contract.AgentAccess(policy, []string{"s3://code-cn-north-1/p/storecrypt-agent-0123-amd64.gz", "s3://code-cn-north-1/p/storecrypt-agent-0123-arm64.gz"},
		"agent-logs", "arn:aws-cn:kms:cn-north-1:111122223333:key/11111111-2222-4333-8444-555555555555")
	if err != nil {
		t.Fatal(err)
	}
	want := []contract.Grant{
		{"StoreCryptAgentamd64", contract.AgentReadActions, []string{"arn:aws-cn:s3:::code-cn-north-1/p/storecrypt-agent-0123-amd64.gz"}},
		{"StoreCryptAgentarm64", contract.AgentReadActions, []string{"arn:aws-cn:s3:::code-cn-north-1/p/storecrypt-agent-0123-arm64.gz"}},
		{"StoreCryptCommandOutput", contract.CommandOutputActions, []string{"arn:aws-cn:logs:cn-north-1:111122223333:log-group:agent-logs:*"}},
		{"StoreCryptFindOutputGroup", contract.FindOutputGroupActions, []string{"arn:aws-cn:logs:cn-north-1:111122223333:log-group:*"}},
	}
	if got := a.Grants(); !reflect.DeepEqual(got, want) || a.Policy != policy {
		t.Errorf("got %+v (policy %s), want %+v (policy %s)", got, a.Policy, want, policy)
	}
	for _, tc := range []struct {
		name, logs, key string
		urls            []string
		says            string
	}{
		{"no agents", "agent-logs", "arn:aws:kms:us-east-1:111122223333:key/k", nil, "no agent objects"},
		{"an agent not an s3 URL", "agent-logs", "arn:aws:kms:us-east-1:111122223333:key/k", []string{"https://b/k"}, "want s3://bucket/key"},
		{"no log group", "", "arn:aws:kms:us-east-1:111122223333:key/k", []string{"s3://b/k-amd64.gz"}, "no agent log group"},
		{"a key alias", "agent-logs", "alias/storecrypt", []string{"s3://b/k-amd64.gz"}, "not a KMS key ARN"},
	} {
		if _, err := contract.AgentAccess(policy, tc.urls, tc.logs, tc.key); err == nil || !strings.Contains(err.Error(), tc.says) {
			t.Errorf("%s: got %v, want an error saying %q", tc.name, err, tc.says)
		}
	}
}
