//go:build integ

// Package integ is storecrypt in a real AWS account: `make integ` deploys the stack
// under its own names, launches one small instance-store instance with the stack's
// instance profile, waits for the result function to tag it encrypted, reads the
// agent's report and checks the mount over SSM, and then removes everything it made,
// the resources the stack retains included, whether the test passed or not.
//
// It needs only credentials and a region (AWS_REGION or the profile's), a default VPC
// whose subnets give public IPs (or STORECRYPT_INTEG_SUBNET, a subnet that reaches SSM),
// and a CDK-bootstrapped region. See docs/contributing.md for what it costs.
package integ

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/service/cloudformation"
	"github.com/aws/aws-sdk-go-v2/service/cloudwatchlogs"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	ec2types "github.com/aws/aws-sdk-go-v2/service/ec2/types"
	"github.com/aws/aws-sdk-go-v2/service/kms"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	s3types "github.com/aws/aws-sdk-go-v2/service/s3/types"
	"github.com/aws/aws-sdk-go-v2/service/ssm"
	ssmtypes "github.com/aws/aws-sdk-go-v2/service/ssm/types"
	"github.com/aws/aws-sdk-go-v2/service/sts"

	"github.com/storecrypt/storecrypt/internal/contract"
	"github.com/storecrypt/storecrypt/internal/fleet"
	"github.com/storecrypt/storecrypt/internal/ledger"
)

// instanceType is the cheapest instance-store type on Graviton: one 59 GB NVMe disk.
const instanceType = "c6gd.medium"

// ami is Amazon Linux 2023 for arm64, whose SSM agent is new enough for ENV_VAR.
const ami = "/aws/service/ami-amazon-linux-latest/al2023-ami-kernel-default-arm64"

type account struct {
	cfg    aws.Config
	cfn    *cloudformation.Client
	ec2    *ec2.Client
	ssm    *ssm.Client
	kms    *kms.Client
	s3     *s3.Client
	logs   *cloudwatchlogs.Client
	suffix string
	stack  string
}

func TestRealAccount(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 55*time.Minute)
	defer cancel()
	cfg, err := config.LoadDefaultConfig(ctx)
	if err != nil {
		t.Fatalf("AWS configuration: %v", err)
	}
	id, err := sts.NewFromConfig(cfg).GetCallerIdentity(ctx, &sts.GetCallerIdentityInput{})
	if err != nil {
		t.Fatalf("no usable credentials (make integ needs them): %v", err)
	}
	suffix := make([]byte, 4)
	if _, err := rand.Read(suffix); err != nil {
		t.Fatal(err)
	}
	a := &account{cfg: cfg, cfn: cloudformation.NewFromConfig(cfg), ec2: ec2.NewFromConfig(cfg), ssm: ssm.NewFromConfig(cfg),
		kms: kms.NewFromConfig(cfg), s3: s3.NewFromConfig(cfg), logs: cloudwatchlogs.NewFromConfig(cfg), suffix: hex.EncodeToString(suffix)}
	a.stack = "StoreCryptInteg" + a.suffix
	t.Logf("account %s, region %s, stack %s", aws.ToString(id.Account), cfg.Region, a.stack)

	t.Cleanup(func() { a.destroy(t) })
	outputs := a.deploy(ctx, t)
	instance := a.launch(ctx, t, outputs["InstanceProfileName"])
	t.Cleanup(func() { a.terminate(t, instance) })

	tags := a.waitForStatus(ctx, t, instance)
	if tags[contract.TagStatus] != contract.StatusEncrypted {
		t.Fatalf("instance %s ended %s (%s)", instance, tags[contract.TagStatus], tags[contract.TagReason])
	}
	inv, err := a.ssm.GetCommandInvocation(ctx, &ssm.GetCommandInvocationInput{CommandId: aws.String(tags[contract.TagCommandID]),
		InstanceId: aws.String(instance), PluginName: aws.String(contract.DocumentRunStep)})
	if err != nil {
		t.Fatal(err)
	}
	rep := fleet.ParseReport(aws.ToString(inv.StandardOutputContent))
	if rep == nil || rep.Layout == nil || !rep.Layout.Mounted || rep.Layout.KeyID != outputs["KeyArn"] || rep.InstanceID != instance {
		t.Fatalf("the agent's report does not show the volume mounted under %s:\n%s", outputs["KeyArn"], aws.ToString(inv.StandardOutputContent))
	}
	out := a.shell(ctx, t, instance, "findmnt -no SOURCE,FSTYPE /mnt/instance-store", "cryptsetup status storecrypt")
	for _, want := range []string{"/dev/mapper/storecrypt", "aes-xts-plain64", "LUKS2"} {
		if !strings.Contains(out, want) {
			t.Errorf("the instance says:\n%s\nwant %q in it", out, want)
		}
	}
	a.outputStreamed(ctx, t, tags[contract.TagCommandID])
	a.inTheLedger(ctx, t, outputs[contract.OutputLedgerTable], instance, rep)
}

// inTheLedger: the result function recorded the launch with the agent's evidence, which
// also proves its role may write the table under the stack's key.
func (a *account) inTheLedger(ctx context.Context, t *testing.T, table, instance string, rep *contract.Report) {
	t.Helper()
	desc, err := a.ec2.DescribeInstances(ctx, &ec2.DescribeInstancesInput{InstanceIds: []string{instance}})
	if err != nil || len(desc.Reservations) == 0 || len(desc.Reservations[0].Instances) == 0 {
		t.Fatalf("describing %s: %v", instance, err)
	}
	l := &ledger.Ledger{DB: dynamodb.NewFromConfig(a.cfg), Table: table}
	it, err := l.Get(ctx, instance, aws.ToTime(desc.Reservations[0].Instances[0].LaunchTime))
	if err != nil || it == nil {
		t.Fatalf("no ledger item for %s in %s: %v", instance, table, err)
	}
	if it.Status != contract.StatusEncrypted || it.EncryptedAt == "" || it.LUKSUUID != rep.Layout.LUKSUUID || it.KeyState != "Enabled" {
		t.Errorf("the ledger item: %+v", it)
	}
	t.Logf("the ledger records %s encrypted at %s, %s s after launch", instance, it.EncryptedAt, it.SecondsToEncrypted)
}

// outputStreamed: the agent's output reached the stack's log group, which needs the
// instance role's logs permissions ("Configuring Amazon CloudWatch Logs for Run
// Command"); streams are named <command>/<instance>/<step>/stdout.
func (a *account) outputStreamed(ctx context.Context, t *testing.T, commandID string) {
	t.Helper()
	group := a.resource(ctx, t, "AWS::Logs::LogGroup", "AgentLogs")
	deadline := time.Now().Add(3 * time.Minute)
	for {
		out, err := a.logs.DescribeLogStreams(ctx, &cloudwatchlogs.DescribeLogStreamsInput{LogGroupName: aws.String(group), LogStreamNamePrefix: aws.String(commandID)})
		if err != nil {
			t.Fatal(err)
		}
		if len(out.LogStreams) > 0 {
			t.Logf("the command's output is in %s: %s", group, aws.ToString(out.LogStreams[0].LogStreamName))
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("no output of command %s in log group %s", commandID, group)
		}
		time.Sleep(15 * time.Second)
	}
}

// resource is the physical id of the stack's resource of a type whose logical id
// starts with prefix.
func (a *account) resource(ctx context.Context, t *testing.T, typ, prefix string) string {
	t.Helper()
	res, err := a.cfn.DescribeStackResources(ctx, &cloudformation.DescribeStackResourcesInput{StackName: aws.String(a.stack)})
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range res.StackResources {
		if aws.ToString(r.ResourceType) == typ && strings.HasPrefix(aws.ToString(r.LogicalResourceId), prefix) {
			return aws.ToString(r.PhysicalResourceId)
		}
	}
	t.Fatalf("the stack has no %s %s*", typ, prefix)
	return ""
}

// deploy runs `cdk deploy` for a stack of this run's own names and returns its outputs.
func (a *account) deploy(ctx context.Context, t *testing.T) map[string]string {
	t.Helper()
	outputs := filepath.Join(t.TempDir(), "outputs.json")
	if err := a.cdk(ctx, t, "deploy", a.stack, "--require-approval", "never", "--outputs-file", outputs); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(outputs)
	if err != nil {
		t.Fatal(err)
	}
	var all map[string]map[string]string
	if err := json.Unmarshal(b, &all); err != nil {
		t.Fatal(err)
	}
	return all[a.stack]
}

func (a *account) cdk(ctx context.Context, t *testing.T, args ...string) error {
	t.Helper()
	root, err := filepath.Abs(filepath.Join("..", ".."))
	if err != nil {
		return err
	}
	args = append(args, "--no-notices", "-c", "stackName="+a.stack, "-c", "documentName=storecrypt-integ-"+a.suffix,
		"-c", "keyAlias=alias/storecrypt-integ-"+a.suffix)
	cmd := exec.CommandContext(ctx, filepath.Join(root, "node_modules", ".bin", "cdk"), args...)
	cmd.Dir = root
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	t.Logf("cdk %s", strings.Join(args, " "))
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("cdk %s: %w\n%s", args[0], err, out.String())
	}
	return nil
}

// launch starts the instance, retrying while IAM propagates the new instance profile.
func (a *account) launch(ctx context.Context, t *testing.T, profile string) string {
	t.Helper()
	image, err := a.ssm.GetParameter(ctx, &ssm.GetParameterInput{Name: aws.String(ami)})
	if err != nil {
		t.Fatal(err)
	}
	typ := os.Getenv("STORECRYPT_INTEG_TYPE")
	if typ == "" {
		typ = instanceType
	}
	in := &ec2.RunInstancesInput{
		ImageId: image.Parameter.Value, InstanceType: ec2types.InstanceType(typ), MinCount: aws.Int32(1), MaxCount: aws.Int32(1),
		IamInstanceProfile:                &ec2types.IamInstanceProfileSpecification{Name: aws.String(profile)},
		MetadataOptions:                   &ec2types.InstanceMetadataOptionsRequest{HttpTokens: ec2types.HttpTokensStateRequired},
		InstanceInitiatedShutdownBehavior: ec2types.ShutdownBehaviorTerminate,
		TagSpecifications: []ec2types.TagSpecification{{ResourceType: ec2types.ResourceTypeInstance, Tags: []ec2types.Tag{
			{Key: aws.String("Name"), Value: aws.String(a.stack)}}}},
	}
	if subnet := os.Getenv("STORECRYPT_INTEG_SUBNET"); subnet != "" {
		in.SubnetId = aws.String(subnet)
	}
	for try := 0; ; try++ {
		out, err := a.ec2.RunInstances(ctx, in)
		if err == nil {
			id := aws.ToString(out.Instances[0].InstanceId)
			t.Logf("launched %s (%s)", id, typ)
			return id
		}
		if try >= 12 || !strings.Contains(err.Error(), "Invalid IAM Instance Profile") {
			t.Fatalf("launching %s: %v", typ, err)
		}
		time.Sleep(10 * time.Second)
	}
}

// waitForStatus waits for a final storecrypt:status, printing each change.
func (a *account) waitForStatus(ctx context.Context, t *testing.T, instance string) map[string]string {
	t.Helper()
	last := ""
	for {
		out, err := a.ec2.DescribeInstances(ctx, &ec2.DescribeInstancesInput{InstanceIds: []string{instance}})
		var tags map[string]string
		if err == nil && len(out.Reservations) > 0 {
			tags = fleet.Tags(out.Reservations[0].Instances[0].Tags)
		}
		status := tags[contract.TagStatus]
		if status != last {
			t.Logf("%s: storecrypt:status=%q reason=%q", time.Now().Format(time.TimeOnly), status, tags[contract.TagReason])
			last = status
		}
		switch status {
		case contract.StatusEncrypted, contract.StatusFailed, contract.StatusBlocked, contract.StatusSkipped, contract.StatusUnverified:
			return tags
		}
		select {
		case <-ctx.Done():
			t.Fatalf("no final status for %s: %v", instance, ctx.Err())
		case <-time.After(15 * time.Second):
		}
	}
}

// shell runs commands on the instance with AWS-RunShellScript and returns the output.
func (a *account) shell(ctx context.Context, t *testing.T, instance string, commands ...string) string {
	t.Helper()
	sent, err := a.ssm.SendCommand(ctx, &ssm.SendCommandInput{DocumentName: aws.String("AWS-RunShellScript"), InstanceIds: []string{instance},
		Parameters: map[string][]string{"commands": commands}})
	if err != nil {
		t.Fatal(err)
	}
	for {
		inv, err := a.ssm.GetCommandInvocation(ctx, &ssm.GetCommandInvocationInput{CommandId: sent.Command.CommandId, InstanceId: aws.String(instance)})
		var notYet *ssmtypes.InvocationDoesNotExist
		switch {
		case errors.As(err, &notYet):
		case err != nil:
			t.Fatal(err)
		case inv.Status == ssmtypes.CommandInvocationStatusSuccess:
			return aws.ToString(inv.StandardOutputContent)
		case inv.Status != ssmtypes.CommandInvocationStatusPending && inv.Status != ssmtypes.CommandInvocationStatusInProgress:
			t.Fatalf("checking the mount: %s\n%s%s", inv.Status, aws.ToString(inv.StandardOutputContent), aws.ToString(inv.StandardErrorContent))
		}
		time.Sleep(3 * time.Second)
	}
}

func (a *account) terminate(t *testing.T, instance string) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	if _, err := a.ec2.TerminateInstances(ctx, &ec2.TerminateInstancesInput{InstanceIds: []string{instance}}); err != nil {
		t.Errorf("terminating %s: %v", instance, err)
		return
	}
	w := ec2.NewInstanceTerminatedWaiter(a.ec2)
	if err := w.Wait(ctx, &ec2.DescribeInstancesInput{InstanceIds: []string{instance}}, 10*time.Minute); err != nil {
		t.Errorf("waiting for %s to terminate: %v", instance, err)
	}
}

// destroy removes the stack, then what it retains by design (docs/deploy.md, "Tear down"): the
// key is scheduled for deletion after the shortest window, the log group and the
// buckets are emptied and deleted.
func (a *account) destroy(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Minute)
	defer cancel()
	res, err := a.cfn.DescribeStackResources(ctx, &cloudformation.DescribeStackResourcesInput{StackName: aws.String(a.stack)})
	if err != nil {
		t.Logf("the stack's resources: %v (nothing deployed?)", err)
		return
	}
	if err := a.cdk(ctx, t, "destroy", a.stack, "--force"); err != nil {
		// Go on: what the stack retains is removed below whether or not it is gone.
		t.Errorf("%v (delete the stack %s by hand)", err, a.stack)
	}
	for _, r := range res.StackResources {
		id := aws.ToString(r.PhysicalResourceId)
		var err error
		switch aws.ToString(r.ResourceType) {
		case "AWS::KMS::Key":
			_, err = a.kms.ScheduleKeyDeletion(ctx, &kms.ScheduleKeyDeletionInput{KeyId: aws.String(id), PendingWindowInDays: aws.Int32(7)})
		case "AWS::Logs::LogGroup":
			_, err = a.logs.DeleteLogGroup(ctx, &cloudwatchlogs.DeleteLogGroupInput{LogGroupName: aws.String(id)})
		case "AWS::DynamoDB::Table":
			// The ledger is protected from deletion; this one was the test's own.
			db := dynamodb.NewFromConfig(a.cfg)
			if _, err = db.UpdateTable(ctx, &dynamodb.UpdateTableInput{TableName: aws.String(id), DeletionProtectionEnabled: aws.Bool(false)}); err == nil {
				_, err = db.DeleteTable(ctx, &dynamodb.DeleteTableInput{TableName: aws.String(id)})
			}
		case "AWS::S3::Bucket":
			err = a.emptyBucket(ctx, id)
			if err == nil {
				_, err = a.s3.DeleteBucket(ctx, &s3.DeleteBucketInput{Bucket: aws.String(id)})
			}
		default:
			continue
		}
		if err != nil && !strings.Contains(err.Error(), "NotFound") && !strings.Contains(err.Error(), "NoSuchBucket") && !strings.Contains(err.Error(), "ResourceNotFound") {
			t.Errorf("removing %s %s: %v", aws.ToString(r.ResourceType), id, err)
		}
	}
}

func (a *account) emptyBucket(ctx context.Context, bucket string) error {
	p := s3.NewListObjectVersionsPaginator(a.s3, &s3.ListObjectVersionsInput{Bucket: aws.String(bucket)})
	for p.HasMorePages() {
		page, err := p.NextPage(ctx)
		if err != nil {
			return err
		}
		var ids []s3types.ObjectIdentifier
		for _, v := range page.Versions {
			ids = append(ids, s3types.ObjectIdentifier{Key: v.Key, VersionId: v.VersionId})
		}
		for _, m := range page.DeleteMarkers {
			ids = append(ids, s3types.ObjectIdentifier{Key: m.Key, VersionId: m.VersionId})
		}
		if len(ids) == 0 {
			continue
		}
		if _, err := a.s3.DeleteObjects(ctx, &s3.DeleteObjectsInput{Bucket: aws.String(bucket), Delete: &s3types.Delete{Objects: ids}}); err != nil {
			return fmt.Errorf("emptying %s: %w", bucket, err)
		}
	}
	return nil
}
