package fakeaws

import (
	"fmt"
	"strings"
	"time"
)

// Names in the standard account that NewAccount builds (partition aws, us-east-1).
const (
	KeyARN        = "arn:aws:kms:us-east-1:111122223333:key/11111111-2222-4333-8444-555555555555"
	KeyUser       = "arn:aws:iam::111122223333:role/storecrypt-instance" // named in the key policy
	IdentityUser  = "arn:aws:iam::111122223333:role/identity-user"       // allowed by its own policy; the key delegates
	GrantUser     = "arn:aws:iam::111122223333:role/grant-user"          // a grant on the key
	NotKeyUser    = "arn:aws:iam::111122223333:role/web"                 // nothing
	ProfilePrefix = "arn:aws:iam::111122223333:instance-profile/"
)

// Names are the standard account's ARNs in one partition and region.
type Names struct {
	Partition, Region                             string
	KeyARN, KeyUser, IdentityUser, GrantUser, Web string
}

// NamesIn returns the standard account's names in a partition (aws, aws-cn, aws-us-gov)
// and region.
func NamesIn(partition, region string) Names {
	in := func(arn string) string {
		return strings.Replace(strings.Replace(arn, "arn:aws:", "arn:"+partition+":", 1), ":us-east-1:", ":"+region+":", 1)
	}
	return Names{Partition: partition, Region: region,
		KeyARN: in(KeyARN), KeyUser: in(KeyUser), IdentityUser: in(IdentityUser), GrantUser: in(GrantUser), Web: in(NotKeyUser)}
}

// Profile returns the instance profile ARN named like a role.
func Profile(role string) string {
	return strings.Replace(role, ":role/", ":instance-profile/", 1)
}

// KeyPolicyIn is the standard key's policy: administration by the account (which also
// delegates to IAM policies); KeyUser as a key user for storecrypt's encryption context
// only (both keys present, no others), with the instance in the context the caller's own;
// and nobody at all, delegated or not, using another instance's context.
func KeyPolicyIn(n Names) string {
	return fmt.Sprintf(`{
  "Version": "2012-10-17",
  "Statement": [
    {"Sid": "Admin", "Effect": "Allow", "Principal": {"AWS": "arn:%s:iam::%s:root"}, "Action": "kms:*", "Resource": "*"},
    {"Sid": "KeyUser", "Effect": "Allow", "Principal": {"AWS": ["%s"]}, "Action": ["kms:GenerateDataKey", "kms:Decrypt"], "Resource": "*",
     "Condition": {
       "ForAllValues:StringEquals": {"kms:EncryptionContextKeys": ["storecrypt:instance-arn", "storecrypt:volume"]},
       "StringEquals": {"kms:EncryptionContext:storecrypt:instance-arn": "${ec2:SourceInstanceARN}"},
       "StringLike": {"kms:EncryptionContext:storecrypt:volume": "*"}}},
    {"Sid": "OwnInstanceOnly", "Effect": "Deny", "Principal": "*", "Action": "kms:*", "Resource": "*",
     "Condition": {
       "ForAnyValue:StringEquals": {"kms:EncryptionContextKeys": "storecrypt:instance-arn"},
       "StringNotEquals": {"kms:EncryptionContext:storecrypt:instance-arn": "${ec2:SourceInstanceARN}"}}}
  ]
}`, n.Partition, Account, n.KeyUser)
}

// KeyPolicyWithRolePath is a key policy shaped as the stack writes it (key users bound to
// their own instance, the other roles' deny) with KeyUser as the stack's role and the
// account's roles under path ("": none) as key users too.
func KeyPolicyWithRolePath(path string) string {
	principal, arnLike, arnNotLike := fmt.Sprintf("%q", KeyUser), "", ""
	if path != "" {
		users := fmt.Sprintf(`{"aws:PrincipalArn":[%q,"arn:aws:iam::%s:role%s*"]}`, KeyUser, Account, path)
		principal, arnLike, arnNotLike = `"*"`, `"ArnLike":`+users+`,`, `"ArnNotLike":`+users+`,`
	}
	return fmt.Sprintf(`{"Version":"2012-10-17","Statement":[
		{"Effect":"Allow","Principal":{"AWS":"arn:aws:iam::%s:root"},"Action":"kms:*","Resource":"*"},
		{"Sid":"StoreCryptOwnVolumes","Effect":"Allow","Principal":{"AWS":%s},"Action":["kms:GenerateDataKey","kms:Decrypt"],"Resource":"*","Condition":{%s
			"ForAllValues:StringEquals":{"kms:EncryptionContextKeys":["storecrypt:instance-arn","storecrypt:volume"]},
			"StringEquals":{"kms:EncryptionContext:storecrypt:instance-arn":"${ec2:SourceInstanceARN}"},
			"StringLike":{"kms:EncryptionContext:storecrypt:volume":"*"}}},
		{"Sid":"StoreCryptOnlyTheInstanceRoles","Effect":"Deny","Principal":{"AWS":"*"},"Action":"kms:*","Resource":"*","Condition":{%s
			"ArnNotEquals":{"aws:PrincipalArn":[%q]},
			"ForAnyValue:StringLike":{"kms:EncryptionContextKeys":"storecrypt:*"}}}]}`, Account, principal, arnLike, arnNotLike, KeyUser)
}

// KeyPolicy is the standard key's policy in the aws partition.
var KeyPolicy = KeyPolicyIn(NamesIn("aws", Region))

// Allows is an identity policy allowing actions on every resource.
func Allows(actions ...string) string {
	return fmt.Sprintf(`{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":["%s"],"Resource":"*"}]}`, strings.Join(actions, `","`))
}

// NewAccount returns a world with the standard key, roles and profiles, and the
// instance types i4i.large, i3en.xlarge (instance store) and m5.large (none). t fails
// when it ends if any request broke its API model; nil leaves that to the caller
// (Violations).
func NewAccount(t TB) *World {
	return NewAccountIn(t, "aws", Region)
}

// NewAccountIn is NewAccount in another partition and region.
func NewAccountIn(t TB, partition, region string) *World {
	n := NamesIn(partition, region)
	w := &World{
		Partition:     partition,
		Region:        region,
		Instances:     map[string]*Instance{},
		InstanceTypes: map[string]bool{"i4i.large": true, "i3en.xlarge": true, "i4g.large": true, "im4gn.large": true, "m5.large": false},
		Profiles:      map[string]string{Profile(strings.Replace(n.KeyUser, "storecrypt-instance", "empty", 1)): ""},
		Roles:         map[string]*Role{},
		Documents:     map[string]*Document{},
		Keys: map[string]*Key{n.KeyARN: {ARN: n.KeyARN, State: "Enabled", Policy: KeyPolicyIn(n),
			Grants: []Grant{{Grantee: n.GrantUser, Operations: []string{"GenerateDataKey", "Decrypt"}}}}},
	}
	// The instance roles are managed instances' roles, as Systems Manager asks.
	ssmCore := []string{ManagedPolicyARN(partition, SSMCore)}
	for _, r := range []*Role{
		{ARN: n.KeyUser, Policies: []string{Allows("s3:GetObject", "s3:GetObjectVersion")}, ManagedPolicies: ssmCore},
		{ARN: n.IdentityUser, Policies: []string{Allows("kms:*")}, ManagedPolicies: ssmCore},
		{ARN: n.GrantUser, ManagedPolicies: ssmCore},
		{ARN: n.Web, Policies: []string{Allows("ec2:Describe*")}},
	} {
		w.Roles[r.ARN] = r
		w.Profiles[Profile(r.ARN)] = r.ARN
	}
	w.models.FailOn(t)
	return w
}

// AddInstance adds a running instance launched at launched.
func (w *World) AddInstance(id, typ, profile string, tags map[string]string, launched time.Time) *Instance {
	w.mu.Lock()
	defer w.mu.Unlock()
	if tags == nil {
		tags = map[string]string{}
	}
	i := &Instance{ID: id, Type: typ, State: "running", ProfileARN: profile, Tags: tags, LaunchTime: launched}
	w.Instances[id] = i
	return i
}
