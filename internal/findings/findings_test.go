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
	t.Run("a refused finding is named", func(t *testing.T) {
		w := fakeaws.NewAccount(t)
		w.SecurityHubEnabled = true
		p := publisher(w)
		f := p.Finding(findings.Instance{ID: "i-00000000000000001", Status: contract.StatusFailed}, now)
		f.ProductArn = aws.String("arn:aws:securityhub:us-east-1:444455556666:product/444455556666/default")
		if err := p.Publish(ctx, []shtypes.AwsSecurityFinding{f}); err == nil || !strings.Contains(err.Error(), "i-00000000000000001") {
			t.Errorf("got %v, want the refused finding named", err)
		}
	})
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
	} {
		if got := findings.Reported(tc.status, tc.reason); got != tc.want {
			t.Errorf("%s/%s: %v, want %v", tc.status, tc.reason, got, tc.want)
		}
	}
}
