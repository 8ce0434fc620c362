// Package binding decides whether an instance's role can unlock storecrypt volumes: the
// instance profile has a role, the KMS key exists and is enabled, and the role may call
// the KMS operations its key source needs, with the encryption context the agent will
// send (and read the seed secret for s3-kms). The launch function runs it before sending
// a command, and `storecrypt verify` runs the same code from a laptop.
//
// KMS authorizes a call when the key policy allows the caller, or when the key policy
// allows the account (delegating to IAM) and an identity policy allows the caller, or
// when a grant does; an explicit deny anywhere wins. The key policy and the grants are
// evaluated here, in code (package policy). The IAM policy simulator is asked only about
// the role's identity policies, never with a resource policy: IAM accepts a
// ResourcePolicy only together with a CallerArn, and a CallerArn can only be an IAM user.
//
// The instance role must also let the SSM Agent be a managed instance as that role
// (SSMCoreActions). When it may not, and the account has Default Host Management
// Configuration on, the SSM Agent falls back to the DHMC role and runs the document, its
// aws:downloadContent and the shell's shared-credentials file included, as that role:
// the role this check judged is then not the one on the instance's side of the command.
//
// The check blocks only what it can prove. Conditions it cannot judge before the call
// (keys such as aws:SourceVpce, operators it does not implement) are named in the
// verdict's Notes, and the instance goes ahead: the agent's own call is then the judge,
// and a refusal comes back as key-unavailable. What the simulator cannot see at all
// (service and resource control policies with conditions, session policies) the check
// cannot report; a refusal by one of them also comes back as key-unavailable.
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
	// InstanceID is the instance whose agent will call KMS: its id is in the encryption
	// context and its ARN in the request context. "" judges a stand-in instance (verify
	// --role).
	InstanceID string
	KeyARN     string
	KeySource  string
	Secret     string // s3://bucket/key for s3-kms
}

// Verdict is the outcome. A verdict is final for its inputs: only a change to IAM or KMS
// changes it, so the launch function blocks the instance rather than retrying.
type Verdict struct {
	Role    string          `json:"role,omitempty"`
	Allowed bool            `json:"allowed"`
	Reason  contract.Reason `json:"reason,omitempty"`
	Detail  string          `json:"detail,omitempty"`
	Fix     string          `json:"fix,omitempty"`
	// Notes say what the check could not judge; an allowed verdict with notes is "not
	// disproved" rather than proved.
	Notes []string `json:"notes,omitempty"`
}

// Actions returns the KMS actions a key source needs.
func Actions(keySource string) []string {
	if keySource == contract.KeySourceKMSDataKey {
		return []string{"kms:GenerateDataKey", "kms:Decrypt"}
	}
	return []string{"kms:Decrypt"}
}

// SSMCoreActions are the SSM Agent's own calls as the instance role, the ones
// AmazonSSMManagedInstanceCore grants for Run Command and Session Manager: registering
// (the call whose AccessDeniedException makes the agent fall back to the Default Host
// Management role: amazon-ssm-agent, ec2_role_provider.go, exceptionsForDefaultHostMgmt)
// and the message channels that deliver commands and carry their replies.
var SSMCoreActions = append([]string{ssmRegister}, ssmMessageActions...)

// ssmRegister names the instance as its resource; the message operations have no
// resource type ("*").
const ssmRegister = "ssm:UpdateInstanceInformation"

var ssmMessageActions = []string{
	"ec2messages:AcknowledgeMessage", "ec2messages:DeleteMessage", "ec2messages:FailMessage",
	"ec2messages:GetEndpoint", "ec2messages:GetMessages", "ec2messages:SendReply",
	"ssmmessages:CreateControlChannel", "ssmmessages:CreateDataChannel",
	"ssmmessages:OpenControlChannel", "ssmmessages:OpenDataChannel",
}

// standInInstance judges a role with no instance at hand.
const standInInstance = "i-00000000000000000"

// standInVolume is the volume UUID of the context: a new volume's UUID is not known
// until it is formatted, after the check.
const standInVolume = "00000000-0000-4000-8000-000000000000"

// Checker runs checks. It remembers what it read from AWS for TTL, so a burst of launches
// costs one profile lookup and one simulation per distinct role, and one read of the key;
// each instance's verdict is then computed in code.
type Checker struct {
	IAM IAM
	KMS KMS
	TTL time.Duration
	Now func() time.Time

	roles      ttlCache[string, roleInfo]
	keys       ttlCache[string, keyFacts]
	identities ttlCache[identityKey, simulation]
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
	arn    string // the key's ARN, as KMS describes it (the request may name an alias)
	state  kmstypes.KeyState
	found  bool
	policy policy.Document
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
	r.KeyARN = facts.arn
	if r.InstanceID == "" {
		r.InstanceID = standInInstance
		v.Notes = append(v.Notes, "judged for a stand-in instance "+standInInstance+": conditions on a particular instance are not tested")
	}
	call := agentCall(role, r)
	sim, err := c.identity(ctx, role, r, call)
	if err != nil {
		return Verdict{}, err
	}
	v.Notes = append(v.Notes, sim.notes...)
	var missing, why []string
	for _, action := range Actions(r.KeySource) {
		req := call
		req.Action = action
		ok, reason, notes := judge(facts, req, sim.decisions[action], sim.undecided[action])
		v.Notes = append(v.Notes, notes...)
		if !ok {
			missing = append(missing, action)
			why = append(why, action+": "+reason)
		}
	}
	if len(missing) > 0 {
		return deny(v, contract.ReasonNotKeyUser,
			fmt.Sprintf("%s may not %s on %s (%s)", role, strings.Join(missing, ", "), r.KeyARN, strings.Join(why, "; ")),
			fmt.Sprintf(`add to the key policy: {"Effect":"Allow","Principal":{"AWS":%q},"Action":%s,"Resource":"*"}`, role, jsonList(missing))), nil
	}
	if r.KeySource == contract.KeySourceS3KMS {
		if refused := sim.refused(contract.SecretReadActions); len(refused) > 0 {
			object, _ := secretARN(r) // identity() parsed it already
			return deny(v, contract.ReasonSecretUnreadable, fmt.Sprintf("%s may not %s %s", role, strings.Join(refused, ", "), r.Secret),
				fmt.Sprintf(`allow the role %s on %s`, strings.Join(contract.SecretReadActions, " and "), object)), nil
		}
	}
	if refused := sim.refused(SSMCoreActions); len(refused) > 0 {
		return deny(v, contract.ReasonNoSSMCore,
			fmt.Sprintf("%s may not %s: the SSM Agent cannot run as it, and with Default Host Management Configuration on runs the document as the account's DHMC role instead, which the key does not bind", role, strings.Join(refused, ", ")),
			fmt.Sprintf("attach the AWS managed policy %s to %s (or allow it %s)", ssmCorePolicy(role), role, strings.Join(refused, ", "))), nil
	}
	v.Allowed = true
	slices.Sort(v.Notes)
	v.Notes = slices.Compact(v.Notes)
	return v, nil
}

// judge applies KMS's authorization rules to one action: an explicit deny in the key
// policy or an identity policy refuses; otherwise the key policy allowing the caller, or
// delegating to the account with an identity policy allowing, or a grant, allows. When a
// statement could not be judged and the rest does not allow, the action is let through
// with a note: the check blocks only what it can prove.
func judge(facts keyFacts, req policy.Request, identity iamtypes.PolicyEvaluationDecisionType, identityUndecided bool) (ok bool, reason string, notes []string) {
	kp := facts.policy.Evaluate(req)
	for _, u := range kp.Undecided {
		notes = append(notes, req.Action+": key policy statement "+u+" cannot be judged before the call")
	}
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

// ssmCorePolicy is AmazonSSMManagedInstanceCore's ARN in the role's partition.
func ssmCorePolicy(role string) string {
	return "arn:" + policy.Partition(role) + ":iam::aws:policy/AmazonSSMManagedInstanceCore"
}

func deny(v Verdict, reason contract.Reason, detail, fix string) Verdict {
	v.Reason, v.Detail, v.Fix = reason, detail, fix
	return v
}

func jsonList(items []string) string {
	return `["` + strings.Join(items, `","`) + `"]`
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

// identityKey is what one simulation depends on.
type identityKey struct {
	role, key, source, secret string
}

// simulation is what the role's identity policies say of the agent's calls.
type simulation struct {
	decisions map[string]iamtypes.PolicyEvaluationDecisionType
	undecided map[string]bool // actions whose decision hangs on context keys nobody supplied
	notes     []string
}

// identity asks the IAM policy simulator what the role's identity policies (and its
// permissions boundary) say of the agent's calls: the KMS actions on the key with the
// request's context keys, and for s3-kms the reads of the secret. No resource policy
// is passed. The answer is remembered per role, simulated with the first instance's id:
// a trade-off of one call per role instead of one per instance, which is wrong only for
// an identity policy that singles out instance ids (key policies and grants, which may,
// are judged per instance in code).
func (c *Checker) identity(ctx context.Context, role string, r Request, call policy.Request) (simulation, error) {
	k := identityKey{role, r.KeyARN, r.KeySource, r.Secret}
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
	c.identities.put(k, s, c.now().Add(c.TTL))
	return s, nil
}

// refused lists the actions the role's identity policies were shown not to allow, each
// with its decision; an action whose decision hangs on a context key nobody supplied is
// not refused.
func (s simulation) refused(actions []string) []string {
	var out []string
	for _, action := range actions {
		if d := s.decisions[action]; d != iamtypes.PolicyEvaluationDecisionTypeAllowed && !s.undecided[action] {
			out = append(out, fmt.Sprintf("%s (%s)", action, d))
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
