package storecrypt

import (
	"fmt"
	"strings"

	"github.com/aws/aws-cdk-go/awscdk/v2"
	"github.com/aws/aws-cdk-go/awscdk/v2/awskms"
	"github.com/aws/aws-cdk-go/awscdk/v2/awslogs"
	"github.com/aws/aws-cdk-go/awscdk/v2/awsssm"
	"github.com/aws/jsii-runtime-go"

	"github.com/storecrypt/storecrypt/internal/contract"
	"github.com/storecrypt/storecrypt/internal/document"
)

// deployedDocument is the SSM document as the functions, rules and operators name it.
type deployedDocument struct {
	resource  awsssm.CfnDocument
	name, arn *string
	digest    string // document.Digest of the content
	// agentLogs is the group of the document's command output, which the instance roles
	// may write (instanceAccess).
	agentLogs awslogs.LogGroup
}

// ssmDocument is the Command document an operator also reruns from the console. Its
// digest goes to both functions, which send and trust only versions with this content.
// UpdateMethod NewVersion: "the default version of the document is changed to the newly
// created version" (CloudFormation's AWS::SSM::Document), so every deploy's content is
// the default, and older versions stay for commands still running.
func (s *builder) ssmDocument(agents document.Agents, key awskms.IKey, secret string) (deployedDocument, error) {
	d := deployedDocument{}
	var err error
	d.resource, d.name, d.arn, d.digest, err = s.commandDocument("Document", s.props.DocumentName, document.Content(s.documentDefaults(key, secret), agents))
	if err != nil {
		return d, err
	}
	d.agentLogs = awslogs.NewLogGroup(s.c, jsii.String("AgentLogs"), &awslogs.LogGroupProps{
		Retention: s.props.LogRetention, RemovalPolicy: s.props.RemovalPolicy,
	})
	return d, nil
}

// commandDocument deploys one Command document under name and returns its name, ARN and
// the digest (document.Digest) of its content, which the functions trust.
func (s *builder) commandDocument(id, name string, content map[string]any) (awsssm.CfnDocument, *string, *string, string, error) {
	digest, err := document.Digest(content)
	if err != nil {
		return nil, nil, nil, "", fmt.Errorf("document %s: %w", name, err)
	}
	n := jsii.String(name)
	arn := s.st.FormatArn(&awscdk.ArnComponents{Service: jsii.String("ssm"), Resource: jsii.String("document"), ResourceName: n})
	res := awsssm.NewCfnDocument(s.c, jsii.String(id), &awsssm.CfnDocumentProps{
		Name: n, DocumentType: jsii.String("Command"), DocumentFormat: jsii.String("JSON"),
		UpdateMethod: jsii.String("NewVersion"), Content: content,
	})
	component(res, "document")
	return res, n, arn, digest, nil
}

// revocationDocument is one of the revoke, resume and shred documents as deployed.
type revocationDocument struct {
	contract.RevocationDocument
	resource  awsssm.CfnDocument
	name, arn *string
	digest    string
}

// revocationDocuments deploys the revoke, resume and shred documents as <Name>-revoke,
// -resume, -shred (the apply document is <Name>-apply), each checking the installed agent
// against the digests of the agents the apply document installs. Three documents, so
// that IAM can let a responder send revoke without shred.
func (s *builder) revocationDocuments(agents document.Agents, key awskms.IKey, secret string) ([]revocationDocument, error) {
	var docs []revocationDocument
	for _, spec := range contract.RevocationDocuments {
		d := revocationDocument{RevocationDocument: spec}
		id := strings.ToUpper(spec.Suffix[:1]) + spec.Suffix[1:] + "Document"
		var err error
		d.resource, d.name, d.arn, d.digest, err = s.commandDocument(id, s.props.Name+"-"+spec.Suffix,
			document.RevocationContent(spec, s.documentDefaults(key, secret), agents.Each))
		if err != nil {
			return nil, err
		}
		docs = append(docs, d)
	}
	return docs, nil
}

// documentDefaults are the document's parameter defaults: the stack's choices.
func (s *builder) documentDefaults(key awskms.IKey, secret string) contract.AgentOptions {
	defaults := contract.DefaultAgentOptions()
	defaults.KeySource, defaults.MountPoint, defaults.Filesystem, defaults.Layout = s.props.KeySource, s.props.MountPoint, s.props.Filesystem, s.props.Layout
	defaults.FastFormat = s.props.FastFormat
	defaults.KMSKeyID = *key.KeyArn()
	defaults.Secret = secret
	return defaults
}
