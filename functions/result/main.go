// Command bootstrap is the result function (see package result).
package main

import (
	"os"

	"github.com/aws/aws-lambda-go/lambda"

	"github.com/storecrypt/storecrypt/internal/lambdaenv"
	"github.com/storecrypt/storecrypt/internal/result"
)

func main() {
	cfg, aws, log := lambdaenv.Init("result", result.LoadConfig)
	// EMF lines go to stdout, which Lambda sends to CloudWatch Logs.
	lambda.Start(result.New(cfg, aws, log, os.Stdout).Handle)
}
