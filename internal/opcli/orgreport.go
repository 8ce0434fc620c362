package opcli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"regexp"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/aws/arn"
	"github.com/aws/aws-sdk-go-v2/credentials/stscreds"
	"github.com/aws/aws-sdk-go-v2/service/organizations"
	orgtypes "github.com/aws/aws-sdk-go-v2/service/organizations/types"
	"github.com/aws/aws-sdk-go-v2/service/sts"
	"github.com/aws/smithy-go"
	"github.com/spf13/pflag"

	"github.com/storecrypt/storecrypt/internal/audit"
	"github.com/storecrypt/storecrypt/internal/contract"
	"github.com/storecrypt/storecrypt/internal/ledger"
)

// orgFlags are report's flags for many accounts and regions.
type orgFlags struct {
	accountsFlag, regionsFlag, roleName *string
	concurrency                         *int
	// Read by check: nil accounts is a single account's report; "all" is empty.
	accounts, regions []string
}

func defineOrgFlags(fs *pflag.FlagSet) *orgFlags {
	return &orgFlags{
		accountsFlag: fs.String("accounts", "", "report on these accounts (comma-separated ids, or all: every ACTIVE account of the organization), each through its auditor role; one merged report"),
		regionsFlag:  fs.String("regions", "", "with --accounts: the regions to read in each account, comma-separated (default: the current region)"),
		roleName:     fs.String("role-name", "", "with --accounts: the role to assume in each account (default: "+contract.AuditorRolePrefix+"<region>, the one each region's stack deploys)"),
		concurrency:  fs.Int("concurrency", 8, "with --accounts: how many accounts and regions are read at once"),
	}
}

var (
	accountID  = regexp.MustCompile(`^[0-9]{12}$`)
	regionName = regexp.MustCompile(`^[a-z]{2}(-[a-z]+)+-[0-9]+$`)
	// roleName is IAM's pattern for a role's name, at most 64 characters; notSession
	// is what a session name may not hold.
	roleName   = regexp.MustCompile(`^[\w+=,.@-]{1,64}$`)
	notSession = regexp.MustCompile(`[^\w+=,.@-]`)
)

// maxConcurrency bounds --concurrency: STS, CloudFormation and DynamoDB throttle a
// caller that opens many sessions at once, and the SDK's retries would only queue them.
const maxConcurrency = 32

// check reads the flags before any AWS call.
func (o *orgFlags) check(fs *pflag.FlagSet, e *env) error {
	if *o.accountsFlag == "" {
		for _, f := range []string{"regions", "role-name", "concurrency"} {
			if fs.Changed(f) {
				return usageErr("--" + f + " goes with --accounts")
			}
		}
		return nil
	}
	if e.stack != "" {
		return usageErr("--stack names one account's stack; with --accounts the report finds each account's by its export")
	}
	o.accounts = []string{}
	if *o.accountsFlag != "all" {
		for _, a := range strings.Split(*o.accountsFlag, ",") {
			if a = strings.TrimSpace(a); !accountID.MatchString(a) {
				return usageErr(fmt.Sprintf("--accounts: %q is not an account id (12 digits), and all is alone", a))
			}
			o.accounts = append(o.accounts, a)
		}
	}
	if *o.regionsFlag != "" {
		for _, r := range strings.Split(*o.regionsFlag, ",") {
			if r = strings.TrimSpace(r); !regionName.MatchString(r) {
				return usageErr(fmt.Sprintf("--regions: %q is not a region name (us-east-1)", r))
			}
			o.regions = append(o.regions, r)
		}
	}
	if *o.roleName != "" && !roleName.MatchString(*o.roleName) {
		return usageErr(fmt.Sprintf("--role-name %q: want a role's name (letters, digits and +=,.@_-, at most 64), not its ARN", *o.roleName))
	}
	if *o.concurrency < 1 || *o.concurrency > maxConcurrency {
		return usageErr(fmt.Sprintf("--concurrency %d: want 1 to %d", *o.concurrency, maxConcurrency))
	}
	return nil
}

// place is one account and region to read.
type place struct{ account, region string }

// run reads every account and region through its auditor role, o.concurrency at a time,
// with a line on stderr as each ends, and writes one merged report. A place it could not
// read is in the report, and makes the exit status CLIExitUnreachable.
func (o *orgFlags) run(ctx context.Context, e *env, since, until, now time.Time) error {
	id, err := e.STS.GetCallerIdentity(ctx, &sts.GetCallerIdentityInput{})
	if err != nil {
		return fmt.Errorf("sts:GetCallerIdentity: %w", err)
	}
	caller, err := arn.Parse(aws.ToString(id.Arn))
	if err != nil {
		return fmt.Errorf("reading the caller's ARN %q: %w", aws.ToString(id.Arn), err)
	}
	accounts := o.accounts
	if len(accounts) == 0 {
		if accounts, err = activeAccounts(ctx, e.Organizations); err != nil {
			return err
		}
	}
	regions := o.regions
	if len(regions) == 0 {
		if e.Region == "" {
			return errors.New("no region to read: pass --regions or --region")
		}
		regions = []string{e.Region}
	}
	var places []place
	for _, a := range slices.Compact(slices.Sorted(slices.Values(accounts))) {
		for _, r := range slices.Compact(slices.Sorted(slices.Values(regions))) {
			places = append(places, place{a, r})
		}
	}
	sessions := &sessions{sts: e.STS, name: sessionName(caller.Resource), byRole: map[string]*roleSession{}}
	var (
		mu          sync.Mutex
		done        int
		parts       []audit.Part
		unreachable []audit.Unreachable
		wg          sync.WaitGroup
	)
	slots := make(chan struct{}, *o.concurrency)
	for _, p := range places {
		wg.Add(1)
		slots <- struct{}{}
		go func() {
			defer func() { <-slots; wg.Done() }()
			role := *o.roleName
			if role == "" {
				role = contract.AuditorRoleName(p.region)
			}
			part, err := o.read(ctx, e, sessions, fmt.Sprintf("arn:%s:iam::%s:role/%s", caller.Partition, p.account, role), p, since, until)
			mu.Lock()
			defer mu.Unlock()
			done++
			if err != nil {
				unreachable = append(unreachable, audit.Unreachable{Account: p.account, Region: p.region, Reason: err.Error()})
				fmt.Fprintf(e.errOut, "[%d/%d] %s %s: unreachable: %s\n", done, len(places), p.account, p.region, err)
				return
			}
			parts = append(parts, part)
			fmt.Fprintf(e.errOut, "[%d/%d] %s %s: %d launches\n", done, len(places), p.account, p.region, len(part.Items)+len(part.Running))
		}()
	}
	wg.Wait()
	r := audit.Merge(parts, unreachable, since, until, now)
	if err := writeOrgReport(e, r); err != nil {
		return err
	}
	if len(r.Unreachable) > 0 {
		return &codeError{code: contract.CLIExitUnreachable,
			err: fmt.Errorf("%d of %d accounts and regions could not be read; the report lists them and counts none of their launches", len(r.Unreachable), len(places))}
	}
	return nil
}

// read gathers one place's evidence through a session of role in its account.
func (o *orgFlags) read(ctx context.Context, e *env, s *sessions, role string, p place, since, until time.Time) (audit.Part, error) {
	creds, err := s.of(ctx, role)
	if err != nil {
		return audit.Part{}, err
	}
	clients, err := e.In(ctx, p.region, creds)
	if err != nil {
		return audit.Part{}, fmt.Errorf("building the clients of %s in %s: %w", role, p.region, err)
	}
	clients.Now = e.Now
	// Each place has its own stack, found by its export; its progress goes nowhere, the
	// run's line per place says how it went.
	in := &env{Clients: clients, out: io.Discard, errOut: io.Discard, output: e.output, poll: e.poll}
	part, err := gather(ctx, in, since, until)
	part.Account, part.Region = p.account, p.region
	return part, err
}

// sessions are the auditor roles' sessions, each role assumed once for the whole run
// (a role named without the region serves every region of its account).
type sessions struct {
	sts    stscreds.AssumeRoleAPIClient
	name   string
	mu     sync.Mutex
	byRole map[string]*roleSession
}

type roleSession struct {
	once  sync.Once
	creds aws.CredentialsProvider
	err   error
}

// of is role's session; it is assumed now, so a refusal is known before the place's
// first call, in STS's own words.
func (s *sessions) of(ctx context.Context, role string) (aws.CredentialsProvider, error) {
	s.mu.Lock()
	rs := s.byRole[role]
	if rs == nil {
		rs = &roleSession{}
		s.byRole[role] = rs
	}
	s.mu.Unlock()
	rs.once.Do(func() {
		// The cache renews the session before it expires, for a run longer than one.
		rs.creds = aws.NewCredentialsCache(stscreds.NewAssumeRoleProvider(s.sts, role, func(o *stscreds.AssumeRoleOptions) { o.RoleSessionName = s.name }))
		if _, err := rs.creds.Retrieve(ctx); err != nil {
			var api smithy.APIError
			if errors.As(err, &api) {
				// STS's message repeats the caller and the role; the code is what differs.
				rs.err = fmt.Errorf("%s assuming %s", api.ErrorCode(), role)
			} else {
				rs.err = fmt.Errorf("assuming %s: %w", role, err)
			}
		}
	})
	return rs.creds, rs.err
}

// sessionName names the sessions after the caller, so that each member account's
// CloudTrail says who read its evidence: storecrypt-report-<the caller's last name part>,
// in the characters and the 64 a session name allows.
func sessionName(resource string) string {
	name := resource[strings.LastIndex(resource, "/")+1:]
	name = notSession.ReplaceAllString(name, "-")
	return (contract.AuditorSessionPrefix + name)[:min(64, len(contract.AuditorSessionPrefix)+len(name))]
}

// activeAccounts are the organization's ACTIVE accounts: a suspended or closing account
// cannot be read, and is no gap in the evidence.
func activeAccounts(ctx context.Context, c organizations.ListAccountsAPIClient) ([]string, error) {
	var out []string
	p := organizations.NewListAccountsPaginator(c, &organizations.ListAccountsInput{})
	for p.HasMorePages() {
		page, err := p.NextPage(ctx)
		if err != nil {
			return nil, fmt.Errorf("listing the organization's accounts (--accounts all): %w", err)
		}
		for _, a := range page.Accounts {
			// State, not Status: AWS retires Status on 2026-09-09.
			if a.State == orgtypes.AccountStateActive {
				out = append(out, aws.ToString(a.Id))
			}
		}
	}
	if len(out) == 0 {
		return nil, errors.New("the organization has no ACTIVE account")
	}
	return out, nil
}

func writeOrgReport(e *env, r audit.OrgReport) error {
	switch e.output {
	case "json":
		return writeJSON(e.out, r)
	case "html":
		return r.HTML(e.out)
	}
	// In text and csv each place not read is a row of its own, where a script that
	// counts the rows sees it.
	for _, u := range r.Unreachable {
		r.Launches = append(r.Launches, ledger.Item{Account: u.Account, Region: u.Region, Status: "unreachable", Reason: u.Reason})
	}
	return writeLaunches(e, r.Report, true, func(tw io.Writer) {
		fmt.Fprintf(tw, "PLACES\t%d read, %d not\n", len(r.Places), len(r.Unreachable))
		for _, p := range r.Places {
			c := p.Coverage
			fmt.Fprintf(tw, "  %s %s\t%.1f%% (%d of %d), %d exceptions, %d revoked or shredded, key %s (%s, rotation %s)\n", p.Account, p.Region, c.Percent, c.Encrypted, c.InScope,
				p.Exceptions, p.Revoked, p.Key.ARN, p.Key.State, rotation(p.Key.Rotation))
		}
		for _, u := range r.Unreachable {
			fmt.Fprintf(tw, "  %s %s\tUNREACHABLE: %s\n", u.Account, u.Region, u.Reason)
		}
	})
}
