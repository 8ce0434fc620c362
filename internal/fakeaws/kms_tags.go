package fakeaws

import (
	"maps"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kms"
)

// KMS key tags, from the AWS KMS API Reference (TagResource, UntagResource): a key, not
// an alias ("you cannot tag ... an alias"); "To add a tag, specify a new tag key and a
// tag value. To edit a tag, specify an existing tag key and a new tag value"; "Tagging or
// untagging a KMS key can allow or deny permission to the KMS key" (ABAC for KMS, which
// also says a change may take up to five minutes to apply; the world applies it at once).
func init() {
	register("KMS", map[string]handler{
		"TagResource":   (*World).tagResource,
		"UntagResource": (*World).untagResource,
	})
}

func (w *World) tagResource(params any) (any, error) {
	in := params.(*kms.TagResourceInput)
	k, err := w.key(in.KeyId, false)
	if err != nil {
		return nil, err
	}
	if k.Tags == nil {
		k.Tags = map[string]string{}
	}
	for _, t := range in.Tags {
		k.Tags[aws.ToString(t.TagKey)] = aws.ToString(t.TagValue)
	}
	return &kms.TagResourceOutput{}, nil
}

func (w *World) untagResource(params any) (any, error) {
	in := params.(*kms.UntagResourceInput)
	k, err := w.key(in.KeyId, false)
	if err != nil {
		return nil, err
	}
	maps.DeleteFunc(k.Tags, func(key, _ string) bool {
		for _, gone := range in.TagKeys {
			if gone == key {
				return true
			}
		}
		return false
	})
	return &kms.UntagResourceOutput{}, nil
}
