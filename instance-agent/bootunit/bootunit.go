// Package bootunit renders and installs the systemd unit that reopens the volume at boot:
// instance store keeps its data across a reboot, but the dm-crypt mapping and the mount
// do not. The unit must load on every systemd storecrypt supports, from 219 (Amazon
// Linux 2) on; directives.go holds the version each of its directives needs.
package bootunit

import (
	"bytes"
	_ "embed"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"text/template"
	"time"

	"github.com/storecrypt/storecrypt/instance-agent/atomicfile"
	"github.com/storecrypt/storecrypt/internal/contract"
)

//go:embed unit.service.tmpl
var unitText string

var unitTemplate = template.Must(template.New("unit").Parse(unitText))

// Unit is what the boot unit says: the agent command line it runs and the units it holds
// back until that command has mounted the volume.
type Unit struct {
	Exec       []string
	RequiredBy []string
}

// Render returns the unit's text. The arguments and unit names come from validated flags
// (no quotes, no specials), so quoting an argument with a space is enough for systemd.
func Render(u Unit) string {
	quoted := make([]string, len(u.Exec))
	for i, a := range u.Exec {
		if strings.ContainsAny(a, " \t") || a == "" {
			a = `"` + a + `"`
		}
		quoted[i] = a
	}
	var b bytes.Buffer
	// The fields are strings and a slice of strings; Execute cannot fail on them.
	_ = unitTemplate.Execute(&b, struct {
		Exec       string
		RequiredBy []string
		TimeoutSec int
	}{strings.Join(quoted, " "), u.RequiredBy, int((contract.BootRetryFor + startSlack).Seconds())})
	return b.String()
}

// retryAtBoot is the boot unit's --retry-for.
var retryAtBoot = fmt.Sprintf("--%s=%s", contract.FlagRetryFor, contract.BootRetryFor)

// ApplyAtBoot is the command line of a boot unit that runs apply with the options o: the
// unit of an ephemeral volume, and the boot-time mode's (o.Boot).
func ApplyAtBoot(o contract.AgentOptions) []string {
	return append(append([]string{contract.AgentPath, "apply"}, o.Args()...), retryAtBoot)
}

// UnlockAtBoot is the command line of a boot unit that reopens the volume of a key that
// survives a reboot, wherever o made it.
func UnlockAtBoot(o contract.AgentOptions) []string {
	argv := []string{contract.AgentPath, "unlock", "--" + contract.FlagMountPoint, o.MountPoint, "--" + contract.FlagModel, o.Model}
	if o.Layout == contract.LayoutPerDisk {
		argv = append(argv, "--"+contract.FlagLayout, o.Layout)
	}
	if len(o.Devices) > 0 {
		argv = append(argv, "--"+contract.FlagDevices, strings.Join(o.Devices, ","))
	}
	if len(o.BindDirs) > 0 {
		argv = append(argv, "--"+contract.FlagBindDirs, strings.Join(o.BindDirs, ","))
	}
	return append(argv, retryAtBoot)
}

// For is the unit of a volume whose key is keySource: it runs unlock at boot for keys
// that survive a reboot, and apply for ephemeral ones, whose volume a reboot turns back
// into scratch. Either retries for a while: at boot the network, and so KMS, may not be
// up yet.
func For(o contract.AgentOptions, keySource string) Unit {
	argv := ApplyAtBoot(o)
	if keySource != contract.KeySourceEphemeral {
		argv = UnlockAtBoot(o)
	}
	return Unit{Exec: argv, RequiredBy: o.RequiredBy}
}

// InstallAction says what installing u does, for the report.
func (u Unit) InstallAction() string {
	action := "install " + contract.UnitName + " and " + contract.AgentPath
	if len(u.RequiredBy) > 0 {
		action += "; hold back " + strings.Join(u.RequiredBy, ", ") + " until the volume is mounted"
	}
	return action
}

// startSlack is the time the boot unit's run gets beyond its retries: the last attempt,
// mdadm's assembly and the mount.
const startSlack = time.Minute

// Install writes the unit under root and enables it the way `systemctl enable` does, with
// a multi-user.target.wants link and a <unit>.requires link for each held-back unit, so
// it works before systemd runs (at image build) as well as after. Links from an earlier
// apply to units no longer held back are removed. It reports whether anything changed.
func Install(root string, u Unit) (bool, error) {
	dir := filepath.Join(root, "etc/systemd/system")
	unit := filepath.Join(dir, contract.UnitName)
	changed := false
	text := Render(u)
	old, err := os.ReadFile(unit)
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return false, fmt.Errorf("reading %s: %w", unit, err)
	}
	if string(old) != text {
		if err := atomicfile.Write(unit, []byte(text), 0o644); err != nil {
			return false, err
		}
		changed = true
	}
	links := []string{"multi-user.target.wants"}
	for _, held := range u.RequiredBy {
		links = append(links, held+".requires")
	}
	for _, l := range links {
		c, err := link(filepath.Join(dir, l, contract.UnitName))
		if err != nil {
			return false, fmt.Errorf("enabling %s: %w", contract.UnitName, err)
		}
		changed = changed || c
	}
	stale, err := filepath.Glob(filepath.Join(dir, "*.requires", contract.UnitName))
	if err != nil {
		return false, err
	}
	for _, s := range stale {
		if !slices.Contains(links, filepath.Base(filepath.Dir(s))) {
			if err := os.Remove(s); err != nil {
				return false, fmt.Errorf("no longer holding back %s: %w", strings.TrimSuffix(filepath.Base(filepath.Dir(s)), ".requires"), err)
			}
			changed = true
		}
	}
	return changed, nil
}

// BootMode reports whether the unit installed under root provisions at boot: it runs
// apply with --boot, as `storecrypt-agent install` writes it.
func BootMode(root string) bool {
	b, err := os.ReadFile(filepath.Join(root, "etc/systemd/system", contract.UnitName))
	if err != nil {
		return false
	}
	for _, line := range strings.Split(string(b), "\n") {
		if exec, ok := strings.CutPrefix(line, "ExecStart="); ok {
			args := strings.Fields(exec)
			return len(args) > 1 && args[1] == "apply" && slices.Contains(args, "--"+contract.FlagBoot)
		}
	}
	return false
}

// link makes path a symlink to the unit one directory up, as systemctl enable does.
func link(path string) (bool, error) {
	want := "../" + contract.UnitName
	if target, err := os.Readlink(path); err == nil && target == want {
		return false, nil
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return false, err
	}
	if err := os.Remove(path); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return false, err
	}
	return true, os.Symlink(want, path)
}

// Uninstall undoes Install under root, as `systemctl disable` and removing the file do:
// the unit, its multi-user.target.wants link, every <unit>.requires link to it (and the
// .requires directory when nothing else is left in it) and its drop-in directory
// (<unit>.d), which held nothing but what configured this unit. What is already gone is
// fine, so a second run changes nothing. It reports whether anything changed.
func Uninstall(root string) (bool, error) {
	dir := filepath.Join(root, "etc/systemd/system")
	links, err := filepath.Glob(filepath.Join(dir, "*", contract.UnitName))
	if err != nil {
		return false, err
	}
	changed := false
	for _, l := range links {
		if fi, err := os.Lstat(l); err != nil || fi.Mode()&fs.ModeSymlink == 0 {
			continue
		}
		if err := os.Remove(l); err != nil {
			return false, fmt.Errorf("disabling %s: %w", contract.UnitName, err)
		}
		changed = true
		if held := filepath.Dir(l); strings.HasSuffix(held, ".requires") {
			// Install made it; removed only when empty, as another unit may be required
			// there too. An error leaves it, harmless.
			_ = os.Remove(held)
		}
	}
	for _, p := range []string{filepath.Join(dir, contract.UnitName+".d"), filepath.Join(dir, contract.UnitName)} {
		if _, err := os.Lstat(p); errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err := os.RemoveAll(p); err != nil {
			return false, fmt.Errorf("removing %s: %w", p, err)
		}
		changed = true
	}
	return changed, nil
}
