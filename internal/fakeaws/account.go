package fakeaws

import (
	"fmt"
	"time"
)

// Names in the standard account that NewAccount builds.
const (
	KeyARN        = "arn:aws:kms:us-east-1:111122223333:key/11111111-2222-4333-8444-555555555555"
	KeyUser       = "arn:aws:iam::111122223333:role/storecrypt-instance" // named in the key policy
	IdentityUser  = "arn:aws:iam::111122223333:role/identity-user"       // allowed by its own policy; the key delegates
	GrantUser     = "arn:aws:iam::111122223333:role/grant-user"          // a grant on the key
	NotKeyUser    = "arn:aws:iam::111122223333:role/web"                 // nothing
	ProfilePrefix = "arn:aws:iam::111122223333:instance-profile/"
)

// Profile returns the instance profile ARN of a role in the standard account.
func Profile(role string) string {
	return ProfilePrefix + role[len("arn:aws:iam::111122223333:role/"):]
}

// KeyPolicy is the standard key's policy: administration by the account (which also
// delegates to IAM policies) and KeyUser as a key user.
var KeyPolicy = fmt.Sprintf(`{
  "Version": "2012-10-17",
  "Statement": [
    {"Sid": "Admin", "Effect": "Allow", "Principal": {"AWS": "arn:aws:iam::%s:root"}, "Action": "kms:*", "Resource": "*"},
    {"Sid": "KeyUser", "Effect": "Allow", "Principal": {"AWS": ["%s"]}, "Action": ["kms:GenerateDataKey", "kms:Decrypt"], "Resource": "*",
     "Condition": {"StringEquals": {"kms:EncryptionContextKeys": ["storecrypt:instance-id", "storecrypt:volume"]}}}
  ]
}`, Account, KeyUser)

// NewAccount returns a world with the standard key, roles and profiles, and the
// instance types i4i.large (instance store) and m5.large (none).
func NewAccount() *World {
	w := &World{
		Instances:     map[string]*Instance{},
		InstanceTypes: map[string]bool{"i4i.large": true, "i3en.xlarge": true, "m5.large": false},
		Profiles:      map[string]string{ProfilePrefix + "empty": ""},
		Roles:         map[string]*Role{},
		Keys: map[string]*Key{KeyARN: {ARN: KeyARN, State: "Enabled", Policy: KeyPolicy,
			Grants: []Grant{{Grantee: GrantUser, Operations: []string{"GenerateDataKey", "Decrypt"}}}}},
	}
	for _, r := range []*Role{
		{ARN: KeyUser, Allowed: []string{"s3:GetObject"}},
		{ARN: IdentityUser, Allowed: []string{"kms:*"}},
		{ARN: GrantUser},
		{ARN: NotKeyUser, Allowed: []string{"ec2:Describe*"}},
	} {
		w.Roles[r.ARN] = r
		w.Profiles[Profile(r.ARN)] = r.ARN
	}
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
