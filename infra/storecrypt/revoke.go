package storecrypt

import (
	"slices"
	"strings"

	"github.com/aws/aws-cdk-go/awscdk/v2"
	"github.com/aws/aws-cdk-go/awscdk/v2/awsdynamodb"
	"github.com/aws/aws-cdk-go/awscdk/v2/awsiam"
	"github.com/aws/aws-cdk-go/awscdk/v2/awskms"
	"github.com/aws/jsii-runtime-go"
	"github.com/cdklabs/cdk-nag-go/cdknag/v2"

	"github.com/storecrypt/storecrypt/internal/contract"
	"github.com/storecrypt/storecrypt/internal/ledger"
)

// Sids of the fleet revoke's statements in the key policy.
const (
	sidFleetRevoked         = "StoreCryptFleetRevoked"
	sidNoGrantsFleetRevoked = "StoreCryptNoGrantsWhileFleetRevoked"
	sidRevokedTagWithMFA    = "StoreCryptRevokedTagOnlyWithMFA"
)

// fleetRevoke cuts every instance off the key at once while the key carries
// contract.KeyTagRevoked, in O(1) calls whatever the fleet's size (one TagResource), where
// revoking grants one by one would take a call per instance:
//   - StoreCryptFleetRevoked refuses the instance roles every use of the key (the
//     volumes' data keys, the seed secret, S3's use on their behalf): an explicit deny
//     wins over the key users' Allow and over every grant;
//   - StoreCryptNoGrantsWhileFleetRevoked refuses the launch role CreateGrant, so no
//     sweep or launch re-grants while the fleet is revoked (nobody else may make a
//     Decrypt grant: launchGrants). The launch role keeps its other uses: the ledger's
//     table is encrypted under the key, and it must record what happens meanwhile;
//   - StoreCryptRevokedTagOnlyWithMFA: the tag is put or taken only by a session that
//     proved MFA to IAM, or from a role IAM Identity Center manages, as a rerun is
//     (operatorPolicy). Instance roles (whose sessions carry no MFA) never may, and nor
//     may CloudFormation: the AWS::KMS::Key handler removes on a stack update every tag
//     the template does not name, and ignores an access denied there
//     (docs/aws-fidelity.md), so a deploy leaves the fleet revoked.
//
// KMS applies a tag change to authorization within five minutes ("ABAC for AWS KMS"), as
// it does a revoked grant. With StoreCryptProps.Key the key policy is the user's: the
// denies go into the stack's roles' own policies, and a role under the instance role
// path, which the stack cannot change, is the user's to cover.
func (s *builder) fleetRevoke(key awskms.IKey, roles fleetRoles, path rolePath, launch awsiam.IRole) {
	tagged := map[string]any{"Null": map[string]any{"aws:ResourceTag/" + contract.KeyTagRevoked: "false"}}
	created, ok := key.(awskms.Key)
	if !ok || s.props.Key != nil {
		for _, r := range roles.roles {
			r.AddToPrincipalPolicy(deny(sidFleetRevoked, []string{"kms:*"}, nil, key.KeyArn(), tagged))
		}
		launch.AddToPrincipalPolicy(deny(sidNoGrantsFleetRevoked, []string{"kms:CreateGrant"}, nil, key.KeyArn(), tagged))
		return
	}
	users := map[string]any{"ArnLike": map[string]any{"aws:PrincipalArn": path.ifSet(path.roles, roles.arns)}, "Null": tagged["Null"]}
	grants := map[string]any{"ArnEquals": map[string]any{"aws:PrincipalArn": launch.RoleArn()}, "Null": tagged["Null"]}
	for _, d := range []awsiam.PolicyStatement{
		deny(sidFleetRevoked, []string{"kms:*"}, anyone, nil, users),
		deny(sidNoGrantsFleetRevoked, []string{"kms:CreateGrant"}, anyone, nil, grants),
		deny(sidRevokedTagWithMFA, []string{"kms:TagResource", "kms:UntagResource"}, anyone, nil, map[string]any{
			"ForAnyValue:StringEquals": map[string]any{"aws:TagKeys": contract.KeyTagRevoked},
			"BoolIfExists":             map[string]any{"aws:MultiFactorAuthPresent": "false"},
			"ArnNotLike":               map[string]any{"aws:PrincipalArn": s.identityCenterRoles()},
		}),
	} {
		created.AddToResourcePolicy(d, jsii.Bool(false))
	}
}

// anyone is a key policy statement's Principal "*"; nil leaves an identity policy's out.
var anyone = &[]awsiam.IPrincipal{awsiam.NewAnyPrincipal()}

// deny is a Deny statement on resource, or with nil on "*" (in a key policy, the key).
func deny(sid string, actions []string, principals *[]awsiam.IPrincipal, resource *string, conditions map[string]any) awsiam.PolicyStatement {
	if resource == nil {
		resource = jsii.String("*")
	}
	return awsiam.NewPolicyStatement(&awsiam.PolicyStatementProps{
		Sid: jsii.String(sid), Effect: awsiam.Effect_DENY, Principals: principals,
		Actions: jsii.Strings(actions...), Resources: &[]*string{resource}, Conditions: &conditions,
	})
}

// sendWithMFA lets a principal send the documents to the instances in scope only from a
// session that proved MFA to IAM, or from a role IAM Identity Center manages
// (operatorPolicy says why): sid+"WithMFA" and sid+"FromIdentityCenter".
func (s *builder) sendWithMFA(sid string, docs ...*string) []awsiam.PolicyStatement {
	resources := append(slices.Clone(docs), s.instanceARN())
	return []awsiam.PolicyStatement{
		statement(sid+"WithMFA", []string{"ssm:SendCommand"}, resources, map[string]any{"Bool": map[string]any{"aws:MultiFactorAuthPresent": "true"}}),
		statement(sid+"FromIdentityCenter", []string{"ssm:SendCommand"}, resources, map[string]any{"ArnLike": map[string]any{"aws:PrincipalArn": s.identityCenterRoles()}}),
	}
}

// identityCenterRoles is the pattern of the roles IAM Identity Center manages, whose
// sign-in enforces MFA itself (operatorPolicy).
func (s *builder) identityCenterRoles() *string {
	return s.st.FormatArn(&awscdk.ArnComponents{Service: jsii.String("iam"), Region: jsii.String(""),
		Resource: jsii.String("role"), ResourceName: jsii.String("aws-reserved/sso.amazonaws.com/*")})
}

// revocationDocumentARN is the ARN of a revocation document (contract.DocumentRevoke,
// Resume, Shred) as the stack deploys it: its default name with storecrypt's prefix
// replaced by the stack's Name, as DocumentName's default is Name + "-apply".
func (s *builder) revocationDocumentARN(doc string) *string {
	name := s.props.Name + strings.TrimPrefix(doc, "storecrypt")
	return s.st.FormatArn(&awscdk.ArnComponents{Service: jsii.String("ssm"), Resource: jsii.String("document"), ResourceName: jsii.String(name)})
}

// revokeAttributes are the ledger attributes `storecrypt revoke` and `resume` write:
// the item's key, the revocation mark (contract.LedgerRevoked*) and the resume's
// (contract.LedgerResumed*). Not the story (entries, status, reason, ...), which is the
// functions' record of what happened, so that a responder cannot write that an instance
// is encrypted; nor the evidence (encrypted_at, luks_uuid, ...) nor terminated_at; and
// not the shred mark, which shredPolicy adds.
var revokeAttributes = []string{
	ledger.AttrInstance, ledger.AttrLaunchTime,
	contract.LedgerRevokedAt, contract.LedgerRevokedBy, contract.LedgerRevokedReason,
	contract.LedgerResumedAt, contract.LedgerResumedBy, contract.LedgerResumedReason,
}

// shredAttributes are what a shred writes besides revokeAttributes.
var shredAttributes = []string{contract.LedgerShreddedAt, contract.LedgerShreddedBy, contract.LedgerShreddedReason}

// ledgerWrites lets UpdateItem on the ledger touch only attrs: dynamodb:Attributes lists
// the attribute names a request accesses ("Using IAM policy conditions for fine-grained
// access control"); ForAllValues holds for a request that names none, so the Null check
// requires the list.
func ledgerWrites(sid string, table awsdynamodb.Table, attrs []string) awsiam.PolicyStatement {
	return statement(sid, []string{"dynamodb:UpdateItem"}, []*string{table.TableArn()}, map[string]any{
		"ForAllValues:StringEquals": map[string]any{"dynamodb:Attributes": attrs},
		"Null":                      map[string]any{"dynamodb:Attributes": "false"},
	})
}

// revokeStatements are what `storecrypt revoke` and `resume` need beyond the operator's
// reads: revoke an instance's grant (kms:ListGrants is InspectTheKey's), put and take
// the fleet tag and no other (the key policy wants MFA for it: fleetRevoke), record the
// mark in the ledger, and send the revocation events. Sending the revoke and resume
// documents goes with the rerun's statements, under the same MFA rule.
func (s *builder) revokeStatements(key awskms.IKey, table awsdynamodb.Table) []awsiam.PolicyStatement {
	keyARN := []*string{key.KeyArn()}
	return []awsiam.PolicyStatement{
		statement("RevokeGrants", []string{"kms:RevokeGrant"}, keyARN, nil),
		statement("RevokeTheFleet", []string{"kms:TagResource", "kms:UntagResource"}, keyARN, map[string]any{
			"ForAllValues:StringEquals": map[string]any{"aws:TagKeys": []string{contract.KeyTagRevoked}},
			"Null":                      map[string]any{"aws:TagKeys": "false"},
		}),
		ledgerWrites("RecordRevocations", table, revokeAttributes),
		statement("RevocationEvents", []string{"events:PutEvents"}, []*string{s.st.FormatArn(&awscdk.ArnComponents{
			Service: jsii.String("events"), Resource: jsii.String("event-bus"), ResourceName: jsii.String("default")})}, map[string]any{
			// Both keys are multivalued (the Service Authorization Reference types them
			// ArrayOfString): ForAllValues, with the Null check that keeps it from holding
			// for an entry without them.
			"ForAllValues:StringEquals": map[string]any{"events:source": []string{contract.EventSource},
				"events:detail-type": []string{contract.EventInstanceRevoked, contract.EventInstanceResumed, contract.EventInstanceShredded}},
			"Null": map[string]any{"events:source": "false", "events:detail-type": "false"},
		}),
	}
}

// shredPolicy is the right to shred, apart from the operator policy so that a team may
// revoke and resume without it: send the shred document (with MFA, or from IAM Identity
// Center, as a rerun), read its versions to find the deployed one, and record the shred
// mark. ssm:SendCommand on the document's ARN is the only place IAM can draw that line
// (contract.DocumentShred).
func (s *builder) shredPolicy(table awsdynamodb.Table) awsiam.ManagedPolicy {
	shred := s.revocationDocumentARN(contract.DocumentShred)
	statements := append(s.sendWithMFA("Shred", shred),
		// A shred sends only a version with the deployed content, as a revoke does.
		statement("ReadTheShredDocument", []string{"ssm:GetDocument", "ssm:ListDocumentVersions"}, []*string{shred}, nil),
		ledgerWrites("RecordShreds", table, append(slices.Clone(revokeAttributes), shredAttributes...)))
	p := awsiam.NewManagedPolicy(s.c, jsii.String("ShredPolicy"), &awsiam.ManagedPolicyProps{
		Description: jsii.String("storecrypt responders: shred an instance's volumes (irreversible), with MFA or from IAM Identity Center; attach beside the operator policy"),
		Statements:  &statements,
	})
	cdknag.NagSuppressions_AddResourceSuppressions(p, &[]*cdknag.NagPackSuppression{{
		Id: jsii.String("AwsSolutions-IAM5"), Reason: jsii.String("A shred must reach any instance in scope, one per command, and only with MFA."),
		AppliesTo: &[]any{anyInstance},
	}}, jsii.Bool(true))
	return p
}
