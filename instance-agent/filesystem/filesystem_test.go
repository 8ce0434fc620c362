package filesystem

import (
	"context"
	"os"
	"path/filepath"
	"testing"

	"github.com/storecrypt/storecrypt/instance-agent/sysexec"
)

func TestMakeAndMount(t *testing.T) {
	root := t.TempDir()
	fake := &sysexec.Fake{T: t, Calls: []sysexec.Call{
		{Argv: "mkfs.xfs -q -f -K -L storecrypt /dev/mapper/storecrypt"},
		{Argv: "mount -t xfs -o noatime /dev/mapper/storecrypt /mnt/instance-store"},
	}}
	if err := Make(context.Background(), fake, "xfs", "/dev/mapper/storecrypt", "storecrypt"); err != nil {
		t.Fatal(err)
	}
	if err := Mount(context.Background(), fake, root, "/dev/mapper/storecrypt", "/mnt/instance-store", "xfs"); err != nil {
		t.Fatal(err)
	}
	fake.Done()
	if st, err := os.Stat(filepath.Join(root, "mnt/instance-store")); err != nil || !st.IsDir() {
		t.Errorf("the mount point was not created: %v", err)
	}
	if err := Make(context.Background(), fake, "btrfs", "/dev/x", "l"); err == nil {
		t.Error("an unsupported filesystem was accepted")
	}
}
