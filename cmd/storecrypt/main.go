// Command storecrypt is the operator CLI; see package opcli.
package main

import (
	"context"
	"os"
	"os/signal"

	"github.com/storecrypt/storecrypt/internal/opcli"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	code := opcli.Main(ctx, os.Args[1:], os.Stdin, os.Stdout, os.Stderr, opcli.AWSClients)
	stop()
	os.Exit(code)
}
