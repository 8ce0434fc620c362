package findings_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	shtypes "github.com/aws/aws-sdk-go-v2/service/securityhub/types"
	"github.com/aws/aws-sdk-go-v2/service/ssm"
	ssmtypes "github.com/aws/aws-sdk-go-v2/service/ssm/types"

	"github.com/storecrypt/storecrypt/internal/contract"
	"github.com/storecrypt/storecrypt/internal/fakeaws"
	"github.com/storecrypt/storecrypt/internal/findings"
)

// TestRevokedFinding: an encrypted instance's finding, once a responder revokes its
// access, is active again (Security Hub resets an archived finding made active to NEW,
// so it is in the responders' queue), compliant (the data is still ciphertext) and LOW,
// and names who and why; a resume archives it again; a shred archives it for good,
// informational. Systems Manager compliance stays COMPLIANT throughout. Every import
// goes through the fake, which holds it to Security Hub's model.
func TestRevokedFinding(t *testing.T) {
	const (
		id  = "i-00000000000000001"
		by  = "arn:aws:sts::111122223333:assumed-role/responder/alice"
		why = "INC-42 key compromise"
	)
	type want struct {
		title      string
		state      shtypes.RecordState
		compliance shtypes.ComplianceStatus
		severity   shtypes.SeverityLabel
		text       []string // in the description
	}
	encrypted := want{"Instance store encrypted by storecrypt", shtypes.RecordStateArchived, shtypes.ComplianceStatusPassed, shtypes.SeverityLabelInformational, nil}
	revoked := want{"Instance store access revoked", shtypes.RecordStateActive, shtypes.ComplianceStatusPassed, shtypes.SeverityLabelLow, []string{id, by, why, "storecrypt resume"}}
	shredded := want{"Instance store crypto-shredded", shtypes.RecordStateArchived, shtypes.ComplianceStatusPassed, shtypes.SeverityLabelInformational, []string{id, by, why}}
	for _, tc := range []struct {
		name  string
		steps []string // statuses, an hour apart
		want  want
	}{
		{"revoked", []string{contract.StatusEncrypted, contract.StatusRevoked}, revoked},
		{"resumed", []string{contract.StatusEncrypted, contract.StatusRevoked, contract.StatusEncrypted}, encrypted},
		{"shredded", []string{contract.StatusEncrypted, contract.StatusRevoked, contract.StatusShredded}, shredded},
	} {
		t.Run(tc.name, func(t *testing.T) {
			w := fakeaws.NewAccount(t)
			w.SecurityHubEnabled = true
			w.AddInstance(id, "i4i.large", fakeaws.Profile(fakeaws.KeyUser), nil, now)
			f := &findings.Filer{Hub: publisher(w), Compliance: &findings.Compliance{SSM: ssm.NewFromConfig(w.Config()), KeyARN: fakeaws.KeyARN}}
			for n, status := range tc.steps {
				v := findings.Instance{ID: id, Type: "i4i.large", Status: status}
				if status != contract.StatusEncrypted {
					v.By, v.Why = by, why
				}
				if err := f.File(context.Background(), []findings.Instance{v}, now.Add(time.Duration(n)*time.Hour)); err != nil {
					t.Fatalf("filing %s: got %v, want it imported", status, err)
				}
			}
			var got shtypes.AwsSecurityFinding
			var items []ssmtypes.ComplianceItemEntry
			w.With(func() {
				got = w.Findings[contract.InstanceARN("aws", fakeaws.Region, fakeaws.Account, id)+"/storecrypt"]
				items = w.Compliance[id+"/"+findings.ComplianceType]
			})
			if got.Title == nil {
				t.Fatal("got no finding, want one for the instance")
			}
			if aws.ToString(got.Title) != tc.want.title || got.RecordState != tc.want.state || got.Compliance.Status != tc.want.compliance || got.Severity.Label != tc.want.severity {
				t.Errorf("got %q %s %s %s, want %q %s %s %s", aws.ToString(got.Title), got.RecordState, got.Compliance.Status, got.Severity.Label,
					tc.want.title, tc.want.state, tc.want.compliance, tc.want.severity)
			}
			for _, s := range tc.want.text {
				if !strings.Contains(aws.ToString(got.Description), s) {
					t.Errorf("got description %q, want %q in it", aws.ToString(got.Description), s)
				}
			}
			if len(items) != 1 || items[0].Status != ssmtypes.ComplianceStatusCompliant {
				t.Errorf("got compliance %+v, want one COMPLIANT item", items)
			}
		})
	}
}
