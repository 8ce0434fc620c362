package fakeaws

import (
	"regexp"
	"slices"
	"strings"

	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
)

// updateAttributes is dynamodb:Attributes of an UpdateItem: "a list of the attribute
// names in a request", those "read, written, or evaluated in a conditional write"
// (DynamoDB Developer Guide, "Using IAM policy conditions for fine-grained access
// control"), so the names its UpdateExpression and ConditionExpression use, through
// ExpressionAttributeNames where they are placeholders, and the key's, which the same
// page says a policy must list. Only a path's top-level name counts: a policy lists
// attributes, not what is nested in them. Sorted, each once.
func updateAttributes(in *dynamodb.UpdateItemInput) []string {
	var names []string
	for k := range in.Key {
		names = append(names, k)
	}
	for _, expr := range []*string{in.UpdateExpression, in.ConditionExpression} {
		if expr != nil {
			names = append(names, expressionNames(*expr, in.ExpressionAttributeNames)...)
		}
	}
	// The legacy parameters name attributes too; a request that used them must not
	// escape the condition.
	for k := range in.AttributeUpdates {
		names = append(names, k)
	}
	for k := range in.Expected {
		names = append(names, k)
	}
	slices.Sort(names)
	return slices.Compact(names)
}

// expressionToken is a name, a #placeholder or a :value in an expression, with what
// precedes it (a '.' makes it nested) and whether a '(' follows (a function).
var expressionToken = regexp.MustCompile(`(\.?)\s*([#:]?[A-Za-z_][A-Za-z0-9_]*)\s*(\(?)`)

// expressionKeywords are the words of update and condition expressions that name no
// attribute (case-insensitive in DynamoDB's grammar).
var expressionKeywords = map[string]bool{"set": true, "remove": true, "add": true, "delete": true, "and": true, "or": true, "not": true, "between": true, "in": true}

// expressionNames are the top-level attribute names an expression uses.
func expressionNames(expr string, placeholders map[string]string) []string {
	var out []string
	for _, m := range expressionToken.FindAllStringSubmatch(expr, -1) {
		nested, tok, call := m[1] == ".", m[2], m[3] == "("
		switch {
		case nested, call, strings.HasPrefix(tok, ":"), expressionKeywords[strings.ToLower(tok)]:
		case strings.HasPrefix(tok, "#"):
			out = append(out, placeholders[tok])
		default:
			out = append(out, tok)
		}
	}
	return out
}
