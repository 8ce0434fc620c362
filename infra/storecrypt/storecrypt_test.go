package storecrypt_test

import (
	"encoding/json"
	"fmt"
	"maps"
	"os"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/aws/aws-cdk-go/awscdk/v2"
	"github.com/aws/aws-cdk-go/awscdk/v2/assertions"
	"github.com/aws/aws-cdk-go/awscdk/v2/awsiam"
	"github.com/aws/aws-cdk-go/awscdk/v2/awskms"
	"github.com/aws/aws-cdk-go/awscdk/v2/awssns"
	"github.com/aws/jsii-runtime-go"
	"github.com/cdklabs/cdk-nag-go/cdknag/v2"

	"github.com/storecrypt/storecrypt/infra/artifact"
	"github.com/storecrypt/storecrypt/infra/cdkcontext"
	"github.com/storecrypt/storecrypt/infra/storecrypt"
	"github.com/storecrypt/storecrypt/internal/contract"
	"github.com/storecrypt/storecrypt/internal/document"
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
	must(t, artifact.StandIns(dir))
	return dir
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func synth(t *testing.T, props *storecrypt.StoreCryptProps, nag bool) (awscdk.App, awscdk.Stack) {
	t.Helper()
	app := awscdk.NewApp(nil)
	if nag {
		awscdk.Aspects_Of(app).Add(cdknag.NewAwsSolutionsChecks(&cdknag.NagPackProps{Verbose: jsii.Bool(true)}), nil)
	}
	props.BuildDir = jsii.String(buildDir(t))
	s := appStack(app, "StoreCrypt", props)
	if errs := *s.Node().Validate(); len(errs) > 0 {
		t.Fatal(*errs[0])
	}
	return app, s
}

// appStack adds storecrypt to a new stack as the app in infra/ does: as "Default", with
// the app's names unless props give others.
func appStack(app awscdk.App, id string, props *storecrypt.StoreCryptProps) awscdk.Stack {
	s := awscdk.NewStack(app, &id, &awscdk.StackProps{Env: &awscdk.Environment{Account: jsii.String("111122223333"), Region: jsii.String("us-east-1")}})
	cdkcontext.AppNames(props, id)
	storecrypt.NewStoreCrypt(s, jsii.String("Default"), props)
	return s
}

// elsewhere is a stack of another app to import resources by ARN in: the construct takes
// them as CDK objects, and an imported one's ARN is the literal it was imported with.
func elsewhere() awscdk.Stack {
	return awscdk.NewStack(awscdk.NewApp(nil), jsii.String("Elsewhere"), nil)
}

func importedKey(arn string) awskms.IKey {
	return awskms.Key_FromKeyArn(elsewhere(), jsii.String("Key"), jsii.String(arn))
}

func importedTopic(arn string) awssns.ITopic {
	return awssns.Topic_FromTopicArn(elsewhere(), jsii.String("Topic"), jsii.String(arn))
}

func template(t *testing.T, props *storecrypt.StoreCryptProps) (assertions.Template, map[string]any) {
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
	tpl, _ := template(t, &storecrypt.StoreCryptProps{})
	tpl.ResourceCountIs(jsii.String("AWS::Lambda::Function"), jsii.Number(2))
	tpl.AllResourcesProperties(jsii.String("AWS::Lambda::Function"), map[string]any{
		"Runtime": "provided.al2023", "Architectures": []string{"arm64"}, "Handler": "bootstrap",
		"Environment": map[string]any{"Variables": assertions.Match_ObjectLike(&map[string]any{contract.EnvGOGC: contract.FunctionGOGC})},
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
	tpl, _ := template(t, &storecrypt.StoreCryptProps{Tags: &map[string]*string{"team": jsii.String("platform")}})
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
	tpl, _ := template(t, &storecrypt.StoreCryptProps{})
	tpl.HasResourceProperties(jsii.String("AWS::Events::Rule"), map[string]any{"EventPattern": map[string]any{
		"source": []string{"aws.ec2"}, "detail-type": []string{"EC2 Instance State-change Notification"},
		"detail": map[string]any{"state": []string{"running"}, "instance-id": []any{map[string]any{"prefix": "i-"}}},
	}})
	tpl.HasResourceProperties(jsii.String("AWS::Events::Rule"), map[string]any{"EventPattern": map[string]any{
		"source": []string{"aws.ssm"}, "detail-type": []string{"EC2 Command Invocation Status-change Notification"},
		"detail": map[string]any{"document-name": []string{contract.DocumentName, contract.DocumentRevoke, contract.DocumentResume, contract.DocumentShred}, "status": contract.FinalInvocationStatuses},
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
	sids := func(props *storecrypt.StoreCryptProps) []string {
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
	if got := sids(&storecrypt.StoreCryptProps{}); !containsAll(got, all) {
		t.Errorf("key policy statements %v, want %v among them", got, all)
	}
	tpl, _ := template(t, &storecrypt.StoreCryptProps{})
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
	tpl, _ := template(t, &storecrypt.StoreCryptProps{InstanceRolePath: jsii.String("/storecrypt/instances/")})
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
			props := &storecrypt.StoreCryptProps{}
			if path != "" {
				props.InstanceRolePath = &path
			}
			tpl, raw := template(t, props)
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
	for _, props := range []*storecrypt.StoreCryptProps{{}, {KeySource: storecrypt.KeySourceS3KMS, Trail: jsii.Bool(true), AlarmEmail: jsii.String("ops@example.com"), AuditorPrincipal: jsii.String("999988887777")}} {
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
				// The apply document and the revocation documents (the shred's in a policy of its own).
				named := strings.Contains(res, "document/"+contract.DocumentName) || strings.Contains(res, "document/"+contract.DocumentShred)
				if !named || !strings.Contains(res, "instance/*") || strings.Contains(res, "document/*") {
					t.Errorf("SendCommand not scoped to the document: %v", res)
				}
			}
			if slices.Contains(cfn.Actions(st), "ec2:CreateTags") && !strings.Contains(fmt.Sprint(st["Condition"]), "storecrypt:*") {
				t.Errorf("CreateTags without the storecrypt:* tag-key condition: %v", st)
			}
		}
	}
}

// TestAuditorRole: with AuditorPrincipal the stack has the role report --accounts
// assumes, named by its region, at the path /, sessions of at most an hour; an account is
// trusted only from this account's organization, a role as named; without it, no role.
func TestAuditorRole(t *testing.T) {
	orgOnly := map[string]any{"StringEquals": map[string]any{"aws:PrincipalOrgID": "${aws:ResourceOrgID}"}}
	for _, tc := range []struct {
		principal string
		trusted   any
		condition any
	}{
		{"999988887777", map[string]any{"Fn::Join": []any{"", []any{"arn:", map[string]any{"Ref": "AWS::Partition"}, ":iam::999988887777:root"}}}, orgOnly},
		{"arn:aws:iam::999988887777:role/auditor", "arn:aws:iam::999988887777:role/auditor", assertions.Match_Absent()},
	} {
		t.Run(tc.principal, func(t *testing.T) {
			tpl, _ := template(t, &storecrypt.StoreCryptProps{AuditorPrincipal: jsii.String(tc.principal)})
			tpl.HasResourceProperties(jsii.String("AWS::IAM::Role"), map[string]any{
				"RoleName": contract.AuditorRoleName("us-east-1"), "MaxSessionDuration": 3600, "Path": assertions.Match_Absent(),
				"AssumeRolePolicyDocument": map[string]any{"Statement": []any{map[string]any{
					"Effect": "Allow", "Action": "sts:AssumeRole", "Principal": map[string]any{"AWS": tc.trusted}, "Condition": tc.condition}}},
			})
		})
	}
	tpl, _ := template(t, &storecrypt.StoreCryptProps{})
	if roles := tpl.FindResources(jsii.String("AWS::IAM::Role"), map[string]any{"Properties": map[string]any{"RoleName": contract.AuditorRoleName("us-east-1")}}); len(*roles) != 0 {
		t.Errorf("got an auditor role without AuditorPrincipal: %v", *roles)
	}
}

func TestOperatorPolicyNeedsMFA(t *testing.T) {
	tpl, _ := template(t, &storecrypt.StoreCryptProps{})
	tpl.HasResourceProperties(jsii.String("AWS::IAM::ManagedPolicy"), map[string]any{"PolicyDocument": map[string]any{"Statement": assertions.Match_ArrayWith(&[]any{
		assertions.Match_ObjectLike(&map[string]any{"Sid": "RerunWithMFA", "Action": "ssm:SendCommand",
			"Condition": map[string]any{"Bool": map[string]any{"aws:MultiFactorAuthPresent": "true"}}}),
		assertions.Match_ObjectLike(&map[string]any{"Sid": "RerunFromIdentityCenter", "Action": "ssm:SendCommand",
			"Condition": map[string]any{"ArnLike": map[string]any{"aws:PrincipalArn": assertions.Match_AnyValue()}}}),
	})}})
}

func TestSecretBucket(t *testing.T) {
	tpl, raw := template(t, &storecrypt.StoreCryptProps{KeySource: storecrypt.KeySourceS3KMS, SecretVPCEndpoint: jsii.String("vpce-0123456789abcdef0")})
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
	tpl, _ := template(t, &storecrypt.StoreCryptProps{
		Key:           importedKey("arn:aws:kms:us-east-1:111122223333:key/11111111-2222-4333-8444-555555555555"),
		InstanceRoles: &[]awsiam.IRole{awsiam.Role_FromRoleArn(elsewhere(), jsii.String("App"), jsii.String("arn:aws:iam::111122223333:role/app"), nil)},
	})
	tpl.ResourceCountIs(jsii.String("AWS::KMS::Key"), jsii.Number(0))
	tpl.ResourceCountIs(jsii.String("AWS::IAM::InstanceProfile"), jsii.Number(0))
	tpl.HasResourceProperties(jsii.String("AWS::IAM::Policy"), map[string]any{
		"Roles":          []string{"app"},
		"PolicyDocument": map[string]any{"Statement": assertions.Match_ArrayWith(&[]any{assertions.Match_ObjectLike(&map[string]any{"Sid": "StoreCryptOwnVolumes"})})},
	})
}

// TestCentralAlarmTopic: with AlarmTopic every alarm notifies that topic, beside the
// email topic when there is one.
func TestCentralAlarmTopic(t *testing.T) {
	const central = "arn:aws:sns:us-east-1:999988887777:org-alarms"
	_, raw := template(t, &storecrypt.StoreCryptProps{AlarmTopic: importedTopic(central), AlarmEmail: jsii.String("ops@example.com")})
	alarms := 0
	for id, r := range raw["Resources"].(map[string]any) {
		r := r.(map[string]any)
		if r["Type"] != "AWS::CloudWatch::Alarm" {
			continue
		}
		alarms++
		actions, _ := r["Properties"].(map[string]any)["AlarmActions"].([]any)
		if len(actions) != 2 || !slices.Contains(actions, any(central)) {
			t.Errorf("alarm %s: got actions %v, want the email topic and %s", id, actions, central)
		}
	}
	if alarms == 0 {
		t.Fatal("no alarms")
	}
}

// synthError synthesizes an app of props (the app's names, unless props give others)
// and returns why the synth failed, "" if it did not. NewStoreCrypt itself must not
// panic: a CDK construct reports bad props through the synth.
func synthError(t *testing.T, props *storecrypt.StoreCryptProps) (msg string) {
	t.Helper()
	app := awscdk.NewApp(&awscdk.AppProps{Outdir: jsii.String(t.TempDir())})
	appStack(app, "S", props)
	defer func() {
		if r := recover(); r != nil {
			msg = fmt.Sprint(r)
		}
	}()
	app.Synth(nil)
	return ""
}

func TestBadProps(t *testing.T) {
	const keyARN = "arn:aws:kms:us-east-1:111122223333:key/11111111-2222-4333-8444-555555555555"
	for _, tc := range []struct {
		name  string
		props storecrypt.StoreCryptProps
		want  string
	}{
		{"ephemeral", storecrypt.StoreCryptProps{KeySource: "ephemeral"}, `keySource "ephemeral"`},
		{"no build", storecrypt.StoreCryptProps{BuildDir: jsii.String(t.TempDir())}, "make build"},
		{"unknown filesystem", storecrypt.StoreCryptProps{Filesystem: "btrfs"}, `filesystem "btrfs"`},
		{"unknown layout", storecrypt.StoreCryptProps{Layout: "raid5"}, `layout "raid5"`},
		{"ledger suffix", storecrypt.StoreCryptProps{LedgerTableName: jsii.String("ledger")}, `ledger table name "ledger"`},
		{"document aws prefix", storecrypt.StoreCryptProps{DocumentName: jsii.String("AWS-storecrypt")}, "document name"},
		{"document spaces", storecrypt.StoreCryptProps{DocumentName: jsii.String("no spaces please")}, "document name"},
		{"alias aws prefix", storecrypt.StoreCryptProps{KeyAlias: jsii.String("alias/aws/storecrypt")}, "key alias"},
		{"alias without alias/", storecrypt.StoreCryptProps{KeyAlias: jsii.String("storecrypt")}, "key alias"},
		{"namespace AWS/", storecrypt.StoreCryptProps{MetricNamespace: jsii.String("AWS/storecrypt")}, "metric namespace"},
		{"namespace colon", storecrypt.StoreCryptProps{MetricNamespace: jsii.String(":storecrypt")}, "metric namespace"},
		{"ledger space", storecrypt.StoreCryptProps{LedgerTableName: jsii.String("a b" + contract.LedgerTableSuffix)}, "ledger table name"},
		{"network with s3-kms", storecrypt.StoreCryptProps{KeySource: storecrypt.KeySourceS3KMS, RequireInstanceNetwork: jsii.Bool(true)}, "requireInstanceNetwork"},
		{"path wildcard", storecrypt.StoreCryptProps{InstanceRolePath: jsii.String("/team*/")}, "/team*/"},
		{"path of the functions", storecrypt.StoreCryptProps{InstanceRolePath: jsii.String("/storecrypt/")}, "/storecrypt/"},
		{"path with s3-kms", storecrypt.StoreCryptProps{InstanceRolePath: jsii.String("/storecrypt/instances/"), KeySource: storecrypt.KeySourceS3KMS}, "instanceRolePath"},
		{"path with a key", storecrypt.StoreCryptProps{InstanceRolePath: jsii.String("/storecrypt/instances/"), Key: importedKey(keyARN)}, "instanceRolePath"},
		{"topic of SQS", storecrypt.StoreCryptProps{AlarmTopic: importedTopic("arn:aws:sqs:us-east-1:999988887777:alarms")}, "alarmTopic"},
		{"auditor short", storecrypt.StoreCryptProps{AuditorPrincipal: jsii.String("9999888877")}, "auditorPrincipal"},
		{"auditor user", storecrypt.StoreCryptProps{AuditorPrincipal: jsii.String("arn:aws:iam::999988887777:user/alice")}, "auditorPrincipal"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			// Each case differs from the accepted props by what it names.
			props := tc.props
			props.Name = jsii.String("x")
			if props.BuildDir == nil {
				props.BuildDir = jsii.String(buildDir(t))
			}
			if got := synthError(t, &props); !strings.Contains(got, tc.want) {
				t.Errorf("got synth error %q, want one containing %q", got, tc.want)
			}
		})
	}
	if got := synthError(t, &storecrypt.StoreCryptProps{Name: jsii.String("x"), BuildDir: jsii.String(buildDir(t))}); got != "" {
		t.Errorf("got synth error %q for good props, want none", got)
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
	prod := storecrypt.NewStoreCrypt(st, jsii.String("Prod"), &storecrypt.StoreCryptProps{BuildDir: jsii.String(buildDir(t)), Tags: &map[string]*string{"team": jsii.String("payments")}})
	staging := storecrypt.NewStoreCrypt(st, jsii.String("Staging"), &storecrypt.StoreCryptProps{BuildDir: jsii.String(buildDir(t)), RemovalPolicy: awscdk.RemovalPolicy_DESTROY})
	for name, sc := range map[string]storecrypt.StoreCrypt{"prod": prod, "staging": staging} {
		if sc.Key() == nil || sc.Document() == nil || len(sc.InstanceRoles()) != 1 || sc.InstanceProfile() == nil || sc.LaunchFunction() == nil || sc.ResultFunction() == nil ||
			sc.LaunchQueue() == nil || sc.LaunchDeadLetterQueue() == nil || sc.ResultDeadLetterQueue() == nil || len(sc.Alarms()) < 7 ||
			sc.Ledger() == nil || sc.AgentLogs() == nil || sc.OperatorPolicy() == nil || sc.ShredPolicy() == nil || *sc.DocumentName() == "" {
			t.Errorf("%s: NewStoreCrypt left a part unexposed", name)
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
		want := 2
		if typ == "AWS::SSM::Document" {
			want *= 1 + len(contract.RevocationDocuments) // apply, revoke, resume, shred
		}
		if n != want {
			t.Errorf("got %d distinct %s names, want %d: %v", n, typ, want, names)
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
	for name, props := range map[string]*storecrypt.StoreCryptProps{
		"defaults": {},
		"s3-kms with trail, alarm email and auditor": {KeySource: storecrypt.KeySourceS3KMS, Trail: jsii.Bool(true), AlarmEmail: jsii.String("ops@example.com"), AuditorPrincipal: jsii.String("999988887777")},
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
	tpl, _ := template(t, &storecrypt.StoreCryptProps{})
	tpl.HasResourceProperties(jsii.String("AWS::IAM::Policy"), map[string]any{"PolicyDocument": map[string]any{"Statement": assertions.Match_ArrayWith(&[]any{
		assertions.Match_ObjectLike(&map[string]any{"Sid": "StoreCryptCommandOutput",
			"Action": []string{"logs:CreateLogGroup", "logs:CreateLogStream", "logs:PutLogEvents", "logs:DescribeLogStreams"}}),
		assertions.Match_ObjectLike(&map[string]any{"Sid": "StoreCryptFindOutputGroup", "Action": "logs:DescribeLogGroups"}),
	})}})
}

// TestOutputs: the instance profile is output by its own name, which CloudFormation
// generates, not said to be the role's.
func TestOutputs(t *testing.T) {
	tpl, _ := template(t, &storecrypt.StoreCryptProps{})
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
	_, raw := template(t, &storecrypt.StoreCryptProps{})
	env := launchEnv(raw)
	if _, ok := env[contract.EnvOptInTag]; ok {
		t.Errorf("the default stack has an opt-in tag: %v", env[contract.EnvOptInTag])
	}
	if _, ok := env[contract.EnvAllowOptOut]; ok || optedOutAlarms(raw) != 0 {
		t.Errorf("the default stack allows opt-outs: %v", env)
	}
	_, raw = template(t, &storecrypt.StoreCryptProps{OptInTag: jsii.String(contract.OptIn), AllowOptOut: jsii.Bool(true)})
	env = launchEnv(raw)
	if env[contract.EnvOptInTag] != contract.OptIn || env[contract.EnvAllowOptOut] != "true" || optedOutAlarms(raw) != 1 {
		t.Errorf("opt-in and opt-out configured: env %v, %d OptedOut alarms", env, optedOutAlarms(raw))
	}
}

// TestLedgerTable: the ledger outlives mistakes (point-in-time recovery, deletion
// protection, retained when the stack goes), is encrypted under the stack's key, has the
// key the ledger package writes, and both functions are told its name.
func TestLedgerTable(t *testing.T) {
	tpl, raw := template(t, &storecrypt.StoreCryptProps{})
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
		props *storecrypt.StoreCryptProps
		want  bool
	}{{&storecrypt.StoreCryptProps{}, true}, {&storecrypt.StoreCryptProps{SecurityHub: jsii.Bool(true)}, true}, {&storecrypt.StoreCryptProps{SecurityHub: jsii.Bool(false)}, false}} {
		_, raw := template(t, tc.props)
		b, _ := json.Marshal(raw["Resources"])
		if got := strings.Count(string(b), `"securityhub:BatchImportFindings"`); (got == 2) != tc.want || !tc.want && got != 0 {
			t.Errorf("SecurityHub=%v: got %d statements allowing BatchImportFindings, want them only if true", tc.props.WithDefaults().SecurityHub != nil && *tc.props.WithDefaults().SecurityHub, got)
		}
		if got := strings.Count(string(b), `"`+contract.EnvSecurityHub+`":"true"`); (got == 2) != tc.want || !tc.want && got != 0 {
			t.Errorf("SecurityHub=%v: got %d functions told to file findings, want them only if true", *tc.props.WithDefaults().SecurityHub, got)
		}
	}
}

// TestDocumentDefaults: the filesystem, layout, fast-format and mount point props are the
// document's defaults, which a console rerun applies unless told otherwise, and what the
// launch function sends (it sends every parameter, so it must carry them itself).
func TestDocumentDefaults(t *testing.T) {
	for _, tc := range []struct {
		name  string
		props storecrypt.StoreCryptProps
		want  map[string]string
	}{
		{"defaults", storecrypt.StoreCryptProps{}, map[string]string{"Filesystem": "ext4", "Layout": "raid0", "MountPoint": "/mnt/instance-store", "FastFormat": "false"}},
		{"set", storecrypt.StoreCryptProps{Filesystem: storecrypt.FilesystemXFS, Layout: storecrypt.LayoutPerDisk, MountPoint: jsii.String("/data"), FastFormat: jsii.Bool(true)},
			map[string]string{"Filesystem": "xfs", "Layout": "per-disk", "MountPoint": "/data", "FastFormat": "true"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, raw := template(t, &tc.props)
			launches := 0
			for id, r := range raw["Resources"].(map[string]any) {
				res := r.(map[string]any)
				if env, ok := launchEnv(res); ok {
					launches++
					sent := contract.DefaultAgentOptions()
					if err := sent.SetStackChoices(func(k string) string { s, _ := env[k].(string); return s }); err != nil {
						t.Fatal(err)
					}
					for name, want := range tc.want {
						if got := sent.DocumentValues()[name][0]; got != want {
							t.Errorf("the launch function %s sends %s=%s, want the stack's %s", id, name, got, want)
						}
					}
				}
				if res["Type"] != "AWS::SSM::Document" {
					continue
				}
				params := res["Properties"].(map[string]any)["Content"].(map[string]any)["parameters"].(map[string]any)
				if _, apply := params["KeySource"]; !apply {
					continue // a revocation document: its parameters are the responder's
				}
				for name, want := range tc.want {
					if got := params[name].(map[string]any)["default"]; got != want {
						t.Errorf("document %s: got %s default %v, want %s", id, name, got, want)
					}
				}
			}
			if launches != 1 {
				t.Errorf("%d launch functions, want 1", launches)
			}
		})
	}
}

// launchEnv is the environment of res when it is the launch function: the one that takes
// the launch queue.
func launchEnv(res map[string]any) (map[string]any, bool) {
	if res["Type"] != "AWS::Lambda::Function" {
		return nil, false
	}
	env, _ := res["Properties"].(map[string]any)["Environment"].(map[string]any)["Variables"].(map[string]any)
	_, launch := env[contract.EnvQueueURL]
	return env, launch
}

// TestIsAConstruct: what NewStoreCrypt returns is a construct as CDK's own are: a scope
// for the caller's constructs, and a target of Tags_Of that reaches its resources.
func TestIsAConstruct(t *testing.T) {
	app := awscdk.NewApp(nil)
	st := awscdk.NewStack(app, jsii.String("Platform"), nil)
	sc := storecrypt.NewStoreCrypt(st, jsii.String("InstanceStore"), &storecrypt.StoreCryptProps{BuildDir: jsii.String(buildDir(t))})
	awssns.NewTopic(sc, jsii.String("Mine"), nil)
	awscdk.Tags_Of(sc).Add(jsii.String("owner"), jsii.String("platform-team"), nil)
	tpl := assertions.Template_FromStack(st, nil)
	tpl.HasResourceProperties(jsii.String("AWS::KMS::Key"), map[string]any{
		"Tags": assertions.Match_ArrayWith(&[]any{map[string]any{"Key": "owner", "Value": "platform-team"}}),
	})
	if got := *sc.Node().FindChild(jsii.String("Mine")).Node().Path(); got != "Platform/InstanceStore/Mine" {
		t.Errorf("got the caller's topic at %s, want Platform/InstanceStore/Mine", got)
	}
}

// TestRevocationDocuments: the stack deploys the revoke, resume and shred documents
// under the app's names, outputs their names and the digests of the content deployed
// (the CLI sends only a version with that content), and gives the result function each
// name with that digest (which it alone trusts), leave to read them, and their results
// through the invocation rule.
func TestRevocationDocuments(t *testing.T) {
	_, raw := template(t, &storecrypt.StoreCryptProps{})
	resources, outputs := raw["Resources"].(map[string]any), raw["Outputs"].(map[string]any)
	contents := map[string]any{}
	var resultEnv map[string]any
	for _, r := range resources {
		res := r.(map[string]any)
		props, _ := res["Properties"].(map[string]any)
		switch res["Type"] {
		case "AWS::SSM::Document":
			contents[fmt.Sprint(props["Name"])] = props["Content"]
		case "AWS::Lambda::Function":
			if env := props["Environment"].(map[string]any)["Variables"].(map[string]any); env[contract.RevocationDocuments[0].EnvName] != nil {
				resultEnv = env
			}
		}
	}
	for _, d := range contract.RevocationDocuments {
		content, ok := contents[d.Default]
		if !ok {
			t.Errorf("got documents %v, want %s", slices.Collect(maps.Keys(contents)), d.Default)
			continue
		}
		digest, err := document.Digest(content)
		must(t, err)
		if resultEnv[d.EnvName] != d.Default || resultEnv[d.EnvDigest] != digest {
			t.Errorf("%s: got the result function's %s=%v, %s=%v, want %s and the deployed content's digest %s", d.Default, d.EnvName, resultEnv[d.EnvName], d.EnvDigest, resultEnv[d.EnvDigest], d.Default, digest)
		}
		if o, _ := outputs[d.Output].(map[string]any); o == nil || o["Value"] != d.Default {
			t.Errorf("%s: got output %s %v, want its name", d.Default, d.Output, outputs[d.Output])
		}
		// The CLI sends only a version with this content: the digest the result function
		// trusts, of the content deployed.
		if o, _ := outputs[d.OutputDigest].(map[string]any); o == nil || o["Value"] != digest {
			t.Errorf("%s: got output %s %v, want the deployed content's digest %s", d.Default, d.OutputDigest, outputs[d.OutputDigest], digest)
		}
		if got := fmt.Sprint(content.(map[string]any)["mainSteps"]); !strings.Contains(got, contract.AgentPath) || strings.Contains(got, "aws:downloadContent") {
			t.Errorf("%s: got steps %s, want the installed agent run and nothing downloaded", d.Default, got)
		}
	}
	if got := fmt.Sprint(resources); !strings.Contains(got, "ReadTheRevocationDocuments") {
		t.Errorf("got no statement ReadTheRevocationDocuments in the template, want the result function to read the documents it trusts")
	}
}
