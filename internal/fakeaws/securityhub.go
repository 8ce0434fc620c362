package fakeaws

import (
	"fmt"
	"regexp"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/securityhub"
	shtypes "github.com/aws/aws-sdk-go-v2/service/securityhub/types"
)

// Security Hub's finding import, by the Security Hub User Guide: "Required top-level ASFF
// attributes", "Using BatchImportFindings to create and update findings" and "Using
// custom product integrations":
//   - up to 100 findings a batch;
//   - AwsAccountId, CreatedAt, Description, GeneratorId, Id, ProductArn, Resources (each
//     with Type and Id), SchemaVersion ("2018-10-08"), Severity (Label or Normalized),
//     Title, Types and UpdatedAt are required;
//   - a custom provider's ProductArn is arn:<partition>:securityhub:<region>:<account>:
//     product/<account>/default, and AwsAccountId is the caller's account;
//   - a new finding's CreatedAt equals its UpdatedAt; an update whose UpdatedAt is not
//     after the stored one is ignored;
//   - with Security Hub not enabled, every finding fails with InvalidAccess.
//
// Refused findings are answered in FailedFindings, not as an error of the call.
func init() {
	register("SecurityHub", map[string]handler{
		"BatchImportFindings": (*World).batchImportFindings,
	})
}

var productARN = regexp.MustCompile(`^arn:aws[a-z-]*:securityhub:([a-z0-9-]+):(\d{12}):product/(\d{12})/default$`)

func (w *World) batchImportFindings(params any) (any, error) {
	in := params.(*securityhub.BatchImportFindingsInput)
	if len(in.Findings) < 1 || len(in.Findings) > 100 {
		return nil, &shtypes.InvalidInputException{Message: aws.String("Findings must hold 1 to 100 findings")}
	}
	if w.Findings == nil {
		w.Findings = map[string]shtypes.AwsSecurityFinding{}
	}
	out := &securityhub.BatchImportFindingsOutput{}
	var succeeded int32
	fail := func(f shtypes.AwsSecurityFinding, code, msg string) {
		out.FailedFindings = append(out.FailedFindings, shtypes.ImportFindingsError{Id: f.Id, ErrorCode: aws.String(code), ErrorMessage: aws.String(msg)})
	}
	for _, f := range in.Findings {
		if !w.SecurityHubEnabled {
			fail(f, "InvalidAccess", "Account "+Account+" is not subscribed to AWS Security Hub")
			continue
		}
		if err := w.validFinding(f); err != nil {
			fail(f, "InvalidInput", err.Error())
			continue
		}
		id := aws.ToString(f.Id)
		old, exists := w.Findings[id]
		updated, _ := time.Parse(time.RFC3339Nano, aws.ToString(f.UpdatedAt))
		switch {
		case !exists && aws.ToString(f.CreatedAt) != aws.ToString(f.UpdatedAt):
			fail(f, "InvalidInput", "a new finding's CreatedAt and UpdatedAt must be the same")
			continue
		case exists:
			prev, _ := time.Parse(time.RFC3339Nano, aws.ToString(old.UpdatedAt))
			if !updated.After(prev) {
				succeeded++ // ignored, as documented, and not reported as a failure
				continue
			}
		}
		w.Findings[id] = f
		succeeded++
	}
	out.SuccessCount, out.FailedCount = aws.Int32(succeeded), aws.Int32(int32(len(out.FailedFindings)))
	return out, nil
}

func (w *World) validFinding(f shtypes.AwsSecurityFinding) error {
	for name, v := range map[string]*string{"AwsAccountId": f.AwsAccountId, "CreatedAt": f.CreatedAt, "Description": f.Description, "GeneratorId": f.GeneratorId,
		"Id": f.Id, "ProductArn": f.ProductArn, "SchemaVersion": f.SchemaVersion, "Title": f.Title, "UpdatedAt": f.UpdatedAt} {
		if aws.ToString(v) == "" {
			return fmt.Errorf("%s is required", name)
		}
	}
	if aws.ToString(f.SchemaVersion) != "2018-10-08" {
		return fmt.Errorf("SchemaVersion %q: want 2018-10-08", aws.ToString(f.SchemaVersion))
	}
	if len(f.Types) == 0 || len(f.Resources) == 0 {
		return fmt.Errorf("the Types and Resources fields are required")
	}
	for _, r := range f.Resources {
		if aws.ToString(r.Type) == "" || aws.ToString(r.Id) == "" {
			return fmt.Errorf("a resource needs Type and Id")
		}
	}
	if f.Severity == nil || f.Severity.Label == "" && f.Severity.Normalized == nil {
		return fmt.Errorf("the Severity field needs Label or Normalized")
	}
	m := productARN.FindStringSubmatch(aws.ToString(f.ProductArn))
	if m == nil || m[1] != w.region() || m[2] != Account || m[3] != Account {
		return fmt.Errorf("ProductArn %s is not this account's default product in %s", aws.ToString(f.ProductArn), w.region())
	}
	if aws.ToString(f.AwsAccountId) != Account {
		return fmt.Errorf("AwsAccountId %s is not the caller's account", aws.ToString(f.AwsAccountId))
	}
	for _, t := range []string{aws.ToString(f.CreatedAt), aws.ToString(f.UpdatedAt)} {
		if _, err := time.Parse(time.RFC3339Nano, t); err != nil {
			return fmt.Errorf("timestamp %q: %w", t, err)
		}
	}
	return nil
}
