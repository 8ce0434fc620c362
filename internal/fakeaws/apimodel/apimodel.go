// Package apimodel checks requests against AWS's own API models, the JSON that botocore
// ships (data/<service>/<api-version>/service-2.json[.gz]): required members, lengths,
// patterns, enums, list and map sizes, number ranges, members the model does not know.
// The fakes and the emulators' clients run every request the tests send through it, so a
// request AWS would refuse fails the test that sent it, whatever the code does with the
// error. It is the model's reading of a request, not ours: no rule here is written by hand.
//
// It sits under fakeaws because the fake account (tests and demo) and the emulators'
// clients use it and no product package may: it is a test oracle.
//
// load.go finds botocore's data directory and reads a service's model; shapes.go walks a
// request through the model's shapes; this file is what callers use: Check, the SDK
// middleware Validate, and the Log a test fails on.
package apimodel

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"strings"
	"sync"

	awsmiddleware "github.com/aws/aws-sdk-go-v2/aws/middleware"
	"github.com/aws/smithy-go/middleware"
)

// EnvData names botocore's data directory, in place of the one python3's botocore has.
const EnvData = "STORECRYPT_BOTOCORE_DATA"

// Dirs maps the SDK's service id (awsmiddleware.GetServiceID) to botocore's directory.
// TestDirsMatchModels holds each to the model's own metadata.serviceId.
var Dirs = map[string]string{
	"CloudFormation":  "cloudformation",
	"CloudWatch Logs": "logs",
	"DynamoDB":        "dynamodb",
	"EC2":             "ec2",
	"EventBridge":     "events",
	"IAM":             "iam",
	"KMS":             "kms",
	"S3":              "s3",
	"SQS":             "sqs",
	"SSM":             "ssm",
	"Organizations":   "organizations",
	"STS":             "sts",
	"SecurityHub":     "securityhub",
}

// Violation is a request that breaks its service's model.
type Violation struct {
	Service, Operation string
	Path               string // where in the input, e.g. Findings[0].ProductFields["a"]
	Rule               string // what the model says and what the request had
}

func (v *Violation) Error() string {
	return fmt.Sprintf("%s %s: %s: %s (botocore model)", v.Service, v.Operation, v.Path, v.Rule)
}

type ref struct {
	Shape string `json:"shape"`
}

type shape struct {
	Type      string         `json:"type"`
	Required  []string       `json:"required"`
	Members   map[string]ref `json:"members"`
	Member    ref            `json:"member"`
	Key       ref            `json:"key"`
	Value     ref            `json:"value"`
	Min       *float64       `json:"min"`
	Max       *float64       `json:"max"`
	Pattern   string         `json:"pattern"`
	Enum      []string       `json:"enum"`
	Union     bool           `json:"union"`
	Streaming bool           `json:"streaming"`
	Document  bool           `json:"document"`
}

// Model is one service's model.
type Model struct {
	APIVersion string `json:"-"` // the api-version directory it was read from
	File       string `json:"-"`
	Metadata   struct {
		ServiceID string `json:"serviceId"`
		Protocol  string `json:"protocol"`
	} `json:"metadata"`
	Operations map[string]struct {
		Input *ref `json:"input"`
	} `json:"operations"`
	Shapes map[string]*shape `json:"shapes"`

	patterns sync.Map // pattern -> *regexp.Regexp or error
}

// Check validates a typed SDK input (*kms.EncryptInput, ...) of operation op of the
// service the SDK calls serviceID. The SDK's field names are the model's member names; a
// nil pointer, slice or map, an empty enum and a zero number or bool held by value are
// absent, as the SDK's serializers leave them out.
func Check(serviceID, op string, input any) error {
	return check(serviceID, op, reflect.ValueOf(input))
}

// CheckJSON validates the JSON body of an awsJson request (KMS, DynamoDB, ...), whose
// keys are the model's member names.
func CheckJSON(serviceID, op string, body []byte) error {
	var v any
	d := json.NewDecoder(strings.NewReader(string(body)))
	d.UseNumber()
	if len(strings.TrimSpace(string(body))) > 0 {
		if err := d.Decode(&v); err != nil {
			return fmt.Errorf("decoding a %s %s request: %w", serviceID, op, err)
		}
	}
	return check(serviceID, op, reflect.ValueOf(v))
}

func check(serviceID, op string, v reflect.Value) error {
	m, err := Load(serviceID)
	if err != nil {
		return err
	}
	o, ok := m.Operations[op]
	if !ok {
		return fmt.Errorf("%s has no operation %s in %s", serviceID, op, m.File)
	}
	if o.Input == nil {
		return nil
	}
	w := walker{m: m, service: serviceID, op: op}
	w.value(o.Input.Shape, v, op+"Input")
	return errors.Join(w.errs...)
}

// TB is the part of testing.TB a Log fails.
type TB interface {
	Helper()
	Errorf(format string, args ...any)
	Cleanup(func())
}

// Log keeps the violations that the clients of a fake or an emulator met, so that the
// test fails on them even where the code only logged the error it got.
type Log struct {
	mu   sync.Mutex
	errs []error
}

// Report keeps err.
func (l *Log) Report(err error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.errs = append(l.errs, err)
}

// Violations returns what was reported, in order.
func (l *Log) Violations() []error {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]error(nil), l.errs...)
}

// FailOn has t fail at its end for each violation reported. A nil t (the demo) leaves
// reading Violations to the caller.
func (l *Log) FailOn(t TB) {
	if t == nil {
		return
	}
	t.Cleanup(func() {
		t.Helper()
		for _, err := range l.Violations() {
			if v := (*Violation)(nil); errors.As(err, &v) {
				t.Errorf("a request the service would refuse: %v", err)
			} else {
				t.Errorf("a request not checked against its API model: %v", err)
			}
		}
	})
}

// Validate is an API option (aws.Config.APIOptions, or a client's Options.APIOptions) that
// checks each request's typed input before the SDK serializes it. A request that breaks
// the model, or one no model can be found for, is handed to report, where a test keeps it
// to fail (the caller may only log an error), and then sent: the emulator answers as it
// would.
func Validate(report func(error)) func(*middleware.Stack) error {
	return func(s *middleware.Stack) error {
		return s.Initialize.Add(middleware.InitializeMiddlewareFunc("apimodel.validate", func(ctx context.Context, in middleware.InitializeInput, next middleware.InitializeHandler) (middleware.InitializeOutput, middleware.Metadata, error) {
			if err := Check(awsmiddleware.GetServiceID(ctx), awsmiddleware.GetOperationName(ctx), in.Parameters); err != nil {
				report(err)
			}
			return next.HandleInitialize(ctx, in)
		}), middleware.After)
	}
}
