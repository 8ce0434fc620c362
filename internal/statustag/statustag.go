// Package statustag is the storecrypt:* tags that report, on an instance itself, what
// storecrypt last decided or found of it. They are reports, not authority (anyone with
// ec2:CreateTags writes them; SSM's record and the ledger decide): the launch and result
// functions write them through this package, so the tag set has one shape.
package statustag

import (
	"strconv"

	"github.com/aws/aws-sdk-go-v2/aws"
	ec2types "github.com/aws/aws-sdk-go-v2/service/ec2/types"

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
