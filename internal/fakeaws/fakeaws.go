// Package fakeaws is an in-memory AWS account for the functions' tests and the demo: EC2
// instances and types, IAM roles with identity policies and instance profiles, a policy
// simulator, KMS keys with policies and grants, SSM documents, managed instances and
// commands, SQS and EventBridge.
//
// Real aws-sdk-go-v2 clients talk to it: a middleware takes the typed input at the
// Initialize step and answers right after the Retry middleware in the Finalize step. So
// parameter validation, paginators and the SDK's retryer all run for real, and a
// ThrottlingException the world injects is retried by the SDK, not by our code.
//
// Every answer is decided by AWS's documented behaviour, written here with the page it
// comes from (docs/aws-fidelity.md lists them), never by calling storecrypt's own code:
// a fake that shared the product's logic would agree with its mistakes. Requests that
// break a documented rule (a list over its limit, a missing required parameter, a
// CallerArn that is not a user) fail as AWS fails them.
//
// Every request is also held to the service's published API model (package apimodel,
// botocore's models): one that breaks it is kept in Violations, which fails the test
// that built the world (NewAccount), even where the code only logs the error it got. The
// world still answers it by its own rules, so a refusal keeps the service's documented
// form (Security Hub's per-finding InvalidInput, SSM's own error codes).
//
// The world also records every call, so a test can check each against the IAM policy
// the template gives its caller (Calls, Authz); Record adds the calls a client makes to a
// real emulator (dynalite for the ledger's DynamoDB table) to that log.
package fakeaws

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awsmiddleware "github.com/aws/aws-sdk-go-v2/aws/middleware"
	"github.com/aws/aws-sdk-go-v2/aws/ratelimit"
	"github.com/aws/aws-sdk-go-v2/aws/retry"
	"github.com/aws/aws-sdk-go-v2/credentials"
	shtypes "github.com/aws/aws-sdk-go-v2/service/securityhub/types"
	ssmtypes "github.com/aws/aws-sdk-go-v2/service/ssm/types"
	"github.com/aws/smithy-go"
	"github.com/aws/smithy-go/middleware"

	"github.com/storecrypt/storecrypt/internal/fakeaws/apimodel"
)

// Account and Region of the standard account.
const (
	Account = "111122223333"
	Region  = "us-east-1"
)

// Instance is an EC2 instance.
type Instance struct {
	ID    string
	Type  string
	State string // pending, running, stopped, terminated
	// Architecture is DescribeInstances' (x86_64, arm64, ...); "" takes the type's
	// (architecture).
	Architecture string
	ProfileARN   string
	LaunchTime   time.Time
	Tags         map[string]string
	// OnlineAfter is how many DescribeInstanceInformation answers show the SSM agent not
	// yet Online before it is; -1 never comes online.
	OnlineAfter int
	// HiddenFor is how many DescribeInstances answers leave the instance out, as EC2's
	// eventual consistency may right after RunInstances.
	HiddenFor int
}

// Role is an IAM role and the identity policies attached to it: inline and customer
// managed ones as JSON documents, AWS managed ones by ARN (see awsManaged).
type Role struct {
	ARN             string
	Policies        []string
	ManagedPolicies []string
	// Trust is the role's trust policy, which STS's AssumeRole evaluates (org.go).
	Trust string
	// MaxSession is the role's maximum session duration; IAM's default, one hour, when 0.
	MaxSession time.Duration
}

// Key is a KMS key.
type Key struct {
	ARN         string
	State       string // Enabled, Disabled, PendingDeletion
	Policy      string
	Grants      []Grant
	RotationOff bool
	// Tags are the key's tags as ListResourceTags shows them. Authorization may see older
	// ones: "It might take up to five minutes for tag and alias changes to affect KMS key
	// authorization. Recent changes might be visible in API operations before they affect
	// authorization" (Developer Guide, "ABAC for AWS KMS"). The world takes the slowest
	// reading: after TagResource or UntagResource, aws:ResourceTag keeps the tags from
	// before the first change until World.SettleTags.
	Tags      map[string]string
	seenTags  map[string]string
	tagsStale bool
	secret    []byte // seals the key's ciphertexts
	grants    grantIndex
}

// Grant gives Grantee the operations ("Decrypt", "GenerateDataKey"), optionally only for
// requests whose encryption context equals ContextEquals or includes ContextSubset. ID,
// Name and Retiring are CreateGrant's (a grant a test sets up directly may leave them
// empty: ListGrants then names it by its index).
type Grant struct {
	ID            string
	Name          string
	Grantee       string
	Retiring      string
	Operations    []string
	ContextEquals map[string]string
	ContextSubset map[string]string
	// KMS is eventually consistent for grants (CreateGrant: "there might be a brief delay,
	// usually less than five minutes, until the grant is available throughout KMS"; "to use
	// the permissions in the grant immediately, use the GrantToken"). The world takes the
	// slowest reading until World.SettleGrants: a Pending grant allows only a request that
	// carries one of its Tokens, and a Removed (revoked or retired) one still allows.
	Tokens  []string
	Pending bool
	Removed bool
}

// Document is an SSM document: its versions' content, oldest first (version n is
// Versions[n-1]), and the default version's number.
type Document struct {
	Name     string
	Versions []string
	Default  int
}

// Command is a SendCommand the world received.
type Command struct {
	ID              string
	DocumentName    string
	DocumentVersion string // the version SSM resolved the request to
	// RequestedVersion is the version as the request named it ("$DEFAULT" when it named
	// none). GetCommandInvocation's DocumentVersion is documented only as "the version
	// used in the request", so the fake answers with this, the less helpful reading.
	RequestedVersion string
	InstanceIDs      []string
	Parameters       map[string][]string
	Requested        time.Time
	// MaxConcurrency and MaxErrors as the request gave them ("" when it gave none).
	MaxConcurrency, MaxErrors string
	// LogGroup is where CloudWatchOutputConfig sends the output; "" when it is not enabled.
	LogGroup string
	// Status and Output per instance, set by the test or the demo's SSM runner.
	Invocations map[string]*Invocation
}

// Invocation is one instance's part of a command: how its last step ended. Earlier steps
// of a multi-step document are reported as succeeded.
type Invocation struct {
	Status        string // Success, Failed, TimedOut, Cancelled, InProgress, ...
	StatusDetails string // "Success", "Delivery Timed Out", ...; Status when empty
	ResponseCode  int32
	Stdout        string
}

// Fault is asked before each call; a non-nil error is returned in place of the answer.
type Fault func(service, operation string, attempt int) error

// Call is one request the world answered, for permission checks.
type Call struct {
	Service, Operation string
	Params             any
}

// World holds the account's state. Zero maps are made on first use.
type World struct {
	mu sync.Mutex
	// Partition, Region and AccountID of the account's ARNs (aws, us-east-1 and Account
	// when empty).
	Partition string
	Region    string
	AccountID string
	// Org is the organization the account belongs to, which answers STS and
	// Organizations (org.go); nil: an account outside any organization.
	Org *Organization
	// Caller is the role whose session the world's Config signs with: what STS sees as
	// the caller of AssumeRole and GetCallerIdentity.
	Caller    string
	Instances map[string]*Instance
	// InstanceTypes says whether a type has instance store.
	InstanceTypes map[string]bool
	Profiles      map[string]string // instance profile ARN -> role ARN ("" for none)
	Roles         map[string]*Role
	Keys          map[string]*Key
	Documents     map[string]*Document
	Objects       map[string]Object // "bucket/key"
	versions      int               // object versions written so far
	// BucketKeys names the buckets whose SSE-KMS uses an S3 Bucket Key.
	BucketKeys map[string]bool
	Stacks     map[string]*Stack // by stack name
	// TableKeys names the customer managed key of each DynamoDB table that has one. The
	// tables themselves are a real emulator's (dynalite); Record logs their calls here.
	TableKeys map[string]string
	// SecurityHubEnabled: Security Hub is on in the account and region; Findings are the
	// findings it holds, by id.
	SecurityHubEnabled bool
	Findings           map[string]shtypes.AwsSecurityFinding
	// customerSet names, by finding id, the top-level fields a customer changed with
	// BatchUpdateFindings: the provider's imports no longer change them.
	customerSet map[string]map[string]bool
	// Compliance holds the Systems Manager compliance items, by "instance/type".
	Compliance map[string][]ssmtypes.ComplianceItemEntry
	Commands   []*Command
	Messages   []string // SQS message bodies sent
	// InFlight holds the launch queue's received messages by receipt handle: how long
	// after the change each is visible again, as ChangeMessageVisibility last set it (nil:
	// never changed, the queue's visibility timeout applies).
	InFlight map[string]*time.Duration
	Events   []Event // EventBridge entries put
	Fault    Fault
	Delay    time.Duration
	// OnCommand runs after SendCommand is recorded (the demo delivers it to the guest).
	OnCommand func(*Command)
	// Unlogged keeps no Log of the calls, only their counts (Calls): a model of a burst
	// of 100,000 launches makes millions of calls and reads none of them back.
	Unlogged bool

	calls    map[string]int // "Service.Operation" -> attempts
	log      []Call
	models   apimodel.Log // requests that broke their API model
	nextCmd  int
	commands commandIndex
	grants   int // grants CreateGrant made, for their ids
}

// TB is the part of testing.TB the world fails when a request broke its API model.
type TB = apimodel.TB

// Violations returns the requests that broke their service's API model, in order.
func (w *World) Violations() []error {
	return w.models.Violations()
}

// Event is an EventBridge entry.
type Event struct {
	Source, DetailType, Detail, Bus string
}

// With runs fn with the world locked, for reading or changing its state between calls.
func (w *World) With(fn func()) {
	w.mu.Lock()
	defer w.mu.Unlock()
	fn()
}

// Calls returns the attempts made per "Service.Operation", retries included.
func (w *World) Calls() map[string]int {
	w.mu.Lock()
	defer w.mu.Unlock()
	out := make(map[string]int, len(w.calls))
	for k, v := range w.calls {
		out[k] = v
	}
	return out
}

// Log returns every call answered (not faulted), in order.
func (w *World) Log() []Call {
	w.mu.Lock()
	defer w.mu.Unlock()
	return append([]Call(nil), w.log...)
}

// TotalCalls is the sum of Calls.
func (w *World) TotalCalls() int {
	n := 0
	for _, v := range w.Calls() {
		n += v
	}
	return n
}

func (w *World) partition() string {
	if w.Partition == "" {
		return "aws"
	}
	return w.Partition
}

// urlSuffix is the partition's domain: service endpoints in China end in .com.cn.
func (w *World) urlSuffix() string {
	if w.partition() == "aws-cn" {
		return "amazonaws.com.cn"
	}
	return "amazonaws.com"
}

func (w *World) account() string {
	if w.AccountID == "" {
		return Account
	}
	return w.AccountID
}

func (w *World) region() string {
	if w.Region == "" {
		return Region
	}
	return w.Region
}

// Config returns an aws.Config whose clients talk to the world. Retries have no backoff
// delay, so a test of throttling takes no time.
func (w *World) Config() aws.Config {
	return aws.Config{
		Region:      w.region(),
		Credentials: credentials.NewStaticCredentialsProvider("fake", "fake", ""),
		Retryer: func() aws.Retryer {
			return retry.NewStandard(func(o *retry.StandardOptions) {
				o.Backoff = retry.BackoffDelayerFunc(func(int, error) (time.Duration, error) { return 0, nil })
				o.RateLimiter = ratelimit.None
			})
		},
		APIOptions: []func(*middleware.Stack) error{w.install},
	}
}

type paramsKey struct{}

// capture keeps the typed input where the Finalize step can read it.
var capture = middleware.InitializeMiddlewareFunc("fakeaws.capture", func(ctx context.Context, in middleware.InitializeInput, next middleware.InitializeHandler) (middleware.InitializeOutput, middleware.Metadata, error) {
	return next.HandleInitialize(middleware.WithStackValue(ctx, paramsKey{}, in.Parameters), in)
})

// checked holds each call's input to its API model once, above the retries.
func (w *World) checked(s *middleware.Stack) error {
	if err := s.Initialize.Add(capture, middleware.After); err != nil {
		return err
	}
	return apimodel.Validate(w.models.Report)(s)
}

func (w *World) install(s *middleware.Stack) error {
	if err := w.checked(s); err != nil {
		return err
	}
	answer := middleware.FinalizeMiddlewareFunc("fakeaws.answer", func(ctx context.Context, _ middleware.FinalizeInput, _ middleware.FinalizeHandler) (middleware.FinalizeOutput, middleware.Metadata, error) {
		out, err := w.call(ctx, awsmiddleware.GetServiceID(ctx), awsmiddleware.GetOperationName(ctx), middleware.GetStackValue(ctx, paramsKey{}))
		return middleware.FinalizeOutput{Result: out}, middleware.Metadata{}, err
	})
	return s.Finalize.Insert(answer, "Retry", middleware.After)
}

// Record is an API option for a client of a real emulator (dynalite for DynamoDB): the
// emulator answers, and the world logs each call it answered, so that Authz can check it
// against the caller's policies like any other.
func (w *World) Record(s *middleware.Stack) error {
	if err := w.checked(s); err != nil {
		return err
	}
	record := middleware.FinalizeMiddlewareFunc("fakeaws.record", func(ctx context.Context, in middleware.FinalizeInput, next middleware.FinalizeHandler) (middleware.FinalizeOutput, middleware.Metadata, error) {
		out, md, err := next.HandleFinalize(ctx, in)
		var api smithy.APIError
		if err == nil || errors.As(err, &api) { // the service answered, if only to refuse
			w.mu.Lock()
			w.log = append(w.log, Call{Service: awsmiddleware.GetServiceID(ctx), Operation: awsmiddleware.GetOperationName(ctx), Params: middleware.GetStackValue(ctx, paramsKey{})})
			w.mu.Unlock()
		}
		return out, md, err
	})
	return s.Finalize.Insert(record, "Retry", middleware.After)
}

func (w *World) call(ctx context.Context, service, op string, params any) (any, error) {
	w.mu.Lock()
	if w.calls == nil {
		w.calls = map[string]int{}
	}
	key := service + "." + op
	w.calls[key]++
	attempt := w.calls[key]
	fault, delay := w.Fault, w.Delay
	w.mu.Unlock()
	if delay > 0 {
		select {
		case <-time.After(delay):
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	if fault != nil {
		if err := fault(service, op, attempt); err != nil {
			return nil, err
		}
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	h, ok := handlers[key]
	if !ok {
		return nil, fmt.Errorf("fakeaws: %s is not implemented", key)
	}
	if !w.Unlogged {
		w.log = append(w.log, Call{Service: service, Operation: op, Params: params})
	}
	return h(w, params)
}

type handler func(w *World, params any) (any, error)

// handlers answer each operation the product calls; each lives with its service.
var handlers = map[string]handler{}

func register(service string, ops map[string]handler) {
	for op, h := range ops {
		handlers[service+"."+op] = h
	}
}

// APIError builds an error as the service would return it (for Fault).
func APIError(code, message string) error {
	return &smithy.GenericAPIError{Code: code, Message: message}
}

// invalid is a request a service rejects for breaking a documented rule.
func invalid(code, format string, args ...any) error {
	return APIError(code, fmt.Sprintf(format, args...))
}

// Throttle returns a Fault that throttles every call of operation whose attempt number is
// odd, so each call succeeds on its first retry.
func Throttle(operation string) Fault {
	return func(_, op string, attempt int) error {
		if op == operation && attempt%2 == 1 {
			return APIError("ThrottlingException", "Rate exceeded")
		}
		return nil
	}
}

func (w *World) newCommandID() string {
	w.nextCmd++
	return fmt.Sprintf("%08x-0000-4000-8000-%012x", w.nextCmd, w.nextCmd)
}
