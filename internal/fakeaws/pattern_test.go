package fakeaws

import "testing"

// TestMatchPattern: each case's expectation is the EventBridge user guide's, named after
// the page and example it comes from ("Creating event patterns" (create), "Comparison
// operators" (ops), "Arrays in event patterns" (arrays), "Matching null values and empty
// strings" (null)).
func TestMatchPattern(t *testing.T) {
	const ev = `{"source":"aws.ec2","detail-type":"EC2 Instance State-change Notification","resources":["arn:aws:ec2:us-east-1:1:instance/i-1","arn:x"],
		"detail":{"state":"running","instance-id":"i-0abc","count":300,"ratio":0.5,"empty":"","nothing":null,"ip":"10.0.1.7","tags":["a","b"],"nested":{"k":"v"}}}`
	for _, tc := range []struct {
		name, pattern string
		want          bool
	}{
		{"one field (create)", `{"source":["aws.ec2"]}`, true},
		{"values OR (ops: Or)", `{"source":["aws.s3","aws.ec2"]}`, true},
		{"fields AND (ops: And)", `{"source":["aws.ec2"],"detail-type":["other"]}`, false},
		{"nested field (create)", `{"detail":{"state":["running"]}}`, true},
		{"a missing field fails (create: 'must contain all the field names')", `{"detail":{"absent":["x"]}}`, false},
		{"case matters (create: exact match)", `{"source":["AWS.EC2"]}`, false},
		{"event array intersects (arrays)", `{"resources":["arn:x","arn:y"]}`, true},
		{"event array, no intersection (arrays)", `{"resources":["arn:y"]}`, false},
		{"array of strings in detail (arrays)", `{"detail":{"tags":["b"]}}`, true},
		{"numbers by string representation (create: 300 is not 300.0)", `{"detail":{"count":[300.0]}}`, false},
		{"number equal", `{"detail":{"count":[300]}}`, true},
		{"null matches null (null)", `{"detail":{"nothing":[null]}}`, true},
		{"null is not empty string (null)", `{"detail":{"nothing":[""]}}`, false},
		{"empty string matches empty (null)", `{"detail":{"empty":[""]}}`, true},
		{"prefix (ops)", `{"detail":{"instance-id":[{"prefix":"i-0"}]}}`, true},
		{"prefix, ignoring case (ops)", `{"detail":{"instance-id":[{"prefix":{"equals-ignore-case":"I-0"}}]}}`, true},
		{"suffix (ops)", `{"detail":{"instance-id":[{"suffix":"abc"}]}}`, true},
		{"anything-but a value (ops)", `{"detail":{"state":[{"anything-but":"stopped"}]}}`, true},
		{"anything-but its own value", `{"detail":{"state":[{"anything-but":["running","stopped"]}]}}`, false},
		{"anything-but a prefix (ops)", `{"detail":{"state":[{"anything-but":{"prefix":"run"}}]}}`, false},
		{"numeric range (ops)", `{"detail":{"count":[{"numeric":[">",0,"<=",300]}]}}`, true},
		{"numeric out of range", `{"detail":{"count":[{"numeric":["<",300]}]}}`, false},
		{"numeric on a string never matches", `{"detail":{"state":[{"numeric":[">",0]}]}}`, false},
		{"exists true (ops)", `{"detail":{"state":[{"exists":true}]}}`, true},
		{"exists false on a missing field (ops: 'does not exist')", `{"detail":{"errorCode":[{"exists":false}]}}`, true},
		{"exists false on a present field", `{"detail":{"state":[{"exists":false}]}}`, false},
		{"equals-ignore-case (ops)", `{"detail":{"state":[{"equals-ignore-case":"RUNNING"}]}}`, true},
		{"wildcard (ops)", `{"detail":{"instance-id":[{"wildcard":"i-*c"}]}}`, true},
		{"wildcard: ? is literal", `{"detail":{"instance-id":[{"wildcard":"i-0ab?"}]}}`, false},
		{"cidr (ops)", `{"detail":{"ip":[{"cidr":"10.0.0.0/16"}]}}`, true},
		{"$or of patterns (ops)", `{"$or":[{"source":["aws.s3"]},{"detail":{"state":["running"]}}]}`, true},
		{"$or, neither", `{"$or":[{"source":["aws.s3"]},{"detail":{"state":["stopped"]}}]}`, false},
		{"an object pattern against a string", `{"detail":{"state":{"x":["y"]}}}`, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := MatchPattern([]byte(tc.pattern), []byte(ev))
			if err != nil {
				t.Fatal(err)
			}
			if got != tc.want {
				t.Errorf("got %v, want %v", got, tc.want)
			}
		})
	}
	for _, bad := range []string{`{"source":"aws.ec2"}`, `{"detail":{"state":[{"regex":"r.*"}]}}`, `{"$or":[{"source":["a"]}]}`} {
		if _, err := MatchPattern([]byte(bad), []byte(ev)); err == nil {
			t.Errorf("%s: accepted", bad)
		}
	}
}
