package ledger

import (
	"context"
	"fmt"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	ddbtypes "github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/storecrypt/storecrypt/internal/contract"
)

// Marks are who cut a launch's instance off its data, when and why: `storecrypt revoke`
// writes the revoked_* attributes and resume removes them, writing who let it back in
// resumed_*; shred's stay for good. They sit at the top level of Item's JSON, as they do
// in the item.
type Marks struct {
	RevokedAt      string `json:"revoked_at,omitempty"`
	RevokedBy      string `json:"revoked_by,omitempty"`
	RevokedReason  string `json:"revoked_reason,omitempty"`
	ShreddedAt     string `json:"shredded_at,omitempty"`
	ShreddedBy     string `json:"shredded_by,omitempty"`
	ShreddedReason string `json:"shredded_reason,omitempty"`
	ResumedAt      string `json:"resumed_at,omitempty"`
	ResumedBy      string `json:"resumed_by,omitempty"`
	ResumedReason  string `json:"resumed_reason,omitempty"`
}

var markAttrs = []string{contract.LedgerRevokedAt, contract.LedgerRevokedBy, contract.LedgerRevokedReason,
	contract.LedgerShreddedAt, contract.LedgerShreddedBy, contract.LedgerShreddedReason,
	contract.LedgerResumedAt, contract.LedgerResumedBy, contract.LedgerResumedReason}

// MarksOf reads the instance's marks over all its launch items, strongly consistent: a
// revoke holds while any item has it, so one written on an earlier launch still holds
// after a stop and start (a new item). Of each kind, the latest wins.
func (l *Ledger) MarksOf(ctx context.Context, instanceID string) (Marks, error) {
	p := dynamodb.NewQueryPaginator(l.DB, &dynamodb.QueryInput{
		TableName:              aws.String(l.Table),
		KeyConditionExpression: aws.String(AttrInstance + " = :id"),
		FilterExpression: aws.String("attribute_exists(" + contract.LedgerRevokedAt + ") OR attribute_exists(" + contract.LedgerShreddedAt + ") OR attribute_exists(" +
			contract.LedgerResumedAt + ")"),
		ExpressionAttributeValues: map[string]ddbtypes.AttributeValue{":id": &ddbtypes.AttributeValueMemberS{Value: instanceID}},
		ProjectionExpression:      aws.String(strings.Join(markAttrs, ", ")),
		ConsistentRead:            aws.Bool(true),
	})
	var m Marks
	for p.HasMorePages() {
		page, err := p.NextPage(ctx)
		if err != nil {
			return Marks{}, fmt.Errorf("ledger %s: reading whether %s is revoked: %w", l.Table, instanceID, err)
		}
		for _, item := range page.Items {
			it := decode(item).Marks
			if it.RevokedAt > m.RevokedAt {
				m.RevokedAt, m.RevokedBy, m.RevokedReason = it.RevokedAt, it.RevokedBy, it.RevokedReason
			}
			if it.ShreddedAt > m.ShreddedAt {
				m.ShreddedAt, m.ShreddedBy, m.ShreddedReason = it.ShreddedAt, it.ShreddedBy, it.ShreddedReason
			}
			if it.ResumedAt > m.ResumedAt {
				m.ResumedAt, m.ResumedBy, m.ResumedReason = it.ResumedAt, it.ResumedBy, it.ResumedReason
			}
		}
	}
	return m, nil
}
