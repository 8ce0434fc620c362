package fakeaws

import (
	"strings"
	"testing"
)

// TestCheckSCP: what Organizations refuses to store as an SCP.
func TestCheckSCP(t *testing.T) {
	deny := `{"Effect":"Deny","Action":"s3:*","Resource":"*"}`
	doc := func(stmts string) string { return `{"Version":"2012-10-17","Statement":[` + stmts + `]}` }
	for _, tc := range []struct {
		name, doc string
		ok        bool
	}{
		{"a deny", doc(deny), true},
		{"exactly the limit", doc(deny) + strings.Repeat(" ", SCPMaxBytes-len(doc(deny))), true},
		{"one byte over, white space included", doc(deny) + strings.Repeat(" ", SCPMaxBytes-len(doc(deny))+1), false},
		{"a Principal", doc(`{"Effect":"Deny","Principal":"*","Action":"s3:*","Resource":"*"}`), false},
		{"a NotPrincipal", doc(`{"Effect":"Deny","NotPrincipal":{"AWS":"x"},"Action":"s3:*","Resource":"*"}`), false},
		{"not JSON", `{"Statement":[`, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if err := CheckSCP(tc.doc); (err == nil) != tc.ok {
				t.Errorf("got %v, want accepted %v", err, tc.ok)
			}
		})
	}
}

// TestSCPsDeny: a request fails when any SCP denies it; what no SCP denies is left to the
// account's policies.
func TestSCPsDeny(t *testing.T) {
	s3 := `{"Version":"2012-10-17","Statement":[{"Effect":"Deny","Action":"s3:*","Resource":"*"}]}`
	kms := `{"Version":"2012-10-17","Statement":[{"Effect":"Deny","Action":"kms:*","Resource":"*"}]}`
	for _, tc := range []struct {
		action string
		want   bool
	}{
		{"s3:GetObject", true},
		{"kms:Decrypt", true},
		{"ec2:DescribeInstances", false},
	} {
		got, err := SCPsDeny([]string{s3, kms}, AuthzRequest{Principal: "arn:aws:iam::111122223333:role/a", Action: tc.action, Resource: "*"})
		if err != nil {
			t.Fatal(err)
		}
		if got != tc.want {
			t.Errorf("%s: got denied %v, want %v", tc.action, got, tc.want)
		}
	}
}
