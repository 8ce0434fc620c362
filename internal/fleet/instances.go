package fleet

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	ec2types "github.com/aws/aws-sdk-go-v2/service/ec2/types"
)

// EC2 is the part of the EC2 client that describes instances and their types.
type EC2 interface {
	ec2.DescribeInstancesAPIClient
	DescribeInstanceTypes(ctx context.Context, in *ec2.DescribeInstanceTypesInput, optFns ...func(*ec2.Options)) (*ec2.DescribeInstanceTypesOutput, error)
}

// maxFilterValues: DescribeInstances answers FilterLimitExceeded past 200 filter values
// in one call.
const maxFilterValues = 200

// Describe looks instances up by filters, every page. With ids, the first filter takes
// them as its values, as many a call as the other filters leave room for: an instance-id
// filter, unlike InstanceIds, does not fail the whole call over one terminated and
// expunged id.
func Describe(ctx context.Context, c ec2.DescribeInstancesAPIClient, filters []ec2types.Filter, ids []string) (map[string]ec2types.Instance, error) {
	calls := [][]ec2types.Filter{filters}
	if len(ids) > 0 {
		room := maxFilterValues
		for _, f := range filters[1:] {
			room -= len(f.Values)
		}
		calls = nil
		for chunk := range slices.Chunk(ids, room) {
			fs := slices.Clone(filters)
			fs[0].Values = chunk
			calls = append(calls, fs)
		}
	}
	found := map[string]ec2types.Instance{}
	for _, fs := range calls {
		p := ec2.NewDescribeInstancesPaginator(c, &ec2.DescribeInstancesInput{Filters: fs})
		for p.HasMorePages() {
			page, err := p.NextPage(ctx)
			if err != nil {
				return nil, fmt.Errorf("describing instances: %w", err)
			}
			for _, r := range page.Reservations {
				for _, inst := range r.Instances {
					found[aws.ToString(inst.InstanceId)] = inst
				}
			}
		}
	}
	return found, nil
}

// IDFilter is the filter Describe fills with ids.
func IDFilter() ec2types.Filter { return ec2types.Filter{Name: aws.String("instance-id")} }

// RunningFilter keeps running instances.
func RunningFilter() ec2types.Filter {
	return ec2types.Filter{Name: aws.String("instance-state-name"), Values: []string{string(ec2types.InstanceStateNameRunning)}}
}

// ByID describes one instance; nil when EC2 does not show it.
func ByID(ctx context.Context, c ec2.DescribeInstancesAPIClient, id string) (*ec2types.Instance, error) {
	found, err := Describe(ctx, c, []ec2types.Filter{IDFilter()}, []string{id})
	if err != nil {
		return nil, fmt.Errorf("describing %s: %w", id, err)
	}
	inst, ok := found[id]
	if !ok {
		return nil, nil
	}
	return &inst, nil
}

// Running are the running instances that match every filter, by id.
func Running(ctx context.Context, c ec2.DescribeInstancesAPIClient, filters []ec2types.Filter) ([]ec2types.Instance, error) {
	found, err := Describe(ctx, c, append(slices.Clone(filters), RunningFilter()), nil)
	if err != nil {
		return nil, err
	}
	return sorted(found), nil
}

// RunningByID describes the instances named, which must all be running; the error names
// those that are not.
func RunningByID(ctx context.Context, c ec2.DescribeInstancesAPIClient, ids []string) ([]ec2types.Instance, error) {
	found, err := Describe(ctx, c, []ec2types.Filter{IDFilter(), RunningFilter()}, ids)
	if err != nil {
		return nil, err
	}
	var missing []string
	for _, id := range ids {
		if _, ok := found[id]; !ok && !slices.Contains(missing, id) {
			missing = append(missing, id)
		}
	}
	if len(missing) > 0 {
		slices.Sort(missing)
		return nil, fmt.Errorf("not running, or no such instance: %s", strings.Join(missing, ", "))
	}
	return sorted(found), nil
}

func sorted(found map[string]ec2types.Instance) []ec2types.Instance {
	out := make([]ec2types.Instance, 0, len(found))
	for _, id := range slices.Sorted(maps.Keys(found)) {
		out = append(out, found[id])
	}
	return out
}

// Tags turns EC2's tag list into a map.
func Tags(tags []ec2types.Tag) map[string]string {
	m := make(map[string]string, len(tags))
	for _, t := range tags {
		m[aws.ToString(t.Key)] = aws.ToString(t.Value)
	}
	return m
}

// Profile is the instance's instance profile, "" when it has none.
func Profile(i ec2types.Instance) string {
	if i.IamInstanceProfile == nil {
		return ""
	}
	return aws.ToString(i.IamInstanceProfile.Arn)
}

// LaunchTime is the instance's launch as the storecrypt:launch-time tag records it.
// LaunchTime changes at every start, and a start brings new, blank instance store.
func LaunchTime(i ec2types.Instance) string {
	return aws.ToTime(i.LaunchTime).UTC().Format(time.RFC3339)
}

// maxInstanceTypes: DescribeInstanceTypes takes at most 100 types a call.
const maxInstanceTypes = 100

// InstanceStore remembers which instance types have instance store: types never change,
// so each is described once for as long as the value lives (a Lambda container, a CLI
// command).
type InstanceStore struct {
	EC2 EC2

	mu  sync.Mutex
	has map[ec2types.InstanceType]bool
}

// Learn describes the types of the instances it does not know yet.
func (s *InstanceStore) Learn(ctx context.Context, types []ec2types.InstanceType) error {
	s.mu.Lock()
	var unknown []ec2types.InstanceType
	for _, t := range types {
		if _, ok := s.has[t]; !ok && !slices.Contains(unknown, t) {
			unknown = append(unknown, t)
		}
	}
	s.mu.Unlock()
	for chunk := range slices.Chunk(unknown, maxInstanceTypes) {
		out, err := s.EC2.DescribeInstanceTypes(ctx, &ec2.DescribeInstanceTypesInput{InstanceTypes: chunk})
		if err != nil {
			return fmt.Errorf("describing instance types: %w", err)
		}
		s.mu.Lock()
		if s.has == nil {
			s.has = map[ec2types.InstanceType]bool{}
		}
		for _, t := range out.InstanceTypes {
			s.has[t.InstanceType] = aws.ToBool(t.InstanceStorageSupported)
		}
		s.mu.Unlock()
	}
	return nil
}

// Has says whether the type has instance store, and whether Learn found out.
func (s *InstanceStore) Has(t ec2types.InstanceType) (has, known bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	has, known = s.has[t]
	return has, known
}

// TypesOf are the instances' types.
func TypesOf(instances []ec2types.Instance) []ec2types.InstanceType {
	types := make([]ec2types.InstanceType, len(instances))
	for n, i := range instances {
		types[n] = i.InstanceType
	}
	return types
}
