package ledger_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	ddbtypes "github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/storecrypt/storecrypt/internal/contract"
	"github.com/storecrypt/storecrypt/internal/ledger"
)

// TestMarksRead: Get and Launches read who revoked or shredded a launch, when and why,
// as the attributes the contract names hold them; a launch never revoked has none.
func TestMarksRead(t *testing.T) {
	const by = "arn:aws:sts::111122223333:assumed-role/responder/alice"
	for _, tc := range []struct {
		name  string
		attrs map[string]string
		want  ledger.Marks
	}{
		{"never revoked", nil, ledger.Marks{}},
		{"revoked", map[string]string{contract.LedgerRevokedAt: "2026-11-27T07:00:00.000Z", contract.LedgerRevokedBy: by, contract.LedgerRevokedReason: "INC-42 key compromise"},
			ledger.Marks{RevokedAt: "2026-11-27T07:00:00.000Z", RevokedBy: by, RevokedReason: "INC-42 key compromise"}},
		{"shredded while revoked", map[string]string{contract.LedgerRevokedAt: "2026-11-27T07:00:00.000Z", contract.LedgerRevokedBy: by, contract.LedgerRevokedReason: "INC-42",
			contract.LedgerShreddedAt: "2026-11-27T08:00:00.000Z", contract.LedgerShreddedBy: by, contract.LedgerShreddedReason: "INC-42 destroy"},
			ledger.Marks{RevokedAt: "2026-11-27T07:00:00.000Z", RevokedBy: by, RevokedReason: "INC-42", ShreddedAt: "2026-11-27T08:00:00.000Z", ShreddedBy: by, ShreddedReason: "INC-42 destroy"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			l := start(t)
			ctx := context.Background()
			if err := l.Record(ctx, launch, ledger.Entry{ID: "launch:pending", At: launched, By: "launch", Status: contract.StatusPending}); err != nil {
				t.Fatal(err)
			}
			mark(t, l, tc.attrs)
			if got := item(t, l, launched).Marks; got != tc.want {
				t.Errorf("Get: got %+v, want %+v", got, tc.want)
			}
			all, err := l.Launches(ctx, launched, launched.Add(time.Hour))
			if err != nil || len(all) != 1 {
				t.Fatalf("Launches: got %d items, %v; want the one", len(all), err)
			}
			if got := all[0].Marks; got != tc.want {
				t.Errorf("Launches: got %+v, want %+v", got, tc.want)
			}
		})
	}
}

// mark sets attributes on the launch's item as the revocation's writer does.
func mark(t *testing.T, l *ledger.Ledger, attrs map[string]string) {
	t.Helper()
	if len(attrs) == 0 {
		return
	}
	var set []string
	values := map[string]ddbtypes.AttributeValue{}
	for k, v := range attrs {
		set = append(set, k+" = :"+k)
		values[":"+k] = &ddbtypes.AttributeValueMemberS{Value: v}
	}
	_, err := l.DB.UpdateItem(context.Background(), &dynamodb.UpdateItemInput{TableName: aws.String(l.Table),
		Key: map[string]ddbtypes.AttributeValue{ledger.AttrInstance: &ddbtypes.AttributeValueMemberS{Value: id}, ledger.AttrLaunchTime: &ddbtypes.AttributeValueMemberS{Value: launched.Format("2006-01-02T15:04:05Z07:00")}},
		UpdateExpression: aws.String("SET " + strings.Join(set, ", ")), ExpressionAttributeValues: values})
	if err != nil {
		t.Fatalf("marking the item: %v", err)
	}
}
