// Package vm boots the real-kernel test guest: a Debian kernel under QEMU software
// emulation with NVMe disks standing for instance store, virtio disks standing for the
// root and EBS volumes, and user-mode networking whose only ways out are forwards to
// emulators on the host's loopback. Commands run in the guest through vmexec.
package vm

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/storecrypt/storecrypt/test/vm/wire"
)

// Disk is one disk image attached to the guest.
type Disk struct {
	Path   string
	Serial string
}

// Config describes one guest.
type Config struct {
	NVMe     []Disk            // instance store
	Virtio   []Disk            // serial "root" is mounted as the root volume; others are left alone
	Forwards []wire.Forward    // the emulators
	Files    map[string]string // guest path -> host path, added to the initramfs
	// Tools are host programs added to the image (with their libraries); an image per set.
	Tools    []string
	MemoryMB int
	Log      io.Writer // the guest console; nil discards it
	// Systemd boots the root disk (serial "root", a copy of SystemdRoot's image) with
	// systemd as init instead of running the harness from the initramfs.
	Systemd bool
}

// Guest is a running test guest.
type Guest struct {
	cfg     Config
	image   string
	initrd  string
	ln      net.Listener
	cmd     *exec.Cmd
	exited  chan struct{}
	console *bytes.Buffer
	mu      sync.Mutex
	turn    *os.File // holds the machine-wide guest lock
	// Booted is the wall time from starting QEMU to the first command connection.
	Booted time.Duration
}

// HostIP is where the guest finds the harness and the emulators (see wire.HostIP).
const HostIP = wire.HostIP

// Start builds the per-run initramfs and boots the guest; it returns once vmexec has
// connected, so the first command runs at once. One guest runs on the machine at a
// time, across processes: `go test ./...` runs packages in parallel, and two guests
// emulated on two cores slow each other past their timeouts. Start waits for the guest
// before it to close.
func Start(ctx context.Context, cfg Config) (*Guest, error) {
	image, err := EnsureImage(ctx, cfg.Tools...)
	if err != nil {
		return nil, err
	}
	if cfg.MemoryMB == 0 {
		cfg.MemoryMB = 1024
	}
	g := &Guest{cfg: cfg, image: image}
	if g.initrd, err = initrd(ctx, image, cfg.Files); err != nil {
		return nil, err
	}
	if g.turn, err = oneAtATime(); err != nil {
		return nil, err
	}
	if err := g.boot(ctx); err != nil {
		g.Close()
		return nil, err
	}
	return g, nil
}

// oneAtATime takes the machine-wide guest lock (released when the file is closed).
func oneAtATime() (*os.File, error) {
	f, err := os.OpenFile(filepath.Join(os.TempDir(), "storecrypt-qemu.lock"), os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return nil, fmt.Errorf("opening the guest lock: %w", err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX); err != nil {
		f.Close()
		return nil, fmt.Errorf("waiting for the guest lock: %w", err)
	}
	return f, nil
}

// Available reports what is missing to boot the guest; `make deps` installs it.
func Available() error {
	var missing []string
	for _, tool := range []string{"qemu-system-x86_64", "busybox", "cpio", "cryptsetup", "mdadm", "blkid",
		"mkfs.ext4", "mkfs.xfs", "depmod", "apt-get", "dpkg-deb", "mmdebstrap"} {
		if _, err := exec.LookPath(tool); err != nil {
			missing = append(missing, tool)
		}
	}
	if len(missing) > 0 {
		return fmt.Errorf("missing %s (run `make deps` as root on Debian or Ubuntu)", strings.Join(missing, ", "))
	}
	return nil
}

// EnsureImage returns the folder with the cached kernel (uncompressed) and base initramfs, building
// them on first use; extra tools make a separate image.
func EnsureImage(ctx context.Context, tools ...string) (string, error) {
	dir, err := cacheDir()
	if err != nil {
		return "", err
	}
	if len(tools) > 0 {
		dir += "-" + strings.Join(tools, "-")
	}
	// The image is rebuilt when the scripts that make it change.
	h := sha256.New()
	for _, f := range []string{"build-guest.sh", "init.sh"} {
		b, err := os.ReadFile(filepath.Join(sourceDir(), f))
		if err != nil {
			return "", err
		}
		h.Write(b)
	}
	dir += "-" + hex.EncodeToString(h.Sum(nil))[:12]
	script := filepath.Join(sourceDir(), "build-guest.sh")
	cmd := exec.CommandContext(ctx, "bash", script, dir)
	cmd.Env = append(os.Environ(), "EXTRA_TOOLS="+strings.Join(tools, " "))
	cmd.Stderr = os.Stderr
	if err := cmd.Run(); err != nil {
		return "", fmt.Errorf("building the test guest image: %w", err)
	}
	return dir, keep(dir)
}

// SystemdRoot returns the cached root disk image of the systemd guest, building it on
// first use (build-systemd-root.sh); a test boots a copy of it.
func SystemdRoot(ctx context.Context) (string, error) {
	dir, err := cacheDir()
	if err != nil {
		return "", err
	}
	h := sha256.New()
	for _, f := range []string{"build-systemd-root.sh", "systemd/guest-net.service", "systemd/vmexec.service", "systemd/containerd.service"} {
		b, err := os.ReadFile(filepath.Join(sourceDir(), f))
		if err != nil {
			return "", err
		}
		h.Write(b)
	}
	dir += "-systemd-" + hex.EncodeToString(h.Sum(nil))[:12]
	cmd := exec.CommandContext(ctx, "bash", filepath.Join(sourceDir(), "build-systemd-root.sh"), dir)
	cmd.Stderr = os.Stderr
	if err := cmd.Run(); err != nil {
		return "", fmt.Errorf("building the systemd guest's root: %w", err)
	}
	return filepath.Join(dir, "root.img"), keep(dir)
}

// cacheDir is where the guest images are kept: STORECRYPT_VM_CACHE, else the user's cache
// directory, where Go keeps its build cache too. Each image is keyed by the sources that
// build it, so a fresh clone on a machine that built them before boots at once instead of
// spending minutes on Debian's packages (the systemd root alone takes minutes), and a
// changed script builds a new one beside it.
func cacheDir() (string, error) {
	if dir := os.Getenv("STORECRYPT_VM_CACHE"); dir != "" {
		return dir, nil
	}
	dir, err := os.UserCacheDir()
	if err != nil {
		return "", fmt.Errorf("no cache directory for the guest images (set STORECRYPT_VM_CACHE): %w", err)
	}
	return filepath.Join(dir, "storecrypt", "vm"), nil
}

// keep marks the image in dir as used now, and removes the images beside it (other
// versions of the scripts) that no run has used for a week: each is tens or hundreds of MB.
func keep(dir string) error {
	now := time.Now()
	if err := os.Chtimes(dir, now, now); err != nil {
		return err
	}
	root, err := cacheDir()
	if err != nil {
		return err
	}
	others, _ := filepath.Glob(root + "-*")
	for _, o := range others {
		if st, err := os.Stat(o); err == nil && o != dir && now.Sub(st.ModTime()) > 7*24*time.Hour {
			os.RemoveAll(o)
		}
	}
	return nil
}

func sourceDir() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Dir(file)
}

// initrd returns the image's initramfs with vmexec and files added, built once for each
// content of theirs and kept beside the image: building it (vmexec linked, the agent
// compressed) takes seconds, and the suite boots dozens of guests alike, in several
// packages. Versions unused for a day are removed.
func initrd(ctx context.Context, image string, files map[string]string) (string, error) {
	initrdMu.Lock()
	defer initrdMu.Unlock()
	// vmexec is keyed by its source, so that a hit costs no build.
	h := sha256.New()
	sources, err := filepath.Glob(filepath.Join(sourceDir(), "*", "*.go"))
	if err != nil {
		return "", err
	}
	guestPaths := slices.Sorted(maps.Keys(files))
	for _, f := range append(sources, guestPaths...) {
		hostPath := f
		if host, ok := files[f]; ok {
			hostPath = host
		}
		b, err := os.ReadFile(hostPath)
		if err != nil {
			return "", err
		}
		fmt.Fprintf(h, "%s %d\n", f, len(b))
		h.Write(b)
	}
	path := filepath.Join(image, "initrd-"+hex.EncodeToString(h.Sum(nil))[:16]+".cpio")
	if _, err := os.Stat(path); err == nil {
		now := time.Now()
		return path, os.Chtimes(path, now, now)
	}
	prune(image)
	tree, err := os.MkdirTemp("", "storecrypt-vm-")
	if err != nil {
		return "", err
	}
	defer os.RemoveAll(tree)
	if err := os.MkdirAll(filepath.Join(tree, "sbin"), 0o755); err != nil {
		return "", err
	}
	build := exec.CommandContext(ctx, "go", "build", "-trimpath", "-o", filepath.Join(tree, "sbin", "vmexec"), "./vmexec")
	build.Dir = sourceDir()
	build.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS=linux", "GOARCH=amd64")
	if out, err := build.CombinedOutput(); err != nil {
		return "", fmt.Errorf("building vmexec: %w: %s", err, out)
	}
	if err := buildInitrd(ctx, image, tree, files, path); err != nil {
		return "", err
	}
	return path, nil
}

// initrdMu keeps a process from building the same initramfs twice at once.
var initrdMu sync.Mutex

// prune removes the initramfs versions no guest started from for a day.
func prune(image string) {
	old, _ := filepath.Glob(filepath.Join(image, "initrd-*.cpio"))
	for _, p := range old {
		if st, err := os.Stat(p); err == nil && time.Since(st.ModTime()) > 24*time.Hour {
			os.Remove(p)
		}
	}
}

// buildInitrd appends the overlay tree (vmexec) and files to the base initramfs as a
// second cpio archive, which the kernel unpacks over the first, into path.
func buildInitrd(ctx context.Context, image, tree string, files map[string]string, path string) error {
	for guestPath, hostPath := range files {
		dst := filepath.Join(tree, guestPath)
		if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
			return err
		}
		if err := copyFile(hostPath, dst); err != nil {
			return err
		}
	}
	pack := exec.CommandContext(ctx, "sh", "-c", "find . | cpio -o -H newc --quiet")
	pack.Dir = tree
	overlay, err := pack.Output()
	if err != nil {
		return fmt.Errorf("packing the initramfs overlay: %w", err)
	}
	base, err := os.ReadFile(filepath.Join(image, "initrd.cpio"))
	if err != nil {
		return err
	}
	// The kernel unpacks concatenated archives; cpio pads each to 512 bytes, so the
	// second starts on a fresh magic. Neither is compressed: the guest would inflate it
	// emulated, at every boot.
	var buf bytes.Buffer
	buf.Write(base)
	buf.Write(overlay)
	// Another package's test may be starting a guest from the same file: it appears whole.
	tmp := path + ".tmp" + strconv.Itoa(os.Getpid())
	if err := os.WriteFile(tmp, buf.Bytes(), 0o644); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}

func copyFile(src, dst string) error {
	data, err := os.ReadFile(src)
	if err != nil {
		return err
	}
	return os.WriteFile(dst, data, 0o755)
}

func (g *Guest) boot(ctx context.Context) error {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	g.ln = ln
	relay, err := exec.LookPath("busybox")
	if err != nil {
		return fmt.Errorf("busybox (apt-get install busybox-static) relays guest connections: %w", err)
	}
	fwds := append([]wire.Forward{{GuestPort: wire.HarnessPort, HostAddr: ln.Addr().String()}}, g.cfg.Forwards...)
	netdev := "user,id=n0,restrict=on,net=" + wire.GuestNet + ",host=169.254.169.2"
	for _, f := range fwds {
		ip := f.GuestIP
		if ip == "" {
			ip = HostIP
		}
		host, port, err := net.SplitHostPort(f.HostAddr)
		if err != nil {
			return fmt.Errorf("forward %s: %w", f.HostAddr, err)
		}
		// A cmd: forward runs one relay per guest connection; a plain tcp: chardev would be
		// one shared connection, which breaks HTTP clients that open several.
		netdev += fmt.Sprintf(",guestfwd=tcp:%s:%d-cmd:%s nc %s %s", ip, f.GuestPort, relay, host, port)
	}
	cmdline := "console=ttyS0 quiet panic=-1"
	if g.cfg.Systemd {
		// eth0 as in the busybox guest; the journal, not the console, keeps systemd's lines.
		cmdline += " storecrypt.systemd net.ifnames=0 systemd.show_status=0"
	}
	args := []string{
		"-accel", "tcg,thread=multi", "-smp", "2", "-cpu", "max",
		"-m", strconv.Itoa(g.cfg.MemoryMB), "-nographic", "-no-reboot",
		// qboot instead of SeaBIOS, and no VGA card: the guest is booted by -kernel and
		// talks on the serial console, so a PC BIOS and a display are emulated for nothing.
		"-bios", "qboot.rom", "-vga", "none",
		"-kernel", filepath.Join(g.image, "vmlinux"), "-initrd", g.initrd,
		"-append", cmdline,
		"-netdev", netdev, "-device", "virtio-net-pci,netdev=n0",
	}
	for i, d := range g.cfg.NVMe {
		args = append(args, "-drive", fmt.Sprintf("file=%s,if=none,id=nv%d,format=raw", d.Path, i),
			"-device", fmt.Sprintf("nvme,serial=%s,drive=nv%d", d.Serial, i))
	}
	for i, d := range g.cfg.Virtio {
		args = append(args, "-drive", fmt.Sprintf("file=%s,if=none,id=vd%d,format=raw", d.Path, i),
			"-device", fmt.Sprintf("virtio-blk-pci,serial=%s,drive=vd%d", d.Serial, i))
	}
	g.console = &bytes.Buffer{}
	var console io.Writer = &lockedWriter{mu: &g.mu, w: g.console}
	if g.cfg.Log != nil {
		console = io.MultiWriter(console, g.cfg.Log)
	}
	g.cmd = exec.Command("qemu-system-x86_64", args...)
	g.cmd.Stdout = console
	g.cmd.Stderr = console
	g.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	start := time.Now()
	if err := g.cmd.Start(); err != nil {
		return fmt.Errorf("starting qemu (apt-get install qemu-system-x86): %w", err)
	}
	g.exited = make(chan struct{})
	go func() { _ = g.cmd.Wait(); close(g.exited) }()
	if _, err := g.Run(ctx, []string{"true"}, nil); err != nil {
		g.Kill()
		return fmt.Errorf("guest did not come up: %w\nconsole:\n%s", err, g.Console())
	}
	g.Booted = time.Since(start)
	return nil
}

type lockedWriter struct {
	mu *sync.Mutex
	w  io.Writer
}

func (l *lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

// Console returns what the guest printed on its serial console so far.
func (g *Guest) Console() string {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.console.String()
}

// Result is a finished guest command.
type Result struct {
	Code   int
	Stdout string
	Stderr string
}

// Cmd is one command for the guest.
type Cmd struct {
	Argv  []string
	Env   []string
	Stdin []byte
	// OnStderr sees stderr as it arrives, for tests that act at a given progress line.
	OnStderr func(chunk string)
}

// Run runs argv in the guest and waits for it.
func (g *Guest) Run(ctx context.Context, argv []string, env []string) (Result, error) {
	return g.Exec(ctx, Cmd{Argv: argv, Env: env})
}

// Exec runs c in the guest and waits for it. An error means the command's fate is unknown
// (the guest died or the context ended), never that it exited non-zero.
func (g *Guest) Exec(ctx context.Context, c Cmd) (Result, error) {
	conn, err := g.accept(ctx)
	if err != nil {
		return Result{}, err
	}
	defer conn.Close()
	stop := context.AfterFunc(ctx, func() { conn.Close() })
	defer stop()
	if err := json.NewEncoder(conn).Encode(wire.Request{Argv: c.Argv, Env: c.Env, Stdin: c.Stdin}); err != nil {
		return Result{}, fmt.Errorf("sending %q: %w", c.Argv, err)
	}
	var out, errb strings.Builder
	for {
		kind, p, err := wire.ReadFrame(conn)
		if err != nil {
			if ctx.Err() != nil {
				err = ctx.Err()
			}
			return Result{Stdout: out.String(), Stderr: errb.String()}, fmt.Errorf("running %q: %w", c.Argv, err)
		}
		switch kind {
		case wire.Stdout:
			out.Write(p)
		case wire.Stderr:
			errb.Write(p)
			if c.OnStderr != nil {
				c.OnStderr(string(p))
			}
		case wire.Exit:
			code, err := strconv.Atoi(string(p))
			return Result{Code: code, Stdout: out.String(), Stderr: errb.String()}, err
		}
	}
}

func (g *Guest) accept(ctx context.Context) (net.Conn, error) {
	type accepted struct {
		c   net.Conn
		err error
	}
	ch := make(chan accepted, 1)
	go func() {
		c, err := g.ln.Accept()
		ch <- accepted{c, err}
	}()
	select {
	case a := <-ch:
		return a.c, a.err
	case <-g.exited:
		return nil, errors.New("the guest has stopped")
	case <-ctx.Done():
		_ = g.ln.(*net.TCPListener).SetDeadline(time.Now())
		a := <-ch
		_ = g.ln.(*net.TCPListener).SetDeadline(time.Time{})
		if a.err == nil {
			return a.c, nil
		}
		return nil, ctx.Err()
	}
}

// Kill stops the guest at once, like pulling the power cord: what the guest had not
// written to its disks is lost.
func (g *Guest) Kill() {
	if g.cmd != nil && g.cmd.Process != nil {
		_ = syscall.Kill(-g.cmd.Process.Pid, syscall.SIGKILL)
		<-g.exited
	}
	if g.ln != nil {
		g.ln.Close()
	}
}

// Reboot syncs the guest's disks, stops it, and boots it again on the same disk images;
// the kernel, device-mapper tables and every mount start anew, as after a reboot.
func (g *Guest) Reboot(ctx context.Context) error {
	if _, err := g.Run(ctx, []string{"sync"}, nil); err != nil {
		return err
	}
	g.Kill()
	return g.boot(ctx)
}

// Shutdown powers the guest off as an operator would (systemctl poweroff): units stop in
// order and filesystems unmount. It falls back to Kill after a minute.
func (g *Guest) Shutdown(ctx context.Context) error {
	if _, err := g.Run(ctx, []string{"systemctl", "poweroff", "--no-block"}, nil); err != nil {
		return err
	}
	select {
	case <-g.exited:
	case <-time.After(time.Minute):
		g.Kill()
		return fmt.Errorf("the guest did not power off within a minute\nconsole:\n%s", g.Console())
	case <-ctx.Done():
		g.Kill()
		return ctx.Err()
	}
	g.Kill()
	return nil
}

// Restart boots the guest again on the same disk images after Shutdown or Kill.
func (g *Guest) Restart(ctx context.Context) error { return g.boot(ctx) }

// Close stops the guest and lets the next guest start.
func (g *Guest) Close() {
	g.Kill()
	if g.turn != nil {
		g.turn.Close()
		g.turn = nil
	}
}
