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

// Agent is the agent for one architecture as the document downloads it: a gzip object,
// checked against both digests written into the document so the bucket cannot vouch for
// itself.
type Agent struct {
	Arch     string // GOARCH: amd64, arm64
	SHA256   string // hex digest of the binary
	GzSHA256 string // hex digest of the gzip object
}

// Agents are the objects the document downloads, one per architecture, at URLs that
// differ only in it (URLPrefix + arch + ".gz"), so one download step, given the
// Architecture parameter, fetches only the instance's own.
type Agents struct {
	URLPrefix string // https URL up to the architecture (CDK tokens at synth)
	Each      []Agent
}

// URL is the object of one architecture.
func (a Agents) URL(arch string) string { return a.URLPrefix + arch + GzSuffix }

// GzSuffix ends every agent object's key.
const GzSuffix = ".gz"

// ArchitectureParameter names the parameter that picks the agent to download. Unlike the
// agent's parameters it is not ENV_VAR: SSM substitutes it into the download step's
// path and the run step's text. allowedValues is SendCommand's check (and the console's
// drop-down); the SSM Agent on the instance checks only allowedPattern, so that is what
// holds the text to a GOARCH whatever path the value took there.
const ArchitectureParameter = "Architecture"

// Architectures are the parameter's allowed values.
var Architectures = []string{"amd64", "arm64"}

// ArchitecturePattern is the parameter's allowedPattern: exactly one of Architectures.
var ArchitecturePattern = "^(" + strings.Join(Architectures, "|") + ")$"

// ArchFromEC2 maps DescribeInstances' Architecture (x86_64, arm64, i386, x86_64_mac,
// arm64_mac) to the parameter's value; false where storecrypt has no agent.
func ArchFromEC2(arch string) (string, bool) {
	a, ok := map[string]string{"x86_64": "amd64", "arm64": "arm64"}[arch]
	return a, ok
}

// Dir is where the document's steps put the downloaded agent on the instance.
const Dir = "/var/lib/storecrypt/agent"

// machine maps `uname -m` to GOARCH.
var machine = map[string]string{"amd64": "x86_64", "arm64": "aarch64"}

// linux is each step's precondition: a command that reaches a Windows instance (a
// console rerun by tag, say) skips every step there instead of failing.
var linux = map[string]any{"StringEquals": []string{"platformType", "Linux"}}

// Content returns the document's content; defaults are the parameters' default values.
func Content(defaults contract.AgentOptions, agents Agents) map[string]any {
	values := defaults.DocumentValues()
	params := map[string]any{}
	for _, p := range contract.DocumentParameters {
		spec := map[string]any{
			"type":              "String",
			"description":       p.Description,
			"default":           values[p.Name][0],
			"allowedPattern":    p.Pattern,
			"interpolationType": "ENV_VAR",
		}
		if p.Values != nil {
			// A drop-down: the console shows the choices, the description the stack's.
			spec["allowedValues"] = p.Values
			spec["description"] = p.Description + " Default: " + values[p.Name][0] + "."
		}
		params[p.Name] = spec
	}
	params[ArchitectureParameter] = map[string]any{
		"type": "String",
		"description": "(Required) The instance's CPU architecture: amd64 (x86_64) or arm64 (Graviton). Only that agent is downloaded. " +
			"storecrypt's launch function and CLI fill it in from EC2; a value that is not the instance's stops the run before any disk is touched.",
		"allowedValues":  Architectures,
		"allowedPattern": ArchitecturePattern,
	}
	steps := []any{
		map[string]any{
			"action":       "aws:downloadContent",
			"name":         DownloadStep,
			"precondition": linux,
			"inputs": map[string]any{
				"sourceType":      "S3",
				"sourceInfo":      fmt.Sprintf(`{"path":"%s{{ %s }}%s"}`, agents.URLPrefix, ArchitectureParameter, GzSuffix),
				"destinationPath": Dir,
			},
		},
		map[string]any{
			"action":       "aws:runShellScript",
			"name":         contract.DocumentRunStep,
			"precondition": linux,
			"inputs": map[string]any{
				"timeoutSeconds": "1800",
				"runCommand":     Script(agents.Each),
			},
		},
	}
	return map[string]any{
		"schemaVersion": "2.2",
		"description":   "storecrypt: encrypt this instance's instance-store NVMe disks with LUKS2 under a KMS key, stripe them and mount them (idempotent; safe to rerun).",
		"parameters":    params,
		"mainSteps":     steps,
	}
}

// DownloadStep names the step that downloads the agent.
const DownloadStep = "download_agent"

func sorted(a []Agent) []Agent {
	out := append([]Agent(nil), a...)
	sort.Slice(out, func(i, j int) bool { return out[i].Arch < out[j].Arch })
	return out
}

// Script is the run step: check the command's Architecture is this machine's, install
// the tools the agent needs where they are missing, pick the download for this machine by
// its digest, decompress it and check it again, run apply. Parameters are read from
// SSM_<name> variables, always quoted. Everything but the agent's report goes to stderr,
// so stdout is the JSON document the result function parses.
func Script(agents []Agent) []string {
	lines := append(prologue(), needEnvVars())
	lines = append(lines, machineDigests(agents)...)
	lines = append(lines,
		// allowedPattern, which the SSM Agent checks, holds the substituted text to a GOARCH.
		fmt.Sprintf(`if [ "{{ %s }}" != "$arch" ]; then echo "storecrypt: this instance is $arch ($(uname -m)) but the command downloaded the agent for {{ %s }}: run it again with %s=$arch" >&2; exit 2; fi`,
			ArchitectureParameter, ArchitectureParameter, ArchitectureParameter),
	)
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
	)
	lines = append(lines, pickAgent()...)
	return append(lines, runAgent(applyArgv())...)
}

// prologue starts every run step. POSIX sh: SSM may run the script with dash (Ubuntu) or
// busybox as well as bash. Everything but the agent's report goes to stderr, so stdout
// is the JSON document the result function parses.
func prologue() []string { return []string{"#!/bin/sh", "set -eu", "exec 3>&1 1>&2"} }

// machineDigests sets arch, sum and gzsum to the GOARCH of this machine and the digests
// of its agent (the binary's, the gzip object's), or stops where storecrypt has none.
func machineDigests(agents []Agent) []string {
	lines := []string{`case "$(uname -m)" in`}
	for _, a := range sorted(agents) {
		lines = append(lines, fmt.Sprintf(`  %s) arch=%s; sum=%s; gzsum=%s ;;`, machine[a.Arch], a.Arch, a.SHA256, a.GzSHA256))
	}
	return append(lines,
		`  *) echo "storecrypt: no agent for $(uname -m)" >&2; exit 2 ;;`,
		`esac`)
}

// runAgent runs argv with its report on the step's stdout. The agent's exit code is the
// step's, which the result function reads; the trap removes the private copy after it.
func runAgent(argv []string) []string {
	return []string{`rc=0`, strings.Join(argv, " ") + ` >&3 || rc=$?`, `exit "$rc"`}
}

// privateDir makes the fresh 0700 directory (mktemp -d) that the agent is copied into
// and checked in, so what runs is what was checked, whatever writes elsewhere meanwhile;
// bin is the agent's path there.
func privateDir() []string {
	return []string{
		`priv=$(mktemp -d /run/storecrypt-agent.XXXXXX)`,
		`trap 'rm -rf "$priv"' EXIT`,
		`bin="$priv/storecrypt-agent"`,
	}
}

// pickAgent sets bin to a private, decompressed copy of the downloaded agent whose
// SHA-256 is the document's. Where aws:downloadContent writes the object depends on Dir
// (SSM Agent, agent/plugins/downloadcontent/s3resource/s3resource.go): on an instance
// where Dir is no directory, the download is the file Dir itself, replaced by each run;
// where Dir is a directory, the object keeps its name inside it, so the directory gathers
// one file per agent version downloaded. find lists the file in either case; files whose
// digest is not this document's are stale and removed. The match is copied into a fresh
// 0700 directory (mktemp -d) and checked again there, then decompressed and checked
// against the binary's digest, so what runs is what was checked, whatever writes to the
// download directory meanwhile.
func pickAgent() []string {
	lines := []string{
		`src=""`,
		fmt.Sprintf(`for f in $(find %s -type f); do`, Dir),
		`  if [ "$(sha256sum <"$f" | cut -d' ' -f1)" = "$gzsum" ]; then src="$f"`,
		`  else echo "storecrypt: removing the stale download $f"; rm -f "$f"; fi`,
		`done`,
		`if [ -z "$src" ]; then echo "storecrypt: no download of the agent for $arch has SHA-256 $gzsum" >&2; exit 1; fi`,
	}
	lines = append(lines, privateDir()...)
	return append(lines,
		`cp "$src" "$bin.gz"`,
		`echo "$gzsum  $bin.gz" | sha256sum -c >/dev/null || { echo "storecrypt: $src changed while it was copied" >&2; exit 1; }`,
		`gzip -dc "$bin.gz" >"$bin" || { echo "storecrypt: $src does not decompress" >&2; exit 1; }`,
		`rm -f "$bin.gz"`,
		`echo "$sum  $bin" | sha256sum -c >/dev/null || { echo "storecrypt: $src decompresses to a binary whose SHA-256 is not $sum" >&2; exit 1; }`,
		`chmod 0700 "$bin"`,
	)
}

// needEnvVars refuses to run under an SSM Agent that did not set SSM_<name>: one older
// than 3.3.2746.0 ignores interpolationType and would substitute the values as text
// instead. AWS's "Troubleshooting parameter handling issues" suggests a fallback that
// assigns "{{name}}" then, but the agent's source shows that text is not the value
// allowedPattern held: it checks a {{ssm:name}} reference as resolved by one Parameter
// Store read and puts it into the text by a second read (docparser.go,
// getValidatedParameters, then replaceValidatedPluginParameters), so a parameter
// changed between the two reaches the shell unchecked. With no agent parameter in the
// text, no value is ever shell text.
func needEnvVars() string {
	names := make([]string, len(contract.DocumentParameters))
	for i, p := range contract.DocumentParameters {
		names[i] = p.Name
	}
	return needEnv(names)
}

// needEnv is needEnvVars for the parameters names.
func needEnv(names []string) string {
	var unset []string
	for _, name := range names {
		unset = append(unset, fmt.Sprintf(`[ -z "${SSM_%s+x}" ]`, name))
	}
	return fmt.Sprintf(`if %s; then echo "storecrypt: this SSM Agent did not set the SSM_<name> variables: it predates interpolationType ENV_VAR (SSM Agent %s); update it (AWS-UpdateSSMAgent) and run the command again" >&2; exit 2; fi`,
		strings.Join(unset, " || "), envVarAgent)
}

// envVarAgent is the first SSM Agent release that sets SSM_<name> for a parameter whose
// interpolationType is ENV_VAR ("Troubleshooting parameter handling issues").
const envVarAgent = "3.3.2746.0"

// applyArgv is the agent's command line, one quoted flag per document parameter.
func applyArgv() []string {
	argv := []string{`"$bin"`, "apply"}
	for _, p := range contract.DocumentParameters {
		argv = append(argv, fmt.Sprintf(`--%s="$SSM_%s"`, p.Flag, p.Name))
	}
	return argv
}
