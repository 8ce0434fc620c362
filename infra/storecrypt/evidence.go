package storecrypt

import (
	"github.com/aws/aws-cdk-go/awscdk/v2"
	"github.com/aws/aws-cdk-go/awscdk/v2/awscloudtrail"
	"github.com/aws/aws-cdk-go/awscdk/v2/awsdynamodb"
	"github.com/aws/aws-cdk-go/awscdk/v2/awsiam"
	"github.com/aws/aws-cdk-go/awscdk/v2/awskms"
	"github.com/aws/aws-cdk-go/awscdk/v2/awss3"
	"github.com/aws/jsii-runtime-go"
	"github.com/cdklabs/cdk-nag-go/cdknag/v2"

	"github.com/storecrypt/storecrypt/internal/contract"
	"github.com/storecrypt/storecrypt/internal/ledger"
)

// accessLogs is the bucket that keeps the other buckets' access logs.
func (s *builder) accessLogs() awss3.Bucket {
	logs := awss3.NewBucket(s.c, jsii.String("AccessLogs"), &awss3.BucketProps{
		BlockPublicAccess: awss3.BlockPublicAccess_BLOCK_ALL(), EnforceSSL: jsii.Bool(true),
		Encryption: awss3.BucketEncryption_S3_MANAGED, ObjectOwnership: awss3.ObjectOwnership_BUCKET_OWNER_PREFERRED,
		Versioned: jsii.Bool(true), RemovalPolicy: s.props.RemovalPolicy,
		LifecycleRules: &[]*awss3.LifecycleRule{{Expiration: awscdk.Duration_Days(jsii.Number(400))}},
	})
	cdknag.NagSuppressions_AddResourceSuppressions(logs, &[]*cdknag.NagPackSuppression{{
		Id: jsii.String("AwsSolutions-S1"), Reason: jsii.String("This is the access-log bucket; logging it into itself would loop."),
	}}, jsii.Bool(true))
	return logs
}

// ledgerTable is the ledger (package ledger): one item per instance launch, kept past
// the instance, the stack and mistakes: point-in-time recovery, deletion protection,
// retained on stack deletion, encrypted under the stack's key.
func (s *builder) ledgerTable(key awskms.IKey) awsdynamodb.Table {
	attr := func(name string) *awsdynamodb.Attribute {
		return &awsdynamodb.Attribute{Name: jsii.String(name), Type: awsdynamodb.AttributeType_STRING}
	}
	return awsdynamodb.NewTable(s.c, jsii.String("Ledger"), &awsdynamodb.TableProps{
		// The example SCP names storecrypt's ledgers by the suffix, and no other table.
		TableName:    jsii.String(s.props.LedgerTableName),
		PartitionKey: attr(ledger.AttrInstance), SortKey: attr(ledger.AttrLaunchTime),
		BillingMode:                      awsdynamodb.BillingMode_PAY_PER_REQUEST,
		PointInTimeRecoverySpecification: &awsdynamodb.PointInTimeRecoverySpecification{PointInTimeRecoveryEnabled: jsii.Bool(true)},
		DeletionProtection:               jsii.Bool(s.props.RemovalPolicy != awscdk.RemovalPolicy_DESTROY),
		Encryption:                       awsdynamodb.TableEncryption_CUSTOMER_MANAGED, EncryptionKey: key,
		RemovalPolicy: s.props.RemovalPolicy,
	})
}

// ledgerRights are the statements that let a principal use the ledger: the item actions
// it calls, and the key through DynamoDB for this table only (DynamoDB decrypts the
// table's key with the caller's credentials).
func (s *builder) ledgerRights(table awsdynamodb.Table, key awskms.IKey, actions ...string) []awsiam.PolicyStatement {
	return []awsiam.PolicyStatement{
		statement("Ledger", actions, []*string{table.TableArn()}, nil),
		statement("LedgerKey", []string{"kms:Decrypt"}, []*string{key.KeyArn()}, map[string]any{
			"StringEquals": map[string]any{
				"kms:ViaService": awscdk.Fn_Join(jsii.String(""), &[]*string{jsii.String("dynamodb."), s.st.Region(), jsii.String("."), s.st.UrlSuffix()}),
				"kms:EncryptionContext:aws:dynamodb:tableName": table.TableName(),
			},
		}),
	}
}

// trail records the account's management events, the key's use among them.
func (s *builder) trail(logs awss3.IBucket) {
	b := awss3.NewBucket(s.c, jsii.String("TrailBucket"), &awss3.BucketProps{
		BlockPublicAccess: awss3.BlockPublicAccess_BLOCK_ALL(), EnforceSSL: jsii.Bool(true), Encryption: awss3.BucketEncryption_S3_MANAGED,
		Versioned: jsii.Bool(true), ServerAccessLogsBucket: logs, ServerAccessLogsPrefix: jsii.String("trail/"), RemovalPolicy: s.props.RemovalPolicy,
	})
	awscloudtrail.NewTrail(s.c, jsii.String("Trail"), &awscloudtrail.TrailProps{
		Bucket: b, EnableFileValidation: jsii.Bool(true), IncludeGlobalServiceEvents: jsii.Bool(true),
		SendToCloudWatchLogs: jsii.Bool(true), CloudWatchLogsRetention: s.props.LogRetention,
	})
}

// operatorPolicy is what `storecrypt` (and the SSM console) needs: rerun the document
// only with MFA, read results, verify bindings, report, and for s3-kms store the secret.
//
// MFA: aws:MultiFactorAuthPresent is true only in sessions that proved MFA to IAM (an
// IAM user's console session, GetSessionToken or AssumeRole with a token code); it is
// absent for access keys, and AWS documents no value for IAM Identity Center sessions,
// whose sign-in enforces MFA itself ("IAM Identity Center comes preconfigured with
// multi-factor authentication"). So reruns are allowed with MFA proven to IAM, or from a
// role Identity Center manages (aws:PrincipalArn under role/aws-reserved/sso.amazonaws.com/);
// any other session, and long-term keys, may not rerun.
func (s *builder) operatorPolicy(keyRef awskms.IKey, doc deployedDocument, table awsdynamodb.Table, secret awss3.Bucket) awsiam.ManagedPolicy {
	key := []*string{keyRef.KeyArn()}
	// revoke and resume go with a rerun, under its MFA rule; shred is shredPolicy's.
	statements := append(s.sendWithMFA("Rerun", doc.arn, s.revocationDocumentARN(contract.DocumentRevoke), s.revocationDocumentARN(contract.DocumentResume)),
		statement("ReadResults", []string{"ssm:ListCommands", "ssm:ListCommandInvocations", "ssm:GetCommandInvocation",
			"ssm:DescribeInstanceInformation", "ec2:DescribeInstances", "ec2:DescribeInstanceTypes", "ec2:DescribeTags"}, []*string{jsii.String("*")}, nil),
		// The stack as deployed: a StackSet names its stack instances StackSet-<name>-<id>,
		// never what the template was synthesized as, so the name is AWS::StackName.
		statement("ReadTheStack", []string{"cloudformation:DescribeStacks"}, []*string{awscdk.Arn_Format(&awscdk.ArnComponents{
			Partition: awscdk.Aws_PARTITION(), Region: awscdk.Aws_REGION(), Account: awscdk.Aws_ACCOUNT_ID(),
			Service: jsii.String("cloudformation"), Resource: jsii.String("stack"), ResourceName: jsii.String(*awscdk.Aws_STACK_NAME() + "/*")}, s.st)}, nil),
		// Without --stack the CLI finds the stack by its export (contract.StackExport).
		// ListExports has no resource type, so it is granted on *; it reads export names and
		// values, which the stacks publish for any stack of the account to import.
		statement("FindTheStack", []string{"cloudformation:ListExports"}, []*string{jsii.String("*")}, nil),
		// rerun, revoke and resume send only a version with the deployed content
		// (document.Trust): they read the default's content and, when that is not it, the
		// other versions'.
		statement("ReadTheDocument", []string{"ssm:DescribeDocument", "ssm:GetDocument", "ssm:ListDocumentVersions"}, []*string{doc.arn,
			s.revocationDocumentARN(contract.DocumentRevoke), s.revocationDocumentARN(contract.DocumentResume)}, nil),
		statement("VerifyBindings", []string{"iam:GetInstanceProfile", "iam:SimulatePrincipalPolicy"}, []*string{
			s.st.FormatArn(&awscdk.ArnComponents{Service: jsii.String("iam"), Region: jsii.String(""), Resource: jsii.String("instance-profile"), ResourceName: jsii.String("*")}),
			s.st.FormatArn(&awscdk.ArnComponents{Service: jsii.String("iam"), Region: jsii.String(""), Resource: jsii.String("role"), ResourceName: jsii.String("*")}),
		}, nil),
		statement("InspectTheKey", []string{"kms:DescribeKey", "kms:GetKeyPolicy", "kms:ListGrants", "kms:GetKeyRotationStatus"}, key, nil),
	)
	// report scans the ledger for a period; an operator reads one instance's story with
	// Query, and a revoke reads the mark that stood before its own (GetItem).
	statements = append(statements, s.ledgerRights(table, keyRef, "dynamodb:Scan", "dynamodb:Query", "dynamodb:GetItem")...)
	statements = append(statements, s.revokeStatements(keyRef, table)...)
	if secret != nil {
		statements = append(statements,
			statement("PutSecretEncrypt", []string{"kms:Encrypt"}, key, nil),
			statement("PutSecretObject", []string{"s3:PutObject"}, []*string{secret.ArnForObjects(jsii.String(s.props.SecretKey))}, nil),
			// SSE-KMS: S3 asks KMS for a data key on the uploader's behalf.
			statement("PutSecretSSEKMS", []string{"kms:GenerateDataKey"}, key, map[string]any{
				"StringEquals": map[string]any{"kms:ViaService": "s3." + *s.st.Region() + "." + *awscdk.Aws_URL_SUFFIX()}}),
		)
	}
	operator := awsiam.NewManagedPolicy(s.c, jsii.String("OperatorPolicy"), &awsiam.ManagedPolicyProps{
		Description: jsii.String("storecrypt operators: rerun the document (with MFA, or from IAM Identity Center), read results, verify, report"),
		Statements:  &statements,
	})
	cdknag.NagSuppressions_AddResourceSuppressions(operator, &[]*cdknag.NagPackSuppression{{
		Id: jsii.String("AwsSolutions-IAM5"),
		Reason: jsii.String("The List/Get/Describe actions support no resource-level permissions; a rerun must reach any instance, and only with MFA; " +
			"verify reads whichever instance profile and role an instance has; a stack's ARN ends in an id CloudFormation chooses."),
		AppliesTo: &[]any{"Resource::*", anyInstance, appliesTo(`^Resource::arn:<AWS::Partition>:iam::[^:]+:(instance-profile|role)/\*$`),
			"Resource::arn:<AWS::Partition>:cloudformation:<AWS::Region>:<AWS::AccountId>:stack/<AWS::StackName>/*"},
	}}, jsii.Bool(true))
	return operator
}
