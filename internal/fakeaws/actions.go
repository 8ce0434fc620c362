package fakeaws

import (
	"encoding/json"
	"fmt"
	"maps"
	"sort"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/cloudformation"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	ec2types "github.com/aws/aws-sdk-go-v2/service/ec2/types"
	"github.com/aws/aws-sdk-go-v2/service/eventbridge"
	"github.com/aws/aws-sdk-go-v2/service/iam"
	"github.com/aws/aws-sdk-go-v2/service/kms"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/securityhub"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	"github.com/aws/aws-sdk-go-v2/service/ssm"
	"github.com/aws/aws-sdk-go-v2/service/sts"
)

// Authz turns a recorded call into the requests IAM authorizes for it: each action, on
// each resource, with the condition keys the call carries. The mapping is the Service
// Authorization Reference's ("Actions, resources, and condition keys for ..."), and:
//   - SQS: "the permissions for SendMessageBatch are the same as for SendMessage", and
//     ChangeMessageVisibilityBatch's as ChangeMessageVisibility's;
//   - SSM SendCommand is authorized on the document and on every instance it targets;
//   - S3 PutObject with SSE-KMS also needs kms:GenerateDataKey on the key, asked by S3
//     on the caller's behalf (kms:ViaService s3.<region>.amazonaws.com).
//
// base holds the caller's own keys (aws:PrincipalArn, aws:MultiFactorAuthPresent,
// ec2:SourceInstanceARN, ...); principal and session name the caller.
func (w *World) Authz(c Call, principal, session string, base map[string][]string) ([]AuthzRequest, error) {
	p, r, a := w.partition(), w.region(), w.account()
	arn := func(service, region, resource string) string {
		return fmt.Sprintf("arn:%s:%s:%s:%s:%s", p, service, region, a, resource)
	}
	req := func(action, resource string, extra map[string][]string) AuthzRequest {
		ctx := map[string][]string{"aws:SecureTransport": {"true"}, "aws:PrincipalAccount": {a}, "aws:RequestedRegion": {r}}
		for k, v := range base {
			ctx[k] = v
		}
		for k, v := range extra {
			ctx[k] = v
		}
		return AuthzRequest{Principal: principal, Session: session, Action: action, Resource: resource, Context: ctx}
	}
	one := func(action, resource string) []AuthzRequest { return []AuthzRequest{req(action, resource, nil)} }
	action := iamPrefix[c.Service] + ":" + c.Operation
	switch in := c.Params.(type) {
	case *ec2.DescribeInstancesInput, *ec2.DescribeInstanceTypesInput, *ssm.DescribeInstanceInformationInput, *ssm.GetCommandInvocationInput, *ssm.ListCommandInvocationsInput:
		return one(action, "*"), nil
	case *cloudformation.ListExportsInput:
		// ListExports has no resource type: a policy grants it on "*".
		return one(action, "*"), nil
	case *cloudformation.DescribeStacksInput:
		// The stack's ARN ends in an id CloudFormation chose; policies name it with *.
		return one(action, arn("cloudformation", r, "stack/"+aws.ToString(in.StackName)+"/00000000-0000-0000-0000-000000000000")), nil
	case *ec2.CreateTagsInput:
		return w.tagRequests(req, action, arn, in.Resources, in.Tags, true), nil
	case *ec2.DeleteTagsInput:
		return w.tagRequests(req, action, arn, in.Resources, in.Tags, false), nil
	case *iam.GetInstanceProfileInput:
		return one(action, arn("iam", "", "instance-profile/"+aws.ToString(in.InstanceProfileName))), nil
	case *iam.SimulatePrincipalPolicyInput:
		return one(action, aws.ToString(in.PolicySourceArn)), nil
	case *kms.DescribeKeyInput:
		return w.keyRequest(req, action, in.KeyId, nil)
	case *kms.GetKeyPolicyInput:
		return w.keyRequest(req, action, in.KeyId, nil)
	case *kms.ListGrantsInput:
		return w.keyRequest(req, action, in.KeyId, nil)
	case *kms.GetKeyRotationStatusInput:
		return w.keyRequest(req, action, in.KeyId, nil)
	case *kms.EncryptInput:
		return withTokens(w.keyRequest(req, action, in.KeyId, in.EncryptionContext))(in.GrantTokens)
	case *kms.GenerateDataKeyInput:
		return withTokens(w.keyRequest(req, action, in.KeyId, in.EncryptionContext))(in.GrantTokens)
	case *kms.DecryptInput:
		id := in.KeyId
		if id == nil {
			var s sealed
			if err := json.Unmarshal(in.CiphertextBlob, &s); err == nil {
				id = &s.Key
			}
		}
		return withTokens(w.keyRequest(req, action, id, in.EncryptionContext))(in.GrantTokens)
	case *kms.CreateGrantInput:
		return w.createGrantRequest(req, action, in)
	case *kms.RevokeGrantInput:
		return w.keyRequest(req, action, in.KeyId, nil)
	case *kms.ListResourceTagsInput:
		return w.keyRequest(req, action, in.KeyId, nil)
	case *kms.TagResourceInput:
		tags := map[string]*string{}
		for _, t := range in.Tags {
			tags[aws.ToString(t.TagKey)] = t.TagValue
		}
		return w.tagKeyRequest(req, action, in.KeyId, tags)
	case *kms.UntagResourceInput:
		tags := map[string]*string{}
		for _, name := range in.TagKeys {
			tags[name] = nil
		}
		return w.tagKeyRequest(req, action, in.KeyId, tags)
	case *sts.GetCallerIdentityInput:
		// "No permissions are required to perform this operation" (STS API Reference,
		// GetCallerIdentity): nothing for IAM to authorize.
		return nil, nil
	case *kms.RetireGrantInput:
		// The grant, not a policy, decides who may retire it (the handler checks the
		// caller): "Principals specified in the grant can retire a grant without the
		// kms:RetireGrant permission" (Developer Guide, "Retiring and revoking grants").
		return nil, nil
	case *ssm.SendCommandInput:
		out := one(action, arn("ssm", r, "document/"+aws.ToString(in.DocumentName)))
		for _, id := range in.InstanceIds {
			out = append(out, req(action, arn("ec2", r, "instance/"+id), nil))
		}
		return out, nil
	case *ssm.PutComplianceItemsInput:
		// Authorized on the instance (Service Authorization Reference: "instance" for
		// PutComplianceItems).
		return one(action, arn("ec2", r, "instance/"+aws.ToString(in.ResourceId))), nil
	case *ssm.GetDocumentInput:
		return one(action, arn("ssm", r, "document/"+aws.ToString(in.Name))), nil
	case *ssm.DescribeDocumentInput:
		return one(action, arn("ssm", r, "document/"+aws.ToString(in.Name))), nil
	case *ssm.ListDocumentVersionsInput:
		return one(action, arn("ssm", r, "document/"+aws.ToString(in.Name))), nil
	case *sqs.SendMessageBatchInput:
		url := aws.ToString(in.QueueUrl)
		return one("sqs:SendMessage", arn("sqs", r, url[strings.LastIndex(url, "/")+1:])), nil
	case *sqs.ChangeMessageVisibilityBatchInput:
		url := aws.ToString(in.QueueUrl)
		return one("sqs:ChangeMessageVisibility", arn("sqs", r, url[strings.LastIndex(url, "/")+1:])), nil
	case *eventbridge.PutEventsInput:
		var out []AuthzRequest
		for _, e := range in.Entries {
			bus := aws.ToString(e.EventBusName)
			if bus == "" {
				bus = "default"
			}
			out = append(out, req(action, arn("events", r, "event-bus/"+bus), map[string][]string{
				"events:source": {aws.ToString(e.Source)}, "events:detail-type": {aws.ToString(e.DetailType)}}))
		}
		return out, nil
	case *s3.GetObjectInput:
		// A read of a named version needs s3:GetObjectVersion (GetObject, "Versioning").
		if in.VersionId != nil {
			action = "s3:GetObjectVersion"
		}
		bucket, key := aws.ToString(in.Bucket), aws.ToString(in.Key)
		out := one(action, fmt.Sprintf("arn:%s:s3:::%s/%s", p, bucket, key))
		w.mu.Lock()
		sse := w.Objects[bucket+"/"+key].SSEKMSID
		w.mu.Unlock()
		if sse == "" {
			return out, nil
		}
		via, err := w.viaS3(req, "kms:Decrypt", sse, bucket, key)
		return append(out, via...), err
	case *dynamodb.UpdateItemInput:
		return w.viaDynamoDB(req, action, arn, aws.ToString(in.TableName), map[string][]string{"dynamodb:Attributes": updateAttributes(in)})
	case *dynamodb.QueryInput:
		return w.viaDynamoDB(req, action, arn, aws.ToString(in.TableName), nil)
	case *dynamodb.GetItemInput:
		return w.viaDynamoDB(req, action, arn, aws.ToString(in.TableName), nil)
	case *dynamodb.ScanInput:
		return w.viaDynamoDB(req, action, arn, aws.ToString(in.TableName), nil)
	case *securityhub.BatchImportFindingsInput:
		// The Service Authorization Reference names no resource type for it ("*"), and the
		// condition key securityhub:TargetAccount, the findings' AwsAccountId.
		var out []AuthzRequest
		for _, f := range in.Findings {
			out = append(out, req(action, "*", map[string][]string{"securityhub:TargetAccount": {aws.ToString(f.AwsAccountId)}}))
		}
		return out, nil
	case *securityhub.GetFindingsInput:
		// The hub is its required resource type (Service Authorization Reference).
		return one(action, arn("securityhub", r, "hub/default")), nil
	case *s3.PutObjectInput:
		bucket, key := aws.ToString(in.Bucket), aws.ToString(in.Key)
		out := one(action, fmt.Sprintf("arn:%s:s3:::%s/%s", p, bucket, key))
		if in.SSEKMSKeyId == nil {
			return out, nil
		}
		via, err := w.viaS3(req, "kms:GenerateDataKey", aws.ToString(in.SSEKMSKeyId), bucket, key)
		return append(out, via...), err
	}
	return nil, fmt.Errorf("fakeaws: no authorization mapping for %s.%s", c.Service, c.Operation)
}

// tagRequests authorizes CreateTags or DeleteTags on each instance: aws:TagKeys and
// aws:RequestTag/<key> carry the request's tags (absent for a DeleteTags without Tags,
// which deletes every tag), aws:ResourceTag/<key> the instance's tags before the call.
func (w *World) tagRequests(req func(string, string, map[string][]string) AuthzRequest, action string, arn func(string, string, string) string,
	ids []string, tags []ec2types.Tag, create bool) []AuthzRequest {
	extra := map[string][]string{}
	if create {
		extra["ec2:CreateAction"] = []string{"CreateTags"}
	}
	if len(tags) > 0 {
		keys := []string{}
		for _, t := range tags {
			keys = append(keys, aws.ToString(t.Key))
			if t.Value != nil {
				extra["aws:RequestTag/"+aws.ToString(t.Key)] = []string{aws.ToString(t.Value)}
			}
		}
		sort.Strings(keys)
		extra["aws:TagKeys"] = keys
	}
	var out []AuthzRequest
	for _, id := range ids {
		ctx := maps.Clone(extra)
		w.mu.Lock()
		if i := w.Instances[id]; i != nil {
			for k, v := range i.Tags {
				ctx["aws:ResourceTag/"+k] = []string{v}
			}
		}
		w.mu.Unlock()
		out = append(out, req(action, arn("ec2", w.region(), "instance/"+id), ctx))
	}
	return out
}

// viaDynamoDB authorizes an item action on a table, with the request's own keys (extra),
// and, for a table encrypted under a customer managed key, the Decrypt of the table's key
// that DynamoDB makes with the caller's credentials ("How Amazon DynamoDB uses AWS KMS": kms:ViaService
// dynamodb.<region>.<domain>, encryption context aws:dynamodb:tableName and
// aws:dynamodb:subscriberId).
func (w *World) viaDynamoDB(req func(string, string, map[string][]string) AuthzRequest, action string, arn func(string, string, string) string, table string,
	extra map[string][]string) ([]AuthzRequest, error) {
	out := []AuthzRequest{req(action, arn("dynamodb", w.region(), "table/"+table), extra)}
	w.mu.Lock()
	keyID := w.TableKeys[table]
	w.mu.Unlock()
	if keyID == "" {
		return out, nil
	}
	via, err := w.keyRequest(req, "kms:Decrypt", &keyID, map[string]string{"aws:dynamodb:tableName": table, "aws:dynamodb:subscriberId": w.account()})
	for i := range via {
		via[i].Context["kms:ViaService"] = []string{"dynamodb." + w.region() + "." + w.urlSuffix()}
	}
	return append(out, via...), err
}

// iamPrefix is each SDK service's prefix in IAM actions.
var iamPrefix = map[string]string{
	"EC2": "ec2", "IAM": "iam", "KMS": "kms", "SSM": "ssm", "SQS": "sqs", "EventBridge": "events", "S3": "s3", "CloudFormation": "cloudformation",
	"DynamoDB": "dynamodb", "SecurityHub": "securityhub",
}

// viaS3 is the KMS request S3 makes on the caller's behalf for an SSE-KMS object: with
// kms:ViaService s3.<region>.<domain>, and the encryption context S3 sets, which is the
// object's ARN, or the bucket's when the bucket uses an S3 Bucket Key (S3 User Guide,
// "Using server-side encryption with AWS KMS keys", "Encryption context").
func (w *World) viaS3(req func(string, string, map[string][]string) AuthzRequest, action, keyID, bucket, key string) ([]AuthzRequest, error) {
	arn := fmt.Sprintf("arn:%s:s3:::%s", w.partition(), bucket)
	w.mu.Lock()
	bucketKey := w.BucketKeys[bucket]
	w.mu.Unlock()
	if !bucketKey {
		arn += "/" + key
	}
	via, err := w.keyRequest(req, action, &keyID, map[string]string{"aws:s3:arn": arn})
	for i := range via {
		via[i].Context["kms:ViaService"] = []string{"s3." + w.region() + "." + w.urlSuffix()}
	}
	return via, err
}

// keyRequest authorizes a KMS call on a key, with the encryption context's condition
// keys (kms:EncryptionContext:<key> and kms:EncryptionContextKeys) and the key's tags as
// authorization sees them (aws:ResourceTag/<key>: "AWS KMS supports the
// aws:ResourceTag/tag-key global condition context key", "Use tags to control access to
// KMS keys").
func (w *World) keyRequest(req func(string, string, map[string][]string) AuthzRequest, action string, keyID *string, ec map[string]string) ([]AuthzRequest, error) {
	w.mu.Lock()
	k, err := w.key(keyID, true)
	var tags map[string]string
	if err == nil {
		tags = k.authzTags()
	}
	w.mu.Unlock()
	if err != nil {
		return nil, err
	}
	extra := EncryptionContextKeys(ec)
	extra["kms:CallerAccount"] = []string{w.account()}
	for name, v := range tags {
		extra["aws:ResourceTag/"+name] = []string{v}
	}
	return []AuthzRequest{req(action, k.ARN, extra)}, nil
}

// tagKeyRequest is TagResource's or UntagResource's request: aws:TagKeys names the tags
// it sets or removes, and aws:RequestTag/<key> carries each value TagResource sets (the
// Service Authorization Reference lists both for kms:TagResource, aws:TagKeys for
// kms:UntagResource).
func (w *World) tagKeyRequest(req func(string, string, map[string][]string) AuthzRequest, action string, keyID *string, tags map[string]*string) ([]AuthzRequest, error) {
	out, err := w.keyRequest(req, action, keyID, nil)
	if err != nil {
		return nil, err
	}
	var names []string
	for name, v := range tags {
		names = append(names, name)
		if v != nil {
			out[0].Context["aws:RequestTag/"+name] = []string{*v}
		}
	}
	sort.Strings(names)
	out[0].Context["aws:TagKeys"] = names
	return out, nil
}

// withTokens puts a request's GrantTokens on its authorization requests.
func withTokens(out []AuthzRequest, err error) func([]string) ([]AuthzRequest, error) {
	return func(tokens []string) ([]AuthzRequest, error) {
		for i := range out {
			out[i].GrantTokens = tokens
		}
		return out, err
	}
}

// createGrantRequest carries CreateGrant's condition keys (AWS KMS Developer Guide, "AWS
// KMS condition keys"): kms:GrantOperations (multivalued), kms:GranteePrincipal,
// kms:RetiringPrincipal when the request names one, kms:GrantConstraintType, and the
// constraint's encryption context as kms:EncryptionContext:<key> and
// kms:EncryptionContextKeys, which the page lists for CreateGrant.
func (w *World) createGrantRequest(req func(string, string, map[string][]string) AuthzRequest, action string, in *kms.CreateGrantInput) ([]AuthzRequest, error) {
	var ec map[string]string
	constraint := ""
	if c := in.Constraints; c != nil {
		switch {
		case c.EncryptionContextEquals != nil:
			constraint, ec = "EncryptionContextEquals", c.EncryptionContextEquals
		case c.EncryptionContextSubset != nil:
			constraint, ec = "EncryptionContextSubset", c.EncryptionContextSubset
		}
	}
	out, err := w.keyRequest(req, action, in.KeyId, ec)
	if err != nil {
		return nil, err
	}
	ctx := out[0].Context
	for _, op := range in.Operations {
		ctx["kms:GrantOperations"] = append(ctx["kms:GrantOperations"], string(op))
	}
	ctx["kms:GranteePrincipal"] = []string{aws.ToString(in.GranteePrincipal)}
	if in.RetiringPrincipal != nil {
		ctx["kms:RetiringPrincipal"] = []string{*in.RetiringPrincipal}
	}
	if constraint != "" {
		ctx["kms:GrantConstraintType"] = []string{constraint}
	}
	return out, nil
}

// EncryptionContextKeys are the condition keys KMS sets for an encryption context:
// kms:EncryptionContext:<key> for each pair, and kms:EncryptionContextKeys listing the
// keys (absent for an empty context). AWS KMS Developer Guide, "AWS KMS condition keys".
func EncryptionContextKeys(ec map[string]string) map[string][]string {
	out := map[string][]string{}
	var keys []string
	for name, v := range ec {
		out["kms:EncryptionContext:"+name] = []string{v}
		keys = append(keys, name)
	}
	if len(keys) > 0 {
		sort.Strings(keys)
		out["kms:EncryptionContextKeys"] = keys
	}
	return out
}
