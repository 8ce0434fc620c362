package agent

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/storecrypt/storecrypt/instance-agent/keysource"
	"github.com/storecrypt/storecrypt/instance-agent/sysexec"
	"github.com/storecrypt/storecrypt/internal/contract"
)

// TestAgentCopiedWhileTheDisksAreMade: apply copies the agent for the boot unit while the
// disk steps run, puts it in place only at the boot-unit step, and a run that stops
// before, or fetches no key, leaves neither the copy nor the file.
func TestAgentCopiedWhileTheDisksAreMade(t *testing.T) {
	build := bytes.Repeat([]byte("storecrypt-agent build\n"), 1<<12)
	for _, tc := range []struct {
		name      string
		keyErr    error
		failMkfs  bool
		installed bool
	}{
		{"provisioned", nil, false, true},
		{"mkfs fails", nil, true, false},
		{"no key", &keysource.UnavailableError{Op: "kms:GenerateDataKey", Err: errors.New("AccessDeniedException")}, false, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			root := t.TempDir()
			sysfs(t, root, merge(disk("nvme1n1", "259:0")))
			self := filepath.Join(t.TempDir(), "storecrypt-agent")
			if err := os.WriteFile(self, build, 0o755); err != nil {
				t.Fatal(err)
			}
			dst := filepath.Join(root, contract.AgentPath)
			calls := []sysexec.Call{
				{Argv: "cryptsetup --version", Stdout: version},
				{Argv: "blkid -p -o export /dev/nvme1n1", Code: 2},
			}
			if tc.keyErr == nil {
				p := provisionCalls()
				// The mount, the last disk step, waits for the copy to be staged: made at
				// the boot-unit step instead, it never is.
				p[5].Do = func() error { return staged(dst+".tmp", build) }
				if tc.failMkfs {
					p[3].Code, p[3].Stderr = 1, "mkfs failed"
					p = p[:4]
				}
				calls = append(calls, p...)
			}
			a, fake, progress := newTestAgent(t, root, calls, &fakeKeys{err: tc.keyErr})
			a.Self = self
			_, err := a.Apply(context.Background(), kmsOptions())
			if (err == nil) != tc.installed {
				t.Fatalf("got %v, want an error: %v\n%s", err, !tc.installed, progress)
			}
			fake.Done()
			got, rerr := os.ReadFile(dst)
			if installed := rerr == nil && bytes.Equal(got, build); installed != tc.installed {
				t.Errorf("got %s installed %v, want %v", contract.AgentPath, installed, tc.installed)
			}
			if _, err := os.Stat(dst + ".tmp"); !errors.Is(err, os.ErrNotExist) {
				t.Errorf("got %v for the staged copy after the run, want it gone", err)
			}
			// Without a key nothing is written, not even the directory of the copy.
			if _, err := os.Stat(filepath.Dir(dst)); tc.keyErr != nil && !errors.Is(err, os.ErrNotExist) {
				t.Errorf("got %v for %s after a run without a key, want nothing there", err, filepath.Dir(dst))
			}
		})
	}
}

// staged waits until the file at p holds want.
func staged(p string, want []byte) error {
	for range 500 {
		if got, err := os.ReadFile(p); err == nil && bytes.Equal(got, want) {
			return nil
		}
		time.Sleep(10 * time.Millisecond)
	}
	return fmt.Errorf("%s was not staged before the mount", p)
}
