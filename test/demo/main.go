// Command demo shows storecrypt-agent's life on the real-kernel test guest: two blank NVMe
// disks, apply, a file written, a reboot, unlock, the file read back, and status as a
// table. Run it with `make demo`; it exits non-zero when any stage fails.
package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/storecrypt/storecrypt/internal/contract"
	"github.com/storecrypt/storecrypt/test/testbed"
	"github.com/storecrypt/storecrypt/test/vm"
)

func main() {
	if err := run(context.Background(), os.Stdout); err != nil {
		fmt.Fprintf(os.Stderr, "demo: %v\n", err)
		os.Exit(1)
	}
}

type timeline struct {
	w     io.Writer
	start time.Time
	last  time.Time
}

func (tl *timeline) stage(name string) {
	now := time.Now()
	fmt.Fprintf(tl.w, "[%6.1fs] %-52s (+%.1fs)\n", now.Sub(tl.start).Seconds(), name, now.Sub(tl.last).Seconds())
	tl.last = now
}

func run(ctx context.Context, w io.Writer) error {
	if err := vm.Available(); err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, 10*time.Minute)
	defer cancel()
	dir, err := os.MkdirTemp("", "storecrypt-demo-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	tl := &timeline{w: w, start: time.Now(), last: time.Now()}

	fmt.Fprintln(w, "storecrypt demo: an instance with two blank instance-store NVMe disks")
	agent, err := testbed.BuildAgent(dir)
	if err != nil {
		return err
	}
	tl.stage("agent built")
	tb, err := testbed.New(ctx, dir, testbed.Options{Disks: 2, SizeMB: 128, Agent: agent})
	if err != nil {
		return err
	}
	defer tb.Close()
	tl.stage("emulators up: KMS, S3, IMDSv2 on 127.0.0.1")
	if err := tb.Boot(ctx); err != nil {
		return err
	}
	tl.stage(fmt.Sprintf("guest booted (%.1fs)", tb.Guest.Booted.Seconds()))

	apply := func(argv []string) (contract.Report, error) {
		r, rep, err := tb.Agent(ctx, vm.Cmd{Argv: argv})
		if err != nil {
			return rep, err
		}
		if r.Code != 0 {
			return rep, fmt.Errorf("storecrypt-agent %s exited %d (%s): %s", argv[0], r.Code, rep.Result, rep.Error)
		}
		return rep, nil
	}
	rep, err := apply(append([]string{"apply"}, tb.KMSArgs()...))
	if err != nil {
		return err
	}
	tl.stage("storecrypt-agent apply: encrypted, striped, mounted")
	printSteps(w, rep)

	const file = "/mnt/instance-store/hello.txt"
	if _, err := tb.Sh(ctx, "echo 'written before the reboot' > "+file+" && sync"); err != nil {
		return err
	}
	tl.stage("a file written to " + file)
	if err := tb.Reboot(ctx); err != nil {
		return err
	}
	tl.stage(fmt.Sprintf("rebooted (%.1fs): mapping and mount are gone", tb.Guest.Booted.Seconds()))
	rep, err = apply([]string{"unlock", "--model", testbed.GuestModel})
	if err != nil {
		return err
	}
	tl.stage("storecrypt-agent unlock (what the boot unit runs)")
	printSteps(w, rep)
	got, err := tb.Sh(ctx, "cat "+file)
	if err != nil {
		return err
	}
	if strings.TrimSpace(got) != "written before the reboot" {
		return fmt.Errorf("the file reads %q after the reboot", got)
	}
	tl.stage("the file reads back: " + strings.TrimSpace(got))
	rep, err = apply([]string{"status", "--model", testbed.GuestModel})
	if err != nil {
		return err
	}
	tl.stage("storecrypt-agent status")
	printStatus(w, rep)
	return nil
}

func printSteps(w io.Writer, rep contract.Report) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	for _, s := range rep.Steps {
		fmt.Fprintf(tw, "            %s\t%s\t%.2fs\n", s.Name, s.Action, s.Seconds)
	}
	tw.Flush()
}

func printStatus(w io.Writer, rep contract.Report) {
	l := rep.Layout
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "\nDEVICE\tMODEL\tSERIAL\tSIZE\tFOUND")
	for _, d := range rep.Devices {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%d MiB\t%s\n", d.Path, d.Model, d.Serial, d.SizeBytes>>20, d.Found)
	}
	tw.Flush()
	rows := [][2]string{
		{"raid", l.RAID}, {"volume", l.Volume}, {"luks uuid", l.LUKSUUID}, {"state", l.State},
		{"cipher", fmt.Sprintf("%s, %d-bit key, %d-byte sectors", l.Cipher, l.KeySizeBits, l.SectorSize)},
		{"dm-crypt flags", strings.Join(l.Flags, " ")}, {"key source", l.KeySource}, {"kms key", l.KeyID},
		{"mapper", l.Mapper}, {"filesystem", l.Filesystem}, {"mount point", l.MountPoint},
		{"open / mounted / boot unit", fmt.Sprintf("%t / %t / %t", l.Open, l.Mounted, l.BootUnit)},
	}
	if rep.LastRun != nil {
		rows = append(rows, [2]string{"last run", fmt.Sprintf("%s: %s at %s (%.1fs)", rep.LastRun.Command, rep.LastRun.Result, rep.LastRun.StartedAt, rep.LastRun.Seconds)})
	}
	fmt.Fprintln(tw)
	for _, r := range rows {
		fmt.Fprintf(tw, "%s\t%s\n", strings.ToUpper(r[0]), r[1])
	}
	tw.Flush()
}
