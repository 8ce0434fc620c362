package findings_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/securityhub"
	shtypes "github.com/aws/aws-sdk-go-v2/service/securityhub/types"

	"github.com/storecrypt/storecrypt/internal/contract"
	"github.com/storecrypt/storecrypt/internal/emf"
	"github.com/storecrypt/storecrypt/internal/fakeaws"
	"github.com/storecrypt/storecrypt/internal/findings"
)

var now = time.Date(2026, 11, 28, 9, 0, 0, 0, time.UTC)

func publisher(w *fakeaws.World) *findings.Publisher {
	return &findings.Publisher{Hub: securityhub.NewFromConfig(w.Config()), Partition: "aws", Region: fakeaws.Region, Account: fakeaws.Account, KeyARN: fakeaws.KeyARN}
}

// TestLifecycle: a blocked instance gets an active, failed, high finding; once encrypted
// the same finding is archived and compliant, which Security Hub takes as resolved.
func TestLifecycle(t *testing.T) {
	w := fakeaws.NewAccount(t)
	w.SecurityHubEnabled = true
	p := publisher(w)
	ctx := context.Background()
	i := findings.Instance{ID: "i-00000000000000001", Type: "i4i.large", Status: contract.StatusBlocked, Reason: contract.ReasonNotKeyUser}
	if err := p.Publish(ctx, []shtypes.AwsSecurityFinding{p.Finding(i, now)}); err != nil {
		t.Fatal(err)
	}
	i.Status, i.Reason = contract.StatusEncrypted, ""
	if err := p.Publish(ctx, []shtypes.AwsSecurityFinding{p.Finding(i, now.Add(time.Hour))}); err != nil {
		t.Fatal(err)
	}
	var got []shtypes.AwsSecurityFinding
	w.With(func() {
		for _, f := range w.Findings {
			got = append(got, f)
		}
	})
	if len(got) != 1 {
		t.Fatalf("%d findings, want one per instance", len(got))
	}
	f := got[0]
	if f.RecordState != shtypes.RecordStateArchived || f.Compliance.Status != shtypes.ComplianceStatusPassed || f.Severity.Label != shtypes.SeverityLabelInformational {
		t.Errorf("after encryption: %s %s %s", f.RecordState, f.Compliance.Status, f.Severity.Label)
	}
	if aws.ToString(f.Resources[0].Id) != "arn:aws:ec2:us-east-1:111122223333:instance/i-00000000000000001" {
		t.Errorf("resource %s", aws.ToString(f.Resources[0].Id))
	}
}

func TestPublish(t *testing.T) {
	ctx := context.Background()
	t.Run("not enabled", func(t *testing.T) {
		w := fakeaws.NewAccount(t)
		p := publisher(w)
		err := p.Publish(ctx, []shtypes.AwsSecurityFinding{p.Finding(findings.Instance{ID: "i-00000000000000001", Status: contract.StatusFailed}, now)})
		if !errors.Is(err, findings.ErrNotEnabled) {
			t.Errorf("got %v, want ErrNotEnabled", err)
		}
	})
	t.Run("150 findings, two calls", func(t *testing.T) {
		w := fakeaws.NewAccount(t)
		w.SecurityHubEnabled = true
		p := publisher(w)
		var fs []shtypes.AwsSecurityFinding
		for n := range 150 {
			fs = append(fs, p.Finding(findings.Instance{ID: fmt.Sprintf("i-%017x", n), Status: contract.StatusFailed, Reason: "key-unavailable"}, now))
		}
		if err := p.Publish(ctx, fs); err != nil {
			t.Fatal(err)
		}
		if calls := w.Calls()["SecurityHub.BatchImportFindings"]; calls != 2 {
			t.Errorf("%d calls, want 2 of at most 100", calls)
		}
	})
}

// TestNotImported: a finding Security Hub refuses (FailedFindings) or a call that fails
// is an error naming what was lost and a count in FindingsNotImported; the findings
// around it still go in.
func TestNotImported(t *testing.T) {
	ctx := context.Background()
	const refused = "i-00000000000000001"
	for _, tc := range []struct {
		name  string
		fault fakeaws.Fault
		batch int
		// lost is how many findings did not go in; named is one the error names.
		lost  int
		named string
	}{
		{name: "one finding refused, the batch's others imported", batch: 3, lost: 1, named: refused},
		{name: "a call failed, the next batch imported", batch: 150, lost: 100, named: "importing 100 findings",
			fault: func(_, op string, attempt int) error {
				if op == "BatchImportFindings" && attempt == 1 {
					return fakeaws.APIError("AccessDeniedException", "not authorized")
				}
				return nil
			}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			w := fakeaws.NewAccount(t)
			w.SecurityHubEnabled = true
			w.Fault = tc.fault
			var metrics strings.Builder
			f := &findings.Filer{Hub: publisher(w), Metrics: &emf.Writer{W: &metrics, Namespace: contract.MetricNamespace}}
			vs := make([]findings.Instance, tc.batch)
			for n := range vs {
				vs[n] = findings.Instance{ID: fmt.Sprintf("i-%017x", n+1), Status: contract.StatusFailed, Reason: contract.ReasonNoReport}
			}
			if tc.fault == nil {
				// Security Hub refuses a title over 256 characters.
				vs[0].Reason = contract.Reason(strings.Repeat("x", 256))
			}
			err := f.File(ctx, vs, now)
			var lost *findings.NotImportedError
			if !errors.As(err, &lost) || lost.Count != tc.lost || !strings.Contains(err.Error(), tc.named) {
				t.Fatalf("got %v, want a NotImportedError of %d naming %s", err, tc.lost, tc.named)
			}
			var imported int
			w.With(func() { imported = len(w.Findings) })
			if imported != tc.batch-tc.lost {
				t.Errorf("got %d findings imported, want %d: one loss kept the others out", imported, tc.batch-tc.lost)
			}
			if want := fmt.Sprintf(`"%s":%d`, contract.MetricFindingsNotImported, tc.lost); !strings.Contains(metrics.String(), want) {
				t.Errorf("got metrics %q, want %s", metrics.String(), want)
			}
		})
	}
}

func TestReported(t *testing.T) {
	for _, tc := range []struct {
		status string
		reason contract.Reason
		want   bool
	}{
		{contract.StatusEncrypted, "", true}, {contract.StatusBlocked, contract.ReasonNotKeyUser, true}, {contract.StatusFailed, "refused-unsafe", true},
		{contract.StatusUnverified, contract.ReasonNoReport, true}, {contract.StatusSkipped, contract.ReasonOptedOut, true},
		{contract.StatusSkipped, contract.ReasonNoInstanceStore, false}, {contract.StatusPending, "", false},
		{contract.StatusRevoked, "", true}, {contract.StatusShredded, "", true}, {contract.StatusResumed, "", false},
	} {
		if got := findings.Reported(tc.status, tc.reason); got != tc.want {
			t.Errorf("%s/%s: %v, want %v", tc.status, tc.reason, got, tc.want)
		}
	}
}

// TestFindingFields: every verdict's finding carries only ProductFields with a value
// (Security Hub refuses an empty or blank one), and its Severity and Types only in
// FindingProviderFields, where a customer's BatchUpdateFindings cannot be overwritten.
func TestFindingFields(t *testing.T) {
	for _, tc := range []struct {
		name     string
		i        findings.Instance
		severity shtypes.SeverityLabel
	}{
		{"blocked, no command, no role", findings.Instance{ID: "i-00000000000000001", Status: contract.StatusBlocked, Reason: contract.ReasonNotKeyUser}, shtypes.SeverityLabelHigh},
		{"encrypted, no reason", findings.Instance{ID: "i-00000000000000002", Status: contract.StatusEncrypted, CommandID: "c-1", Role: " "}, shtypes.SeverityLabelInformational},
		{"terminated", findings.Instance{ID: "i-00000000000000003", Status: findings.StatusTerminated}, shtypes.SeverityLabelInformational},
		{"opted out", findings.Instance{ID: "i-00000000000000004", Status: contract.StatusSkipped, Reason: contract.ReasonOptedOut, Role: "arn:aws:iam::111122223333:role/app"}, shtypes.SeverityLabelHigh},
		{"revoked, who and why unknown", findings.Instance{ID: "i-00000000000000005", Status: contract.StatusRevoked}, shtypes.SeverityLabelLow},
		{"shredded", findings.Instance{ID: "i-00000000000000006", Status: contract.StatusShredded, By: "arn:aws:iam::111122223333:user/bob", Why: " "}, shtypes.SeverityLabelInformational},
	} {
		t.Run(tc.name, func(t *testing.T) {
			w := fakeaws.NewAccount(t)
			w.SecurityHubEnabled = true
			p := publisher(w)
			f := p.Finding(tc.i, now)
			for k, v := range f.ProductFields {
				if strings.TrimSpace(v) == "" {
					t.Errorf("got ProductFields[%s] = %q, want only fields with a value", k, v)
				}
			}
			if f.Severity != nil || f.Types != nil {
				t.Errorf("got top-level Severity %v, Types %v; want both only in FindingProviderFields", f.Severity, f.Types)
			}
			if fp := f.FindingProviderFields; fp == nil || fp.Severity == nil || fp.Severity.Label != tc.severity || len(fp.Types) == 0 {
				t.Errorf("got FindingProviderFields %+v, want severity %s and types", fp, tc.severity)
			}
			if err := p.Publish(context.Background(), []shtypes.AwsSecurityFinding{f}); err != nil {
				t.Errorf("got %v, want the finding imported", err)
			}
		})
	}
}

// TestCreatedAtKept: an update keeps the CreatedAt of the finding's first import (ASFF:
// when the issue was first captured); a finding Security Hub no longer holds (deleted 90
// days after its last update) starts again, its CreatedAt its UpdatedAt.
func TestCreatedAtKept(t *testing.T) {
	ctx := context.Background()
	later := now.Add(time.Hour)
	for _, tc := range []struct {
		name string
		gone bool
		want time.Time
	}{
		{"an update", false, now},
		{"the finding deleted in between", true, later},
	} {
		t.Run(tc.name, func(t *testing.T) {
			w := fakeaws.NewAccount(t)
			w.SecurityHubEnabled = true
			p := publisher(w)
			i := findings.Instance{ID: "i-00000000000000001", Status: contract.StatusBlocked, Reason: contract.ReasonNotKeyUser}
			if err := p.Publish(ctx, []shtypes.AwsSecurityFinding{p.Finding(i, now)}); err != nil {
				t.Fatal(err)
			}
			if tc.gone {
				w.With(func() { clear(w.Findings) })
			}
			i.Status, i.Reason = contract.StatusEncrypted, ""
			if err := p.Publish(ctx, []shtypes.AwsSecurityFinding{p.Finding(i, later)}); err != nil {
				t.Fatalf("got %v, want the update imported", err)
			}
			w.With(func() {
				for _, f := range w.Findings {
					if got, want := aws.ToString(f.CreatedAt), tc.want.Format(time.RFC3339Nano); got != want {
						t.Errorf("got CreatedAt %s, want %s", got, want)
					}
				}
			})
		})
	}
}
