package fakeaws

import (
	"context"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	ec2types "github.com/aws/aws-sdk-go-v2/service/ec2/types"
	"github.com/aws/aws-sdk-go-v2/service/eventbridge"
	ebtypes "github.com/aws/aws-sdk-go-v2/service/eventbridge/types"
	"github.com/aws/aws-sdk-go-v2/service/iam"
	"github.com/aws/aws-sdk-go-v2/service/kms"
	"github.com/aws/aws-sdk-go-v2/service/securityhub"
	shtypes "github.com/aws/aws-sdk-go-v2/service/securityhub/types"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	sqstypes "github.com/aws/aws-sdk-go-v2/service/sqs/types"
	"github.com/aws/aws-sdk-go-v2/service/ssm"
	ssmtypes "github.com/aws/aws-sdk-go-v2/service/ssm/types"
)

// TestDocumentedRules: the fake refuses what AWS's API references say the service
// refuses, with the service's error code. Each case names its page. The requests break
// the rules on purpose, so the world is not told to fail the test on them.
func TestDocumentedRules(t *testing.T) {
	w := NewAccount(nil)
	w.AddInstance("i-00000000000000001", "i4i.large", Profile(KeyUser), nil, time.Now())
	w.AddDocument("two-steps", `{"schemaVersion":"2.2","parameters":{"P":{"type":"String","default":"a","allowedPattern":"^[a-z]+$"},"V":{"type":"String","default":"x","allowedValues":["x","y"]}},
		"mainSteps":[{"action":"aws:downloadContent","name":"download"},{"action":"aws:runShellScript","name":"runScript"}]}`, true)
	cfg := w.Config()
	ctx := context.Background()
	ec2c, ssmc, iamc, kmsc := ec2.NewFromConfig(cfg), ssm.NewFromConfig(cfg), iam.NewFromConfig(cfg), kms.NewFromConfig(cfg)
	ids := func(n int) []string {
		out := make([]string, n)
		for i := range out {
			out[i] = fmt.Sprintf("i-%017d", i)
		}
		return out
	}
	sent, err := ssmc.SendCommand(ctx, &ssm.SendCommandInput{DocumentName: aws.String("two-steps"), InstanceIds: []string{"i-00000000000000001"}})
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name, code string
		call       func() error
	}{
		{"SendCommand: at most 50 instance ids", "ValidationException", func() error {
			_, err := ssmc.SendCommand(ctx, &ssm.SendCommandInput{DocumentName: aws.String("two-steps"), InstanceIds: ids(51)})
			return err
		}},
		{"SendCommand: MaxConcurrency is not 0", "ValidationException", func() error {
			_, err := ssmc.SendCommand(ctx, &ssm.SendCommandInput{DocumentName: aws.String("two-steps"), InstanceIds: []string{"i-00000000000000001"}, MaxConcurrency: aws.String("0")})
			return err
		}},
		{"SendCommand: MaxConcurrency at most 100%", "ValidationException", func() error {
			_, err := ssmc.SendCommand(ctx, &ssm.SendCommandInput{DocumentName: aws.String("two-steps"), InstanceIds: []string{"i-00000000000000001"}, MaxConcurrency: aws.String("101%")})
			return err
		}},
		{"SendCommand: MaxConcurrency at most 7 characters", "ValidationException", func() error {
			_, err := ssmc.SendCommand(ctx, &ssm.SendCommandInput{DocumentName: aws.String("two-steps"), InstanceIds: []string{"i-00000000000000001"}, MaxConcurrency: aws.String("12345678")})
			return err
		}},
		{"SendCommand: MaxErrors has no leading zero", "ValidationException", func() error {
			_, err := ssmc.SendCommand(ctx, &ssm.SendCommandInput{DocumentName: aws.String("two-steps"), InstanceIds: []string{"i-00000000000000001"}, MaxErrors: aws.String("05")})
			return err
		}},
		{"SendCommand: MaxErrors is a number or a percentage", "ValidationException", func() error {
			_, err := ssmc.SendCommand(ctx, &ssm.SendCommandInput{DocumentName: aws.String("two-steps"), InstanceIds: []string{"i-00000000000000001"}, MaxErrors: aws.String("all")})
			return err
		}},
		{"SendCommand: only parameters the document defines", "InvalidParameters", func() error {
			_, err := ssmc.SendCommand(ctx, &ssm.SendCommandInput{DocumentName: aws.String("two-steps"), InstanceIds: []string{"i-00000000000000001"}, Parameters: map[string][]string{"Q": {"x"}}})
			return err
		}},
		{"SendCommand: a value outside allowedPattern", "InvalidParameters", func() error {
			_, err := ssmc.SendCommand(ctx, &ssm.SendCommandInput{DocumentName: aws.String("two-steps"), InstanceIds: []string{"i-00000000000000001"}, Parameters: map[string][]string{"P": {"a;b"}}})
			return err
		}},
		// allowedValues is "An array of values allowed for the parameter"; the
		// service holds a command to it, the SSM Agent does not (PlanCommand).
		{"SendCommand: a value outside allowedValues", "InvalidParameters", func() error {
			_, err := ssmc.SendCommand(ctx, &ssm.SendCommandInput{DocumentName: aws.String("two-steps"), InstanceIds: []string{"i-00000000000000001"}, Parameters: map[string][]string{"V": {"z"}}})
			return err
		}},
		{"SendCommand: a version that does not exist", "InvalidDocumentVersion", func() error {
			_, err := ssmc.SendCommand(ctx, &ssm.SendCommandInput{DocumentName: aws.String("two-steps"), DocumentVersion: aws.String("7"), InstanceIds: []string{"i-00000000000000001"}})
			return err
		}},
		{"GetCommandInvocation: a multi-step document needs PluginName", "InvalidPluginName", func() error {
			_, err := ssmc.GetCommandInvocation(ctx, &ssm.GetCommandInvocationInput{CommandId: sent.Command.CommandId, InstanceId: aws.String("i-00000000000000001")})
			return err
		}},
		{"GetCommandInvocation: the step's name, not the plugin's", "InvalidPluginName", func() error {
			_, err := ssmc.GetCommandInvocation(ctx, &ssm.GetCommandInvocationInput{CommandId: sent.Command.CommandId, InstanceId: aws.String("i-00000000000000001"), PluginName: aws.String("aws:runShellScript")})
			return err
		}},
		{"ListCommandInvocations: no ExecutionStage filter", "InvalidFilterKey", func() error {
			_, err := ssmc.ListCommandInvocations(ctx, &ssm.ListCommandInvocationsInput{Filters: []ssmtypes.CommandFilter{{Key: ssmtypes.CommandFilterKeyExecutionStage, Value: aws.String("Complete")}}})
			return err
		}},
		{"ListCommandInvocations: InvokedAfter takes a timestamp", "InvalidFilterValue", func() error {
			_, err := ssmc.ListCommandInvocations(ctx, &ssm.ListCommandInvocationsInput{Filters: []ssmtypes.CommandFilter{{Key: ssmtypes.CommandFilterKeyInvokedAfter, Value: aws.String("yesterday")}}})
			return err
		}},
		{"ListCommandInvocations: at most 50 a page", "ValidationException", func() error {
			_, err := ssmc.ListCommandInvocations(ctx, &ssm.ListCommandInvocationsInput{MaxResults: aws.Int32(51)})
			return err
		}},
		{"ListCommandInvocations: at most 5 filters", "ValidationException", func() error {
			f := ssmtypes.CommandFilter{Key: ssmtypes.CommandFilterKeyDocumentName, Value: aws.String("two-steps")}
			_, err := ssmc.ListCommandInvocations(ctx, &ssm.ListCommandInvocationsInput{Filters: []ssmtypes.CommandFilter{f, f, f, f, f, f}})
			return err
		}},
		{"DescribeInstanceInformation: a filter takes at most 100 values", "InvalidInstanceInformationFilterValue", func() error {
			_, err := ssmc.DescribeInstanceInformation(ctx, &ssm.DescribeInstanceInformationInput{Filters: []ssmtypes.InstanceInformationStringFilter{{Key: aws.String("InstanceIds"), Values: ids(101)}}})
			return err
		}},
		{"DescribeInstances: MaxResults with InstanceIds", "InvalidParameterCombination", func() error {
			_, err := ec2c.DescribeInstances(ctx, &ec2.DescribeInstancesInput{InstanceIds: []string{"i-00000000000000001"}, MaxResults: aws.Int32(5)})
			return err
		}},
		{"DescribeInstances: an unknown id fails the call", "InvalidInstanceID.NotFound", func() error {
			_, err := ec2c.DescribeInstances(ctx, &ec2.DescribeInstancesInput{InstanceIds: []string{"i-00000000000000001", "i-0ffffffffffffffff"}})
			return err
		}},
		{"DescribeInstances: more than 200 filter values", "FilterLimitExceeded", func() error {
			_, err := ec2c.DescribeInstances(ctx, &ec2.DescribeInstancesInput{Filters: []ec2types.Filter{{Name: aws.String("instance-id"), Values: ids(201)}}})
			return err
		}},
		{"CreateTags: the aws: prefix is reserved", "InvalidParameterValue", func() error {
			_, err := ec2c.CreateTags(ctx, &ec2.CreateTagsInput{Resources: []string{"i-00000000000000001"}, Tags: []ec2types.Tag{{Key: aws.String("aws:x"), Value: aws.String("y")}}})
			return err
		}},
		{"SimulatePrincipalPolicy: CallerArn must be a user", "InvalidInput", func() error {
			_, err := iamc.SimulatePrincipalPolicy(ctx, &iam.SimulatePrincipalPolicyInput{PolicySourceArn: aws.String(KeyUser), ActionNames: []string{"kms:Decrypt"},
				ResourcePolicy: aws.String(KeyPolicy), CallerArn: aws.String(KeyUser)})
			return err
		}},
		{"SimulatePrincipalPolicy: a role with a ResourcePolicy needs a CallerArn", "InvalidInput", func() error {
			_, err := iamc.SimulatePrincipalPolicy(ctx, &iam.SimulatePrincipalPolicyInput{PolicySourceArn: aws.String(KeyUser), ActionNames: []string{"kms:Decrypt"}, ResourcePolicy: aws.String(KeyPolicy)})
			return err
		}},
		{"ListGrants: Limit 1 to 100", "ValidationException", func() error {
			_, err := kmsc.ListGrants(ctx, &kms.ListGrantsInput{KeyId: aws.String(KeyARN), Limit: aws.Int32(101)})
			return err
		}},
		{"GetKeyRotationStatus: no alias", "NotFoundException", func() error {
			_, err := kmsc.GetKeyRotationStatus(ctx, &kms.GetKeyRotationStatusInput{KeyId: aws.String("alias/storecrypt")})
			return err
		}},
		{"SendMessageBatch: at most 10 entries", "TooManyEntriesInBatchRequest", func() error {
			var entries []sqstypes.SendMessageBatchRequestEntry
			for i := range 11 {
				entries = append(entries, sqstypes.SendMessageBatchRequestEntry{Id: aws.String(strconv.Itoa(i)), MessageBody: aws.String("x")})
			}
			_, err := sqs.NewFromConfig(cfg).SendMessageBatch(ctx, &sqs.SendMessageBatchInput{QueueUrl: aws.String("https://sqs/q"), Entries: entries})
			return err
		}},
		{"SendMessageBatch: ids unique", "BatchEntryIdsNotDistinct", func() error {
			_, err := sqs.NewFromConfig(cfg).SendMessageBatch(ctx, &sqs.SendMessageBatchInput{QueueUrl: aws.String("https://sqs/q"), Entries: []sqstypes.SendMessageBatchRequestEntry{
				{Id: aws.String("a"), MessageBody: aws.String("x")}, {Id: aws.String("a"), MessageBody: aws.String("y")}}})
			return err
		}},
		{"ChangeMessageVisibilityBatch: at most 10 entries", "TooManyEntriesInBatchRequest", func() error {
			var entries []sqstypes.ChangeMessageVisibilityBatchRequestEntry
			for i := range 11 {
				entries = append(entries, sqstypes.ChangeMessageVisibilityBatchRequestEntry{Id: aws.String(strconv.Itoa(i)), ReceiptHandle: aws.String("x")})
			}
			_, err := sqs.NewFromConfig(cfg).ChangeMessageVisibilityBatch(ctx, &sqs.ChangeMessageVisibilityBatchInput{QueueUrl: aws.String("https://sqs/q"), Entries: entries})
			return err
		}},
		{"PutEvents: at most 10 entries", "ValidationException", func() error {
			entries := make([]ebtypes.PutEventsRequestEntry, 11)
			_, err := eventbridge.NewFromConfig(cfg).PutEvents(ctx, &eventbridge.PutEventsInput{Entries: entries})
			return err
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.call()
			if err == nil || !strings.Contains(err.Error(), tc.code) {
				t.Errorf("got %v, want %s", err, tc.code)
			}
		})
	}
	// The run step's output, by its name.
	if _, err := ssmc.GetCommandInvocation(ctx, &ssm.GetCommandInvocationInput{CommandId: sent.Command.CommandId, InstanceId: aws.String("i-00000000000000001"), PluginName: aws.String("runScript")}); err != nil {
		t.Errorf("the run step by name: %v", err)
	}
}

// TestSecurityHubRules: BatchImportFindings as the Security Hub User Guide documents it.
func TestSecurityHubRules(t *testing.T) {
	w := NewAccount(nil) // a batch over the limit on purpose
	w.SecurityHubEnabled = true
	hub := securityhub.NewFromConfig(w.Config())
	ctx := context.Background()
	at := "2026-11-28T09:00:00Z"
	finding := func(id, created, updated string) shtypes.AwsSecurityFinding {
		return shtypes.AwsSecurityFinding{SchemaVersion: aws.String("2018-10-08"), Id: aws.String(id), GeneratorId: aws.String("g"), AwsAccountId: aws.String(Account),
			ProductArn: aws.String("arn:aws:securityhub:" + Region + ":" + Account + ":product/" + Account + "/default"), Types: []string{"t"},
			CreatedAt: aws.String(created), UpdatedAt: aws.String(updated), Title: aws.String("x"), Description: aws.String("y"),
			Severity: &shtypes.Severity{Label: shtypes.SeverityLabelHigh}, Resources: []shtypes.Resource{{Type: aws.String("AwsEc2Instance"), Id: aws.String("i")}}}
	}
	failed := func(fs ...shtypes.AwsSecurityFinding) int32 {
		t.Helper()
		out, err := hub.BatchImportFindings(ctx, &securityhub.BatchImportFindingsInput{Findings: fs})
		if err != nil {
			t.Fatal(err)
		}
		return aws.ToInt32(out.FailedCount)
	}
	if n := failed(finding("a", at, at)); n != 0 {
		t.Errorf("a valid new finding: %d failed", n)
	}
	if n := failed(finding("b", at, "2026-11-28T10:00:00Z")); n != 1 {
		t.Errorf("a new finding whose CreatedAt is not its UpdatedAt: %d failed, want 1", n)
	}
	otherAccount := finding("c", at, at)
	otherAccount.AwsAccountId = aws.String("444455556666")
	if n := failed(otherAccount); n != 1 {
		t.Errorf("a finding for another account: %d failed, want 1", n)
	}
	older := finding("a", at, at)
	older.Title = aws.String("changed")
	if n := failed(older); n != 0 || aws.ToString(w.Findings["a"].Title) != "x" {
		t.Errorf("an update not newer than the finding: %d failed, title %q; want it ignored", n, aws.ToString(w.Findings["a"].Title))
	}
	for _, tc := range []struct {
		name   string
		change func(*shtypes.AwsSecurityFinding)
	}{
		{"an empty ProductFields value", func(f *shtypes.AwsSecurityFinding) { f.ProductFields = map[string]string{"k": ""} }},
		{"a blank ProductFields value", func(f *shtypes.AwsSecurityFinding) { f.ProductFields = map[string]string{"k": " \t"} }},
		{"a ProductFields key of 129 characters", func(f *shtypes.AwsSecurityFinding) {
			f.ProductFields = map[string]string{strings.Repeat("k", 129): "v"}
		}},
		{"a ProductFields value of 2049 characters", func(f *shtypes.AwsSecurityFinding) {
			f.ProductFields = map[string]string{"k": strings.Repeat("v", 2049)}
		}},
		{"51 ProductFields", func(f *shtypes.AwsSecurityFinding) {
			f.ProductFields = map[string]string{}
			for n := range 51 {
				f.ProductFields[fmt.Sprint(n)] = "v"
			}
		}},
		{"a title of 257 characters", func(f *shtypes.AwsSecurityFinding) { f.Title = aws.String(strings.Repeat("t", 257)) }},
		{"no severity anywhere", func(f *shtypes.AwsSecurityFinding) { f.Severity = nil }},
		{"no types anywhere", func(f *shtypes.AwsSecurityFinding) { f.Types = nil }},
	} {
		f := finding("refused", at, at)
		tc.change(&f)
		if n := failed(f); n != 1 {
			t.Errorf("%s: got %d failed, want 1", tc.name, n)
		}
	}
	many := make([]shtypes.AwsSecurityFinding, 101)
	for i := range many {
		many[i] = finding(fmt.Sprint(i), at, at)
	}
	if _, err := hub.BatchImportFindings(ctx, &securityhub.BatchImportFindingsInput{Findings: many}); err == nil {
		t.Error("101 findings in a batch were taken")
	}
	w.SecurityHubEnabled = false
	out, err := hub.BatchImportFindings(ctx, &securityhub.BatchImportFindingsInput{Findings: []shtypes.AwsSecurityFinding{finding("d", at, at)}})
	if err != nil || aws.ToInt32(out.FailedCount) != 1 || aws.ToString(out.FailedFindings[0].ErrorCode) != "InvalidAccess" {
		t.Errorf("Security Hub not enabled: %+v %v", out, err)
	}
}

// TestSecurityHubProviderFields: Severity and Types as "Using FindingProviderFields"
// (Security Hub User Guide) settles them. A new finding's top level takes
// FindingProviderFields'; after a customer's BatchUpdateFindings the provider's imports
// change FindingProviderFields and never the customer's top-level values.
func TestSecurityHubProviderFields(t *testing.T) {
	w := NewAccount(t)
	w.SecurityHubEnabled = true
	hub := securityhub.NewFromConfig(w.Config())
	ctx := context.Background()
	product := "arn:aws:securityhub:" + Region + ":" + Account + ":product/" + Account + "/default"
	finding := func(updated string, provided shtypes.SeverityLabel, top *shtypes.Severity) shtypes.AwsSecurityFinding {
		return shtypes.AwsSecurityFinding{SchemaVersion: aws.String("2018-10-08"), Id: aws.String("f"), GeneratorId: aws.String("g"), AwsAccountId: aws.String(Account),
			ProductArn: aws.String(product), CreatedAt: aws.String("2026-11-28T09:00:00Z"), UpdatedAt: aws.String(updated), Title: aws.String("x"), Description: aws.String("y"),
			Severity: top, FindingProviderFields: &shtypes.FindingProviderFields{Severity: &shtypes.FindingProviderSeverity{Label: provided}, Types: []string{"provided"}},
			Resources: []shtypes.Resource{{Type: aws.String("AwsEc2Instance"), Id: aws.String("i")}}}
	}
	imported := func(f shtypes.AwsSecurityFinding) shtypes.AwsSecurityFinding {
		t.Helper()
		out, err := hub.BatchImportFindings(ctx, &securityhub.BatchImportFindingsInput{Findings: []shtypes.AwsSecurityFinding{f}})
		if err != nil || aws.ToInt32(out.FailedCount) != 0 {
			t.Fatalf("importing: %v %+v", err, out)
		}
		return w.Findings["f"]
	}
	// A new finding: FindingProviderFields wins over a top-level value sent with it.
	got := imported(finding("2026-11-28T09:00:00Z", shtypes.SeverityLabelHigh, &shtypes.Severity{Label: shtypes.SeverityLabelLow}))
	if got.Severity.Label != shtypes.SeverityLabelHigh || !slices.Equal(got.Types, []string{"provided"}) {
		t.Errorf("a new finding: got top-level %s %v, want HIGH [provided]", got.Severity.Label, got.Types)
	}
	// The provider updates it through FindingProviderFields: both levels follow.
	got = imported(finding("2026-11-28T10:00:00Z", shtypes.SeverityLabelMedium, nil))
	if got.Severity.Label != shtypes.SeverityLabelMedium {
		t.Errorf("an update: got top-level %s, want MEDIUM", got.Severity.Label)
	}
	// A customer changes severity and types; the provider's later imports, in
	// FindingProviderFields or at the top level, leave them.
	if _, err := hub.BatchUpdateFindings(ctx, &securityhub.BatchUpdateFindingsInput{FindingIdentifiers: []shtypes.AwsSecurityFindingIdentifier{{Id: aws.String("f"), ProductArn: aws.String(product)}},
		Severity: &shtypes.SeverityUpdate{Label: shtypes.SeverityLabelCritical}, Types: []string{"customer"}}); err != nil {
		t.Fatal(err)
	}
	for n, top := range []*shtypes.Severity{nil, {Label: shtypes.SeverityLabelLow}} {
		got = imported(finding(fmt.Sprintf("2026-11-28T1%d:00:00Z", n+1), shtypes.SeverityLabelInformational, top))
		if got.Severity.Label != shtypes.SeverityLabelCritical || !slices.Equal(got.Types, []string{"customer"}) || got.FindingProviderFields.Severity.Label != shtypes.SeverityLabelInformational {
			t.Errorf("after the customer's update, top-level %v: got %s %v (provided %s), want CRITICAL [customer] (provided INFORMATIONAL)",
				top, got.Severity.Label, got.Types, got.FindingProviderFields.Severity.Label)
		}
	}
	ids := make([]shtypes.StringFilter, 21)
	for n := range ids {
		ids[n] = shtypes.StringFilter{Value: aws.String(fmt.Sprint(n)), Comparison: shtypes.StringFilterComparisonEquals}
	}
	if _, err := hub.GetFindings(ctx, &securityhub.GetFindingsInput{Filters: &shtypes.AwsSecurityFindingFilters{Id: ids}}); err == nil {
		t.Error("GetFindings took 21 values for one attribute, want at most 20")
	}
}

// TestChangeMessageVisibilityBatch: each entry succeeds or fails on its own (SQS API
// Reference, ChangeMessageVisibilityBatch and ChangeMessageVisibility): only a receipt
// handle SQS issued, only 0 to 43,200 seconds.
func TestChangeMessageVisibilityBatch(t *testing.T) {
	w := NewAccount(t)
	rec := w.Receive("m-1", "body", 2)
	if rec.Attributes["ApproximateReceiveCount"] != "2" || rec.ReceiptHandle == "" {
		t.Fatalf("record %+v", rec)
	}
	out, err := sqs.NewFromConfig(w.Config()).ChangeMessageVisibilityBatch(context.Background(), &sqs.ChangeMessageVisibilityBatchInput{
		QueueUrl: aws.String("https://sqs.us-east-1.amazonaws.com/111122223333/storecrypt-launch"),
		Entries: []sqstypes.ChangeMessageVisibilityBatchRequestEntry{
			{Id: aws.String("ok"), ReceiptHandle: aws.String(rec.ReceiptHandle), VisibilityTimeout: 30},
			{Id: aws.String("forged"), ReceiptHandle: aws.String("rh-forged"), VisibilityTimeout: 30},
			{Id: aws.String("too-long"), ReceiptHandle: aws.String(rec.ReceiptHandle), VisibilityTimeout: 43201},
		}})
	if err != nil {
		t.Fatal(err)
	}
	failed := map[string]string{}
	for _, f := range out.Failed {
		failed[aws.ToString(f.Id)] = aws.ToString(f.Code)
	}
	if len(out.Successful) != 1 || aws.ToString(out.Successful[0].Id) != "ok" ||
		failed["forged"] != "ReceiptHandleIsInvalid" || failed["too-long"] != "InvalidParameterValue" {
		t.Errorf("successful %+v, failed %v", out.Successful, failed)
	}
	if got := w.InFlight[rec.ReceiptHandle]; got == nil || *got != 30*time.Second {
		t.Errorf("visible again after %v, want 30s", got)
	}
}

// TestRateControlsAccepted: the values SendCommand's patterns allow pass, and the command
// records them and where its output goes.
func TestRateControlsAccepted(t *testing.T) {
	w := NewAccount(t)
	w.AddInstance("i-00000000000000001", "i4i.large", Profile(KeyUser), nil, time.Now())
	w.AddDocument("one-step", `{"schemaVersion":"2.2","mainSteps":[{"action":"aws:runShellScript","name":"run"}]}`, true)
	ssmc := ssm.NewFromConfig(w.Config())
	for _, tc := range []struct{ concurrency, errors string }{
		{"1", "0"}, {"50", "0%"}, {"9%", "9%"}, {"10%", "10%"}, {"100%", "100%"}, {"1000000", "1000000"},
	} {
		_, err := ssmc.SendCommand(context.Background(), &ssm.SendCommandInput{DocumentName: aws.String("one-step"), InstanceIds: []string{"i-00000000000000001"},
			MaxConcurrency: aws.String(tc.concurrency), MaxErrors: aws.String(tc.errors),
			CloudWatchOutputConfig: &ssmtypes.CloudWatchOutputConfig{CloudWatchOutputEnabled: true, CloudWatchLogGroupName: aws.String("agents")}})
		if err != nil {
			t.Errorf("MaxConcurrency %q, MaxErrors %q: %v", tc.concurrency, tc.errors, err)
			continue
		}
		var c *Command
		w.With(func() { c = w.Commands[len(w.Commands)-1] })
		if c.MaxConcurrency != tc.concurrency || c.MaxErrors != tc.errors || c.LogGroup != "agents" {
			t.Errorf("recorded %q, %q, %q; want %q, %q, agents", c.MaxConcurrency, c.MaxErrors, c.LogGroup, tc.concurrency, tc.errors)
		}
	}
}
