package release

import (
	"encoding/json"
	"strings"
)

// Bucket is the code bucket of a region, as the published template reads it:
// ${CodeBucketPrefix}-${AWS::Region} (Lambda takes code only from a bucket in the
// function's region).
func Bucket(prefix, region string) string { return prefix + "-" + region }

// Partition is the partition of a region: its ARNs and its bucket policy's say it.
func Partition(region string) string {
	switch {
	case strings.HasPrefix(region, "cn-"):
		return "aws-cn"
	case strings.HasPrefix(region, "us-gov-"):
		return "aws-us-gov"
	}
	return "aws"
}

// BucketPolicy lets every principal of the organization org read the objects under
// prefix in bucket, and nothing else: the member accounts' functions (Lambda reads
// their zips with the deploying principal) and instances (the agent's download) are
// all in the organization, and no one outside it reads the code.
func BucketPolicy(partition, bucket, prefix, org string) string {
	doc := map[string]any{
		"Version": "2012-10-17",
		"Statement": []any{map[string]any{
			"Sid": "OrganizationReadsStorecrypt", "Effect": "Allow", "Principal": "*", "Action": "s3:GetObject",
			"Resource":  "arn:" + partition + ":s3:::" + bucket + "/" + prefix + "*",
			"Condition": map[string]any{"StringEquals": map[string]any{"aws:PrincipalOrgID": org}},
		}},
	}
	b, err := json.MarshalIndent(doc, "", "  ")
	if err != nil {
		panic(err) // maps of strings always encode
	}
	return string(b)
}
