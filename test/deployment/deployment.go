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

// Artifacts stand in for the agent binaries the stack publishes.
var Artifacts = []document.Artifact{
	{Arch: "amd64", URL: "https://cdk-assets.s3.us-east-1.amazonaws.com/agent-amd64", SHA256: strings.Repeat("a", 64)},
	{Arch: "arm64", URL: "https://cdk-assets.s3.us-east-1.amazonaws.com/agent-arm64", SHA256: strings.Repeat("b", 64)},
}

// Into deploys into w, whose key keyARN is: the document as its first version, and the
// environment of both functions for kms-datakey, with the standard key user's role in
// scope.
func Into(w *fakeaws.World, keyARN string) (Deployment, error) {
	defaults := contract.DefaultAgentOptions()
	defaults.KMSKeyID = keyARN
	content := document.Content(defaults, Artifacts)
	digest, err := document.Digest(content)
	if err != nil {
		return Deployment{}, err
	}
	raw, err := json.Marshal(content)
	if err != nil {
		return Deployment{}, err
	}
	w.AddDocument(contract.DocumentName, string(raw), true)
	names := fakeaws.NamesIn(partition(keyARN), region(keyARN))
	return Deployment{
		KeyARN: keyARN, DocumentName: contract.DocumentName, Digest: digest, Content: string(raw),
		Env: map[string]string{
			contract.EnvKMSKeyARN:      keyARN,
			contract.EnvDocumentName:   contract.DocumentName,
			contract.EnvDocumentDigest: digest,
			contract.EnvInstanceRoles:  names.KeyUser,
			contract.EnvQueueURL:       "https://sqs." + region(keyARN) + ".amazonaws.com/" + fakeaws.Account + "/storecrypt-launch",
		},
	}, nil
}

func partition(arn string) string { return strings.Split(arn, ":")[1] }
func region(arn string) string    { return strings.Split(arn, ":")[3] }
