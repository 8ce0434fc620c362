package controlplane

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"

	"github.com/aws/aws-sdk-go-v2/aws"
	awsmiddleware "github.com/aws/aws-sdk-go-v2/aws/middleware"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/smithy-go/middleware"

	"github.com/storecrypt/storecrypt/internal/fakeaws"
	"github.com/storecrypt/storecrypt/internal/ledger"
)

// freshTable answers the ledger's DynamoDB calls as a fresh on-demand table answers a
// burst of new launches: nothing is marked revoked, and every entry is the first of its
// launch, so each Record writes once. That is what dynalite answers (TestLedgerAsDynalite
// holds the model to it), without a node process's cost per call: a burst of 100,000
// makes some 200,000 of them.
type freshTable struct{}

func (freshTable) RoundTrip(r *http.Request) (*http.Response, error) {
	var body string
	switch op := strings.TrimPrefix(r.Header.Get("X-Amz-Target"), "DynamoDB_20120810."); op {
	case "UpdateItem":
		body = `{}`
	case "Query":
		body = `{"Count":0,"ScannedCount":0,"Items":[]}`
	default:
		return nil, fmt.Errorf("the model's ledger table does not answer %s", op)
	}
	return &http.Response{StatusCode: http.StatusOK, Header: http.Header{"Content-Type": {"application/x-amz-json-1.0"}},
		Body: io.NopCloser(strings.NewReader(body)), Request: r}, nil
}

// ledgerCalls counts the ledger's DynamoDB attempts by "DynamoDB.<Operation>", throttled
// ones included, as the world counts its own.
type ledgerCalls struct {
	mu    sync.Mutex
	calls map[string]int
}

func (l *ledgerCalls) total() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	n := 0
	for _, v := range l.calls {
		n += v
	}
	return n
}

// modelLedger is the stack's ledger as the model's launch function writes it: the
// ledger package's own code, through a DynamoDB client whose every attempt meets its
// bucket (Rates) and costs simulated time on c, as every other API's does.
func modelLedger(c *clock, cfg aws.Config) (*ledger.Ledger, *ledgerCalls) {
	counted := &ledgerCalls{calls: map[string]int{}}
	throttle := middleware.FinalizeMiddlewareFunc("controlplane.throttle", func(ctx context.Context, in middleware.FinalizeInput, next middleware.FinalizeHandler) (middleware.FinalizeOutput, middleware.Metadata, error) {
		op := awsmiddleware.GetOperationName(ctx)
		counted.mu.Lock()
		counted.calls["DynamoDB."+op]++
		counted.mu.Unlock()
		if err := c.hook("DynamoDB", op, 0); err != nil {
			return middleware.FinalizeOutput{}, middleware.Metadata{}, err
		}
		return next.HandleFinalize(ctx, in)
	})
	db := dynamodb.New(dynamodb.Options{
		Region: fakeaws.Region, Credentials: credentials.NewStaticCredentialsProvider("model", "model", ""),
		BaseEndpoint: aws.String("http://ledger.invalid"), HTTPClient: &http.Client{Transport: freshTable{}},
		Retryer: cfg.Retryer(),
		APIOptions: []func(*middleware.Stack) error{func(s *middleware.Stack) error {
			return s.Finalize.Insert(throttle, "Retry", middleware.After)
		}},
	})
	return &ledger.Ledger{DB: db, Table: "storecrypt-ledger"}, counted
}
