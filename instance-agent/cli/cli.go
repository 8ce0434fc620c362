// Package cli is storecrypt-agent's command line: subcommands, flags, help, the JSON
// document on stdout and the exit status. main only calls Main.
package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/google/uuid"

	"github.com/storecrypt/storecrypt/instance-agent/agent"
	"github.com/storecrypt/storecrypt/instance-agent/awsenv"
	"github.com/storecrypt/storecrypt/instance-agent/sysexec"
	"github.com/storecrypt/storecrypt/internal/contract"
)

// Version is set at build time with -ldflags "-X ...cli.Version=...".
var Version = "dev"

type command struct {
	name, summary string
	run           func(a *agent.Agent) func(context.Context, contract.AgentOptions) (*contract.Report, error)
}

var commands = []command{
	{"apply", "discover, get the key, format or open, stripe, mkfs, mount, install the boot unit (idempotent)",
		func(a *agent.Agent) func(context.Context, contract.AgentOptions) (*contract.Report, error) {
			return a.Apply
		}},
	{"unlock", "at boot: open and mount the existing volume; never formats",
		func(a *agent.Agent) func(context.Context, contract.AgentOptions) (*contract.Report, error) {
			return a.Unlock
		}},
	{"plan", "print what apply would do, touching nothing",
		func(a *agent.Agent) func(context.Context, contract.AgentOptions) (*contract.Report, error) {
			return a.Plan
		}},
	{"install", "boot-time mode: install the agent and a unit that provisions or reopens the volume at every boot, before the workload (for an image build or user data)",
		func(a *agent.Agent) func(context.Context, contract.AgentOptions) (*contract.Report, error) {
			return a.Install
		}},
	{"uninstall", "remove the boot unit (its .requires links and drop-ins too) and make the mount point and the --bind-dirs directories writable again on the root disk; " +
		"the volume and its data are left as they are (pass the --mount-point and --bind-dirs that install or apply had)",
		func(a *agent.Agent) func(context.Context, contract.AgentOptions) (*contract.Report, error) {
			return a.Uninstall
		}},
	{"revoke", "take the volume's key out of kernel memory now: for each mapping, sync its filesystem and suspend it (device-mapper freezes the filesystem, cryptsetup wipes the key), " +
		"then drop the page cache, so that every read and write waits (a sync(2) of every filesystem too) until resume; leave a mark on the root disk that keeps unlock, apply and the boot unit " +
		"from opening it again (idempotent). It does not reach what a process already holds in its own memory, or what anyone copied before",
		func(a *agent.Agent) func(context.Context, contract.AgentOptions) (*contract.Report, error) {
			return a.Revoke
		}},
	{"resume", "undo revoke: get the key as unlock does (nothing changes when KMS refuses it), resume each mapping, or open and mount the volume when a reboot closed it, and clear the mark",
		func(a *agent.Agent) func(context.Context, contract.AgentOptions) (*contract.Report, error) {
			return a.Resume
		}},
	{"shred", "IRREVERSIBLE: revoke, then erase every keyslot and token of the volume's LUKS2 headers and tear its mappings down " +
		"(after a reboot while revoked: the headers on the disks, with no key); the data cannot be read again, even with the KMS key (--confirm must be this instance's id)",
		func(a *agent.Agent) func(context.Context, contract.AgentOptions) (*contract.Report, error) {
			return a.Shred
		}},
	{"status", "print the volume's state and the last run as JSON",
		func(a *agent.Agent) func(context.Context, contract.AgentOptions) (*contract.Report, error) {
			return a.Status
		}},
}

func usage(w io.Writer) {
	fmt.Fprintf(w, `storecrypt-agent encrypts this EC2 instance's instance-store NVMe disks with LUKS2
under a key that only AWS KMS can unwrap, stripes them, and mounts them.

Usage: storecrypt-agent <command> [flags]

Commands:
`)
	for _, c := range commands {
		fmt.Fprintf(w, "  %-9s %s\n", c.name, c.summary)
	}
	fmt.Fprintf(w, "  %-9s %s\n", "version", "print the version")
	fmt.Fprintf(w, `
Run 'storecrypt-agent <command> --help' for its flags.
Output: one JSON document on stdout; progress on stderr.
Exit status: %s.
`, exitCodeHelp())
}

func exitCodeHelp() string {
	var parts []string
	for c := contract.ExitOK; int(c) < len(contract.ExitCodeNames); c++ {
		parts = append(parts, fmt.Sprintf("%d %s", c, c))
	}
	return strings.Join(parts, ", ")
}

// Main runs the agent with args (without the program name) and returns the exit status.
func Main(ctx context.Context, args []string, stdout, stderr io.Writer, newAgent func() *agent.Agent) int {
	if len(args) == 0 {
		usage(stderr)
		return int(contract.ExitBadInput)
	}
	if args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		usage(stdout)
		return 0
	}
	if args[0] == "version" {
		fmt.Fprintln(stdout, Version)
		return 0
	}
	var cmd *command
	for i := range commands {
		if commands[i].name == args[0] {
			cmd = &commands[i]
		}
	}
	if cmd == nil {
		fmt.Fprintf(stderr, "storecrypt-agent: unknown command %q\n\n", args[0])
		usage(stderr)
		return int(contract.ExitBadInput)
	}
	o := contract.DefaultAgentOptions()
	if m := os.Getenv(contract.EnvModel); m != "" {
		o.Model = m
	}
	if cmd.name == "install" {
		o.RequiredBy = contract.DefaultBootRequiredBy
	}
	fs := flag.NewFlagSet("storecrypt-agent "+cmd.name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	o.RegisterFlags(fs)
	wait := fs.Duration(contract.FlagWait, 10*time.Minute, "how long to wait for another run to finish")
	var retryFor time.Duration
	if cmd.name == "apply" || cmd.name == "unlock" {
		fs.DurationVar(&retryFor, contract.FlagRetryFor, 0, "keep retrying for this long while the key is unavailable, a tool fails or the lock is held (the boot unit's way to wait for the network)")
		fs.BoolVar(&o.Boot, contract.FlagBoot, false, "this run is the boot-time unit's (set by install; the volume records that the boot unit made it)")
	}
	var reason, by, confirm string
	switch cmd.name {
	case "revoke", "resume", "shred":
		fs.StringVar(&reason, contract.FlagReason, "", "why (required; recorded in the mark and the report)")
		fs.StringVar(&by, contract.FlagBy, fmt.Sprintf("uid:%d", os.Getuid()), "who asks (recorded with the reason)")
	}
	if cmd.name == "shred" {
		fs.StringVar(&confirm, contract.FlagConfirm, "", "this instance's id, typed again: the guard against shredding the wrong instance")
	}
	var now bool
	if cmd.name == "install" {
		fs.BoolVar(&now, "now", false, "also start the unit now, without waiting for it (user data; systemctl enable --now)")
	}
	// The flag package prints the usage for --help and after a bad flag alike: it is kept
	// here and goes to stdout when asked for, to stderr after the error otherwise.
	var help bytes.Buffer
	fs.Usage = func() {
		fmt.Fprintf(&help, "Usage: storecrypt-agent %s [flags]\n\n%s.\n\nFlags:\n", cmd.name, cmd.summary)
		printFlags(&help, fs)
	}
	if err := fs.Parse(args[1:]); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			_, _ = help.WriteTo(stdout)
			return 0
		}
		_, _ = help.WriteTo(stderr)
		return int(contract.ExitBadInput)
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "storecrypt-agent %s: unexpected argument %q\n", cmd.name, fs.Arg(0))
		return int(contract.ExitBadInput)
	}
	a := newAgent()
	a.Wait = *wait
	a.Progress = stderr
	a.StartUnit = now
	a.Reason, a.By, a.Confirm = reason, by, confirm
	rep, err := a.Retrying(retryFor, cmd.run(a))(ctx, o)
	enc := json.NewEncoder(stdout)
	enc.SetIndent("", "  ")
	if encErr := enc.Encode(rep); encErr != nil {
		fmt.Fprintf(stderr, "storecrypt-agent: writing the report: %v\n", encErr)
	}
	if err != nil {
		fmt.Fprintf(stderr, "storecrypt-agent %s: %v\n", cmd.name, err)
	}
	return int(agent.ExitCodeOf(err))
}

// printFlags is flag.PrintDefaults with the flags spelled as users type them, --name: the
// flag package accepts both, and the document and the README use the double dash.
func printFlags(w io.Writer, fs *flag.FlagSet) {
	fs.VisitAll(func(f *flag.Flag) {
		kind, text := flag.UnquoteUsage(f)
		line := "  --" + f.Name
		if kind != "" {
			line += " " + kind
		}
		fmt.Fprintf(w, "%s\n    \t%s", line, strings.ReplaceAll(text, "\n", "\n    \t"))
		if d := f.DefValue; d != "" && d != "false" && d != "0" && d != "0s" && d != "[]" {
			if kind == "string" {
				d = fmt.Sprintf("%q", d)
			}
			fmt.Fprintf(w, " (default %s)", d)
		}
		fmt.Fprintln(w)
	})
}

// NewAgent wires the agent to this machine.
func NewAgent() *agent.Agent {
	env := &awsenv.Env{}
	self, _ := os.Executable()
	return &agent.Agent{
		Root:     "/",
		Exec:     sysexec.OS{},
		Version:  Version,
		Self:     self,
		Keys:     func(ctx context.Context) (agent.Keys, error) { return env.Keys(ctx) },
		Instance: env.Instance,
		NewUUID:  uuid.NewString,
		Now:      time.Now,
	}
}
