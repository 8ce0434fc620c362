// Package controlplane models storecrypt's control plane under AWS's documented rate
// limits, in simulated time: a burst of launches through the launch function (Batched)
// against the naive one-event-per-invocation design (Naive), and `storecrypt revoke
// --all` over a fleet (FleetRevoke). It runs the functions' and the CLI's own code
// against the fake account (internal/fakeaws) and boots no guest, so `make test` runs it
// beside the QEMU tests, not behind them; `make bench` (test/bench) reports its figures.
package controlplane

import (
	"container/heap"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/aws/ratelimit"
	"github.com/aws/aws-sdk-go-v2/aws/retry"

	"github.com/storecrypt/storecrypt/internal/fakeaws"
	"github.com/storecrypt/storecrypt/internal/lambdaenv"
)

// Rate is a token bucket: Burst calls at once, Refill per second after that.
type Rate struct {
	Burst  float64
	Refill float64
}

// Rates are the API limits the model throttles at, per account and region, each from
// AWS's own page (docs/aws-fidelity.md quotes them). Where AWS gives one rate and no
// burst, a second's worth is the bucket.
var Rates = map[string]Rate{
	// EC2, "Request throttling for the Amazon EC2 API" (Request token bucket sizes and
	// refill rates): the launch function's DescribeInstances is filtered (instance-id),
	// so it draws on the non-mutating bucket, 100 and 20 a second, as DescribeInstanceTypes
	// does; CreateTags is an uncategorized action with its own, 100 and 10.
	"EC2.DescribeInstances":     {100, 20},
	"EC2.DescribeInstanceTypes": {100, 20},
	"EC2.CreateTags":            {100, 10},
	// SSM: no published rate was found for SendCommand or DescribeInstanceInformation
	// ("AWS Systems Manager endpoints and quotas" and the API reference name none);
	// assumed: 20 and 10 a second for SendCommand, 40 and 20 for
	// DescribeInstanceInformation, lower than EC2's like buckets. At 50 instances a command, 10 a second is 500 instances a second,
	// ten times the grant rate, so the burst's length does not hang on the guess.
	"SSM.DescribeInstanceInformation": {40, 20},
	"SSM.SendCommand":                 {20, 10},
	// IAM: no published request rate was found ("IAM and AWS STS quotas"); assumed 20 and 10 a
	// second for GetInstanceProfile, 10 and 5 for SimulatePrincipalPolicy. The launch
	// function calls each once per role and five minutes (binding.Checker's TTL).
	"IAM.GetInstanceProfile":      {20, 10},
	"IAM.SimulatePrincipalPolicy": {10, 5},
	// KMS, "Request quotas" (requests per second; each operation its own quota, the
	// cryptographic ones aside).
	"KMS.DescribeKey":  {2000, 2000},
	"KMS.GetKeyPolicy": {1000, 1000},
	"KMS.ListGrants":   {100, 100},
	// One per instance the launch function commands (kms-datakey).
	"KMS.CreateGrant": {50, 50},
	"KMS.RevokeGrant": {50, 50},
	"KMS.RetireGrant": {50, 50},
	"KMS.TagResource": {10, 10},
	// EventBridge, "Amazon EventBridge quotas": PutEvents 10,000 a second in us-east-1
	// (the world's region), less elsewhere.
	"EventBridge.PutEvents": {10000, 10000},
	// SQS, "Getting started with Amazon SQS standard queues": standard queues "support a
	// nearly unlimited number of API calls per second, per API action": no bucket for
	// ChangeMessageVisibilityBatch nor SendMessageBatch.
	//
	// DynamoDB, "DynamoDB on-demand capacity mode" (Initial throughput and scaling
	// properties): a new on-demand table sustains "up to 4,000 writes per second and
	// 12,000 reads per second"; the ledger's items are small (one request unit each).
	"DynamoDB.UpdateItem": {4000, 4000},
	"DynamoDB.Query":      {12000, 12000},
}

// latency is what one call costs in simulated time: 30 ms, but DynamoDB's, whose
// on-demand page promises "single-digit millisecond latency".
func latency(service string) time.Duration {
	if service == "DynamoDB" {
		return 10 * time.Millisecond
	}
	return 30 * time.Millisecond
}

// clock is simulated time with a token bucket per API. It is the world's Fault hook: a
// call that finds its bucket empty is answered ThrottlingException, and the SDK's own
// retryer tries again (each attempt is a call) after its own backoff, spent in simulated
// time; past its attempts the error reaches the design under test.
//
// Time is kept one of two ways. With sim set, each invocation runs in its own goroutine
// and each call or wait is spent in it (sim.Sleep), so a retry comes when its own backoff
// has passed, whatever the others did meanwhile. Without, invocations run one after
// another on one timeline, each call or wait advancing it by its length/parallel, so the
// buckets see the aggregate call rate; a retry then comes after only its share of its
// backoff, which throttles it again where the buckets are small (the naive design's
// 1,000 invocations at once: sim).
type clock struct {
	parallel  int
	sim       *sim
	mu        sync.Mutex
	now       time.Duration
	tokens    map[string]float64
	last      map[string]time.Duration
	throttled int
}

func (c *clock) hook(service, op string, _ int) error {
	err := c.take(service + "." + op)
	c.wait(latency(service))
	return err
}

// take draws a token from key's bucket, if it has one.
func (c *clock) take(key string) error {
	r, limited := Rates[key]
	if !limited {
		return nil
	}
	now := c.time()
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.tokens == nil {
		c.tokens, c.last = map[string]float64{}, map[string]time.Duration{}
	}
	if _, seen := c.last[key]; !seen {
		c.tokens[key], c.last[key] = r.Burst, now
	}
	c.tokens[key] = min(r.Burst, c.tokens[key]+(now-c.last[key]).Seconds()*r.Refill)
	c.last[key] = now
	if c.tokens[key] < 1 {
		c.throttled++
		return fakeaws.APIError("ThrottlingException", "Rate exceeded")
	}
	c.tokens[key]--
	return nil
}

// wait spends d of simulated time.
func (c *clock) wait(d time.Duration) {
	if c.sim != nil {
		c.sim.Sleep(d)
		return
	}
	c.mu.Lock()
	c.now += d / time.Duration(c.parallel)
	c.mu.Unlock()
}

// config is the world's AWS configuration with the functions' retry settings
// (lambdaenv: up to MaxAttempts attempts) and the SDK's own exponential jittered backoff
// (at most 20 s), waited in simulated time. The functions' adaptive mode would also slow
// its own sending once throttled; without it the model counts more throttled attempts
// than the functions would make.
func (c *clock) config(w *fakeaws.World) aws.Config {
	cfg := w.Config()
	jitter := retry.NewExponentialJitterBackoff(20 * time.Second)
	cfg.Retryer = func() aws.Retryer {
		return retry.NewStandard(func(o *retry.StandardOptions) {
			o.MaxAttempts = lambdaenv.MaxAttempts
			o.RateLimiter = ratelimit.None
			o.Backoff = retry.BackoffDelayerFunc(func(attempt int, err error) (time.Duration, error) {
				d, derr := jitter.BackoffDelay(attempt, err)
				c.wait(d)
				return 0, derr
			})
		})
	}
	return cfg
}

// time reads the simulated clock.
func (c *clock) time() time.Duration {
	if c.sim != nil {
		return c.sim.Now()
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

// schedule orders queued work by when it becomes visible again.
type schedule struct {
	items []scheduled
	seq   int // keeps items with the same time in the order they were added
}

type scheduled struct {
	body string
	at   time.Duration
	seq  int
}

func (s *schedule) Len() int { return len(s.items) }
func (s *schedule) Less(i, j int) bool {
	a, b := s.items[i], s.items[j]
	return a.at < b.at || a.at == b.at && a.seq < b.seq
}
func (s *schedule) Swap(i, j int) { s.items[i], s.items[j] = s.items[j], s.items[i] }
func (s *schedule) Push(x any)    { s.items = append(s.items, x.(scheduled)) }
func (s *schedule) Pop() any {
	it := s.items[len(s.items)-1]
	s.items = s.items[:len(s.items)-1]
	return it
}

func (s *schedule) add(body string, at time.Duration) {
	s.seq++
	heap.Push(s, scheduled{body, at, s.seq})
}

// next takes up to n visible items, moving the clock forward to the first if none is
// visible yet (the buckets refill meanwhile).
func (s *schedule) next(c *clock, n int) []string {
	c.mu.Lock()
	if first := s.items[0].at; first > c.now {
		c.now = first
	}
	now := c.now
	c.mu.Unlock()
	var out []string
	for len(out) < n && s.Len() > 0 && s.items[0].at <= now {
		out = append(out, heap.Pop(s).(scheduled).body)
	}
	return out
}
