// Command bootstrap is the launch function (see package launch): an SQS batch handler for
// EC2 launch events, and the sweep on a schedule.
package main

import (
	"time"

	"github.com/aws/aws-lambda-go/lambda"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/aws-sdk-go-v2/service/eventbridge"
	"github.com/aws/aws-sdk-go-v2/service/iam"
	"github.com/aws/aws-sdk-go-v2/service/kms"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	"github.com/aws/aws-sdk-go-v2/service/ssm"

	"github.com/storecrypt/storecrypt/internal/binding"
	"github.com/storecrypt/storecrypt/internal/lambdaenv"
	"github.com/storecrypt/storecrypt/internal/launch"
)

// bindingTTL: a fixed key policy is noticed within this long without a check per launch.
const bindingTTL = 5 * time.Minute

func main() {
	cfg, aws, log := lambdaenv.Init("launch", launch.LoadConfig)
	h := &launch.Handler{
		Config:  cfg,
		EC2:     ec2.NewFromConfig(aws),
		SSM:     ssm.NewFromConfig(aws),
		SQS:     sqs.NewFromConfig(aws),
		Events:  eventbridge.NewFromConfig(aws),
		Binder:  &binding.Checker{IAM: iam.NewFromConfig(aws), KMS: kms.NewFromConfig(aws), TTL: bindingTTL},
		Log:     log,
		Metrics: lambdaenv.Metrics(),
		Now:     time.Now,
	}
	lambda.Start(h.Invoke)
}
