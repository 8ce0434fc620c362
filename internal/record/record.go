// Package record is how storecrypt writes what it knows of an instance: the storecrypt:*
// tags on the instance itself, and an EventBridge event when a person must act. The launch
// function, the result function and the CLI read and write through it, so the tag set
// has one shape.
package record

import (
	"encoding/json"

	"github.com/aws/aws-sdk-go-v2/aws"
	ec2types "github.com/aws/aws-sdk-go-v2/service/ec2/types"
	ebtypes "github.com/aws/aws-sdk-go-v2/service/eventbridge/types"

	"github.com/storecrypt/storecrypt/internal/contract"
)

// Tags turns EC2's tag list into a map.
func Tags(tags []ec2types.Tag) map[string]string {
	m := make(map[string]string, len(tags))
	for _, t := range tags {
		m[aws.ToString(t.Key)] = aws.ToString(t.Value)
	}
	return m
}

// Status is one status change of an instance.
type Status struct {
	Status     string
	Reason     contract.Reason
	CommandID  string // "" when no command was sent
	At         string // RFC 3339, when the status changed
	LaunchTime string // RFC 3339, the instance launch the status is for
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
