// Package findings puts storecrypt's verdict on each instance where security teams look:
// one AWS Security Hub finding per instance (ASFF), active while the instance is in scope
// and not encrypted (blocked, failed, unverified, opted out), archived with compliance
// PASSED once it is encrypted, which Security Hub takes as resolved, active again (and
// PASSED) while a responder has revoked its access, archived once its volume is shredded,
// and archived when the instance terminates. The finding's id is the instance's, so a
// later launch updates the same finding.
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
	GetFindings(ctx context.Context, in *securityhub.GetFindingsInput, optFns ...func(*securityhub.Options)) (*securityhub.GetFindingsOutput, error)
}

// ErrNotEnabled says Security Hub is not enabled in the account and region: the findings
// have nowhere to go.
var ErrNotEnabled = errors.New("security hub is not enabled in this account and region")

// maxBatch is BatchImportFindings' largest batch ("up to 100 findings per batch").
const maxBatch = 100

// maxFilterValues is GetFindings' limit: "For each attribute, you can provide up to 20
// filter values".
const maxFilterValues = 20

// NotImportedError is findings Security Hub did not take: refused in FailedFindings, or
// in a call that failed. Count is how many, for the metric.
type NotImportedError struct {
	Count int
	Err   error
}

func (e *NotImportedError) Error() string {
	return fmt.Sprintf("security hub did not import %d findings: %v", e.Count, e.Err)
}

func (e *NotImportedError) Unwrap() error { return e.Err }

// Instance is one instance's verdict.
type Instance struct {
	ID, Type, Role string
	Status         string // a contract.Status*
	Reason         contract.Reason
	CommandID      string
	// By and Why: who revoked or shredded the instance (an ARN) and their --reason, when
	// the caller knows them; the ledger holds them in any case.
	By, Why string
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
// and failed. Its CreatedAt is now, as a new finding's must be; Publish keeps an existing
// finding's. Severity and Types go in FindingProviderFields only: Security Hub copies
// them to the top level unless a customer changed those with BatchUpdateFindings, where
// a top-level value from the provider would overwrite the customer's on a new finding
// and be ignored on an update.
func (p *Publisher) Finding(i Instance, now time.Time) shtypes.AwsSecurityFinding {
	at := now.UTC().Format(time.RFC3339Nano)
	arn := contract.InstanceARN(p.Partition, p.Region, p.Account, i.ID)
	f := shtypes.AwsSecurityFinding{
		SchemaVersion: aws.String("2018-10-08"),
		Id:            aws.String(arn + "/storecrypt"),
		ProductArn:    aws.String(fmt.Sprintf("arn:%s:securityhub:%s:%s:product/%s/default", p.Partition, p.Region, p.Account, p.Account)),
		GeneratorId:   aws.String("storecrypt"),
		AwsAccountId:  aws.String(p.Account),
		CreatedAt:     aws.String(at),
		UpdatedAt:     aws.String(at),
		Resources: []shtypes.Resource{{Type: aws.String("AwsEc2Instance"), Id: aws.String(arn), Partition: shtypes.Partition(p.Partition), Region: aws.String(p.Region),
			Details: &shtypes.ResourceDetails{AwsEc2Instance: &shtypes.AwsEc2InstanceDetails{Type: nilIfEmpty(i.Type)}}}},
		ProductFields: productFields(map[string]string{"storecrypt/status": i.Status, "storecrypt/reason": string(i.Reason), "storecrypt/command-id": i.CommandID,
			"storecrypt/role": i.Role, "storecrypt/key": p.KeyARN, "storecrypt/by": i.By, "storecrypt/why": i.Why}),
	}
	v := p.verdict(i)
	f.Title, f.Description = aws.String(v.title), aws.String(v.description)
	f.FindingProviderFields = &shtypes.FindingProviderFields{Severity: &shtypes.FindingProviderSeverity{Label: v.severity},
		Types: []string{"Software and Configuration Checks/AWS Security Best Practices"}}
	f.Compliance = &shtypes.Compliance{Status: v.compliance}
	f.RecordState = v.state
	return f
}

// verdict is what a finding says of an instance, and how Security Hub should rank it.
type verdict struct {
	title, description string
	severity           shtypes.SeverityLabel
	compliance         shtypes.ComplianceStatus
	state              shtypes.RecordState
}

func (p *Publisher) verdict(i Instance) verdict {
	// Revoked and shredded are a responder's deliberate control actions on a volume that
	// was encrypted: compliance PASSED, since the data is still ciphertext under the key
	// (revoked) or no key can open it any more (shredded). A revoke makes the finding
	// active again, which Security Hub answers by resetting its workflow to NEW, so the
	// incident shows in the responders' queue until a resume (encrypted, archived) or a
	// shred closes it; LOW, as the data is already out of reach and what is left is a
	// decision, not a repair. A shred is the end state: archived, informational.
	who := " See the ledger for when, who and why."
	if i.By != "" || i.Why != "" {
		who = fmt.Sprintf(" By %s: %s.", orUnknown(i.By), orUnknown(i.Why)) + who
	}
	switch i.Status {
	case StatusTerminated:
		return verdict{"Instance terminated", i.ID + " terminated; storecrypt's ledger keeps its record.",
			shtypes.SeverityLabelInformational, shtypes.ComplianceStatusNotAvailable, shtypes.RecordStateArchived}
	case contract.StatusEncrypted:
		return verdict{"Instance store encrypted by storecrypt", fmt.Sprintf("The instance store of %s is encrypted (LUKS2) under %s, with the agent's evidence.", i.ID, p.KeyARN),
			shtypes.SeverityLabelInformational, shtypes.ComplianceStatusPassed, shtypes.RecordStateArchived}
	case contract.StatusRevoked:
		return verdict{"Instance store access revoked", fmt.Sprintf("A responder revoked %s's access to its instance store: the volume key left the kernel and KMS refuses the instance's Decrypt under %s. "+
			"The data stays encrypted; `storecrypt resume` restores it, `storecrypt revoke --shred` destroys it.%s", i.ID, p.KeyARN, who),
			shtypes.SeverityLabelLow, shtypes.ComplianceStatusPassed, shtypes.RecordStateActive}
	case contract.StatusShredded:
		return verdict{"Instance store crypto-shredded", fmt.Sprintf("Every keyslot and token of %s's LUKS2 header is erased: its instance store's data cannot be opened again, even with %s.%s", i.ID, p.KeyARN, who),
			shtypes.SeverityLabelInformational, shtypes.ComplianceStatusPassed, shtypes.RecordStateArchived}
	}
	why := string(i.Reason)
	if why == "" {
		why = i.Status
	}
	return verdict{"Instance store not encrypted: " + why, fmt.Sprintf("%s is in storecrypt's scope, but its instance store is not encrypted under %s: %s (%s). "+
		"See the instance's storecrypt:reason tag, the ledger, and `storecrypt verify --instance %s` for the fix.", i.ID, p.KeyARN, i.Status, why, i.ID),
		shtypes.SeverityLabelHigh, shtypes.ComplianceStatusFailed, shtypes.RecordStateActive}
}

// Publish imports the findings, 100 a call, each existing one with the CreatedAt Security
// Hub holds for it. Findings Security Hub did not take are a *NotImportedError naming
// them; one refused finding, or one failed call, does not keep the others out. A
// Security Hub that is not enabled is ErrNotEnabled, once: later calls do nothing.
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
	created, lookupErr := p.created(ctx, fs)
	if errors.Is(lookupErr, ErrNotEnabled) {
		return lookupErr
	}
	// Without the lookup the findings still go in: a CreatedAt reset is a smaller loss
	// than the verdict missing from Security Hub.
	fs = slices.Clone(fs)
	for n, f := range fs {
		if at, ok := created[aws.ToString(f.Id)]; ok {
			fs[n].CreatedAt = aws.String(at)
		}
	}
	var errs []error
	notImported := 0
	for chunk := range slices.Chunk(fs, maxBatch) {
		out, err := p.Hub.BatchImportFindings(ctx, &securityhub.BatchImportFindingsInput{Findings: chunk})
		if err != nil {
			if notEnabled(err) {
				return fmt.Errorf("%w: %w", ErrNotEnabled, err)
			}
			notImported += len(chunk)
			errs = append(errs, fmt.Errorf("importing %d findings: %w", len(chunk), err))
			continue
		}
		for _, f := range out.FailedFindings {
			if aws.ToString(f.ErrorCode) == "InvalidAccess" {
				return fmt.Errorf("%w: %s", ErrNotEnabled, aws.ToString(f.ErrorMessage))
			}
			notImported++
			errs = append(errs, fmt.Errorf("%s: %s %s", aws.ToString(f.Id), aws.ToString(f.ErrorCode), aws.ToString(f.ErrorMessage)))
		}
	}
	if notImported > 0 {
		return errors.Join(lookupErr, &NotImportedError{Count: notImported, Err: errors.Join(errs...)})
	}
	return lookupErr
}

// created is the CreatedAt of each finding Security Hub already holds, by id. ASFF's
// CreatedAt is when the issue was first captured, and a new finding's must equal its
// UpdatedAt, so only Security Hub can say which it is: a finding may never have gone in
// (Security Hub enabled later, an import refused) or may be gone ("Security Hub deletes
// findings 90 days after the most recent update"), which no record of ours can tell.
func (p *Publisher) created(ctx context.Context, fs []shtypes.AwsSecurityFinding) (map[string]string, error) {
	out := map[string]string{}
	for chunk := range slices.Chunk(fs, maxFilterValues) {
		ids := make([]shtypes.StringFilter, len(chunk))
		for n, f := range chunk {
			ids[n] = shtypes.StringFilter{Value: f.Id, Comparison: shtypes.StringFilterComparisonEquals}
		}
		pages := securityhub.NewGetFindingsPaginator(p.Hub, &securityhub.GetFindingsInput{
			Filters: &shtypes.AwsSecurityFindingFilters{Id: ids}, MaxResults: aws.Int32(maxFilterValues)})
		for pages.HasMorePages() {
			page, err := pages.NextPage(ctx)
			if err != nil {
				if notEnabled(err) {
					return nil, fmt.Errorf("%w: %w", ErrNotEnabled, err)
				}
				return out, fmt.Errorf("looking up %d findings' CreatedAt: %w", len(chunk), err)
			}
			for _, f := range page.Findings {
				out[aws.ToString(f.Id)] = aws.ToString(f.CreatedAt)
			}
		}
	}
	return out, nil
}

// Reported says whether a status is one storecrypt files a finding for: the verdicts on
// instances in scope, and a responder's revoke or shred. Pending is not a verdict yet,
// resumed is a ledger entry only (the instance is encrypted again), and skipped for want
// of instance store is out of scope.
func Reported(status string, reason contract.Reason) bool {
	switch status {
	case contract.StatusEncrypted, contract.StatusBlocked, contract.StatusFailed, contract.StatusUnverified, contract.StatusRevoked, contract.StatusShredded:
		return true
	case contract.StatusSkipped:
		return reason == contract.ReasonOptedOut
	}
	return false
}

// notEnabled says Security Hub answered InvalidAccessException: not enabled in this
// account and region.
func notEnabled(err error) bool {
	var denied *shtypes.InvalidAccessException
	return errors.As(err, &denied)
}

// productFields keeps the fields with a value: Security Hub refuses a finding with an
// empty or blank one (the API model's FieldMap values are NonEmptyString, pattern
// .*\S.*).
func productFields(m map[string]string) map[string]string {
	out := map[string]string{}
	for k, v := range m {
		if strings.TrimSpace(v) != "" {
			out[k] = v
		}
	}
	return out
}

// protected says whether a status keeps the instance store's data from anyone without
// the key's consent: encrypted, revoked (ciphertext the key now refuses) or shredded (no
// key opens it).
func protected(status string) bool {
	return status == contract.StatusEncrypted || status == contract.StatusRevoked || status == contract.StatusShredded
}

func orUnknown(s string) string {
	if strings.TrimSpace(s) == "" {
		return "unknown"
	}
	return s
}

func nilIfEmpty(s string) *string {
	if strings.TrimSpace(s) == "" {
		return nil
	}
	return &s
}
