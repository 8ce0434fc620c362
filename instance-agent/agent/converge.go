package agent

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"

	"github.com/storecrypt/storecrypt/instance-agent/atomicfile"
	"github.com/storecrypt/storecrypt/instance-agent/bootunit"
	"github.com/storecrypt/storecrypt/instance-agent/discover"
	"github.com/storecrypt/storecrypt/instance-agent/filesystem"
	"github.com/storecrypt/storecrypt/instance-agent/keysource"
	"github.com/storecrypt/storecrypt/instance-agent/luks"
	"github.com/storecrypt/storecrypt/instance-agent/probe"
	"github.com/storecrypt/storecrypt/instance-agent/raid"
	"github.com/storecrypt/storecrypt/instance-agent/sysexec"
	"github.com/storecrypt/storecrypt/internal/contract"
)

// mapperPath is where the opened volume appears.
var mapperPath = "/dev/mapper/" + contract.MapperName

// vol is the device that carries (or will carry) the LUKS2 header.
type vol struct {
	Path      string // /dev/nvme1n1 or /dev/md127
	Name      string // kernel name in /sys/block
	SizeBytes int64
}

// converge classifies the disks, refuses what is not ours, and then provisions, opens or
// leaves alone.
func (r *run) converge(disks []discover.Disk) error {
	sigs := make([]probe.Signature, len(disks))
	for i, d := range disks {
		s, err := probe.Device(r.ctx, r.Run, d.Path)
		if err != nil {
			return err
		}
		sigs[i] = s
		r.rep.Devices[i].Found = s.What()
		if len(d.Mounts) > 0 {
			return &RefusedError{Device: d.Path, Reason: "is mounted at " + strings.Join(d.Mounts, ", ")}
		}
		if len(d.Partitions) > 0 {
			return &RefusedError{Device: d.Path, Reason: "has partitions (" + strings.Join(d.Partitions, ", ") + ")"}
		}
	}
	r.layout = &contract.Layout{MountPoint: r.o.MountPoint}
	r.rep.Layout = r.layout

	if len(disks) == 1 {
		d, s := disks[0], sigs[0]
		for _, h := range d.Holders {
			if discover.DMName(r.fsys, h) != contract.MapperName {
				return &RefusedError{Device: d.Path, Reason: "is held by " + h}
			}
		}
		v := vol{Path: d.Path, Name: d.Name, SizeBytes: d.SizeBytes}
		if s.Blank() {
			return r.fresh(v, nil)
		}
		return r.existing(v, s)
	}

	members, blanks := 0, 0
	for i, d := range disks {
		switch s := sigs[i]; {
		case s.Blank():
			if len(d.Holders) > 0 {
				return &RefusedError{Device: d.Path, Reason: "is held by " + strings.Join(d.Holders, ", ")}
			}
			blanks++
		case s.Type == raid.MemberType && s.Label == raid.MemberLabel(contract.ArrayName):
			members++
		default:
			return &RefusedError{Device: d.Path, Reason: "holds " + s.What()}
		}
	}
	switch {
	case blanks == len(disks):
		return r.fresh(vol{}, disks)
	case members == len(disks):
		v, err := r.assemble(disks)
		if err != nil || v.Path == "" {
			return err
		}
		s, err := probe.Device(r.ctx, r.Run, v.Path)
		if err != nil {
			return err
		}
		if s.Blank() {
			// mdadm --create finished but luksFormat never ran: nothing of a user's exists.
			return r.fresh(v, nil)
		}
		return r.existing(v, s)
	default:
		return &RefusedError{Device: disks[0].Path, Reason: fmt.Sprintf("is one of %d disks of which %d are storecrypt RAID members and %d are blank; a partial array is not safe to guess at", len(disks), members, blanks)}
	}
}

// assemble finds the running array of our members, or starts it.
func (r *run) assemble(disks []discover.Disk) (vol, error) {
	if v, ok := r.arrayOf(disks[0].Name); ok {
		r.layout.RAID = v.Path
		return v, nil
	}
	paths := diskPaths(disks)
	if err := r.act("raid-assemble", "assemble the RAID0 array from "+strings.Join(paths, " "), func() error {
		return r.md.Assemble(r.ctx, contract.ArrayName, paths)
	}); err != nil {
		return vol{}, err
	}
	if r.dry() {
		r.note("the array is not running; the plan after assembling depends on what it holds")
		return vol{}, nil
	}
	v, ok := r.arrayOf(disks[0].Name)
	if !ok {
		return vol{}, fmt.Errorf("assembling the array: %s has no md holder afterwards", disks[0].Path)
	}
	r.layout.RAID = v.Path
	return v, nil
}

// arrayOf returns the md array that holds the disk named name.
func (r *run) arrayOf(name string) (vol, bool) {
	d, err := discover.Inspect(r.fsys, name)
	if err != nil {
		return vol{}, false
	}
	for _, h := range d.Holders {
		if strings.HasPrefix(h, "md") {
			md, err := discover.Inspect(r.fsys, h)
			if err != nil {
				return vol{}, false
			}
			return vol{Path: md.Path, Name: md.Name, SizeBytes: md.SizeBytes}, true
		}
	}
	return vol{}, false
}

func diskPaths(disks []discover.Disk) []string {
	paths := make([]string, len(disks))
	for i, d := range disks {
		paths[i] = d.Path
	}
	return paths
}

// fresh provisions blank disks: the key first (so that a key failure writes nothing),
// then the array when there are several disks, then the volume.
func (r *run) fresh(v vol, disks []discover.Disk) error {
	switch r.mode {
	case modeUnlock:
		r.note("the instance store is blank (new after a stop/start): nothing to unlock; apply provisions it")
		return nil
	case modeStatus:
		r.note("the instance store is blank: not provisioned yet")
		return nil
	}
	uuid := r.NewUUID()
	key, err := r.newKey(uuid)
	if err != nil {
		return err
	}
	defer key.Zero()
	if disks != nil {
		paths := diskPaths(disks)
		if err := r.act("raid-create", fmt.Sprintf("stripe %d disks into RAID0 /dev/md/%s", len(disks), contract.ArrayName), func() error {
			return r.md.Create(r.ctx, contract.ArrayName, paths)
		}); err != nil {
			return err
		}
		if r.dry() {
			v = vol{Path: "/dev/md/" + contract.ArrayName, SizeBytes: sumSizes(disks)}
		} else {
			var ok bool
			if v, ok = r.arrayOf(disks[0].Name); !ok {
				return fmt.Errorf("creating the array: %s has no md holder afterwards", disks[0].Path)
			}
		}
		r.layout.RAID = v.Path
	}
	return r.provision(v, uuid, &key)
}

func sumSizes(disks []discover.Disk) int64 {
	var n int64
	for _, d := range disks {
		n += d.SizeBytes
	}
	return n
}

func (r *run) newKey(uuid string) (keysource.Key, error) {
	if r.dry() {
		return keysource.Key{Token: keysource.Token{KeySource: r.o.KeySource}, FullEntropy: r.o.KeySource != contract.KeySourceS3KMS}, nil
	}
	keys, err := r.getKeys(r.o.KeySource)
	if err != nil {
		return keysource.Key{}, err
	}
	v, err := r.volume(uuid, r.o.KeySource)
	if err != nil {
		return keysource.Key{}, err
	}
	var key keysource.Key
	err = r.inspect("key", func() (string, error) {
		var err error
		key, err = keys.New(r.ctx, r.o, v)
		if err != nil {
			return "", err
		}
		return "new " + r.o.KeySource + " key" + keyIDSuffix(key.Token.KeyID), nil
	})
	return key, err
}

func keyIDSuffix(id string) string {
	if id == "" {
		return ""
	}
	return " from " + id
}

// existing handles a volume device that has a signature: ours is opened (or, when it
// provably holds no user data, formatted again); anything else is refused.
func (r *run) existing(v vol, s probe.Signature) error {
	r.layout.Volume = v.Path
	if s.Type != "crypto_LUKS" || s.Label != contract.VolumeLabel {
		return &RefusedError{Device: v.Path, Reason: "holds " + s.What() + ", which storecrypt did not write"}
	}
	r.layout.LUKSUUID = s.UUID
	r.layout.State = s.Subsystem
	meta, err := r.cs.Dump(r.ctx, v.Path)
	if err != nil {
		return err
	}
	r.describe(meta)
	var tok *keysource.Token
	if raw := meta.TokenOfType(contract.TokenType); raw != nil {
		t, err := keysource.ParseToken(raw)
		if err != nil {
			return err
		}
		tok = &t
		r.layout.KeySource, r.layout.KeyID, r.layout.Secret = t.KeySource, t.KeyID, t.Secret
	}
	switch s.Subsystem {
	case contract.StateProvisioning:
		if r.mode != modeApply && r.mode != modePlan {
			r.note("%s was being provisioned when an earlier apply stopped; apply finishes it", v.Path)
			return nil
		}
		r.note("%s: an earlier apply stopped before the filesystem was ready, so it holds no user data; formatting it again", v.Path)
		return r.reprovision(v)
	case contract.StateReady:
		if tok == nil {
			return fmt.Errorf("%s is a ready storecrypt volume without a storecrypt token", v.Path)
		}
		return r.openAndMount(v, *tok)
	default:
		return &RefusedError{Device: v.Path, Reason: fmt.Sprintf("is a storecrypt volume in unknown state %q", s.Subsystem)}
	}
}

func (r *run) describe(meta luks.Metadata) {
	if seg, ok := meta.Segments["0"]; ok {
		r.layout.Cipher = seg.Encryption
		r.layout.SectorSize = seg.SectorSize
		r.layout.KeySizeBits = luks.KeySizeBits
	}
	r.layout.Flags = meta.Config.Flags
}

// reprovision formats one of our volumes again, closing a mapping a killed run left.
func (r *run) reprovision(v vol) error {
	uuid := r.NewUUID()
	key, err := r.newKey(uuid)
	if err != nil {
		return err
	}
	defer key.Zero()
	if r.openMapping(v) != "" {
		if err := r.act("luks-close", "close the mapping an interrupted run left open", func() error {
			return r.cs.Close(r.ctx, contract.MapperName)
		}); err != nil {
			return err
		}
	}
	return r.provision(v, uuid, &key)
}

// provision formats v with key, stores the token, opens it, makes the filesystem, marks
// it ready, mounts it and installs the boot unit.
func (r *run) provision(v vol, uuid string, key *keysource.Key) error {
	r.layout.Volume = v.Path
	r.layout.LUKSUUID = uuid
	r.layout.Cipher, r.layout.KeySizeBits = luks.Cipher, luks.KeySizeBits
	r.layout.KeySource, r.layout.KeyID, r.layout.Secret = key.Token.KeySource, key.Token.KeyID, key.Token.Secret
	// 4K sectors halve dm-crypt's per-I/O work against 512-byte ones; NVMe sizes are always
	// a multiple of 4 KiB, but an odd-sized device falls back to cryptsetup's default.
	if v.SizeBytes%4096 == 0 {
		r.layout.SectorSize = 4096
	}
	opts := luks.FormatOptions{UUID: uuid, Label: contract.VolumeLabel, Subsystem: contract.StateProvisioning,
		SectorSize: r.layout.SectorSize, FastKDF: key.FullEntropy}
	if err := r.act("luks-format", "format "+v.Path+" as LUKS2 "+luks.Cipher, func() error {
		return r.cs.Format(r.ctx, v.Path, opts, key.Secret)
	}); err != nil {
		return err
	}
	if err := r.act("luks-token", "store the "+key.Token.KeySource+" token in the header", func() error {
		return r.cs.ImportToken(r.ctx, v.Path, key.Token.JSON(), true)
	}); err != nil {
		return err
	}
	open := luks.OpenOptions{Discard: r.o.Discard, Workqueue: !r.perf, Persist: true}
	if err := r.act("luks-open", "open "+v.Path+" as "+mapperPath+flagWords(open), func() error {
		return r.cs.Open(r.ctx, v.Path, contract.MapperName, key.Secret, open)
	}); err != nil {
		return err
	}
	key.Zero()
	r.layout.Mapper, r.layout.Open, r.layout.Flags = mapperPath, !r.dry(), open.HeaderFlags()
	if r.o.Wipe {
		if err := r.act("wipe", "zero-fill "+mapperPath+" (--wipe)", func() error {
			return wipe(r.ctx, filepath.Join(r.Root, mapperPath), r.Progress)
		}); err != nil {
			return err
		}
	}
	if err := r.act("mkfs", "make "+r.o.Filesystem+" on "+mapperPath, func() error {
		return filesystem.Make(r.ctx, r.Run, r.o.Filesystem, mapperPath, contract.VolumeLabel)
	}); err != nil {
		return err
	}
	if err := r.act("mark-ready", "mark the volume ready in its header", func() error {
		return r.cs.SetLabels(r.ctx, v.Path, contract.VolumeLabel, contract.StateReady)
	}); err != nil {
		return err
	}
	r.layout.State = contract.StateReady
	r.layout.Filesystem = r.o.Filesystem
	if err := r.mount(v, r.o.Filesystem); err != nil {
		return err
	}
	return r.installBoot(key.Token.KeySource)
}

func flagWords(o luks.OpenOptions) string {
	var w []string
	if o.Discard {
		w = append(w, "discards")
	}
	if !o.Workqueue {
		w = append(w, "no workqueues")
	}
	if len(w) == 0 {
		return ""
	}
	return " (" + strings.Join(w, ", ") + ", persisted)"
}

// openAndMount opens a ready volume with its token's key and mounts it.
func (r *run) openAndMount(v vol, tok keysource.Token) error {
	if r.openMapping(v) == "" {
		if tok.KeySource == contract.KeySourceEphemeral {
			if r.mode == modeUnlock || r.mode == modeStatus {
				return keysource.ErrEphemeral
			}
			r.note("%s had an ephemeral key, which a reboot discards by design; formatting it anew", v.Path)
			return r.reprovision(v)
		}
		if r.mode == modeApply && tok.KeySource != r.o.KeySource {
			r.note("%s keeps its %s key; --key-source %s applies to new volumes only", v.Path, tok.KeySource, r.o.KeySource)
		}
		if err := r.openExisting(v, tok); err != nil {
			return err
		}
	}
	r.layout.Mapper, r.layout.Open = mapperPath, true
	fsType := r.o.Filesystem
	if !r.dry() || r.openMapping(v) != "" {
		s, err := probe.Device(r.ctx, r.Run, mapperPath)
		if err != nil {
			return err
		}
		if !slices.Contains(contract.Filesystems, s.Type) {
			return &RefusedError{Device: mapperPath, Reason: "is a ready storecrypt volume that holds " + s.What() + " instead of its filesystem"}
		}
		fsType = s.Type
	}
	r.layout.Filesystem = fsType
	if err := r.mount(v, fsType); err != nil {
		return err
	}
	if r.mode == modeApply || r.mode == modePlan {
		return r.installBoot(tok.KeySource)
	}
	r.layout.BootUnit = r.unitInstalled()
	return nil
}

func (r *run) openExisting(v vol, tok keysource.Token) error {
	if r.dry() {
		return r.act("luks-open", "open "+v.Path+" with its "+tok.KeySource+" key", nil)
	}
	keys, err := r.getKeys(tok.KeySource)
	if err != nil {
		return err
	}
	kv, err := r.volume(r.layout.LUKSUUID, tok.KeySource)
	if err != nil {
		return err
	}
	var key keysource.Key
	if err := r.inspect("key", func() (string, error) {
		var err error
		key, err = keys.Recover(r.ctx, tok, kv)
		return tok.KeySource + " key" + keyIDSuffix(tok.KeyID), err
	}); err != nil {
		return err
	}
	defer key.Zero()
	// Flags persisted at format apply by themselves; none are passed again.
	return r.act("luks-open", "open "+v.Path+" as "+mapperPath, func() error {
		return r.cs.Open(r.ctx, v.Path, contract.MapperName, key.Secret, luks.OpenOptions{Workqueue: true})
	})
}

// openMapping returns the kernel name of our dm-crypt mapping on v, or "".
func (r *run) openMapping(v vol) string {
	if v.Name == "" {
		return ""
	}
	d, err := discover.Inspect(r.fsys, v.Name)
	if err != nil {
		return ""
	}
	for _, h := range d.Holders {
		if discover.DMName(r.fsys, h) == contract.MapperName {
			return h
		}
	}
	return ""
}

func (r *run) mount(v vol, fsType string) error {
	if dm := r.openMapping(v); dm != "" {
		d, err := discover.Inspect(r.fsys, dm)
		if err != nil {
			return err
		}
		if slices.Contains(d.Mounts, r.o.MountPoint) {
			r.layout.Mounted = true
			return r.inspect("mount", func() (string, error) { return "already mounted at " + r.o.MountPoint, nil })
		}
		if len(d.Mounts) > 0 {
			r.note("%s is mounted at %s, not at %s; left as it is", mapperPath, strings.Join(d.Mounts, ", "), r.o.MountPoint)
			return nil
		}
	}
	err := r.act("mount", "mount "+mapperPath+" at "+r.o.MountPoint+" (noatime)", func() error {
		return filesystem.Mount(r.ctx, r.Run, r.Root, mapperPath, r.o.MountPoint, fsType)
	})
	r.layout.Mounted = err == nil && !r.dry()
	return err
}

// installBoot copies the agent to a fixed path and installs the unit that runs it at boot:
// unlock for keys that survive a reboot; apply for ephemeral ones, whose volume a reboot
// turns back into scratch.
func (r *run) installBoot(keySource string) error {
	argv := []string{contract.AgentPath, "unlock", "--" + contract.FlagMountPoint, r.o.MountPoint, "--" + contract.FlagModel, r.o.Model}
	if keySource == contract.KeySourceEphemeral {
		argv = []string{contract.AgentPath, "apply", "--" + contract.FlagKeySource, keySource,
			"--" + contract.FlagMountPoint, r.o.MountPoint, "--" + contract.FlagModel, r.o.Model,
			"--" + contract.FlagFilesystem, r.o.Filesystem, fmt.Sprintf("--%s=%t", contract.FlagDiscard, r.o.Discard)}
	}
	if len(r.o.Devices) > 0 {
		argv = append(argv, "--"+contract.FlagDevices, strings.Join(r.o.Devices, ","))
	}
	text := bootunit.Render(argv)
	if r.dry() {
		r.layout.BootUnit = r.unitInstalled()
		if !r.layout.BootUnit {
			return r.act("boot-unit", "install "+contract.UnitName, nil)
		}
		return nil
	}
	start := r.Now()
	copied, err := r.installSelf()
	if err != nil {
		return err
	}
	changed, err := bootunit.Install(r.Root, text)
	if err != nil {
		return err
	}
	if changed && isDir(filepath.Join(r.Root, "run/systemd/system")) {
		if _, err := r.Run.Run(r.ctx, sysexec.Command{Name: "systemctl", Args: []string{"daemon-reload"}}); err != nil {
			return fmt.Errorf("reloading systemd: %w", err)
		}
	}
	r.layout.BootUnit = true
	if copied || changed {
		r.record("boot-unit", "install "+contract.UnitName+" and "+contract.AgentPath, true, start)
	} else {
		r.record("boot-unit", contract.UnitName+" is up to date", false, start)
	}
	return nil
}

func (r *run) unitInstalled() bool {
	_, err := fs.Stat(r.fsys, path.Join("etc/systemd/system", contract.UnitName))
	return err == nil
}

func isDir(p string) bool {
	st, err := os.Stat(p)
	return err == nil && st.IsDir()
}

// installSelf copies the running binary to contract.AgentPath when it differs.
func (r *run) installSelf() (bool, error) {
	if r.Self == "" {
		return false, nil
	}
	dst := filepath.Join(r.Root, contract.AgentPath)
	self, err := os.ReadFile(r.Self)
	if err != nil {
		return false, fmt.Errorf("reading the agent binary: %w", err)
	}
	if old, err := os.ReadFile(dst); err == nil && string(old) == string(self) {
		return false, nil
	}
	return true, atomicfile.Write(dst, self, 0o755)
}

func (r *run) saveState() error {
	b, err := json.MarshalIndent(r.rep, "", "  ")
	if err != nil {
		return err
	}
	return atomicfile.Write(filepath.Join(r.Root, contract.StatePath), b, 0o644)
}

func (r *run) loadLastRun() {
	b, err := os.ReadFile(filepath.Join(r.Root, contract.StatePath))
	if errors.Is(err, fs.ErrNotExist) {
		return
	}
	var last contract.Report
	if err != nil || json.Unmarshal(b, &last) != nil {
		r.note("the saved state %s is unreadable", contract.StatePath)
		return
	}
	r.rep.LastRun = &last
}
