package binding

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/iam"
	iamtypes "github.com/aws/aws-sdk-go-v2/service/iam/types"
	"github.com/storecrypt/storecrypt/internal/contract"
	"github.com/storecrypt/storecrypt/internal/policy"
)

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
	return cachedRole(ctx, c.IAM, &c.roles, c.now(), c.TTL, profileARN)
}

// Profiles is the part of the IAM client that reads instance profiles.
type Profiles interface {
	GetInstanceProfile(ctx context.Context, in *iam.GetInstanceProfileInput, optFns ...func(*iam.Options)) (*iam.GetInstanceProfileOutput, error)
}

// Roles resolves instance profiles to their roles, each once per TTL: all the scope rule
// needs of IAM, without the key a Checker reads too.
type Roles struct {
	IAM Profiles
	TTL time.Duration

	cache ttlCache[string, roleInfo]
}

// Role returns the role of an instance profile ("" when it has none or does not exist).
func (r *Roles) Role(ctx context.Context, profileARN string) (string, error) {
	role, _, err := cachedRole(ctx, r.IAM, &r.cache, time.Now(), r.TTL, profileARN)
	return role, err
}

func cachedRole(ctx context.Context, c Profiles, cache *ttlCache[string, roleInfo], now time.Time, ttl time.Duration, profileARN string) (string, Verdict, error) {
	if r, ok := cache.get(profileARN, now); ok {
		return r.arn, r.missing, nil
	}
	role, missing, err := resolveRole(ctx, c, profileARN)
	if err != nil {
		return "", Verdict{}, err
	}
	cache.put(profileARN, roleInfo{role, missing}, now.Add(ttl))
	return role, missing, nil
}

// resolveRole resolves an instance profile to its role ARN.
func resolveRole(ctx context.Context, c Profiles, profileARN string) (string, Verdict, error) {
	name := profileARN[strings.LastIndex(profileARN, "/")+1:]
	out, err := c.GetInstanceProfile(ctx, &iam.GetInstanceProfileInput{InstanceProfileName: aws.String(name)})
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

// identityKey is what one simulation depends on.
type identityKey struct {
	role, key, source, secret, access string
}

// simulation is what the role's identity policies say of the agent's calls.
type simulation struct {
	decisions map[string]iamtypes.PolicyEvaluationDecisionType
	undecided map[string]bool // actions whose decision hangs on context keys nobody supplied
	notes     []string
	// accessRefused are the Request.Access rights the role was shown not to have, each
	// "<action> on <resource> (<decision>)".
	accessRefused []string
}

// identity asks the IAM policy simulator what the role's identity policies (and its
// permissions boundary) say of the agent's calls: the KMS actions on the key with the
// request's context keys, and for s3-kms the reads of the secret. No resource policy
// is passed. The answer is remembered per role, simulated with the first instance's id:
// a trade-off of one call per role instead of one per instance, which is wrong only for
// an identity policy that singles out instance ids (key policies and grants, which may,
// are judged per instance in code).
func (c *Checker) identity(ctx context.Context, role string, r Request, call policy.Request) (simulation, error) {
	k := identityKey{role: role, key: r.KeyARN, source: r.KeySource, secret: r.Secret}
	if r.Access != nil {
		k.access = r.Access.Policy
	}
	if s, ok := c.identities.get(k, c.now()); ok {
		return s, nil
	}
	s := simulation{decisions: map[string]iamtypes.PolicyEvaluationDecisionType{}, undecided: map[string]bool{}}
	if err := c.simulate(ctx, &s, &iam.SimulatePrincipalPolicyInput{
		PolicySourceArn: aws.String(role),
		ActionNames:     Actions(r.KeySource),
		ResourceArns:    []string{r.KeyARN},
		ContextEntries:  contextEntries(call.Context),
	}); err != nil {
		return s, err
	}
	// The SSM Agent's own calls, signed with the instance role's session.
	session := contextEntries(sessionContext(call.Context))
	for _, in := range []*iam.SimulatePrincipalPolicyInput{
		{ActionNames: []string{ssmRegister}, ResourceArns: call.Context["ec2:SourceInstanceARN"]},
		{ActionNames: ssmMessageActions},
	} {
		in.PolicySourceArn, in.ContextEntries = aws.String(role), session
		if err := c.simulate(ctx, &s, in); err != nil {
			return s, err
		}
	}
	if r.KeySource == contract.KeySourceS3KMS {
		object, err := secretARN(r)
		if err != nil {
			return s, err
		}
		if err := c.simulate(ctx, &s, &iam.SimulatePrincipalPolicyInput{
			PolicySourceArn: aws.String(role),
			ActionNames:     contract.SecretReadActions,
			ResourceArns:    []string{object},
			ContextEntries:  contextEntries(map[string][]string{"aws:SecureTransport": {"true"}, "aws:PrincipalArn": {role}}),
		}); err != nil {
			return s, err
		}
	}
	if r.Access != nil {
		if err := c.simulateAccess(ctx, &s, role, *r.Access, session); err != nil {
			return s, err
		}
	}
	c.identities.put(k, s, c.now().Add(c.TTL))
	return s, nil
}

// simulateAccess asks the simulator about each of access's grants, with the instance
// role session's context, on the grant's own resources: the same statements the stack
// gives its own role and puts in the instance access policy, so a role with that policy
// attached, or with rights of its own that cover them, passes.
func (c *Checker) simulateAccess(ctx context.Context, s *simulation, role string, access contract.InstanceAccess, session []iamtypes.ContextEntry) error {
	for _, g := range access.Grants() {
		one := simulation{decisions: map[string]iamtypes.PolicyEvaluationDecisionType{}, undecided: map[string]bool{}}
		if err := c.simulate(ctx, &one, &iam.SimulatePrincipalPolicyInput{
			PolicySourceArn: aws.String(role), ActionNames: g.Actions, ResourceArns: g.Resources, ContextEntries: session,
		}); err != nil {
			return err
		}
		s.notes = append(s.notes, one.notes...)
		s.accessRefused = append(s.accessRefused, one.refused(g.Actions, " on "+strings.Join(g.Resources, ", "))...)
	}
	return nil
}

// refused lists the actions the role's identity policies were shown not to allow, each
// with where (" on <resource>", or "") and its decision; an action whose decision hangs
// on a context key nobody supplied is not refused.
func (s simulation) refused(actions []string, where string) []string {
	var out []string
	for _, action := range actions {
		if d := s.decisions[action]; d != iamtypes.PolicyEvaluationDecisionTypeAllowed && !s.undecided[action] {
			out = append(out, fmt.Sprintf("%s%s (%s)", action, where, d))
		}
	}
	return out
}

func (c *Checker) simulate(ctx context.Context, s *simulation, in *iam.SimulatePrincipalPolicyInput) error {
	p := iam.NewSimulatePrincipalPolicyPaginator(c.IAM, in)
	for p.HasMorePages() {
		page, err := p.NextPage(ctx)
		if err != nil {
			return fmt.Errorf("simulating %s for %s: %w", strings.Join(in.ActionNames, ", "), aws.ToString(in.PolicySourceArn), err)
		}
		for _, res := range page.EvaluationResults {
			action := aws.ToString(res.EvalActionName)
			s.decisions[action] = res.EvalDecision
			// "If you include a list of resources, then any missing context values are
			// instead included under the ResourceSpecificResults section."
			missing := res.MissingContextValues
			for _, r := range res.ResourceSpecificResults {
				missing = append(missing, r.MissingContextValues...)
			}
			if len(missing) > 0 && res.EvalDecision != iamtypes.PolicyEvaluationDecisionTypeAllowed {
				slices.Sort(missing)
				s.undecided[action] = true
				s.notes = append(s.notes, fmt.Sprintf("%s: the role's identity policies depend on %s, which only the call itself carries",
					action, strings.Join(slices.Compact(missing), ", ")))
			}
		}
	}
	return nil
}

// sessionContext is the part of a KMS call's context that any call of the instance
// role's session carries: the keys KMS alone sets are left out.
func sessionContext(c map[string][]string) map[string][]string {
	out := map[string][]string{}
	for k, v := range c {
		if !strings.HasPrefix(k, "kms:") {
			out[k] = v
		}
	}
	return out
}

// contextEntries turns a request context into the simulator's ContextEntries, typed as
// IAM documents each key: lists are stringList, the rest string or boolean.
func contextEntries(c map[string][]string) []iamtypes.ContextEntry {
	keys := make([]string, 0, len(c))
	for k := range c {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	out := make([]iamtypes.ContextEntry, 0, len(keys))
	for _, k := range keys {
		typ := iamtypes.ContextKeyTypeEnumString
		switch k {
		case "kms:EncryptionContextKeys":
			typ = iamtypes.ContextKeyTypeEnumStringList
		case "aws:SecureTransport":
			typ = iamtypes.ContextKeyTypeEnumBoolean
		}
		out = append(out, iamtypes.ContextEntry{ContextKeyName: aws.String(k), ContextKeyType: typ, ContextKeyValues: c[k]})
	}
	return out
}
