// Command demo is `make demo`: storecrypt's whole flow on this machine (see package flow).
package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/storecrypt/storecrypt/test/flow"
)

func main() {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	err := flow.Run(ctx, os.Stdout, "cdk.out", filepath.Join(os.TempDir(), "storecrypt-demo-report.html"))
	cancel()
	if err != nil {
		fmt.Fprintf(os.Stderr, "demo: %v\n", err)
		os.Exit(1)
	}
}
