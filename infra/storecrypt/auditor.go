package storecrypt

import (
	"regexp"

	"github.com/aws/aws-cdk-go/awscdk/v2"
	"github.com/aws/aws-cdk-go/awscdk/v2/awsdynamodb"
	"github.com/aws/aws-cdk-go/awscdk/v2/awsiam"
	"github.com/aws/aws-cdk-go/awscdk/v2/awskms"
	"github.com/aws/jsii-runtime-go"
	"github.com/cdklabs/cdk-nag-go/cdknag/v2"

	"github.com/storecrypt/storecrypt/internal/contract"
)

// auditorAccount is an AuditorPrincipal that names an account (its root, which delegates
// to the account's own IAM policies); anything else must be a role's ARN.
var (
	auditorAccount = regexp.MustCompile(`^[0-9]{12}$`)
	auditorRoleARN = regexp.MustCompile(`^arn:aws[a-z-]*:iam::[0-9]{12}:role/[\w+=,.@/-]{1,512}$`)
)

// auditorRole is the role `storecrypt report --accounts` assumes from the central account:
// it reads this stack's evidence (the calls of the report's gather, opcli/report.go) and
// nothing else. Named by the region (contract.AuditorRoleName): IAM is global, and a
// StackSet deployed in several regions of an account makes one per region, each reading
// its own region's stack. Path /: never the path of roles that may become key users.
//
// Trust: the principal given. When that is an account (its root, so that any of its roles
// its own policies allow may assume), or a CloudFormation parameter (a StackSet, deployed
// through an organization), the caller must also belong to this account's organization
// (aws:PrincipalOrgID equal to aws:ResourceOrgID): an account that leaves the
// organization, or an id mistyped into a stranger's, reads nothing. No sts:ExternalId:
// it answers the confused deputy, a third party's service assuming roles for many
// customers, which does not arise when the auditor is the organization's own account.
func (s *builder) auditorRole(key awskms.IKey, table awsdynamodb.Table) awsiam.Role {
	principal := s.props.AuditorPrincipal
	// A parameter takes an account id or an ARN, both of which IAM reads in a Principal.
	var trust awsiam.IPrincipal = awsiam.NewArnPrincipal(jsii.String(principal))
	if auditorAccount.MatchString(principal) {
		trust = awsiam.NewAccountPrincipal(jsii.String(principal))
	}
	if auditorAccount.MatchString(principal) || unresolved(principal) {
		trust = awsiam.NewPrincipalWithConditions(trust, &map[string]any{
			"StringEquals": map[string]any{"aws:PrincipalOrgID": "${aws:ResourceOrgID}"},
		})
	}
	role := awsiam.NewRole(s.c, jsii.String("AuditorRole"), &awsiam.RoleProps{
		RoleName:           awscdk.Fn_Join(jsii.String(""), &[]*string{jsii.String(contract.AuditorRolePrefix), s.st.Region()}),
		AssumedBy:          trust,
		Description:        jsii.String("storecrypt report --accounts: reads this stack's evidence (ledger, instances, key state); no decryption, no write"),
		MaxSessionDuration: awscdk.Duration_Hours(jsii.Number(1)),
	})
	stackARN := awscdk.Arn_Format(&awscdk.ArnComponents{
		Partition: awscdk.Aws_PARTITION(), Region: awscdk.Aws_REGION(), Account: awscdk.Aws_ACCOUNT_ID(),
		Service: jsii.String("cloudformation"), Resource: jsii.String("stack"), ResourceName: jsii.String(*awscdk.Aws_STACK_NAME() + "/*")}, s.st)
	statements := []awsiam.PolicyStatement{
		// The report finds the stack by its export; ListExports takes no resource.
		statement("FindTheStack", []string{"cloudformation:ListExports"}, []*string{jsii.String("*")}, nil),
		statement("ReadTheStack", []string{"cloudformation:DescribeStacks"}, []*string{stackARN}, nil),
		// Instances in scope that the ledger has no item for; Describe* take no resource.
		statement("ReadTheInstances", []string{"ec2:DescribeInstances", "ec2:DescribeInstanceTypes"}, []*string{jsii.String("*")}, nil),
		// An instance's role, by its profile, decides whether it is in scope.
		statement("ReadTheProfiles", []string{"iam:GetInstanceProfile"}, []*string{
			s.st.FormatArn(&awscdk.ArnComponents{Service: jsii.String("iam"), Region: jsii.String(""), Resource: jsii.String("instance-profile"), ResourceName: jsii.String("*")}),
		}, nil),
		statement("ReadTheKeyState", []string{"kms:DescribeKey", "kms:GetKeyRotationStatus"}, []*string{key.KeyArn()}, nil),
	}
	// The report scans the ledger for the period; DynamoDB decrypts the table's key with
	// the caller's credentials, so the key's Decrypt comes with it, through DynamoDB and
	// for this table only.
	statements = append(statements, s.ledgerRights(table, key, "dynamodb:Scan")...)
	for _, st := range statements {
		role.AddToPolicy(st)
	}
	cdknag.NagSuppressions_AddResourceSuppressions(role, &[]*cdknag.NagPackSuppression{{
		Id: jsii.String("AwsSolutions-IAM5"),
		Reason: jsii.String("ListExports, DescribeInstances and DescribeInstanceTypes support no resource-level permissions; an instance's profile may be any of the account's; " +
			"a stack's ARN ends in an id CloudFormation chooses."),
		AppliesTo: &[]any{"Resource::*", appliesTo(`^Resource::arn:<AWS::Partition>:iam::[^:]+:instance-profile/\*$`),
			"Resource::arn:<AWS::Partition>:cloudformation:<AWS::Region>:<AWS::AccountId>:stack/<AWS::StackName>/*"},
	}}, jsii.Bool(true))
	return role
}
