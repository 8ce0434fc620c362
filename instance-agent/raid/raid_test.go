package raid

import (
	"context"
	"os"
	"strings"
	"testing"

	"github.com/storecrypt/storecrypt/instance-agent/sysexec"
)

func TestArgv(t *testing.T) {
	disks := []string{"/dev/nvme1n1", "/dev/nvme2n1"}
	for _, tc := range []struct {
		name string
		cmd  sysexec.Command
		want string
	}{
		{"create raid0", CreateCommand("storecrypt", 0, disks), "mdadm --create /dev/md/storecrypt --run --level=0 --metadata=1.2 --raid-devices=2 --homehost=any --name=storecrypt /dev/nvme1n1 /dev/nvme2n1"},
		{"create raid10", CreateCommand("storecrypt", 10, disks), "mdadm --create /dev/md/storecrypt --run --level=10 --metadata=1.2 --raid-devices=2 --homehost=any --name=storecrypt /dev/nvme1n1 /dev/nvme2n1"},
		{"assemble", AssembleCommand("storecrypt", disks), "mdadm --assemble /dev/md/storecrypt --run /dev/nvme1n1 /dev/nvme2n1"},
		{"zero", ZeroCommand(disks), "mdadm --zero-superblock /dev/nvme1n1 /dev/nvme2n1"},
		{"examine", ExamineCommand("/dev/nvme1n1"), "mdadm --examine /dev/nvme1n1"},
	} {
		if got := tc.cmd.String(); got != tc.want {
			t.Errorf("%s: got %s, want %s", tc.name, got, tc.want)
		}
	}
	if got := MemberLabel("storecrypt"); got != "any:storecrypt" {
		t.Errorf("MemberLabel: got %q, want any:storecrypt (what blkid shows)", got)
	}
}

// TestRunSaysWhichMdadm: a failing mdadm's error names the operation.
func TestRunSaysWhichMdadm(t *testing.T) {
	fake := &sysexec.Fake{T: t, Calls: []sysexec.Call{{Argv: "mdadm --assemble /dev/md/storecrypt --run /dev/nvme1n1", Code: 1}}}
	err := Mdadm{R: fake}.Run(context.Background(), AssembleCommand("storecrypt", []string{"/dev/nvme1n1"}))
	if err == nil || !strings.HasPrefix(err.Error(), "running mdadm --assemble: ") {
		t.Errorf("got %v, want an error naming mdadm --assemble", err)
	}
}

// TestExamine: mdadm --examine's report of a member (mdadm 4.2's examine_super1 format).
func TestExamine(t *testing.T) {
	out, err := os.ReadFile("testdata/examine-member.txt")
	if err != nil {
		t.Fatal(err)
	}
	fake := &sysexec.Fake{T: t, Calls: []sysexec.Call{{Argv: "mdadm --examine /dev/nvme1n1", Stdout: string(out)}}}
	got, err := Mdadm{R: fake}.Examine(context.Background(), "/dev/nvme1n1")
	if err != nil {
		t.Fatal(err)
	}
	want := Superblock{ArrayUUID: "3a1b2c4d:5e6f7081:92a3b4c5:d6e7f809", RaidDevices: 2, Events: 0, Role: 1, Data: 4096 * 512}
	if got != want {
		t.Errorf("got %+v, want %+v", got, want)
	}
	for _, tc := range []struct {
		name, from, to string
		role           int // -1 with an error
		err            bool
	}{
		{"a spare", "Active device 1", "spare", -1, false},
		{"no events", "Events : 0", "Evnts : 0", -1, true},
		{"events not a number", "Events : 0", "Events : many", -1, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			sb, err := ParseExamine([]byte(strings.Replace(string(out), tc.from, tc.to, 1)))
			if (err != nil) != tc.err || err == nil && sb.Role != tc.role {
				t.Errorf("got role %d, error %v; want role %d, an error %v", sb.Role, err, tc.role, tc.err)
			}
		})
	}
}
