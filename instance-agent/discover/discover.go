// Package discover finds the instance-store NVMe namespaces of an EC2 instance and what
// each is doing (size, partitions, holders, mounts), reading /sys and /proc through an
// fs.FS rooted at "/" so that tests run on fixture trees of real sysfs layouts.
//
// Like the EKS AMI's local-disk setup, it goes by the NVMe controller's model string:
// instance store reads "Amazon EC2 NVMe Instance Storage", EBS "Amazon Elastic Block
// Store". Device names are not stable across boots; the model is.
package discover

import (
	"bufio"
	"errors"
	"fmt"
	"io/fs"
	"path"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
)

// Disk is one block device and what holds or uses it.
type Disk struct {
	Name       string   `json:"name"` // nvme1n1
	Path       string   `json:"path"` // /dev/nvme1n1
	Model      string   `json:"model"`
	Serial     string   `json:"serial"`
	SizeBytes  int64    `json:"size_bytes"`
	Dev        string   `json:"-"` // major:minor
	Partitions []string `json:"partitions,omitempty"`
	Holders    []string `json:"holders,omitempty"` // kernel names: md127, dm-0
	Mounts     []string `json:"mounts,omitempty"`  // where the disk or a partition is mounted
}

// nvmeNamespace matches namespace block devices; nvme0c0n1-style paths of native
// multipath are hidden controllers' views and partitions live below the disk.
var nvmeNamespace = regexp.MustCompile(`^nvme[0-9]+n[0-9]+$`)

// IsEBS reports whether a controller model is EBS's: such a disk is never instance
// store, whatever model a caller asked for.
func IsEBS(model string) bool {
	return strings.Contains(strings.ToLower(model), "elastic block store")
}

// InstanceStore returns the NVMe namespaces whose controller model is model, in name
// order. An EBS volume is never returned, even for a model that names EBS.
func InstanceStore(fsys fs.FS, model string) ([]Disk, error) {
	entries, err := fs.ReadDir(fsys, "sys/block")
	if err != nil {
		return nil, fmt.Errorf("listing block devices: %w", err)
	}
	mounts, err := readMounts(fsys)
	if err != nil {
		return nil, err
	}
	var disks []Disk
	for _, e := range entries {
		if !nvmeNamespace.MatchString(e.Name()) {
			continue
		}
		d, err := inspect(fsys, e.Name(), mounts)
		if err != nil {
			return nil, err
		}
		if d.Model == model && !IsEBS(d.Model) {
			disks = append(disks, d)
		}
	}
	sort.Slice(disks, func(i, j int) bool { return disks[i].Name < disks[j].Name })
	return disks, nil
}

// Inspect returns what sysfs says of the block device name (a kernel name, no /dev/).
func Inspect(fsys fs.FS, name string) (Disk, error) {
	mounts, err := readMounts(fsys)
	if err != nil {
		return Disk{}, err
	}
	return inspect(fsys, name, mounts)
}

// ErrNotBlockDevice is returned by Inspect for a name that sysfs does not list as a disk.
var ErrNotBlockDevice = errors.New("not a whole-disk block device")

func inspect(fsys fs.FS, name string, mounts map[string][]string) (Disk, error) {
	dir := path.Join("sys/block", name)
	if _, err := fs.Stat(fsys, dir); err != nil {
		return Disk{}, fmt.Errorf("%s: %w", name, ErrNotBlockDevice)
	}
	d := Disk{Name: name, Path: "/dev/" + name}
	d.Model = readTrimmed(fsys, path.Join(dir, "device/model"))
	d.Serial = readTrimmed(fsys, path.Join(dir, "device/serial"))
	d.Dev = readTrimmed(fsys, path.Join(dir, "dev"))
	sectors, err := strconv.ParseInt(readTrimmed(fsys, path.Join(dir, "size")), 10, 64)
	if err != nil {
		return Disk{}, fmt.Errorf("reading the size of %s: %w", name, err)
	}
	// sysfs counts 512-byte sectors whatever the device's logical block size.
	d.SizeBytes = sectors * 512
	d.Mounts = append(d.Mounts, mounts[d.Dev]...)
	entries, err := fs.ReadDir(fsys, dir)
	if err != nil {
		return Disk{}, fmt.Errorf("reading %s: %w", dir, err)
	}
	for _, e := range entries {
		if strings.HasPrefix(e.Name(), name) {
			d.Partitions = append(d.Partitions, e.Name())
			d.Mounts = append(d.Mounts, mounts[readTrimmed(fsys, path.Join(dir, e.Name(), "dev"))]...)
		}
	}
	holders, err := fs.ReadDir(fsys, path.Join(dir, "holders"))
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return Disk{}, fmt.Errorf("reading the holders of %s: %w", name, err)
	}
	for _, h := range holders {
		d.Holders = append(d.Holders, h.Name())
	}
	return d, nil
}

// DMName returns the device-mapper name of a dm-N holder, or "" when it has none.
func DMName(fsys fs.FS, kernelName string) string {
	return readTrimmed(fsys, path.Join("sys/block", kernelName, "dm/name"))
}

func readTrimmed(fsys fs.FS, name string) string {
	b, err := fs.ReadFile(fsys, name)
	if err != nil {
		return ""
	}
	return strings.TrimSpace(string(b))
}

// Mount is one line of proc/self/mountinfo.
type Mount struct {
	Dev    string // major:minor of the filesystem
	Root   string // the directory of the filesystem mounted here (a bind mount's source)
	Point  string // where it is mounted
	Source string // the device or name it was mounted from
}

// Mounts reads proc/self/mountinfo (proc(5)).
func Mounts(fsys fs.FS) ([]Mount, error) {
	f, err := fsys.Open("proc/self/mountinfo")
	if err != nil {
		return nil, fmt.Errorf("reading mounts: %w", err)
	}
	defer f.Close()
	var mounts []Mount
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		// 36 35 98:0 /mnt1 /mnt2 rw,noatime master:1 - ext3 /dev/root rw
		fields := strings.Fields(sc.Text())
		sep := slices.Index(fields, "-")
		if len(fields) < 5 || sep < 0 || sep+2 >= len(fields) {
			continue
		}
		mounts = append(mounts, Mount{Dev: fields[2], Root: unescapeMount(fields[3]), Point: unescapeMount(fields[4]), Source: unescapeMount(fields[sep+2])})
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("reading mounts: %w", err)
	}
	return mounts, nil
}

// readMounts maps major:minor to mount points.
func readMounts(fsys fs.FS) (map[string][]string, error) {
	all, err := Mounts(fsys)
	if err != nil {
		return nil, err
	}
	mounts := map[string][]string{}
	for _, m := range all {
		mounts[m.Dev] = append(mounts[m.Dev], m.Point)
	}
	return mounts, nil
}

// unescapeMount undoes mountinfo's octal escapes (\040 for a space).
func unescapeMount(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+4 <= len(s) {
			if n, err := strconv.ParseUint(s[i+1:i+4], 8, 8); err == nil {
				b.WriteByte(byte(n))
				i += 3
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}
