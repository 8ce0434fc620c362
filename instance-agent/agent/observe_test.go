package agent

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/storecrypt/storecrypt/instance-agent/sysexec"
	"github.com/storecrypt/storecrypt/internal/contract"
)

// barrier returns a Do for each of n calls that returns only once all n have started,
// and fails a call that waits alone: the calls ran one after another.
func barrier(n int) func(name string) func() error {
	var wg sync.WaitGroup
	wg.Add(n)
	all := make(chan struct{})
	go func() { wg.Wait(); close(all) }()
	return func(name string) func() error {
		return func() error {
			wg.Done()
			select {
			case <-all:
				return nil
			case <-time.After(5 * time.Second):
				return fmt.Errorf("%s ran alone: the other probes did not start while it ran", name)
			}
		}
	}
}

// TestObserveConcurrently: the disks' probes and cryptsetup's version run at once, every
// disk's failure is reported, and a cryptsetup too old for tokens refuses first.
func TestObserveConcurrently(t *testing.T) {
	at, each := barrier(3), barrier(3)
	for _, tc := range []struct {
		name   string
		layout string
		calls  []sysexec.Call
		code   contract.ExitCode
		want   []string // in the error
	}{
		{"the probes and the version at once", contract.DefaultLayout, []sysexec.Call{
			{Argv: "cryptsetup --version", Stdout: version, Do: at("cryptsetup --version")},
			{Argv: "blkid -p -o export /dev/nvme1n1", Code: 2, Do: at("blkid of nvme1n1")},
			{Argv: "blkid -p -o export /dev/nvme2n1", Code: 2, Do: at("blkid of nvme2n1")},
		}, contract.ExitOK, nil},
		{"per-disk, the probes at once", contract.LayoutPerDisk, []sysexec.Call{
			{Argv: "cryptsetup --version", Stdout: version, Do: each("cryptsetup --version")},
			{Argv: "blkid -p -o export /dev/nvme1n1", Code: 2, Do: each("blkid of nvme1n1")},
			{Argv: "blkid -p -o export /dev/nvme2n1", Code: 2, Do: each("blkid of nvme2n1")},
		}, contract.ExitOK, nil},
		{"every disk's failure", contract.DefaultLayout, []sysexec.Call{
			{Argv: "cryptsetup --version", Stdout: version},
			{Argv: "blkid -p -o export /dev/nvme1n1", Code: 4, Stderr: "usage"},
			{Argv: "blkid -p -o export /dev/nvme2n1", Code: 4, Stderr: "usage"},
		}, contract.ExitSystemError, []string{"probing /dev/nvme1n1", "probing /dev/nvme2n1"}},
		{"an old cryptsetup before a failed probe", contract.DefaultLayout, []sysexec.Call{
			{Argv: "cryptsetup --version", Stdout: "cryptsetup 2.0.6\n"},
			{Argv: "blkid -p -o export /dev/nvme1n1", Code: 4, Stderr: "usage"},
			{Argv: "blkid -p -o export /dev/nvme2n1", Code: 2},
		}, contract.ExitBadInput, []string{"cryptsetup 2.0.6 is too old"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			root := t.TempDir()
			sysfs(t, root, merge(disk("nvme1n1", "259:0"), disk("nvme2n1", "259:1")))
			a, fake, _ := newTestAgent(t, root, tc.calls, &fakeKeys{})
			o := kmsOptions()
			o.Layout = tc.layout
			_, err := a.Plan(context.Background(), o)
			if got := ExitCodeOf(err); got != tc.code {
				t.Fatalf("got %v (exit %d), want exit %d", err, got, tc.code)
			}
			fake.Done()
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("got %q, want it to say %q", err, w)
				}
			}
		})
	}
}
