// Package alert sends the events storecrypt raises when a person must act (an instance
// blocked, failed or opted out; the document drifted) to the account's default
// EventBridge bus. The stack routes none of them: a team matches them with a rule of its
// own (docs/operations.md, "Events"), and the alarms count the same outcomes from the
// functions' metrics. The launch and result functions send through it, so every alert
// has one shape.
package alert

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/eventbridge"
	ebtypes "github.com/aws/aws-sdk-go-v2/service/eventbridge/types"

	"github.com/storecrypt/storecrypt/internal/contract"
)

// Entry is an event for alerting rules: source storecrypt, detailType one of the
// contract's, detail a flat JSON object.
func Entry(detailType, bus string, detail map[string]string) ebtypes.PutEventsRequestEntry {
	b, _ := json.Marshal(detail) // a map of strings always encodes
	return ebtypes.PutEventsRequestEntry{
		Source: aws.String(contract.EventSource), DetailType: aws.String(detailType),
		Detail: aws.String(string(b)), EventBusName: aws.String(bus), Resources: []string{},
	}
}

// EventBridge is the part of the EventBridge client alerts use.
type EventBridge interface {
	PutEvents(ctx context.Context, in *eventbridge.PutEventsInput, optFns ...func(*eventbridge.Options)) (*eventbridge.PutEventsOutput, error)
}

// maxPutEvents is PutEvents' limit of entries per call.
const maxPutEvents = 10

// retryableEntry: the per-entry error codes EventBridge documents as worth retrying.
func retryableEntry(code string) bool {
	return code == "InternalFailure" || code == "ThrottlingException"
}

// Put sends entries, 10 per call. PutEvents answers 200 even when entries fail, each
// with its own ErrorCode and FailedEntryCount counting them; the entries that failed
// with a retryable code are sent once more. The error names every entry that was lost.
func Put(ctx context.Context, c EventBridge, entries []ebtypes.PutEventsRequestEntry) error {
	var errs []error
	for chunk := range slices.Chunk(entries, maxPutEvents) {
		for try := 0; len(chunk) > 0; try++ {
			out, err := c.PutEvents(ctx, &eventbridge.PutEventsInput{Entries: chunk})
			if err != nil {
				errs = append(errs, fmt.Errorf("putting %d events: %w", len(chunk), err))
				break
			}
			var again []ebtypes.PutEventsRequestEntry
			// Result entries line up with request entries by index.
			for i, res := range out.Entries[:min(len(out.Entries), len(chunk))] {
				code := aws.ToString(res.ErrorCode)
				switch {
				case code == "":
				case retryableEntry(code) && try == 0:
					again = append(again, chunk[i])
				default:
					errs = append(errs, fmt.Errorf("event %s: %s: %s", aws.ToString(chunk[i].DetailType), code, aws.ToString(res.ErrorMessage)))
				}
			}
			chunk = again
		}
	}
	return errors.Join(errs...)
}
