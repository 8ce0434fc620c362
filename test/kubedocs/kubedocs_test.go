package kubedocs

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"mime"
	"mime/multipart"
	"net/mail"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"

	"github.com/storecrypt/storecrypt/instance-agent/cli"
	"github.com/storecrypt/storecrypt/test/mdblock"
)

const docPath = "../../docs/kubernetes.md"

// block is one fenced block of the doc: its info string, first line and text.
type block struct {
	info string
	line int
	text string
}

func fencedBlocks(t *testing.T, path string) []block {
	t.Helper()
	read, err := mdblock.Read(path)
	if err != nil {
		t.Fatal(err)
	}
	blocks := make([]block, len(read))
	for i, b := range read {
		blocks[i] = block{info: b.Info, line: b.Line, text: b.Text}
	}
	return blocks
}

// checker holds the schemas and counts what it has checked, so a doc that lost its
// examples (or a test that stopped reading them) fails instead of passing on nothing.
type checker struct {
	schemas map[string]*validator // by apiVersion + " " + kind
	seen    map[string]int
}

func newChecker(t *testing.T) *checker {
	t.Helper()
	c := &checker{schemas: map[string]*validator{}, seen: map[string]int{}}
	for _, crd := range []string{"node.eks.aws_nodeconfigs.yaml", "karpenter.k8s.aws_ec2nodeclasses.yaml", "karpenter.sh_nodepools.yaml"} {
		apiVersion, kind, v, err := crdValidator(filepath.Join("testdata", crd))
		if err != nil {
			t.Fatal(err)
		}
		c.schemas[apiVersion+" "+kind] = v
	}
	eksctl, err := jsonSchemaValidator(filepath.Join("testdata", "eksctl.io_v1alpha5_schema.json"))
	if err != nil {
		t.Fatal(err)
	}
	c.schemas["eksctl.io/v1alpha5 ClusterConfig"] = eksctl
	return c
}

// checkBlock checks one fenced block by its info string; a block of another kind is an
// error, so nothing the doc shows goes unchecked.
func (c *checker) checkBlock(b block) []error {
	switch {
	case b.info == "yaml":
		return c.checkYAML(b.text)
	case b.info == "text" && strings.HasPrefix(b.text, "MIME-Version:"):
		return c.checkUserData(b.text)
	case b.info == "sh" || b.info == "bash":
		return c.checkShell(b.text)
	}
	return []error{fmt.Errorf("got a %q block the test cannot check, want yaml, sh, bash, or text holding MIME user data", b.info)}
}

// checkYAML checks each document of a YAML stream by its apiVersion and kind.
func (c *checker) checkYAML(text string) []error {
	var errs []error
	dec := yaml.NewDecoder(strings.NewReader(text))
	for {
		var doc map[string]any
		err := dec.Decode(&doc)
		if errors.Is(err, io.EOF) {
			return errs
		}
		if err != nil {
			return append(errs, fmt.Errorf("decoding YAML: %w", err))
		}
		key := fmt.Sprintf("%v %v", doc["apiVersion"], doc["kind"])
		v, ok := c.schemas[key]
		if !ok {
			errs = append(errs, fmt.Errorf("got a %s document, want one of %s", key, strings.Join(sortedKeys(c.schemas), ", ")))
			continue
		}
		c.seen[fmt.Sprint(doc["kind"])]++
		errs = append(errs, v.Validate(doc)...)
		errs = append(errs, c.checkKind(doc)...)
	}
}

// checkKind holds each kind to what the doc promises about it, and checks what it embeds.
func (c *checker) checkKind(doc map[string]any) []error {
	spec, _ := doc["spec"].(map[string]any)
	var errs []error
	switch doc["kind"] {
	case "NodeConfig":
		// The platform's NodeConfig carries the cluster fields, and a strategy would make
		// nodeadm build its own array on storecrypt's disks.
		if _, ok := spec["cluster"]; ok {
			errs = append(errs, errors.New("a NodeConfig fragment sets spec.cluster, want it left to the platform's NodeConfig"))
		}
		if _, ok := lookup(spec, "instance", "localStorage"); ok {
			errs = append(errs, errors.New("a NodeConfig sets spec.instance.localStorage, want it unset: nodeadm would take the instance-store disks"))
		}
	case "EC2NodeClass":
		// On AL2023 RAID0 becomes localStorage RAID0 in Karpenter's NodeConfig.
		if _, ok := spec["instanceStorePolicy"]; ok {
			errs = append(errs, errors.New("an EC2NodeClass sets spec.instanceStorePolicy, want it unset: nodeadm would take the instance-store disks"))
		}
		userData, ok := spec["userData"].(string)
		if !ok {
			return append(errs, errors.New("an EC2NodeClass has no spec.userData, want storecrypt's MIME user data"))
		}
		errs = append(errs, c.checkUserData(userData)...)
	case "ClusterConfig":
		for _, group := range []string{"nodeGroups", "managedNodeGroups"} {
			list, _ := doc[group].([]any)
			for _, ng := range list {
				ng, _ := ng.(map[string]any)
				cmds, _ := ng["preBootstrapCommands"].([]any)
				for _, cmd := range cmds {
					// eksctl makes each command a shell part of its own this way
					// (pkg/nodebootstrap/al2023.go).
					errs = append(errs, c.checkShell("#!/bin/bash\n"+fmt.Sprint(cmd))...)
				}
			}
		}
	}
	return errs
}

func lookup(m map[string]any, keys ...string) (any, bool) {
	var v any = m
	for _, k := range keys {
		obj, ok := v.(map[string]any)
		if !ok {
			return nil, false
		}
		if v, ok = obj[k]; !ok {
			return nil, false
		}
	}
	return v, true
}

// checkUserData splits MIME user data as nodeadm and cloud-init do: NodeConfig parts by
// nodeadm's media type, shell parts by cloud-init's.
func (c *checker) checkUserData(text string) []error {
	msg, err := mail.ReadMessage(strings.NewReader(text))
	if err != nil {
		return []error{fmt.Errorf("reading the user data's MIME header: %w", err)}
	}
	mediaType, params, err := mime.ParseMediaType(msg.Header.Get("Content-Type"))
	if err != nil {
		return []error{fmt.Errorf("reading the user data's Content-Type: %w", err)}
	}
	if mediaType != "multipart/mixed" {
		return []error{fmt.Errorf("got user data of type %q, want multipart/mixed", mediaType)}
	}
	c.seen["MIME user data"]++
	var errs []error
	parts := multipart.NewReader(msg.Body, params["boundary"])
	for {
		part, err := parts.NextPart()
		if errors.Is(err, io.EOF) {
			return errs
		}
		if err != nil {
			return append(errs, fmt.Errorf("reading a user-data part: %w", err))
		}
		body, err := io.ReadAll(part)
		if err != nil {
			return append(errs, fmt.Errorf("reading a user-data part: %w", err))
		}
		switch partType, _, _ := mime.ParseMediaType(part.Header.Get("Content-Type")); partType {
		case "application/node.eks.aws":
			errs = append(errs, c.checkYAML(string(body))...)
		case "text/x-shellscript":
			errs = append(errs, c.checkShell(string(body))...)
		default:
			errs = append(errs, fmt.Errorf("got a user-data part of type %q, want application/node.eks.aws or text/x-shellscript", partType))
		}
	}
}

// kubeletState is what the sizing advice rests on: the kubelet reports ephemeral storage
// from the filesystem holding /var/lib/kubelet, so every install binds it (with the
// runtime's and the pods' logs) onto the volume.
var kubeletState = []string{"/var/lib/containerd", "/var/lib/kubelet", "/var/log/pods"}

// checkShell parses the script with bash -n and runs each storecrypt-agent command line
// through the agent's own flag parsing (with --help, so nothing is done).
func (c *checker) checkShell(script string) []error {
	var errs []error
	cmd := exec.Command("bash", "-n")
	cmd.Stdin = strings.NewReader(script)
	if out, err := cmd.CombinedOutput(); err != nil {
		errs = append(errs, fmt.Errorf("bash -n: %w: %s", err, out))
	}
	for _, line := range strings.Split(strings.ReplaceAll(script, "\\\n", " "), "\n") {
		fields := strings.Fields(line)
		if len(fields) < 2 || filepath.Base(fields[0]) != "storecrypt-agent" {
			continue
		}
		c.seen["storecrypt-agent "+fields[1]]++
		var stdout, stderr bytes.Buffer
		if code := cli.Main(context.Background(), append(fields[1:], "--help"), &stdout, &stderr, nil); code != 0 {
			errs = append(errs, fmt.Errorf("%s: got exit %d from the agent's flags, want 0:\n%s", line, code, stderr.String()))
		}
		if fields[1] == "install" {
			errs = append(errs, bindsKubeletState(fields[2:])...)
		}
	}
	return errs
}

func bindsKubeletState(args []string) []error {
	var bound []string
	for i, a := range args {
		if v, ok := strings.CutPrefix(a, "--bind-dirs="); ok {
			bound = strings.Split(v, ",")
		} else if a == "--bind-dirs" && i+1 < len(args) {
			bound = strings.Split(args[i+1], ",")
		}
	}
	var errs []error
	for _, dir := range kubeletState {
		if !slices.Contains(bound, dir) {
			errs = append(errs, fmt.Errorf("install binds %v, want %s among them", bound, dir))
		}
	}
	return errs
}

// checkDoc checks every block of a doc, and that it still shows each thing it is about.
func checkDoc(t *testing.T, path string) []string {
	t.Helper()
	c := newChecker(t)
	var problems []string
	for _, b := range fencedBlocks(t, path) {
		for _, err := range c.checkBlock(b) {
			problems = append(problems, fmt.Sprintf("%s:%d: %v", path, b.line, err))
		}
	}
	for _, want := range []string{"NodeConfig", "EC2NodeClass", "NodePool", "ClusterConfig", "MIME user data", "storecrypt-agent install"} {
		if c.seen[want] == 0 {
			problems = append(problems, fmt.Sprintf("got no %s checked in %s, want at least one", want, path))
		}
	}
	return problems
}

// TestKubernetesDoc: every block of docs/kubernetes.md passes.
func TestKubernetesDoc(t *testing.T) {
	for _, p := range checkDoc(t, docPath) {
		t.Error(p)
	}
}

// TestDocWithoutExamplesFails: a doc that lost its examples fails rather than passing on
// nothing checked.
func TestDocWithoutExamplesFails(t *testing.T) {
	path := filepath.Join(t.TempDir(), "kubernetes.md")
	if err := os.WriteFile(path, []byte("# Kubernetes nodes\n\nNo examples.\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	got := strings.Join(checkDoc(t, path), "\n")
	if want := "got no NodeConfig checked"; !strings.Contains(got, want) {
		t.Errorf("got:\n%s\nwant a problem saying %q", got, want)
	}
}
