package vm_test

import (
	"context"
	"os"
	"testing"
	"time"
	"os/exec"
	"path/filepath"

	"github.com/storecrypt/storecrypt/test/vm"
)

func TestBootSmoke(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	dir := t.TempDir()
	var disks []vm.Disk
	for _, n := range []string{"IS0", "IS1"} {
		p := filepath.Join(dir, n)
		os.WriteFile(p, nil, 0o644); os.Truncate(p, 64<<20)
		disks = append(disks, vm.Disk{Path: p, Serial: n})
	}
	root := filepath.Join(dir, "root"); os.WriteFile(root, nil, 0o644); os.Truncate(root, 32<<20)
	exec.Command("mkfs.ext4", "-q", root).Run()
	g, err := vm.Start(ctx, vm.Config{NVMe: disks, Virtio: []vm.Disk{{Path: root, Serial: "root"}}, Files: map[string]string{"/usr/local/bin/storecrypt-agent": "/tmp/agent"}})
	if err != nil { t.Fatal(err) }
	defer g.Close()
	t.Logf("booted in %v", g.Booted)
	r, err := g.Run(ctx, []string{"sh", "-c", os.Getenv("SMOKE")}, nil)
	t.Logf("%v\n%s\n%s", err, r.Stdout, r.Stderr)
}
