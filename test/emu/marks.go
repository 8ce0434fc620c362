package emu

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	ddbtypes "github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/storecrypt/storecrypt/internal/ledger"
)

// Mark sets attributes (the contract's Ledger* revocation marks) on a launch's item, as
// `storecrypt revoke` writes them, for tests that read them back.
func Mark(t testing.TB, book *ledger.Ledger, instanceID string, launched time.Time, attrs map[string]string) {
	t.Helper()
	var set []string
	values := map[string]ddbtypes.AttributeValue{}
	for k, v := range attrs {
		set = append(set, k+" = :"+k)
		values[":"+k] = &ddbtypes.AttributeValueMemberS{Value: v}
	}
	_, err := book.DB.UpdateItem(context.Background(), &dynamodb.UpdateItemInput{TableName: aws.String(book.Table),
		Key: map[string]ddbtypes.AttributeValue{
			ledger.AttrInstance:   &ddbtypes.AttributeValueMemberS{Value: instanceID},
			ledger.AttrLaunchTime: &ddbtypes.AttributeValueMemberS{Value: launched.UTC().Format(time.RFC3339)},
		},
		UpdateExpression: aws.String("SET " + strings.Join(set, ", ")), ExpressionAttributeValues: values})
	if err != nil {
		t.Fatalf("marking %s's item: %v", instanceID, err)
	}
}
