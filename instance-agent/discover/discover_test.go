package discover

import (
	"errors"
	"io/fs"
	"slices"
	"strings"
	"testing"
	"testing/fstest"
)

const (
	instanceStore = "Amazon EC2 NVMe Instance Storage"
	ebs           = "Amazon Elastic Block Store"
)

// i3enLike is the sysfs of an i3en-style instance: an EBS root (partitioned, mounted at /),
// two instance-store namespaces (one held by an md array), and one EBS data volume. Model
// strings are padded with spaces as the kernel shows them.
func i3enLike() fstest.MapFS {
	dir := &fstest.MapFile{Mode: fs.ModeDir | 0o755}
	f := func(s string) *fstest.MapFile { return &fstest.MapFile{Data: []byte(s + "\n")} }
	return fstest.MapFS{
		"sys/block/nvme0n1/dev":             f("259:0"),
		"sys/block/nvme0n1/size":            f("16777216"),
		"sys/block/nvme0n1/device/model":    f(ebs + "              "),
		"sys/block/nvme0n1/device/serial":   f("vol0123456789abcdef0"),
		"sys/block/nvme0n1/holders":         dir,
		"sys/block/nvme0n1/nvme0n1p1/dev":   f("259:1"),
		"sys/block/nvme0n1/nvme0n1p128/dev": f("259:2"),
		"sys/block/nvme1n1/dev":             f("259:3"),
		"sys/block/nvme1n1/size":            f("4882812500"),
		"sys/block/nvme1n1/device/model":    f(instanceStore + "        "),
		"sys/block/nvme1n1/device/serial":   f("AWS1A2B3C4D5E6F7G8"),
		"sys/block/nvme1n1/holders/md127":   dir,
		"sys/block/nvme2n1/dev":             f("259:4"),
		"sys/block/nvme2n1/size":            f("4882812500"),
		"sys/block/nvme2n1/device/model":    f(instanceStore + "        "),
		"sys/block/nvme2n1/device/serial":   f("AWS9H8G7F6E5D4C3B2"),
		"sys/block/nvme2n1/holders":         dir,
		"sys/block/nvme3n1/dev":             f("259:5"),
		"sys/block/nvme3n1/size":            f("2097152"),
		"sys/block/nvme3n1/device/model":    f(ebs),
		"sys/block/nvme3n1/device/serial":   f("vol0fedcba9876543210"),
		"sys/block/nvme3n1/holders":         dir,
		"sys/block/md127/dev":               f("9:127"),
		"sys/block/md127/size":              f("9765625000"),
		"sys/block/md127/holders/dm-0":      dir,
		"sys/block/dm-0/dev":                f("253:0"),
		"sys/block/dm-0/size":               f("9765592232"),
		"sys/block/dm-0/dm/name":            f("storecrypt"),
		"sys/block/dm-0/holders":            dir,
		"sys/block/loop0/dev":               f("7:0"),
		"sys/block/loop0/size":              f("0"),
		"proc/self/mountinfo": {Data: []byte(
			"23 1 259:1 / / rw,noatime shared:1 - xfs /dev/nvme0n1p1 rw,attr2\n" +
				"24 23 0:22 / /proc rw,nosuid shared:5 - proc proc rw\n" +
				"25 23 253:0 / /mnt/instance\\040store rw,noatime shared:9 - ext4 /dev/mapper/storecrypt rw\n")},
	}
}

func TestInstanceStore(t *testing.T) {
	disks, err := InstanceStore(i3enLike(), instanceStore)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, d := range disks {
		names = append(names, d.Name)
	}
	if !slices.Equal(names, []string{"nvme1n1", "nvme2n1"}) {
		t.Fatalf("got %v, want the two instance-store namespaces", names)
	}
	d := disks[0]
	if d.Path != "/dev/nvme1n1" || d.Model != instanceStore || d.Serial != "AWS1A2B3C4D5E6F7G8" || d.SizeBytes != 4882812500*512 {
		t.Errorf("got %+v", d)
	}
	if !slices.Equal(d.Holders, []string{"md127"}) || len(disks[1].Holders) != 0 {
		t.Errorf("holders %v and %v, want [md127] and none", d.Holders, disks[1].Holders)
	}
}

// TestInstanceStoreNeverReturnsEBSOrRoot: not even when the model asked for is EBS's.
func TestInstanceStoreNeverReturnsEBSOrRoot(t *testing.T) {
	for _, model := range []string{ebs, strings.ToUpper(ebs), "no such model"} {
		disks, err := InstanceStore(i3enLike(), model)
		if err != nil {
			t.Fatal(err)
		}
		if len(disks) != 0 {
			t.Errorf("model %q: got %v, want none", model, disks)
		}
	}
}

func TestInspect(t *testing.T) {
	fsys := i3enLike()
	root, err := Inspect(fsys, "nvme0n1")
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(root.Partitions, []string{"nvme0n1p1", "nvme0n1p128"}) || !slices.Equal(root.Mounts, []string{"/"}) {
		t.Errorf("root disk: partitions %v mounts %v, want two partitions and /", root.Partitions, root.Mounts)
	}
	dm, err := Inspect(fsys, "dm-0")
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(dm.Mounts, []string{"/mnt/instance store"}) {
		t.Errorf("dm-0 mounts %q, want the unescaped path", dm.Mounts)
	}
	if DMName(fsys, "dm-0") != "storecrypt" || DMName(fsys, "md127") != "" {
		t.Errorf("dm names: %q %q", DMName(fsys, "dm-0"), DMName(fsys, "md127"))
	}
	if _, err := Inspect(fsys, "sda"); !errors.Is(err, ErrNotBlockDevice) {
		t.Errorf("sda: got %v, want ErrNotBlockDevice", err)
	}
}

func TestUnescapeMount(t *testing.T) {
	for in, want := range map[string]string{`/a\040b`: "/a b", `/plain`: "/plain", `/tab\011x`: "/tab\tx", `/trail\04`: `/trail\04`} {
		if got := unescapeMount(in); got != want {
			t.Errorf("unescapeMount(%q) = %q, want %q", in, got, want)
		}
	}
}
