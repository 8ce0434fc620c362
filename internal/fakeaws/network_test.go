package fakeaws

import (
	"maps"
	"slices"
	"testing"
)

// TestInstanceCredentialsKeys: the session's keys go with every request; the endpoint's
// keys only through an endpoint, and aws:SourceIp only without one.
func TestInstanceCredentialsKeys(t *testing.T) {
	creds := InstanceCredentials{InstanceARN: "arn:aws:ec2:us-east-1:111122223333:instance/i-0a", VPC: "vpc-1", PrivateIP: "10.0.0.5"}
	session := map[string][]string{
		"ec2:SourceInstanceARN": {creds.InstanceARN}, "aws:Ec2InstanceSourceVpc": {"vpc-1"}, "aws:Ec2InstanceSourcePrivateIPv4": {"10.0.0.5"},
	}
	with := func(extra map[string][]string) map[string][]string {
		out := maps.Clone(session)
		maps.Copy(out, extra)
		return out
	}
	for _, tc := range []struct {
		name string
		path Path
		want map[string][]string
	}{
		{"through an endpoint", Path{Endpoint: "vpce-2", VPC: "vpc-2", SourceIP: "10.1.0.9"},
			with(map[string][]string{"aws:SourceVpce": {"vpce-2"}, "aws:SourceVpc": {"vpc-2"}, "aws:VpcSourceIp": {"10.1.0.9"}})},
		{"to the public endpoint", Path{SourceIP: "203.0.113.7"}, with(map[string][]string{"aws:SourceIp": {"203.0.113.7"}})},
	} {
		got := creds.Keys(tc.path)
		if !maps.EqualFunc(got, tc.want, slices.Equal) {
			t.Errorf("%s: got %v, want %v", tc.name, got, tc.want)
		}
	}
}
