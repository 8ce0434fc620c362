// Command bootstrap is the result function (see package result).
package main

import (
	"time"

	"github.com/aws/aws-lambda-go/lambda"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/aws-sdk-go-v2/service/eventbridge"
	"github.com/aws/aws-sdk-go-v2/service/ssm"

	"github.com/storecrypt/storecrypt/internal/lambdaenv"
	"github.com/storecrypt/storecrypt/internal/result"
)

func main() {
	cfg, aws, log := lambdaenv.Init("result", result.LoadConfig)
	h := &result.Handler{
		Config:  cfg,
		SSM:     ssm.NewFromConfig(aws),
		EC2:     ec2.NewFromConfig(aws),
		Events:  eventbridge.NewFromConfig(aws),
		Log:     log,
		Metrics: lambdaenv.Metrics(),
		Now:     time.Now,
	}
	lambda.Start(h.Handle)
}
