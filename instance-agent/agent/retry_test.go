package agent

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"reflect"
	"testing"
	"time"

	"github.com/storecrypt/storecrypt/instance-agent/keysource"
	"github.com/storecrypt/storecrypt/instance-agent/keytoken"
	"github.com/storecrypt/storecrypt/instance-agent/lock"
	"github.com/storecrypt/storecrypt/internal/contract"
)

func TestRetrying(t *testing.T) {
	unavailable := &keysource.UnavailableError{Op: "kms:Decrypt", Err: errors.New("dial tcp: connect: network is unreachable")}
	refused := &RefusedError{Device: "/dev/nvme1n1", Reason: "holds ext4"}
	cases := []struct {
		name     string
		retryFor time.Duration
		errs     []error // what each attempt returns; nil succeeds
		calls    int
		sleeps   []time.Duration
		wantErr  error
	}{
		{"success at once", 4 * time.Minute, []error{nil}, 1, nil, nil},
		{"KMS reachable on the third try", 4 * time.Minute, []error{unavailable, unavailable, nil}, 3, []time.Duration{2 * time.Second, 4 * time.Second}, nil},
		{"lock held, then free", time.Minute, []error{lock.ErrBusy, nil}, 2, []time.Duration{2 * time.Second}, nil},
		{"a tool failed once", time.Minute, []error{errors.New("mdadm: exit 1"), nil}, 2, []time.Duration{2 * time.Second}, nil},
		{"refused is final", 4 * time.Minute, []error{refused}, 1, nil, refused},
		{"bad input is final", 4 * time.Minute, []error{&contract.InvalidError{Flag: "model"}}, 1, nil, &contract.InvalidError{Flag: "model"}},
		{"no devices is final", 4 * time.Minute, []error{ErrNoDevices}, 1, nil, ErrNoDevices},
		{"an ephemeral volume after a reboot is final", 4 * time.Minute, []error{keytoken.ErrEphemeral}, 1, nil, keytoken.ErrEphemeral},
		{"no retry without --retry-for", 0, []error{unavailable}, 1, nil, unavailable},
		{"gives up when the next wait would pass the deadline", 20 * time.Second,
			[]error{unavailable, unavailable, unavailable, unavailable, unavailable},
			4, []time.Duration{2 * time.Second, 4 * time.Second, 8 * time.Second}, unavailable},
		{"waits never grow past 30s", 3 * time.Minute,
			[]error{unavailable, unavailable, unavailable, unavailable, unavailable, unavailable, unavailable, nil},
			8, []time.Duration{2 * time.Second, 4 * time.Second, 8 * time.Second, 16 * time.Second, 30 * time.Second, 30 * time.Second, 30 * time.Second}, nil},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			now := time.Date(2026, 11, 28, 0, 0, 0, 0, time.UTC)
			var sleeps []time.Duration
			var progress bytes.Buffer
			a := &Agent{
				Progress: &progress,
				Now:      func() time.Time { return now },
				Sleep: func(_ context.Context, d time.Duration) error {
					sleeps = append(sleeps, d)
					now = now.Add(d)
					return nil
				},
			}
			calls := 0
			op := a.Retrying(c.retryFor, func(context.Context, contract.AgentOptions) (*contract.Report, error) {
				err := c.errs[calls]
				calls++
				now = now.Add(time.Second) // an attempt takes time too
				return &contract.Report{Result: fmt.Sprint(calls)}, err
			})
			rep, err := op(context.Background(), contract.DefaultAgentOptions())
			if calls != c.calls || !reflect.DeepEqual(sleeps, c.sleeps) {
				t.Errorf("%d attempts with waits %v, want %d with %v", calls, sleeps, c.calls, c.sleeps)
			}
			if !reflect.DeepEqual(err, c.wantErr) && !errors.Is(err, c.wantErr) {
				t.Errorf("error %v, want %v", err, c.wantErr)
			}
			if rep.Result != fmt.Sprint(calls) {
				t.Errorf("returned attempt %s's report, want the last (%d)", rep.Result, calls)
			}
			if len(c.sleeps) > 0 && !bytes.Contains(progress.Bytes(), []byte("retrying in 2s")) {
				t.Errorf("no progress line for the retry: %q", progress.String())
			}
		})
	}
}

func TestRetryingStopsWhenCanceled(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	a := &Agent{Progress: &bytes.Buffer{}, Now: time.Now}
	calls := 0
	_, err := a.Retrying(time.Hour, func(context.Context, contract.AgentOptions) (*contract.Report, error) {
		calls++
		return &contract.Report{}, &keysource.UnavailableError{Op: "kms:Decrypt", Err: context.Canceled}
	})(ctx, contract.DefaultAgentOptions())
	if calls != 1 || ExitCodeOf(err) != contract.ExitKeyUnavailable {
		t.Errorf("%d attempts, error %v; want one attempt and its error", calls, err)
	}
}
