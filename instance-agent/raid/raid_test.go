package raid

import (
	"context"
	"testing"

	"github.com/storecrypt/storecrypt/instance-agent/sysexec"
)

func TestArgv(t *testing.T) {
	fake := &sysexec.Fake{T: t, Calls: []sysexec.Call{
		{Argv: "mdadm --create /dev/md/storecrypt --run --level=0 --metadata=1.2 --raid-devices=2 --homehost=any --name=storecrypt /dev/nvme1n1 /dev/nvme2n1"},
		{Argv: "mdadm --assemble /dev/md/storecrypt --run /dev/nvme1n1 /dev/nvme2n1"},
	}}
	m := Mdadm{R: fake}
	disks := []string{"/dev/nvme1n1", "/dev/nvme2n1"}
	if err := m.Create(context.Background(), "storecrypt", 0, disks); err != nil {
		t.Fatal(err)
	}
	if err := m.Assemble(context.Background(), "storecrypt", disks); err != nil {
		t.Fatal(err)
	}
	fake.Done()
	if got := MemberLabel("storecrypt"); got != "any:storecrypt" {
		t.Errorf("MemberLabel = %q, want any:storecrypt (what blkid shows)", got)
	}
}
