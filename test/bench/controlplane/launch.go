// Package bench measures storecrypt against the alternatives, side by side in one run:
// the launch function's batched design against the naive one-event-per-invocation design
// under throttling APIs, the functions' footprint, and (in the guest) time to a mounted,
// encrypted filesystem against the seed recipe and the bare commands. `make bench` runs it
// in full and writes docs/benchmarks.md; `make test` runs a small smoke of each.
package bench

import (
	"container/heap"
	"context"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"slices"
	"sync"
	"time"

	"github.com/aws/aws-lambda-go/events"
	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/aws/ratelimit"
	"github.com/aws/aws-sdk-go-v2/aws/retry"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	ec2types "github.com/aws/aws-sdk-go-v2/service/ec2/types"
	"github.com/aws/aws-sdk-go-v2/service/iam"
	"github.com/aws/aws-sdk-go-v2/service/kms"
	"github.com/aws/aws-sdk-go-v2/service/ssm"
	ssmtypes "github.com/aws/aws-sdk-go-v2/service/ssm/types"

	"github.com/storecrypt/storecrypt/internal/binding"
	"github.com/storecrypt/storecrypt/internal/contract"
	"github.com/storecrypt/storecrypt/internal/document"
	"github.com/storecrypt/storecrypt/internal/fakeaws"
	"github.com/storecrypt/storecrypt/internal/lambdaenv"
	"github.com/storecrypt/storecrypt/internal/launch"
	"github.com/storecrypt/storecrypt/test/deployment"
)

// Rate is a token bucket: Burst calls at once, Refill per second after that.
type Rate struct {
	Burst  float64
	Refill float64
}

// Rates are the API limits the simulation assumes, per account and region. EC2's describe
// calls get its documented non-mutating bucket (100 burst, 20/s); CreateTags a mutating
// one (100, 10/s); SSM, IAM and KMS management calls lower quotas in the spirit of their
// published TPS limits. They are assumptions for a comparison: both designs meet the same
// buckets, so the ratios matter more than the seconds.
var Rates = map[string]Rate{
	"EC2.DescribeInstances":           {100, 20},
	"EC2.DescribeInstanceTypes":       {100, 20},
	"EC2.CreateTags":                  {100, 10},
	"SSM.DescribeInstanceInformation": {40, 20},
	"SSM.SendCommand":                 {20, 10},
	"IAM.GetInstanceProfile":          {20, 10},
	"IAM.SimulatePrincipalPolicy":     {10, 5},
	// KMS's figures are its "Request quotas" page's defaults (requests per second; each
	// operation its own quota, the cryptographic ones aside), quoted in
	// docs/aws-fidelity.md; KMS names no burst, so a second's worth is the bucket.
	"KMS.DescribeKey":  {2000, 2000},
	"KMS.GetKeyPolicy": {1000, 1000},
	"KMS.ListGrants":   {100, 100},
	// One per instance the launch function commands (kms-datakey).
	"KMS.CreateGrant": {50, 50},
	"KMS.RevokeGrant": {50, 50},
	"KMS.RetireGrant": {50, 50},
	"KMS.TagResource": {10, 10},
}

// latency is what one call costs in simulated time.
const latency = 30 * time.Millisecond

// clock is simulated time with a token bucket per API. It is the world's Fault hook: a
// call that finds its bucket empty is answered ThrottlingException, and the SDK's own
// retryer tries again (each attempt is a call) after its own backoff, spent in simulated
// time; past its attempts the error reaches the design under test. parallel invocations
// share the timeline: each call or wait advances it by its length/parallel, so the
// buckets see the aggregate call rate.
type clock struct {
	parallel  int
	mu        sync.Mutex
	now       time.Duration
	tokens    map[string]float64
	last      map[string]time.Duration
	throttled int
}

func (c *clock) hook(service, op string, _ int) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	key := service + "." + op
	r, limited := Rates[key]
	if limited {
		if c.tokens == nil {
			c.tokens, c.last = map[string]float64{}, map[string]time.Duration{}
		}
		if _, seen := c.last[key]; !seen {
			c.tokens[key], c.last[key] = r.Burst, c.now
		}
		c.tokens[key] = min(r.Burst, c.tokens[key]+(c.now-c.last[key]).Seconds()*r.Refill)
		c.last[key] = c.now
		if c.tokens[key] < 1 {
			c.throttled++
			c.now += latency / time.Duration(c.parallel)
			return fakeaws.APIError("ThrottlingException", "Rate exceeded")
		}
		c.tokens[key]--
	}
	c.now += latency / time.Duration(c.parallel)
	return nil
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
				c.mu.Lock()
				c.now += d / time.Duration(c.parallel)
				c.mu.Unlock()
				return 0, derr
			})
		})
	}
	return cfg
}

// ControlPlaneResult is one design's run of one burst.
type ControlPlaneResult struct {
	Design           string         `json:"design"`
	Instances        int            `json:"instances"`
	Calls            int            `json:"calls"`
	CallsPerInstance float64        `json:"calls_per_instance"`
	SendCommands     int            `json:"send_commands"` // commands sent (throttled attempts are in Calls)
	Invocations      int            `json:"invocations"`
	Throttled        int            `json:"throttled_attempts"`
	DrainSeconds     float64        `json:"simulated_seconds_to_drain"`
	Unencrypted      int            `json:"left_without_command"`
	ByAPI            map[string]int `json:"calls_by_api"`
	// Launch to command, simulated seconds, over the instances that got one: every
	// instance of the burst launches at 0.
	ToCommandP50 float64 `json:"launch_to_command_p50_s"`
	ToCommandP95 float64 `json:"launch_to_command_p95_s"`
	ToCommandMax float64 `json:"launch_to_command_max_s"`
}

// commanded stamps each instance with the simulated time its first command was sent;
// seen is how many of the world's commands it has read.
type commanded struct {
	at   map[string]time.Duration
	seen int
}

func (k *commanded) update(w *fakeaws.World, now time.Duration) {
	if k.at == nil {
		k.at = map[string]time.Duration{}
	}
	w.With(func() {
		for _, cmd := range w.Commands[k.seen:] {
			for _, id := range cmd.InstanceIDs {
				if _, ok := k.at[id]; !ok {
					k.at[id] = now
				}
			}
		}
		k.seen = len(w.Commands)
	})
}

// burstWorld is an account with n in-scope instances; a tenth of the SSM agents come
// online one retry late.
func burstWorld(n int, rng *rand.Rand) (*fakeaws.World, deployment.Deployment, []string, error) {
	w := fakeaws.NewAccount(nil)
	d, err := deployment.Into(w, fakeaws.KeyARN)
	if err != nil {
		return nil, d, nil, err
	}
	launched := time.Date(2026, 11, 27, 6, 0, 0, 0, time.UTC)
	ids := make([]string, n)
	for k := range n {
		ids[k] = fmt.Sprintf("i-%017x", k+1)
		inst := w.AddInstance(ids[k], "i4i.large", fakeaws.Profile(fakeaws.KeyUser), nil, launched)
		if rng.IntN(10) == 0 {
			inst.OnlineAfter = 1
		}
	}
	return w, d, ids, nil
}

func finish(design string, w *fakeaws.World, c *clock, ids []string, invocations int, k *commanded) ControlPlaneResult {
	calls := w.Calls()
	sent := 0
	w.With(func() { sent = len(w.Commands) })
	r := ControlPlaneResult{Design: design, Instances: len(ids), Calls: w.TotalCalls(), SendCommands: sent,
		Invocations: invocations, Throttled: c.throttled, DrainSeconds: c.now.Seconds(), ByAPI: calls}
	r.CallsPerInstance = float64(r.Calls) / float64(len(ids))
	var waits []float64
	for _, id := range ids {
		if at, ok := k.at[id]; ok {
			waits = append(waits, at.Seconds())
		} else {
			r.Unencrypted++
		}
	}
	if len(waits) > 0 {
		slices.Sort(waits)
		at := func(q float64) float64 { return waits[min(len(waits)-1, int(q*float64(len(waits))))] }
		r.ToCommandP50, r.ToCommandP95, r.ToCommandMax = at(0.50), at(0.95), waits[len(waits)-1]
	}
	return r
}

// Batched runs storecrypt's launch handler as the stack deploys it: the event source
// mapping's batches of contract.LaunchBatchSize, five at once (an SQS event source's
// starting concurrency), each message received through the account's queue; a message
// handed back is visible again when the function's ChangeMessageVisibility says, or
// after the queue's visibility timeout when it said nothing; after
// contract.LaunchMaxReceives receives it goes to the DLQ.
func Batched(ctx context.Context, n int, seed uint64) (ControlPlaneResult, error) {
	rng := rand.New(rand.NewPCG(seed, 1))
	w, d, ids, err := burstWorld(n, rng)
	if err != nil {
		return ControlPlaneResult{}, err
	}
	c := &clock{parallel: 5}
	w.Fault = c.hook
	lc, err := launch.LoadConfig(d.Getenv)
	if err != nil {
		return ControlPlaneResult{}, err
	}
	h := launch.New(lc, c.config(w), slog.New(slog.DiscardHandler), io.Discard)
	q := &schedule{}
	for _, id := range ids {
		q.add(launch.StateChangeEvent(id, time.Date(2026, 11, 27, 6, 0, 0, 0, time.UTC)), 0)
	}
	receives := map[string]int{}
	invocations := 0
	k := &commanded{}
	for q.Len() > 0 {
		batch := events.SQSEvent{}
		received := map[string]events.SQSMessage{}
		for _, body := range q.next(c, contract.LaunchBatchSize) {
			receives[body]++
			rec := w.Receive(fmt.Sprintf("m-%d", len(batch.Records)), body, receives[body])
			received[rec.MessageId] = rec
			batch.Records = append(batch.Records, rec)
		}
		resp, err := h.HandleSQS(ctx, batch)
		if err != nil {
			return ControlPlaneResult{}, err
		}
		invocations++
		now := c.time()
		k.update(w, now)
		for _, f := range resp.BatchItemFailures {
			rec := received[f.ItemIdentifier]
			if receives[rec.Body] >= contract.LaunchMaxReceives {
				continue
			}
			after := contract.LaunchVisibility
			w.With(func() {
				if v := w.InFlight[rec.ReceiptHandle]; v != nil {
					after = *v
				}
			})
			q.add(rec.Body, now+after)
		}
	}
	return finish("storecrypt (batched)", w, c, ids, invocations, k), nil
}

// Naive is the baseline: one event per invocation, and for each instance its own
// DescribeInstances, binding check, DescribeInstanceTypes, DescribeInstanceInformation,
// SendCommand and CreateTags, as Cloud Custodian's ec2-instance-state mode and the
// Inspector agent auto-deploy sample do. A late SSM agent retries the whole event.
func Naive(ctx context.Context, n int, seed uint64) (ControlPlaneResult, error) {
	rng := rand.New(rand.NewPCG(seed, 1))
	w, _, ids, err := burstWorld(n, rng)
	if err != nil {
		return ControlPlaneResult{}, err
	}
	// EventBridge invokes asynchronously: every event its own invocation, up to the
	// account's default concurrency of 1,000 at once.
	c := &clock{parallel: min(n, 1000)}
	w.Fault = c.hook
	cfg := c.config(w)
	ec2c, ssmc := ec2.NewFromConfig(cfg), ssm.NewFromConfig(cfg)
	iamc, kmsc := iam.NewFromConfig(cfg), kms.NewFromConfig(cfg)
	// Lambda retries a failed asynchronous invocation twice, a minute and then two
	// minutes later, then drops the event; a late SSM agent costs one of those tries too.
	const maxTries = 3
	q := &schedule{}
	for _, id := range ids {
		q.add(id, 0)
	}
	tries := map[string]int{}
	invocations := 0
	k := &commanded{}
	for q.Len() > 0 {
		id := q.next(c, 1)[0]
		invocations++
		tries[id]++
		retry, err := naiveOne(ctx, id, ec2c, ssmc, &binding.Checker{IAM: iamc, KMS: kmsc})
		k.update(w, c.time())
		if (err != nil || retry) && tries[id] < maxTries {
			q.add(id, c.time()+time.Duration(tries[id])*time.Minute)
		}
	}
	return finish("naive (per event)", w, c, ids, invocations, k), nil
}

func naiveOne(ctx context.Context, id string, ec2c *ec2.Client, ssmc *ssm.Client, checker *binding.Checker) (bool, error) {
	out, err := ec2c.DescribeInstances(ctx, &ec2.DescribeInstancesInput{InstanceIds: []string{id}})
	if err != nil {
		return false, err
	}
	inst := out.Reservations[0].Instances[0]
	if _, err := ec2c.DescribeInstanceTypes(ctx, &ec2.DescribeInstanceTypesInput{InstanceTypes: []ec2types.InstanceType{inst.InstanceType}}); err != nil {
		return false, err
	}
	v, err := checker.Check(ctx, binding.Request{InstanceProfileARN: aws.ToString(inst.IamInstanceProfile.Arn), InstanceID: id, KeyARN: fakeaws.KeyARN, KeySource: contract.KeySourceKMSDataKey})
	if err != nil {
		return false, err
	}
	if !v.Allowed {
		return false, fmt.Errorf("naive binding check: %s", v.Reason)
	}
	info, err := ssmc.DescribeInstanceInformation(ctx, &ssm.DescribeInstanceInformationInput{
		Filters: []ssmtypes.InstanceInformationStringFilter{{Key: aws.String("InstanceIds"), Values: []string{id}}},
	})
	if err != nil {
		return false, err
	}
	if len(info.InstanceInformationList) == 0 {
		return true, nil
	}
	// The document requires the agent's architecture; an instance storecrypt has no agent
	// for is dropped, as the launch function drops it.
	arch, ok := document.ArchFromEC2(string(inst.Architecture))
	if !ok {
		return false, nil
	}
	sent, err := ssmc.SendCommand(ctx, &ssm.SendCommandInput{
		DocumentName: aws.String(contract.DocumentName), InstanceIds: []string{id},
		Parameters: map[string][]string{document.ArchitectureParameter: {arch}},
	})
	if err != nil {
		return false, err
	}
	_, err = ec2c.CreateTags(ctx, &ec2.CreateTagsInput{Resources: []string{id}, Tags: []ec2types.Tag{
		{Key: aws.String(contract.TagStatus), Value: aws.String(contract.StatusPending)},
		{Key: aws.String(contract.TagCommandID), Value: sent.Command.CommandId},
	}})
	return false, err
}

// time reads the simulated clock.
func (c *clock) time() time.Duration {
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
