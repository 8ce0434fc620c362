// Package cfn reads a synthesized CloudFormation template the way a deployment would see
// it: intrinsic functions (Ref, Fn::GetAtt, Fn::Join, Fn::Sub, Fn::Select, Fn::Split,
// Fn::If on the template's conditions, AWS::NoValue) are evaluated with pseudo
// parameters for a chosen partition, region and account, and with parameter values, and
// each resource gets a physical name and ARN in the shape its service gives them
// (CloudFormation's "Ref" and "Fn::GetAtt" return values per resource type). The demo
// and the conformance tests use it to run the functions with the environment the
// template gives them, and to check their calls against the policies it grants.
package cfn

import (
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"os"
	"regexp"
	"slices"
	"sort"
	"strings"

	"github.com/storecrypt/storecrypt/internal/contract"
)

// Env is where the template is deployed, and under which stack name.
type Env struct {
	Partition, Region, Account string
	// StackName is AWS::StackName; "" is the app's default stack name. A StackSet names
	// each stack instance StackSet-<stack set name>-<id>, never what the template was
	// synthesized as.
	StackName string
	// Parameters are the values given to the template's parameters; any other takes its
	// default.
	Parameters map[string]string
}

// Partitions are one region of each partition, for tests that deploy everywhere.
var Partitions = []Env{
	{Partition: "aws", Region: "us-east-1", Account: "111122223333"},
	{Partition: "aws-cn", Region: "cn-north-1", Account: "111122223333"},
	{Partition: "aws-us-gov", Region: "us-gov-west-1", Account: "111122223333"},
}

// Stack is the stack's name: StackName, or the app's default.
func (e Env) Stack() string {
	if e.StackName == "" {
		return contract.StackName
	}
	return e.StackName
}

// StackARN is the ARN of the stack named name with id (a stack's ARN ends in an id
// CloudFormation chooses).
func (e Env) StackARN(name, id string) string {
	return fmt.Sprintf("arn:%s:cloudformation:%s:%s:stack/%s/%s", e.Partition, e.Region, e.Account, name, id)
}

// URLSuffix is the partition's domain (AWS::URLSuffix).
func (e Env) URLSuffix() string {
	if e.Partition == "aws-cn" {
		return "amazonaws.com.cn"
	}
	return "amazonaws.com"
}

// Resource is one resource of a template.
type Resource struct {
	Type       string         `json:"Type"`
	Properties map[string]any `json:"Properties"`
	// Condition names the template's condition without which the resource is not
	// created; "" for always.
	Condition string `json:"Condition"`
}

// Template is a parsed template.
type Template struct {
	Resources  map[string]Resource `json:"Resources"`
	Parameters map[string]struct {
		Default        any      `json:"Default"`
		AllowedPattern string   `json:"AllowedPattern"`
		AllowedValues  []string `json:"AllowedValues"`
		MaxLength      int      `json:"MaxLength"`
	} `json:"Parameters"`
	Conditions map[string]any `json:"Conditions"`
	Outputs    map[string]struct {
		Condition string `json:"Condition"` // as a resource's
		Value     any    `json:"Value"`
		Export    *struct {
			Name any `json:"Name"`
		} `json:"Export"`
	} `json:"Outputs"`
}

// Load reads a template file.
func Load(path string) (*Template, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("reading the template: %w", err)
	}
	return Parse(b)
}

// Parse decodes a template.
func Parse(b []byte) (*Template, error) {
	var t Template
	if err := json.Unmarshal(b, &t); err != nil {
		return nil, fmt.Errorf("parsing the template: %w", err)
	}
	return &t, nil
}

// CheckParameters refuses the values CloudFormation refuses when a stack is created from
// the template with them: a parameter the template does not declare, a parameter
// without a default left out, a value longer than its MaxLength, not among its
// AllowedValues, or not matching its AllowedPattern, which must match the entire value
// (CloudFormation User Guide, "Parameters"; docs/aws-fidelity.md).
func (t *Template) CheckParameters(values map[string]string) error {
	var errs []error
	for _, name := range slices.Sorted(maps.Keys(values)) {
		p, ok := t.Parameters[name]
		if !ok {
			errs = append(errs, fmt.Errorf("parameter %s is not in the template", name))
			continue
		}
		v := values[name]
		if p.MaxLength > 0 && len(v) > p.MaxLength {
			errs = append(errs, fmt.Errorf("parameter %s: %q is longer than %d", name, v, p.MaxLength))
		}
		if p.AllowedValues != nil && !slices.Contains(p.AllowedValues, v) {
			errs = append(errs, fmt.Errorf("parameter %s: %q is not one of %v", name, v, p.AllowedValues))
		}
		if p.AllowedPattern == "" {
			continue
		}
		re, err := regexp.Compile("^(?:" + p.AllowedPattern + ")$")
		if err != nil {
			return fmt.Errorf("parameter %s: AllowedPattern %s: %w", name, p.AllowedPattern, err)
		}
		if !re.MatchString(v) {
			errs = append(errs, fmt.Errorf("parameter %s: %q does not match %s", name, v, p.AllowedPattern))
		}
	}
	for _, name := range slices.Sorted(maps.Keys(t.Parameters)) {
		if _, given := values[name]; !given && t.Parameters[name].Default == nil {
			errs = append(errs, fmt.Errorf("parameter %s has no default and no value", name))
		}
	}
	return errors.Join(errs...)
}

// Of lists the logical ids of the resources of a type, sorted.
func (t *Template) Of(typ string) []string {
	var ids []string
	for id, r := range t.Resources {
		if r.Type == typ {
			ids = append(ids, id)
		}
	}
	sort.Strings(ids)
	return ids
}

// Of lists the logical ids of the resources of a type that the Env creates (their
// conditions hold), sorted.
func (r Resolved) Of(typ string) []string {
	var ids []string
	for _, id := range r.Template.Of(typ) {
		if ok, err := r.Holds(r.Resources[id].Condition); ok || err != nil {
			ids = append(ids, id) // a condition that does not evaluate fails where the resource is read
		}
	}
	return ids
}

// Holds says whether the template's condition named name is true in the Env; "" always is.
func (r Resolved) Holds(name string) (bool, error) {
	if name == "" {
		return true, nil
	}
	return r.condition(name)
}

// Resolved is a template evaluated for one Env.
type Resolved struct {
	*Template
	Env Env
}

// In evaluates the template for env.
func (t *Template) In(env Env) Resolved { return Resolved{t, env} }

// Property evaluates one property of a resource.
func (r Resolved) Property(id, name string) (any, error) {
	res, ok := r.Resources[id]
	if !ok {
		return nil, fmt.Errorf("no resource %s", id)
	}
	return r.Eval(res.Properties[name])
}

// String evaluates v and wants a string.
func (r Resolved) String(v any) (string, error) {
	out, err := r.Eval(v)
	if err != nil {
		return "", err
	}
	s, ok := out.(string)
	if !ok {
		return "", fmt.Errorf("%v is not a string", out)
	}
	return s, nil
}

// Eval evaluates every intrinsic function in v.
func (r Resolved) Eval(v any) (any, error) {
	switch v := v.(type) {
	case []any:
		out := make([]any, 0, len(v))
		for _, x := range v {
			e, err := r.Eval(x)
			if err != nil {
				return nil, err
			}
			if e != noValue {
				out = append(out, e)
			}
		}
		return out, nil
	case map[string]any:
		if len(v) == 1 {
			for fn, arg := range v {
				if strings.HasPrefix(fn, "Fn::") || fn == "Ref" {
					return r.intrinsic(fn, arg)
				}
			}
		}
		out := make(map[string]any, len(v))
		for k, x := range v {
			e, err := r.Eval(x)
			if err != nil {
				return nil, err
			}
			if e != noValue {
				out[k] = e
			}
		}
		return out, nil
	}
	return v, nil
}

// noValue is what Ref AWS::NoValue evaluates to: "removes the corresponding resource
// property" (Pseudo parameters reference), an element of a list or object included.
var noValue = &struct{ noValue bool }{}

// condition evaluates the template's condition named name.
func (r Resolved) condition(name string) (bool, error) {
	c, ok := r.Conditions[name]
	if !ok {
		return false, fmt.Errorf("no condition %s", name)
	}
	return r.truth(c)
}

// truth evaluates a condition function: Fn::Equals, Fn::Not, Fn::And, Fn::Or, Condition.
func (r Resolved) truth(v any) (bool, error) {
	m, _ := v.(map[string]any)
	if len(m) != 1 {
		return false, fmt.Errorf("condition %v", v)
	}
	for fn, arg := range m {
		if fn == "Condition" {
			name, _ := arg.(string)
			return r.condition(name)
		}
		args, _ := arg.([]any)
		switch fn {
		case "Fn::Equals":
			if len(args) != 2 {
				return false, fmt.Errorf("Fn::Equals %v", arg)
			}
			a, err := r.Eval(args[0])
			if err != nil {
				return false, err
			}
			b, err := r.Eval(args[1])
			return fmt.Sprint(a) == fmt.Sprint(b), err
		case "Fn::Not", "Fn::And", "Fn::Or":
			all, anyOf := true, false
			for _, a := range args {
				t, err := r.truth(a)
				if err != nil {
					return false, err
				}
				all, anyOf = all && t, anyOf || t
			}
			switch fn {
			case "Fn::Not":
				return !all, nil
			case "Fn::And":
				return all, nil
			}
			return anyOf, nil
		}
		return false, fmt.Errorf("condition function %s is not implemented", fn)
	}
	return false, nil
}

func (r Resolved) intrinsic(fn string, arg any) (any, error) {
	switch fn {
	case "Ref":
		name, _ := arg.(string)
		return r.Ref(name)
	case "Fn::GetAtt":
		parts, _ := arg.([]any)
		if len(parts) != 2 {
			return nil, fmt.Errorf("Fn::GetAtt %v", arg)
		}
		id, _ := parts[0].(string)
		attr, _ := parts[1].(string)
		return r.GetAtt(id, attr)
	case "Fn::Join":
		parts, _ := arg.([]any)
		if len(parts) != 2 {
			return nil, fmt.Errorf("Fn::Join %v", arg)
		}
		sep, _ := parts[0].(string)
		items, err := r.Eval(parts[1])
		if err != nil {
			return nil, err
		}
		list, _ := items.([]any)
		strs := make([]string, len(list))
		for i, it := range list {
			strs[i] = fmt.Sprint(it)
		}
		return strings.Join(strs, sep), nil
	case "Fn::Sub":
		return r.sub(arg)
	case "Fn::If":
		parts, _ := arg.([]any)
		if len(parts) != 3 {
			return nil, fmt.Errorf("Fn::If %v", arg)
		}
		name, _ := parts[0].(string)
		holds, err := r.condition(name)
		if err != nil {
			return nil, err
		}
		if holds {
			return r.Eval(parts[1])
		}
		return r.Eval(parts[2])
	case "Fn::Select":
		parts, _ := arg.([]any)
		if len(parts) != 2 {
			return nil, fmt.Errorf("Fn::Select %v", arg)
		}
		idx, err := r.Eval(parts[0])
		if err != nil {
			return nil, err
		}
		list, err := r.Eval(parts[1])
		if err != nil {
			return nil, err
		}
		items, _ := list.([]any)
		var n int
		switch i := idx.(type) {
		case float64:
			n = int(i)
		case string:
			if _, err := fmt.Sscan(i, &n); err != nil {
				return nil, err
			}
		}
		if n < 0 || n >= len(items) {
			return nil, fmt.Errorf("Fn::Select %d of %d", n, len(items))
		}
		return items[n], nil
	case "Fn::Split":
		parts, _ := arg.([]any)
		if len(parts) != 2 {
			return nil, fmt.Errorf("Fn::Split %v", arg)
		}
		sep, _ := parts[0].(string)
		s, err := r.String(parts[1])
		if err != nil {
			return nil, err
		}
		var out []any
		for _, p := range strings.Split(s, sep) {
			out = append(out, p)
		}
		return out, nil
	}
	return nil, fmt.Errorf("intrinsic %s is not implemented", fn)
}

func (r Resolved) sub(arg any) (any, error) {
	text, _ := arg.(string)
	vars := map[string]any{}
	if list, ok := arg.([]any); ok && len(list) == 2 {
		text, _ = list[0].(string)
		m, _ := list[1].(map[string]any)
		for k, v := range m {
			e, err := r.Eval(v)
			if err != nil {
				return nil, err
			}
			vars[k] = e
		}
	}
	var b strings.Builder
	for {
		start := strings.Index(text, "${")
		if start < 0 {
			b.WriteString(text)
			return b.String(), nil
		}
		end := strings.Index(text[start:], "}")
		if end < 0 {
			return nil, fmt.Errorf("Fn::Sub: unclosed ${ in %q", text)
		}
		b.WriteString(text[:start])
		name := text[start+2 : start+end]
		text = text[start+end+1:]
		var v any
		var err error
		switch {
		case strings.HasPrefix(name, "!"):
			v = "${" + name[1:] + "}"
		case vars[name] != nil:
			v = vars[name]
		case strings.Contains(name, "."):
			id, attr, _ := strings.Cut(name, ".")
			v, err = r.GetAtt(id, attr)
		default:
			v, err = r.Ref(name)
		}
		if err != nil {
			return nil, err
		}
		fmt.Fprint(&b, v)
	}
}

// Ref is what Ref returns for a pseudo parameter, parameter or resource.
func (r Resolved) Ref(name string) (any, error) {
	switch name {
	case "AWS::Partition":
		return r.Env.Partition, nil
	case "AWS::Region":
		return r.Env.Region, nil
	case "AWS::AccountId":
		return r.Env.Account, nil
	case "AWS::URLSuffix":
		return r.Env.URLSuffix(), nil
	case "AWS::StackName":
		return r.Env.Stack(), nil
	case "AWS::NoValue":
		return noValue, nil
	}
	if p, ok := r.Parameters[name]; ok {
		if v, given := r.Env.Parameters[name]; given {
			return v, nil
		}
		return p.Default, nil
	}
	res, ok := r.Resources[name]
	if !ok {
		return nil, fmt.Errorf("Ref %s: no such resource", name)
	}
	switch res.Type {
	case "AWS::SQS::Queue":
		return fmt.Sprintf("https://sqs.%s.%s/%s/%s", r.Env.Region, r.Env.URLSuffix(), r.Env.Account, name), nil
	case "AWS::KMS::Key":
		return keyID(name), nil
	case "AWS::IAM::ManagedPolicy":
		// arn:…:policy<path><name>; CloudFormation names a policy without a name.
		path, policy := any("/"), any(name)
		if p, ok := res.Properties["Path"]; ok {
			path = p
		}
		if n, ok := res.Properties["ManagedPolicyName"]; ok {
			policy = n
		}
		s, err := r.String(map[string]any{"Fn::Join": []any{"", []any{"policy", path, policy}}})
		return r.arn("iam", "", s), err
	case "AWS::SNS::Topic":
		return r.arn("sns", r.Env.Region, name), nil
	case "AWS::S3::Bucket":
		return strings.ToLower(name), nil
	}
	for _, prop := range []string{"Name", "TableName", "LogGroupName", "RoleName", "FunctionName", "InstanceProfileName", "AliasName"} {
		if v, ok := res.Properties[prop]; ok {
			return r.Eval(v)
		}
	}
	return name, nil
}

// RoleARN is the ARN of the template's role named name (as Ref gives it, and as
// AWS::IAM::Policy and AWS::IAM::InstanceProfile name their roles).
func (r Resolved) RoleARN(name string) (string, error) {
	for _, id := range r.Of("AWS::IAM::Role") {
		if ref, err := r.Ref(id); err == nil && ref == name {
			return r.String(map[string]any{"Fn::GetAtt": []any{id, "Arn"}})
		}
	}
	return "", fmt.Errorf("no role named %s in the template", name)
}

// GetAtt is what Fn::GetAtt returns for the attributes storecrypt's template uses.
func (r Resolved) GetAtt(id, attr string) (any, error) {
	res, ok := r.Resources[id]
	if !ok {
		return nil, fmt.Errorf("Fn::GetAtt %s.%s: no such resource", id, attr)
	}
	name, err := r.Ref(id)
	if err != nil {
		return nil, err
	}
	switch res.Type + "." + attr {
	case "AWS::SQS::Queue.Arn":
		return r.arn("sqs", r.Env.Region, id), nil
	case "AWS::SQS::Queue.QueueName":
		return id, nil
	case "AWS::SQS::Queue.QueueUrl":
		return name, nil
	case "AWS::KMS::Key.Arn":
		return r.arn("kms", r.Env.Region, "key/"+keyID(id)), nil
	case "AWS::IAM::Role.Arn":
		// A role's ARN carries its path (IAM User Guide, "IAM identifiers").
		path := "/"
		if p, ok := res.Properties["Path"]; ok {
			if path, err = r.String(p); err != nil {
				return nil, err
			}
		}
		return r.arn("iam", "", fmt.Sprint("role", path, name)), nil
	case "AWS::IAM::InstanceProfile.Arn":
		return r.arn("iam", "", fmt.Sprintf("instance-profile/%s", name)), nil
	case "AWS::Lambda::Function.Arn":
		return r.arn("lambda", r.Env.Region, fmt.Sprintf("function:%s", name)), nil
	case "AWS::Logs::LogGroup.Arn":
		return r.arn("logs", r.Env.Region, fmt.Sprintf("log-group:%s:*", name)), nil
	case "AWS::S3::Bucket.Arn":
		return fmt.Sprintf("arn:%s:s3:::%s", r.Env.Partition, name), nil
	case "AWS::S3::Bucket.RegionalDomainName":
		return fmt.Sprintf("%s.s3.%s.%s", name, r.Env.Region, r.Env.URLSuffix()), nil
	case "AWS::DynamoDB::Table.Arn":
		return r.arn("dynamodb", r.Env.Region, "table/"+fmt.Sprint(name)), nil
	case "AWS::SNS::Topic.TopicArn":
		return name, nil
	}
	return nil, fmt.Errorf("Fn::GetAtt %s.%s (%s) is not implemented", id, attr, res.Type)
}

func (r Resolved) arn(service, region, resource string) string {
	account := r.Env.Account
	return fmt.Sprintf("arn:%s:%s:%s:%s:%s", r.Env.Partition, service, region, account, resource)
}

// keyID is a key id, stable for a logical id, in the shape KMS gives them.
func keyID(logical string) string {
	h := sha256.Sum256([]byte(logical))
	x := fmt.Sprintf("%x", h[:16])
	return x[0:8] + "-" + x[8:12] + "-4" + x[13:16] + "-8" + x[17:20] + "-" + x[20:32]
}

// Actions lists a policy statement's Action, which IAM accepts as a string or a list.
func Actions(statement map[string]any) []string {
	switch a := statement["Action"].(type) {
	case string:
		return []string{a}
	case []any:
		var out []string
		for _, x := range a {
			if s, ok := x.(string); ok {
				out = append(out, s)
			}
		}
		return out
	}
	return nil
}
