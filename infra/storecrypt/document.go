package storecrypt

import (
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
	d := deployedDocument{name: jsii.String(s.props.DocumentName)}
	d.arn = s.st.FormatArn(&awscdk.ArnComponents{Service: jsii.String("ssm"), Resource: jsii.String("document"), ResourceName: d.name})
	content := document.Content(s.documentDefaults(key, secret), agents)
	digest, err := document.Digest(content)
	if err != nil {
		return d, err
	}
	d.digest = digest
	d.resource = awsssm.NewCfnDocument(s.c, jsii.String("Document"), &awsssm.CfnDocumentProps{
		Name: d.name, DocumentType: jsii.String("Command"), DocumentFormat: jsii.String("JSON"),
		UpdateMethod: jsii.String("NewVersion"), Content: content,
	})
	component(d.resource, "document")
	d.agentLogs = awslogs.NewLogGroup(s.c, jsii.String("AgentLogs"), &awslogs.LogGroupProps{
		Retention: s.props.LogRetention, RemovalPolicy: s.props.RemovalPolicy,
	})
	return d, nil
}

// documentDefaults are the document's parameter defaults: the stack's choices.
func (s *builder) documentDefaults(key awskms.IKey, secret string) contract.AgentOptions {
	defaults := contract.DefaultAgentOptions()
	defaults.KeySource, defaults.MountPoint, defaults.Filesystem, defaults.Layout = s.props.KeySource, s.props.MountPoint, s.props.Filesystem, s.props.Layout
	defaults.KMSKeyID = *key.KeyArn()
	defaults.Secret = secret
	return defaults
}
