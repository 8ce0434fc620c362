package alert_test

import (
	"context"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/eventbridge"
	ebtypes "github.com/aws/aws-sdk-go-v2/service/eventbridge/types"

	"github.com/storecrypt/storecrypt/internal/alert"
	"github.com/storecrypt/storecrypt/internal/contract"
	"github.com/storecrypt/storecrypt/internal/fakeaws"
)

// TestPutAlertsSeesFailedEntries: PutEvents answers 200 with failed entries; a malformed
// one is reported, not silently lost, and 23 alerts take three calls.
func TestPutAlertsSeesFailedEntries(t *testing.T) {
	w := fakeaws.NewAccount(t)
	var entries []ebtypes.PutEventsRequestEntry
	for range 22 {
		entries = append(entries, alert.Entry(contract.EventInstanceBlocked, "default", map[string]string{"instance-id": "i-1"}))
	}
	bad := alert.Entry(contract.EventInstanceFailed, "default", nil)
	bad.Detail = aws.String("not json")
	entries = append(entries, bad)
	err := alert.Put(context.Background(), eventbridge.NewFromConfig(w.Config()), entries)
	if err == nil || !strings.Contains(err.Error(), "MalformedDetail") {
		t.Fatalf("got %v, want the malformed entry reported", err)
	}
	if n, calls := len(w.Events), w.Calls()["EventBridge.PutEvents"]; n != 22 || calls != 3 {
		t.Errorf("%d events in %d calls, want 22 in 3", n, calls)
	}
}

// TestPutAlertsRetriesThrottledEntries: an entry failed with ThrottlingException is sent
// again, once.
func TestPutAlertsRetriesThrottledEntries(t *testing.T) {
	client := &flaky{}
	entries := []ebtypes.PutEventsRequestEntry{alert.Entry(contract.EventInstanceBlocked, "default", map[string]string{"instance-id": "i-1"})}
	if err := alert.Put(context.Background(), client, entries); err != nil || client.calls != 2 {
		t.Fatalf("got %v after %d calls, want success after 2", err, client.calls)
	}
}

type flaky struct{ calls int }

func (f *flaky) PutEvents(_ context.Context, in *eventbridge.PutEventsInput, _ ...func(*eventbridge.Options)) (*eventbridge.PutEventsOutput, error) {
	f.calls++
	if f.calls == 1 {
		return &eventbridge.PutEventsOutput{FailedEntryCount: 1, Entries: []ebtypes.PutEventsResultEntry{{ErrorCode: aws.String("ThrottlingException")}}}, nil
	}
	return &eventbridge.PutEventsOutput{Entries: make([]ebtypes.PutEventsResultEntry, len(in.Entries))}, nil
}
