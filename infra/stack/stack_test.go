package stack_test

import (
	"encoding/json"
	"fmt"
	"os"
	"slices"
	"strings"
	"testing"

	"github.com/aws/aws-cdk-go/awscdk/v2"
	"github.com/aws/aws-cdk-go/awscdk/v2/assertions"
	"github.com/aws/jsii-runtime-go"
	"github.com/cdklabs/cdk-nag-go/cdknag/v2"

	"github.com/storecrypt/storecrypt/infra/stack"
	"github.com/storecrypt/storecrypt/infra/stack/stacktest"
	"github.com/storecrypt/storecrypt/internal/contract"
	"github.com/storecrypt/storecrypt/internal/ledger"
	"github.com/storecrypt/storecrypt/test/cfn"
)

func TestMain(m *testing.M) {
	os.Setenv("JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION", "20")
	code := m.Run()
	jsii.Close()
	os.Exit(code)
}

// buildDir makes stand-ins for `make build`'s output.
func buildDir(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	must(t, stacktest.BuildDir(dir))
	return dir
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func synth(t *testing.T, props *stack.StoreCryptStackProps, nag bool) (awscdk.App, awscdk.Stack) {
	t.Helper()
	app := awscdk.NewApp(nil)
	if nag {
		awscdk.Aspects_Of(app).Add(cdknag.NewAwsSolutionsChecks(&cdknag.NagPackProps{Verbose: jsii.Bool(true)}), nil)
	}
	props.BuildDir = buildDir(t)
	props.StackProps = awscdk.StackProps{Env: &awscdk.Environment{Account: jsii.String("111122223333"), Region: jsii.String("us-east-1")}}
	s, err := stack.NewStoreCryptStack(app, "StoreCrypt", props)
	if err != nil {
		t.Fatal(err)
	}
	return app, s
}

func template(t *testing.T, props *stack.StoreCryptStackProps) (assertions.Template, map[string]any) {
	t.Helper()
	_, s := synth(t, props, false)
	tpl := assertions.Template_FromStack(s, nil)
	var raw map[string]any
	b, err := json.Marshal(tpl.ToJSON())
	must(t, err)
	must(t, json.Unmarshal(b, &raw))
	return tpl, raw
}

func TestFunctions(t *testing.T) {
	tpl, _ := template(t, &stack.StoreCryptStackProps{})
	tpl.ResourceCountIs(jsii.String("AWS::Lambda::Function"), jsii.Number(2))
	tpl.AllResourcesProperties(jsii.String("AWS::Lambda::Function"), map[string]any{
		"Runtime": "provided.al2023", "Architectures": []string{"arm64"}, "Handler": "bootstrap",
	})
	tpl.HasResourceProperties(jsii.String("AWS::Lambda::Function"), map[string]any{
		"Environment": map[string]any{"Variables": assertions.Match_ObjectLike(&map[string]any{
			contract.EnvDocumentName: contract.DocumentName, contract.EnvKeySource: contract.KeySourceKMSDataKey,
		})},
	})
	tpl.HasResourceProperties(jsii.String("AWS::Lambda::EventSourceMapping"), map[string]any{
		"BatchSize": contract.LaunchBatchSize, "MaximumBatchingWindowInSeconds": 5, "FunctionResponseTypes": []string{"ReportBatchItemFailures"},
	})
	tpl.AllResourcesProperties(jsii.String("AWS::Logs::LogGroup"), map[string]any{"RetentionInDays": 365})
}

func TestRulesAndQueue(t *testing.T) {
	tpl, _ := template(t, &stack.StoreCryptStackProps{})
	tpl.HasResourceProperties(jsii.String("AWS::Events::Rule"), map[string]any{"EventPattern": map[string]any{
		"source": []string{"aws.ec2"}, "detail-type": []string{"EC2 Instance State-change Notification"},
		"detail": map[string]any{"state": []string{"running"}, "instance-id": []any{map[string]any{"prefix": "i-"}}},
	}})
	tpl.HasResourceProperties(jsii.String("AWS::Events::Rule"), map[string]any{"EventPattern": map[string]any{
		"source": []string{"aws.ssm"}, "detail-type": []string{"EC2 Command Invocation Status-change Notification"},
		"detail": map[string]any{"document-name": []string{contract.DocumentName}, "status": contract.FinalInvocationStatuses},
	}})
	tpl.HasResourceProperties(jsii.String("AWS::Events::Rule"), map[string]any{"EventPattern": map[string]any{
		"source": []string{"aws.ec2"}, "detail-type": []string{"AWS API Call via CloudTrail"},
		"detail": map[string]any{"eventSource": []string{"ec2.amazonaws.com"}, "eventName": []string{"RunInstances"}, "errorCode": []any{map[string]any{"exists": false}}},
	}})
	tpl.HasResourceProperties(jsii.String("AWS::Events::Rule"), map[string]any{"ScheduleExpression": "rate(15 minutes)"})
	// The result path: a DLQ for events the function failed to process, and the target's
	// for events EventBridge could not deliver.
	tpl.HasResourceProperties(jsii.String("AWS::Lambda::Function"), map[string]any{"DeadLetterConfig": map[string]any{"TargetArn": assertions.Match_AnyValue()}})
	tpl.HasResourceProperties(jsii.String("AWS::Lambda::EventInvokeConfig"), map[string]any{"MaximumRetryAttempts": 2})
	tpl.HasResourceProperties(jsii.String("AWS::Events::Rule"), map[string]any{"Targets": []any{assertions.Match_ObjectLike(&map[string]any{
		"DeadLetterConfig": map[string]any{"Arn": assertions.Match_AnyValue()}})}})
	// About 50 minutes for a late SSM agent (contract.LaunchRetryDelay between receives),
	// then the DLQ; the visibility timeout six times the function's.
	tpl.HasResourceProperties(jsii.String("AWS::SQS::Queue"), map[string]any{
		"VisibilityTimeout": 360, "SqsManagedSseEnabled": true,
		"RedrivePolicy": map[string]any{"maxReceiveCount": 15, "deadLetterTargetArn": assertions.Match_AnyValue()},
	})
	tpl.HasResourceProperties(jsii.String("AWS::Lambda::Function"), map[string]any{"Handler": "bootstrap", "Timeout": 60,
		"Environment": map[string]any{"Variables": assertions.Match_ObjectLike(&map[string]any{contract.EnvQueueURL: assertions.Match_AnyValue()})}})
	tpl.ResourceCountIs(jsii.String("AWS::CloudWatch::Alarm"), jsii.Number(7))
	tpl.HasResourceProperties(jsii.String("AWS::CloudWatch::Alarm"), map[string]any{"Namespace": contract.MetricNamespace, "MetricName": contract.MetricBlocked})
}

// TestKeyPolicy: the statements are there, and RefuseLegacyVolumes drops the legacy one.
// What each decides, for each caller and context, is test/conformance's
// TestKeyBindsEachVolumeToItsInstance, evaluated by the fake's own policy engine.
func TestKeyPolicy(t *testing.T) {
	sids := func(props *stack.StoreCryptStackProps) []string {
		_, raw := template(t, props)
		var out []string
		for _, r := range raw["Resources"].(map[string]any) {
			res := r.(map[string]any)
			if res["Type"] != "AWS::KMS::Key" {
				continue
			}
			for _, st := range res["Properties"].(map[string]any)["KeyPolicy"].(map[string]any)["Statement"].([]any) {
				if sid, ok := st.(map[string]any)["Sid"].(string); ok {
					out = append(out, sid)
				}
			}
		}
		return out
	}
	all := []string{"StoreCryptOwnVolumes", "StoreCryptLegacyVolumes", "StoreCryptOnlyTheOwningInstance", "StoreCryptOnlyTheInstanceRoles"}
	if got := sids(&stack.StoreCryptStackProps{}); !containsAll(got, all) {
		t.Errorf("key policy statements %v, want %v among them", got, all)
	}
	if got := sids(&stack.StoreCryptStackProps{RefuseLegacyVolumes: true}); slices.Contains(got, "StoreCryptLegacyVolumes") {
		t.Errorf("RefuseLegacyVolumes kept the legacy statement: %v", got)
	}
	tpl, _ := template(t, &stack.StoreCryptStackProps{})
	tpl.HasResourceProperties(jsii.String("AWS::KMS::Key"), map[string]any{"EnableKeyRotation": true})
	tpl.HasResourceProperties(jsii.String("AWS::KMS::Alias"), map[string]any{"AliasName": "alias/storecrypt"})
	tpl.HasResourceProperties(jsii.String("AWS::IAM::Policy"), map[string]any{"PolicyDocument": map[string]any{"Statement": assertions.Match_ArrayWith(&[]any{
		assertions.Match_ObjectLike(&map[string]any{"Sid": "InspectTheKey", "Action": []string{"kms:DescribeKey", "kms:GetKeyPolicy", "kms:ListGrants"}}),
	})}})
}

func containsAll(have, want []string) bool {
	for _, w := range want {
		if !slices.Contains(have, w) {
			return false
		}
	}
	return true
}

// statements returns every IAM statement in the template: role and managed policies and
// resource policies (key, bucket, queue).
func statements(raw map[string]any) []map[string]any {
	var out []map[string]any
	var walk func(v any)
	walk = func(v any) {
		switch v := v.(type) {
		case map[string]any:
			if st, ok := v["Statement"].([]any); ok {
				for _, s := range st {
					out = append(out, s.(map[string]any))
				}
			}
			for _, x := range v {
				walk(x)
			}
		case []any:
			for _, x := range v {
				walk(x)
			}
		}
	}
	walk(raw["Resources"])
	return out
}

func TestLeastPrivilege(t *testing.T) {
	for _, props := range []*stack.StoreCryptStackProps{{}, {KeySource: contract.KeySourceS3KMS, Trail: true, AlarmEmail: "ops@example.com"}} {
		_, raw := template(t, props)
		sts := statements(raw)
		if len(sts) < 10 {
			t.Fatalf("found only %d statements; the walk is broken", len(sts))
		}
		for _, st := range sts {
			if st["Effect"] == "Deny" {
				continue // TLS-only and endpoint-only guards deny broadly by design
			}
			for _, a := range cfn.Actions(st) {
				if a == "*" || strings.HasSuffix(a, ":*") && a != "kms:*" {
					t.Errorf("statement %v allows %q", st["Sid"], a)
				}
			}
			// kms:* is the key policy's account-administration statement, as every KMS key has.
			if slices.Contains(cfn.Actions(st), "kms:*") && !strings.Contains(fmt.Sprint(st["Principal"]), ":root") {
				t.Errorf("kms:* granted to %v", st["Principal"])
			}
			if slices.Contains(cfn.Actions(st), "ssm:SendCommand") {
				res := fmt.Sprint(st["Resource"])
				if !strings.Contains(res, "document/"+contract.DocumentName) || !strings.Contains(res, "instance/*") || strings.Contains(res, "document/*") {
					t.Errorf("SendCommand not scoped to the document: %v", res)
				}
			}
			if slices.Contains(cfn.Actions(st), "ec2:CreateTags") && !strings.Contains(fmt.Sprint(st["Condition"]), "storecrypt:*") {
				t.Errorf("CreateTags without the storecrypt:* tag-key condition: %v", st)
			}
		}
	}
}

func TestOperatorPolicyNeedsMFA(t *testing.T) {
	tpl, _ := template(t, &stack.StoreCryptStackProps{})
	tpl.HasResourceProperties(jsii.String("AWS::IAM::ManagedPolicy"), map[string]any{"PolicyDocument": map[string]any{"Statement": assertions.Match_ArrayWith(&[]any{
		assertions.Match_ObjectLike(&map[string]any{"Sid": "RerunWithMFA", "Action": "ssm:SendCommand",
			"Condition": map[string]any{"Bool": map[string]any{"aws:MultiFactorAuthPresent": "true"}}}),
		assertions.Match_ObjectLike(&map[string]any{"Sid": "RerunFromIdentityCenter", "Action": "ssm:SendCommand",
			"Condition": map[string]any{"ArnLike": map[string]any{"aws:PrincipalArn": assertions.Match_AnyValue()}}}),
	})}})
}

func TestSecretBucket(t *testing.T) {
	tpl, raw := template(t, &stack.StoreCryptStackProps{KeySource: contract.KeySourceS3KMS, SecretVPCEndpoint: "vpce-0123456789abcdef0"})
	tpl.HasResourceProperties(jsii.String("AWS::S3::Bucket"), map[string]any{
		"VersioningConfiguration":        map[string]any{"Status": "Enabled"},
		"PublicAccessBlockConfiguration": map[string]any{"BlockPublicAcls": true, "BlockPublicPolicy": true, "IgnorePublicAcls": true, "RestrictPublicBuckets": true},
		"OwnershipControls":              map[string]any{"Rules": []any{map[string]any{"ObjectOwnership": "BucketOwnerEnforced"}}},
		"BucketEncryption": map[string]any{"ServerSideEncryptionConfiguration": []any{assertions.Match_ObjectLike(&map[string]any{
			"ServerSideEncryptionByDefault": map[string]any{"SSEAlgorithm": "aws:kms", "KMSMasterKeyID": assertions.Match_AnyValue()},
		})}},
	})
	var denyOutsideEndpoint, tlsOnly bool
	for _, st := range statements(raw) {
		c := fmt.Sprint(st["Condition"])
		denyOutsideEndpoint = denyOutsideEndpoint || st["Effect"] == "Deny" && strings.Contains(c, "vpce-0123456789abcdef0")
		tlsOnly = tlsOnly || st["Effect"] == "Deny" && strings.Contains(c, "aws:SecureTransport:false")
	}
	if !denyOutsideEndpoint || !tlsOnly {
		t.Errorf("bucket policy: deny outside the endpoint %v, TLS only %v", denyOutsideEndpoint, tlsOnly)
	}
	tpl.HasResourceProperties(jsii.String("AWS::KMS::Key"), map[string]any{"KeyPolicy": map[string]any{"Statement": assertions.Match_ArrayWith(&[]any{
		assertions.Match_ObjectLike(&map[string]any{"Sid": "StoreCryptSeedSecret", "Action": "kms:Decrypt"}),
	})}})
}

func TestExistingKeyAndRoles(t *testing.T) {
	tpl, _ := template(t, &stack.StoreCryptStackProps{
		KeyARN:           "arn:aws:kms:us-east-1:111122223333:key/11111111-2222-4333-8444-555555555555",
		InstanceRoleARNs: []string{"arn:aws:iam::111122223333:role/app"},
	})
	tpl.ResourceCountIs(jsii.String("AWS::KMS::Key"), jsii.Number(0))
	tpl.ResourceCountIs(jsii.String("AWS::IAM::InstanceProfile"), jsii.Number(0))
	tpl.HasResourceProperties(jsii.String("AWS::IAM::Policy"), map[string]any{
		"Roles":          []string{"app"},
		"PolicyDocument": map[string]any{"Statement": assertions.Match_ArrayWith(&[]any{assertions.Match_ObjectLike(&map[string]any{"Sid": "StoreCryptOwnVolumes"})})},
	})
}

func TestBadProps(t *testing.T) {
	app := awscdk.NewApp(nil)
	if _, err := stack.NewStoreCryptStack(app, "S", &stack.StoreCryptStackProps{KeySource: "ephemeral", BuildDir: buildDir(t)}); err == nil {
		t.Error("ephemeral was accepted")
	}
	if _, err := stack.NewStoreCryptStack(app, "T", &stack.StoreCryptStackProps{BuildDir: t.TempDir()}); err == nil || !strings.Contains(err.Error(), "make build") {
		t.Errorf("a missing build said %v", err)
	}
}

// TestCdkNag applies the AwsSolutions pack: no error or warning may be left; every
// suppression in the stack carries its reason in the code.
func TestCdkNag(t *testing.T) {
	for name, props := range map[string]*stack.StoreCryptStackProps{
		"defaults":                          {},
		"s3-kms with trail and alarm email": {KeySource: contract.KeySourceS3KMS, Trail: true, AlarmEmail: "ops@example.com"},
	} {
		t.Run(name, func(t *testing.T) {
			app, _ := synth(t, props, true)
			artifact := app.Synth(nil).GetStackArtifact(jsii.String("StoreCrypt"))
			// Messages' type is deprecated in favour of @aws-cdk/cloud-assembly-api, which has
			// no Go binding yet.
			for _, m := range *artifact.Messages() {
				// The levels arrive upper-case (ERROR, WARNING) from this jsii version.
				level := strings.ToLower(string(m.Level)) //nolint:staticcheck // see above
				if level == "error" || level == "warning" {
					t.Errorf("%s %s: %v", level, *m.Id, m.Entry.Data) //nolint:staticcheck // see above
				}
			}
		})
	}
}

// TestAgentOutputPermissions: Run Command's CloudWatch output needs these on the
// instance's role ("Configuring Amazon CloudWatch Logs for Run Command"); without
// DescribeLogGroups the SSM agent streams nothing.
func TestAgentOutputPermissions(t *testing.T) {
	tpl, _ := template(t, &stack.StoreCryptStackProps{})
	tpl.HasResourceProperties(jsii.String("AWS::IAM::Policy"), map[string]any{"PolicyDocument": map[string]any{"Statement": assertions.Match_ArrayWith(&[]any{
		assertions.Match_ObjectLike(&map[string]any{"Sid": "StoreCryptCommandOutput",
			"Action": []string{"logs:CreateLogGroup", "logs:CreateLogStream", "logs:PutLogEvents", "logs:DescribeLogStreams"}}),
		assertions.Match_ObjectLike(&map[string]any{"Sid": "StoreCryptFindOutputGroup", "Action": "logs:DescribeLogGroups"}),
	})}})
}

// TestOutputs: the instance profile is output by its own name, which CloudFormation
// generates, not said to be the role's.
func TestOutputs(t *testing.T) {
	tpl, _ := template(t, &stack.StoreCryptStackProps{})
	tpl.HasOutput(jsii.String("InstanceProfileName"), map[string]any{"Value": map[string]any{"Ref": assertions.Match_AnyValue()}})
	tpl.HasOutput(jsii.String("InstanceProfileArn"), map[string]any{"Value": map[string]any{"Fn::GetAtt": assertions.Match_AnyValue()}})
	tpl.HasOutput(jsii.String("InstanceRoleArn"), map[string]any{"Description": "role for workloads"})
	for _, arch := range []string{"Amd64", "Arm64"} {
		tpl.HasOutput(jsii.String("Agent"+arch+"S3Url"), map[string]any{"Value": assertions.Match_AnyValue()})
		tpl.HasOutput(jsii.String("Agent"+arch+"Sha256"), map[string]any{"Value": assertions.Match_StringLikeRegexp(jsii.String("^[0-9a-f]{64}$"))})
	}
}

// TestScopeIsConfiguration: by default the roles alone are in scope (no opt-in tag) and
// opt-out tags are ignored; a stack that allows opt-outs alarms on them.
func TestScopeIsConfiguration(t *testing.T) {
	launchEnv := func(raw map[string]any) map[string]any {
		for _, r := range raw["Resources"].(map[string]any) {
			res := r.(map[string]any)
			p, _ := res["Properties"].(map[string]any)
			if res["Type"] == "AWS::Lambda::Function" && p["Description"] == "storecrypt launch function" {
				return p["Environment"].(map[string]any)["Variables"].(map[string]any)
			}
		}
		t.Fatal("no launch function")
		return nil
	}
	optedOutAlarms := func(raw map[string]any) int {
		n := 0
		for _, r := range raw["Resources"].(map[string]any) {
			res := r.(map[string]any)
			if p, _ := res["Properties"].(map[string]any); res["Type"] == "AWS::CloudWatch::Alarm" && p["MetricName"] == contract.MetricOptedOut {
				n++
			}
		}
		return n
	}
	_, raw := template(t, &stack.StoreCryptStackProps{})
	env := launchEnv(raw)
	if _, ok := env[contract.EnvOptInTag]; ok {
		t.Errorf("the default stack has an opt-in tag: %v", env[contract.EnvOptInTag])
	}
	if _, ok := env[contract.EnvAllowOptOut]; ok || optedOutAlarms(raw) != 0 {
		t.Errorf("the default stack allows opt-outs: %v", env)
	}
	_, raw = template(t, &stack.StoreCryptStackProps{OptInTag: contract.OptIn, AllowOptOut: true})
	env = launchEnv(raw)
	if env[contract.EnvOptInTag] != contract.OptIn || env[contract.EnvAllowOptOut] != "true" || optedOutAlarms(raw) != 1 {
		t.Errorf("opt-in and opt-out configured: env %v, %d OptedOut alarms", env, optedOutAlarms(raw))
	}
}

// TestLedgerTable: the ledger outlives mistakes (point-in-time recovery, deletion
// protection, retained when the stack goes), is encrypted under the stack's key, has the
// key the ledger package writes, and both functions are told its name.
func TestLedgerTable(t *testing.T) {
	tpl, raw := template(t, &stack.StoreCryptStackProps{})
	tpl.ResourceCountIs(jsii.String("AWS::DynamoDB::Table"), jsii.Number(1))
	want := ledger.Table("")
	var keys, attrs []map[string]any
	for _, k := range want.KeySchema {
		keys = append(keys, map[string]any{"AttributeName": *k.AttributeName, "KeyType": string(k.KeyType)})
	}
	for _, a := range want.AttributeDefinitions {
		attrs = append(attrs, map[string]any{"AttributeName": *a.AttributeName, "AttributeType": string(a.AttributeType)})
	}
	tpl.HasResource(jsii.String("AWS::DynamoDB::Table"), map[string]any{
		"DeletionPolicy": "Retain", "UpdateReplacePolicy": "Retain",
		"Properties": map[string]any{
			"KeySchema": keys, "AttributeDefinitions": attrs, "BillingMode": string(want.BillingMode),
			"PointInTimeRecoverySpecification": map[string]any{"PointInTimeRecoveryEnabled": true},
			"DeletionProtectionEnabled":        true,
			"SSESpecification": map[string]any{"SSEEnabled": true, "SSEType": "KMS",
				"KMSMasterKeyId": map[string]any{"Fn::GetAtt": []any{assertions.Match_StringLikeRegexp(jsii.String("^Key")), "Arn"}}},
		},
	})
	n := 0
	for _, r := range raw["Resources"].(map[string]any) {
		res := r.(map[string]any)
		if res["Type"] != "AWS::Lambda::Function" {
			continue
		}
		vars := res["Properties"].(map[string]any)["Environment"].(map[string]any)["Variables"].(map[string]any)
		if ref, _ := vars[contract.EnvLedgerTable].(map[string]any); ref["Ref"] == nil {
			t.Errorf("a function without %s: %v", contract.EnvLedgerTable, vars[contract.EnvLedgerTable])
		}
		n++
	}
	if n != 2 {
		t.Errorf("%d functions", n)
	}
	tpl.HasOutput(jsii.String(contract.OutputLedgerTable), map[string]any{"Value": map[string]any{"Ref": assertions.Match_AnyValue()}})
}

// TestSecurityHubOption: the functions file findings unless the stack says not to, and
// then lose the right to.
func TestSecurityHubOption(t *testing.T) {
	for _, tc := range []struct {
		props *stack.StoreCryptStackProps
		want  bool
	}{{&stack.StoreCryptStackProps{}, true}, {&stack.StoreCryptStackProps{NoSecurityHub: true}, false}} {
		_, raw := template(t, tc.props)
		b, _ := json.Marshal(raw["Resources"])
		if got := strings.Count(string(b), `"securityhub:BatchImportFindings"`); (got == 2) != tc.want || !tc.want && got != 0 {
			t.Errorf("NoSecurityHub=%v: %d statements allow BatchImportFindings", tc.props.NoSecurityHub, got)
		}
		if got := strings.Count(string(b), `"`+contract.EnvSecurityHub+`":"true"`); (got == 2) != tc.want || !tc.want && got != 0 {
			t.Errorf("NoSecurityHub=%v: %d functions told to file findings", tc.props.NoSecurityHub, got)
		}
	}
}
