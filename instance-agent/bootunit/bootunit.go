// Package bootunit renders and installs the systemd unit that reopens the volume at boot:
// instance store keeps its data across a reboot, but the dm-crypt mapping and the mount
// do not.
package bootunit

import (
	"bytes"
	_ "embed"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"text/template"

	"github.com/storecrypt/storecrypt/instance-agent/atomicfile"
	"github.com/storecrypt/storecrypt/internal/contract"
)

//go:embed unit.service.tmpl
var unitText string

var unitTemplate = template.Must(template.New("unit").Parse(unitText))

// Render returns the unit's text for the given agent command line. The arguments come
// from validated flags (no quotes, no specials), so quoting each is enough for systemd.
func Render(argv []string) string {
	quoted := make([]string, len(argv))
	for i, a := range argv {
		if strings.ContainsAny(a, " \t") || a == "" {
			a = `"` + a + `"`
		}
		quoted[i] = a
	}
	var b bytes.Buffer
	// The template has a single string field; Execute cannot fail on it.
	_ = unitTemplate.Execute(&b, struct{ Exec string }{strings.Join(quoted, " ")})
	return b.String()
}

// Install writes the unit under root and enables it the way `systemctl enable` does, with
// the wants symlink, so it works before systemd runs (at image build) as well as after.
// It reports whether anything changed.
func Install(root, text string) (bool, error) {
	dir := filepath.Join(root, "etc/systemd/system")
	unit := filepath.Join(dir, contract.UnitName)
	changed := false
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
	wants := filepath.Join(dir, "multi-user.target.wants", contract.UnitName)
	if target, err := os.Readlink(wants); err != nil || target != "../"+contract.UnitName {
		if err := os.MkdirAll(filepath.Dir(wants), 0o755); err != nil {
			return false, fmt.Errorf("enabling %s: %w", contract.UnitName, err)
		}
		_ = os.Remove(wants)
		if err := os.Symlink("../"+contract.UnitName, wants); err != nil {
			return false, fmt.Errorf("enabling %s: %w", contract.UnitName, err)
		}
		changed = true
	}
	return changed, nil
}
