// Command storecrypt-release packs the release bundle (package release) from what `make
// publish` wrote and the CLI it builds: `make release` runs it.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"strings"

	"github.com/storecrypt/storecrypt/infra/artifact"
	"github.com/storecrypt/storecrypt/internal/release"
)

func main() {
	fs := flag.NewFlagSet("storecrypt-release", flag.ContinueOnError)
	fs.Usage = func() {
		fmt.Fprintln(fs.Output(), "usage: storecrypt-release -dist DIR -o DIR -version V [-platforms goos/goarch,...]\n\nPacks storecrypt-<version>.tar.gz: DIR's template and code objects under code/, the CLI for\neach platform under bin/, and SHA256SUMS.")
		fs.PrintDefaults()
	}
	dist := fs.String("dist", "dist", "what make publish wrote")
	out := fs.String("o", "release", "directory to write the tarball into")
	version := fs.String("version", "", "the release's version (required)")
	platforms := fs.String("platforms", "linux/amd64,linux/arm64,darwin/arm64", "the CLI's platforms, goos/goarch, comma-separated")
	if err := fs.Parse(os.Args[1:]); err != nil || fs.NArg() > 0 || *version == "" {
		fs.Usage()
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	path, err := run(ctx, *dist, *out, *version, strings.Split(*platforms, ","))
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "storecrypt-release:", err)
		os.Exit(1)
	}
	fmt.Println("storecrypt: wrote", path)
}

// run builds the CLI for each platform and packs the release; it returns the tarball's path.
func run(ctx context.Context, dist, out, version string, platforms []string) (string, error) {
	bins, err := artifact.CLI(ctx, filepath.Join(out, "bin"), platforms, artifact.Options{})
	if err != nil {
		return "", err
	}
	return release.Write(dist, out, version, bins)
}
