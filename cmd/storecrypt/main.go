// Command storecrypt is the operator CLI; see package opcli.
package main

import (
	"context"
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

	"github.com/storecrypt/storecrypt/internal/opcli"
)

func clients(ctx context.Context, region, profile string) (opcli.Clients, error) {
	var opts []func(*config.LoadOptions) error
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
	return opcli.Clients{EC2: ec2.NewFromConfig(cfg), SSM: ssm.NewFromConfig(cfg), IAM: iam.NewFromConfig(cfg), KMS: kms.NewFromConfig(cfg), S3: s3.NewFromConfig(cfg),
		CloudFormation: cloudformation.NewFromConfig(cfg), DynamoDB: dynamodb.NewFromConfig(cfg)}, nil
}

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	code := opcli.Main(ctx, os.Args[1:], os.Stdin, os.Stdout, os.Stderr, clients)
	stop()
	os.Exit(code)
}
