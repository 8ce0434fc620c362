// Package document generates the storecrypt SSM Command document (schema 2.2) from the
// contract: one parameter per agent flag, each with its description, default and
// allowedPattern, and interpolationType ENV_VAR, so a value reaches the script only as an
// SSM_<name> environment variable and never as shell text. The stack deploys it; the
// demo's SSM fake runs it; tests check it against the agent's own flag validation.
package document

import (
	"fmt"
	"sort"
	"strings"

	"github.com/storecrypt/storecrypt/internal/contract"
)

// Artifact is one agent binary the document downloads.
type Artifact struct {
	Arch   string // amd64, arm64 (GOARCH)
	URL    string // https URL of the object (a CDK token at synth)
	SHA256 string // hex digest, written into the document so the bucket cannot vouch for itself
}

// Dir is where the document's steps put the downloaded binaries on the instance.
const Dir = "/var/lib/storecrypt/agent"

// machine maps `uname -m` to GOARCH.
var machine = map[string]string{"amd64": "x86_64", "arm64": "aarch64"}

// Content returns the document's content; defaults are the parameters' default values.
func Content(defaults contract.AgentOptions, artifacts []Artifact) map[string]any {
	values := defaults.DocumentValues()
	params := map[string]any{}
	for _, p := range contract.DocumentParameters {
		params[p.Name] = map[string]any{
			"type":              "String",
			"description":       p.Description,
			"default":           values[p.Name][0],
			"allowedPattern":    p.Pattern,
			"interpolationType": "ENV_VAR",
		}
	}
	var steps []any
	for _, a := range sorted(artifacts) {
		steps = append(steps, map[string]any{
			"action": "aws:downloadContent",
			"name":   "download_" + a.Arch,
			"inputs": map[string]any{
				"sourceType":      "S3",
				"sourceInfo":      fmt.Sprintf(`{"path":"%s"}`, a.URL),
				"destinationPath": Dir + "/" + a.Arch,
			},
		})
	}
	steps = append(steps, map[string]any{
		"action": "aws:runShellScript",
		"name":   contract.DocumentRunStep,
		"inputs": map[string]any{
			"timeoutSeconds": "1800",
			"runCommand":     Script(artifacts),
		},
	})
	return map[string]any{
		"schemaVersion": "2.2",
		"description":   "storecrypt: encrypt this instance's instance-store NVMe disks with LUKS2 under a KMS key, stripe them and mount them (idempotent; safe to rerun).",
		"parameters":    params,
		"mainSteps":     steps,
	}
}

func sorted(a []Artifact) []Artifact {
	out := append([]Artifact(nil), a...)
	sort.Slice(out, func(i, j int) bool { return out[i].Arch < out[j].Arch })
	return out
}

// Script is the run step: install the tools the agent needs where they are missing, pick
// the binary for this machine by its digest, run apply. Parameters are read from
// SSM_<name> variables, always quoted. Everything but the agent's report goes to stderr,
// so stdout is the JSON document the result function parses.
func Script(artifacts []Artifact) []string {
	lines := []string{
		// POSIX sh: SSM may run the script with dash (Ubuntu) or busybox as well as bash.
		"#!/bin/sh",
		"set -eu",
		"exec 3>&1 1>&2",
	}
	lines = append(lines, fallbacks()...)
	lines = append(lines,
		`need="cryptsetup mdadm blkid mkfs.ext4"`,
		`if [ "$SSM_Filesystem" = xfs ]; then need="$need mkfs.xfs"; fi`,
		`missing=""; for t in $need; do command -v "$t" >/dev/null 2>&1 || missing="$missing $t"; done`,
		`if [ -n "$missing" ]; then`,
		`  echo "storecrypt: installing the tools for:$missing"`,
		`  pkgs="cryptsetup mdadm util-linux e2fsprogs xfsprogs"`,
		`  if command -v dnf >/dev/null; then dnf install -y -q $pkgs`,
		`  elif command -v yum >/dev/null; then yum install -y -q $pkgs`,
		`  elif command -v apt-get >/dev/null; then apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q cryptsetup-bin mdadm util-linux e2fsprogs xfsprogs`,
		`  else echo "storecrypt: no dnf, yum or apt-get to install$missing" >&2; exit 2; fi`,
		`fi`,
		`case "$(uname -m)" in`,
	)
	for _, a := range sorted(artifacts) {
		lines = append(lines, fmt.Sprintf(`  %s) arch=%s; sum=%s ;;`, machine[a.Arch], a.Arch, a.SHA256))
	}
	lines = append(lines,
		`  *) echo "storecrypt: no agent for $(uname -m)" >&2; exit 2 ;;`,
		`esac`,
	)
	lines = append(lines, pickAgent()...)
	lines = append(lines,
		// The agent's exit code is the step's, which the result function reads; the trap
		// removes the private copy after it.
		`rc=0`,
		strings.Join(applyArgv(), " ")+` >&3 || rc=$?`,
		`exit "$rc"`,
	)
	return lines
}

// pickAgent sets bin to a private copy of the downloaded agent whose SHA-256 is the
// document's. aws:downloadContent keeps each object's name (the asset's hash), so the
// download directory gathers one file per agent version ever downloaded: files whose
// digest is not this document's are stale and removed. The match is copied into a fresh
// 0700 directory (mktemp -d) and checked again there, so what runs is what was checked,
// whatever writes to the download directory meanwhile.
func pickAgent() []string {
	return []string{
		`src=""`,
		fmt.Sprintf(`for f in $(find %s/"$arch" -type f); do`, Dir),
		`  if [ "$(sha256sum <"$f" | cut -d' ' -f1)" = "$sum" ]; then src="$f"`,
		`  else echo "storecrypt: removing the stale download $f"; rm -f "$f"; fi`,
		`done`,
		`if [ -z "$src" ]; then echo "storecrypt: no download of the agent for $arch has SHA-256 $sum" >&2; exit 1; fi`,
		`priv=$(mktemp -d /run/storecrypt-agent.XXXXXX)`,
		`trap 'rm -rf "$priv"' EXIT`,
		`bin="$priv/storecrypt-agent"`,
		`cp "$src" "$bin"`,
		`echo "$sum  $bin" | sha256sum -c >/dev/null || { echo "storecrypt: $src changed while it was copied" >&2; exit 1; }`,
		`chmod 0700 "$bin"`,
	}
}

// fallbacks set SSM_<name> where the SSM Agent did not: interpolationType ENV_VAR needs
// SSM Agent 3.3.2746.0 or later, and an older agent substitutes {{name}} into the text
// instead (the form AWS's "Troubleshooting parameter handling issues" gives). The value
// is then shell text, but inside double quotes, and every parameter's allowedPattern,
// which SSM checks before the command runs, excludes the characters that could end or
// escape a double-quoted word (" $ ` \ and newlines; TestFallbackIsOneWord).
func fallbacks() []string {
	var out []string
	for _, p := range contract.DocumentParameters {
		out = append(out, fmt.Sprintf(`if [ -z "${SSM_%s+x}" ]; then export SSM_%s="{{%s}}"; fi`, p.Name, p.Name, p.Name))
	}
	return out
}

// applyArgv is the agent's command line, one quoted flag per document parameter.
func applyArgv() []string {
	argv := []string{`"$bin"`, "apply"}
	for _, p := range contract.DocumentParameters {
		argv = append(argv, fmt.Sprintf(`--%s="$SSM_%s"`, p.Flag, p.Name))
	}
	return argv
}
