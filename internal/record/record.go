// Package record is how storecrypt writes what it knows of an instance: the storecrypt:*
// tags on the instance itself, and an EventBridge event when a person must act. The launch
// function, the result function and the CLI read and write through it, so the tag set
// has one shape.
package record

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"

	"github.com/aws/aws-sdk-go-v2/aws"
	ec2types "github.com/aws/aws-sdk-go-v2/service/ec2/types"
	"github.com/aws/aws-sdk-go-v2/service/eventbridge"
	ebtypes "github.com/aws/aws-sdk-go-v2/service/eventbridge/types"

	"github.com/storecrypt/storecrypt/internal/contract"
)

// Status is one status change of an instance.
type Status struct {
	Status     string
	Reason     contract.Reason
	CommandID  string // "" when no command was sent
	At         string // RFC 3339, when the status changed
	LaunchTime string // RFC 3339, the instance launch the status is for
	Attempt    int    // commands sent for this launch; 0 leaves the tag as it is
}

// Tags returns the storecrypt:* tags that record s.
func (s Status) Tags() []ec2types.Tag {
	tags := []ec2types.Tag{
		{Key: aws.String(contract.TagStatus), Value: aws.String(s.Status)},
		{Key: aws.String(contract.TagReason), Value: aws.String(string(s.Reason))},
		{Key: aws.String(contract.TagAt), Value: aws.String(s.At)},
		{Key: aws.String(contract.TagLaunchTime), Value: aws.String(s.LaunchTime)},
	}
	if s.CommandID != "" {
		tags = append(tags, ec2types.Tag{Key: aws.String(contract.TagCommandID), Value: aws.String(s.CommandID)})
	}
	if s.Attempt > 0 {
		tags = append(tags, ec2types.Tag{Key: aws.String(contract.TagAttempt), Value: aws.String(strconv.Itoa(s.Attempt))})
	}
	return tags
}

// Alert is an event for alerting rules: source storecrypt, detailType one of the
// contract's, detail a flat JSON object.
func Alert(detailType, bus string, detail map[string]string) ebtypes.PutEventsRequestEntry {
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

// PutAlerts sends entries, 10 per call. PutEvents answers 200 even when entries fail, each
// with its own ErrorCode and FailedEntryCount counting them; the entries that failed
// with a retryable code are sent once more. The error names every entry that was lost.
func PutAlerts(ctx context.Context, c EventBridge, entries []ebtypes.PutEventsRequestEntry) error {
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
