// Package binding decides whether an instance's role can unlock storecrypt volumes: the
// instance profile has a role, the KMS key exists and is enabled, and the role may call
// the KMS operations its key source needs (and read the seed secret for s3-kms). The
// launch function runs it before sending a command, and `storecrypt verify` runs the same
// code from a laptop.
//
// KMS's rule is stricter than IAM's: an identity policy counts only where the key policy
// delegates to the account. So an action is allowed when the IAM policy simulator (given
// the key policy as the resource policy) allows it and the key policy either names the
// role or delegates to the account, or when a grant gives it to the role.
package binding

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/iam"
	iamtypes "github.com/aws/aws-sdk-go-v2/service/iam/types"
	"github.com/aws/aws-sdk-go-v2/service/kms"
	kmstypes "github.com/aws/aws-sdk-go-v2/service/kms/types"

	"github.com/storecrypt/storecrypt/internal/contract"
	"github.com/storecrypt/storecrypt/internal/policy"
)

// IAM is the part of the IAM client the check uses.
type IAM interface {
	GetInstanceProfile(ctx context.Context, in *iam.GetInstanceProfileInput, optFns ...func(*iam.Options)) (*iam.GetInstanceProfileOutput, error)
	SimulatePrincipalPolicy(ctx context.Context, in *iam.SimulatePrincipalPolicyInput, optFns ...func(*iam.Options)) (*iam.SimulatePrincipalPolicyOutput, error)
}

// KMS is the part of the KMS client the check uses.
type KMS interface {
	DescribeKey(ctx context.Context, in *kms.DescribeKeyInput, optFns ...func(*kms.Options)) (*kms.DescribeKeyOutput, error)
	GetKeyPolicy(ctx context.Context, in *kms.GetKeyPolicyInput, optFns ...func(*kms.Options)) (*kms.GetKeyPolicyOutput, error)
	ListGrants(ctx context.Context, in *kms.ListGrantsInput, optFns ...func(*kms.Options)) (*kms.ListGrantsOutput, error)
}

// Request is one binding to check.
type Request struct {
	InstanceProfileARN string
	KeyARN             string
	KeySource          string
	Secret             string // s3://bucket/key for s3-kms
}

// Verdict is the outcome. A verdict is final for its inputs: only a change to IAM or KMS
// changes it, so the launch function blocks the instance rather than retrying.
type Verdict struct {
	Role    string          `json:"role,omitempty"`
	Allowed bool            `json:"allowed"`
	Reason  contract.Reason `json:"reason,omitempty"`
	Detail  string          `json:"detail,omitempty"`
	Fix     string          `json:"fix,omitempty"`
}

// Actions returns the KMS actions a key source needs.
func Actions(keySource string) []string {
	if keySource == contract.KeySourceKMSDataKey {
		return []string{"kms:GenerateDataKey", "kms:Decrypt"}
	}
	return []string{"kms:Decrypt"}
}

// Checker runs checks and remembers verdicts for TTL, so a burst of launches costs one
// check per distinct role, not one per instance.
type Checker struct {
	IAM IAM
	KMS KMS
	TTL time.Duration
	Now func() time.Time

	verdicts ttlCache[Request, Verdict]
	roles    ttlCache[string, roleInfo]
	keys     ttlCache[string, keyFacts]
}

// ttlCache remembers values until they expire.
type ttlCache[K comparable, V any] struct {
	mu sync.Mutex
	m  map[K]entry[V]
}

type entry[V any] struct {
	v       V
	expires time.Time
}

func (c *ttlCache[K, V]) get(k K, now time.Time) (V, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	e, ok := c.m[k]
	if !ok || !now.Before(e.expires) {
		var zero V
		return zero, false
	}
	return e.v, true
}

func (c *ttlCache[K, V]) put(k K, v V, expires time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.m == nil {
		c.m = map[K]entry[V]{}
	}
	c.m[k] = entry[V]{v, expires}
}

type keyFacts struct {
	state  kmstypes.KeyState
	found  bool
	policy policy.Document
	raw    string // the policy as KMS returned it, for the simulator
	grants []kmstypes.GrantListEntry
}

func (c *Checker) now() time.Time {
	if c.Now == nil {
		return time.Now()
	}
	return c.Now()
}

// Check returns the verdict for r. An error is a failure to decide (throttling beyond the
// SDK's retries, the function's own permissions), never a verdict.
func (c *Checker) Check(ctx context.Context, r Request) (Verdict, error) {
	if v, ok := c.verdicts.get(r, c.now()); ok {
		return v, nil
	}
	v, err := c.check(ctx, r)
	if err != nil {
		return Verdict{}, err
	}
	c.verdicts.put(r, v, c.now().Add(c.TTL))
	return v, nil
}

func (c *Checker) check(ctx context.Context, r Request) (Verdict, error) {
	if r.InstanceProfileARN == "" {
		return Verdict{Reason: contract.ReasonNoInstanceProfile, Detail: "the instance has no instance profile",
			Fix: "attach an instance profile whose role is a key user"}, nil
	}
	role, v, err := c.cachedRole(ctx, r.InstanceProfileARN)
	if err != nil || role == "" {
		return v, err
	}
	return c.CheckRole(ctx, role, r)
}

// CheckRole judges role itself, without an instance profile (storecrypt verify --role).
// r.InstanceProfileARN is not used.
func (c *Checker) CheckRole(ctx context.Context, role string, r Request) (Verdict, error) {
	v := Verdict{Role: role}
	facts, err := c.key(ctx, r.KeyARN)
	if err != nil {
		return Verdict{}, err
	}
	switch {
	case !facts.found:
		return deny(v, contract.ReasonKeyNotFound, "KMS key "+r.KeyARN+" does not exist", "check the stack's key ARN"), nil
	case facts.state != kmstypes.KeyStateEnabled:
		return deny(v, contract.ReasonKeyDisabled, fmt.Sprintf("KMS key %s is %s", r.KeyARN, facts.state), "enable the key"), nil
	}
	actions := Actions(r.KeySource)
	allowed, err := c.simulate(ctx, role, actions, r.KeyARN, facts.raw)
	if err != nil {
		return Verdict{}, err
	}
	var missing []string
	for _, a := range actions {
		if allowed[a] && facts.policy.Evaluate(role, a) != policy.Silent {
			continue
		}
		if grantCovers(facts.grants, role, a) {
			continue
		}
		missing = append(missing, a)
	}
	if len(missing) > 0 {
		return deny(v, contract.ReasonNotKeyUser,
			fmt.Sprintf("%s may not %s on %s", role, strings.Join(missing, ", "), r.KeyARN),
			fmt.Sprintf(`add to the key policy: {"Effect":"Allow","Principal":{"AWS":%q},"Action":%s,"Resource":"*"}`, role, jsonList(missing))), nil
	}
	if r.KeySource == contract.KeySourceS3KMS {
		bucket, key, err := contract.SecretLocation(r.Secret)
		if err != nil {
			return Verdict{}, err
		}
		object := "arn:aws:s3:::" + bucket + "/" + key
		ok, err := c.simulate(ctx, role, []string{"s3:GetObject"}, object, "")
		if err != nil {
			return Verdict{}, err
		}
		if !ok["s3:GetObject"] {
			return deny(v, contract.ReasonSecretUnreadable, role+" may not s3:GetObject "+r.Secret,
				fmt.Sprintf(`allow the role s3:GetObject on %s`, object)), nil
		}
	}
	v.Allowed = true
	return v, nil
}

func deny(v Verdict, reason contract.Reason, detail, fix string) Verdict {
	v.Reason, v.Detail, v.Fix = reason, detail, fix
	return v
}

func jsonList(items []string) string {
	return `["` + strings.Join(items, `","`) + `"]`
}

// Role returns the role of an instance profile ("" when it has none or does not exist),
// remembered for TTL.
func (c *Checker) Role(ctx context.Context, profileARN string) (string, error) {
	role, _, err := c.cachedRole(ctx, profileARN)
	return role, err
}

type roleInfo struct {
	arn     string
	missing Verdict // why there is no role, when arn is ""
}

func (c *Checker) cachedRole(ctx context.Context, profileARN string) (string, Verdict, error) {
	if r, ok := c.roles.get(profileARN, c.now()); ok {
		return r.arn, r.missing, nil
	}
	role, missing, err := c.role(ctx, profileARN)
	if err != nil {
		return "", Verdict{}, err
	}
	c.roles.put(profileARN, roleInfo{role, missing}, c.now().Add(c.TTL))
	return role, missing, nil
}

// role resolves an instance profile to its role ARN.
func (c *Checker) role(ctx context.Context, profileARN string) (string, Verdict, error) {
	name := profileARN[strings.LastIndex(profileARN, "/")+1:]
	out, err := c.IAM.GetInstanceProfile(ctx, &iam.GetInstanceProfileInput{InstanceProfileName: aws.String(name)})
	var notFound *iamtypes.NoSuchEntityException
	switch {
	case errors.As(err, &notFound):
		return "", Verdict{Reason: contract.ReasonRoleMissing, Detail: "instance profile " + profileARN + " does not exist",
			Fix: "attach an existing instance profile"}, nil
	case err != nil:
		return "", Verdict{}, fmt.Errorf("reading instance profile %s: %w", profileARN, err)
	case len(out.InstanceProfile.Roles) == 0:
		return "", Verdict{Reason: contract.ReasonRoleMissing, Detail: "instance profile " + profileARN + " has no role",
			Fix: "add the storecrypt instance role to the profile"}, nil
	}
	return aws.ToString(out.InstanceProfile.Roles[0].Arn), Verdict{}, nil
}

// key reads the key's state, policy and grants once per TTL, shared by every role.
func (c *Checker) key(ctx context.Context, keyARN string) (keyFacts, error) {
	if f, ok := c.keys.get(keyARN, c.now()); ok {
		return f, nil
	}
	var f keyFacts
	desc, err := c.KMS.DescribeKey(ctx, &kms.DescribeKeyInput{KeyId: aws.String(keyARN)})
	var notFound *kmstypes.NotFoundException
	switch {
	case errors.As(err, &notFound):
	case err != nil:
		return f, fmt.Errorf("describing key %s: %w", keyARN, err)
	default:
		f.found, f.state = true, desc.KeyMetadata.KeyState
		pol, err := c.KMS.GetKeyPolicy(ctx, &kms.GetKeyPolicyInput{KeyId: aws.String(keyARN), PolicyName: aws.String("default")})
		if err != nil {
			return f, fmt.Errorf("reading the policy of key %s: %w", keyARN, err)
		}
		f.raw = aws.ToString(pol.Policy)
		if f.policy, err = policy.Parse(f.raw); err != nil {
			return f, fmt.Errorf("key %s: %w", keyARN, err)
		}
		p := kms.NewListGrantsPaginator(c.KMS, &kms.ListGrantsInput{KeyId: aws.String(keyARN)})
		for p.HasMorePages() {
			page, err := p.NextPage(ctx)
			if err != nil {
				return f, fmt.Errorf("listing the grants of key %s: %w", keyARN, err)
			}
			f.grants = append(f.grants, page.Grants...)
		}
	}
	c.keys.put(keyARN, f, c.now().Add(c.TTL))
	return f, nil
}

// simulate asks the IAM policy simulator which actions role may perform on resource, with
// the resource's policy (the key policy) taken into account.
func (c *Checker) simulate(ctx context.Context, role string, actions []string, resource, resourcePolicy string) (map[string]bool, error) {
	in := &iam.SimulatePrincipalPolicyInput{
		PolicySourceArn: aws.String(role),
		ActionNames:     actions,
		ResourceArns:    []string{resource},
	}
	if resourcePolicy != "" {
		in.ResourcePolicy = aws.String(resourcePolicy)
	}
	allowed := map[string]bool{}
	p := iam.NewSimulatePrincipalPolicyPaginator(c.IAM, in)
	for p.HasMorePages() {
		page, err := p.NextPage(ctx)
		if err != nil {
			return nil, fmt.Errorf("simulating %s for %s: %w", strings.Join(actions, ", "), role, err)
		}
		for _, r := range page.EvaluationResults {
			allowed[aws.ToString(r.EvalActionName)] = r.EvalDecision == iamtypes.PolicyEvaluationDecisionTypeAllowed
		}
	}
	return allowed, nil
}

func grantCovers(grants []kmstypes.GrantListEntry, role, action string) bool {
	op := kmstypes.GrantOperation(strings.TrimPrefix(action, "kms:"))
	for _, g := range grants {
		if aws.ToString(g.GranteePrincipal) == role && slices.Contains(g.Operations, op) {
			return true
		}
	}
	return false
}
