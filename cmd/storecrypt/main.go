// Command storecrypt is the operator CLI; see package opcli.
package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"

	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/service/cloudformation"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/aws-sdk-go-v2/service/iam"
	"github.com/aws/aws-sdk-go-v2/service/kms"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/ssm"
	"github.com/aws/smithy-go/logging"

	"github.com/storecrypt/storecrypt/internal/opcli"
)

// clients loads the AWS configuration the way the aws CLI does, and says in one line what
// to do when the region or the credentials are missing. The SDK's own log lines (the
// IMDSv1 fallback, while the credential chain probes for an instance role) are dropped:
// the error says it all.
func clients(ctx context.Context, region, profile string) (opcli.Clients, error) {
	opts := []func(*config.LoadOptions) error{config.WithLogger(logging.Nop{})}
	if region != "" {
		opts = append(opts, config.WithRegion(region))
	}
	if profile != "" {
		opts = append(opts, config.WithSharedConfigProfile(profile))
	}
	cfg, err := config.LoadDefaultConfig(ctx, opts...)
	if err != nil {
		return opcli.Clients{}, fmt.Errorf("loading the AWS configuration: %w", err)
	}
	if cfg.Region == "" {
		return opcli.Clients{}, errors.New("no AWS region: pass --region, or set AWS_REGION, or set region in your profile (aws configure)")
	}
	if _, err := cfg.Credentials.Retrieve(ctx); err != nil {
		return opcli.Clients{}, errors.New("no AWS credentials: run `aws configure` or `aws sso login`, pass --profile, or set AWS_PROFILE; on an instance, attach a role")
	}
	return opcli.Clients{EC2: ec2.NewFromConfig(cfg), SSM: ssm.NewFromConfig(cfg), IAM: iam.NewFromConfig(cfg), KMS: kms.NewFromConfig(cfg), S3: s3.NewFromConfig(cfg),
		CloudFormation: cloudformation.NewFromConfig(cfg), DynamoDB: dynamodb.NewFromConfig(cfg)}, nil
}

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	code := opcli.Main(ctx, os.Args[1:], os.Stdin, os.Stdout, os.Stderr, clients)
	stop()
	os.Exit(code)
}
