package binding

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws"
	iamtypes "github.com/aws/aws-sdk-go-v2/service/iam/types"
	"github.com/aws/aws-sdk-go-v2/service/kms"
	kmstypes "github.com/aws/aws-sdk-go-v2/service/kms/types"
	"github.com/storecrypt/storecrypt/internal/contract"
	"github.com/storecrypt/storecrypt/internal/policy"
)

// GrantsPage is the most grants one ListGrants page returns: "If you include a value, it
// must be between 1 and 100, inclusive. If you do not include a value, it defaults to 50"
// (KMS API Reference). A key holds a grant per instance of the fleet, up to 50,000, so
// each reader of them asks for full pages: half the calls of the default.
const GrantsPage int32 = 100

type keyFacts struct {
	arn    string // the key's ARN, as KMS describes it (the request may name an alias)
	state  kmstypes.KeyState
	found  bool
	policy policy.Document
	grants []kmstypes.GrantListEntry
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
		f.found, f.state, f.arn = true, desc.KeyMetadata.KeyState, aws.ToString(desc.KeyMetadata.Arn)
		// GetKeyPolicy and ListGrants take a key id or ARN, not an alias.
		keyARN := f.arn
		pol, err := c.KMS.GetKeyPolicy(ctx, &kms.GetKeyPolicyInput{KeyId: aws.String(keyARN), PolicyName: aws.String("default")})
		if err != nil {
			return f, fmt.Errorf("reading the policy of key %s: %w", keyARN, err)
		}
		if f.policy, err = policy.Parse(aws.ToString(pol.Policy)); err != nil {
			return f, fmt.Errorf("key %s: %w", keyARN, err)
		}
		p := kms.NewListGrantsPaginator(c.KMS, &kms.ListGrantsInput{KeyId: aws.String(keyARN), Limit: aws.Int32(GrantsPage)})
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

// judge applies KMS's authorization rules to one action: an explicit deny in the key
// policy or an identity policy refuses; otherwise the key policy allowing the caller, or
// delegating to the account with an identity policy allowing, or a grant, allows. When a
// statement could not be judged and the rest does not allow, the action is let through
// with a note: the check blocks only what it can prove.
//
// deniedBy is the Sid of the key policy statement that denies the action, if one does.
func judge(facts keyFacts, req policy.Request, identity iamtypes.PolicyEvaluationDecisionType, identityUndecided bool) (ok bool, reason, deniedBy string, notes []string) {
	kp := facts.policy.Evaluate(req)
	for _, u := range kp.Undecided {
		notes = append(notes, req.Action+": key policy statement "+u+" cannot be judged before the call")
	}
	ok, reason, notes = decide(facts, req, kp, identity, identityUndecided, notes)
	if kp.Decision == policy.Denied {
		deniedBy = kp.Statement
	}
	return ok, reason, deniedBy, notes
}

func decide(facts keyFacts, req policy.Request, kp policy.Result, identity iamtypes.PolicyEvaluationDecisionType, identityUndecided bool, notes []string) (bool, string, []string) {
	switch {
	case kp.Decision == policy.Denied:
		return false, "the key policy denies it (" + kp.Statement + ")", notes
	case identity == iamtypes.PolicyEvaluationDecisionTypeExplicitDeny:
		return false, "an identity policy of the role denies it", notes
	case kp.Decision == policy.Allowed:
		return true, "", notes
	case kp.Decision == policy.Delegated && identity == iamtypes.PolicyEvaluationDecisionTypeAllowed:
		return true, "", notes
	case grantCovers(facts.grants, req):
		return true, "", notes
	case len(kp.Undecided) > 0, kp.Decision == policy.Delegated && identityUndecided:
		return true, "", notes
	case kp.Decision == policy.Delegated:
		return false, "the key policy leaves it to IAM, and no identity policy of the role allows it", notes
	}
	return false, "the key policy does not allow the role, nor delegate to the account's IAM policies, and no grant does", notes
}

// instanceRoles reads, from the key policy's deny of every principal but the instance
// roles (contract.SidOnlyTheInstanceRoles), the roles it spares by ARN and the IAM paths
// whose roles it spares by pattern (arn:…:role<path>*).
func (f keyFacts) instanceRoles() (roles, paths []string) {
	for _, st := range f.policy.Statement {
		if st.Sid != contract.SidOnlyTheInstanceRoles {
			continue
		}
		for _, op := range []string{"ArnNotEquals", "ArnNotLike"} {
			for _, v := range st.Condition[op]["aws:PrincipalArn"] {
				_, name, _ := strings.Cut(v, ":role")
				if path, ok := strings.CutSuffix(name, "*"); ok && strings.HasSuffix(path, "/") {
					paths = append(paths, path)
				} else if !slices.Contains(roles, v) {
					roles = append(roles, v)
				}
			}
		}
	}
	return roles, paths
}

// throughLaunchGrant judges an instance's Decrypt (kms-datakey), which the key policy no
// longer allows standing, with the grant the launch function makes before it sends the
// command: Decrypt for the role, constrained to the instance's context. The key policy's
// contract.SidLaunchGrants statement names whom the launch role may grant to; a role it
// does not name gets no grant. A key policy without the statement (the user's own key,
// whose grant right is in the launch role's IAM policy) is taken to allow it (CheckRole
// notes it): the check does not read the launch role's policies. The denies judge the
// Decrypt as they will under the grant.
func throughLaunchGrant(f keyFacts, role string, req policy.Request, identity iamtypes.PolicyEvaluationDecisionType, undecided bool) (bool, string, string, []string) {
	grantees, stated := f.launchGrantees()
	if stated && !slices.ContainsFunc(grantees, func(p string) bool { return policy.Glob(p, role) }) {
		ok, reason, deniedBy, notes := judge(f, req, identity, undecided)
		return ok, reason + "; and the launch function may not grant it Decrypt (" + contract.SidLaunchGrants + " names other grantees)", deniedBy, notes
	}
	instance := req.Context["kms:EncryptionContext:"+contract.ContextInstanceARN]
	f.grants = append(slices.Clone(f.grants), kmstypes.GrantListEntry{GranteePrincipal: aws.String(role),
		Operations:  []kmstypes.GrantOperation{kmstypes.GrantOperationDecrypt},
		Constraints: &kmstypes.GrantConstraints{EncryptionContextSubset: map[string]string{contract.ContextInstanceARN: strings.Join(instance, "")}}})
	return judge(f, req, identity, undecided)
}

// launchGrantees are the grantee patterns (ArnLike on kms:GranteePrincipal) of the key
// policy's contract.SidLaunchGrants statement; stated is false without one.
func (f keyFacts) launchGrantees() (grantees []string, stated bool) {
	for _, st := range f.policy.Statement {
		if st.Sid == contract.SidLaunchGrants {
			stated = true
			grantees = append(grantees, st.Condition["ArnLike"]["kms:GranteePrincipal"]...)
		}
	}
	return grantees, stated
}

// agentCall is the request the agent's KMS calls will make, as KMS's authorization sees
// it: the role session of the instance, calling KMS directly (not through another
// service), with storecrypt's encryption context for kms-datakey and none for s3-kms
// (the seed recipe encrypted its passphrase without one).
func agentCall(role string, r Request) policy.Request {
	partition, region := policy.Partition(r.KeyARN), ""
	if parts := strings.SplitN(r.KeyARN, ":", 5); len(parts) == 5 {
		region = parts[3]
	}
	instanceARN := contract.InstanceARN(partition, region, policy.AccountOf(role), r.InstanceID)
	c := map[string][]string{
		"aws:PrincipalArn":      {role},
		"aws:PrincipalAccount":  {policy.AccountOf(role)},
		"aws:PrincipalType":     {"AssumedRole"},
		"aws:SecureTransport":   {"true"},
		"kms:CallerAccount":     {policy.AccountOf(role)},
		"ec2:SourceInstanceARN": {instanceARN},
	}
	absent := []string{"kms:ViaService", "kms:GrantIsForAWSResource", "aws:CalledVia*", "aws:PrincipalServiceName*", "aws:ViaAWSService"}
	if r.KeySource == contract.KeySourceKMSDataKey {
		ec := contract.EncryptionContext(instanceARN, standInVolume)
		for k, v := range ec {
			c["kms:EncryptionContext:"+k] = []string{v}
			c["kms:EncryptionContextKeys"] = append(c["kms:EncryptionContextKeys"], k)
		}
		slices.Sort(c["kms:EncryptionContextKeys"])
		absent = append(absent, "kms:EncryptionContext:*")
	} else {
		absent = append(absent, "kms:EncryptionContext*")
	}
	return policy.Request{
		Caller:   role,
		Session:  sessionARN(role, r.InstanceID),
		Resource: r.KeyARN,
		Context:  c,
		Absent:   absent,
	}
}

// sessionARN is the assumed-role session an instance profile's credentials carry: EC2
// names the session after the instance.
func sessionARN(role, instanceID string) string {
	partition, account := policy.Partition(role), policy.AccountOf(role)
	name := role[strings.LastIndex(role, "/")+1:]
	return fmt.Sprintf("arn:%s:sts::%s:assumed-role/%s/%s", partition, account, name, instanceID)
}

func secretARN(r Request) (string, error) {
	bucket, key, err := contract.SecretLocation(r.Secret)
	if err != nil {
		return "", err
	}
	return fmt.Sprintf("arn:%s:s3:::%s/%s", policy.Partition(r.KeyARN), bucket, key), nil
}

// grantCovers: a grant to the role (or its session) for the operation, whose
// encryption-context constraint the request meets. EncryptionContextEquals wants the
// request's context to be exactly the constraint; EncryptionContextSubset wants every
// pair of the constraint in the request's context.
func grantCovers(grants []kmstypes.GrantListEntry, req policy.Request) bool {
	op := kmstypes.GrantOperation(strings.TrimPrefix(req.Action, "kms:"))
	ec := map[string]string{}
	for k, v := range req.Context {
		if name, ok := strings.CutPrefix(k, "kms:EncryptionContext:"); ok && len(v) == 1 {
			ec[name] = v[0]
		}
	}
	for _, g := range grants {
		grantee := aws.ToString(g.GranteePrincipal)
		if grantee != req.Caller && grantee != req.Session || !slices.Contains(g.Operations, op) {
			continue
		}
		if cons := g.Constraints; cons != nil {
			if cons.EncryptionContextEquals != nil && !equalMaps(cons.EncryptionContextEquals, ec) {
				continue
			}
			if cons.EncryptionContextSubset != nil && !subset(cons.EncryptionContextSubset, ec) {
				continue
			}
		}
		return true
	}
	return false
}

func equalMaps(a, b map[string]string) bool {
	return len(a) == len(b) && subset(a, b)
}

func subset(small, big map[string]string) bool {
	for k, v := range small {
		if got, ok := big[k]; !ok || got != v {
			return false
		}
	}
	return true
}
