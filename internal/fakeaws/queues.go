package fakeaws

import (
	"encoding/json"
	"fmt"
	"regexp"
	"strconv"
	"time"

	"github.com/aws/aws-lambda-go/events"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/eventbridge"
	ebtypes "github.com/aws/aws-sdk-go-v2/service/eventbridge/types"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	sqstypes "github.com/aws/aws-sdk-go-v2/service/sqs/types"
)

// SQS and EventBridge, from the SQS API Reference (SendMessageBatch,
// ChangeMessageVisibilityBatch) and the EventBridge API Reference and user guide
// (PutEvents, "Sending events with PutEvents").
func init() {
	register("SQS", map[string]handler{"SendMessageBatch": (*World).sendMessageBatch, "ChangeMessageVisibilityBatch": (*World).changeMessageVisibilityBatch})
	register("EventBridge", map[string]handler{"PutEvents": (*World).putEvents})
}

var batchEntryID = regexp.MustCompile(`^[A-Za-z0-9_-]{1,80}$`)

// Receive is the Lambda event source mapping's receive of one message with this body, for
// the receiveCount-th time: a record as Lambda passes it to the function, with a receipt
// handle of its own (each receive issues a new one) and the ApproximateReceiveCount
// attribute.
func (w *World) Receive(messageID, body string, receiveCount int) events.SQSMessage {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.InFlight == nil {
		w.InFlight = map[string]*time.Duration{}
	}
	handle := fmt.Sprintf("rh-%s-%d-%d", messageID, receiveCount, len(w.InFlight))
	w.InFlight[handle] = nil
	return events.SQSMessage{MessageId: messageID, ReceiptHandle: handle, Body: body,
		Attributes:     map[string]string{"ApproximateReceiveCount": strconv.Itoa(receiveCount)},
		EventSource:    "aws:sqs",
		EventSourceARN: fmt.Sprintf("arn:%s:sqs:%s:%s:storecrypt-launch", w.partition(), w.region(), w.account())}
}

// changeMessageVisibilityBatch: 1 to 10 entries, Ids as SendMessageBatch's; each entry
// succeeds or fails on its own ("check for batch errors even when the call returns an
// HTTP status code of 200"): a receipt handle SQS did not issue is ReceiptHandleIsInvalid,
// a timeout outside 0 to 43,200 seconds (12 hours) InvalidParameterValue.
func (w *World) changeMessageVisibilityBatch(params any) (any, error) {
	in := params.(*sqs.ChangeMessageVisibilityBatchInput)
	ids := make([]string, len(in.Entries))
	for i, e := range in.Entries {
		ids[i] = aws.ToString(e.Id)
	}
	if err := checkBatch(ids); err != nil {
		return nil, err
	}
	out := &sqs.ChangeMessageVisibilityBatchOutput{}
	for _, e := range in.Entries {
		fail := func(code, msg string) {
			out.Failed = append(out.Failed, sqstypes.BatchResultErrorEntry{Id: e.Id, Code: aws.String(code), Message: aws.String(msg), SenderFault: true})
		}
		handle := aws.ToString(e.ReceiptHandle)
		switch _, issued := w.InFlight[handle]; {
		case !issued:
			fail("ReceiptHandleIsInvalid", "The input receipt handle \""+handle+"\" is not a valid receipt handle.")
		case e.VisibilityTimeout < 0 || e.VisibilityTimeout > 43200:
			fail("InvalidParameterValue", fmt.Sprintf("Value %d for parameter VisibilityTimeout is invalid. Reason: Must be between 0 and 43200.", e.VisibilityTimeout))
		default:
			after := time.Duration(e.VisibilityTimeout) * time.Second
			w.InFlight[handle] = &after
			out.Successful = append(out.Successful, sqstypes.ChangeMessageVisibilityBatchResultEntry{Id: e.Id})
		}
	}
	return out, nil
}

// checkBatch applies the rules every SQS batch action shares to its entries' Ids.
func checkBatch(ids []string) error {
	switch {
	case len(ids) == 0:
		return &sqstypes.EmptyBatchRequest{Message: aws.String("There should be at least one entry in the request.")}
	case len(ids) > 10:
		return &sqstypes.TooManyEntriesInBatchRequest{Message: aws.String("Maximum number of entries per request are 10.")}
	}
	seen := map[string]bool{}
	for _, id := range ids {
		if !batchEntryID.MatchString(id) {
			return &sqstypes.InvalidBatchEntryId{Message: aws.String("A batch entry id can only contain alphanumeric characters, hyphens and underscores.")}
		}
		if seen[id] {
			return &sqstypes.BatchEntryIdsNotDistinct{Message: aws.String("Id " + id + " repeated.")}
		}
		seen[id] = true
	}
	return nil
}

// sendMessageBatch: at most 10 entries; Ids unique within the request, "alphanumeric
// characters, hyphens and underscores", up to 80; the batch's total payload at most
// 1 MiB.
func (w *World) sendMessageBatch(params any) (any, error) {
	in := params.(*sqs.SendMessageBatchInput)
	ids, size := make([]string, len(in.Entries)), 0
	for i, e := range in.Entries {
		ids[i] = aws.ToString(e.Id)
		size += len(aws.ToString(e.MessageBody))
	}
	if err := checkBatch(ids); err != nil {
		return nil, err
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
