// Command storecrypt-agent is the on-instance agent; see package cli.
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"

	"github.com/storecrypt/storecrypt/instance-agent/cli"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := cli.Main(ctx, os.Args[1:], os.Stdout, os.Stderr, cli.NewAgent)
	stop()
	os.Exit(code)
}
