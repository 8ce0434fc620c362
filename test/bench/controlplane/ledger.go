package controlplane

import (
	"context"
	"fmt"
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
// makes some 200,000 of them. It answers where the world answers (after the SDK's retry
// middleware), so the retryer runs and nothing is signed or sent.
func freshTable(op string) (any, error) {
	switch op {
	case "UpdateItem":
		return &dynamodb.UpdateItemOutput{}, nil
	case "Query":
		return &dynamodb.QueryOutput{}, nil
	}
	return nil, fmt.Errorf("the model's ledger table does not answer %s", op)
}

// ledgerCalls counts the ledger's DynamoDB attempts by "DynamoDB.<Operation>", throttled
// ones included, as the world counts its own.
type ledgerCalls struct {
	mu    sync.Mutex
	calls map[string]int
}

func (l *ledgerCalls) count(ctx context.Context) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.calls["DynamoDB."+awsmiddleware.GetOperationName(ctx)]++
}

// counting is client with every attempt it makes counted in l.
func counting(client *dynamodb.Client) (*dynamodb.Client, *ledgerCalls) {
	l := &ledgerCalls{calls: map[string]int{}}
	count := middleware.FinalizeMiddlewareFunc("controlplane.count", func(ctx context.Context, in middleware.FinalizeInput, next middleware.FinalizeHandler) (middleware.FinalizeOutput, middleware.Metadata, error) {
		l.count(ctx)
		return next.HandleFinalize(ctx, in)
	})
	return dynamodb.New(client.Options(), func(o *dynamodb.Options) {
		o.APIOptions = append(o.APIOptions, func(s *middleware.Stack) error { return s.Finalize.Insert(count, "Retry", middleware.After) })
	}), l
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
	throttle := middleware.FinalizeMiddlewareFunc("controlplane.throttle", func(ctx context.Context, in middleware.FinalizeInput, _ middleware.FinalizeHandler) (middleware.FinalizeOutput, middleware.Metadata, error) {
		counted.count(ctx)
		op := awsmiddleware.GetOperationName(ctx)
		if err := c.hook("DynamoDB", op, 0); err != nil {
			return middleware.FinalizeOutput{}, middleware.Metadata{}, err
		}
		out, err := freshTable(op)
		return middleware.FinalizeOutput{Result: out}, middleware.Metadata{}, err
	})
	db := dynamodb.New(dynamodb.Options{
		Region: fakeaws.Region, Credentials: credentials.NewStaticCredentialsProvider("model", "model", ""),
		Retryer: cfg.Retryer(),
		APIOptions: []func(*middleware.Stack) error{func(s *middleware.Stack) error {
			return s.Finalize.Insert(throttle, "Retry", middleware.After)
		}},
	})
	return &ledger.Ledger{DB: db, Table: "storecrypt-ledger"}, counted
}
