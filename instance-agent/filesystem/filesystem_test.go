package filesystem

import "testing"

func TestCommands(t *testing.T) {
	for _, tc := range []struct {
		fstype, want string // want "" for an error
	}{
		{"xfs", "mkfs.xfs -q -f -K -L storecrypt /dev/mapper/storecrypt"},
		{"ext4", "mkfs.ext4 -q -F -L storecrypt -m 0 -O meta_bg,^resize_inode -E lazy_itable_init=1,lazy_journal_init=1,nodiscard /dev/mapper/storecrypt"},
		{"btrfs", ""},
	} {
		c, err := MakeCommand(tc.fstype, "/dev/mapper/storecrypt", "storecrypt")
		switch {
		case tc.want == "" && err == nil:
			t.Errorf("%s: got %s, want an error for an unsupported filesystem", tc.fstype, c)
		case tc.want != "" && (err != nil || c.String() != tc.want):
			t.Errorf("%s: got %s, %v; want %s", tc.fstype, c, err, tc.want)
		}
	}
	if got, want := MountCommand("/dev/mapper/storecrypt", "/mnt/instance-store", "xfs").String(), "mount -t xfs -o noatime /dev/mapper/storecrypt /mnt/instance-store"; got != want {
		t.Errorf("got %s, want %s", got, want)
	}
}
