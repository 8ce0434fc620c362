// Command storecrypt-build builds what the storecrypt construct deploys into a
// directory (package artifact): `make build` runs it, and so can an app that imports the
// construct and wants the code built ahead of synth (StoreCryptProps.BuildDir).
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"

	"github.com/storecrypt/storecrypt/infra/artifact"
)

func main() {
	fs := flag.NewFlagSet("storecrypt-build", flag.ContinueOnError)
	fs.Usage = func() {
		fmt.Fprintln(fs.Output(), "usage: storecrypt-build [-o DIR] [-version V]\n\nBuilds the agent for linux/amd64 and linux/arm64 (static, with a .sha256 and a .gz beside each)\nand each function's bootstrap for provided.al2023 on arm64.")
		fs.PrintDefaults()
	}
	out := fs.String("o", "bin", "directory to write into")
	version := fs.String("version", "", "version stamped into the agent (default: the module's, or dev)")
	if err := fs.Parse(os.Args[1:]); err != nil {
		os.Exit(2)
	}
	if fs.NArg() > 0 {
		fs.Usage()
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	err := artifact.Build(ctx, *out, artifact.Options{Version: *version, Log: os.Stdout})
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "storecrypt-build:", err)
		os.Exit(1)
	}
}
