package agent

import (
	"context"
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
	"github.com/storecrypt/storecrypt/instance-agent/discover"
	"github.com/storecrypt/storecrypt/instance-agent/keysource"
	"github.com/storecrypt/storecrypt/instance-agent/keytoken"
	"github.com/storecrypt/storecrypt/instance-agent/luks"
	"github.com/storecrypt/storecrypt/instance-agent/probe"
	"github.com/storecrypt/storecrypt/instance-agent/raid"
	"github.com/storecrypt/storecrypt/instance-agent/sysexec"
	"github.com/storecrypt/storecrypt/internal/contract"
)

// Revoke takes the volume's key out of kernel memory now: I/O to the volume waits until
// Resume. It leaves the revoked mark, which keeps Apply and Unlock from opening the
// volume again.
func (a *Agent) Revoke(ctx context.Context, o contract.AgentOptions) (*contract.Report, error) {
	return a.execute(ctx, modeRevoke, o)
}

// Resume gets the key again as Unlock does, hands it back to the suspended mappings (or
// opens the volume when a reboot closed it) and clears the revoked mark.
func (a *Agent) Resume(ctx context.Context, o contract.AgentOptions) (*contract.Report, error) {
	return a.execute(ctx, modeResume, o)
}

// Shred revokes, erases every keyslot and token of the volume's LUKS2 headers and tears
// the mappings down: the data cannot be read again, with or without the KMS key.
func (a *Agent) Shred(ctx context.Context, o contract.AgentOptions) (*contract.Report, error) {
	return a.execute(ctx, modeShred, o)
}

// dropCaches is written to proc/sys/vm/drop_caches: the page cache and the dentries and
// inodes, all of them clean once the mapping is suspended.
const dropCaches = "proc/sys/vm/drop_caches"

// member is one open storecrypt mapping as the kernel shows it.
type member struct {
	Mapper    string   // device-mapper name: storecrypt, storecrypt-0, ...; "" when closed
	Header    string   // the device that holds its LUKS2 header
	Array     bool     // Header is the md array of the striped disks
	UUID      string   // the LUKS2 UUID
	Mounts    []string // where its filesystem is mounted: the mount point and the binds
	Suspended bool
}

// openMembers lists the open storecrypt mappings from sysfs alone: a read of a
// suspended mapping would wait, and the mark must be honoured whatever the options say.
func openMembers(fsys fs.FS) ([]member, error) {
	entries, err := fs.ReadDir(fsys, "sys/block")
	if err != nil {
		return nil, fmt.Errorf("listing block devices: %w", err)
	}
	var ms []member
	for _, e := range entries {
		dm := e.Name()
		name := discover.DMName(fsys, dm)
		uuid, ok := luksUUID(fsys, dm)
		if !ok || name != contract.MapperName && !strings.HasPrefix(name, contract.MapperName+"-") {
			continue
		}
		slaves, err := fs.ReadDir(fsys, path.Join("sys/block", dm, "slaves"))
		if err != nil {
			return nil, fmt.Errorf("reading the device under %s: %w", name, err)
		}
		if len(slaves) != 1 {
			return nil, fmt.Errorf("reading the device under %s: got %d devices, want one", name, len(slaves))
		}
		d, err := discover.Inspect(fsys, dm)
		if err != nil {
			return nil, err
		}
		under := slaves[0].Name()
		ms = append(ms, member{Mapper: name, Header: "/dev/" + under, Array: strings.HasPrefix(under, "md"), UUID: uuid, Mounts: d.Mounts, Suspended: suspended(fsys, dm)})
	}
	slices.SortFunc(ms, func(a, b member) int { return strings.Compare(a.Mapper, b.Mapper) })
	return ms, nil
}

// luksUUID reads the LUKS2 UUID of the dm-crypt mapping dm from its device-mapper UUID,
// which cryptsetup sets to CRYPT-LUKS2-<uuid without dashes>-<name>.
func luksUUID(fsys fs.FS, dm string) (string, bool) {
	b, err := fs.ReadFile(fsys, path.Join("sys/block", dm, "dm/uuid"))
	hex, ok := strings.CutPrefix(strings.TrimSpace(string(b)), "CRYPT-LUKS2-")
	if err != nil || !ok || len(hex) < 32 {
		return "", false
	}
	return hex[:8] + "-" + hex[8:12] + "-" + hex[12:16] + "-" + hex[16:20] + "-" + hex[20:32], true
}

// suspended reports whether the device-mapper device dm is suspended.
func suspended(fsys fs.FS, dm string) bool {
	b, err := fs.ReadFile(fsys, path.Join("sys/block", dm, "dm/suspended"))
	return err == nil && strings.TrimSpace(string(b)) == "1"
}

// revokeSteps are what takes the keys of ms out of kernel memory, in this order, each
// mapping in turn:
//
//  1. sync -f: what the workload wrote reaches the disks while the filesystem still
//     takes writes, so it survives the revoke (for resume) and a reboot. Its own
//     filesystem only: a global sync would wait on a mapping suspended before, with
//     every other sync(2) on the instance, until resume.
//  2. cryptsetup luksSuspend: device-mapper freezes the filesystem first
//     (writers then wait in the VFS, not inside a device without a key), flushes,
//     suspends the mapping and wipes dm-crypt's copy of the key; cryptsetup unlinks the
//     kernel keyring's. The freeze is device-mapper's own: an fsfreeze before it makes
//     the suspend fail on Linux 6.1 (the filesystem is frozen already: EBUSY).
//  3. once all are suspended, drop the clean page cache: else a file read before the
//     revoke still reads from memory. After the suspend, so that no read fills it
//     again: every read must reach the device, and waits there.
//
// A revoked mapping is left as it is, so a second revoke changes nothing.
func revokeSteps(ms []member) []step {
	var steps []step
	for _, m := range ms {
		if m.Suspended || m.Mapper == "" {
			continue
		}
		if len(m.Mounts) > 0 {
			steps = append(steps, step{name: "sync", action: "write what " + m.Mounts[0] + " holds in memory to the disks",
				cmd: sysexec.Command{Name: "sync", Args: []string{"-f", m.Mounts[0]}}})
		}
		steps = append(steps, step{name: "luks-suspend", action: "freeze " + m.Mapper + "'s filesystem, suspend it and wipe its key from the kernel",
			cmd: luks.SuspendCommand(m.Mapper)})
	}
	if len(steps) == 0 {
		return nil
	}
	return append(steps, step{name: "drop-caches", action: "drop the page cache, so that a file read before the revoke cannot be read from memory",
		sysfs: dropCaches, value: "3"})
}

// shredSteps erase the headers of ms and tear their mappings down, after revokeSteps.
// The headers are erased first, the teardown after: a teardown cut short leaves
// nothing that opens.
func shredSteps(ms []member, tokens map[string][]string) []step {
	steps := revokeSteps(ms)
	for _, m := range ms {
		steps = append(steps, step{name: "luks-erase", action: "erase every keyslot of " + m.Header, cmd: luks.EraseCommand(m.Header)})
		for _, id := range tokens[m.Header] {
			steps = append(steps, step{name: "luks-token-remove", action: "remove token " + id + " of " + m.Header, cmd: luks.RemoveTokenCommand(m.Header, id)})
		}
	}
	for _, m := range ms {
		if m.Mapper == "" {
			continue // a header no mapping holds: nothing to tear down
		}
		// The error target fails the I/O that waits in the suspended mapping and every
		// later one, so the filesystem can be thawed and let go.
		steps = append(steps, step{name: "dm-error", action: "make every I/O to " + m.Mapper + " fail", cmd: sysexec.Command{Name: "dmsetup", Args: []string{"wipe_table", m.Mapper}}})
		mounts := slices.Clone(m.Mounts)
		slices.Reverse(mounts) // the binds go before the mount point they come from
		for _, dir := range mounts {
			steps = append(steps, step{name: "umount", action: "detach " + dir, cmd: sysexec.Command{Name: "umount", Args: []string{"-l", dir}}})
		}
		// Deferred: the lazily detached filesystem lets go of the device when its last
		// user does, and the mapping goes with it.
		steps = append(steps, step{name: "dm-remove", action: "remove " + m.Mapper, cmd: sysexec.Command{Name: "dmsetup", Args: []string{"remove", "--deferred", m.Mapper}}})
	}
	return steps
}

// step is one action of revoke, resume or shred: a command, or a value for a file
// under /proc or /sys.
type step struct {
	name, action string
	cmd          sysexec.Command
	sysfs, value string
}

// revocation runs revoke, resume or shred with the mark found at RevocationPath.
func (r *run) revocation(mark *contract.Revocation) error {
	if err := contract.ValidateRevocation(r.Reason, r.By); err != nil {
		return err
	}
	ms, err := openMembers(r.fsys)
	if err != nil {
		return err
	}
	switch r.mode {
	case modeRevoke:
		return r.revoke(mark, ms)
	case modeShred:
		return r.shred(mark, ms)
	}
	return r.resume(mark, ms)
}

func (r *run) revoke(mark *contract.Revocation, ms []member) error {
	if mark != nil && mark.State == contract.Shredded {
		return &RevokedError{Mark: *mark}
	}
	steps := revokeSteps(ms)
	if len(ms) == 0 {
		r.note("no storecrypt mapping is open: the mark alone keeps the volume closed")
	}
	if err := r.runSteps(steps); err != nil {
		return err
	}
	if mark != nil {
		r.note("already revoked at %s by %s (%q): nothing changed", mark.At, mark.By, mark.Reason)
		return nil
	}
	return r.writeMark(contract.Revoked)
}

func (r *run) shred(mark *contract.Revocation, ms []member) error {
	if mark != nil && mark.State == contract.Shredded {
		r.note("already shredded at %s by %s (%q): nothing changed", mark.At, mark.By, mark.Reason)
		return nil
	}
	id, _, err := r.Instance(r.ctx)
	if err != nil {
		return &keysource.UnavailableError{Op: "reading the instance's id from IMDS", Err: err, Fix: "IMDSv2 must be reachable (hop limit 2 in containers)"}
	}
	r.rep.InstanceID = id
	if r.Confirm != id {
		return &contract.InvalidError{Flag: contract.FlagConfirm, Value: r.Confirm, Reason: "must be this instance's id, " + id + ": shred is irreversible"}
	}
	if len(ms) == 0 {
		if ms, err = r.closedHeaders(); err != nil {
			return err
		}
	}
	if err := r.checkShredTools(ms); err != nil {
		return err
	}
	tokens := map[string][]string{}
	for _, m := range ms {
		meta, err := r.cs.Dump(r.ctx, m.Header)
		if err != nil {
			return err
		}
		tokens[m.Header] = meta.TokenIDs()
	}
	if err := r.runSteps(shredSteps(ms, tokens)); err != nil {
		return err
	}
	for _, m := range ms {
		if !m.Array {
			continue
		}
		// The array stops only once nothing holds it; a process that keeps a file of the
		// detached filesystem open keeps it, and the headers are erased either way.
		start, stop := r.Now(), sysexec.Command{Name: "mdadm", Args: []string{"--stop", m.Header}}
		if _, err := r.Exec.Run(r.ctx, stop); err != nil {
			r.note("%s is still held (%v): it stops when its last user lets go", m.Header, err)
			continue
		}
		r.record("raid-stop", "stop "+m.Header, true, start)
		r.rep.Steps[len(r.rep.Steps)-1].Command = stop.String()
	}
	return r.writeMark(contract.Shredded)
}

func (r *run) checkShredTools(ms []member) error {
	need := []string{"dmsetup", "umount"}
	if slices.ContainsFunc(ms, func(m member) bool { return m.Array }) {
		need = append(need, "mdadm")
	}
	var missing []string
	for _, t := range need {
		if _, err := r.Exec.LookPath(t); err != nil {
			missing = append(missing, t)
		}
	}
	if len(missing) > 0 {
		return &MissingToolError{Tools: missing}
	}
	return nil
}

// resume hands each suspended mapping its key again, every key fetched before the first
// mapping resumes: a refused key changes nothing. A volume that a reboot closed is
// opened as the boot unit would.
func (r *run) resume(mark *contract.Revocation, ms []member) error {
	if mark == nil {
		if !slices.ContainsFunc(ms, func(m member) bool { return m.Suspended }) {
			r.note("the volume is not revoked: nothing to resume")
			return nil
		}
		r.note("no revoked mark, but a suspended mapping: resuming it")
	} else if mark.State == contract.Shredded {
		return &RevokedError{Mark: *mark}
	}
	var keys []keysource.Key
	defer func() {
		for i := range keys {
			keys[i].Zero()
		}
	}()
	var todo []member
	for _, m := range ms {
		if !m.Suspended {
			continue
		}
		k, err := r.memberKey(m)
		if err != nil {
			return err
		}
		keys, todo = append(keys, k), append(todo, m)
	}
	for i, m := range todo {
		start := r.Now()
		// device-mapper thaws the filesystem it froze at the suspend.
		if err := r.cs.Run(r.ctx, luks.ResumeCommand(m.Mapper), keys[i].Secret); err != nil {
			return err
		}
		keys[i].Zero()
		r.record("luks-resume", "give "+m.Mapper+" its key again and thaw its filesystem", true, start)
	}
	if len(todo) < len(ms) || len(ms) == 0 {
		// Closed by a reboot (or never opened): open and mount as the boot unit would.
		if err := r.engineAs(modeUnlock); err != nil {
			return err
		}
	}
	if mark == nil {
		return nil
	}
	if err := os.Remove(filepath.Join(r.Root, contract.RevocationPath)); err != nil {
		return fmt.Errorf("clearing the revoked mark: %w", err)
	}
	r.rep.Revocation = nil
	r.record("unmark", "clear the revoked mark", true, r.Now())
	return nil
}

// closedHeaders finds the headers of a volume that no mapping holds (a reboot while
// revoked, when KMS refuses the key that resume would need): each instance-store disk
// that carries one, or the array the disks make, assembled for it. None is opened.
func (r *run) closedHeaders() ([]member, error) {
	disks, err := r.discover()
	if err != nil {
		return nil, err
	}
	var ms []member
	var inArray []string
	for _, d := range disks {
		s, err := probe.Device(r.ctx, r.Exec, d.Path)
		if err != nil {
			return nil, err
		}
		switch {
		case s.Type == "crypto_LUKS" && s.Label == contract.VolumeLabel:
			ms = append(ms, member{Header: d.Path})
		case s.Type == raid.MemberType && s.Label == raid.MemberLabel(contract.ArrayName):
			inArray = append(inArray, d.Path)
		}
	}
	if len(inArray) == 0 {
		if len(ms) == 0 {
			return nil, fmt.Errorf("%w that holds a storecrypt volume", ErrNoDevices)
		}
		return ms, nil
	}
	a, ok := r.arrayOfAny(disks)
	if !ok {
		start, assemble := r.Now(), raid.AssembleCommand(contract.ArrayName, inArray)
		if err := r.md.Run(r.ctx, assemble); err != nil {
			return nil, err
		}
		r.record("raid-assemble", "assemble the array from "+strings.Join(inArray, " ")+" to reach its header", true, start)
		if a, ok = r.arrayOfAny(disks); !ok {
			return nil, errors.New("assembling the array: no disk has an md holder afterwards")
		}
	}
	return append(ms, member{Header: a.Path, Array: true}), nil
}

// memberKey recovers the key of an open mapping from its header's token.
func (r *run) memberKey(m member) (keysource.Key, error) {
	meta, err := r.cs.Dump(r.ctx, m.Header)
	if err != nil {
		return keysource.Key{}, err
	}
	raw := meta.TokenOfType(contract.TokenType)
	if raw == nil {
		return keysource.Key{}, fmt.Errorf("resuming %s: %s has no storecrypt token", m.Mapper, m.Header)
	}
	tok, err := keytoken.Parse(raw)
	if err != nil {
		return keysource.Key{}, err
	}
	keys, err := r.getKeys(tok.KeySource)
	if err != nil {
		return keysource.Key{}, err
	}
	v, err := r.volume(m.UUID, tok.KeySource)
	if err != nil {
		return keysource.Key{}, err
	}
	var key keysource.Key
	err = r.inspect("key", func() (string, error) {
		key, err = keys.Recover(r.ctx, tok, v)
		return tok.Describe() + " for " + m.Mapper, err
	})
	return key, err
}

// runSteps runs steps, recording each.
func (r *run) runSteps(steps []step) error {
	for _, s := range steps {
		start := r.Now()
		var err error
		if s.sysfs != "" {
			err = r.writeSysfs(s.sysfs, s.value)
		} else {
			_, err = r.Exec.Run(r.ctx, s.cmd)
		}
		if err != nil {
			return fmt.Errorf("%s: %w", s.action, err)
		}
		r.record(s.name, s.action, true, start)
		if s.cmd.Name != "" {
			r.rep.Steps[len(r.rep.Steps)-1].Command = s.cmd.String()
		}
	}
	return nil
}

// writeMark leaves the revoked or shredded mark on the root disk.
func (r *run) writeMark(state string) error {
	m := contract.Revocation{State: state, Reason: r.Reason, By: r.By, At: r.Now().UTC().Format("2006-01-02T15:04:05Z"), InstanceID: r.rep.InstanceID}
	b, err := json.MarshalIndent(m, "", "  ")
	if err != nil {
		return err
	}
	start := r.Now()
	if err := atomicfile.Write(filepath.Join(r.Root, contract.RevocationPath), b, 0o644); err != nil {
		return fmt.Errorf("writing the %s mark: %w", state, err)
	}
	r.rep.Revocation = &m
	r.record("mark", "record "+state+" by "+m.By+": "+m.Reason, true, start)
	return nil
}

// readMark reads the mark at RevocationPath; nil when there is none. An unreadable mark
// is an error: the volume stays closed rather than be opened against it.
func readMark(root string) (*contract.Revocation, error) {
	b, err := os.ReadFile(filepath.Join(root, contract.RevocationPath))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("reading the revocation mark: %w", err)
	}
	var m contract.Revocation
	if err := json.Unmarshal(b, &m); err != nil {
		return nil, fmt.Errorf("reading the revocation mark %s: %w; the volume stays closed", contract.RevocationPath, err)
	}
	if m.State != contract.Revoked && m.State != contract.Shredded {
		return nil, fmt.Errorf("reading the revocation mark %s: state %q, want %s or %s; the volume stays closed", contract.RevocationPath, m.State, contract.Revoked, contract.Shredded)
	}
	return &m, nil
}
