package fakeaws

import (
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kms"
	kmstypes "github.com/aws/aws-sdk-go-v2/service/kms/types"
)

// KMS, from the AWS KMS API Reference (DescribeKey, GetKeyPolicy, CreateGrant, ListGrants,
// RevokeGrant, RetireGrant, GetKeyRotationStatus, GrantConstraints).
func init() {
	register("KMS", map[string]handler{
		"DescribeKey":          (*World).describeKey,
		"GetKeyPolicy":         (*World).getKeyPolicy,
		"CreateGrant":          (*World).createGrant,
		"ListGrants":           (*World).listGrants,
		"RevokeGrant":          (*World).revokeGrant,
		"RetireGrant":          (*World).retireGrant,
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
// paged with Truncated and NextMarker; GrantId "returns only the grant with the specified
// grant ID", GranteePrincipal "only grants where the specified principal is the grantee
// principal". A revoked or retired grant is gone from the list at once: the delay the
// documentation describes is in the grant's effect (Grant), and no page says the list
// lags.
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
	// A page reads from its marker (the index in Grants where the last page stopped) to
	// its last entry, not every grant: a key may hold 50,000 grants, read 100 a page.
	start := 0
	if in.Marker != nil {
		if start, err = strconv.Atoi(*in.Marker); err != nil || start < 0 || start > len(k.Grants) {
			return nil, &kmstypes.InvalidMarkerException{Message: aws.String("invalid marker")}
		}
	}
	keep := func(i int) bool {
		g := k.Grants[i]
		return !g.Removed && (in.GrantId == nil || *in.GrantId == grantID(i, g)) && (in.GranteePrincipal == nil || *in.GranteePrincipal == g.Grantee)
	}
	out := &kms.ListGrantsOutput{}
	i := start
	for ; i < len(k.Grants) && len(out.Grants) < int(limit); i++ {
		if !keep(i) {
			continue
		}
		g, id := k.Grants[i], grantID(i, k.Grants[i])
		e := kmstypes.GrantListEntry{GranteePrincipal: aws.String(g.Grantee), KeyId: aws.String(k.ARN), GrantId: aws.String(id), IssuingAccount: aws.String(w.account())}
		if g.Name != "" {
			e.Name = aws.String(g.Name)
		}
		if g.Retiring != "" {
			e.RetiringPrincipal = aws.String(g.Retiring)
		}
		for _, op := range g.Operations {
			e.Operations = append(e.Operations, kmstypes.GrantOperation(op))
		}
		if g.ContextEquals != nil || g.ContextSubset != nil {
			e.Constraints = &kmstypes.GrantConstraints{EncryptionContextEquals: g.ContextEquals, EncryptionContextSubset: g.ContextSubset}
		}
		out.Grants = append(out.Grants, e)
	}
	// Truncated only when a grant the filters keep is left: a last page is never empty.
	for j := i; j < len(k.Grants); j++ {
		if keep(j) {
			out.Truncated, out.NextMarker = true, aws.String(strconv.Itoa(i))
			break
		}
	}
	return out, nil
}

// grantID is the grant's id, or for one a test set up without an id, its index.
func grantID(i int, g Grant) string {
	if g.ID == "" {
		return strconv.Itoa(i)
	}
	return g.ID
}

// MaxGrantsPerKey is KMS's resource quota "Grants per KMS key: 50,000" (Developer Guide,
// "Resource quotas"); past it, "requests to create an additional resource of that type
// generate an LimitExceededException".
const MaxGrantsPerKey = 50000

// symmetricGrantOperations are the grant operations a symmetric encryption key supports
// (Developer Guide, "Grant operations"). Operations "must be supported on the KMS key. For
// example, you cannot create a grant for a symmetric encryption KMS key that allows the
// Sign operation"; every key of the world is a symmetric encryption key.
var symmetricGrantOperations = []string{
	"Decrypt", "Encrypt", "GenerateDataKey", "GenerateDataKeyWithoutPlaintext", "GenerateDataKeyPair",
	"GenerateDataKeyPairWithoutPlaintext", "ReEncryptFrom", "ReEncryptTo", "CreateGrant", "RetireGrant", "DescribeKey",
}

// createGrant, by CreateGrant's documentation: Operations valid for the key; a constraint
// of "up to 8 encryption context pairs", each value at most 384 characters; with Name, "you
// can retry a CreateGrant request with identical parameters; if the grant already exists,
// the original GrantId is returned", yet "the returned grant token is unique with every
// CreateGrant request"; the grant is Pending until SettleGrants.
func (w *World) createGrant(params any) (any, error) {
	in := params.(*kms.CreateGrantInput)
	if aws.ToBool(in.DryRun) {
		return nil, &kmstypes.DryRunOperationException{Message: aws.String("The request would have succeeded, but the DryRun option is set.")}
	}
	k, err := w.usableKey(in.KeyId)
	if err != nil {
		return nil, err
	}
	for _, p := range []*string{in.GranteePrincipal, in.RetiringPrincipal} {
		if p != nil && !strings.HasPrefix(*p, "arn:") {
			return nil, &kmstypes.InvalidArnException{Message: aws.String(*p + " is not a valid ARN")}
		}
	}
	g := Grant{Name: aws.ToString(in.Name), Grantee: aws.ToString(in.GranteePrincipal), Retiring: aws.ToString(in.RetiringPrincipal)}
	for _, op := range in.Operations {
		if !slices.Contains(symmetricGrantOperations, string(op)) {
			return nil, invalid("ValidationException", "%s is not a valid grant operation for a symmetric encryption KMS key", op)
		}
		g.Operations = append(g.Operations, string(op))
	}
	slices.Sort(g.Operations)
	g.Operations = slices.Compact(g.Operations)
	if c := in.Constraints; c != nil {
		for _, ec := range []map[string]string{c.EncryptionContextEquals, c.EncryptionContextSubset} {
			if len(ec) > 8 {
				return nil, invalid("ValidationException", "a grant constraint may hold up to 8 encryption context pairs, got %d", len(ec))
			}
			for name, v := range ec {
				if len(v) > 384 {
					return nil, invalid("ValidationException", "the value of encryption context key %s is over 384 characters", name)
				}
			}
		}
		g.ContextEquals, g.ContextSubset = c.EncryptionContextEquals, c.EncryptionContextSubset
	}
	idx := k.index()
	if g.Name != "" {
		for _, i := range idx.byName[g.Name] {
			if old := &k.Grants[i]; !old.Removed && old.sameRequest(g) {
				token := w.grantToken(old.ID)
				old.Tokens = append(old.Tokens, token)
				return &kms.CreateGrantOutput{GrantId: aws.String(old.ID), GrantToken: aws.String(token)}, nil
			}
		}
	}
	if idx.live >= MaxGrantsPerKey {
		return nil, &kmstypes.LimitExceededException{Message: aws.String(fmt.Sprintf("key %s has %d grants, the most a key may have", k.ARN, MaxGrantsPerKey))}
	}
	w.grants++
	g.ID = fmt.Sprintf("%064x", w.grants)
	g.Tokens, g.Pending = []string{w.grantToken(g.ID)}, true
	k.Grants = append(k.Grants, g)
	return &kms.CreateGrantOutput{GrantId: aws.String(g.ID), GrantToken: aws.String(g.Tokens[0])}, nil
}

// grantIndex is a key's grants by name and the count of those not removed, so that
// CreateGrant, retried by name, and its check of the 50,000 grants a key may have read no
// more than the grants of that name: a burst of 100,000 launches makes a grant each.
// Tests change Grants directly: the index takes in what was appended since, and starts
// over when the slice was replaced or cut; a grant removed in place other than by
// RevokeGrant or RetireGrant (Key.remove) is counted live until then.
type grantIndex struct {
	base   *Grant // &Grants[0] when indexed
	n      int    // Grants[:n] are indexed
	live   int
	byName map[string][]int
}

func (k *Key) index() *grantIndex {
	x := &k.grants
	if x.n > len(k.Grants) || x.n > 0 && x.base != &k.Grants[0] {
		*x = grantIndex{}
	}
	if x.byName == nil {
		x.byName = map[string][]int{}
	}
	for ; x.n < len(k.Grants); x.n++ {
		g := &k.Grants[x.n]
		x.byName[g.Name] = append(x.byName[g.Name], x.n)
		if !g.Removed {
			x.live++
		}
	}
	if len(k.Grants) > 0 {
		x.base = &k.Grants[0]
	}
	return x
}

// sameRequest: CreateGrant's parameters are identical (operations as a set).
func (g Grant) sameRequest(o Grant) bool {
	return g.Name == o.Name && g.Grantee == o.Grantee && g.Retiring == o.Retiring && slices.Equal(g.Operations, o.Operations) &&
		maps.Equal(g.ContextEquals, o.ContextEquals) && maps.Equal(g.ContextSubset, o.ContextSubset)
}

// grantToken is a fresh token for grant id: every CreateGrant answer holds a new one.
func (w *World) grantToken(id string) string {
	w.grants++
	return fmt.Sprintf("grant-token-%s-%d", id, w.grants)
}

// usableKey finds a key by key id or ARN (CreateGrant and RevokeGrant take no alias) in a
// state that allows the operation ("Key states of KMS keys": a disabled key refuses
// CreateGrant with DisabledException, a key pending deletion with KMSInvalidStateException).
func (w *World) usableKey(id *string) (*Key, error) {
	k, err := w.key(id, false)
	switch {
	case err != nil:
		return nil, err
	case k.State == string(kmstypes.KeyStateDisabled):
		return nil, &kmstypes.DisabledException{Message: aws.String(k.ARN + " is disabled.")}
	case k.State != string(kmstypes.KeyStateEnabled):
		return nil, &kmstypes.KMSInvalidStateException{Message: aws.String(k.ARN + " is " + k.State)}
	}
	return k, nil
}

// revokeGrant: "Deletes the specified grant"; authorized by kms:RevokeGrant in a policy
// (Authz), not by the grant.
func (w *World) revokeGrant(params any) (any, error) {
	in := params.(*kms.RevokeGrantInput)
	if aws.ToBool(in.DryRun) {
		return nil, &kmstypes.DryRunOperationException{Message: aws.String("The request would have succeeded, but the DryRun option is set.")}
	}
	k, err := w.key(in.KeyId, false)
	if err != nil {
		return nil, err
	}
	g := k.grant(aws.ToString(in.GrantId), "")
	if g == nil {
		return nil, &kmstypes.NotFoundException{Message: aws.String("Grant " + aws.ToString(in.GrantId) + " does not exist on " + k.ARN)}
	}
	k.remove(g)
	return &kms.RevokeGrantOutput{}, nil
}

// retireGrant: the grant is named by its token, or by key and grant id; "This operation can
// be called by the retiring principal for a grant, by the grantee principal if the grant
// allows the RetireGrant operation, and by the Amazon Web Services account in which the
// grant is created" (its root). The caller is the world's Caller.
func (w *World) retireGrant(params any) (any, error) {
	in := params.(*kms.RetireGrantInput)
	if aws.ToBool(in.DryRun) {
		return nil, &kmstypes.DryRunOperationException{Message: aws.String("The request would have succeeded, but the DryRun option is set.")}
	}
	var (
		k   *Key
		g   *Grant
		err error
	)
	switch {
	case in.GrantToken != nil:
		for _, k = range w.Keys {
			if g = k.grant("", *in.GrantToken); g != nil {
				break
			}
		}
	case in.KeyId != nil && in.GrantId != nil:
		if k, err = w.key(in.KeyId, false); err != nil {
			return nil, err
		}
		g = k.grant(*in.GrantId, "")
	default:
		return nil, invalid("ValidationException", "RetireGrant needs a GrantToken, or a KeyId and a GrantId")
	}
	if g == nil {
		return nil, &kmstypes.NotFoundException{Message: aws.String("the grant does not exist")}
	}
	root := fmt.Sprintf("arn:%s:iam::%s:root", w.partition(), w.account())
	if w.Caller == "" || w.Caller != g.Retiring && w.Caller != root && (w.Caller != g.Grantee || !slices.Contains(g.Operations, "RetireGrant")) {
		return nil, APIError("AccessDeniedException", fmt.Sprintf("%s may not retire grant %s", w.Caller, g.ID))
	}
	k.remove(g)
	return &kms.RetireGrantOutput{}, nil
}

// grant finds a grant not yet removed, by id or by one of its tokens.
func (k *Key) grant(id, token string) *Grant {
	for i := range k.Grants {
		g := &k.Grants[i]
		if !g.Removed && (id != "" && grantID(i, *g) == id || token != "" && slices.Contains(g.Tokens, token)) {
			return g
		}
	}
	return nil
}

// remove revokes or retires g, one of k's grants.
func (k *Key) remove(g *Grant) {
	if !g.Removed {
		k.index().live--
	}
	g.Removed = true
}

// SettleGrants ends KMS's eventual consistency for grants: created grants allow without
// their token, revoked and retired ones no longer allow.
func (w *World) SettleGrants() {
	w.mu.Lock()
	defer w.mu.Unlock()
	for _, k := range w.Keys {
		kept := k.Grants[:0]
		for _, g := range k.Grants {
			if !g.Removed {
				g.Pending = false
				kept = append(kept, g)
			}
		}
		k.Grants, k.grants = kept, grantIndex{}
	}
}

// getKeyRotationStatus takes "the key ID or key ARN of the KMS key", not an alias.
func (w *World) getKeyRotationStatus(params any) (any, error) {
	k, err := w.key(params.(*kms.GetKeyRotationStatusInput).KeyId, false)
	if err != nil {
		return nil, err
	}
	return &kms.GetKeyRotationStatusOutput{KeyId: aws.String(k.ARN), KeyRotationEnabled: !k.RotationOff}, nil
}
