package controlplane

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"slices"
	"time"

	"github.com/aws/aws-lambda-go/events"
	"github.com/aws/aws-sdk-go-v2/aws"
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
	"github.com/storecrypt/storecrypt/internal/launch"
	"github.com/storecrypt/storecrypt/test/deployment"
)

// BurstResult is one design's run of one burst.
type BurstResult struct {
	Design           string  `json:"design"`
	Instances        int     `json:"instances"`
	Calls            int     `json:"calls"`
	CallsPerInstance float64 `json:"calls_per_instance"`
	SendCommands     int     `json:"send_commands"` // commands sent (throttled attempts are in Calls)
	Invocations      int     `json:"invocations"`
	Throttled        int     `json:"throttled_attempts"`
	DrainSeconds     float64 `json:"simulated_seconds_to_drain"`
	Unencrypted      int     `json:"left_without_command"`
	// DLQ counts the messages past contract.LaunchMaxReceives: the redrive policy moves
	// them to the dead-letter queue, and only the sweep comes back to their instances.
	DLQ   int            `json:"dlq"`
	ByAPI map[string]int `json:"calls_by_api"`
	// LedgerCalls are the ledger's DynamoDB attempts, apart from Calls (as the fleet
	// revoke counts them); CallsPerInstance counts both. Of each instance's calls,
	// GrantCallsPerInstance are CreateGrant's (one per kms-datakey instance, by design),
	// LedgerCallsPerInstance the ledger's, OtherCallsPerInstance everything else.
	LedgerCalls            int     `json:"ledger_calls"`
	GrantCallsPerInstance  float64 `json:"grant_calls_per_instance"`
	LedgerCallsPerInstance float64 `json:"ledger_calls_per_instance"`
	OtherCallsPerInstance  float64 `json:"other_calls_per_instance"`
	// LastGrantS is when the last grant was made, simulated seconds from the burst.
	LastGrantS float64 `json:"last_grant_s"`
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

// launched is when every instance of a burst launches.
var launched = time.Date(2026, 11, 27, 6, 0, 0, 0, time.UTC)

// burstWorld is an account with n in-scope instances; a tenth of the SSM agents come
// online one retry late.
func burstWorld(n int, rng *rand.Rand) (*fakeaws.World, deployment.Deployment, []string, error) {
	w := fakeaws.NewAccount(nil)
	w.Unlogged = true
	d, err := deployment.Into(w, fakeaws.KeyARN)
	if err != nil {
		return nil, d, nil, err
	}
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

// run is what a design's run leaves besides the world: its invocations, the messages it
// dead-lettered, its ledger's calls, when each instance got its command and when the last
// grant was made.
type run struct {
	invocations, dlq int
	ledger           *ledgerCalls
	commanded        *commanded
	lastGrant        time.Duration
}

func finish(design string, w *fakeaws.World, c *clock, ids []string, x run) BurstResult {
	calls := w.Calls()
	sent := 0
	w.With(func() { sent = len(w.Commands) })
	r := BurstResult{Design: design, Instances: len(ids), Calls: w.TotalCalls(), SendCommands: sent,
		Invocations: x.invocations, Throttled: c.throttled, DrainSeconds: c.time().Seconds(), ByAPI: calls, DLQ: x.dlq, LastGrantS: x.lastGrant.Seconds()}
	if x.ledger != nil {
		r.LedgerCalls = x.ledger.total()
	}
	per := func(calls int) float64 { return float64(calls) / float64(len(ids)) }
	r.CallsPerInstance = per(r.Calls + r.LedgerCalls)
	r.GrantCallsPerInstance, r.LedgerCallsPerInstance = per(calls["KMS.CreateGrant"]), per(r.LedgerCalls)
	r.OtherCallsPerInstance = per(r.Calls - calls["KMS.CreateGrant"])
	k := x.commanded
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
func Batched(ctx context.Context, n int, seed uint64) (BurstResult, error) {
	rng := rand.New(rand.NewPCG(seed, 1))
	w, d, ids, err := burstWorld(n, rng)
	if err != nil {
		return BurstResult{}, err
	}
	c := &clock{parallel: 5}
	w.Fault = c.hook
	lc, err := launch.LoadConfig(d.Getenv)
	if err != nil {
		return BurstResult{}, err
	}
	cfg := c.config(w)
	h := launch.New(lc, cfg, slog.New(slog.DiscardHandler), io.Discard)
	// The function's clocks are the simulation's: the binding check reads the key again
	// (its grants, 100 a page) every BindingTTL of simulated time, as it does deployed.
	h.Now = func() time.Time { return launched.Add(c.time()) }
	h.Binder.(*binding.Checker).Now = h.Now
	// The stack always gives the function its ledger (contract.EnvLedgerTable).
	x := run{commanded: &commanded{}}
	h.Ledger, x.ledger = modelLedger(c, cfg)
	h.KMS = &grantClock{KMS: h.KMS, c: c, last: &x.lastGrant}
	q := &schedule{}
	for _, id := range ids {
		q.add(launch.StateChangeEvent(id, launched), 0)
	}
	receives := map[string]int{}
	k := x.commanded
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
			return BurstResult{}, err
		}
		x.invocations++
		now := c.time()
		k.update(w, now)
		for _, f := range resp.BatchItemFailures {
			rec := received[f.ItemIdentifier]
			if receives[rec.Body] >= contract.LaunchMaxReceives {
				x.dlq++
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
	return finish("storecrypt (batched)", w, c, ids, x), nil
}

// Naive is the baseline: one event per invocation, and for each instance its own
// DescribeInstances, binding check, DescribeInstanceTypes, DescribeInstanceInformation,
// SendCommand and CreateTags, as Cloud Custodian's ec2-instance-state mode and the
// Inspector agent auto-deploy sample do. A late SSM agent retries the whole event. Its
// invocations run at once, each in its own simulated time (sim): on one shared timeline
// a throttled call's retry came after a thousandth of its backoff and was throttled
// again, and the design commanded 7 of 1,000 instances (2026-12-07), a baseline that
// measured the model rather than the design.
func Naive(ctx context.Context, n int, seed uint64) (BurstResult, error) {
	rng := rand.New(rand.NewPCG(seed, 1))
	w, _, ids, err := burstWorld(n, rng)
	if err != nil {
		return BurstResult{}, err
	}
	// EventBridge invokes asynchronously: every event its own invocation, up to the
	// account's default concurrency of 1,000 at once, each in its own time (sim).
	c := &clock{sim: newSim()}
	w.Fault = c.hook
	cfg := c.config(w)
	ec2c, ssmc := ec2.NewFromConfig(cfg), ssm.NewFromConfig(cfg)
	iamc, kmsc := iam.NewFromConfig(cfg), kms.NewFromConfig(cfg)
	concurrency := &semaphore{s: c.sim, free: min(n, 1000)}
	// Lambda retries a failed asynchronous invocation twice, a minute and then two
	// minutes later, then drops the event; a late SSM agent costs one of those tries too.
	const maxTries = 3
	x := run{commanded: &commanded{}}
	for _, id := range ids {
		c.sim.Go(func() {
			for try := 1; ; try++ {
				concurrency.Acquire()
				x.invocations++
				retry, err := naiveOne(ctx, id, ec2c, ssmc, &binding.Checker{IAM: iamc, KMS: kmsc})
				x.commanded.update(w, c.time())
				concurrency.Release()
				switch {
				case err == nil && !retry:
					return
				case try == maxTries:
					x.dlq++ // the event is dropped, or kept in an on-failure destination
					return
				}
				c.sim.Sleep(time.Duration(try) * time.Minute)
			}
		})
	}
	c.sim.Run()
	return finish("naive (per event)", w, c, ids, x), nil
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

// grantClock notes when the launch function's last grant was made.
type grantClock struct {
	launch.KMS
	c    *clock
	last *time.Duration
}

func (g *grantClock) CreateGrant(ctx context.Context, in *kms.CreateGrantInput, o ...func(*kms.Options)) (*kms.CreateGrantOutput, error) {
	out, err := g.KMS.CreateGrant(ctx, in, o...)
	if err == nil {
		*g.last = g.c.time()
	}
	return out, err
}
