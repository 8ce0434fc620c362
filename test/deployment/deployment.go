// Package deployment is storecrypt as the stack would deploy it into the fake account:
// the SSM document registered as its first (default) version, and the functions'
// environment as the stack would set it. The functions' tests, the CLI's and the
// benchmarks start from it.
package deployment

import (
	"encoding/json"
	"strings"

	"github.com/storecrypt/storecrypt/internal/contract"
	"github.com/storecrypt/storecrypt/internal/document"
	"github.com/storecrypt/storecrypt/internal/fakeaws"
	"github.com/storecrypt/storecrypt/test/emu"
)

// Deployment is one deployment's names.
type Deployment struct {
	KeyARN       string
	DocumentName string
	Digest       string
	Content      string // the document as SSM holds it
	Env          map[string]string
}

// Getenv reads Env, for the functions' LoadConfig.
func (d Deployment) Getenv(k string) string { return d.Env[k] }

// Agents stand in for the agent objects the stack publishes.
var Agents = document.Agents{URLPrefix: "https://cdk-assets.s3.us-east-1.amazonaws.com/storecrypt-agent-0123456789abcdef-", Each: []document.Agent{
	{Arch: "amd64", SHA256: strings.Repeat("a", 64), GzSHA256: strings.Repeat("c", 64)},
	{Arch: "arm64", SHA256: strings.Repeat("b", 64), GzSHA256: strings.Repeat("d", 64)},
}}

// Into deploys into w, whose key keyARN is: the document as its first version, the
// stack's outputs, and the environment of both functions for kms-datakey, with the
// standard key user's role in scope.
func Into(w *fakeaws.World, keyARN string) (Deployment, error) {
	defaults := contract.DefaultAgentOptions()
	defaults.KMSKeyID = keyARN
	digest, raw, err := add(w, contract.DocumentName, document.Content(defaults, Agents))
	if err != nil {
		return Deployment{}, err
	}
	names := fakeaws.NamesIn(partition(keyARN), region(keyARN))
	outputs := map[string]string{
		contract.OutputKeyARN: keyARN, contract.OutputKeySource: contract.KeySourceKMSDataKey,
		contract.OutputDocumentName: contract.DocumentName, contract.OutputDocumentDigest: digest,
		contract.OutputInstanceRoleARNs: names.KeyUser, contract.OutputLedgerTable: emu.LedgerTable,
		contract.OutputAgentLogGroup: AgentLogGroup,
	}
	env := map[string]string{
		contract.EnvKMSKeyARN:      keyARN,
		contract.EnvDocumentName:   contract.DocumentName,
		contract.EnvDocumentDigest: digest,
		contract.EnvInstanceRoles:  names.KeyUser,
		contract.EnvLaunchRole:     LaunchRole(partition(keyARN)),
		contract.EnvQueueURL:       "https://sqs." + region(keyARN) + ".amazonaws.com/" + fakeaws.Account + "/storecrypt-launch",
	}
	// The revoke, resume and shred documents under their default names, as the app
	// deploys them.
	for _, d := range contract.RevocationDocuments {
		digest, _, err := add(w, d.Default, document.RevocationContent(d, defaults, Agents.Each))
		if err != nil {
			return Deployment{}, err
		}
		outputs[d.Output], outputs[d.OutputDigest] = d.Default, digest
		env[d.EnvName], env[d.EnvDigest] = d.Default, digest
	}
	w.AddStack(contract.StackName, outputs)
	if err := w.Export(contract.StackName, contract.OutputDocumentDigest, contract.StackName+":"+contract.StackExport); err != nil {
		return Deployment{}, err
	}
	return Deployment{KeyARN: keyARN, DocumentName: contract.DocumentName, Digest: digest, Content: raw, Env: env}, nil
}

// add registers content in w as document name's first version, and returns its digest
// and the content as SSM holds it.
func add(w *fakeaws.World, name string, content map[string]any) (digest, raw string, err error) {
	if digest, err = document.Digest(content); err != nil {
		return "", "", err
	}
	b, err := json.Marshal(content)
	if err != nil {
		return "", "", err
	}
	w.AddDocument(name, string(b), true)
	return digest, string(b), nil
}

// LaunchRole is the launch function's role in the standard account of partition: the
// retiring principal of its grants.
func LaunchRole(partition string) string {
	return "arn:" + partition + ":iam::" + fakeaws.Account + ":role" + contract.FunctionRolePath + "storecrypt-launch"
}

func partition(arn string) string { return strings.Split(arn, ":")[1] }
func region(arn string) string    { return strings.Split(arn, ":")[3] }

// CommandID is a command id named by label, as long as the 36 characters SSM's ids have
// (its model refuses any other length).
func CommandID(label string) string {
	return label + strings.Repeat("-", 36-len(label))
}

// AgentLogGroup is the stack's log group of the agents' command output.
const AgentLogGroup = "/storecrypt/agents"

// AgentOutput is the run step's output of an agent that finished with result ("ok",
// "refused-unsafe", ...): the document's own lines, then the agent's report, which for
// "ok" shows the instance's volume ready, open and mounted under the key.
func AgentOutput(instanceID, keySource, keyARN, result string) string {
	rep := contract.Report{Command: "apply", Result: result, InstanceID: instanceID, Devices: []contract.Device{}, Steps: []contract.Step{}}
	for code, name := range contract.ExitCodeNames {
		if name == result {
			rep.ExitCode = int(code)
		}
	}
	if result == contract.ExitCodeNames[contract.ExitOK] {
		rep.Layout = &contract.Layout{Volume: "/dev/md127", State: contract.StateReady, Open: true, Mounted: true, Cipher: "aes-xts-plain64",
			KeySizeBits: 512, SectorSize: 4096, KeySource: keySource, KeyID: keyARN, MountPoint: contract.DefaultMountPoint, Filesystem: "ext4", ProvisionedBy: contract.ProvisionedByCommand}
	}
	b, _ := json.MarshalIndent(rep, "", "  ") // a report always encodes
	return "storecrypt: checking the agent\n" + string(b) + "\n"
}
