// Package fakeaws is an in-memory AWS account for the functions' tests and the demo: EC2
// instances and types, IAM instance profiles with an honest policy simulator, a KMS key
// with its policy and grants, SSM managed instances and commands, SQS and EventBridge.
//
// Real aws-sdk-go-v2 clients talk to it: a middleware takes the typed input at the
// Initialize step and answers right after the Retry middleware in the Finalize step. So
// parameter validation, paginators and the SDK's retryer all run for real, and a
// ThrottlingException the world injects is retried by the SDK, not by our code.
package fakeaws

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awsmiddleware "github.com/aws/aws-sdk-go-v2/aws/middleware"
	"github.com/aws/aws-sdk-go-v2/aws/ratelimit"
	"github.com/aws/aws-sdk-go-v2/aws/retry"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/smithy-go"
	"github.com/aws/smithy-go/middleware"
)

// Account and Region of the fake account.
const (
	Account = "111122223333"
	Region  = "us-east-1"
)

// Instance is an EC2 instance.
type Instance struct {
	ID         string
	Type       string
	State      string // pending, running, stopped, terminated
	ProfileARN string
	LaunchTime time.Time
	Tags       map[string]string
	// OnlineAfter is how many DescribeInstanceInformation answers show the SSM agent not
	// yet Online before it is; -1 never comes online.
	OnlineAfter int
}

// Role is an IAM role with the actions its identity policies allow ("kms:*" matches).
type Role struct {
	ARN     string
	Allowed []string
}

// Key is a KMS key.
type Key struct {
	ARN         string
	State       string // Enabled, Disabled, PendingDeletion
	Policy      string
	Grants      []Grant
	RotationOff bool
}

// Grant gives Grantee the operations ("Decrypt", "GenerateDataKey").
type Grant struct {
	Grantee    string
	Operations []string
}

// Command is a SendCommand the world received.
type Command struct {
	ID           string
	DocumentName string
	InstanceIDs  []string
	Parameters   map[string][]string
	Requested    time.Time
	// Status and Output per instance, set by the test or the demo's SSM runner.
	Invocations map[string]*Invocation
}

// Invocation is one instance's part of a command.
type Invocation struct {
	Status       string // Success, Failed, TimedOut, ...
	ResponseCode int32
	Stdout       string
}

// Fault is asked before each call; a non-nil error is returned in place of the answer.
type Fault func(service, operation string, attempt int) error

// World holds the account's state. Zero maps are made on first use.
type World struct {
	mu        sync.Mutex
	Instances map[string]*Instance
	// InstanceTypes says whether a type has instance store.
	InstanceTypes map[string]bool
	Profiles      map[string]string // instance profile ARN -> role ARN ("" for none)
	Roles         map[string]*Role
	Keys          map[string]*Key
	Commands      []*Command
	Messages      []string // SQS message bodies sent
	Events        []Event  // EventBridge entries put
	Fault         Fault
	Delay         time.Duration
	// OnCommand runs after SendCommand is recorded (the demo delivers it to the guest).
	OnCommand func(*Command)

	calls   map[string]int // "Service.Operation" -> attempts
	nextCmd int
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

// TotalCalls is the sum of Calls.
func (w *World) TotalCalls() int {
	n := 0
	for _, v := range w.Calls() {
		n += v
	}
	return n
}

// Config returns an aws.Config whose clients talk to the world. Retries have no backoff
// delay, so a test of throttling takes no time.
func (w *World) Config() aws.Config {
	return aws.Config{
		Region:      Region,
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

func (w *World) install(s *middleware.Stack) error {
	capture := middleware.InitializeMiddlewareFunc("fakeaws.capture", func(ctx context.Context, in middleware.InitializeInput, next middleware.InitializeHandler) (middleware.InitializeOutput, middleware.Metadata, error) {
		return next.HandleInitialize(middleware.WithStackValue(ctx, paramsKey{}, in.Parameters), in)
	})
	if err := s.Initialize.Add(capture, middleware.After); err != nil {
		return err
	}
	answer := middleware.FinalizeMiddlewareFunc("fakeaws.answer", func(ctx context.Context, _ middleware.FinalizeInput, _ middleware.FinalizeHandler) (middleware.FinalizeOutput, middleware.Metadata, error) {
		out, err := w.call(ctx, awsmiddleware.GetServiceID(ctx), awsmiddleware.GetOperationName(ctx), middleware.GetStackValue(ctx, paramsKey{}))
		return middleware.FinalizeOutput{Result: out}, middleware.Metadata{}, err
	})
	return s.Finalize.Insert(answer, "Retry", middleware.After)
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
	return h(w, params)
}

// APIError builds an error as the service would return it (for Fault).
func APIError(code, message string) error {
	return &smithy.GenericAPIError{Code: code, Message: message}
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
