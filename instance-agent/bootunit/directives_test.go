package bootunit

import (
	"bufio"
	"strings"
	"testing"

	"github.com/storecrypt/storecrypt/internal/contract"
)

// oldestSystemd is the oldest systemd the boot unit must load on: Amazon Linux 2 ships
// 219 (RHEL 8 ships 239, Ubuntu 18.04 237, Debian 12 252).
const oldestSystemd = 219

// directives are every directive the unit may use, with the first systemd release that
// understood it and where that is written down. A directive missing here fails the test,
// so adding one means looking up its version first.
var directives = map[string]struct {
	since  int
	source string
}{
	"[Unit] Description":        {1, "systemd.unit(5), in the first release (2010)"},
	"[Unit] Documentation":      {183, "commit 49dbfa7 \"units: introduce new Documentation= field\" (2012-05-21)"},
	"[Unit] Wants":              {1, "systemd.unit(5), in the first release (2010)"},
	"[Unit] After":              {1, "systemd.unit(5), in the first release (2010)"},
	"[Unit] Before":             {1, "systemd.unit(5), in the first release (2010)"},
	"[Service] Type":            {1, "systemd.service(5), in the first release (2010); oneshot since 2010"},
	"[Service] RemainAfterExit": {1, "systemd.service(5), in the first release (2010)"},
	"[Service] ExecStart":       {1, "systemd.service(5), in the first release (2010)"},
	"[Service] TimeoutStartSec": {188, "commit d568a33 \"systemd: introduced new timeout types\" (2012-08-07)"},
	"[Install] WantedBy":        {1, "systemd.unit(5), in the first release (2010)"},
	"[Install] RequiredBy":      {183, "commit 78d54bd \"unit: introduce RequiredBy= setting in [Install]\" (2012-05-21)"},
}

// Directives that must not appear, with why: a unit that has them fails to load on the
// oldest systemd, so nothing unlocks after a reboot and nothing reports it.
var forbidden = map[string]string{
	"[Service] Restart":                  "Type=oneshot accepts Restart= only from systemd 244 (NEWS of 244); older versions refuse to load the unit",
	"[Service] RestartPreventExitStatus": "only with Restart=",
	"[Service] RestartSec":               "only with Restart=",
}

// unitDirectives returns the "[Section] Key" of every assignment in a unit file.
func unitDirectives(t *testing.T, text string) []string {
	t.Helper()
	var out []string
	section := ""
	sc := bufio.NewScanner(strings.NewReader(text))
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		switch {
		case line == "" || strings.HasPrefix(line, "#") || strings.HasPrefix(line, ";"):
		case strings.HasPrefix(line, "["):
			section = line
		default:
			key, _, ok := strings.Cut(line, "=")
			if !ok {
				t.Fatalf("not an assignment: %q", line)
			}
			out = append(out, section+" "+key)
		}
	}
	return out
}

// bothUnits are the two units the agent writes, each with every branch of the template
// and of its command line: the unlock unit of apply (keys that survive a reboot) and the
// boot-time mode's apply --boot unit (install), with units held back.
func bothUnits() map[string]Unit {
	held := []string{"postgresql.service", "srv-data.mount"}
	o := contract.DefaultAgentOptions()
	o.KMSKeyID, o.Layout, o.Devices, o.Wipe, o.Boot = "alias/storecrypt", contract.LayoutPerDisk, []string{"/dev/nvme1n1", "/dev/nvme2n1"}, true, true
	o.RequiredBy, o.BindDirs = held, []string{"/var/lib/containerd", "/var/log/pods"}
	return map[string]Unit{
		"unlock":       {Exec: UnlockAtBoot(o), RequiredBy: held},
		"apply --boot": {Exec: ApplyAtBoot(o), RequiredBy: held},
	}
}

func TestDirectivesPredateOldestSystemd(t *testing.T) {
	for name, u := range bothUnits() {
		t.Run(name, func(t *testing.T) {
			used := unitDirectives(t, Render(u))
			if len(used) < len(directives) {
				t.Errorf("the unit uses %d directives, the table lists %d: drop what the unit no longer uses", len(used), len(directives))
			}
			for _, d := range used {
				if why, bad := forbidden[d]; bad {
					t.Errorf("%s=: %s", d, why)
					continue
				}
				v, ok := directives[d]
				if !ok {
					t.Errorf("%s= is not in the table: add the systemd version that introduced it", d)
					continue
				}
				if v.since > oldestSystemd {
					t.Errorf("%s= needs systemd %d (%s); the oldest supported is %d", d, v.since, v.source, oldestSystemd)
				}
			}
		})
	}
}
