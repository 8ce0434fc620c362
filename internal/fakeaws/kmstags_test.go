package fakeaws

import (
	"context"
	"slices"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kms"
	kmstypes "github.com/aws/aws-sdk-go-v2/service/kms/types"
)

// TestKeyTags: TagResource and UntagResource show at once in ListResourceTags, and in
// authorization (aws:ResourceTag) only once settled ("Recent changes might be visible in
// API operations before they affect authorization"); a deny on the tag follows that. The
// requests carry aws:TagKeys and, for TagResource, aws:RequestTag.
func TestKeyTags(t *testing.T) {
	const policy = `{"Version":"2012-10-17","Statement":[
		{"Effect":"Allow","Principal":{"AWS":"arn:aws:iam::111122223333:root"},"Action":"kms:*","Resource":"*"},
		{"Effect":"Deny","Principal":"*","Action":"kms:Decrypt","Resource":"*","Condition":{"Null":{"aws:ResourceTag/storecrypt:revoked":"false"}}}]}`
	w := NewAccount(t)
	c := kms.NewFromConfig(w.Config())
	ctx := context.Background()
	decrypt := func() Decision {
		reqs, err := w.Authz(Call{Service: "KMS", Operation: "Decrypt", Params: &kms.DecryptInput{KeyId: aws.String(KeyARN), CiphertextBlob: []byte("c")}}, grantee, "", nil)
		if err != nil {
			t.Fatal(err)
		}
		d, err := KMSDecision(policy, []string{Allows("kms:Decrypt")}, nil, reqs[0])
		if err != nil {
			t.Fatal(err)
		}
		return d
	}
	tag := func() error {
		_, err := c.TagResource(ctx, &kms.TagResourceInput{KeyId: aws.String(KeyARN), Tags: []kmstypes.Tag{{TagKey: aws.String("storecrypt:revoked"), TagValue: aws.String("2026-12-07T08:00:00Z")}}})
		return err
	}
	untag := func() error {
		_, err := c.UntagResource(ctx, &kms.UntagResourceInput{KeyId: aws.String(KeyARN), TagKeys: []string{"storecrypt:revoked"}})
		return err
	}
	for _, step := range []struct {
		name   string
		do     func() error // nil: nothing changes
		settle bool         // KMS applies the changes to authorization
		listed bool
		want   Decision
	}{
		{"untagged", nil, true, false, Allow},
		{"tagged, not yet in effect", tag, false, true, Allow},
		{"tagged and settled", nil, true, true, ExplicitDeny},
		{"untagged, not yet in effect", untag, false, false, ExplicitDeny},
		{"tagged again before the untag took effect", tag, false, true, ExplicitDeny},
		{"untagged and settled", untag, true, false, Allow},
	} {
		if step.do != nil {
			if err := step.do(); err != nil {
				t.Fatalf("%s: %v", step.name, err)
			}
		}
		if step.settle {
			w.SettleTags()
		}
		out, err := c.ListResourceTags(ctx, &kms.ListResourceTagsInput{KeyId: aws.String(KeyARN)})
		if err != nil {
			t.Fatalf("%s: %v", step.name, err)
		}
		listed := slices.ContainsFunc(out.Tags, func(t kmstypes.Tag) bool { return aws.ToString(t.TagKey) == "storecrypt:revoked" })
		if listed != step.listed {
			t.Errorf("%s: ListResourceTags shows the tag: got %v, want %v", step.name, listed, step.listed)
		}
		if got := decrypt(); got != step.want {
			t.Errorf("%s: Decrypt: got %s, want %s", step.name, got, step.want)
		}
	}

	for _, tc := range []struct {
		name string
		call any
		want map[string][]string
	}{
		{"TagResource", &kms.TagResourceInput{KeyId: aws.String(KeyARN), Tags: []kmstypes.Tag{{TagKey: aws.String("b"), TagValue: aws.String("2")}, {TagKey: aws.String("a"), TagValue: aws.String("1")}}},
			map[string][]string{"aws:TagKeys": {"a", "b"}, "aws:RequestTag/a": {"1"}, "aws:RequestTag/b": {"2"}}},
		{"UntagResource", &kms.UntagResourceInput{KeyId: aws.String(KeyARN), TagKeys: []string{"a"}}, map[string][]string{"aws:TagKeys": {"a"}}},
	} {
		op := tc.name
		reqs, err := w.Authz(Call{Service: "KMS", Operation: op, Params: tc.call}, grantee, "", nil)
		if err != nil || len(reqs) != 1 {
			t.Fatalf("%s: got %d requests, %v; want 1", tc.name, len(reqs), err)
		}
		if reqs[0].Action != "kms:"+op || reqs[0].Resource != KeyARN {
			t.Errorf("%s: got %s on %s, want kms:%s on the key", tc.name, reqs[0].Action, reqs[0].Resource, op)
		}
		for k, v := range tc.want {
			if got := reqs[0].Context[k]; !slices.Equal(got, v) {
				t.Errorf("%s: %s: got %q, want %q", tc.name, k, got, v)
			}
		}
	}
}
