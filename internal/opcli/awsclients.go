package opcli

import (
	"context"

	"github.com/aws/aws-sdk-go-v2/service/cloudformation"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
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
	return Clients{EC2: ec2.NewFromConfig(cfg), SSM: ssm.NewFromConfig(cfg), IAM: iam.NewFromConfig(cfg), KMS: kms.NewFromConfig(cfg),
		S3: s3.NewFromConfig(cfg, func(s *s3.Options) {
			// An object is opaque bytes the redaction cannot read (put-secret's is the
			// wrapped passphrase), so --debug shows S3's headers only.
			if s.ClientLogMode != 0 {
				s.ClientLogMode = awscfg.HeadersOnly
			}
		}),
		CloudFormation: cloudformation.NewFromConfig(cfg), DynamoDB: dynamodb.NewFromConfig(cfg),
		STS: sts.NewFromConfig(cfg), Organizations: organizations.NewFromConfig(cfg)}, nil
}
