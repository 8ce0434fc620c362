package filesystem

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"testing"
)

func TestCommands(t *testing.T) {
	for _, tc := range []struct {
		fstype string
		fast   bool
		want   string // "" for an error
	}{
		{"xfs", false, "mkfs.xfs -q -f -K -L storecrypt /dev/mapper/storecrypt"},
		{"ext4", false, "mkfs.ext4 -q -F -L storecrypt -m 0 -O meta_bg,^resize_inode -E lazy_itable_init=1,lazy_journal_init=1,nodiscard /dev/mapper/storecrypt"},
		{"xfs", true, "mkfs.xfs -q -f -K -L storecrypt -l size=512m /dev/mapper/storecrypt"},
		{"ext4", true, "mkfs.ext4 -q -F -L storecrypt -m 0 -O meta_bg,^resize_inode -E lazy_itable_init=1,lazy_journal_init=1,nodiscard -O bigalloc -C 65536 /dev/mapper/storecrypt"},
		{"btrfs", false, ""},
	} {
		c, err := MakeCommand(tc.fstype, "/dev/mapper/storecrypt", "storecrypt", tc.fast)
		switch {
		case tc.want == "" && err == nil:
			t.Errorf("%s: got %s, want an error for an unsupported filesystem", tc.fstype, c)
		case tc.want != "" && (err != nil || c.String() != tc.want):
			t.Errorf("%s, fast %t: got %s, %v; want %s", tc.fstype, tc.fast, c, err, tc.want)
		}
	}
	if got, want := MountCommand("/dev/mapper/storecrypt", "/mnt/instance-store", "xfs").String(), "mount -t xfs -o noatime /dev/mapper/storecrypt /mnt/instance-store"; got != want {
		t.Errorf("got %s, want %s", got, want)
	}
}

// TestMadeAsAsked runs the real mkfs on a sparse file and reads back, with the
// filesystem's own tools, what --fast-format promises: that the flags took, not only that
// they are on the command line (a later -O can undo an earlier one, and mke2fs takes
// several).
func TestMadeAsAsked(t *testing.T) {
	for _, tc := range []struct {
		fstype  string
		fast    bool
		inspect []string
		want    string // a pattern over the inspection's output
	}{
		{"ext4", false, []string{"dumpe2fs", "-h"}, `(?m)^Block size:\s+4096$`},
		{"ext4", true, []string{"dumpe2fs", "-h"}, `(?ms)^Filesystem features:[^\n]*\bbigalloc\b.*^Cluster size:\s+65536$`},
		{"xfs", false, []string{"xfs_db", "-r", "-c", "sb 0", "-c", "p logblocks"}, `^logblocks = (\d{1,4}|[1-9]\d{4}|1[0-2]\d{4})$`}, // the default for 64 GiB: under 512 MiB
		{"xfs", true, []string{"xfs_db", "-r", "-c", "sb 0", "-c", "p logblocks"}, `^logblocks = 131072$`},                            // 512 MiB of 4 KiB blocks
	} {
		vol := filepath.Join(t.TempDir(), "volume")
		if err := os.WriteFile(vol, nil, 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.Truncate(vol, 64<<30); err != nil {
			t.Fatal(err)
		}
		c, err := MakeCommand(tc.fstype, vol, "storecrypt", tc.fast)
		if err != nil {
			t.Fatal(err)
		}
		if out, err := exec.Command(c.Name, c.Args...).CombinedOutput(); err != nil {
			t.Fatalf("%s: %v: %s", c, err, out)
		}
		out, err := exec.Command(tc.inspect[0], append(tc.inspect[1:], vol)...).CombinedOutput()
		if err != nil {
			t.Fatalf("%v: %v: %s", tc.inspect, err, out)
		}
		if !regexp.MustCompile(tc.want).Match(bytes.TrimSpace(out)) {
			t.Errorf("%s, fast %t: %v printed %s; want %s", tc.fstype, tc.fast, tc.inspect, out, tc.want)
		}
	}
}
