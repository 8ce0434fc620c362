package agent

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"strings"

	"github.com/storecrypt/storecrypt/instance-agent/atomicfile"
	"github.com/storecrypt/storecrypt/instance-agent/bootunit"
	"github.com/storecrypt/storecrypt/instance-agent/plan"
	"github.com/storecrypt/storecrypt/instance-agent/sysexec"
	"github.com/storecrypt/storecrypt/internal/contract"
)

// installBoot copies the agent to a fixed path and installs the unit that runs it at boot.
func (ex *executor) installBoot(s plan.Step) error {
	start := ex.Now()
	changed, err := ex.installUnit(s.Unit)
	if err != nil {
		return err
	}
	ex.booted = true
	if changed {
		ex.record(s.Name, s.Action, true, start)
	} else {
		ex.record(s.Name, contract.UnitName+" is up to date", false, start)
	}
	return nil
}

// updateBootAgent makes contract.AgentPath this agent when it holds another build, and
// reports which agent the boot unit ran until now (Report.BootAgentVersion): that one,
// not this run's, provisioned or reopened the volume at boot. The file is replaced
// whole (atomicfile), so a boot cut short runs the old build or the new, never half.
func (ex *executor) updateBootAgent(s plan.Step) error {
	start := ex.Now()
	installed := ex.Version
	copied, err := ex.installSelf(func() {
		out, err := ex.Exec.Run(ex.ctx, sysexec.Command{Name: contract.AgentPath, Args: []string{"version"}})
		if installed = strings.TrimSpace(string(out)); err != nil || installed == "" {
			installed = "unknown"
			ex.note("%s does not say its version: %v", contract.AgentPath, err)
		}
	})
	if err != nil {
		return err
	}
	if ex.Self != "" {
		ex.rep.BootAgentVersion = installed
	}
	action := contract.AgentPath + " is this agent"
	if copied {
		action = fmt.Sprintf("replace %s (%s) with this agent (%s); the boot unit runs it from the next boot", contract.AgentPath, installed, ex.Version)
	}
	ex.record(s.Name, action, copied, start)
	return nil
}

// installUnit copies the agent to contract.AgentPath, installs u and, when systemd runs,
// has it read the change. It reports whether anything changed.
func (r *run) installUnit(u bootunit.Unit) (bool, error) {
	copied, err := r.installSelf(nil)
	if err != nil {
		return false, err
	}
	changed, err := bootunit.Install(r.Root, u)
	if err != nil {
		return false, err
	}
	if err := r.reloadSystemd(changed); err != nil {
		return false, err
	}
	return copied || changed, nil
}

// reloadSystemd has systemd read changed unit files, when it runs.
func (r *run) reloadSystemd(changed bool) error {
	if !changed || !r.systemdRuns() {
		return nil
	}
	if _, err := r.Exec.Run(r.ctx, sysexec.Command{Name: "systemctl", Args: []string{"daemon-reload"}}); err != nil {
		return fmt.Errorf("reloading systemd: %w", err)
	}
	return nil
}

// systemdRuns: systemd is the running init (sd_booted's test); at image build it is not.
func (r *run) systemdRuns() bool { return isDir(filepath.Join(r.Root, "run/systemd/system")) }

func (r *run) unitInstalled() bool {
	_, err := fs.Stat(r.fsys, path.Join("etc/systemd/system", contract.UnitName))
	return err == nil
}

func isDir(p string) bool {
	st, err := os.Stat(p)
	return err == nil && st.IsDir()
}

// installSelf copies the running binary to contract.AgentPath unless that file already
// holds it: the boot unit runs the installed copy itself, and a rerun of the same build
// finds the same bytes there. Neither file is read whole into memory. replacing, when
// set, runs just before the file is replaced.
func (r *run) installSelf(replacing func()) (bool, error) {
	staged, err := r.stagedSelf()
	if staged == nil || err != nil {
		return false, err
	}
	if replacing != nil {
		replacing()
	}
	return true, staged.Commit()
}

// stagedSelf is the copy stageSelfEarly started, once it is made, or else a copy made now
// (stageSelf).
func (r *run) stagedSelf() (*atomicfile.Staged, error) {
	if early := r.earlySelf; early != nil {
		r.earlySelf = nil
		return early()
	}
	return r.stageSelf()
}

// stageSelf writes the running binary, flushed, beside contract.AgentPath
// (atomicfile.Stage); nil when there is no binary to install or that file already holds
// this one.
func (r *run) stageSelf() (*atomicfile.Staged, error) {
	if r.Self == "" {
		return nil, nil
	}
	dst := filepath.Join(r.Root, contract.AgentPath)
	self, err := os.Open(r.Self)
	if err != nil {
		return nil, fmt.Errorf("reading the agent binary: %w", err)
	}
	defer self.Close()
	if same, err := holds(dst, self); same || err != nil {
		return nil, err
	}
	if _, err := self.Seek(0, io.SeekStart); err != nil {
		return nil, fmt.Errorf("reading the agent binary: %w", err)
	}
	return atomicfile.Stage(dst, self, 0o755)
}

// stageSelfEarly starts copying the agent for the boot unit while the disk steps run: the
// copy and its fsync (13 MB; 0.45 to 1.1 s in the test guest) otherwise wait for the
// mount. The executor calls it only once the key is in hand, so a refused run, or one
// without a key, writes nothing; discardSelf removes a copy no step committed.
func (r *run) stageSelfEarly() {
	done := make(chan struct{})
	var staged *atomicfile.Staged
	var err error
	go func() {
		defer close(done)
		staged, err = r.stageSelf()
	}()
	r.earlySelf = func() (*atomicfile.Staged, error) {
		<-done
		return staged, err
	}
}

// discardSelf removes the copy stageSelfEarly made when the run ends without installing it.
func (r *run) discardSelf() {
	if early := r.earlySelf; early != nil {
		r.earlySelf = nil
		if staged, err := early(); staged != nil && err == nil {
			_ = staged.Discard()
		}
	}
}

// holds reports whether the file at path is f, or has f's size and bytes; a missing or
// unreadable file does not hold it.
func holds(path string, f *os.File) (bool, error) {
	fi, err := f.Stat()
	if err != nil {
		return false, fmt.Errorf("reading %s: %w", f.Name(), err)
	}
	g, err := os.Open(path)
	if err != nil {
		return false, nil
	}
	defer g.Close()
	gi, err := g.Stat()
	switch {
	case err != nil || gi.Size() != fi.Size():
		return false, nil
	case os.SameFile(fi, gi):
		return true, nil
	}
	a, b := make([]byte, 1<<16), make([]byte, 1<<16)
	for {
		n, err := io.ReadFull(f, a)
		if _, gerr := io.ReadFull(g, b[:n]); gerr != nil || !bytes.Equal(a[:n], b[:n]) {
			return false, nil
		}
		switch {
		case errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF):
			return true, nil
		case err != nil:
			return false, fmt.Errorf("reading %s: %w", f.Name(), err)
		}
	}
}
