package fleet

// History reads what Systems Manager recorded of the storecrypt document's runs on an
// instance. That record, not a tag, is the authority on whether an instance was
// encrypted, is being encrypted, or failed: only SSM writes it, while anyone with
// ec2:CreateTags can write a storecrypt:status tag. Run Command keeps a command's
// history for 30 days; an instance whose last run is older has no record here, and is
// simply run again (apply changes nothing on a volume that is already there).

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ssm"
	ssmtypes "github.com/aws/aws-sdk-go-v2/service/ssm/types"

	"github.com/storecrypt/storecrypt/internal/contract"
)

// SSM is the part of the SSM client the history reads.
type SSM interface {
	ListCommandInvocations(ctx context.Context, in *ssm.ListCommandInvocationsInput, optFns ...func(*ssm.Options)) (*ssm.ListCommandInvocationsOutput, error)
	GetCommandInvocation(ctx context.Context, in *ssm.GetCommandInvocationInput, optFns ...func(*ssm.Options)) (*ssm.GetCommandInvocationOutput, error)
}

// History reads one document's runs.
type History struct {
	SSM          SSM
	DocumentName string
	Judge        *Judge
}

// Run is one invocation of the document on an instance.
type Run struct {
	CommandID string
	Requested time.Time
	Status    string // SSM's: Pending, InProgress, Delayed, Success, Failed, ...
	Details   string // SSM's StatusDetails: "Delivery Timed Out", "Terminated", ...
}

// Ended says whether the run has ended (Ended).
func (r Run) Ended() bool { return Ended(r.Status, r.Details) }

// maxResults is ListCommandInvocations' largest page.
const maxResults = 50

// Since returns the document's runs on the instance requested at or after since, newest
// first.
func (h *History) Since(ctx context.Context, instanceID string, since time.Time) ([]Run, error) {
	p := ssm.NewListCommandInvocationsPaginator(h.SSM, &ssm.ListCommandInvocationsInput{
		InstanceId: aws.String(instanceID),
		MaxResults: aws.Int32(maxResults),
		Filters: []ssmtypes.CommandFilter{
			{Key: ssmtypes.CommandFilterKeyDocumentName, Value: aws.String(h.DocumentName)},
			{Key: ssmtypes.CommandFilterKeyInvokedAfter, Value: aws.String(since.UTC().Format(time.RFC3339))},
		},
	})
	var runs []Run
	for p.HasMorePages() {
		page, err := p.NextPage(ctx)
		if err != nil {
			return nil, fmt.Errorf("listing %s's runs on %s: %w", h.DocumentName, instanceID, err)
		}
		for _, inv := range page.CommandInvocations {
			// The filter is documented by example with whole seconds; the exact bound is
			// applied here.
			if at := aws.ToTime(inv.RequestedDateTime); !at.Before(since) {
				runs = append(runs, Run{CommandID: aws.ToString(inv.CommandId), Requested: at, Status: string(inv.Status), Details: aws.ToString(inv.StatusDetails)})
			}
		}
	}
	// The order of the answer is not documented.
	slices.SortFunc(runs, func(a, b Run) int { return b.Requested.Compare(a.Requested) })
	return runs, nil
}

// Outcome judges a run that ended from its run step's output. A run SSM no longer has is
// judged from its status alone.
func (h *History) Outcome(ctx context.Context, instanceID string, r Run) (Outcome, error) {
	inv, err := Invocation(ctx, h.SSM, instanceID, r.CommandID, contract.DocumentRunStep)
	if err != nil {
		return Outcome{}, err
	}
	return h.Judge.Of(ctx, instanceID, r, inv)
}

// Invocation reads the step of a run on an instance; nil when SSM no longer has it.
func Invocation(ctx context.Context, c SSM, instanceID, commandID, step string) (*ssm.GetCommandInvocationOutput, error) {
	inv, err := c.GetCommandInvocation(ctx, &ssm.GetCommandInvocationInput{
		CommandId: aws.String(commandID), InstanceId: aws.String(instanceID), PluginName: aws.String(step)})
	var gone *ssmtypes.InvocationDoesNotExist
	switch {
	case errors.As(err, &gone):
		return nil, nil
	case err != nil:
		return nil, fmt.Errorf("reading run %s on %s: %w", commandID, instanceID, err)
	}
	return inv, nil
}
