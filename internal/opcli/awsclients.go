package opcli

import (
	"context"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/cloudformation"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/aws-sdk-go-v2/service/eventbridge"
	"github.com/aws/aws-sdk-go-v2/service/iam"
	"github.com/aws/aws-sdk-go-v2/service/kms"
	"github.com/aws/aws-sdk-go-v2/service/organizations"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/ssm"
	"github.com/aws/aws-sdk-go-v2/service/sts"

	"github.com/storecrypt/storecrypt/internal/awscfg"
)

// AWSClients is the NewClients of the real CLI: the SDK's clients on the configuration
// awscfg loads.
func AWSClients(ctx context.Context, o awscfg.Options) (Clients, error) {
	cfg, err := awscfg.Load(ctx, o)
	if err != nil {
		return Clients{}, err
	}
	return clientsOf(cfg), nil
}

// clientsOf are the SDK's clients on cfg; In builds another session's from a copy.
func clientsOf(cfg aws.Config) Clients {
	return Clients{Region: cfg.Region, STS: sts.NewFromConfig(cfg), Organizations: organizations.NewFromConfig(cfg),
		In: func(_ context.Context, region string, creds aws.CredentialsProvider) (Clients, error) {
			in := cfg.Copy()
			in.Region, in.Credentials = region, creds
			return clientsOf(in), nil
		},
		EC2: ec2.NewFromConfig(cfg), SSM: ssm.NewFromConfig(cfg), IAM: iam.NewFromConfig(cfg), KMS: kms.NewFromConfig(cfg),
		S3: s3.NewFromConfig(cfg, func(s *s3.Options) {
			// An object is opaque bytes the redaction cannot read (put-secret's is the
			// wrapped passphrase), so --debug shows S3's headers only.
			if s.ClientLogMode != 0 {
				s.ClientLogMode = awscfg.HeadersOnly
			}
		}),
		CloudFormation: cloudformation.NewFromConfig(cfg), DynamoDB: dynamodb.NewFromConfig(cfg), Events: eventbridge.NewFromConfig(cfg)}
}
