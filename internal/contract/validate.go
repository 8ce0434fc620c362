// What the agent's flag values may be: the patterns (also the SSM document's
// allowedPattern values) and the checks apply and unlock make before touching a disk.
// The agent validates its flags with them; the document, the stack and the CLI check
// parameters with the same patterns, so a value one part accepts no other refuses.

package contract

import (
	"fmt"
	"net/url"
	"path"
	"regexp"
	"slices"
	"strings"
	"sync"
)

// Patterns that flag values must match. They are also the SSM document's allowedPattern
// values, so that no parameter can carry shell syntax into a command line, and they
// hold the boot unit's ExecStart= line: no value may carry what systemd reads there as
// quoting, an escape, a variable, a specifier or a command separator (' " \ $ % ;),
// nor a tab or a newline (TestPatternsAdmitNoUnitSyntax).
var (
	PatternKMSKeyID = `^$|^(arn:aws[a-z-]*:kms:[a-z0-9-]+:[0-9]{12}:(key|alias)/[A-Za-z0-9/_-]+|alias/[A-Za-z0-9/_-]+|[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12})$`
	// S3's "safe" key characters but the apostrophe, which systemd reads as a quote.
	PatternSecret = `^$|^s3://[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]/[A-Za-z0-9!_.*()/-]+$`
	// A mount point is under /mnt, /data, /srv or /var/lib/<name>: places for data, where
	// a mount hides nothing the system needs. Every segment starts with a letter, digit,
	// _ or -: no ".", "..", or hidden names.
	PatternMountPoint = `^(/mnt(/[A-Za-z0-9_-][A-Za-z0-9._-]{0,63}){1,6}|/(data|srv)(/[A-Za-z0-9_-][A-Za-z0-9._-]{0,63}){0,6}|/var/lib(/[A-Za-z0-9_-][A-Za-z0-9._-]{0,63}){1,6})$`
	PatternModel      = `^[A-Za-z0-9 ._-]{1,64}$`
	PatternDevices    = `^$|^/dev/[A-Za-z0-9/_-]+(,/dev/[A-Za-z0-9/_-]+)*$`
	// Directories --bind-dirs moves onto the volume: state and logs of applications
	// (containerd, the kubelet, pods' logs, a database's data), never the system's own.
	PatternBindDirs = `^$|^` + bindDir + `(,` + bindDir + `)*$`
	// Units the boot unit holds back: services, mounts, sockets, timers or paths by name.
	// Targets are left out: holding one back holds back a stage of the boot.
	PatternRequiredBy = `^$|^` + unitName + `(,` + unitName + `)*$`
)

const bindDir = `/(var/lib|var/log|var/cache|opt|srv|data|home)(/[A-Za-z0-9_-][A-Za-z0-9._-]{0,63}){1,6}`

const unitName = `[A-Za-z0-9:_.@-]{1,200}\.(service|mount|socket|timer|path)`

// unheldUnits are units the boot unit must never hold back: without them nobody can
// reach the instance to mend a volume that did not open.
var unheldUnits = []string{"amazon-ssm-agent.service", "snap.amazon-ssm-agent.amazon-ssm-agent.service", "ssh.service", "sshd.service", UnitName}

// The flags' patterns, each with the value it is known to admit: the flag's default.
var (
	reKMSKeyID   = valuePattern(PatternKMSKeyID, "")
	reSecret     = valuePattern(PatternSecret, "")
	reMountPoint = valuePattern(PatternMountPoint, DefaultMountPoint)
	reModel      = valuePattern(PatternModel, DefaultModel)
	reDevices    = valuePattern(PatternDevices, "")
	reRequiredBy = valuePattern(PatternRequiredBy, "")
	reBindDirs   = valuePattern(PatternBindDirs, "")
)

// compiled compiles pattern on first use. The patterns' counted repetitions ({0,63},
// {1,200}, {1,512}) make each compile take milliseconds in a fresh process (the mount
// point's 4 to 28 ms); compiled at package init they were contract's 2 MB and 12-17 ms
// of init, paid at every cold start of every function whether it validates or not
// (issue 28; TestInitCost in functions/).
func compiled(pattern string) func() *regexp.Regexp {
	return sync.OnceValue(func() *regexp.Regexp { return regexp.MustCompile(pattern) })
}

// pattern is a flag's pattern, compiled on first use, and its default value, which it
// admits without compiling: a process that validates the defaults (the launch function
// at init, with the stack's defaults) compiles nothing. TestDefaultsMatch proves each
// default matches its pattern, so the shortcut admits nothing the pattern would refuse.
type pattern struct {
	source, def string
	re          func() *regexp.Regexp
}

func valuePattern(source, def string) pattern {
	return pattern{source: source, def: def, re: compiled(source)}
}

func (p pattern) match(s string) bool { return s == p.def || p.re().MatchString(s) }

// InvalidError says which flag is wrong and why.
type InvalidError struct {
	Flag   string
	Value  string
	Reason string
}

func (e *InvalidError) Error() string {
	return fmt.Sprintf("--%s %q: %s", e.Flag, e.Value, e.Reason)
}

func invalid(flag, value, reason string) error {
	return &InvalidError{Flag: flag, Value: value, Reason: reason}
}

// Validate checks the options as apply needs them; unlock needs fewer (ValidateUnlock).
func (o AgentOptions) Validate() error {
	if err := o.ValidateUnlock(); err != nil {
		return err
	}
	switch o.KeySource {
	case KeySourceKMSDataKey:
		if o.KMSKeyID == "" {
			return invalid(FlagKMSKeyID, o.KMSKeyID, "required with --key-source "+KeySourceKMSDataKey)
		}
	case KeySourceS3KMS:
		if o.Secret == "" {
			return invalid(FlagSecret, o.Secret, "required with --key-source "+KeySourceS3KMS)
		}
	case KeySourceEphemeral:
	default:
		return invalid(FlagKeySource, o.KeySource, "want one of "+strings.Join(KeySources, ", "))
	}
	if !reKMSKeyID.match(o.KMSKeyID) {
		return invalid(FlagKMSKeyID, o.KMSKeyID, "want a KMS key id, key ARN, alias name or alias ARN")
	}
	if !reSecret.match(o.Secret) {
		return invalid(FlagSecret, o.Secret, "want s3://bucket/key")
	}
	if !slices.Contains(Filesystems, o.Filesystem) {
		return invalid(FlagFilesystem, o.Filesystem, "want one of "+strings.Join(Filesystems, ", "))
	}
	if !slices.Contains(Layouts, o.Layout) {
		return invalid(FlagLayout, o.Layout, "want one of "+strings.Join(Layouts, ", "))
	}
	return nil
}

// ValidateUnlock checks the options that unlock uses: where to look and where to mount.
func (o AgentOptions) ValidateUnlock() error {
	if !reMountPoint.match(o.MountPoint) || path.Clean(o.MountPoint) != o.MountPoint {
		return invalid(FlagMountPoint, o.MountPoint, "want a clean path under /mnt, /data, /srv or /var/lib/<name>")
	}
	if systemState(o.MountPoint) {
		return invalid(FlagMountPoint, o.MountPoint, "is where the system keeps its own state")
	}
	if !reModel.match(o.Model) {
		return invalid(FlagModel, o.Model, "want letters, digits, spaces, dots, dashes")
	}
	if strings.Contains(strings.ToLower(o.Model), "elastic block store") {
		return invalid(FlagModel, o.Model, "is the model of EBS volumes; storecrypt encrypts instance store only")
	}
	if !reDevices.match(strings.Join(o.Devices, ",")) {
		return invalid(FlagDevices, strings.Join(o.Devices, ","), "want /dev paths separated by commas")
	}
	for _, d := range o.Devices {
		if path.Clean(d) != d {
			return invalid(FlagDevices, d, "want a clean /dev path")
		}
	}
	if !reRequiredBy.match(strings.Join(o.RequiredBy, ",")) {
		return invalid(FlagRequiredBy, strings.Join(o.RequiredBy, ","), "want unit names (.service, .mount, .socket, .timer, .path) separated by commas")
	}
	for _, u := range o.RequiredBy {
		if slices.Contains(unheldUnits, u) || strings.HasPrefix(u, "systemd-") {
			return invalid(FlagRequiredBy, u, "must not wait for the volume: it is how the instance is reached or booted")
		}
	}
	return o.validateBindDirs()
}

func (o AgentOptions) validateBindDirs() error {
	if !reBindDirs.match(strings.Join(o.BindDirs, ",")) {
		return invalid(FlagBindDirs, strings.Join(o.BindDirs, ","), "want directories under /var/lib, /var/log, /var/cache, /opt, /srv, /data or /home, separated by commas")
	}
	for i, d := range o.BindDirs {
		switch {
		case path.Clean(d) != d:
			return invalid(FlagBindDirs, d, "want a clean path")
		case systemState(d):
			return invalid(FlagBindDirs, d, "is where the system keeps its own state")
		case within(d, o.MountPoint) || within(o.MountPoint, d):
			return invalid(FlagBindDirs, d, "overlaps the mount point "+o.MountPoint)
		}
		for _, e := range o.BindDirs[:i] {
			if within(d, e) || within(e, d) {
				return invalid(FlagBindDirs, d, "overlaps "+e)
			}
		}
	}
	return nil
}

// within reports whether p is dir or below it.
func within(p, dir string) bool { return p == dir || strings.HasPrefix(p, dir+"/") }

// systemState: under /var/lib and /var/log, the state and logs of the system's own tools.
// Mounting over them would hide the package databases, systemd's state and journal, the
// SSM agent's state and logs, or storecrypt's own.
func systemState(p string) bool {
	for _, name := range []string{"storecrypt", "amazon", "systemd", "dpkg", "apt", "rpm", "dnf", "yum", "cloud"} {
		if within(p, "/var/lib/"+name) {
			return true
		}
	}
	for _, name := range []string{"journal", "amazon", "storecrypt"} {
		if within(p, "/var/log/"+name) {
			return true
		}
	}
	return false
}

// SecretLocation splits an s3://bucket/key secret into its parts.
func SecretLocation(secret string) (bucket, key string, err error) {
	u, err := url.Parse(secret)
	if err != nil || u.Scheme != "s3" || u.Host == "" || len(u.Path) < 2 {
		return "", "", invalid(FlagSecret, secret, "want s3://bucket/key")
	}
	return u.Host, strings.TrimPrefix(u.Path, "/"), nil
}

var (
	reRevokeReason = compiled(PatternRevokeReason)
	reRevokeBy     = compiled(PatternRevokeBy)
)

// ValidateRevocation is the agent's check of --reason and --by: the revocation
// documents' allowedPatterns, so that a value the SSM Agent lets through is one the agent
// takes, and one typed at the instance is one a document could have sent.
func ValidateRevocation(reason, by string) error {
	if !reRevokeReason().MatchString(reason) {
		return &InvalidError{Flag: FlagReason, Value: reason, Reason: "required: say why in one line of at most 256 letters, digits, spaces and ._:/,()#@+=- (it is recorded with who asked and when)"}
	}
	if !reRevokeBy().MatchString(by) {
		return &InvalidError{Flag: FlagBy, Value: by, Reason: "an IAM ARN or a name of at most 512 letters, digits and :/_+=,.@-"}
	}
	return nil
}
