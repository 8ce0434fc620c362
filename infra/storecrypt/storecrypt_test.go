package storecrypt_test

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/aws/aws-cdk-go/awscdk/v2"
	"github.com/aws/aws-cdk-go/awscdk/v2/assertions"
	"github.com/aws/aws-cdk-go/awscdk/v2/awssns"
	"github.com/aws/jsii-runtime-go"
	"github.com/cdklabs/cdk-nag-go/cdknag/v2"

	"github.com/storecrypt/storecrypt/infra/cdkcontext"
	"github.com/storecrypt/storecrypt/infra/storecrypt"
	"github.com/storecrypt/storecrypt/infra/storecrypt/storecrypttest"
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
	must(t, storecrypttest.BuildDir(dir))
	return dir
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func synth(t *testing.T, props *storecrypt.Props, nag bool) (awscdk.App, awscdk.Stack) {
	t.Helper()
	app := awscdk.NewApp(nil)
	if nag {
		awscdk.Aspects_Of(app).Add(cdknag.NewAwsSolutionsChecks(&cdknag.NagPackProps{Verbose: jsii.Bool(true)}), nil)
	}
	props.BuildDir = buildDir(t)
	s, err := appStack(app, "StoreCrypt", props)
	if err != nil {
		t.Fatal(err)
	}
	return app, s
}

// appStack adds storecrypt to a new stack as the app in infra/ does: as "Default", with
// the app's names unless props give others.
func appStack(app awscdk.App, id string, props *storecrypt.Props) (awscdk.Stack, error) {
	s := awscdk.NewStack(app, &id, &awscdk.StackProps{Env: &awscdk.Environment{Account: jsii.String("111122223333"), Region: jsii.String("us-east-1")}})
	cdkcontext.AppNames(props, id)
	_, err := storecrypt.New(context.Background(), s, "Default", props)
	return s, err
}

func template(t *testing.T, props *storecrypt.Props) (assertions.Template, map[string]any) {
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
	tpl, _ := template(t, &storecrypt.Props{})
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

// TestComponentTags: the example SCP finds the key, the functions and the document only by
// contract.TagComponent (their names and ARNs differ in every deployment); a resource
// without it would be open to whoever may change it.
func TestComponentTags(t *testing.T) {
	tpl, _ := template(t, &storecrypt.Props{Tags: map[string]string{"team": "platform"}})
	tagged := func(part string) map[string]any {
		return map[string]any{"Tags": assertions.Match_ArrayWith(&[]any{map[string]any{"Key": contract.TagComponent, "Value": part}})}
	}
	for _, tc := range []struct{ typ, part string }{
		{"AWS::KMS::Key", "key"},
		{"AWS::SSM::Document", "document"},
		{"AWS::Lambda::Function", "launch"},
		{"AWS::Lambda::Function", "result"},
	} {
		t.Run(tc.part, func(t *testing.T) {
			tpl.HasResourceProperties(jsii.String(tc.typ), tagged(tc.part))
		})
	}
}

func TestRulesAndQueue(t *testing.T) {
	tpl, _ := template(t, &storecrypt.Props{})
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
	tpl.ResourceCountIs(jsii.String("AWS::CloudWatch::Alarm"), jsii.Number(8))
	tpl.HasResourceProperties(jsii.String("AWS::CloudWatch::Alarm"), map[string]any{"Namespace": contract.MetricNamespace, "MetricName": contract.MetricBlocked})
}

// TestKeyPolicy: the statements are there.
// What each decides, for each caller and context, is test/conformance's
// TestKeyBindsEachVolumeToItsInstance, evaluated by the fake's own policy engine.
func TestKeyPolicy(t *testing.T) {
	sids := func(props *storecrypt.Props) []string {
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
	all := []string{"StoreCryptOwnVolumes", "StoreCryptOnlyTheOwningInstance", "StoreCryptOnlyFromAnInstance", "StoreCryptOnlyTheInstanceRoles", "StoreCryptOnlyDataKeyUse"}
	if got := sids(&storecrypt.Props{}); !containsAll(got, all) {
		t.Errorf("key policy statements %v, want %v among them", got, all)
	}
	tpl, _ := template(t, &storecrypt.Props{})
	tpl.HasResourceProperties(jsii.String("AWS::KMS::Key"), map[string]any{"EnableKeyRotation": true})
	tpl.HasResourceProperties(jsii.String("AWS::KMS::Alias"), map[string]any{"AliasName": "alias/storecrypt"})
	tpl.HasResourceProperties(jsii.String("AWS::IAM::Policy"), map[string]any{"PolicyDocument": map[string]any{"Statement": assertions.Match_ArrayWith(&[]any{
		assertions.Match_ObjectLike(&map[string]any{"Sid": "InspectTheKey", "Action": []string{"kms:DescribeKey", "kms:GetKeyPolicy", "kms:ListGrants"}}),
	})}})
}

// TestKeyPolicyWithInstanceRolePath: the key users' Allow names everyone, narrowed to the
// stack's role and the roles under the path of the stack's account; the roles' deny
// spares both. (Who they admit is TestIAMMatrix's.)
func TestKeyPolicyWithInstanceRolePath(t *testing.T) {
	tpl, _ := template(t, &storecrypt.Props{InstanceRolePath: "/storecrypt/instances/"})
	roles := assertions.Match_ArrayWith(&[]any{
		assertions.Match_ObjectLike(&map[string]any{"Fn::GetAtt": assertions.Match_ArrayWith(&[]any{"Arn"})}),
		map[string]any{"Fn::Join": []any{"", []any{"arn:", map[string]any{"Ref": "AWS::Partition"}, ":iam::111122223333:role/storecrypt/instances/*"}}},
	})
	tpl.HasResourceProperties(jsii.String("AWS::KMS::Key"), map[string]any{"KeyPolicy": map[string]any{"Statement": assertions.Match_ArrayWith(&[]any{
		assertions.Match_ObjectLike(&map[string]any{"Sid": "StoreCryptOwnVolumes", "Effect": "Allow", "Principal": map[string]any{"AWS": "*"},
			"Condition": assertions.Match_ObjectLike(&map[string]any{"ArnLike": map[string]any{"aws:PrincipalArn": roles}})}),
		assertions.Match_ObjectLike(&map[string]any{"Sid": "StoreCryptOnlyTheInstanceRoles", "Effect": "Deny",
			"Condition": assertions.Match_ObjectLike(&map[string]any{"ArnNotLike": map[string]any{"aws:PrincipalArn": roles}})}),
	})}})
}

// TestInstanceAccessPolicy: with an instance role path, the stack's role's statements
// besides the key are also a managed policy, named for the region under /storecrypt/,
// whose ARN is an output and in the launch function's environment; without a path there
// is none of it.
func TestInstanceAccessPolicy(t *testing.T) {
	for _, path := range []string{"", "/storecrypt/instances/"} {
		t.Run("path "+path, func(t *testing.T) {
			tpl, raw := template(t, &storecrypt.Props{InstanceRolePath: path})
			var roleStatements, policyStatements []map[string]any
			var names []any
			for id, r := range raw["Resources"].(map[string]any) {
				res := r.(map[string]any)
				props, _ := res["Properties"].(map[string]any)
				switch {
				case res["Type"] == "AWS::IAM::ManagedPolicy" && props["ManagedPolicyName"] != nil:
					names = append(names, props["ManagedPolicyName"], props["Path"])
					policyStatements = statements(map[string]any{"Resources": props})
				case res["Type"] == "AWS::IAM::Policy" && strings.HasPrefix(id, "InstanceRole"):
					roleStatements = statements(map[string]any{"Resources": props})
				}
			}
			outputs := raw["Outputs"].(map[string]any)
			if path == "" {
				if names != nil || outputs[contract.OutputInstanceAccessPolicyARN] != nil {
					t.Errorf("got an instance access policy %v without a path, want none", names)
				}
				tpl.HasResourceProperties(jsii.String("AWS::Lambda::Function"), map[string]any{"Description": "storecrypt launch function",
					"Environment": map[string]any{"Variables": assertions.Match_ObjectLike(&map[string]any{contract.EnvInstanceAccessPolicy: assertions.Match_Absent()})}})
				return
			}
			if want := []any{"storecrypt-instance-access-us-east-1", contract.InstanceAccessPolicyPath}; !reflect.DeepEqual(names, want) {
				t.Errorf("got an instance access policy named %v, want %v", names, want)
			}
			var own []map[string]any
			for _, st := range roleStatements {
				if !strings.HasPrefix(fmt.Sprint(st["Action"]), "[kms:") && !strings.HasPrefix(fmt.Sprint(st["Action"]), "kms:") {
					own = append(own, st)
				}
			}
			if len(policyStatements) == 0 || !reflect.DeepEqual(policyStatements, own) {
				t.Errorf("got the policy's statements %v, want the role's besides the key's, %v", policyStatements, own)
			}
			if outputs[contract.OutputInstanceAccessPolicyARN] == nil {
				t.Errorf("got outputs %v, want %s", outputs, contract.OutputInstanceAccessPolicyARN)
			}
			tpl.HasResourceProperties(jsii.String("AWS::Lambda::Function"), map[string]any{"Description": "storecrypt launch function",
				"Environment": map[string]any{"Variables": assertions.Match_ObjectLike(&map[string]any{
					contract.EnvInstanceAccessPolicy: map[string]any{"Ref": assertions.Match_AnyValue()},
					contract.EnvAgentObjects:         assertions.Match_StringLikeRegexp(jsii.String(`^s3://.*-amd64\.gz,s3://.*-arm64\.gz$`)),
				})}})
		})
	}
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
	for _, props := range []*storecrypt.Props{{}, {KeySource: contract.KeySourceS3KMS, Trail: true, AlarmEmail: "ops@example.com"}} {
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
	tpl, _ := template(t, &storecrypt.Props{})
	tpl.HasResourceProperties(jsii.String("AWS::IAM::ManagedPolicy"), map[string]any{"PolicyDocument": map[string]any{"Statement": assertions.Match_ArrayWith(&[]any{
		assertions.Match_ObjectLike(&map[string]any{"Sid": "RerunWithMFA", "Action": "ssm:SendCommand",
			"Condition": map[string]any{"Bool": map[string]any{"aws:MultiFactorAuthPresent": "true"}}}),
		assertions.Match_ObjectLike(&map[string]any{"Sid": "RerunFromIdentityCenter", "Action": "ssm:SendCommand",
			"Condition": map[string]any{"ArnLike": map[string]any{"aws:PrincipalArn": assertions.Match_AnyValue()}}}),
	})}})
}

func TestSecretBucket(t *testing.T) {
	tpl, raw := template(t, &storecrypt.Props{KeySource: contract.KeySourceS3KMS, SecretVPCEndpoint: "vpce-0123456789abcdef0"})
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
	tpl, _ := template(t, &storecrypt.Props{
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
	if _, err := appStack(app, "S", &storecrypt.Props{KeySource: "ephemeral", BuildDir: buildDir(t)}); err == nil {
		t.Error("ephemeral was accepted")
	}
	if _, err := appStack(app, "T", &storecrypt.Props{BuildDir: t.TempDir()}); err == nil || !strings.Contains(err.Error(), "make build") {
		t.Errorf("a missing build said %v", err)
	}
	// Each case below differs from this one, which is accepted, by one name.
	if _, err := appStack(app, "Good", &storecrypt.Props{Name: "x", BuildDir: buildDir(t)}); err != nil {
		t.Fatal(err)
	}
	for i, props := range []*storecrypt.Props{
		{Name: "x", LedgerTableName: "ledger"},
		{Name: "x", DocumentName: "AWS-storecrypt"},
		{Name: "x", DocumentName: "no spaces please"},
		{Name: "x", KeyAlias: "alias/aws/storecrypt"},
		{Name: "x", KeyAlias: "storecrypt"},
		{Name: "x", MetricNamespace: "AWS/storecrypt"},
		{Name: "x", MetricNamespace: ":storecrypt"},
		{Name: "x", LedgerTableName: "a b" + contract.LedgerTableSuffix},
		{Name: "x", KeySource: contract.KeySourceS3KMS, RequireInstanceNetwork: true},
		{Name: "x", InstanceRolePath: "/team*/"},
		{Name: "x", InstanceRolePath: "/storecrypt/"},
		{Name: "x", InstanceRolePath: "/storecrypt/instances/", KeySource: contract.KeySourceS3KMS},
		{Name: "x", InstanceRolePath: "/storecrypt/instances/", KeyARN: "arn:aws:kms:us-east-1:111122223333:key/11111111-2222-4333-8444-555555555555"},
	} {
		props.BuildDir = buildDir(t)
		if _, err := appStack(app, fmt.Sprintf("Bad%d", i), props); err == nil {
			t.Errorf("%+v was accepted", props)
		}
	}
}

// TestTwoInOneStack adds storecrypt twice to a stack of the user's own, as an importing
// app would: nothing the two create may share a physical name, each construct's alarms
// watch the namespace its functions publish into, outputs carry the construct's id, and
// tags and removal policy are the caller's.
func TestTwoInOneStack(t *testing.T) {
	app := awscdk.NewApp(nil)
	st := awscdk.NewStack(app, jsii.String("Platform"), &awscdk.StackProps{Env: &awscdk.Environment{Account: jsii.String("111122223333"), Region: jsii.String("us-east-1")}})
	awssns.NewTopic(st, jsii.String("Existing"), nil)
	prod, err := storecrypt.New(context.Background(), st, "Prod", &storecrypt.Props{BuildDir: buildDir(t), Tags: map[string]string{"team": "payments"}})
	must(t, err)
	staging, err := storecrypt.New(context.Background(), st, "Staging", &storecrypt.Props{BuildDir: buildDir(t), RemovalPolicy: awscdk.RemovalPolicy_DESTROY})
	must(t, err)
	for name, sc := range map[string]*storecrypt.StoreCrypt{"prod": prod, "staging": staging} {
		if sc.Key == nil || sc.Document == nil || len(sc.InstanceRoles) != 1 || sc.LaunchFunction == nil || sc.ResultFunction == nil ||
			sc.LaunchQueue == nil || len(sc.Alarms) < 7 || sc.Ledger == nil || sc.AgentLogs == nil || sc.OperatorPolicy == nil {
			t.Errorf("%s: New left a part unexposed: %+v", name, sc)
		}
	}
	b, err := json.Marshal(assertions.Template_FromStack(st, nil).ToJSON())
	must(t, err)
	var tpl struct {
		Resources map[string]struct {
			Type           string
			Properties     map[string]any
			DeletionPolicy string
		}
		Outputs map[string]any
	}
	must(t, json.Unmarshal(b, &tpl))
	names := map[string][]string{}
	for id, r := range tpl.Resources {
		var name any
		switch r.Type {
		case "AWS::KMS::Alias":
			name = r.Properties["AliasName"]
		case "AWS::SSM::Document":
			name = r.Properties["Name"]
		case "AWS::DynamoDB::Table":
			name = r.Properties["TableName"]
			if !strings.HasSuffix(name.(string), contract.LedgerTableSuffix) {
				t.Errorf("ledger %v does not end with %s", name, contract.LedgerTableSuffix)
			}
			protected := r.Properties["DeletionProtectionEnabled"] == true
			if strings.HasPrefix(id, "Staging") == protected {
				t.Errorf("%s: deletion protection %v under removal policy %s", id, protected, r.DeletionPolicy)
			}
		case "AWS::Lambda::Function":
			name = r.Properties["Environment"].(map[string]any)["Variables"].(map[string]any)[contract.EnvMetricNamespace]
		case "AWS::CloudWatch::Alarm":
			if ns, ok := r.Properties["Namespace"].(string); ok && !strings.HasPrefix(ns, "AWS/") {
				names[r.Type+" "+ns] = append(names[r.Type+" "+ns], id)
			}
		case "AWS::KMS::Key":
			if want := map[bool]string{true: "Delete", false: "Retain"}[strings.HasPrefix(id, "Staging")]; r.DeletionPolicy != want {
				t.Errorf("%s: DeletionPolicy %s, want %s", id, r.DeletionPolicy, want)
			}
			tags := fmt.Sprint(r.Properties["Tags"])
			if strings.HasPrefix(id, "Prod") != strings.Contains(tags, "payments") {
				t.Errorf("%s: tags %s", id, tags)
			}
		}
		if name != nil {
			names[r.Type+" "+fmt.Sprint(name)] = append(names[r.Type+" "+fmt.Sprint(name)], id)
		}
	}
	for _, typ := range []string{"AWS::KMS::Alias", "AWS::SSM::Document", "AWS::DynamoDB::Table"} {
		n := 0
		for k, ids := range names {
			if strings.HasPrefix(k, typ+" ") {
				n++
				if len(ids) != 1 {
					t.Errorf("%s is the name of %v", k, ids)
				}
			}
		}
		if n != 2 {
			t.Errorf("%d distinct %s names, want 2: %v", n, typ, names)
		}
	}
	// Each namespace the functions publish into is watched by alarms of the same construct.
	for k, ids := range names {
		ns, ok := strings.CutPrefix(k, "AWS::Lambda::Function ")
		if !ok {
			continue
		}
		alarms := names["AWS::CloudWatch::Alarm "+ns]
		if len(ids) != 2 || len(alarms) == 0 || !strings.HasPrefix(alarms[0], ids[0][:4]) {
			t.Errorf("namespace %s: functions %v, alarms %v", ns, ids, alarms)
		}
	}
	for _, key := range []string{"Prod" + contract.OutputKeyARN, "Staging" + contract.OutputKeyARN, "Prod" + contract.OutputDocumentName} {
		if tpl.Outputs[key] == nil {
			t.Errorf("no output %s", key)
		}
	}
}

// TestCdkNag applies the AwsSolutions pack: no error or warning may be left; every
// suppression in the stack carries its reason in the code.
func TestCdkNag(t *testing.T) {
	for name, props := range map[string]*storecrypt.Props{
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
	tpl, _ := template(t, &storecrypt.Props{})
	tpl.HasResourceProperties(jsii.String("AWS::IAM::Policy"), map[string]any{"PolicyDocument": map[string]any{"Statement": assertions.Match_ArrayWith(&[]any{
		assertions.Match_ObjectLike(&map[string]any{"Sid": "StoreCryptCommandOutput",
			"Action": []string{"logs:CreateLogGroup", "logs:CreateLogStream", "logs:PutLogEvents", "logs:DescribeLogStreams"}}),
		assertions.Match_ObjectLike(&map[string]any{"Sid": "StoreCryptFindOutputGroup", "Action": "logs:DescribeLogGroups"}),
	})}})
}

// TestOutputs: the instance profile is output by its own name, which CloudFormation
// generates, not said to be the role's.
func TestOutputs(t *testing.T) {
	tpl, _ := template(t, &storecrypt.Props{})
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
	_, raw := template(t, &storecrypt.Props{})
	env := launchEnv(raw)
	if _, ok := env[contract.EnvOptInTag]; ok {
		t.Errorf("the default stack has an opt-in tag: %v", env[contract.EnvOptInTag])
	}
	if _, ok := env[contract.EnvAllowOptOut]; ok || optedOutAlarms(raw) != 0 {
		t.Errorf("the default stack allows opt-outs: %v", env)
	}
	_, raw = template(t, &storecrypt.Props{OptInTag: contract.OptIn, AllowOptOut: true})
	env = launchEnv(raw)
	if env[contract.EnvOptInTag] != contract.OptIn || env[contract.EnvAllowOptOut] != "true" || optedOutAlarms(raw) != 1 {
		t.Errorf("opt-in and opt-out configured: env %v, %d OptedOut alarms", env, optedOutAlarms(raw))
	}
}

// TestLedgerTable: the ledger outlives mistakes (point-in-time recovery, deletion
// protection, retained when the stack goes), is encrypted under the stack's key, has the
// key the ledger package writes, and both functions are told its name.
func TestLedgerTable(t *testing.T) {
	tpl, raw := template(t, &storecrypt.Props{})
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
		props *storecrypt.Props
		want  bool
	}{{&storecrypt.Props{}, true}, {&storecrypt.Props{NoSecurityHub: true}, false}} {
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
