package findings

import (
	"context"
	"errors"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/securityhub"
	shtypes "github.com/aws/aws-sdk-go-v2/service/securityhub/types"
	"github.com/aws/aws-sdk-go-v2/service/ssm"
)

// Filer files verdicts where the stack asks: Security Hub findings, Systems Manager
// compliance, or both. A nil Filer files nothing.
type Filer struct {
	Hub        *Publisher  // nil: no findings
	Compliance *Compliance // nil: no compliance items
}

// New is the filer a function's configuration asks for, talking to AWS through cfg;
// nil when it asks for neither.
func New(cfg aws.Config, keyARN string, hub, compliance bool) *Filer {
	if !hub && !compliance {
		return nil
	}
	f := &Filer{}
	if hub {
		f.Hub = NewPublisher(securityhub.NewFromConfig(cfg), keyARN)
	}
	if compliance {
		f.Compliance = &Compliance{SSM: ssm.NewFromConfig(cfg), KeyARN: keyARN}
	}
	return f
}

// File files the verdicts that are storecrypt's to report (Reported), and the archiving
// of a terminated instance's finding. The verdicts are a copy for security teams: the
// callers log a failure and go on.
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
		errs = append(errs, f.Hub.Publish(ctx, fs))
	}
	return errors.Join(errs...)
}
