package fakeaws

import (
	"slices"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	ddbtypes "github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
)

// TestUpdateAttributes: an UpdateItem's dynamodb:Attributes, as Authz gives them to IAM,
// are every top-level name it writes or evaluates in its condition, placeholders resolved,
// and the key's; not values, functions, keywords nor nested paths.
func TestUpdateAttributes(t *testing.T) {
	key := map[string]ddbtypes.AttributeValue{"pk": &ddbtypes.AttributeValueMemberS{Value: "i-1"}, "sk": &ddbtypes.AttributeValueMemberS{Value: "t"}}
	for _, tc := range []struct {
		name string
		in   dynamodb.UpdateItemInput
		want []string
	}{
		{"set, with a condition", dynamodb.UpdateItemInput{UpdateExpression: aws.String("SET revoked_at = :at, revoked_by = :by"),
			ConditionExpression: aws.String("attribute_not_exists(revoked_at)")}, []string{"pk", "revoked_at", "revoked_by", "sk"}},
		{"remove and set; the condition's name counts", dynamodb.UpdateItemInput{UpdateExpression: aws.String("REMOVE a, b SET c = :c"),
			ConditionExpression: aws.String("attribute_not_exists(shredded_at)")}, []string{"a", "b", "c", "pk", "shredded_at", "sk"}},
		{"placeholders resolved", dynamodb.UpdateItemInput{UpdateExpression: aws.String("SET #s = :s, first_seen = if_not_exists(first_seen, :at)"),
			ConditionExpression: aws.String("NOT contains(entry_ids, :id) AND #s <> :x"), ExpressionAttributeNames: map[string]string{"#s": "status"}},
			[]string{"entry_ids", "first_seen", "pk", "sk", "status"}},
		{"a nested path is its top-level name", dynamodb.UpdateItemInput{UpdateExpression: aws.String("SET entries = list_append(entries, :e), m.inner = :v, l[0] = :v")},
			[]string{"entries", "l", "m", "pk", "sk"}},
		{"the legacy parameters", dynamodb.UpdateItemInput{AttributeUpdates: map[string]ddbtypes.AttributeValueUpdate{"status": {}},
			Expected: map[string]ddbtypes.ExpectedAttributeValue{"luks_uuid": {}}}, []string{"luks_uuid", "pk", "sk", "status"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			w := NewAccount(t)
			tc.in.TableName, tc.in.Key = aws.String("ledger"), key
			reqs, err := w.Authz(Call{Service: "DynamoDB", Operation: "UpdateItem", Params: &tc.in}, "arn:aws:iam::111122223333:role/op", "s", nil)
			if err != nil || len(reqs) == 0 {
				t.Fatalf("got %v, %v, want the UpdateItem's request", reqs, err)
			}
			if got := reqs[0].Context["dynamodb:Attributes"]; !slices.Equal(got, tc.want) {
				t.Errorf("got dynamodb:Attributes %v, want %v", got, tc.want)
			}
		})
	}
}
