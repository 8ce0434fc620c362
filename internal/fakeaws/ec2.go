package fakeaws

import (
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	ec2types "github.com/aws/aws-sdk-go-v2/service/ec2/types"
)

// EC2, from the Amazon EC2 API Reference (DescribeInstances, DescribeInstanceTypes,
// CreateTags, Filter, Tag) and the EC2 developer guide's "Eventual consistency in the
// Amazon EC2 API".
func init() {
	register("EC2", map[string]handler{
		"DescribeInstances":     (*World).describeInstances,
		"DescribeInstanceTypes": (*World).describeInstanceTypes,
		"CreateTags":            (*World).createTags,
	})
}

const (
	// maxFilterValues: "FilterLimitExceeded: The maximum number of filter values
	// specified on a single call is 200", as EC2 answers (reported in many issue threads;
	// the API reference does not state the number).
	maxFilterValues = 200
	// maxTagResources: CreateTags, Resources: "Constraints: Up to 1000 resource IDs."
	maxTagResources = 1000
	// maxTagsPerResource: CreateTags: "Each resource can have a maximum of 50 tags."
	maxTagsPerResource = 50
	// maxInstanceTypes: DescribeInstanceTypes, InstanceTypes: at most 100 items.
	maxInstanceTypes = 100
)

func (w *World) describeInstances(params any) (any, error) {
	in := params.(*ec2.DescribeInstancesInput)
	// MaxResults: "You cannot specify this parameter and the instance IDs parameter in the
	// same request."
	if in.MaxResults != nil && len(in.InstanceIds) > 0 {
		return nil, invalid("InvalidParameterCombination", "The parameter instancesSet cannot be used with the parameter maxResults")
	}
	if in.MaxResults != nil && (*in.MaxResults < 5 || *in.MaxResults > 1000) {
		return nil, invalid("InvalidParameterValue", "Value ( %d ) for parameter maxResults is invalid. Expecting a value between 5 and 1000.", *in.MaxResults)
	}
	values := 0
	for _, f := range in.Filters {
		values += len(f.Values)
		if !knownFilter(aws.ToString(f.Name)) {
			return nil, invalid("InvalidParameterValue", "The filter '%s' is invalid", aws.ToString(f.Name))
		}
	}
	if values > maxFilterValues {
		return nil, invalid("FilterLimitExceeded", "The maximum number of filter values specified on a single call is %d", maxFilterValues)
	}
	// "If you specify an instance ID that is not valid, an error is returned"; right after
	// RunInstances a real id "may return an InvalidInstanceID.NotFound error".
	for _, id := range in.InstanceIds {
		if inst, ok := w.Instances[id]; !ok || inst.HiddenFor > 0 {
			return nil, invalid("InvalidInstanceID.NotFound", "The instance ID '%s' does not exist", id)
		}
	}
	var found []ec2types.Instance
	for _, id := range w.describable(in) {
		inst := w.Instances[id]
		if inst.HiddenFor > 0 {
			inst.HiddenFor--
			continue
		}
		if !matchesFilters(inst, in.Filters) {
			continue
		}
		found = append(found, inst.toEC2())
	}
	start, end, next, err := page(len(found), in.NextToken, in.MaxResults)
	if err != nil {
		return nil, err
	}
	out := &ec2.DescribeInstancesOutput{NextToken: next}
	if end > start {
		out.Reservations = []ec2types.Reservation{{Instances: found[start:end]}}
	}
	return out, nil
}

// page cuts a listing for MaxResults/NextToken pagination.
func page(n int, token *string, max *int32) (start, end int, next *string, err error) {
	if token != nil {
		if start, err = strconv.Atoi(*token); err != nil || start < 0 || start > n {
			return 0, 0, nil, invalid("InvalidNextToken", "The specified token is invalid")
		}
	}
	end = n
	if max != nil && start+int(*max) < n {
		end = start + int(*max)
		next = aws.String(strconv.Itoa(end))
	}
	return start, end, next, nil
}

// describable are the instances a DescribeInstances answer may hold, sorted: those
// InstanceIds names, else those an instance-id filter names without a wildcard (the
// filters are ANDed: no other can match), else all. Only which instances are looked at
// changes, so that a burst of 100,000 is not read whole for each call of 200 ids; an
// instance still hidden counts each answer it is left out of, as before: every one but
// those InstanceIds leaves out.
func (w *World) describable(in *ec2.DescribeInstancesInput) []string {
	named := in.InstanceIds
	if len(named) == 0 {
		for _, f := range in.Filters {
			if aws.ToString(f.Name) == "instance-id" && !slices.ContainsFunc(f.Values, hasWildcard) {
				named = f.Values
				break
			}
		}
		if named == nil {
			return w.sortedInstanceIDs()
		}
	}
	var ids []string
	for _, id := range named {
		if _, ok := w.Instances[id]; ok {
			ids = append(ids, id)
		}
	}
	slices.Sort(ids)
	ids = slices.Compact(ids)
	if len(in.InstanceIds) == 0 {
		for id, inst := range w.Instances {
			if inst.HiddenFor > 0 && !slices.Contains(ids, id) {
				inst.HiddenFor--
			}
		}
	}
	return ids
}

func hasWildcard(v string) bool { return strings.ContainsAny(v, "*?") }

func (w *World) sortedInstanceIDs() []string {
	ids := make([]string, 0, len(w.Instances))
	for id := range w.Instances {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	return ids
}

func knownFilter(name string) bool {
	switch name {
	case "instance-id", "instance-state-name", "tag-key", "iam-instance-profile.arn", "instance-type":
		return true
	}
	return strings.HasPrefix(name, "tag:")
}

// matchesFilters: "If you specify multiple filters, the filters are joined with an AND,
// and the request returns only results that match all of the specified filters"; several
// values of one filter are joined with an OR; values may hold the * and ? wildcards.
func matchesFilters(inst *Instance, filters []ec2types.Filter) bool {
	for _, f := range filters {
		name := aws.ToString(f.Name)
		var have []string
		switch {
		case name == "instance-id":
			have = []string{inst.ID}
		case name == "instance-state-name":
			have = []string{inst.State}
		case name == "instance-type":
			have = []string{inst.Type}
		case name == "iam-instance-profile.arn":
			have = []string{inst.ProfileARN}
		case name == "tag-key":
			for k := range inst.Tags {
				have = append(have, k)
			}
		case strings.HasPrefix(name, "tag:"):
			if v, ok := inst.Tags[strings.TrimPrefix(name, "tag:")]; ok {
				have = []string{v}
			}
		}
		matched := false
		for _, v := range f.Values {
			for _, h := range have {
				if matchWildcard(v, h) {
					matched = true
				}
			}
		}
		if !matched {
			return false
		}
	}
	return true
}

func (i *Instance) toEC2() ec2types.Instance {
	out := ec2types.Instance{
		InstanceId:   aws.String(i.ID),
		InstanceType: ec2types.InstanceType(i.Type),
		State:        &ec2types.InstanceState{Name: ec2types.InstanceStateName(i.State)},
		LaunchTime:   aws.Time(i.LaunchTime),
		Architecture: i.architecture(),
	}
	if i.ProfileARN != "" {
		out.IamInstanceProfile = &ec2types.IamInstanceProfile{Arn: aws.String(i.ProfileARN)}
	}
	keys := make([]string, 0, len(i.Tags))
	for k := range i.Tags {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		out.Tags = append(out.Tags, ec2types.Tag{Key: aws.String(k), Value: aws.String(i.Tags[k])})
	}
	return out
}

// graviton matches the types whose attributes hold "g": "AWS Graviton processors"
// ("Amazon EC2 instance type naming conventions": series, generation, then attributes,
// as in m6gd or im4gn).
var graviton = regexp.MustCompile(`^[a-z]+[0-9]+[a-z-]*g[a-z-]*\.`)

func (i *Instance) architecture() ec2types.ArchitectureValues {
	switch {
	case i.Architecture != "":
		return ec2types.ArchitectureValues(i.Architecture)
	case graviton.MatchString(i.Type):
		return ec2types.ArchitectureValuesArm64
	default:
		return ec2types.ArchitectureValuesX8664
	}
}

func (w *World) describeInstanceTypes(params any) (any, error) {
	in := params.(*ec2.DescribeInstanceTypesInput)
	if len(in.InstanceTypes) > maxInstanceTypes {
		return nil, invalid("InvalidParameterValue", "at most %d instance types per request", maxInstanceTypes)
	}
	out := &ec2.DescribeInstanceTypesOutput{}
	for _, t := range in.InstanceTypes {
		has, ok := w.InstanceTypes[string(t)]
		if !ok {
			return nil, invalid("InvalidInstanceType", "The following supplied instance types do not exist: [%s]", t)
		}
		info := ec2types.InstanceTypeInfo{InstanceType: t, InstanceStorageSupported: aws.Bool(has)}
		if has {
			info.InstanceStorageInfo = &ec2types.InstanceStorageInfo{TotalSizeInGB: aws.Int64(1250)}
		}
		out.InstanceTypes = append(out.InstanceTypes, info)
	}
	return out, nil
}

// createTags follows CreateTags and the Tag type: up to 1000 resources, at most 50 tags
// a resource, keys up to 127 characters that "May not begin with aws:", values up to 256.
func (w *World) createTags(params any) (any, error) {
	in := params.(*ec2.CreateTagsInput)
	if len(in.Resources) == 0 || len(in.Tags) == 0 {
		return nil, invalid("MissingParameter", "The request must contain the parameters resourceIdSet and tagSet")
	}
	if len(in.Resources) > maxTagResources {
		return nil, invalid("InvalidParameterValue", "at most %d resource IDs per request", maxTagResources)
	}
	for _, t := range in.Tags {
		k, v := aws.ToString(t.Key), aws.ToString(t.Value)
		switch {
		case k == "" || utf8.RuneCountInString(k) > 127:
			return nil, invalid("InvalidParameterValue", "Tag key %q must be 1 to 127 characters", k)
		case strings.HasPrefix(strings.ToLower(k), "aws:"):
			return nil, invalid("InvalidParameterValue", "Tag keys starting with 'aws:' are reserved for internal use")
		case utf8.RuneCountInString(v) > 256:
			return nil, invalid("InvalidParameterValue", "Tag value for %q exceeds 256 characters", k)
		}
	}
	for _, id := range in.Resources {
		inst, ok := w.Instances[id]
		if !ok {
			return nil, invalid("InvalidInstanceID.NotFound", "The instance ID '%s' does not exist", id)
		}
		merged := len(inst.Tags)
		for _, t := range in.Tags {
			if _, ok := inst.Tags[aws.ToString(t.Key)]; !ok {
				merged++
			}
		}
		if merged > maxTagsPerResource {
			return nil, invalid("TagLimitExceeded", "The maximum number of tags for resource '%s' has been reached", id)
		}
	}
	for _, id := range in.Resources {
		inst := w.Instances[id]
		if inst.Tags == nil {
			inst.Tags = map[string]string{}
		}
		for _, t := range in.Tags {
			inst.Tags[aws.ToString(t.Key)] = aws.ToString(t.Value)
		}
	}
	return &ec2.CreateTagsOutput{}, nil
}
