package storecrypt

import (
	"github.com/aws/aws-cdk-go/awscdk/v2"
	"github.com/aws/aws-cdk-go/awscdk/v2/awsiam"
	"github.com/aws/aws-cdk-go/awscdk/v2/awskms"
	"github.com/aws/aws-cdk-go/awscdk/v2/awslogs"
	"github.com/aws/aws-cdk-go/awscdk/v2/awssns"

	"github.com/storecrypt/storecrypt/internal/contract"
)

// KeySource is where the instances' volume keys come from.
type KeySource string

const (
	// KeySourceKMSDataKey gives each volume its own KMS data key, bound to its instance
	// (the default).
	KeySourceKMSDataKey KeySource = contract.KeySourceKMSDataKey
	// KeySourceS3KMS reads one seed passphrase from the secret bucket under the key.
	KeySourceS3KMS KeySource = contract.KeySourceS3KMS
)

// Filesystem is what the agent makes on a new volume.
type Filesystem string

const (
	// FilesystemExt4 is ext4 (the default).
	FilesystemExt4 Filesystem = contract.FilesystemExt4
	// FilesystemXFS is XFS.
	FilesystemXFS Filesystem = contract.FilesystemXFS
)

// Layout is how a new volume combines several disks.
type Layout string

const (
	// LayoutRAID0 stripes the disks: all their capacity and bandwidth (the default).
	LayoutRAID0 Layout = contract.LayoutRAID0
	// LayoutRAID10 mirrors and stripes them: half the capacity, and a disk may fail.
	LayoutRAID10 Layout = contract.LayoutRAID10
	// LayoutPerDisk makes a volume and filesystem per disk, at <mount point>/0, /1, ...
	LayoutPerDisk Layout = contract.LayoutPerDisk
)

// StoreCryptProps configures NewStoreCrypt; every field is optional. They follow CDK's
// Go props, so they read like the props beside them: strings and booleans are pointers
// (jsii.String, jsii.Bool), nil meaning the default, and a string may be a token (a
// CfnParameter's value); lists and maps are pointers too; resources are CDK interfaces
// (an awsiam.IRole, not its ARN); enums are typed strings, as awscdk.RemovalPolicy is.
//
//nolint:revive // CDK names a construct's props <Construct>Props (awssns.TopicProps), and users look for that.
type StoreCryptProps struct {
	// BuildDir holds the code the construct deploys, laid out as `make build` writes bin/:
	// storecrypt-agent-linux-{amd64,arm64} with their .sha256 and .gz files, and
	// functions/{launch,result}/bootstrap. Unset: the construct builds it (package
	// artifact) from the storecrypt module the app was built with, through CDK's asset
	// bundling: into the cloud assembly, only for a stack being synthesized or deployed
	// (not for cdk ls or cdk destroy); that needs the go command, as any Go CDK app does.
	BuildDir *string
	// Release deploys the code of a storecrypt release tarball, checked against the
	// SHA-256 you pin and then against its SHA256SUMS, instead of building it: a synth
	// then needs no go command. Its objects are staged as CDK's file assets under their
	// digests, or, with CodeBucket, read from the bucket under the keys they have in the
	// release (where `storecrypt stage --release` uploads them). Not with BuildDir.
	Release *Release
	// CodeBucket, when set, is where the code is instead of CDK's file assets, which need
	// a bootstrapped account: the bucket (a name, or a token such as a CfnParameter's) that
	// holds what package artifact's Publish wrote, under CodePrefix. The instance roles
	// and Lambda read it in the deployment's account and region (Lambda takes code only
	// from a bucket in the function's region).
	CodeBucket, CodePrefix *string
	// Name is the base of the physical names two deployments in one account must not
	// share: the key alias (alias/<Name>), the document (<Name>-apply), the ledger
	// table (<Name>-storecrypt-ledger) and the metric namespace (storecrypt/<Name>).
	// Unset: derived from the construct's path, unique in the account and region.
	Name *string
	// KeyAlias, DocumentName, LedgerTableName and MetricNamespace override the names
	// derived from Name one by one: the app in infra/ gives the names its README and
	// cdk.json document (cdkcontext.AppNames), and a published template makes each a
	// parameter.
	KeyAlias, DocumentName, LedgerTableName, MetricNamespace *string
	// Key uses an existing key instead of creating one; its policy must then delegate to
	// IAM, and the construct grants the instance roles through their identity policies,
	// never through the key's policy, which stays yours.
	Key awskms.IKey
	// KeySource is what instances use (default KeySourceKMSDataKey).
	KeySource KeySource
	// SecretKey is the object key of the seed passphrase in the secret bucket
	// (KeySourceS3KMS; default seed/passphrase).
	SecretKey *string
	// SecretVPCEndpoint, when set, lets the secret be read only through that endpoint.
	SecretVPCEndpoint *string
	// RequireInstanceNetwork (KeySourceKMSDataKey only) lets a volume's key be made and
	// opened only by a request that comes through a KMS interface VPC endpoint in the VPC
	// of the instance whose role credentials signed it, from that instance's primary
	// private IPv4 address: credentials copied off the instance (IMDS) then cannot open
	// its volume from elsewhere. Every VPC the instances run in then needs a KMS interface
	// endpoint with private DNS, which the construct does not create: the VPCs are yours.
	RequireInstanceNetwork *bool
	// InstanceRoles are the workloads' own roles; unset creates a role and profile. The
	// construct adds its statements to each role in a policy of its own (as it would to a
	// role imported by ARN), so a role from another stack, or an imported one, works too.
	InstanceRoles *[]awsiam.IRole
	// InstanceRolePath (/storecrypt/instances/, say) makes every role of the account
	// created under that IAM path a key user too, each for its own instance's volumes
	// alone, as the stack's roles are: teams' own instance roles, in every account a
	// StackSet reaches. A role's path is fixed when the role is created, so the SCP that
	// reserves creating roles under it (README: Roll out to an organization) decides who
	// can make a key user. Instances under such roles come into scope by OptInTag.
	// Each such role also needs what the stack grants its own role besides the key (the
	// agent's download, the command's output): the stack creates it as a managed policy,
	// contract.InstanceAccessPolicyPath + contract.InstanceAccessPolicyName(region), for
	// the teams to attach (one stack with a path per account and region: the name is
	// fixed). KeySourceKMSDataKey with the key the construct creates only. Unset: the
	// roles alone.
	InstanceRolePath *string
	// OptInTag is key=value (storecrypt:encrypt=true, say) that brings an instance into
	// scope besides the roles; none by default: scope is the roles alone.
	OptInTag *string
	// AllowOptOut honours storecrypt:encrypt=false on instances in scope: each opt-out is
	// recorded (skipped, opted-out), counted (OptedOut, alarmed) and sent as an event.
	// Default false: whoever may tag an instance could otherwise switch its encryption off.
	AllowOptOut *bool
	// MountPoint, Filesystem and Layout are the document's defaults
	// (/mnt/instance-store, FilesystemExt4, LayoutRAID0).
	MountPoint *string
	Filesystem Filesystem
	Layout     Layout
	// FastFormat (default false) is the document's FastFormat default: a new filesystem
	// made in a fraction of the time on a large instance store, ext4 with 64 KiB clusters
	// (every file takes at least 64 KiB), xfs with a 512 MiB log instead of up to 2 GiB.
	// docs/benchmarks.md has both sides measured.
	FastFormat *bool
	// AlarmEmail, when set, subscribes to the alarms' SNS topic.
	AlarmEmail *string
	// AlarmTopic, when set, is an SNS topic every alarm notifies besides: a central one,
	// in the organization's security account, whose policy lets CloudWatch publish for
	// the organization's accounts (README). CloudWatch takes a topic of the alarm's own
	// region only. One imported by ARN (awssns.Topic_FromTopicArn) will do.
	AlarmTopic awssns.ITopic
	// Trail creates a CloudTrail trail for the key's audit trail (default false).
	Trail *bool
	// SecurityHub (default true) lets the functions file Security Hub findings where
	// Security Hub is enabled; they stop trying where it is not. False keeps them out of
	// it, and out of the functions' policies.
	SecurityHub *bool
	// ComplianceItems also writes each verdict as the instance's Custom:StoreCrypt
	// compliance in Systems Manager: one more call per verdict, so it is asked for
	// (default false).
	ComplianceItems *bool
	// LogRetention keeps the agents', functions' and trail's logs (default one year).
	LogRetention awslogs.RetentionDays
	// RemovalPolicy is what deleting the stack does to what holds data or evidence: the
	// key, the ledger, the buckets and the agents' logs. Default RETAIN. DESTROY (for
	// test stacks) schedules the key's deletion, drops the ledger's deletion protection,
	// and fails on a bucket that is not empty.
	RemovalPolicy awscdk.RemovalPolicy
	// AuditorPrincipal, when set, adds the read-only role `storecrypt report --accounts`
	// assumes (auditor.go): an account id (any of its principals its own policies allow,
	// and only while in this account's organization) or a role's ARN. The role's name is
	// fixed (contract.AuditorRoleName) so that a central account finds it in every
	// account: one deployment per account and region may set it.
	AuditorPrincipal *string
	// Tags are added to every resource of the construct that takes tags.
	Tags *map[string]*string
}

// settings are the props as the parts read them: defaults filled in, names derived.
type settings struct {
	BuildDir, CodeBucket, CodePrefix                               string
	Release                                                        *Release
	Name, KeyAlias, DocumentName, LedgerTableName, MetricNamespace string
	Key                                                            awskms.IKey
	KeySource, SecretKey, SecretVPCEndpoint                        string
	RequireInstanceNetwork                                         bool
	InstanceRoles                                                  []awsiam.IRole
	InstanceRolePath, OptInTag                                     string
	AllowOptOut                                                    bool
	MountPoint, Filesystem, Layout                                 string
	FastFormat                                                     bool
	AlarmEmail                                                     string
	AlarmTopic                                                     awssns.ITopic
	Trail, SecurityHub, ComplianceItems                            bool
	LogRetention                                                   awslogs.RetentionDays
	RemovalPolicy                                                  awscdk.RemovalPolicy
	AuditorPrincipal                                               string
	Tags                                                           map[string]string
}

// WithDefaults is a copy of p with the defaults filled in that do not depend on where
// the construct goes (the names, derived from its path, stay unset): what a synth with
// p applies, for whoever records it (package publish does, in its template).
func (p *StoreCryptProps) WithDefaults() *StoreCryptProps {
	var d StoreCryptProps
	if p != nil {
		d = *p
	}
	def := func(v *string, value string) {
		if *v == "" {
			*v = value
		}
	}
	defPtr := func(v **string, value string) {
		if *v == nil {
			*v = &value
		}
	}
	defBool := func(v **bool, value bool) {
		if *v == nil {
			*v = &value
		}
	}
	def((*string)(&d.KeySource), contract.KeySourceKMSDataKey)
	def((*string)(&d.Filesystem), contract.DefaultFilesystem)
	def((*string)(&d.Layout), contract.DefaultLayout)
	def((*string)(&d.LogRetention), string(awslogs.RetentionDays_ONE_YEAR))
	def((*string)(&d.RemovalPolicy), string(awscdk.RemovalPolicy_RETAIN))
	defPtr(&d.SecretKey, "seed/passphrase")
	defPtr(&d.MountPoint, contract.DefaultMountPoint)
	defBool(&d.RequireInstanceNetwork, false)
	defBool(&d.AllowOptOut, false)
	defBool(&d.FastFormat, false)
	defBool(&d.Trail, false)
	defBool(&d.SecurityHub, true)
	defBool(&d.ComplianceItems, false)
	return &d
}

// settings is p with its defaults, as the parts read it.
func (p *StoreCryptProps) settings() settings {
	p = p.WithDefaults()
	str := func(v *string) string {
		if v == nil {
			return ""
		}
		return *v
	}
	s := settings{
		BuildDir: str(p.BuildDir), Release: p.Release, CodeBucket: str(p.CodeBucket), CodePrefix: str(p.CodePrefix),
		Name: str(p.Name), KeyAlias: str(p.KeyAlias), DocumentName: str(p.DocumentName), LedgerTableName: str(p.LedgerTableName), MetricNamespace: str(p.MetricNamespace),
		Key: p.Key, KeySource: string(p.KeySource), SecretKey: str(p.SecretKey), SecretVPCEndpoint: str(p.SecretVPCEndpoint),
		RequireInstanceNetwork: *p.RequireInstanceNetwork,
		InstanceRolePath:       str(p.InstanceRolePath), OptInTag: str(p.OptInTag), AllowOptOut: *p.AllowOptOut,
		MountPoint: str(p.MountPoint), Filesystem: string(p.Filesystem), Layout: string(p.Layout), FastFormat: *p.FastFormat,
		AlarmEmail: str(p.AlarmEmail), AlarmTopic: p.AlarmTopic,
		Trail: *p.Trail, SecurityHub: *p.SecurityHub, ComplianceItems: *p.ComplianceItems,
		LogRetention: p.LogRetention, RemovalPolicy: p.RemovalPolicy, AuditorPrincipal: str(p.AuditorPrincipal),
	}
	if p.InstanceRoles != nil {
		s.InstanceRoles = *p.InstanceRoles
	}
	if p.Tags != nil {
		s.Tags = map[string]string{}
		for k, v := range *p.Tags {
			s.Tags[k] = str(v)
		}
	}
	return s
}
