package contract

import (
	"errors"
	"regexp/syntax"
	"testing"
	"unicode"
)

func valid() AgentOptions {
	o := DefaultAgentOptions()
	o.KMSKeyID = "arn:aws:kms:us-east-1:111122223333:key/1234abcd-12ab-34cd-56ef-1234567890ab"
	return o
}

func TestValidate(t *testing.T) {
	for _, tc := range []struct {
		name     string
		edit     func(o *AgentOptions)
		wantFlag string // "" means valid
	}{
		{"defaults with a key", func(*AgentOptions) {}, ""},
		{"alias", func(o *AgentOptions) { o.KMSKeyID = "alias/storecrypt" }, ""},
		{"bare key id", func(o *AgentOptions) { o.KMSKeyID = "1234abcd-12ab-34cd-56ef-1234567890ab" }, ""},
		{"kms-datakey needs a key", func(o *AgentOptions) { o.KMSKeyID = "" }, FlagKMSKeyID},
		{"s3-kms needs a secret", func(o *AgentOptions) { o.KeySource = KeySourceS3KMS }, FlagSecret},
		{"s3-kms", func(o *AgentOptions) { o.KeySource = KeySourceS3KMS; o.Secret = "s3://my-bucket/seed/pass" }, ""},
		{"ephemeral needs nothing", func(o *AgentOptions) { o.KeySource = KeySourceEphemeral; o.KMSKeyID = "" }, ""},
		{"unknown key source", func(o *AgentOptions) { o.KeySource = "vault" }, FlagKeySource},
		{"xfs", func(o *AgentOptions) { o.Filesystem = FilesystemXFS }, ""},
		{"btrfs", func(o *AgentOptions) { o.Filesystem = "btrfs" }, FlagFilesystem},
		{"relative mount point", func(o *AgentOptions) { o.MountPoint = "mnt/x" }, FlagMountPoint},
		{"root mount point", func(o *AgentOptions) { o.MountPoint = "/" }, FlagMountPoint},
		{"system mount point", func(o *AgentOptions) { o.MountPoint = "/etc" }, FlagMountPoint},
		{"ssh's keys", func(o *AgentOptions) { o.MountPoint = "/etc/ssh" }, FlagMountPoint},
		{"root's home", func(o *AgentOptions) { o.MountPoint = "/root/ssh" }, FlagMountPoint},
		{"where the agent lives", func(o *AgentOptions) { o.MountPoint = "/usr/local" }, FlagMountPoint},
		{"/mnt itself", func(o *AgentOptions) { o.MountPoint = "/mnt" }, FlagMountPoint},
		{"/var/lib itself", func(o *AgentOptions) { o.MountPoint = "/var/lib" }, FlagMountPoint},
		{"the SSM agent's state", func(o *AgentOptions) { o.MountPoint = "/var/lib/amazon/ssm" }, FlagMountPoint},
		{"storecrypt's own state", func(o *AgentOptions) { o.MountPoint = "/var/lib/storecrypt" }, FlagMountPoint},
		{"a database's directory", func(o *AgentOptions) { o.MountPoint = "/var/lib/postgresql" }, ""},
		{"/data", func(o *AgentOptions) { o.MountPoint = "/data" }, ""},
		{"/srv/scratch", func(o *AgentOptions) { o.MountPoint = "/srv/scratch" }, ""},
		{"/mnt/a/b", func(o *AgentOptions) { o.MountPoint = "/mnt/a/b" }, ""},
		{"/database (not allowed)", func(o *AgentOptions) { o.MountPoint = "/database" }, FlagMountPoint},
		{"dot-dot mount point", func(o *AgentOptions) { o.MountPoint = "/mnt/../etc" }, FlagMountPoint},
		{"semicolon in mount point", func(o *AgentOptions) { o.MountPoint = "/mnt/x;reboot" }, FlagMountPoint},
		{"command substitution in model", func(o *AgentOptions) { o.Model = "$(reboot)" }, FlagModel},
		{"EBS's model", func(o *AgentOptions) { o.Model = "Amazon Elastic Block Store" }, FlagModel},
		{"EBS's model in another case", func(o *AgentOptions) { o.Model = "amazon elastic block store" }, FlagModel},
		{"backticks in key id", func(o *AgentOptions) { o.KMSKeyID = "alias/`reboot`" }, FlagKMSKeyID},
		{"newline in secret", func(o *AgentOptions) { o.KeySource = KeySourceS3KMS; o.Secret = "s3://bucket/key\nrm -rf /" }, FlagSecret},
		{"dot-dot device", func(o *AgentOptions) { o.Devices = []string{"/dev/../etc/passwd"} }, FlagDevices},
		{"devices", func(o *AgentOptions) { o.Devices = []string{"/dev/nvme1n1", "/dev/nvme2n1"} }, ""},
		{"space in device", func(o *AgentOptions) { o.Devices = []string{"/dev/nvme1n1 /dev/sda"} }, FlagDevices},
		{"units held back", func(o *AgentOptions) { o.RequiredBy = []string{"postgresql@15-main.service", "srv-data.mount"} }, ""},
		{"a target held back", func(o *AgentOptions) { o.RequiredBy = []string{"multi-user.target"} }, FlagRequiredBy},
		{"no unit suffix", func(o *AgentOptions) { o.RequiredBy = []string{"postgresql"} }, FlagRequiredBy},
		{"the SSM agent held back", func(o *AgentOptions) { o.RequiredBy = []string{"amazon-ssm-agent.service"} }, FlagRequiredBy},
		{"sshd held back", func(o *AgentOptions) { o.RequiredBy = []string{"sshd.service"} }, FlagRequiredBy},
		{"systemd's own units held back", func(o *AgentOptions) { o.RequiredBy = []string{"systemd-journald.service"} }, FlagRequiredBy},
		{"the boot unit held back by itself", func(o *AgentOptions) { o.RequiredBy = []string{UnitName} }, FlagRequiredBy},
		{"a path in a unit name", func(o *AgentOptions) { o.RequiredBy = []string{"../../x.service"} }, FlagRequiredBy},
		{"kubernetes directories bound", func(o *AgentOptions) {
			o.BindDirs = []string{"/var/lib/containerd", "/var/lib/kubelet", "/var/log/pods"}
		}, ""},
		{"a database's data bound", func(o *AgentOptions) { o.BindDirs = []string{"/var/lib/postgresql/15/main"} }, ""},
		{"/etc bound", func(o *AgentOptions) { o.BindDirs = []string{"/etc"} }, FlagBindDirs},
		{"/var/lib as a whole", func(o *AgentOptions) { o.BindDirs = []string{"/var/lib"} }, FlagBindDirs},
		{"the journal bound", func(o *AgentOptions) { o.BindDirs = []string{"/var/log/journal"} }, FlagBindDirs},
		{"storecrypt's state bound", func(o *AgentOptions) { o.BindDirs = []string{"/var/lib/storecrypt"} }, FlagBindDirs},
		{"the SSM agent's state bound", func(o *AgentOptions) { o.BindDirs = []string{"/var/lib/amazon/ssm"} }, FlagBindDirs},
		{"a dot-dot path", func(o *AgentOptions) { o.BindDirs = []string{"/var/lib/x/../../etc"} }, FlagBindDirs},
		{"the mount point bound", func(o *AgentOptions) { o.MountPoint = "/var/lib/data"; o.BindDirs = []string{"/var/lib/data/x"} }, FlagBindDirs},
		{"a bound directory holds the mount point", func(o *AgentOptions) { o.MountPoint = "/var/lib/data/x"; o.BindDirs = []string{"/var/lib/data"} }, FlagBindDirs},
		{"one inside another", func(o *AgentOptions) { o.BindDirs = []string{"/var/lib/kubelet", "/var/lib/kubelet/pods"} }, FlagBindDirs},
	} {
		t.Run(tc.name, func(t *testing.T) {
			o := valid()
			tc.edit(&o)
			err := o.Validate()
			var inv *InvalidError
			switch {
			case tc.wantFlag == "" && err != nil:
				t.Fatalf("got %v, want valid", err)
			case tc.wantFlag != "" && !errors.As(err, &inv):
				t.Fatalf("got %v, want an *InvalidError for --%s", err, tc.wantFlag)
			case tc.wantFlag != "" && inv.Flag != tc.wantFlag:
				t.Fatalf("got an error for --%s (%v), want --%s", inv.Flag, err, tc.wantFlag)
			}
		})
	}
}

func TestSecretLocation(t *testing.T) {
	b, k, err := SecretLocation("s3://bucket-1/a/b/c")
	if err != nil || b != "bucket-1" || k != "a/b/c" {
		t.Fatalf("got %q %q %v, want bucket-1 a/b/c", b, k, err)
	}
	for _, bad := range []string{"https://bucket/key", "s3://bucket", "s3://bucket/", "s3:///key"} {
		if _, _, err := SecretLocation(bad); err == nil {
			t.Errorf("%q: got no error", bad)
		}
	}
}

// unitSyntax is what systemd reads specially in ExecStart= (systemd.service(5), "Command
// lines"; systemd.unit(5), "Specifiers"): quotes, the escape, variables, specifiers, the
// command separator of older releases, and whitespace a quoted word does not hold.
const unitSyntax = "'\"\\$%;\t\n\r`"

// TestPatternsAdmitNoUnitSyntax reads every pattern whose values reach the boot unit's
// command line (each document parameter's, and --model's) as a regular expression and
// fails when any rune of unitSyntax is one it can match.
func TestPatternsAdmitNoUnitSyntax(t *testing.T) {
	patterns := map[string]string{FlagModel: PatternModel}
	for _, p := range DocumentParameters {
		patterns[p.Flag] = p.Pattern
	}
	for flag, pattern := range patterns {
		re, err := syntax.Parse(pattern, syntax.Perl)
		if err != nil {
			t.Fatalf("--%s: %v", flag, err)
		}
		for _, r := range unitSyntax {
			if admits(re, r) {
				t.Errorf("--%s: pattern admits %q, got it in %s, want none of %q", flag, r, pattern, unitSyntax)
			}
		}
	}
	// The check can fail: the apostrophe the secret's pattern once admitted.
	if re, _ := syntax.Parse(`^s3://[a-z]+/[A-Za-z'()]+$`, syntax.Perl); !admits(re, '\'') {
		t.Error("admits missed an apostrophe in a character class")
	}
}

// admits reports whether re can match the rune r anywhere.
func admits(re *syntax.Regexp, r rune) bool {
	switch re.Op {
	case syntax.OpLiteral:
		for _, l := range re.Rune {
			if l == r || re.Flags&syntax.FoldCase != 0 && unicode.SimpleFold(l) == r {
				return true
			}
		}
	case syntax.OpCharClass:
		for i := 0; i < len(re.Rune); i += 2 {
			if re.Rune[i] <= r && r <= re.Rune[i+1] {
				return true
			}
		}
	case syntax.OpAnyChar:
		return true
	case syntax.OpAnyCharNotNL:
		return r != '\n'
	}
	for _, sub := range re.Sub {
		if admits(sub, r) {
			return true
		}
	}
	return false
}
