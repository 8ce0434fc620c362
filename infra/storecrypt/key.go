package storecrypt

import (
	"fmt"
	"slices"
	"strings"

	"github.com/aws/aws-cdk-go/awscdk/v2"
	"github.com/aws/aws-cdk-go/awscdk/v2/awsiam"
	"github.com/aws/aws-cdk-go/awscdk/v2/awskms"
	"github.com/aws/aws-cdk-go/awscdk/v2/awss3"
	"github.com/aws/jsii-runtime-go"
	"github.com/cdklabs/cdk-nag-go/cdknag/v2"

	"github.com/storecrypt/storecrypt/internal/contract"
)

// fleetRoles are the roles whose instances are in scope: the key's only users.
type fleetRoles struct {
	roles   []awsiam.IRole
	arns    []*string
	profile awsiam.InstanceProfile // nil when the roles are the user's own
}

// instanceRoles creates the workload role and profile, or imports the user's roles.
func (s *builder) instanceRoles() fleetRoles {
	var f fleetRoles
	if len(s.props.InstanceRoles) > 0 {
		for i, given := range s.props.InstanceRoles {
			// Imported by ARN under the construct, mutable, whatever the role given is:
			// the statements land in a policy of the construct's own even for a role
			// imported immutably or from another stack, and the template is the one the
			// ARN-taking API made.
			arn := given.RoleArn()
			r := awsiam.Role_FromRoleArn(s.c, jsii.String(fmt.Sprintf("InstanceRole%d", i)), arn, &awsiam.FromRoleArnOptions{Mutable: jsii.Bool(true)})
			f.roles = append(f.roles, r)
			f.arns = append(f.arns, arn)
		}
		return f
	}
	role := awsiam.NewRole(s.c, jsii.String("InstanceRole"), &awsiam.RoleProps{
		AssumedBy:       awsiam.NewServicePrincipal(jsii.String("ec2.amazonaws.com"), nil),
		Description:     jsii.String("storecrypt workloads: SSM managed instance and key user for instance-store encryption"),
		ManagedPolicies: &[]awsiam.IManagedPolicy{awsiam.ManagedPolicy_FromAwsManagedPolicyName(jsii.String("AmazonSSMManagedInstanceCore"))},
	})
	cdknag.NagSuppressions_AddResourceSuppressions(role, &[]*cdknag.NagPackSuppression{{
		Id:        jsii.String("AwsSolutions-IAM4"),
		Reason:    jsii.String("AmazonSSMManagedInstanceCore is SSM's documented minimum for a managed instance; storecrypt's own rights are separate statements."),
		AppliesTo: &[]any{"Policy::arn:<AWS::Partition>:iam::aws:policy/AmazonSSMManagedInstanceCore"},
	}}, jsii.Bool(true))
	f.profile = awsiam.NewInstanceProfile(s.c, jsii.String("InstanceProfile"), &awsiam.InstanceProfileProps{Role: role})
	f.roles = []awsiam.IRole{role}
	f.arns = []*string{role.RoleArn()}
	return f
}

// keyUse is one way the instance roles use the key: the actions and the conditions that
// confine them.
type keyUse struct {
	sid        string
	actions    []string
	conditions map[string]any
}

// keyUses: for kms-datakey, a volume's data key is made and opened only under the
// context that names the calling instance itself: the context's instance ARN must equal
// ec2:SourceInstanceARN, the ARN of the instance whose role credentials signed the call.
// KMS allows an IAM policy variable as the value of kms:EncryptionContext:<key>
// ("Using variables in an encryption context condition"), and ec2:SourceInstanceARN is a
// global key any policy may read. Each context key is required by a condition on its
// value (ForAllValues on kms:EncryptionContextKeys forbids other keys but requires none).
// Decrypt is not standing: a volume is reopened only through the grant the launch
// function makes for its instance (launchGrants), which revoking removes. GenerateDataKey
// stays, so a first boot in boot-time mode never waits on the control plane; a revoked
// instance can still make a new, empty volume, never reopen its old one (apply refuses a
// disk that holds a LUKS header).
// For s3-kms, the seed recipe's passphrase carries no context: Decrypt without one, and
// only with an instance role's session (which stolen credentials keep: see Limits).
func (s *builder) keyUses() []keyUse {
	if s.props.KeySource == contract.KeySourceS3KMS {
		return []keyUse{{"StoreCryptSeedSecret", []string{"kms:Decrypt"}, map[string]any{
			"Null": map[string]any{"kms:EncryptionContextKeys": "true", "ec2:SourceInstanceARN": "false"},
		}}}
	}
	return []keyUse{{"StoreCryptOwnVolumes", []string{"kms:GenerateDataKey"}, map[string]any{
		"ForAllValues:StringEquals": map[string]any{"kms:EncryptionContextKeys": contract.ContextKeys},
		"StringEquals":              map[string]any{"kms:EncryptionContext:" + contract.ContextInstanceARN: "${ec2:SourceInstanceARN}"},
		"StringLike":                map[string]any{"kms:EncryptionContext:" + contract.ContextVolume: "*"},
	}}}
}

// kmsKey creates the key (rotation on) with the instance roles as key users, or takes
// the caller's.
func (s *builder) kmsKey(roles fleetRoles, path rolePath) awskms.IKey {
	if key := s.props.Key; key != nil {
		// The roles' own policies grant it, not the key's grant methods: those would write
		// into the key's policy, which is the caller's.
		for _, r := range roles.roles {
			for _, u := range s.keyUses() {
				r.AddToPrincipalPolicy(statement(u.sid, u.actions, []*string{key.KeyArn()}, u.conditions))
			}
		}
		return key
	}
	key := awskms.NewKey(s.c, jsii.String("Key"), &awskms.KeyProps{
		Alias:             jsii.String(s.props.KeyAlias),
		Description:       jsii.String("storecrypt: wraps the instance-store volume keys"),
		EnableKeyRotation: jsii.Bool(true),
		PendingWindow:     awscdk.Duration_Days(jsii.Number(30)),
		RemovalPolicy:     s.props.RemovalPolicy,
	})
	for _, u := range s.keyUses() {
		if users := path.users(); users != nil {
			u.conditions["ArnLike"] = users
		}
		key.AddToResourcePolicy(awsiam.NewPolicyStatement(&awsiam.PolicyStatementProps{
			Sid: jsii.String(u.sid), Effect: awsiam.Effect_ALLOW,
			Principals: path.principals(roles.arns), Actions: jsii.Strings(u.actions...), Resources: jsii.Strings("*"),
			Conditions: &u.conditions,
		}), jsii.Bool(false))
	}
	for _, d := range s.keyDenials(roles.arns, path) {
		key.AddToResourcePolicy(d, jsii.Bool(false))
	}
	component(key, "key")
	return key
}

// rolePath is StoreCryptProps.InstanceRolePath as the key policy uses it. Its statements name the
// stack's roles as before and, with a path, also the roles under it: a key policy's
// Principal takes no wildcard, so the Allow names everyone, narrowed by an ArnLike on
// aws:PrincipalArn (a role session's is its role's ARN, path included) to the stack's
// roles and the pattern of the path's roles in the stack's account.
type rolePath struct {
	set   bool                // a path is given (a parameter's value may still be empty)
	cond  awscdk.CfnCondition // HasInstanceRolePath, when the path is a parameter's value
	roles []*string           // the stack's roles and arn:<partition>:iam::<account>:role<path>*
}

func (s *builder) rolePath(roleARNs []*string) rolePath {
	p := s.props.InstanceRolePath
	if p == "" {
		return rolePath{}
	}
	pattern := jsii.String("arn:" + *s.st.Partition() + ":iam::" + *s.st.Account() + ":role" + p + "*")
	r := rolePath{set: true, roles: append(slices.Clone(roleARNs), pattern)}
	if unresolved(p) {
		r.cond = awscdk.NewCfnCondition(s.c, jsii.String("HasInstanceRolePath"), &awscdk.CfnConditionProps{
			Expression: awscdk.Fn_ConditionNot(awscdk.Fn_ConditionEquals(p, jsii.String(""))),
		})
		// The check settings.defaults makes of a literal path, for the one rule a pattern
		// cannot say: not a path that holds storecrypt's function roles.
		var taken []*string
		for _, t := range contract.RolePathPrefixes() {
			taken = append(taken, jsii.String(t))
		}
		awscdk.NewCfnRule(s.c, jsii.String("InstanceRolePathHoldsNoFunctionRole"), &awscdk.CfnRuleProps{Assertions: &[]*awscdk.CfnRuleAssertion{{
			Assert:            awscdk.Fn_ConditionNot(awscdk.Fn_ConditionContains(&taken, jsii.String(p))),
			AssertDescription: jsii.String("InstanceRolePath may not be " + strings.Join(contract.RolePathPrefixes(), " or ") + ": storecrypt's function roles are there"),
		}}})
	}
	return r
}

// ifSet is with when a path is given, otherwise without; for a parameter's path, an
// Fn::If that CloudFormation decides, with AWS::NoValue for a nil without (the element
// is then left out): an empty parameter deploys the policy a stack without a path has.
func (r rolePath) ifSet(with, without any) any {
	switch {
	case !r.set:
		return without
	case r.cond == nil:
		return with
	case without == nil:
		without = awscdk.Aws_NO_VALUE()
	}
	return awscdk.Fn_ConditionIf(r.cond.LogicalId(), with, without)
}

// users is the condition block on aws:PrincipalArn that names the stack's roles and the
// path's (for ArnLike, or ArnNotLike), or nil without a path.
func (r rolePath) users() any {
	return r.ifSet(map[string]any{"aws:PrincipalArn": r.roles}, nil)
}

// principals of the key users' Allow: the roles, or everyone with a path.
func (r rolePath) principals(arns []*string) *[]awsiam.IPrincipal {
	var p []awsiam.IPrincipal
	for _, arn := range arns {
		if r.set {
			arn = awscdk.Token_AsString(r.ifSet("*", arn), nil)
		}
		p = append(p, awsiam.NewArnPrincipal(arn))
	}
	return &p
}

// keyDenials keep storecrypt's volume keys out of reach of everyone but the instance that
// owns each, whatever else the key policy or IAM policies allow (the account-root
// statement delegates the key to every IAM policy in the account, and an explicit deny in
// the key policy overrides any allow, grants included). Each applies to a request that
// carries any storecrypt:* context key, so the key's management (PutKeyPolicy,
// DescribeKey, ...), which carries none, stays with the account as KMS's lockout check
// wants:
//   - no principal may use a context that does not name its own instance: one naming
//     another instance, or none (a negated operator matches a missing key);
//   - no caller without ec2:SourceInstanceARN may use one. The deny above already refuses
//     it where IAM reads an unresolved ${ec2:SourceInstanceARN} as a null that
//     StringNotEquals matches ("Policy variables with no value"); the same page also says
//     an unresolved variable may make the statement invalid, and this deny holds then too;
//   - no principal but the instance roles may use one;
//   - no action but GenerateDataKey and Decrypt may carry one, so ReEncrypt*, Encrypt,
//     GenerateDataKeyWithoutPlaintext and CreateGrant do not depend on which context
//     (source, destination, a grant's constraints) KMS reads for them;
//   - with StoreCryptProps.RequireInstanceNetwork, networkDenials.
//
// For kms-datakey none of them takes CreateGrant: launchGrants' own denies do (see there).
func (s *builder) keyDenials(roleARNs []*string, path rolePath) []awsiam.PolicyStatement {
	deny := s.contextDeny
	denials := []awsiam.PolicyStatement{
		deny("StoreCryptOnlyTheOwningInstance", nil, map[string]any{
			"StringNotEquals": map[string]any{"kms:EncryptionContext:" + contract.ContextInstanceARN: "${ec2:SourceInstanceARN}"},
		}),
		deny("StoreCryptOnlyFromAnInstance", nil, map[string]any{"Null": map[string]any{"ec2:SourceInstanceARN": "true"}}),
		deny(contract.SidOnlyTheInstanceRoles, nil, onlyTheInstanceRoles(roleARNs, path)),
		deny("StoreCryptOnlyDataKeyUse", []string{"kms:GenerateDataKey", "kms:Decrypt"}, map[string]any{}),
	}
	if s.grants() {
		// A grant's constraint is a subset (the volume's UUID is not known when the launch
		// function grants): these hold a Decrypt under it to the exact context a volume's
		// key is made with, both keys and no other, as the key users' Allow holds
		// GenerateDataKey.
		denials = append(denials,
			deny("StoreCryptOnlyVolumeContexts", nil, map[string]any{
				"ForAnyValue:StringNotEquals": map[string]any{"kms:EncryptionContextKeys": contract.ContextKeys}}),
			deny("StoreCryptOnlyWithAVolume", nil, map[string]any{"Null": map[string]any{"kms:EncryptionContext:" + contract.ContextVolume: "true"}}))
	}
	if s.props.RequireInstanceNetwork {
		denials = append(denials, networkDenials(deny)...)
	}
	return denials
}

// contextDeny refuses every KMS action but notActions (none: all of them) to any
// principal, for a request with a storecrypt context that meets conditions. With grants
// (kms-datakey) it never takes CreateGrant, which launchGrants' denies decide.
func (s *builder) contextDeny(sid string, notActions []string, conditions map[string]any) awsiam.PolicyStatement {
	conditions["ForAnyValue:StringLike"] = map[string]any{"kms:EncryptionContextKeys": "storecrypt:*"}
	props := &awsiam.PolicyStatementProps{
		Sid: jsii.String(sid), Effect: awsiam.Effect_DENY,
		Principals: &[]awsiam.IPrincipal{awsiam.NewAnyPrincipal()}, Resources: jsii.Strings("*"), Conditions: &conditions,
	}
	if s.grants() {
		notActions = append(notActions, "kms:CreateGrant")
	}
	if notActions != nil {
		props.NotActions = jsii.Strings(notActions...)
	} else {
		props.Actions = jsii.Strings("kms:*")
	}
	return awsiam.NewPolicyStatement(props)
}

// grants: instances reopen their volumes through the launch function's grants
// (kms-datakey); s3-kms's passphrase has no context a grant could be held to.
func (s *builder) grants() bool {
	return s.props.KeySource == contract.KeySourceKMSDataKey
}

// launchGrants lets the launch function's role, and no other principal, give an instance
// role Decrypt under its instance's context. The Allow (contract.SidLaunchGrants) holds
// each grant to one shape: only Decrypt (ForAllValues on kms:GrantOperations, with a Null
// check since ForAllValues holds for an empty list), a grantee that is an instance role
// (the stack's, or one under the role path), an EncryptionContextSubset constraint of
// exactly storecrypt:instance-arn naming an instance of the account and region, and the
// launch role as retiring principal. Whatever grant is made, its use is a Decrypt that
// still meets every deny of keyDenials, so no grant lets one instance open another's
// volume, nor a role off an instance open any. Two denies keep grant-making to the launch
// role:
//   - StoreCryptOnlyTheLaunchFunctionGrants: no other principal may create a grant whose
//     constraint names a storecrypt context (what keyDenials refused to everyone before);
//   - StoreCryptDecryptOnlyThroughTheLaunchFunction: no other principal may create any
//     grant that allows Decrypt, constrained or not, unless an AWS service creates it for
//     its own resource (the ledger table's DynamoDB grant): otherwise anyone delegated
//     kms:CreateGrant could hand a revoked instance's role its Decrypt back.
//
// With StoreCryptProps.Key the key policy is the user's: the Allow goes in the launch
// role's IAM policy, and the denies are the user's to write.
func (s *builder) launchGrants(key awskms.IKey, roles fleetRoles, path rolePath, launch awsiam.IRole) {
	if !s.grants() {
		return
	}
	conditions := map[string]any{
		"ForAllValues:StringEquals": map[string]any{"kms:GrantOperations": []string{"Decrypt"}, "kms:EncryptionContextKeys": []string{contract.ContextInstanceARN}},
		"Null":                      map[string]any{"kms:GrantOperations": "false", "kms:EncryptionContext:" + contract.ContextInstanceARN: "false"},
		"StringEquals":              map[string]any{"kms:GrantConstraintType": "EncryptionContextSubset", "kms:RetiringPrincipal": launch.RoleArn()},
		"StringLike":                map[string]any{"kms:EncryptionContext:" + contract.ContextInstanceARN: s.instanceARN()},
		"ArnLike":                   map[string]any{"kms:GranteePrincipal": path.ifSet(path.roles, roles.arns)},
	}
	created, ok := key.(awskms.Key)
	if !ok || s.props.Key != nil {
		launch.AddToPrincipalPolicy(statement(contract.SidLaunchGrants, []string{"kms:CreateGrant"}, []*string{key.KeyArn()}, conditions))
		return
	}
	created.AddToResourcePolicy(awsiam.NewPolicyStatement(&awsiam.PolicyStatementProps{
		Sid: jsii.String(contract.SidLaunchGrants), Effect: awsiam.Effect_ALLOW,
		Principals: &[]awsiam.IPrincipal{awsiam.NewArnPrincipal(launch.RoleArn())}, Actions: jsii.Strings("kms:CreateGrant"), Resources: jsii.Strings("*"),
		Conditions: &conditions,
	}), jsii.Bool(false))
	notLaunch := map[string]any{"aws:PrincipalArn": launch.RoleArn()}
	for _, d := range []awsiam.PolicyStatementProps{
		{Sid: jsii.String("StoreCryptOnlyTheLaunchFunctionGrants"), Conditions: &map[string]any{
			"ArnNotEquals": notLaunch, "ForAnyValue:StringLike": map[string]any{"kms:EncryptionContextKeys": "storecrypt:*"}}},
		{Sid: jsii.String("StoreCryptDecryptOnlyThroughTheLaunchFunction"), Conditions: &map[string]any{
			"ArnNotEquals": notLaunch, "ForAnyValue:StringEquals": map[string]any{"kms:GrantOperations": "Decrypt"},
			"BoolIfExists": map[string]any{"kms:GrantIsForAWSResource": "false"}}},
	} {
		d.Effect, d.Principals = awsiam.Effect_DENY, &[]awsiam.IPrincipal{awsiam.NewAnyPrincipal()}
		d.Actions, d.Resources = jsii.Strings("kms:CreateGrant"), jsii.Strings("*")
		created.AddToResourcePolicy(awsiam.NewPolicyStatement(&d), jsii.Bool(false))
	}
}

// onlyTheInstanceRoles: a principal that is none of the stack's roles and, with a path,
// not under it. Conditions are a conjunction, so the ArnNotLike on the roles and the
// path's pattern adds the path's roles to the exceptions of the ArnNotEquals, which
// stays as it was without a path. The pattern ends in the path's closing "/" and then
// "*": /storecrypt/instances/ does not take in /storecrypt/instances-x/.
func onlyTheInstanceRoles(roleARNs []*string, path rolePath) map[string]any {
	c := map[string]any{"ArnNotEquals": map[string]any{"aws:PrincipalArn": roleARNs}}
	if users := path.users(); users != nil {
		c["ArnNotLike"] = users
	}
	return c
}

// networkDenials confine a storecrypt context to the network of the instance whose
// credentials sign the request, as AWS's credential-relative keys allow: the session
// carries the VPC its credentials were delivered to (aws:Ec2InstanceSourceVpc) and the
// instance's primary private IPv4 address (aws:Ec2InstanceSourcePrivateIPv4); a request
// through a VPC endpoint carries the endpoint's VPC (aws:SourceVpc) and the caller's
// address in it (aws:VpcSourceIp). Each pair is compared in its own statement (one
// StringNotEquals over both keys would deny only when both differ). A caller that is not
// an instance session has no aws:Ec2InstanceSource* key, and the negated operator matches
// a missing key. A request not through an endpoint leaves the variables unresolved, which
// IAM reads as a null that StringNotEquals matches, or as an invalid statement: the Null
// denies refuse it under either reading, one per key, since a Null block over two keys
// matches only when both are missing.
func networkDenials(deny func(string, []string, map[string]any) awsiam.PolicyStatement) []awsiam.PolicyStatement {
	return []awsiam.PolicyStatement{
		deny("StoreCryptOnlyInTheInstanceVpc", nil, map[string]any{
			"StringNotEquals": map[string]any{"aws:Ec2InstanceSourceVpc": "${aws:SourceVpc}"},
		}),
		deny("StoreCryptOnlyFromTheInstanceAddress", nil, map[string]any{
			"StringNotEquals": map[string]any{"aws:Ec2InstanceSourcePrivateIPv4": "${aws:VpcSourceIp}"},
		}),
		deny("StoreCryptOnlyThroughAVpcEndpoint", nil, map[string]any{"Null": map[string]any{"aws:SourceVpc": "true"}}),
		deny("StoreCryptOnlyWithTheEndpointAddress", nil, map[string]any{"Null": map[string]any{"aws:VpcSourceIp": "true"}}),
	}
}

// secretBucket holds the seed-compatible passphrase for s3-kms.
func (s *builder) secretBucket(key awskms.IKey, roles fleetRoles, logs awss3.IBucket) awss3.Bucket {
	b := awss3.NewBucket(s.c, jsii.String("SecretBucket"), &awss3.BucketProps{
		BlockPublicAccess: awss3.BlockPublicAccess_BLOCK_ALL(), EnforceSSL: jsii.Bool(true),
		Encryption: awss3.BucketEncryption_KMS, EncryptionKey: key, BucketKeyEnabled: jsii.Bool(true),
		Versioned: jsii.Bool(true), ObjectOwnership: awss3.ObjectOwnership_BUCKET_OWNER_ENFORCED,
		ServerAccessLogsBucket: logs, ServerAccessLogsPrefix: jsii.String("secret-bucket/"),
		RemovalPolicy: s.props.RemovalPolicy,
	})
	object := b.ArnForObjects(jsii.String(s.props.SecretKey))
	for _, r := range roles.roles {
		// GetObjectVersion: a volume's token names the version of the secret it was made
		// with, and S3 authorizes a read by version as s3:GetObjectVersion.
		r.AddToPrincipalPolicy(statement("StoreCryptReadSecret", contract.SecretReadActions, []*string{object}, nil))
		// The object is SSE-KMS under the same key: S3 asks KMS to decrypt it on the
		// role's behalf, through S3 and with the bucket's ARN as the context (the bucket
		// uses an S3 Bucket Key). The key policy's own statement allows only the
		// context-free Decrypt of the passphrase, so this one goes through IAM.
		r.AddToPrincipalPolicy(statement("StoreCryptSecretThroughS3", []string{"kms:Decrypt"}, []*string{key.KeyArn()}, map[string]any{
			"StringEquals": map[string]any{
				"kms:ViaService":                   "s3." + *s.st.Region() + "." + *awscdk.Aws_URL_SUFFIX(),
				"kms:EncryptionContext:aws:s3:arn": b.BucketArn(),
			}}))
	}
	if s.props.SecretVPCEndpoint != "" {
		b.AddToResourcePolicy(awsiam.NewPolicyStatement(&awsiam.PolicyStatementProps{
			Sid: jsii.String("OnlyThroughTheVpcEndpoint"), Effect: awsiam.Effect_DENY,
			Principals: &[]awsiam.IPrincipal{awsiam.NewAnyPrincipal()}, Actions: jsii.Strings(contract.SecretReadActions...),
			Resources:  &[]*string{object},
			Conditions: &map[string]any{"StringNotEquals": map[string]any{"aws:SourceVpce": s.props.SecretVPCEndpoint}},
		}))
	}
	return b
}

// secretURL is the s3:// location of the seed secret in bucket, or "" without one
// (kms-datakey).
func (s *builder) secretURL(bucket awss3.Bucket) string {
	if bucket == nil {
		return ""
	}
	return "s3://" + *bucket.BucketName() + "/" + s.props.SecretKey
}
