package agent

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/storecrypt/storecrypt/instance-agent/keytoken"
	"github.com/storecrypt/storecrypt/internal/contract"
)

// Op is one of the agent's commands (Apply, Unlock, Plan, Status).
type Op func(context.Context, contract.AgentOptions) (*contract.Report, error)

// Delays between attempts: the first retry comes soon (the network is often a few
// seconds from up at boot), later ones no more often than every half minute.
const (
	firstRetry = 2 * time.Second
	maxRetry   = 30 * time.Second
)

// Retrying returns op run again while it fails in a way a later attempt may mend (no key
// yet, a tool or the kernel failed, another run holds the lock) and until d has passed.
// The boot unit needs it: systemd before 244 refuses Restart= on a oneshot unit, and at
// boot KMS is often unreachable for the first seconds. A refusal, bad input, no devices
// or an ephemeral volume after a reboot end it at once; the last attempt's report and
// error are returned.
func (a *Agent) Retrying(d time.Duration, op Op) Op {
	if d <= 0 {
		return op
	}
	return func(ctx context.Context, o contract.AgentOptions) (*contract.Report, error) {
		deadline := a.Now().Add(d)
		delay := firstRetry
		for attempt := 1; ; attempt++ {
			rep, err := op(ctx, o)
			if err == nil || !retryable(err) {
				return rep, err
			}
			left := deadline.Sub(a.Now())
			if delay > left {
				return rep, err
			}
			fmt.Fprintf(a.Progress, "storecrypt-agent: attempt %d: %s: %v; retrying in %s (%s left)\n", attempt, ExitCodeOf(err), err, delay, left.Round(time.Second))
			if a.sleep(ctx, delay) != nil {
				return rep, err
			}
			delay = min(2*delay, maxRetry)
		}
	}
}

func retryable(err error) bool {
	if errors.Is(err, keytoken.ErrEphemeral) {
		return false
	}
	switch ExitCodeOf(err) {
	case contract.ExitKeyUnavailable, contract.ExitSystemError, contract.ExitBusy:
		return true
	}
	return false
}

// sleep waits d or until ctx ends; a.Sleep replaces it in tests.
func (a *Agent) sleep(ctx context.Context, d time.Duration) error {
	if a.Sleep != nil {
		return a.Sleep(ctx, d)
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
