package fakeaws

import (
	"strconv"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kms"
	kmstypes "github.com/aws/aws-sdk-go-v2/service/kms/types"
)

// KMS, from the AWS KMS API Reference (DescribeKey, GetKeyPolicy, ListGrants,
// GetKeyRotationStatus, GrantConstraints).
func init() {
	register("KMS", map[string]handler{
		"DescribeKey":          (*World).describeKey,
		"GetKeyPolicy":         (*World).getKeyPolicy,
		"ListGrants":           (*World).listGrants,
		"GetKeyRotationStatus": (*World).getKeyRotationStatus,
	})
}

// key finds a key by key ARN or key id. aliasOK says whether the operation also takes an
// alias (DescribeKey does; GetKeyPolicy and GetKeyRotationStatus take "the key ID or key
// ARN" only); no alias exists in this world, so an alias is never found.
func (w *World) key(id *string, aliasOK bool) (*Key, error) {
	want := aws.ToString(id)
	if strings.HasPrefix(want, "alias/") || strings.Contains(want, ":alias/") {
		if !aliasOK {
			return nil, &kmstypes.NotFoundException{Message: aws.String("Invalid keyId " + want)}
		}
		return nil, &kmstypes.NotFoundException{Message: aws.String("Alias " + want + " is not found.")}
	}
	for arn, k := range w.Keys {
		if arn == want || strings.HasSuffix(arn, ":key/"+want) {
			return k, nil
		}
	}
	return nil, &kmstypes.NotFoundException{Message: aws.String("Key '" + want + "' does not exist")}
}

func (w *World) describeKey(params any) (any, error) {
	k, err := w.key(params.(*kms.DescribeKeyInput).KeyId, true)
	if err != nil {
		return nil, err
	}
	return &kms.DescribeKeyOutput{KeyMetadata: &kmstypes.KeyMetadata{
		Arn: aws.String(k.ARN), KeyId: aws.String(k.ARN[strings.LastIndex(k.ARN, "/")+1:]),
		KeyState: kmstypes.KeyState(k.State), Enabled: k.State == string(kmstypes.KeyStateEnabled),
	}}, nil
}

// getKeyPolicy: "If no policy name is specified, the default value is default. The only
// valid name is default."
func (w *World) getKeyPolicy(params any) (any, error) {
	in := params.(*kms.GetKeyPolicyInput)
	if in.PolicyName != nil && *in.PolicyName != "default" {
		return nil, &kmstypes.NotFoundException{Message: aws.String("No such policy exists")}
	}
	k, err := w.key(in.KeyId, false)
	if err != nil {
		return nil, err
	}
	return &kms.GetKeyPolicyOutput{Policy: aws.String(k.Policy), PolicyName: aws.String("default")}, nil
}

// listGrants: Limit "must be between 1 and 100, inclusive" (default 50); the answer is
// paged with Truncated and NextMarker.
func (w *World) listGrants(params any) (any, error) {
	in := params.(*kms.ListGrantsInput)
	limit := int32(50)
	if in.Limit != nil {
		if *in.Limit < 1 || *in.Limit > 100 {
			return nil, invalid("ValidationException", "Limit must be between 1 and 100")
		}
		limit = *in.Limit
	}
	k, err := w.key(in.KeyId, false)
	if err != nil {
		return nil, err
	}
	start := 0
	if in.Marker != nil {
		if start, err = strconv.Atoi(*in.Marker); err != nil || start > len(k.Grants) {
			return nil, &kmstypes.InvalidMarkerException{Message: aws.String("invalid marker")}
		}
	}
	out := &kms.ListGrantsOutput{}
	for i := start; i < len(k.Grants) && i < start+int(limit); i++ {
		g := k.Grants[i]
		e := kmstypes.GrantListEntry{GranteePrincipal: aws.String(g.Grantee), KeyId: aws.String(k.ARN), GrantId: aws.String(strconv.Itoa(i))}
		for _, op := range g.Operations {
			e.Operations = append(e.Operations, kmstypes.GrantOperation(op))
		}
		if g.ContextEquals != nil || g.ContextSubset != nil {
			e.Constraints = &kmstypes.GrantConstraints{EncryptionContextEquals: g.ContextEquals, EncryptionContextSubset: g.ContextSubset}
		}
		out.Grants = append(out.Grants, e)
	}
	if next := start + int(limit); next < len(k.Grants) {
		out.Truncated, out.NextMarker = true, aws.String(strconv.Itoa(next))
	}
	return out, nil
}

// getKeyRotationStatus takes "the key ID or key ARN of the KMS key", not an alias.
func (w *World) getKeyRotationStatus(params any) (any, error) {
	k, err := w.key(params.(*kms.GetKeyRotationStatusInput).KeyId, false)
	if err != nil {
		return nil, err
	}
	return &kms.GetKeyRotationStatusOutput{KeyId: aws.String(k.ARN), KeyRotationEnabled: !k.RotationOff}, nil
}
