package conformance

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/aws/aws-cdk-go/awscdk/v2"
	"github.com/aws/aws-cdk-go/awscdk/v2/assertions"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/jsii-runtime-go"

	"github.com/storecrypt/storecrypt/infra/artifact"
	"github.com/storecrypt/storecrypt/infra/cdkcontext"
	"github.com/storecrypt/storecrypt/infra/publish"
	"github.com/storecrypt/storecrypt/infra/storecrypt"
	"github.com/storecrypt/storecrypt/internal/contract"
	"github.com/storecrypt/storecrypt/internal/fakeaws"
	"github.com/storecrypt/storecrypt/internal/ledger"
	"github.com/storecrypt/storecrypt/internal/release"
	"github.com/storecrypt/storecrypt/test/cfn"
	"github.com/storecrypt/storecrypt/test/emu"
)

// variant is one way the tests synthesize the stack: its key source, whether it sets
// RequireInstanceNetwork, and whether it is the template `make publish` writes for a
// StackSet.
type variant struct {
	source             string
	network, published bool
}

// networkBound is the stack with RequireInstanceNetwork on; stackSetTemplate is the StackSet
// template with the app's defaults.
var (
	networkBound     = variant{source: contract.KeySourceKMSDataKey, network: true}
	stackSetTemplate = variant{source: contract.KeySourceKMSDataKey, published: true}
)

// templates are the stack synthesized once per variant, environment-agnostic, so each
// partition's pseudo parameters can fill it in.
var templates = map[variant]*cfn.Template{}

func TestMain(m *testing.M) {
	os.Setenv("JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION", "20")
	err := synthesize()
	code := 1
	if err == nil {
		code = m.Run()
	} else {
		fmt.Fprintln(os.Stderr, "synthesizing the stack:", err)
	}
	jsii.Close()
	os.Exit(code)
}

func synthesize() error {
	dir, err := os.MkdirTemp("", "storecrypt-conformance-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	if err := artifact.StandIns(dir); err != nil {
		return err
	}
	for _, v := range []variant{{source: contract.KeySourceKMSDataKey}, {source: contract.KeySourceS3KMS}, networkBound} {
		app := awscdk.NewApp(nil)
		s := awscdk.NewStack(app, jsii.String("StoreCrypt"), nil)
		// As the app adds it: "Default" keeps the logical IDs the tests find resources by.
		props := &storecrypt.StoreCryptProps{BuildDir: &dir, KeySource: storecrypt.KeySource(v.source), Trail: jsii.Bool(true), OptInTag: jsii.String(contract.OptIn),
			AllowOptOut: jsii.Bool(true), ComplianceItems: jsii.Bool(true), RequireInstanceNetwork: jsii.Bool(v.network), AuditorPrincipal: jsii.String(centralAccount)}
		cdkcontext.AppNames(props, "StoreCrypt")
		sc := storecrypt.NewStoreCrypt(s, jsii.String("Default"), props)
		if errs := *sc.Node().Validate(); len(errs) > 0 {
			return fmt.Errorf("storecrypt: %s", *errs[0])
		}
		b, err := json.Marshal(assertions.Template_FromStack(s, nil).ToJSON())
		if err != nil {
			return err
		}
		if templates[v], err = cfn.Parse(b); err != nil {
			return err
		}
	}
	return publishTemplate(dir)
}

// distFiles is what `make publish` wrote, each file at its path below dist/.
var distFiles []release.File

// publishTemplate writes the StackSet template as `make publish` does, with the app's
// defaults and the code bucket prefix a publisher would pass.
func publishTemplate(build string) error {
	dist, err := os.MkdirTemp("", "storecrypt-conformance-dist-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dist)
	get := func(string) string { return "" }
	propsFor := func(st awscdk.Stack) (*storecrypt.StoreCryptProps, error) {
		props, err := cdkcontext.Props(st, get)
		if err == nil {
			props.BuildDir = &build
		}
		return props, err
	}
	if _, err := publish.App(awscdk.NewApp(nil), cdkcontext.StackName(get), awscdk.StackProps{}, propsFor, dist); err != nil {
		return fmt.Errorf("publishing: %w", err)
	}
	if distFiles, err = release.ReadDir(dist, ""); err != nil {
		return err
	}
	tpl, err := cfn.Load(filepath.Join(dist, publish.Template))
	if err != nil {
		return err
	}
	p := tpl.Parameters["CodeBucketPrefix"]
	p.Default = "acme-storecrypt"
	tpl.Parameters["CodeBucketPrefix"] = p
	templates[stackSetTemplate] = tpl
	return nil
}

// deployment is one template deployed into one partition: the names and policies the
// tests need, resolved.
type deployment struct {
	cfn.Resolved
	source                        string
	keyARN, keyPolicy             string
	instanceRole, instanceProfile string
	launchRole, resultRole        string
	launchEnv, resultEnv          map[string]string
	documentName, document        string
	revocationDocuments           map[string]string   // name -> content: revoke, resume, shred
	policies                      map[string][]string // role ARN -> its identity policies
	instanceManaged               []string            // the instance role's managed policy ARNs
	operatorPolicy                string
	shredPolicy                   string // the right to shred, apart from the operator's
	// instanceAccess is the instance access policy (with an instance role path), and
	// instanceAccessARN its ARN.
	instanceAccess, instanceAccessARN string
	secretBucketPolicy, secretBucket  string
	secretBucketKey                   bool              // the secret bucket's SSE-KMS uses an S3 Bucket Key
	outputs                           map[string]string // the stack's outputs, resolved
	exports                           map[string]string // output key -> its export's name, resolved
	tableKeys                         map[string]string // DynamoDB table name -> its customer managed key
}

func deploy(t *testing.T, source string, env cfn.Env) *deployment {
	t.Helper()
	return deployVariant(t, variant{source: source}, env)
}

func deployVariant(t *testing.T, v variant, env cfn.Env) *deployment {
	t.Helper()
	r := templates[v].In(env)
	d := &deployment{Resolved: r, source: v.source, policies: map[string][]string{}, outputs: map[string]string{}, exports: map[string]string{}, tableKeys: map[string]string{}}
	must := func(v string, err error) string {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
	one := func(typ string) string {
		t.Helper()
		ids := r.Of(typ)
		if len(ids) != 1 {
			t.Fatalf("%d resources of type %s, want 1", len(ids), typ)
		}
		return ids[0]
	}
	key := one("AWS::KMS::Key")
	d.keyARN = must(r.String(map[string]any{"Fn::GetAtt": []any{key, "Arn"}}))
	d.keyPolicy = d.json(t, r.Resources[key].Properties["KeyPolicy"])
	profile := one("AWS::IAM::InstanceProfile")
	d.instanceProfile = must(r.String(map[string]any{"Fn::GetAtt": []any{profile, "Arn"}}))
	roles, _ := r.Eval(r.Resources[profile].Properties["Roles"])
	d.instanceRole = must(r.RoleARN(fmt.Sprint(roles.([]any)[0])))
	for _, id := range r.Of("AWS::IAM::Role") {
		if arn, _ := r.String(map[string]any{"Fn::GetAtt": []any{id, "Arn"}}); arn == d.instanceRole {
			managed, err := r.Eval(r.Resources[id].Properties["ManagedPolicyArns"])
			if err != nil {
				t.Fatal(err)
			}
			for _, arn := range managed.([]any) {
				d.instanceManaged = append(d.instanceManaged, fmt.Sprint(arn))
			}
		}
	}
	for _, id := range r.Of("AWS::Lambda::Function") {
		desc, _ := r.Resources[id].Properties["Description"].(string)
		role := must(r.String(r.Resources[id].Properties["Role"]))
		vars, err := r.Eval(r.Resources[id].Properties["Environment"].(map[string]any)["Variables"])
		if err != nil {
			t.Fatal(err)
		}
		envVars := map[string]string{}
		for k, v := range vars.(map[string]any) {
			envVars[k] = fmt.Sprint(v)
		}
		switch desc {
		case "storecrypt launch function":
			d.launchRole, d.launchEnv = role, envVars
		case "storecrypt result function":
			d.resultRole, d.resultEnv = role, envVars
		}
	}
	for _, id := range r.Of("AWS::IAM::Policy") {
		doc := d.json(t, r.Resources[id].Properties["PolicyDocument"])
		attached, _ := r.Eval(r.Resources[id].Properties["Roles"])
		for _, name := range attached.([]any) {
			arn := must(r.RoleARN(fmt.Sprint(name)))
			d.policies[arn] = append(d.policies[arn], doc)
		}
	}
	// The operator policy, the shred policy (found by its description), and with an
	// instance role path the instance access policy, the one a team finds by its name.
	for _, id := range r.Of("AWS::IAM::ManagedPolicy") {
		doc := d.json(t, r.Resources[id].Properties["PolicyDocument"])
		name, named := r.Resources[id].Properties["ManagedPolicyName"]
		switch {
		case named && must(r.String(name)) == contract.InstanceAccessPolicyName(env.Region):
			d.instanceAccess, d.instanceAccessARN = doc, must(r.String(map[string]any{"Ref": id}))
		case strings.HasPrefix(fmt.Sprint(r.Resources[id].Properties["Description"]), shredPolicyDescription):
			d.shredPolicy = doc
		case d.operatorPolicy == "":
			d.operatorPolicy = doc
		default:
			t.Fatalf("managed policy %s besides the operator's, the shred policy and the instance access policy", id)
		}
	}
	for _, id := range r.Of("AWS::DynamoDB::Table") {
		sse, _ := r.Resources[id].Properties["SSESpecification"].(map[string]any)
		if key, ok := sse["KMSMasterKeyId"]; ok {
			d.tableKeys[must(r.String(map[string]any{"Ref": id}))] = must(r.String(key))
		}
	}
	for name, o := range r.Outputs {
		if made, err := r.Holds(o.Condition); err != nil {
			t.Fatal(err)
		} else if !made {
			continue
		}
		d.outputs[name] = must(r.String(o.Value))
		if o.Export != nil {
			d.exports[name] = must(r.String(o.Export.Name))
		}
	}
	// The apply document, beside the revoke, resume and shred documents.
	doc := ""
	d.revocationDocuments = map[string]string{}
	for _, id := range r.Of("AWS::SSM::Document") {
		name := must(r.String(r.Resources[id].Properties["Name"]))
		if name == d.launchEnv[contract.EnvDocumentName] {
			doc = id
			continue
		}
		d.revocationDocuments[name] = d.json(t, r.Resources[id].Properties["Content"])
	}
	if doc == "" {
		t.Fatalf("no SSM document is the launch function's %s", d.launchEnv[contract.EnvDocumentName])
	}
	d.documentName = must(r.String(r.Resources[doc].Properties["Name"]))
	d.document = d.json(t, r.Resources[doc].Properties["Content"])
	if secret := d.launchEnv[contract.EnvSecret]; secret != "" {
		d.secretBucket = strings.SplitN(strings.TrimPrefix(secret, "s3://"), "/", 2)[0]
		for _, id := range r.Of("AWS::S3::Bucket") {
			if name, err := r.String(map[string]any{"Ref": id}); err == nil && name == d.secretBucket {
				enc, _ := r.Eval(r.Resources[id].Properties["BucketEncryption"])
				d.secretBucketKey = strings.Contains(fmt.Sprint(enc), "BucketKeyEnabled:true")
			}
		}
		for _, id := range r.Of("AWS::S3::BucketPolicy") {
			if b := must(r.String(r.Resources[id].Properties["Bucket"])); b == d.secretBucket {
				d.secretBucketPolicy = d.json(t, r.Resources[id].Properties["PolicyDocument"])
			}
		}
	}
	return d
}

// json resolves a template value and encodes it.
func (d *deployment) json(t *testing.T, v any) string {
	t.Helper()
	out, err := d.Eval(v)
	if err != nil {
		t.Fatalf("resolving %v: %v", v, err)
	}
	b, err := json.Marshal(out)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// world is a fresh account with the deployment in it: the key and its policy, the
// instance role with its policies and profile, a role that is no key user, the document
// as its first version, the stack with its outputs, and Security Hub enabled.
func (d *deployment) world(t *testing.T) *fakeaws.World {
	w := fakeaws.NewAccountIn(t, d.Env.Partition, d.Env.Region)
	w.Keys = map[string]*fakeaws.Key{d.keyARN: {ARN: d.keyARN, State: "Enabled", Policy: d.keyPolicy}}
	w.Roles[d.instanceRole] = &fakeaws.Role{ARN: d.instanceRole, Policies: d.policies[d.instanceRole], ManagedPolicies: d.instanceManaged}
	w.Profiles[d.instanceProfile] = d.instanceRole
	w.AddDocument(d.documentName, d.document, true)
	for name, content := range d.revocationDocuments {
		w.AddDocument(name, content, true)
	}
	w.AddStack(d.Env.Stack(), d.outputs)
	for key, name := range d.exports {
		if err := w.Export(d.Env.Stack(), key, name); err != nil {
			t.Fatal(err)
		}
	}
	w.TableKeys = d.tableKeys
	w.SecurityHubEnabled = true
	return w
}

// ledger is the deployment's ledger table in a dynalite of its own, made as the stack
// makes it: the function's ledger, whose every call w logs for the permission checks, and
// the test's own, to read what the function wrote.
func (d *deployment) ledger(t *testing.T, w *fakeaws.World) (fn, test *ledger.Ledger) {
	t.Helper()
	name := d.launchEnv[contract.EnvLedgerTable]
	if name == "" || d.resultEnv[contract.EnvLedgerTable] != name {
		t.Fatalf("the functions name ledger tables %q and %q", name, d.resultEnv[contract.EnvLedgerTable])
	}
	db := emu.StartDynamoDB(t)
	if err := db.CreateTable(context.Background(), ledger.Table(name)); err != nil {
		t.Fatal(err)
	}
	client := dynamodb.New(db.Client.Options(), func(o *dynamodb.Options) { o.APIOptions = append(o.APIOptions, w.Record) })
	return &ledger.Ledger{DB: client, Table: name}, &ledger.Ledger{DB: db.Client, Table: name}
}
