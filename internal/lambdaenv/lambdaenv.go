// Package lambdaenv wires a storecrypt Lambda to its runtime: the AWS configuration with
// the SDK's adaptive retryer (the functions meet throttling in bursts), a JSON logger on
// stdout, and the Go runtime's memory limit from the function's memory.
package lambdaenv

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"runtime/debug"
	"strconv"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/config"
)

// MaxAttempts bounds the SDK's retries; past it a batch item goes back to SQS.
const MaxAttempts = 8

// AWSConfig loads the function's AWS configuration.
func AWSConfig(ctx context.Context) (aws.Config, error) {
	cfg, err := config.LoadDefaultConfig(ctx, config.WithRetryMode(aws.RetryModeAdaptive), config.WithRetryMaxAttempts(MaxAttempts))
	if err != nil {
		return aws.Config{}, fmt.Errorf("loading the AWS configuration: %w", err)
	}
	return cfg, nil
}

// Logger logs JSON lines to stdout, which Lambda sends to CloudWatch Logs.
func Logger(function string) *slog.Logger {
	return slog.New(slog.NewJSONHandler(os.Stdout, &slog.HandlerOptions{Level: slog.LevelInfo})).With("function", function)
}

// EnvMemorySize is Lambda's variable for the function's memory, in MB.
const EnvMemorySize = "AWS_LAMBDA_FUNCTION_MEMORY_SIZE"

// MemoryLimit is the Go runtime's soft memory limit for a function with the memory that
// getenv reports: three quarters of it, the rest left for what the runtime does not
// count (the binary's pages, the Lambda runtime's buffers). The stack raises GOGC
// (contract.FunctionGOGC) so that a cold start runs no collection; this limit makes the
// collector run before the function's memory runs out however large the heap's target.
// ok is false outside Lambda, where no memory is reported.
func MemoryLimit(getenv func(string) string) (limit int64, ok bool) {
	mb, err := strconv.ParseInt(getenv(EnvMemorySize), 10, 64)
	if err != nil || mb <= 0 {
		return 0, false
	}
	return mb << 20 / 4 * 3, true
}

// Init is a function's init phase: the memory limit, its logger, its configuration from
// the environment and the AWS configuration. An error ends the process with the message
// in the log, which is how Lambda reports a failed init (Runtime.ExitError).
func Init[C any](function string, load func(getenv func(string) string) (C, error)) (C, aws.Config, *slog.Logger) {
	if limit, ok := MemoryLimit(os.Getenv); ok {
		debug.SetMemoryLimit(limit)
	}
	log := Logger(function)
	cfg, err := load(os.Getenv)
	if err == nil {
		var awsCfg aws.Config
		if awsCfg, err = AWSConfig(context.Background()); err == nil {
			return cfg, awsCfg, log
		}
	}
	log.Error("init failed", "error", err.Error())
	fmt.Fprintln(os.Stderr, err)
	os.Exit(1)
	var zero C
	return zero, aws.Config{}, log
}
