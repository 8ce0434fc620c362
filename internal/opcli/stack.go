package opcli

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/cloudformation"
	ec2types "github.com/aws/aws-sdk-go-v2/service/ec2/types"
	"github.com/aws/smithy-go"

	"github.com/storecrypt/storecrypt/internal/binding"
	"github.com/storecrypt/storecrypt/internal/contract"
	"github.com/storecrypt/storecrypt/internal/fleet"
)

// CloudFormation is the part of the CloudFormation client the CLI uses: the stack's
// outputs say what is in scope and what proves an instance encrypted.
type CloudFormation interface {
	DescribeStacks(ctx context.Context, in *cloudformation.DescribeStacksInput, optFns ...func(*cloudformation.Options)) (*cloudformation.DescribeStacksOutput, error)
	ListExports(ctx context.Context, in *cloudformation.ListExportsInput, optFns ...func(*cloudformation.Options)) (*cloudformation.ListExportsOutput, error)
}

// stackName is the stack the commands read: --stack when given, else the one stack of
// this account and region that exports storecrypt's mark (contract.StackExport). Found
// once, it is kept for the messages that name it.
func (e *env) stackName(ctx context.Context) (string, error) {
	if e.stack != "" {
		return e.stack, nil
	}
	found := map[string]bool{}
	p := cloudformation.NewListExportsPaginator(e.CloudFormation, &cloudformation.ListExportsInput{})
	for p.HasMorePages() {
		page, err := p.NextPage(ctx)
		if err != nil {
			return "", fmt.Errorf("finding the storecrypt stack (or give its name with --stack): %w", err)
		}
		for _, x := range page.Exports {
			if name, ok := markedStack(aws.ToString(x.Name), aws.ToString(x.ExportingStackId)); ok {
				found[name] = true
			}
		}
	}
	names := slices.Sorted(maps.Keys(found))
	switch len(names) {
	case 0:
		return "", fmt.Errorf("no storecrypt stack in this account and region (no export ends with :%s): pass --stack with the stack's name (and --region), or deploy storecrypt", contract.StackExport)
	case 1:
		e.stack = names[0]
		return e.stack, nil
	}
	return "", usageErr(fmt.Sprintf("%d storecrypt stacks in this account and region (%s): choose one with --stack", len(names), strings.Join(names, ", ")))
}

// markedStack is the name of the stack that exported name, when name is storecrypt's mark
// (<stack>:storecrypt or <stack>:storecrypt:<construct id>). The stack's name is read from
// its ARN (arn:…:stack/NAME/ID), which CloudFormation writes, not from the export's name,
// which the stack's author chose.
func markedStack(name, stackID string) (string, bool) {
	_, mark, ok := strings.Cut(name, ":")
	if !ok || (mark != contract.StackExport && !strings.HasPrefix(mark, contract.StackExport+":")) {
		return "", false
	}
	_, resource, ok := strings.Cut(stackID, ":stack/")
	if !ok {
		return "", false
	}
	stack, _, _ := strings.Cut(resource, "/")
	return stack, stack != ""
}

// stackConfig is the deployed stack's configuration, from its outputs.
type stackConfig struct {
	fleet.Rule
	KeyARN, KeySource    string
	DocumentName, Digest string
	Secret               string
	LedgerTable          string
	AgentLogGroup        string
}

// readStack reads the stack's outputs. Only the outputs every command relies on are
// required; a command that needs another checks it is there.
func readStack(ctx context.Context, e *env) (stackConfig, error) {
	o, err := stackOutputs(ctx, e)
	if err != nil {
		return stackConfig{}, err
	}
	name := e.stack
	var sc stackConfig
	var roles, optIn string
	for key, dst := range map[string]*string{
		contract.OutputKeyARN: &sc.KeyARN, contract.OutputKeySource: &sc.KeySource, contract.OutputDocumentName: &sc.DocumentName,
		contract.OutputDocumentDigest: &sc.Digest, contract.OutputSecret: &sc.Secret, contract.OutputLedgerTable: &sc.LedgerTable,
		contract.OutputAgentLogGroup: &sc.AgentLogGroup, contract.OutputInstanceRoleARNs: &roles, contract.OutputOptInTag: &optIn,
	} {
		if *dst, err = o.get(key); err != nil {
			return stackConfig{}, fmt.Errorf("reading stack %s: %w", name, err)
		}
	}
	for _, r := range strings.Split(roles, ",") {
		if r = strings.TrimSpace(r); r != "" {
			sc.Roles = append(sc.Roles, r)
		}
	}
	if optIn != "" {
		sc.OptInKey, sc.OptInValue, _ = strings.Cut(optIn, "=")
	}
	if sc.KeyARN == "" || sc.DocumentName == "" || sc.Digest == "" || len(sc.Roles) == 0 {
		return stackConfig{}, fmt.Errorf("stack %s lacks the outputs storecrypt reads (%s, %s, %s, %s): is it a storecrypt stack of this version?",
			name, contract.OutputKeyARN, contract.OutputDocumentName, contract.OutputDocumentDigest, contract.OutputInstanceRoleARNs)
	}
	return sc, nil
}

// outputs are a stack's outputs by key.
type outputs map[string]string

// stackOutputs reads the outputs of the stack called name. A stack that does not exist is
// the usual mistake (another name, another region, not deployed yet), so it gets one line
// that says what to do.
func stackOutputs(ctx context.Context, e *env) (outputs, error) {
	name, err := e.stackName(ctx)
	if err != nil {
		return nil, err
	}
	out, err := e.CloudFormation.DescribeStacks(ctx, &cloudformation.DescribeStacksInput{StackName: aws.String(name)})
	var apiErr smithy.APIError
	// CloudFormation has no error code of its own for a missing stack: it answers
	// ValidationError "Stack with id NAME does not exist".
	if errors.As(err, &apiErr) && apiErr.ErrorCode() == "ValidationError" && strings.Contains(apiErr.ErrorMessage(), "does not exist") {
		return nil, fmt.Errorf("no stack %s in this account and region: pass --stack with the name storecrypt was deployed as (and --region), or deploy storecrypt", name)
	}
	if err != nil {
		return nil, fmt.Errorf("reading stack %s (give the stack's name with --stack): %w", name, err)
	}
	if len(out.Stacks) != 1 {
		return nil, fmt.Errorf("reading stack %s: %d stacks answered", name, len(out.Stacks))
	}
	o := outputs{}
	for _, kv := range out.Stacks[0].Outputs {
		o[aws.ToString(kv.OutputKey)] = aws.ToString(kv.OutputValue)
	}
	return o, nil
}

// ownOutputs are every output the stack makes whose name ends with another's
// (RevokeDocumentName ends with DocumentName): get leaves a key that ends with the longer
// name to that one.
var ownOutputs = []string{
	contract.OutputRevokeDocumentName, contract.OutputResumeDocumentName, contract.OutputShredDocumentName,
}

// get is the output named name, "" when there is none. storecrypt built into another
// stack has its output keys prefixed (WebTierKeyArn), so the only key that ends with the
// name counts too, unless it ends with a longer name of storecrypt's own
// (WebTierRevokeDocumentName is not WebTier's DocumentName); two such keys are a choice
// storecrypt will not guess.
func (o outputs) get(name string) (string, error) {
	if v, ok := o[name]; ok {
		return v, nil
	}
	var keys []string
	for k := range o {
		if strings.HasSuffix(k, name) && !slices.ContainsFunc(ownOutputs, func(own string) bool {
			return len(own) > len(name) && strings.HasSuffix(own, name) && strings.HasSuffix(k, own)
		}) {
			keys = append(keys, k)
		}
	}
	switch len(keys) {
	case 0:
		return "", nil
	case 1:
		return o[keys[0]], nil
	}
	slices.Sort(keys)
	return "", fmt.Errorf("outputs %s all end with %s, and storecrypt cannot tell which is its own", strings.Join(keys, ", "), name)
}

// tracked is an instance the stack is responsible for, or has written a status on.
type tracked struct {
	ec2types.Instance
	tags    map[string]string
	inScope bool // running, in scope, with instance store
}

// listTracked lists every running instance in the stack's scope that has instance store,
// whether or not any storecrypt tag is on it, and every instance that carries a
// storecrypt status. Scope is the stack's: its roles, and its opt-in tag if it has one.
func listTracked(ctx context.Context, e *env, sc stackConfig) ([]tracked, error) {
	byID := map[string]ec2types.Instance{}
	for _, f := range []ec2types.Filter{fleet.RunningFilter(), {Name: aws.String("tag-key"), Values: []string{contract.TagStatus}}} {
		found, err := fleet.Describe(ctx, e.EC2, []ec2types.Filter{f}, nil)
		if err != nil {
			return nil, err
		}
		maps.Copy(byID, found)
	}
	store := &fleet.InstanceStore{EC2: e.EC2}
	if err := store.Learn(ctx, fleet.TypesOf(slices.Collect(maps.Values(byID)))); err != nil {
		return nil, err
	}
	roles := e.roles()
	var out []tracked
	for _, i := range byID {
		t := tracked{Instance: i, tags: fleet.Tags(i.Tags)}
		if i.State != nil && i.State.Name == ec2types.InstanceStateNameRunning && has(store, i.InstanceType) {
			var err error
			if t.inScope, _, err = sc.In(ctx, roles, t.tags, fleet.Profile(i)); err != nil {
				return nil, err
			}
		}
		if t.inScope || t.tags[contract.TagStatus] != "" {
			out = append(out, t)
		}
	}
	sort.Slice(out, func(a, b int) bool { return aws.ToString(out[a].InstanceId) < aws.ToString(out[b].InstanceId) })
	return out, nil
}

// roles resolves instance profiles to roles, each profile once a command.
func (e *env) roles() *binding.Roles {
	return &binding.Roles{IAM: e.IAM, TTL: time.Hour}
}

// has says whether the type has instance store, as far as the store learnt; a type EC2
// did not describe has none storecrypt can use.
func has(store *fleet.InstanceStore, t ec2types.InstanceType) bool {
	has, _ := store.Has(t)
	return has
}
