package publish_test

import (
	"archive/zip"
	"encoding/json"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/aws/aws-cdk-go/awscdk/v2"
	"github.com/aws/aws-cdk-go/awscdk/v2/awsiam"
	"github.com/aws/aws-cdk-go/awscdk/v2/awskms"
	"github.com/aws/jsii-runtime-go"

	"github.com/storecrypt/storecrypt/infra/artifact"
	"github.com/storecrypt/storecrypt/infra/cdkcontext"
	"github.com/storecrypt/storecrypt/infra/publish"
	"github.com/storecrypt/storecrypt/infra/storecrypt"
	"github.com/storecrypt/storecrypt/internal/contract"
	"github.com/storecrypt/storecrypt/internal/document"
	"github.com/storecrypt/storecrypt/internal/fakeaws"
	"github.com/storecrypt/storecrypt/test/cfn"
)

func TestMain(m *testing.M) {
	os.Setenv("JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION", "20")
	code := m.Run()
	jsii.Close()
	os.Exit(code)
}

// published runs publish.App as `make publish` does, over stand-ins for the code, with
// the stack props the app passes.
func published(t *testing.T, stackProps awscdk.StackProps) (dist string, tpl *cfn.Template, raw string) {
	t.Helper()
	build, dist := t.TempDir(), t.TempDir()
	if err := artifact.StandIns(build); err != nil {
		t.Fatal(err)
	}
	get := func(string) string { return "" }
	files, err := publish.App(awscdk.NewApp(nil), cdkcontext.StackName(get), stackProps, func(st awscdk.Stack) (*storecrypt.StoreCryptProps, error) {
		props, err := cdkcontext.Props(st, get)
		if err == nil {
			props.BuildDir = jsii.String(build)
		}
		return props, err
	}, dist)
	if err != nil {
		t.Fatal(err)
	}
	if files[0] != publish.Template || len(files) != 1+len(document.Architectures)+2 {
		t.Fatalf("wrote %v", files)
	}
	b, err := os.ReadFile(filepath.Join(dist, publish.Template))
	if err != nil {
		t.Fatal(err)
	}
	if tpl, err = cfn.Parse(b); err != nil {
		t.Fatal(err)
	}
	return dist, tpl, string(b)
}

// TestNoBootstrapNeeded: a member account of a StackSet has no CDK bootstrap stack, so
// the template may name no bootstrap bucket, version parameter or rule, and no asset.
func TestNoBootstrapNeeded(t *testing.T) {
	_, _, raw := published(t, awscdk.StackProps{})
	for _, ref := range []string{"hnb659fds", "cdk-bootstrap", "BootstrapVersion", "CheckBootstrapVersion", "AssetParameters", "aws:asset:", "CDKMetadata"} {
		if strings.Contains(raw, ref) {
			t.Errorf("the template holds %q", ref)
		}
	}
	var top map[string]any
	if err := json.Unmarshal([]byte(raw), &top); err != nil {
		t.Fatal(err)
	}
	// The bootstrap's rule is CheckBootstrapVersion (refused above by name); the
	// template's own rules are its parameters' checks.
	rules, _ := top["Rules"].(map[string]any)
	for name := range rules {
		if name != "InstanceRolePathHoldsNoFunctionRole" {
			t.Errorf("the template has rule %s, want only the parameters' checks", name)
		}
	}
	// A StackSet takes a template this size only by URL (TemplateBody stops at 51,200
	// bytes); a TemplateURL's template may be 460,800 bytes (CreateStackSet).
	if len(raw) > 460_800 {
		t.Errorf("the template is %d bytes, more than a TemplateURL takes", len(raw))
	}
}

// TestEnvironmentAgnostic: the CDK CLI gives the app the publisher's account and region
// (CDK_DEFAULT_ACCOUNT, CDK_DEFAULT_REGION), and the app makes them the stack's
// environment; a StackSet deploys the template into other accounts and regions, so none
// of it may name them: every ARN takes AWS::AccountId, AWS::Region (and the stack's name
// AWS::StackName) as deployed.
func TestEnvironmentAgnostic(t *testing.T) {
	const account, region = "444455556666", "eu-west-3"
	_, _, raw := published(t, awscdk.StackProps{Env: &awscdk.Environment{Account: jsii.String(account), Region: jsii.String(region)}})
	for _, s := range []string{account, region} {
		if strings.Contains(raw, s) {
			t.Errorf("the template names the publisher's %s", s)
		}
	}
}

// TestParametersCoverProps: every prop of the construct is a parameter of the template or
// a choice made once at publish time, with the reason it is not a parameter.
func TestParametersCoverProps(t *testing.T) {
	_, tpl, raw := published(t, awscdk.StackProps{})
	var doc struct {
		Parameters map[string]struct {
			Description, AllowedPattern string
			AllowedValues               []string
		}
		Metadata map[string]map[string]any
	}
	if err := json.Unmarshal([]byte(raw), &doc); err != nil {
		t.Fatal(err)
	}
	props := reflect.TypeFor[storecrypt.StoreCryptProps]()
	for i := range props.NumField() {
		name := props.Field(i).Name
		_, param := doc.Parameters[publish.ParameterOf(name)]
		reason := publish.AtPublish[name]
		switch {
		case param && reason != "":
			t.Errorf("%s is both a parameter and fixed at publish time", name)
		case !param && reason == "":
			t.Errorf("%s is neither a parameter of the template nor fixed at publish time with a reason", name)
		}
	}
	for name, p := range doc.Parameters {
		if p.Description == "" || p.AllowedPattern == "" && len(p.AllowedValues) == 0 {
			t.Errorf("parameter %s: no description, or neither a pattern nor allowed values", name)
		}
	}
	if len(tpl.Parameters) == 0 || doc.Metadata["storecrypt:published-with"]["KeySource"] != contract.KeySourceKMSDataKey {
		t.Errorf("the template does not record the publisher's choices: %v", doc.Metadata)
	}
}

// TestCodeFromTheBucket deploys the template (in every partition, with a code bucket
// prefix given) and checks that every object it reads is one Write put in dist, under
// the key the template names, in the deployment's region's bucket, and that the instance
// roles may read exactly the agents.
func TestCodeFromTheBucket(t *testing.T) {
	dist, tpl, _ := published(t, awscdk.StackProps{})
	p := tpl.Parameters["CodeBucketPrefix"]
	p.Default = "acme-code"
	tpl.Parameters["CodeBucketPrefix"] = p
	for _, env := range cfn.Partitions {
		r := tpl.In(env)
		bucket := "acme-code-" + env.Region
		object := func(key string) string {
			t.Helper()
			rest, ok := strings.CutPrefix(key, "storecrypt/")
			if !ok {
				t.Fatalf("%s is not under the CodePrefix", key)
			}
			path := filepath.Join(dist, filepath.FromSlash(rest))
			if _, err := os.Stat(path); err != nil {
				t.Errorf("%s: the template reads an object dist does not hold: %v", env.Partition, err)
			}
			return path
		}
		for _, id := range tpl.Of("AWS::Lambda::Function") {
			code, err := r.Eval(tpl.Resources[id].Properties["Code"])
			if err != nil {
				t.Fatal(err)
			}
			c := code.(map[string]any)
			if c["S3Bucket"] != bucket {
				t.Errorf("%s: %s reads its code from %v, want %s", env.Partition, id, c["S3Bucket"], bucket)
			}
			zr, err := zip.OpenReader(object(c["S3Key"].(string)))
			if err != nil {
				t.Fatal(err)
			}
			if len(zr.File) != 1 || zr.File[0].Name != "bootstrap" || zr.File[0].Mode().Perm() != 0o755 {
				t.Errorf("%s: the zip holds %v, want one executable bootstrap", id, zr.File)
			}
			zr.Close()
		}
		// The agents an instance of each architecture downloads, as the SSM Agent plans it.
		var agents []string
		for _, id := range tpl.Of("AWS::SSM::Document") {
			content, err := r.Eval(tpl.Resources[id].Properties["Content"])
			if err != nil {
				t.Fatal(err)
			}
			if params, _ := content.(map[string]any)["parameters"].(map[string]any); params[document.ArchitectureParameter] == nil {
				continue // a revocation document: it runs the installed agent, downloads nothing
			}
			b, _ := json.Marshal(content)
			for _, arch := range document.Architectures {
				plan, err := fakeaws.PlanCommand(string(b), map[string][]string{document.ArchitectureParameter: {arch}}, "Linux")
				if err != nil {
					t.Fatal(err)
				}
				urls, err := plan.Downloads()
				if err != nil {
					t.Fatal(err)
				}
				prefix := "https://s3." + env.Region + "." + env.URLSuffix() + "/" + bucket + "/"
				for _, url := range urls {
					key, ok := strings.CutPrefix(url, prefix)
					if !ok {
						t.Fatalf("%s: the agent is downloaded from %s, not from %s", env.Partition, url, prefix)
					}
					agents = append(agents, key)
				}
			}
		}
		if len(agents) != len(document.Architectures) {
			t.Fatalf("%s: agents %v", env.Partition, agents)
		}
		var readable []string
		for _, id := range tpl.Of("AWS::IAM::Policy") {
			policy, err := r.Eval(tpl.Resources[id].Properties["PolicyDocument"])
			if err != nil {
				t.Fatal(err)
			}
			for _, st := range policy.(map[string]any)["Statement"].([]any) {
				st := st.(map[string]any)
				if sid, _ := st["Sid"].(string); strings.HasPrefix(sid, "StoreCryptAgent") {
					readable = append(readable, st["Resource"].(string))
				}
			}
		}
		for _, key := range agents {
			object(key)
			if arn := "arn:" + env.Partition + ":s3:::" + bucket + "/" + key; !slices.Contains(readable, arn) {
				t.Errorf("%s: the instance roles may not read %s (they may read %v)", env.Partition, arn, readable)
			}
		}
	}
}

// TestSwitches: AllowOptOut, AlarmEmail, AlarmTopicArn and AuditorPrincipal are
// parameters whose resources are in the template under a condition: the OptedOut alarm
// and the launch function's setting; the topic, its subscription and an action of every
// alarm; another action of every alarm, the central topic of the alarm's own region; the
// auditor role and its policy, trusting the parameter's principal only from the
// organization.
func TestSwitches(t *testing.T) {
	_, parsed, raw := published(t, awscdk.StackProps{})
	central := parsed.Parameters["AlarmTopicArn"]
	central.Default = "arn:aws-us-gov:sns:us-gov-east-1:999988887777:org-alarms"
	parsed.Parameters["AlarmTopicArn"] = central
	inRegion := parsed.In(cfn.Env{Partition: "aws-us-gov", Region: "us-gov-west-1", Account: "111122223333"})
	var tpl struct {
		Conditions map[string]any
		Resources  map[string]struct {
			Type       string
			Condition  string
			Properties map[string]any
		}
	}
	if err := json.Unmarshal([]byte(raw), &tpl); err != nil {
		t.Fatal(err)
	}
	for _, c := range []string{"OptOutAllowed", "HasAlarmEmail", "HasAlarmTopicArn", "HasAuditor"} {
		if tpl.Conditions[c] == nil {
			t.Errorf("no condition %s", c)
		}
	}
	alarms, auditor := 0, 0
	var trust []byte
	for id, r := range tpl.Resources {
		if strings.HasPrefix(id, "AuditorRole") {
			auditor++
			if r.Condition != "HasAuditor" {
				t.Errorf("%s %s is not under HasAuditor", r.Type, id)
			}
			if r.Type == "AWS::IAM::Role" {
				trust, _ = json.Marshal(r.Properties["AssumeRolePolicyDocument"])
			}
		}
		switch r.Type {
		case "AWS::SNS::Topic", "AWS::SNS::Subscription", "AWS::SNS::TopicPolicy":
			if r.Condition != "HasAlarmEmail" {
				t.Errorf("%s %s is not under HasAlarmEmail", r.Type, id)
			}
		case "AWS::CloudWatch::Alarm":
			alarms++
			actions, _ := r.Properties["AlarmActions"].([]any)
			if len(actions) != 2 {
				t.Fatalf("alarm %s: got actions %v, want the email topic's and the central one's", id, r.Properties["AlarmActions"])
			}
			for i, cond := range []string{"HasAlarmEmail", "HasAlarmTopicArn"} {
				fn, _ := actions[i].(map[string]any)["Fn::If"].([]any)
				if len(fn) != 3 || fn[0] != cond || !reflect.DeepEqual(fn[2], map[string]any{"Ref": "AWS::NoValue"}) {
					t.Errorf("alarm %s: got action %v, want one under %s", id, actions[i], cond)
				}
				if cond != "HasAlarmTopicArn" || len(fn) != 3 {
					continue
				}
				got, err := inRegion.Eval(fn[1])
				if want := "arn:aws-us-gov:sns:us-gov-west-1:999988887777:org-alarms"; err != nil || got != want {
					t.Errorf("alarm %s: got central action %v (%v), want %s: the parameter's topic in the alarm's region", id, got, err, want)
				}
			}
			if want := map[bool]string{true: "OptOutAllowed"}[r.Properties["MetricName"] == contract.MetricOptedOut]; r.Condition != want {
				t.Errorf("alarm %s: condition %q, want %q", id, r.Condition, want)
			}
		case "AWS::Lambda::Function":
			env := r.Properties["Environment"].(map[string]any)["Variables"].(map[string]any)
			if _, launch := env[contract.EnvQueueURL]; launch && !reflect.DeepEqual(env[contract.EnvAllowOptOut], map[string]any{"Ref": "AllowOptOut"}) {
				t.Errorf("the launch function's %s is %v", contract.EnvAllowOptOut, env[contract.EnvAllowOptOut])
			}
		}
	}
	if alarms != 9 {
		t.Errorf("%d alarms, want the eight and OptedOut", alarms)
	}
	if auditor != 2 {
		t.Errorf("%d resources of the auditor role, want the role and its policy", auditor)
	}
	if want := `"Condition":{"StringEquals":{"aws:PrincipalOrgID":"${aws:ResourceOrgID}"}},"Effect":"Allow","Principal":{"AWS":{"Ref":"AuditorPrincipal"}}`; !strings.Contains(string(trust), want) {
		t.Errorf("the auditor's trust %s; want it to hold %s", trust, want)
	}
}

// TestOneAccountsResourcesRefused: an existing key or role ARN names one account, and
// the template goes to many; a release's code is already published.
func TestOneAccountsResourcesRefused(t *testing.T) {
	for _, tc := range []struct {
		name  string
		props func(awscdk.Stack) *storecrypt.StoreCryptProps
		want  string
	}{
		{"key", func(st awscdk.Stack) *storecrypt.StoreCryptProps {
			return &storecrypt.StoreCryptProps{Key: awskms.Key_FromKeyArn(st, jsii.String("K"), jsii.String("arn:aws:kms:us-east-1:111122223333:key/1234abcd-12ab-34cd-56ef-1234567890ab"))}
		}, "optInTag"},
		{"role", func(st awscdk.Stack) *storecrypt.StoreCryptProps {
			return &storecrypt.StoreCryptProps{InstanceRoles: &[]awsiam.IRole{awsiam.Role_FromRoleArn(st, jsii.String("R"), jsii.String("arn:aws:iam::111122223333:role/app"), nil)}}
		}, "optInTag"},
		{"release", func(awscdk.Stack) *storecrypt.StoreCryptProps {
			return &storecrypt.StoreCryptProps{Release: &storecrypt.Release{Path: jsii.String("storecrypt-v1.0.0.tar.gz"), Sha256: jsii.String(strings.Repeat("0", 64))}}
		}, "a release already holds a published template"},
	} {
		propsFor := func(st awscdk.Stack) (*storecrypt.StoreCryptProps, error) {
			p := tc.props(st)
			p.BuildDir = jsii.String(t.TempDir())
			return p, nil
		}
		if _, err := publish.App(awscdk.NewApp(nil), "StoreCrypt", awscdk.StackProps{}, propsFor, t.TempDir()); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: got %v, want the refusal naming %q", tc.name, err, tc.want)
		}
	}
}

// TestInstanceRolePathParameter: the parameter takes what the construct takes of a path
// (contract.CheckInstanceRolePath), and empty: its pattern and length say IAM's rule, and
// the template's rule refuses the paths that hold storecrypt's function roles. The
// instance access policy and its output exist only with a path, and the parameter's
// description names the policy.
func TestInstanceRolePathParameter(t *testing.T) {
	_, parsed, raw := published(t, awscdk.StackProps{})
	for path, want := range map[string]int{"": 0, "/storecrypt/instances/": 1} {
		env := cfn.Partitions[0]
		env.Parameters = map[string]string{"InstanceRolePath": path}
		r := parsed.In(env)
		var got []string
		for _, id := range r.Of("AWS::IAM::ManagedPolicy") {
			if name, ok := r.Resources[id].Properties["ManagedPolicyName"]; ok {
				if n, err := r.String(name); err != nil || n != contract.InstanceAccessPolicyName(env.Region) {
					t.Errorf("path %q: got a managed policy named %q (%v), want %s", path, n, err, contract.InstanceAccessPolicyName(env.Region))
				}
				got = append(got, id)
			}
		}
		out, err := r.Holds(parsed.Outputs[contract.OutputInstanceAccessPolicyARN].Condition)
		if len(got) != want || out != (want == 1) || err != nil {
			t.Errorf("path %q: got instance access policies %v, output %v (%v), want %d", path, got, out, err, want)
		}
	}
	var tpl struct {
		Parameters map[string]struct {
			AllowedPattern, Default, Description string
			MaxLength                            int
		}
		Rules map[string]struct{ Assertions []struct{ Assert any } }
	}
	if err := json.Unmarshal([]byte(raw), &tpl); err != nil {
		t.Fatal(err)
	}
	p := tpl.Parameters["InstanceRolePath"]
	pattern := regexp.MustCompile(p.AllowedPattern)
	b, _ := json.Marshal(tpl.Rules["InstanceRolePathHoldsNoFunctionRole"].Assertions)
	var taken []string
	for _, s := range contract.RolePathPrefixes() {
		if strings.Contains(string(b), `"`+s+`"`) {
			taken = append(taken, s)
		}
	}
	for _, path := range []string{"", "/storecrypt/instances/", "/teams/a/b/", "/", "//", "storecrypt/", "/x", "/a b/", "/a*/", "/a?/", "/${aws:username}/",
		"/storecrypt/", "/storecrypt/functions/", "/" + strings.Repeat("a", 510) + "/", "/" + strings.Repeat("a", 511) + "/"} {
		got := pattern.MatchString(path) && len(path) <= p.MaxLength && !slices.Contains(taken, path)
		want := path == "" || contract.CheckInstanceRolePath(path) == nil
		if got != want {
			t.Errorf("InstanceRolePath %.30q: got accepted %v, want %v", path, got, want)
		}
	}
	if p.Default != "" {
		t.Errorf("InstanceRolePath defaults to %q, want empty (the stack's role alone)", p.Default)
	}
	if want := contract.InstanceAccessPolicyName("<region>"); !strings.Contains(p.Description, want) {
		t.Errorf("InstanceRolePath's description %q, want it to name %s", p.Description, want)
	}
}
