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
// With an instance role path, the stack also says what a role needs besides the key for
// the run to end (Request.Access: the agent's download, the command's output), which
// the stack's own role has and a team's role gets from the instance access policy; those
// actions are simulated on their resources like SSM's, and a role refused any is blocked.
//
// The check blocks only what it can prove. Conditions it cannot judge before the call
// (keys such as aws:SourceVpce, operators it does not implement) are named in the
// verdict's Notes, and the instance goes ahead: the agent's own call is then the judge,
// and a refusal comes back as key-unavailable. What the simulator cannot see at all
// (service and resource control policies with conditions, session policies) the check
// cannot report; a refusal by one of them also comes back as key-unavailable.
//
// This file holds the checker and its verdicts; kms.go reads the key and judges the
// agent's call by the key policy and the grants; iam.go resolves the instance profile's
// role and asks the policy simulator about the role's identity policies.
package binding

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/iam"
	"github.com/aws/aws-sdk-go-v2/service/kms"
	kmstypes "github.com/aws/aws-sdk-go-v2/service/kms/types"
	"github.com/storecrypt/storecrypt/internal/contract"
	"github.com/storecrypt/storecrypt/internal/policy"
)

// IAM is the part of the IAM client the check uses.
type IAM interface {
	Profiles
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
	// Access, when the stack has an instance role path, is what the role needs besides
	// the key for the run to end (the agent's download, the command's output): a role that
	// may not is blocked, told to attach Access.Policy.
	Access *contract.InstanceAccess
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
	notInstanceRole, viaGrant := false, false
	for _, action := range Actions(r.KeySource) {
		req := call
		req.Action = action
		ok, reason, deniedBy, notes := judge(facts, req, sim.decisions[action], sim.undecided[action])
		if !ok && action == "kms:Decrypt" && r.KeySource == contract.KeySourceKMSDataKey {
			ok, reason, deniedBy, notes = throughLaunchGrant(facts, role, req, sim.decisions[action], sim.undecided[action])
			viaGrant = ok
		}
		v.Notes = append(v.Notes, notes...)
		if !ok {
			missing = append(missing, action)
			why = append(why, action+": "+reason)
			notInstanceRole = notInstanceRole || deniedBy == contract.SidOnlyTheInstanceRoles
		}
	}
	if len(missing) > 0 {
		detail := fmt.Sprintf("%s may not %s on %s (%s)", role, strings.Join(missing, ", "), r.KeyARN, strings.Join(why, "; "))
		fix := fmt.Sprintf(`add to the key policy: {"Effect":"Allow","Principal":{"AWS":%q},"Action":%s,"Resource":"*"}`, role, jsonList(missing))
		if notInstanceRole {
			// No Allow helps: the deny spares only the roles it names and the paths' roles.
			detail, fix = notAnInstanceRole(detail, facts)
		}
		return deny(v, contract.ReasonNotKeyUser, detail, fix), nil
	}
	if r.KeySource == contract.KeySourceS3KMS {
		if refused := sim.refused(contract.SecretReadActions, ""); len(refused) > 0 {
			object, _ := secretARN(r) // identity() parsed it already
			return deny(v, contract.ReasonSecretUnreadable, fmt.Sprintf("%s may not %s %s", role, strings.Join(refused, ", "), r.Secret),
				fmt.Sprintf(`allow the role %s on %s`, strings.Join(contract.SecretReadActions, " and "), object)), nil
		}
	}
	if refused := sim.refused(SSMCoreActions, ""); len(refused) > 0 {
		return deny(v, contract.ReasonNoSSMCore,
			fmt.Sprintf("%s may not %s: the SSM Agent cannot run as it, and with Default Host Management Configuration on runs the document as the account's DHMC role instead, which the key does not bind", role, strings.Join(refused, ", ")),
			fmt.Sprintf("attach the AWS managed policy %s to %s (or allow it %s)", ssmCorePolicy(role), role, strings.Join(refused, ", "))), nil
	}
	if r.Access != nil && len(sim.accessRefused) > 0 {
		return deny(v, contract.ReasonNoInstanceAccess,
			fmt.Sprintf("%s may not %s: the SSM Agent could not download the agent or stream the command's output, so the run would not end", role, strings.Join(sim.accessRefused, ", ")),
			fmt.Sprintf("attach the managed policy %s to %s (aws iam attach-role-policy --role-name %s --policy-arn %s)", r.Access.Policy, role, role[strings.LastIndex(role, "/")+1:], r.Access.Policy)), nil
	}
	if _, stated := facts.launchGrantees(); viaGrant && !stated {
		v.Notes = append(v.Notes, "kms:Decrypt: allowed through the grant the launch function makes; the key policy does not say whom the launch function may grant to (its own IAM policy does), and that is not judged")
	}
	v.Allowed = true
	slices.Sort(v.Notes)
	v.Notes = slices.Compact(v.Notes)
	return v, nil
}

// notAnInstanceRole says why a role the key's instance-role deny refuses is not a key user,
// and what makes one: a role under an instance role path (a role's path is set when it
// is created, so a new role), or the stack's own.
func notAnInstanceRole(detail string, facts keyFacts) (string, string) {
	roles, paths := facts.instanceRoles()
	if len(paths) == 0 {
		return detail + ": the key's instance roles are " + strings.Join(roles, ", ") + " alone",
			"launch the instance with the stack's instance profile, or name your roles by the stack's InstanceRolePath and create them under it"
	}
	return detail + ": the key's instance roles are " + strings.Join(roles, ", ") + " and the roles under path " + strings.Join(paths, ", "),
		fmt.Sprintf("create the instance's role under path %s (aws iam create-role --path %s ...; a role's path cannot change) with %s, and launch the instance with its profile",
			paths[0], paths[0], "AmazonSSMManagedInstanceCore")
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
