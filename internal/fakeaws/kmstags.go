package fakeaws

import (
	"maps"
	"sort"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kms"
	kmstypes "github.com/aws/aws-sdk-go-v2/service/kms/types"
)

// KMS tags, from the AWS KMS API Reference (TagResource, UntagResource, ListResourceTags)
// and the Developer Guide ("ABAC for AWS KMS", "Tagging keys").
func init() {
	register("KMS", map[string]handler{
		"TagResource":      (*World).tagKey,
		"UntagResource":    (*World).untagKey,
		"ListResourceTags": (*World).listKeyTags,
	})
}

// tagKey: "To add a tag, specify a new tag key and a tag value. To edit a tag, specify an
// existing tag key and a new tag value"; keys and values are case-sensitive; no alias.
func (w *World) tagKey(params any) (any, error) {
	in := params.(*kms.TagResourceInput)
	k, err := w.key(in.KeyId, false)
	if err != nil {
		return nil, err
	}
	next := maps.Clone(k.Tags)
	if next == nil {
		next = map[string]string{}
	}
	for _, t := range in.Tags {
		next[aws.ToString(t.TagKey)] = aws.ToString(t.TagValue)
	}
	k.retag(next)
	return &kms.TagResourceOutput{}, nil
}

// untagKey removes the named keys; UntagResource names the tags by key alone.
func (w *World) untagKey(params any) (any, error) {
	in := params.(*kms.UntagResourceInput)
	k, err := w.key(in.KeyId, false)
	if err != nil {
		return nil, err
	}
	next := maps.Clone(k.Tags)
	for _, name := range in.TagKeys {
		delete(next, name)
	}
	k.retag(next)
	return &kms.UntagResourceOutput{}, nil
}

// retag makes next the key's listed tags; authorization keeps seeing the tags from
// before the first change not yet settled.
func (k *Key) retag(next map[string]string) {
	if !k.tagsStale {
		k.seenTags, k.tagsStale = maps.Clone(k.Tags), true
	}
	k.Tags = next
}

// authzTags are the tags authorization sees (aws:ResourceTag/<key>).
func (k *Key) authzTags() map[string]string {
	if k.tagsStale {
		return k.seenTags
	}
	return k.Tags
}

// listKeyTags shows the tags as they are now, in one page (the fake does not page them:
// its callers read one tag, and the Limit defaults to 50).
func (w *World) listKeyTags(params any) (any, error) {
	in := params.(*kms.ListResourceTagsInput)
	k, err := w.key(in.KeyId, false)
	if err != nil {
		return nil, err
	}
	names := make([]string, 0, len(k.Tags))
	for name := range k.Tags {
		names = append(names, name)
	}
	sort.Strings(names)
	out := &kms.ListResourceTagsOutput{Tags: []kmstypes.Tag{}}
	for _, name := range names {
		out.Tags = append(out.Tags, kmstypes.Tag{TagKey: aws.String(name), TagValue: aws.String(k.Tags[name])})
	}
	return out, nil
}

// SettleTags ends KMS's delay for tag changes: authorization sees the tags as listed.
func (w *World) SettleTags() {
	w.mu.Lock()
	defer w.mu.Unlock()
	for _, k := range w.Keys {
		k.seenTags, k.tagsStale = nil, false
	}
}
