package findings

import (
	"context"
	"errors"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/securityhub"
	shtypes "github.com/aws/aws-sdk-go-v2/service/securityhub/types"
	"github.com/aws/aws-sdk-go-v2/service/ssm"

	"github.com/storecrypt/storecrypt/internal/contract"
	"github.com/storecrypt/storecrypt/internal/emf"
)

// Filer files verdicts where the stack asks: Security Hub findings, Systems Manager
// compliance, or both. A nil Filer files nothing.
type Filer struct {
	Hub        *Publisher  // nil: no findings
	Compliance *Compliance // nil: no compliance items
	// Metrics counts the findings Security Hub did not import (contract.MetricFindingsNotImported).
	Metrics *emf.Writer
}

// New is the filer a function's configuration asks for, talking to AWS through cfg and
// counting on metrics; nil when it asks for neither.
func New(cfg aws.Config, keyARN string, hub, compliance bool, metrics *emf.Writer) *Filer {
	if !hub && !compliance {
		return nil
	}
	f := &Filer{Metrics: metrics}
	if hub {
		f.Hub = NewPublisher(securityhub.NewFromConfig(cfg), keyARN)
	}
	if compliance {
		f.Compliance = &Compliance{SSM: ssm.NewFromConfig(cfg), KeyARN: keyARN}
	}
	return f
}

// File files the verdicts that are storecrypt's to report (Reported), and the archiving
// of a terminated instance's finding. Findings Security Hub did not import are counted
// in the metric as well as returned (*NotImportedError), so an alarm or a dashboard sees
// what a log line alone would hide.
func (f *Filer) File(ctx context.Context, vs []Instance, now time.Time) error {
	if f == nil {
		return nil
	}
	var fs []shtypes.AwsSecurityFinding
	var errs []error
	for _, v := range vs {
		terminated := v.Status == StatusTerminated
		if !terminated && !Reported(v.Status, v.Reason) {
			continue
		}
		if f.Hub != nil {
			fs = append(fs, f.Hub.Finding(v, now))
		}
		// An instance that is gone is no managed instance to hold compliance.
		if f.Compliance != nil && !terminated {
			errs = append(errs, f.Compliance.Put(ctx, v, now))
		}
	}
	if f.Hub != nil {
		err := f.Hub.Publish(ctx, fs)
		var lost *NotImportedError
		if errors.As(err, &lost) && f.Metrics != nil {
			errs = append(errs, f.Metrics.Emit(now, []emf.Metric{{Name: contract.MetricFindingsNotImported, Unit: "Count", Value: float64(lost.Count)}}, nil, nil))
		}
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}
