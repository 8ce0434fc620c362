package fakeaws

import (
	"encoding/json"
	"fmt"
	"regexp"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/eventbridge"
	ebtypes "github.com/aws/aws-sdk-go-v2/service/eventbridge/types"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	sqstypes "github.com/aws/aws-sdk-go-v2/service/sqs/types"
)

// SQS and EventBridge, from the SQS API Reference (SendMessageBatch) and the EventBridge
// API Reference and user guide (PutEvents, "Sending events with PutEvents").
func init() {
	register("SQS", map[string]handler{"SendMessageBatch": (*World).sendMessageBatch})
	register("EventBridge", map[string]handler{"PutEvents": (*World).putEvents})
}

var batchEntryID = regexp.MustCompile(`^[A-Za-z0-9_-]{1,80}$`)

// sendMessageBatch: at most 10 entries; Ids unique within the request, "alphanumeric
// characters, hyphens and underscores", up to 80; the batch's total payload at most
// 1 MiB.
func (w *World) sendMessageBatch(params any) (any, error) {
	in := params.(*sqs.SendMessageBatchInput)
	switch {
	case len(in.Entries) == 0:
		return nil, &sqstypes.EmptyBatchRequest{Message: aws.String("There should be at least one SendMessageBatchRequestEntry in the request.")}
	case len(in.Entries) > 10:
		return nil, &sqstypes.TooManyEntriesInBatchRequest{Message: aws.String("Maximum number of entries per request are 10.")}
	}
	seen, size := map[string]bool{}, 0
	for _, e := range in.Entries {
		id := aws.ToString(e.Id)
		if !batchEntryID.MatchString(id) {
			return nil, &sqstypes.InvalidBatchEntryId{Message: aws.String("A batch entry id can only contain alphanumeric characters, hyphens and underscores.")}
		}
		if seen[id] {
			return nil, &sqstypes.BatchEntryIdsNotDistinct{Message: aws.String("Id " + id + " repeated.")}
		}
		seen[id] = true
		size += len(aws.ToString(e.MessageBody))
	}
	if size > 1<<20 {
		return nil, &sqstypes.BatchRequestTooLong{Message: aws.String("Batch requests cannot be longer than 1048576 bytes.")}
	}
	out := &sqs.SendMessageBatchOutput{}
	for _, e := range in.Entries {
		w.Messages = append(w.Messages, aws.ToString(e.MessageBody))
		out.Successful = append(out.Successful, sqstypes.SendMessageBatchResultEntry{Id: e.Id, MessageId: aws.String(fmt.Sprintf("m-%d", len(w.Messages)))})
	}
	return out, nil
}

// putEvents: 1 to 10 entries; "Detail, DetailType, and Source are required for
// EventBridge to successfully send an event to an event bus"; an entry that fails does so
// on its own ("EventBridge continues processing the rest of the entries"), reported by
// ErrorCode in its result entry and counted in FailedEntryCount. Detail must be a JSON
// object (MalformedDetail).
func (w *World) putEvents(params any) (any, error) {
	in := params.(*eventbridge.PutEventsInput)
	if len(in.Entries) == 0 || len(in.Entries) > 10 {
		return nil, invalid("ValidationException", "1 validation error detected: Value at 'entries' failed to satisfy constraint: Member must have length less than or equal to 10")
	}
	out := &eventbridge.PutEventsOutput{}
	for _, e := range in.Entries {
		var detail map[string]any
		switch {
		case aws.ToString(e.Source) == "" || aws.ToString(e.DetailType) == "" || aws.ToString(e.Detail) == "":
			out.FailedEntryCount++
			out.Entries = append(out.Entries, ebtypes.PutEventsResultEntry{ErrorCode: aws.String("InvalidArgument"), ErrorMessage: aws.String("Parameter(s) Source, DetailType, Detail are required")})
			continue
		case json.Unmarshal([]byte(aws.ToString(e.Detail)), &detail) != nil:
			out.FailedEntryCount++
			out.Entries = append(out.Entries, ebtypes.PutEventsResultEntry{ErrorCode: aws.String("MalformedDetail"), ErrorMessage: aws.String("Detail is malformed.")})
			continue
		}
		bus := aws.ToString(e.EventBusName)
		if bus == "" {
			bus = "default"
		}
		w.Events = append(w.Events, Event{Source: aws.ToString(e.Source), DetailType: aws.ToString(e.DetailType), Detail: aws.ToString(e.Detail), Bus: bus})
		out.Entries = append(out.Entries, ebtypes.PutEventsResultEntry{EventId: aws.String(fmt.Sprintf("ev-%d", len(w.Events)))})
	}
	return out, nil
}
