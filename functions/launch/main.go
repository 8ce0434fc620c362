// Command bootstrap is the launch function (see package launch): an SQS batch handler for
// EC2 launch events, and the sweep on a schedule.
package main

import (
	"os"

	"github.com/aws/aws-lambda-go/lambda"

	"github.com/storecrypt/storecrypt/internal/lambdaenv"
	"github.com/storecrypt/storecrypt/internal/launch"
)

func main() {
	cfg, aws, log := lambdaenv.Init("launch", launch.LoadConfig)
	// EMF lines go to stdout, which Lambda sends to CloudWatch Logs.
	lambda.Start(launch.New(cfg, aws, log, os.Stdout).Invoke)
}
