package findings

import (
	"context"
	"fmt"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ssm"
	ssmtypes "github.com/aws/aws-sdk-go-v2/service/ssm/types"
)

// ComplianceType is storecrypt's custom compliance type in Systems Manager Compliance.
const ComplianceType = "Custom:StoreCrypt"

// SSM is the part of the SSM client compliance uses.
type SSM interface {
	PutComplianceItems(ctx context.Context, in *ssm.PutComplianceItemsInput, optFns ...func(*ssm.Options)) (*ssm.PutComplianceItemsOutput, error)
}

// Compliance writes each verdict as the instance's StoreCrypt compliance in Systems
// Manager: COMPLIANT when encrypted, revoked or shredded (protected), NON_COMPLIANT
// (HIGH) otherwise. A put replaces the
// instance's items of the type, so one item says it all.
type Compliance struct {
	SSM    SSM
	KeyARN string
}

// Put records one instance's verdict at now.
func (c *Compliance) Put(ctx context.Context, i Instance, now time.Time) error {
	item := ssmtypes.ComplianceItemEntry{
		Id: aws.String("instance-store-encryption"), Title: aws.String("Instance store encrypted under " + c.KeyARN),
		Severity: ssmtypes.ComplianceSeverityHigh, Status: ssmtypes.ComplianceStatusNonCompliant,
		Details: map[string]string{"Status": i.Status, "Reason": string(i.Reason), "CommandId": i.CommandID},
	}
	if protected(i.Status) {
		item.Status = ssmtypes.ComplianceStatusCompliant
	}
	_, err := c.SSM.PutComplianceItems(ctx, &ssm.PutComplianceItemsInput{
		ResourceId: aws.String(i.ID), ResourceType: aws.String("ManagedInstance"), ComplianceType: aws.String(ComplianceType),
		ExecutionSummary: &ssmtypes.ComplianceExecutionSummary{ExecutionTime: aws.Time(now), ExecutionId: nilIfEmpty(i.CommandID), ExecutionType: aws.String("storecrypt")},
		Items:            []ssmtypes.ComplianceItemEntry{item},
	})
	if err != nil {
		return fmt.Errorf("putting %s's compliance: %w", i.ID, err)
	}
	return nil
}
