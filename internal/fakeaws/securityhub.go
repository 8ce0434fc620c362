package fakeaws

import (
	"fmt"
	"regexp"
	"slices"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/securityhub"
	shtypes "github.com/aws/aws-sdk-go-v2/service/securityhub/types"
)

// Security Hub's findings, by the Security Hub User Guide ("Required top-level ASFF
// attributes", "Using BatchImportFindings to create and update findings" with its "Using
// FindingProviderFields", "Using custom product integrations", ASFF "ProductFields") and
// the API model (AwsSecurityFinding, FieldMap, GetFindings):
//   - up to 100 findings a batch;
//   - AwsAccountId, CreatedAt, Description, GeneratorId, Id, ProductArn, Resources (each
//     with Type and Id), SchemaVersion ("2018-10-08"), Title and UpdatedAt are required,
//     and so are Severity (Label or Normalized) and Types, at the top level or in
//     FindingProviderFields;
//   - Title is at most 256 characters, Description 1024; ProductFields at most 50 pairs,
//     keys up to 128 characters, values up to 2048, none empty or blank (NonEmptyString,
//     .*\S.*);
//   - a custom provider's ProductArn is arn:<partition>:securityhub:<region>:<account>:
//     product/<account>/default, and AwsAccountId is the caller's account;
//   - a new finding's CreatedAt equals its UpdatedAt; an update whose UpdatedAt is not
//     after the stored one is ignored;
//   - Severity and Types: FindingProviderFields takes what the provider gives (in it, or
//     else at the top level). The top level takes FindingProviderFields' value on a new
//     finding, the provider's top-level value (if any, else FindingProviderFields') on an
//     update, and on an update nothing at all once a customer changed it with
//     BatchUpdateFindings;
//   - with Security Hub not enabled, every finding fails with InvalidAccess, and
//     GetFindings is an InvalidAccessException;
//   - GetFindings filters: "For each attribute, you can provide up to 20 filter values";
//     MaxResults 1 to 100.
//
// Refused findings are answered in FailedFindings, not as an error of the call. CreatedAt
// is stored as sent: the documentation gives no rule for an update that changes it, so
// the tests read it back.
func init() {
	register("SecurityHub", map[string]handler{
		"BatchImportFindings": (*World).batchImportFindings,
		"BatchUpdateFindings": (*World).batchUpdateFindings,
		"GetFindings":         (*World).getFindings,
	})
}

var (
	productARN = regexp.MustCompile(`^arn:aws[a-z-]*:securityhub:([a-z0-9-]+):(\d{12}):product/(\d{12})/default$`)
	nonEmpty   = regexp.MustCompile(`.*\S.*`)
)

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
			fail(f, "InvalidAccess", "Account "+w.account()+" is not subscribed to AWS Security Hub")
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
		w.Findings[id] = w.providerFields(f, old, exists)
		succeeded++
	}
	out.SuccessCount, out.FailedCount = aws.Int32(succeeded), aws.Int32(int32(len(out.FailedFindings)))
	return out, nil
}

// providerFields settles Severity and Types as "Using FindingProviderFields" says.
func (w *World) providerFields(f, old shtypes.AwsSecurityFinding, exists bool) shtypes.AwsSecurityFinding {
	given := shtypes.FindingProviderFields{}
	if f.FindingProviderFields != nil {
		given = *f.FindingProviderFields
	}
	severity, types := f.Severity, f.Types
	if given.Severity == nil {
		given.Severity = &shtypes.FindingProviderSeverity{Label: f.Severity.Label, Original: f.Severity.Original}
	}
	if len(given.Types) == 0 {
		given.Types = f.Types
	}
	if !exists || severity == nil {
		severity = &shtypes.Severity{Label: given.Severity.Label, Original: given.Severity.Original}
	}
	if !exists || len(types) == 0 {
		types = given.Types
	}
	if exists && w.customerSet[aws.ToString(f.Id)]["Severity"] {
		severity = old.Severity
	}
	if exists && w.customerSet[aws.ToString(f.Id)]["Types"] {
		types = old.Types
	}
	f.FindingProviderFields, f.Severity, f.Types = &given, severity, types
	return f
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
	if len(aws.ToString(f.Title)) > 256 || len(aws.ToString(f.Description)) > 1024 {
		return fmt.Errorf("a title is at most 256 characters and a description 1024")
	}
	provided := f.FindingProviderFields
	if provided == nil {
		provided = &shtypes.FindingProviderFields{}
	}
	if len(f.Types) == 0 && len(provided.Types) == 0 || len(f.Resources) == 0 {
		return fmt.Errorf("the Types and Resources fields are required")
	}
	for _, r := range f.Resources {
		if aws.ToString(r.Type) == "" || aws.ToString(r.Id) == "" {
			return fmt.Errorf("a resource needs Type and Id")
		}
	}
	switch {
	case provided.Severity != nil && provided.Severity.Label != "":
	case f.Severity != nil && (f.Severity.Label != "" || f.Severity.Normalized != nil):
	default:
		return fmt.Errorf("the Severity field needs Label or Normalized")
	}
	if err := validProductFields(f.ProductFields); err != nil {
		return err
	}
	m := productARN.FindStringSubmatch(aws.ToString(f.ProductArn))
	if m == nil || m[1] != w.region() || m[2] != w.account() || m[3] != w.account() {
		return fmt.Errorf("ProductArn %s is not this account's default product in %s", aws.ToString(f.ProductArn), w.region())
	}
	if aws.ToString(f.AwsAccountId) != w.account() {
		return fmt.Errorf("AwsAccountId %s is not the caller's account", aws.ToString(f.AwsAccountId))
	}
	for _, t := range []string{aws.ToString(f.CreatedAt), aws.ToString(f.UpdatedAt)} {
		if _, err := time.Parse(time.RFC3339Nano, t); err != nil {
			return fmt.Errorf("timestamp %q: %w", t, err)
		}
	}
	return nil
}

func validProductFields(fields map[string]string) error {
	if len(fields) > 50 {
		return fmt.Errorf("ProductFields holds %d pairs: at most 50", len(fields))
	}
	for k, v := range fields {
		if !nonEmpty.MatchString(k) || !nonEmpty.MatchString(v) {
			return fmt.Errorf("ProductFields %q=%q: keys and values must match .*\\S.*", k, v)
		}
		if len(k) > 128 || len(v) > 2048 {
			return fmt.Errorf("ProductFields %q: keys are at most 128 characters, values 2048", k)
		}
	}
	return nil
}

// batchUpdateFindings is a customer's update (BatchUpdateFindings): it changes the
// top-level Severity and Types, which the provider's later imports then leave alone.
func (w *World) batchUpdateFindings(params any) (any, error) {
	in := params.(*securityhub.BatchUpdateFindingsInput)
	if len(in.FindingIdentifiers) < 1 || len(in.FindingIdentifiers) > 100 {
		return nil, &shtypes.InvalidInputException{Message: aws.String("FindingIdentifiers must hold 1 to 100 findings")}
	}
	if !w.SecurityHubEnabled {
		return nil, &shtypes.InvalidAccessException{Message: aws.String("Account " + w.account() + " is not subscribed to AWS Security Hub")}
	}
	out := &securityhub.BatchUpdateFindingsOutput{}
	for _, id := range in.FindingIdentifiers {
		f, ok := w.Findings[aws.ToString(id.Id)]
		if !ok || aws.ToString(f.ProductArn) != aws.ToString(id.ProductArn) {
			out.UnprocessedFindings = append(out.UnprocessedFindings, shtypes.BatchUpdateFindingsUnprocessedFinding{FindingIdentifier: &id,
				ErrorCode: aws.String("FindingNotFound"), ErrorMessage: aws.String("Finding Not Found")})
			continue
		}
		if w.customerSet == nil {
			w.customerSet = map[string]map[string]bool{}
		}
		set := w.customerSet[aws.ToString(id.Id)]
		if set == nil {
			set = map[string]bool{}
			w.customerSet[aws.ToString(id.Id)] = set
		}
		if in.Severity != nil {
			f.Severity = &shtypes.Severity{Label: in.Severity.Label}
			set["Severity"] = true
		}
		if len(in.Types) > 0 {
			f.Types = slices.Clone(in.Types)
			set["Types"] = true
		}
		w.Findings[aws.ToString(id.Id)] = f
		out.ProcessedFindings = append(out.ProcessedFindings, id)
	}
	return out, nil
}

// getFindings answers the one filter the functions use: Id EQUALS, up to 20 values.
func (w *World) getFindings(params any) (any, error) {
	in := params.(*securityhub.GetFindingsInput)
	if !w.SecurityHubEnabled {
		return nil, &shtypes.InvalidAccessException{Message: aws.String("Account " + w.account() + " is not subscribed to AWS Security Hub")}
	}
	if n := aws.ToInt32(in.MaxResults); in.MaxResults != nil && (n < 1 || n > 100) {
		return nil, &shtypes.InvalidInputException{Message: aws.String("MaxResults must be 1 to 100")}
	}
	if in.Filters == nil || len(in.Filters.Id) == 0 {
		return nil, fmt.Errorf("fakeaws: GetFindings answers only an Id filter")
	}
	if len(in.Filters.Id) > 20 {
		return nil, &shtypes.InvalidInputException{Message: aws.String("at most 20 filter values for an attribute")}
	}
	out := &securityhub.GetFindingsOutput{Findings: []shtypes.AwsSecurityFinding{}}
	for _, filter := range in.Filters.Id {
		if filter.Comparison != shtypes.StringFilterComparisonEquals {
			return nil, fmt.Errorf("fakeaws: GetFindings answers only Id EQUALS")
		}
		if f, ok := w.Findings[aws.ToString(filter.Value)]; ok {
			out.Findings = append(out.Findings, f)
		}
	}
	return out, nil
}
