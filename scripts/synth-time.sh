#!/usr/bin/env bash
# Synth time of a Go CDK app with storecrypt (docs/benchmarks.md, "Synth time"): an app of
# 0, 1 or 3 stacks, each in its own region with the construct in it, synthesized by the
# app binary as `cdk synth` runs it, each figure the median of RUNS runs into a new
# output directory. "before" is the construct at BEFORE (the last commit before issue 26:
# storecrypt.New, which built the code in ~/.cache/storecrypt/build at every synth);
# "after" is this checkout, building through CDK's local bundling, or reading RELEASE
# (the tarball `make release` writes).
#
#   RELEASE=release/storecrypt-v0.0.0-bench.tar.gz scripts/synth-time.sh
#
# Builds both apps into WORK first; the go build cache is warmed by one untimed run,
# except for the cold row, which gives every run an empty GOCACHE (the module cache is
# kept: a download is the network's time, not the build's).
set -euo pipefail

repo=$(git rev-parse --show-toplevel)
: "${RELEASE:?set RELEASE to the tarball make release wrote}"
RELEASE=$(realpath "$RELEASE")
BEFORE=${BEFORE:-e986c7d}
WORK=${WORK:-/tmp/synthbench}
RUNS=${RUNS:-3}
export JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION=20
mkdir -p "$WORK/before" "$WORK/after"
if [ ! -d "$WORK/src-before" ]; then
	git -C "$repo" worktree add --detach "$WORK/src-before" "$BEFORE" >/dev/null
fi

# app DIR SRC: a module in DIR whose storecrypt is SRC, built into DIR/app.
app() {
	local dir=$1 src=$2
	printf 'module example.com/synthbench\n\ngo 1.26.8\n\nrequire github.com/storecrypt/storecrypt v0.0.0\n\nreplace github.com/storecrypt/storecrypt => %s\n' "$src" >"$dir/go.mod"
	cp "$src/go.sum" "$dir/go.sum"
	(cd "$dir" && GOPROuptime
Y=off go mod tidy && go build -o app .)
}

cat >"$WORK/before/main.go" <<'GO'
package main

import (
	"context"
	"fmt"
	"os"
	"strconv"

	"github.com/aws/aws-cdk-go/awscdk/v2"
	"github.com/aws/jsii-runtime-go"

	"github.com/storecrypt/storecrypt/infra/storecrypt"
)

func main() {
	n, _ := strconv.Atoi(os.Args[1])
	app := awscdk.NewApp(nil)
	for i, region := range []string{"us-east-1", "eu-west-1", "ap-southeast-2"}[:n] {
		st := awscdk.NewStack(app, jsii.String(fmt.Sprintf("S%d", i)), &awscdk.StackProps{Env: &awscdk.Environment{Account: jsii.String("111122223333"), Region: jsii.String(region)}})
		if _, err := storecrypt.New(context.Background(), st, "InstanceStore", nil); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
	}
	app.Synth(nil)
	jsii.Close()
}
GO
cat >"$WORK/after/main.go" <<'GO'
package main

import (
	"fmt"
	"os"
	"strconv"
	"strings"

	"github.com/aws/aws-cdk-go/awscdk/v2"
	"github.com/aws/jsii-runtime-go"

	"github.com/storecrypt/storecrypt/infra/storecrypt"
)

func main() {
	n, _ := strconv.Atoi(os.Args[1])
	var props storecrypt.StoreCryptProps
	if r := os.Getenv("STORECRYPT_RELEASE"); r != "" {
		path, sha, _ := strings.Cut(r, ":")
		props.Release = &storecrypt.StoreCryptRelease{Path: &path, Sha256: &sha}
	}
	app := awscdk.NewApp(nil)
	for i, region := range []string{"us-east-1", "eu-west-1", "ap-southeast-2"}[:n] {
		st := awscdk.NewStack(app, jsii.String(fmt.Sprintf("S%d", i)), &awscdk.StackProps{Env: &awscdk.Environment{Account: jsii.String("111122223333"), Region: jsii.String(region)}})
		storecrypt.NewStoreCrypt(st, jsii.String("InstanceStore"), &props)
	}
	app.Synth(nil)
	jsii.Close()
}
GO
app "$WORK/before" "$WORK/src-before"
app "$WORK/after" "$repo"
release="$RELEASE:$(sha256sum "$RELEASE" | cut -d' ' -f1)"

# measure LABEL WHICH N [VAR=value...]: the median wall time of RUNS synths, each into a
# new output directory, run in the app's module directory (the "before" app needs a
# go.mod there).
measure() {
	local label=$1 which=$2 n=$3
	shift 3
	local times=() i start out vars
	for ((i = 0; i < RUNS; i++)); do
		out=$(mktemp -d)
		# GOCACHE=empty: a new, empty go build cache for this run alone.
		vars=("${@/#GOCACHE=empty/GOCACHE=$out.gocache}")
		start=$(date +%s.%N)
		(cd "$WORK/$which" && env CDK_OUTDIR="$out" "${vars[@]}" ./app "$n" >/dev/null 2>"$out.log") ||
			{ echo "$label: failed, see $out.log" >&2; exit 1; }
		times+=("$(echo "$(date +%s.%N) - $start" | bc)")
		chmod -R u+w "$out.gocache" 2>/dev/null || true
		rm -rf "$out" "$out.log" "$out.gocache"
	done
	printf '| %s | %s |\n' "$label" "$(printf '%s\n' "${times[@]}" | sort -n | sed -n "$(((RUNS + 1) / 2))p" | xargs printf '%.1f s')"
}

Xmeasure "warming the go build cache" after 1 >/dev/null
measure "warming the go build cache" before 1 >/dev/null
echo "| App | Median of $RUNS |"
echo "| --- | --- |"
measure "empty app (no stack), before" before 0
measure "empty app (no stack), after" after 0
measure "one construct, before" before 1
measure "three constructs, before" before 3
measure "one construct, before, as cdk ls runs it" before 1 CDK_CONTEXT_JSON='{"aws:cdk:bundling-stacks":[]}'
measure "one construct, local Go, warm go build cache" after 1
measure "three constructs, local Go, warm go build cache" after 3
measure "one construct, from the release" after 1 STORECRYPT_RELEASE="$release"
measure "three constructs, from the release" after 3 STORECRYPT_RELEASE="$release"
measure "one construct, as cdk ls runs it (bundling skipped)" after 1 CDK_CONTEXT_JSON='{"aws:cdk:bundling-stacks":[]}'
measure "three constructs, as cdk ls runs it (bundling skipped)" after 3 CDK_CONTEXT_JSON='{"aws:cdk:bundling-stacks":[]}'
# Last: the longest row, a cold build per run.
measure "one construct, local Go, empty go build cache" after 1 GOCACHE=empty
uptime
