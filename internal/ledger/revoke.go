package ledger

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	ddbtypes "github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/storecrypt/storecrypt/internal/contract"
)

// Mark is who cut an instance off its data, when and why: the caller's ARN and the
// responder's --reason.
type Mark struct {
	At         time.Time
	By, Reason string
}

// ErrShredded says the instance's data was shredded: nothing can resume it.
var ErrShredded = errors.New("the instance was shredded: its data is gone and nothing can resume it")

// MarkRevoked marks the launch revoked (contract.LedgerRevokedAt, By, Reason), creating
// its item if the functions never saw it, unless a mark is there already: a second revoke
// keeps the first's time, who and why. It returns the mark that stands and whether this
// call wrote it. The launch function reads the mark (Revoked) and grants nothing while it
// stands. It writes the mark's attributes only, no entry nor status: the operator's
// policy lets the CLI write nothing else, so that the story an auditor reads is the
// functions' (the result function records what the instance answered).
func (l *Ledger) MarkRevoked(ctx context.Context, launch Launch, m Mark) (Mark, bool, error) {
	return l.mark(ctx, launch, m, contract.StatusRevoked, contract.LedgerRevokedAt, contract.LedgerRevokedBy, contract.LedgerRevokedReason)
}

// MarkShredded marks the launch shredded (contract.LedgerShreddedAt, By, Reason), once,
// as MarkRevoked does.
func (l *Ledger) MarkShredded(ctx context.Context, launch Launch, m Mark) (Mark, bool, error) {
	return l.mark(ctx, launch, m, contract.StatusShredded, contract.LedgerShreddedAt, contract.LedgerShreddedBy, contract.LedgerShreddedReason)
}

func (l *Ledger) mark(ctx context.Context, launch Launch, m Mark, status, at, by, reason string) (Mark, bool, error) {
	_, err := l.DB.UpdateItem(ctx, &dynamodb.UpdateItemInput{
		TableName:        aws.String(l.Table),
		Key:              key(launch.InstanceID, launch.LaunchTime),
		UpdateExpression: aws.String(fmt.Sprintf("SET %s = :at, %s = :by, %s = :reason", at, by, reason)),
		// The first mark stands: its time is when the instance was cut off, and a retry
		// or a second responder must not move it.
		ConditionExpression:       aws.String("attribute_not_exists(" + at + ")"),
		ExpressionAttributeValues: map[string]ddbtypes.AttributeValue{":at": strAttr(stamp(m.At)), ":by": strAttr(m.By), ":reason": strAttr(m.Reason)},
	})
	var failed *ddbtypes.ConditionalCheckFailedException
	if errors.As(err, &failed) {
		out, err := l.DB.GetItem(ctx, &dynamodb.GetItemInput{TableName: aws.String(l.Table), Key: key(launch.InstanceID, launch.LaunchTime), ConsistentRead: aws.Bool(true)})
		if err != nil {
			return Mark{}, false, fmt.Errorf("ledger %s: reading %s's %s mark: %w", l.Table, launch.InstanceID, status, err)
		}
		first := Mark{By: str(out.Item, by), Reason: str(out.Item, reason)}
		first.At, _ = time.Parse(time.RFC3339Nano, str(out.Item, at))
		return first, false, nil
	}
	if err != nil {
		return Mark{}, false, fmt.Errorf("ledger %s: marking %s %s: %w", l.Table, launch.InstanceID, status, err)
	}
	return m, true, nil
}

// Resume takes the revocation back: it removes the revoked_* attributes from every
// launch item of the instance (the launch function's Revoked reads them all) and sets
// resumed_* (contract.LedgerResumedAt, By, Reason) on those and on launch's, so who let
// it back and why is kept whether or not the instance answers. A shredded instance is
// refused with ErrShredded by a strongly consistent read. The writes carry no condition
// on shredded_at: IAM's dynamodb:Attributes lists the names a condition evaluates as
// well as those it writes, so naming it would need the right to write the shred mark,
// which only the shred policy gives. A shred that lands between the read and the writes
// leaves resumed_* beside shredded_at, and the instance shredded: Revoked says so first,
// and the launch function grants nothing. Run again, it writes the same again.
func (l *Ledger) Resume(ctx context.Context, launch Launch, m Mark) error {
	id := launch.InstanceID
	p := dynamodb.NewQueryPaginator(l.DB, &dynamodb.QueryInput{
		TableName:                 aws.String(l.Table),
		KeyConditionExpression:    aws.String(AttrInstance + " = :id"),
		FilterExpression:          aws.String("attribute_exists(" + contract.LedgerRevokedAt + ") OR attribute_exists(" + contract.LedgerShreddedAt + ")"),
		ExpressionAttributeValues: map[string]ddbtypes.AttributeValue{":id": &ddbtypes.AttributeValueMemberS{Value: id}},
		ProjectionExpression:      aws.String(AttrLaunchTime + ", " + contract.LedgerShreddedAt),
		ConsistentRead:            aws.Bool(true),
	})
	current := launch.LaunchTime.UTC().Format(time.RFC3339)
	marked := []string{current}
	for p.HasMorePages() {
		page, err := p.NextPage(ctx)
		if err != nil {
			return fmt.Errorf("ledger %s: reading %s's marks: %w", l.Table, id, err)
		}
		for _, item := range page.Items {
			if _, ok := item[contract.LedgerShreddedAt]; ok {
				return fmt.Errorf("ledger %s: resuming %s: %w", l.Table, id, ErrShredded)
			}
			if lt := str(item, AttrLaunchTime); lt != current {
				marked = append(marked, lt)
			}
		}
	}
	for _, lt := range marked {
		_, err := l.DB.UpdateItem(ctx, &dynamodb.UpdateItemInput{
			TableName: aws.String(l.Table),
			Key:       map[string]ddbtypes.AttributeValue{AttrInstance: strAttr(id), AttrLaunchTime: strAttr(lt)},
			UpdateExpression: aws.String(fmt.Sprintf("REMOVE %s, %s, %s SET %s = :at, %s = :by, %s = :reason",
				contract.LedgerRevokedAt, contract.LedgerRevokedBy, contract.LedgerRevokedReason,
				contract.LedgerResumedAt, contract.LedgerResumedBy, contract.LedgerResumedReason)),
			ExpressionAttributeValues: map[string]ddbtypes.AttributeValue{":at": strAttr(stamp(m.At)), ":by": strAttr(m.By), ":reason": strAttr(m.Reason)},
		})
		if err != nil {
			return fmt.Errorf("ledger %s: resuming %s: %w", l.Table, id, err)
		}
	}
	return nil
}

func strAttr(v string) ddbtypes.AttributeValue { return &ddbtypes.AttributeValueMemberS{Value: v} }

func str(item map[string]ddbtypes.AttributeValue, name string) string {
	if s, ok := item[name].(*ddbtypes.AttributeValueMemberS); ok {
		return s.Value
	}
	return ""
}
