package fakeaws

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	iamtypes "github.com/aws/aws-sdk-go-v2/service/iam/types"
	"github.com/aws/aws-sdk-go-v2/service/organizations"
	orgtypes "github.com/aws/aws-sdk-go-v2/service/organizations/types"
	"github.com/aws/aws-sdk-go-v2/service/sts"
	ststypes "github.com/aws/aws-sdk-go-v2/service/sts/types"
)

// Organization is AWS Organizations and STS over several accounts' worlds (a world is one
// account in one region). Its rules, from AWS's pages:
//   - STS API Reference, AssumeRole: the role's trust policy must allow the caller
//     (sts:ExternalId and aws:PrincipalOrgID are condition keys of the request; IAM's
//     global keys add aws:ResourceOrgID, "the identifier of the organization to which the
//     account that owns the resource belongs", here the role's account), and
//     "DurationSeconds ... can range from 900 seconds (15 minutes) up to the maximum
//     session duration setting for the role"; a role in another account is also
//     subject to the caller's own identity policies (IAM User Guide, "Cross-account
//     policy evaluation logic": both sides must allow). A refusal is AccessDenied,
//     also for a role that does not exist.
//   - Organizations API Reference, ListAccounts: every account of the organization with
//     its State (PENDING_ACTIVATION, ACTIVE, SUSPENDED, PENDING_CLOSURE, CLOSED),
//     MaxResults 1 to 20, NextToken. Its older Status "will be retired on September 9,
//     2026" (Account's reference): the fake sends State alone, as AWS will.
//
// A session's credentials name the account and role that issued them: Config routes the
// calls signed with them to that account's world in the region asked.
type Organization struct {
	ID       string // o-...
	mu       sync.Mutex
	members  []orgtypes.Account
	worlds   map[string]*World // "account/region"
	sessions map[string]session
}

type session struct {
	account, role, name string
}

// Join makes w a member of the organization (its account ACTIVE, named name), answering
// for its account in its region.
func (o *Organization) Join(w *World, name string) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.worlds == nil {
		o.worlds = map[string]*World{}
	}
	o.worlds[w.account()+"/"+w.region()] = w
	w.Org = o
	for _, m := range o.members {
		if aws.ToString(m.Id) == w.account() {
			return
		}
	}
	o.members = append(o.members, orgtypes.Account{Id: aws.String(w.account()), Name: aws.String(name), State: orgtypes.AccountStateActive,
		Arn: aws.String(fmt.Sprintf("arn:%s:organizations::%s:account/%s/%s", w.partition(), o.management(), o.ID, w.account()))})
}

// Suspend marks an account SUSPENDED, as a closed account is for 90 days.
func (o *Organization) Suspend(account string) {
	o.mu.Lock()
	defer o.mu.Unlock()
	for i, m := range o.members {
		if aws.ToString(m.Id) == account {
			o.members[i].State = orgtypes.AccountStateSuspended
		}
	}
}

// management is the first account that joined.
func (o *Organization) management() string {
	if len(o.members) == 0 {
		return Account
	}
	return aws.ToString(o.members[0].Id)
}

// Config is the configuration of the session whose credentials creds gives, in region:
// its calls go to the world of the account that issued them. An account that has no
// world in region is an error of the test that asked.
func (o *Organization) Config(ctx context.Context, region string, creds aws.CredentialsProvider) (*World, aws.Config, error) {
	c, err := creds.Retrieve(ctx)
	if err != nil {
		return nil, aws.Config{}, err
	}
	o.mu.Lock()
	s, ok := o.sessions[c.AccessKeyID]
	w := o.worlds[s.account+"/"+region]
	o.mu.Unlock()
	if !ok {
		return nil, aws.Config{}, fmt.Errorf("fakeaws: access key %s was not issued by this organization's STS", c.AccessKeyID)
	}
	if w == nil {
		return nil, aws.Config{}, fmt.Errorf("fakeaws: account %s has no world in %s", s.account, region)
	}
	cfg := w.Config()
	cfg.Credentials = creds
	return w, cfg, nil
}

func init() {
	register("STS", map[string]handler{
		"AssumeRole":        (*World).assumeRole,
		"GetCallerIdentity": (*World).getCallerIdentity,
	})
	register("Organizations", map[string]handler{"ListAccounts": (*World).listAccounts})
}

// callerSession is the assumed-role ARN of the world's Caller.
func (w *World) callerSession() (string, error) {
	if w.Caller == "" {
		return "", fmt.Errorf("fakeaws: World.Caller is not set: STS cannot tell who calls")
	}
	name := w.Caller[strings.LastIndex(w.Caller, "/")+1:]
	return fmt.Sprintf("arn:%s:sts::%s:assumed-role/%s/%s", w.partition(), w.account(), name, name), nil
}

func (w *World) getCallerIdentity(any) (any, error) {
	s, err := w.callerSession()
	if err != nil {
		return nil, err
	}
	return &sts.GetCallerIdentityOutput{Account: aws.String(w.account()), Arn: aws.String(s), UserId: aws.String("AROAFAKE:" + s[strings.LastIndex(s, "/")+1:])}, nil
}

func (w *World) assumeRole(params any) (any, error) {
	in := params.(*sts.AssumeRoleInput)
	caller, err := w.callerSession()
	if err != nil {
		return nil, err
	}
	target := aws.ToString(in.RoleArn)
	denied := invalid("AccessDenied", "User: %s is not authorized to perform: sts:AssumeRole on resource: %s", caller, target)
	parts := strings.Split(target, ":")
	if w.Org == nil || len(parts) != 6 {
		return nil, denied
	}
	o := w.Org
	o.mu.Lock()
	defer o.mu.Unlock()
	var role *Role
	for key, m := range o.worlds {
		if strings.HasPrefix(key, parts[4]+"/") && m.Roles[target] != nil { // IAM is global: any region's world of the account
			role = m.Roles[target]
		}
	}
	if role == nil {
		return nil, denied
	}
	ctx := map[string][]string{"aws:PrincipalArn": {w.Caller}, "aws:PrincipalAccount": {w.account()}}
	if o.has(w.account()) {
		ctx["aws:PrincipalOrgID"] = []string{o.ID}
	}
	if o.has(parts[4]) {
		ctx["aws:ResourceOrgID"] = []string{o.ID}
	}
	if in.ExternalId != nil {
		ctx["sts:ExternalId"] = []string{aws.ToString(in.ExternalId)}
	}
	req := AuthzRequest{Principal: w.Caller, Session: caller, Action: "sts:AssumeRole", Resource: target, Context: ctx}
	trust, _, err := Evaluate(role.Trust, true, req)
	if err != nil {
		return nil, err
	}
	own := Decision(iamtypes.PolicyEvaluationDecisionTypeImplicitDeny)
	if r := w.Roles[w.Caller]; r != nil {
		d, _, err := w.identityDecision(r, req)
		if err != nil {
			return nil, err
		}
		own = Decision(d)
	}
	// The trust policy names the caller (Allow) or its account (Delegated, then the
	// caller's own policies decide); across accounts the caller's policies must allow
	// either way.
	switch {
	case trust == ExplicitDeny || own == ExplicitDeny, trust == ImplicitDeny:
		return nil, denied
	case (trust == Delegated || parts[4] != w.account()) && own != Allow:
		return nil, denied
	}
	maxSession := role.MaxSession
	if maxSession == 0 {
		maxSession = time.Hour
	}
	duration := time.Hour
	if in.DurationSeconds != nil {
		duration = time.Duration(*in.DurationSeconds) * time.Second
	}
	if duration < 15*time.Minute || duration > maxSession {
		return nil, invalid("ValidationError", "The requested DurationSeconds exceeds the MaxSessionDuration set for this role.")
	}
	if o.sessions == nil {
		o.sessions = map[string]session{}
	}
	key := "ASIAFAKE" + strconv.Itoa(len(o.sessions)+1)
	name := aws.ToString(in.RoleSessionName)
	o.sessions[key] = session{account: parts[4], role: target, name: name}
	roleName := target[strings.LastIndex(target, "/")+1:]
	return &sts.AssumeRoleOutput{
		Credentials: &ststypes.Credentials{AccessKeyId: aws.String(key), SecretAccessKey: aws.String("fake"), SessionToken: aws.String("fake-" + key),
			Expiration: aws.Time(time.Now().Add(duration))},
		AssumedRoleUser: &ststypes.AssumedRoleUser{Arn: aws.String(fmt.Sprintf("arn:%s:sts::%s:assumed-role/%s/%s", parts[1], parts[4], roleName, name)),
			AssumedRoleId: aws.String("AROAFAKE:" + name)},
	}, nil
}

func (o *Organization) has(account string) bool {
	for _, m := range o.members {
		if aws.ToString(m.Id) == account {
			return true
		}
	}
	return false
}

// accountsPage is ListAccounts' largest MaxResults.
const accountsPage = 20

func (w *World) listAccounts(params any) (any, error) {
	in := params.(*organizations.ListAccountsInput)
	if w.Org == nil {
		return nil, &orgtypes.AWSOrganizationsNotInUseException{Message: aws.String("Your account is not a member of an organization.")}
	}
	page := accountsPage
	if in.MaxResults != nil {
		if *in.MaxResults < 1 || *in.MaxResults > accountsPage {
			return nil, &orgtypes.InvalidInputException{Message: aws.String("MaxResults must be between 1 and 20")}
		}
		page = int(*in.MaxResults)
	}
	start := 0
	if in.NextToken != nil {
		var err error
		if start, err = strconv.Atoi(aws.ToString(in.NextToken)); err != nil {
			return nil, &orgtypes.InvalidInputException{Message: aws.String("invalid NextToken")}
		}
	}
	o := w.Org
	o.mu.Lock()
	defer o.mu.Unlock()
	end := min(start+page, len(o.members))
	out := &organizations.ListAccountsOutput{Accounts: append([]orgtypes.Account(nil), o.members[start:end]...)}
	if end < len(o.members) {
		out.NextToken = aws.String(strconv.Itoa(end))
	}
	return out, nil
}
