package fakeaws

import (
	"regexp"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ssm"
	ssmtypes "github.com/aws/aws-sdk-go-v2/service/ssm/types"
)

// Systems Manager Compliance, by the API reference's PutComplianceItems: ResourceType
// "ManagedInstance is currently the only supported resource type"; a ComplianceType of
// 1 to 100 characters matching [A-Za-z0-9_\-]\w+|Custom:[a-zA-Z0-9_\-]\w+; 0 to 10,000
// items; "This call overwrites existing compliance information on the resource". What it
// answers for an instance that is not a managed instance is not documented: the fake
// refuses one without an instance profile, which cannot register with Systems Manager.
func init() {
	register("SSM", map[string]handler{"PutComplianceItems": (*World).putComplianceItems})
}

var complianceType = regexp.MustCompile(`^([A-Za-z0-9_\-]\w+|Custom:[a-zA-Z0-9_\-]\w+)$`)

func (w *World) putComplianceItems(params any) (any, error) {
	in := params.(*ssm.PutComplianceItemsInput)
	ct := aws.ToString(in.ComplianceType)
	switch {
	case aws.ToString(in.ResourceType) != "ManagedInstance":
		return nil, &ssmtypes.UnsupportedOperatingSystem{Message: aws.String("ManagedInstance is the only supported resource type")}
	case len(ct) > 100 || !complianceType.MatchString(ct):
		return nil, invalid("ValidationException", "ComplianceType %q does not match the pattern", ct)
	case len(in.Items) > 10000:
		return nil, &ssmtypes.ItemSizeLimitExceededException{Message: aws.String("at most 10,000 items")}
	case w.Instances[aws.ToString(in.ResourceId)] == nil || w.Instances[aws.ToString(in.ResourceId)].ProfileARN == "":
		// Without an instance profile an instance cannot register with Systems Manager.
		return nil, &ssmtypes.InvalidResourceId{Message: aws.String("not a managed instance: " + aws.ToString(in.ResourceId))}
	}
	if w.Compliance == nil {
		w.Compliance = map[string][]ssmtypes.ComplianceItemEntry{}
	}
	w.Compliance[aws.ToString(in.ResourceId)+"/"+ct] = in.Items
	return &ssm.PutComplianceItemsOutput{}, nil
}
