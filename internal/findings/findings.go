// Package findings puts storecrypt's verdict on each instance where security teams look:
// one AWS Security Hub finding per instance (ASFF), active while the instance is in scope
// and not encrypted (blocked, failed, unverified, opted out), archived with compliance
// PASSED once it is encrypted, which Security Hub takes as resolved, and archived when
// the instance terminates. The finding's id is the instance's, so a later launch updates
// the same finding.
package findings

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/aws/arn"
	"github.com/aws/aws-sdk-go-v2/service/securityhub"
	shtypes "github.com/aws/aws-sdk-go-v2/service/securityhub/types"

	"github.com/storecrypt/storecrypt/internal/contract"
)

// SecurityHub is the part of the Security Hub client the functions use.
type SecurityHub interface {
	BatchImportFindings(ctx context.Context, in *securityhub.BatchImportFindingsInput, optFns ...func(*securityhub.Options)) (*securityhub.BatchImportFindingsOutput, error)
}

// ErrNotEnabled says Security Hub is not enabled in the account and region: the findings
// have nowhere to go.
var ErrNotEnabled = errors.New("security hub is not enabled in this account and region")

// maxBatch is BatchImportFindings' largest batch ("up to 100 findings per batch").
const maxBatch = 100

// Instance is one instance's verdict.
type Instance struct {
	ID, Type, Role string
	Status         string // a contract.Status*
	Reason         contract.Reason
	CommandID      string
}

// Publisher imports findings for one account and region. Once Security Hub has said it
// is not enabled, the publisher stops calling it.
type Publisher struct {
	Hub                        SecurityHub
	Partition, Region, Account string
	KeyARN                     string

	mu  sync.Mutex
	off bool
}

// NewPublisher files findings in the account and region of the stack's key.
func NewPublisher(hub SecurityHub, keyARN string) *Publisher {
	key, _ := arn.Parse(keyARN) // the functions' configuration checked it
	return &Publisher{Hub: hub, Partition: key.Partition, Region: key.Region, Account: key.AccountID, KeyARN: keyARN}
}

// StatusTerminated is an instance that terminated: its finding is archived, compliance
// not available.
const StatusTerminated = "terminated"

// Finding is the ASFF finding for an instance's verdict at now. An encrypted instance's
// finding is archived and compliant, a terminated one's archived; any other is active
// and failed.
func (p *Publisher) Finding(i Instance, now time.Time) shtypes.AwsSecurityFinding {
	at := now.UTC().Format(time.RFC3339Nano)
	arn := contract.InstanceARN(p.Partition, p.Region, p.Account, i.ID)
	f := shtypes.AwsSecurityFinding{
		SchemaVersion: aws.String("2018-10-08"),
		Id:            aws.String(arn + "/storecrypt"),
		ProductArn:    aws.String(fmt.Sprintf("arn:%s:securityhub:%s:%s:product/%s/default", p.Partition, p.Region, p.Account, p.Account)),
		GeneratorId:   aws.String("storecrypt"),
		AwsAccountId:  aws.String(p.Account),
		Types:         []string{"Software and Configuration Checks/AWS Security Best Practices"},
		CreatedAt:     aws.String(at), // a new finding's must equal its UpdatedAt
		UpdatedAt:     aws.String(at),
		Resources: []shtypes.Resource{{Type: aws.String("AwsEc2Instance"), Id: aws.String(arn), Partition: shtypes.Partition(p.Partition), Region: aws.String(p.Region),
			Details: &shtypes.ResourceDetails{AwsEc2Instance: &shtypes.AwsEc2InstanceDetails{Type: nilIfEmpty(i.Type)}}}},
		ProductFields: map[string]string{"storecrypt/status": i.Status, "storecrypt/reason": string(i.Reason), "storecrypt/command-id": i.CommandID,
			"storecrypt/role": i.Role, "storecrypt/key": p.KeyARN},
	}
	if i.Status == StatusTerminated {
		f.Title = aws.String("Instance terminated")
		f.Description = aws.String(i.ID + " terminated; storecrypt's ledger keeps its record.")
		f.Severity = &shtypes.Severity{Label: shtypes.SeverityLabelInformational}
		f.Compliance = &shtypes.Compliance{Status: shtypes.ComplianceStatusNotAvailable}
		f.RecordState = shtypes.RecordStateArchived
		return f
	}
	if i.Status == contract.StatusEncrypted {
		f.Title = aws.String("Instance store encrypted by storecrypt")
		f.Description = aws.String(fmt.Sprintf("The instance store of %s is encrypted (LUKS2) under %s, with the agent's evidence.", i.ID, p.KeyARN))
		f.Severity = &shtypes.Severity{Label: shtypes.SeverityLabelInformational}
		f.Compliance = &shtypes.Compliance{Status: shtypes.ComplianceStatusPassed}
		f.RecordState = shtypes.RecordStateArchived
		return f
	}
	why := string(i.Reason)
	if why == "" {
		why = i.Status
	}
	f.Title = aws.String("Instance store not encrypted: " + why)
	f.Description = aws.String(fmt.Sprintf("%s is in storecrypt's scope, but its instance store is not encrypted under %s: %s (%s). "+
		"See the instance's storecrypt:reason tag, the ledger, and `storecrypt verify --instance %s` for the fix.", i.ID, p.KeyARN, i.Status, why, i.ID))
	f.Severity = &shtypes.Severity{Label: shtypes.SeverityLabelHigh}
	f.Compliance = &shtypes.Compliance{Status: shtypes.ComplianceStatusFailed}
	f.RecordState = shtypes.RecordStateActive
	return f
}

// Publish imports the findings, 100 a call. Findings Security Hub refuses are an error
// naming them; a Security Hub that is not enabled is ErrNotEnabled, once: later calls
// do nothing.
func (p *Publisher) Publish(ctx context.Context, fs []shtypes.AwsSecurityFinding) error {
	p.mu.Lock()
	off := p.off
	p.mu.Unlock()
	if off || len(fs) == 0 {
		return nil
	}
	err := p.publish(ctx, fs)
	if errors.Is(err, ErrNotEnabled) {
		p.mu.Lock()
		p.off = true
		p.mu.Unlock()
	}
	return err
}

func (p *Publisher) publish(ctx context.Context, fs []shtypes.AwsSecurityFinding) error {
	var errs []error
	for chunk := range slices.Chunk(fs, maxBatch) {
		out, err := p.Hub.BatchImportFindings(ctx, &securityhub.BatchImportFindingsInput{Findings: chunk})
		if err != nil {
			var denied *shtypes.InvalidAccessException
			if errors.As(err, &denied) {
				return fmt.Errorf("%w: %w", ErrNotEnabled, err)
			}
			return fmt.Errorf("importing %d findings: %w", len(chunk), err)
		}
		for _, f := range out.FailedFindings {
			if aws.ToString(f.ErrorCode) == "InvalidAccess" {
				return fmt.Errorf("%w: %s", ErrNotEnabled, aws.ToString(f.ErrorMessage))
			}
			errs = append(errs, fmt.Errorf("%s: %s %s", aws.ToString(f.Id), aws.ToString(f.ErrorCode), aws.ToString(f.ErrorMessage)))
		}
	}
	if len(errs) > 0 {
		return fmt.Errorf("security hub refused %d findings: %w", len(errs), errors.Join(errs...))
	}
	return nil
}

// Reported says whether a status is one storecrypt files a finding for: the verdicts on
// instances in scope. Pending is not a verdict yet, and skipped for want of instance
// store is out of scope.
func Reported(status string, reason contract.Reason) bool {
	switch status {
	case contract.StatusEncrypted, contract.StatusBlocked, contract.StatusFailed, contract.StatusUnverified:
		return true
	case contract.StatusSkipped:
		return reason == contract.ReasonOptedOut
	}
	return false
}

func nilIfEmpty(s string) *string {
	if strings.TrimSpace(s) == "" {
		return nil
	}
	return &s
}
