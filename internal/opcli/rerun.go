package opcli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	ec2types "github.com/aws/aws-sdk-go-v2/service/ec2/types"
	"github.com/aws/aws-sdk-go-v2/service/ssm"
	ssmtypes "github.com/aws/aws-sdk-go-v2/service/ssm/types"
	"github.com/spf13/pflag"

	"github.com/storecrypt/storecrypt/internal/contract"
	"github.com/storecrypt/storecrypt/internal/document"
	"github.com/storecrypt/storecrypt/internal/fleet"
)

type paramList map[string][]string

// String is empty when no parameter is overridden, so --help shows no default.
func (p paramList) String() string {
	var kv []string
	for k, v := range p {
		kv = append(kv, k+"="+strings.Join(v, ","))
	}
	slices.Sort(kv)
	return strings.Join(kv, " ")
}

func (p paramList) Type() string { return "Name=Value" }

func (p paramList) Set(s string) error {
	k, v, ok := strings.Cut(s, "=")
	if !ok {
		return fmt.Errorf("want Name=Value")
	}
	if k == document.ArchitectureParameter {
		if !slices.Contains(document.Architectures, v) {
			return fmt.Errorf("%s is one of %s", k, strings.Join(document.Architectures, ", "))
		}
		p[k] = []string{v}
		return nil
	}
	for _, d := range contract.DocumentParameters {
		if d.Name == k {
			p[k] = []string{v}
			return nil
		}
	}
	return fmt.Errorf("unknown parameter %q", k)
}

// SendCommand's rate controls, as its API reference constrains them (Length 1 to 7 and
// these patterns): checked here so a mistake is a usage error before anything is sent.
var (
	maxConcurrencyPattern = regexp.MustCompile(`^([1-9][0-9]*|[1-9][0-9]%|[1-9]%|100%)$`)
	maxErrorsPattern      = regexp.MustCompile(`^([1-9][0-9]*|[0]|[1-9][0-9]%|[0-9]%|100%)$`)
)

// maxInstanceIDs is how many instance ids SendCommand takes ("you can specify up to 50
// IDs").
const maxInstanceIDs = 50

// runRerun: one instance (--instance) waits for it and shows its agent's whole report;
// many (--instances, --targets) are listed, confirmed, sent one command per architecture
// and 50 instances, and get a line each and a summary. Either way only instances in the
// stack's scope are reached, and only a version of the document with the stack's content.
func runRerun(fs *pflag.FlagSet) checkFunc {
	instance := fs.String("instance", "", "one instance: wait for it and show its agent's report")
	instances := fs.StringSlice("instances", nil, "instances, comma-separated or repeated: a line each and a summary")
	targets := fs.StringArray("targets", nil, "the running instances with a tag: tag:Key=Value[,Value...] or tag-key=Key, or as aws ssm send-command takes them, Key=tag:Key,Values=V1,V2, Key=tag-key,Values=K1,K2 or Key=InstanceIds,Values=i-1,i-2 (repeated: all must match); only those in the stack's scope are rerun")
	doc := fs.String("document", "", "the storecrypt document's name (default: the stack's DocumentName output)")
	timeout := fs.Duration("timeout", 30*time.Minute, "how long to wait for the results")
	maxConcurrency := fs.String("max-concurrency", "50", "instances each command runs on at once: a number or a percentage (SSM's MaxConcurrency, per command of up to 50 instances)")
	maxErrors := fs.String("max-errors", "0", "failures after which a command reaches no more instances: a number or a percentage (SSM's MaxErrors, per command of up to 50 instances)")
	yes := fs.Bool("yes", false, "send to --instances or --targets without asking (needed where stdin is not a terminal)")
	dryRun := fs.Bool("dry-run", false, "print the version and the instances a rerun would reach, and those it leaves out with why; send nothing")
	params := paramList{}
	fs.Var(params, "param", "override a document parameter, Name=Value (repeatable)")
	return func(e *env) (runFunc, error) {
		given := 0
		for _, set := range []bool{*instance != "", len(*instances) > 0, len(*targets) > 0} {
			if set {
				given++
			}
		}
		if given != 1 {
			return nil, usageErr("give one of --instance, --instances or --targets")
		}
		if *instance != "" {
			if err := checkInstances("--instance", *instance); err != nil {
				return nil, err
			}
		}
		if err := checkInstances("--instances", *instances...); err != nil {
			return nil, err
		}
		filters, err := targetFilters(*targets)
		if err != nil {
			return nil, err
		}
		if len(*maxConcurrency) > 7 || !maxConcurrencyPattern.MatchString(*maxConcurrency) {
			return nil, usageErr(fmt.Sprintf("--max-concurrency %q: want a number from 1 or a percentage from 1%% to 100%% (%s)", *maxConcurrency, maxConcurrencyPattern))
		}
		if len(*maxErrors) > 7 || !maxErrorsPattern.MatchString(*maxErrors) {
			return nil, usageErr(fmt.Sprintf("--max-errors %q: want a number from 0 or a percentage from 0%% to 100%% (%s)", *maxErrors, maxErrorsPattern))
		}
		many := *instance == ""
		if many && !*yes && !*dryRun && !e.ask {
			// Refused before any call: a script finds out at once, not after a listing.
			return nil, usageErr("a rerun of --instances or --targets asks before sending, and stdin is not a terminal: pass --yes to send without asking (list what it would reach with --dry-run)")
		}
		return func(ctx context.Context, e *env) error {
			plan, err := planRerun(ctx, e, *doc, params, *maxConcurrency, *maxErrors)
			if err != nil {
				return err
			}
			var found []ec2types.Instance
			switch {
			case len(filters) > 0:
				found, err = fleet.Running(ctx, e.EC2, filters)
				if err == nil && len(found) == 0 {
					err = fmt.Errorf("no running instance matches --targets %s", strings.Join(*targets, " "))
				}
			case many:
				found, err = fleet.RunningByID(ctx, e.EC2, *instances)
			default:
				found, err = fleet.RunningByID(ctx, e.EC2, []string{*instance})
			}
			if err != nil {
				return err
			}
			list, err := plan.choose(ctx, e, found)
			if err != nil {
				return err
			}
			if *dryRun {
				return printTargets(e.out, e.output, list)
			}
			if !many {
				if len(list.LeftOut) > 0 {
					return fmt.Errorf("nothing sent: %s is left out: %s", list.LeftOut[0].Instance, list.LeftOut[0].Why)
				}
				return plan.one(ctx, e, list.Instances[0], *timeout)
			}
			if err := printTargets(e.errOut, "table", list); err != nil {
				return err
			}
			if len(list.Instances) == 0 {
				return fmt.Errorf("nothing sent: none of the %d instances is one storecrypt reruns", len(list.LeftOut))
			}
			if !*yes {
				if err := confirm(e, list); err != nil {
					return err
				}
			}
			return plan.many(ctx, e, list.Instances, *timeout)
		}, nil
	}
}

// confirm asks the operator on the terminal to go ahead with the list it was shown.
func confirm(e *env, list RerunTargets) error {
	answer, err := ask(e, fmt.Sprintf("Rerun %s version %s on these %d instances? [y/N] ", list.Document, list.Version, len(list.Instances)))
	if err != nil {
		return err
	}
	if !isYes(answer) {
		return errors.New("not confirmed: nothing was sent")
	}
	return nil
}

// targetFilters turns --targets into DescribeInstances filters. It takes the short form
// (tag:Key=Value[,Value...], tag-key=Key) and SSM's own (Key=tag:Key,Values=V1,V2;
// Key=tag-key,Values=K1,K2; Key=InstanceIds,Values=i-1,i-2), so that a target written
// for aws ssm send-command works here as it does there.
func targetFilters(targets []string) ([]ec2types.Filter, error) {
	var out []ec2types.Filter
	for _, t := range targets {
		f, err := targetFilter(t)
		if err != nil {
			return nil, usageErr(fmt.Sprintf("--targets %q: %v", t, err))
		}
		out = append(out, f)
	}
	return out, nil
}

func targetFilter(t string) (ec2types.Filter, error) {
	const want = "want tag:Key=Value, tag-key=Key, or SSM's Key=tag:Key,Values=Value, Key=tag-key,Values=Key or Key=InstanceIds,Values=ID,ID"
	if rest, ok := strings.CutPrefix(t, "Key="); ok {
		key, values, ok := strings.Cut(rest, ",Values=")
		vs := strings.Split(values, ",")
		switch {
		case !ok || slices.Contains(vs, ""):
			return ec2types.Filter{}, errors.New(want)
		case strings.HasPrefix(key, "tag:") && len(key) > len("tag:"), key == "tag-key":
			// EC2's filters of the same names match as SSM's targets do: any of the values.
			return ec2types.Filter{Name: aws.String(key), Values: vs}, nil
		case key == "InstanceIds":
			if err := checkInstances("Values", vs...); err != nil {
				return ec2types.Filter{}, err
			}
			return ec2types.Filter{Name: aws.String("instance-id"), Values: vs}, nil
		}
		return ec2types.Filter{}, fmt.Errorf("key %q is not one storecrypt reruns by: %s", key, want)
	}
	switch key, value, _ := strings.Cut(t, "="); {
	case strings.HasPrefix(key, "tag:") && len(key) > len("tag:") && value != "":
		return ec2types.Filter{Name: aws.String(key), Values: strings.Split(value, ",")}, nil
	case key == "tag-key" && value != "":
		return ec2types.Filter{Name: aws.String(key), Values: []string{value}}, nil
	}
	return ec2types.Filter{}, errors.New(want)
}

// rerunPlan is what every command of a rerun is sent with, and who it may reach.
type rerunPlan struct {
	document                  string
	pin                       document.Pin
	params                    paramList
	logGroup                  string
	maxConcurrency, maxErrors string
	scope                     fleet.Rule
}

// planRerun reads the stack and picks the version to send (pinned).
func planRerun(ctx context.Context, e *env, doc string, params paramList, maxConcurrency, maxErrors string) (rerunPlan, error) {
	sc, err := readStack(ctx, e)
	if err != nil {
		return rerunPlan{}, err
	}
	if doc == "" {
		doc = sc.DocumentName
	}
	if sc.AgentLogGroup == "" {
		return rerunPlan{}, fmt.Errorf("stack %s lacks the %s output rerun sends the agents' output to: is it a storecrypt stack?", e.stack, contract.OutputAgentLogGroup)
	}
	pin, err := pinned(ctx, e, &document.Trust{SSM: e.SSM, Name: doc, Digest: sc.Digest, KeyID: sc.KeyARN, Secret: sc.Secret}, contract.OutputDocumentDigest)
	if errors.Is(err, document.ErrUntrusted) {
		return rerunPlan{}, fmt.Errorf("nothing sent: %w", err)
	}
	if err != nil {
		return rerunPlan{}, err
	}
	return rerunPlan{document: doc, pin: pin, params: params, logGroup: sc.AgentLogGroup,
		maxConcurrency: maxConcurrency, maxErrors: maxErrors, scope: sc.Rule}, nil
}

// pinned finds the version of a deployed document to send (document.Trust, the launch
// function's rule): the default when it holds the content whose digest the stack's
// output gives, else the newest version that does, with the drift said on stderr.
// Sending the default, or any version by number unchecked, would let whoever may update
// the document or its default version run their code as root on the instances it
// reaches. An error wrapping document.ErrUntrusted (exit CLIExitUntrusted) says no
// version holds it.
func pinned(ctx context.Context, e *env, trust *document.Trust, output string) (document.Pin, error) {
	pin, err := trust.Version(ctx)
	if errors.Is(err, document.ErrUntrusted) {
		return pin, &codeError{code: contract.CLIExitUntrusted, err: fmt.Errorf(
			"no version of document %s holds the content stack %s deployed, whose %s is %s (the default: %w): redeploy the stack to restore it, and find out who changed it",
			trust.Name, e.stack, output, trust.Digest, trust.Check(ctx, pin.Default))}
	}
	if err != nil {
		return pin, err
	}
	if pin.Drift() {
		fmt.Fprintf(e.errOut, "storecrypt: the default of %s is not the content stack %s deployed (%v): sending version %s, which is\n",
			trust.Name, e.stack, trust.Check(ctx, pin.Default), pin.Version)
	}
	return pin, nil
}

// input is the SendCommand request for ids, which all have the architecture arch.
func (p rerunPlan) input(arch string, ids []string) *ssm.SendCommandInput {
	params := maps.Clone(p.params)
	params[document.ArchitectureParameter] = []string{arch}
	return &ssm.SendCommandInput{
		DocumentName: aws.String(p.document), DocumentVersion: aws.String(p.pin.Version), InstanceIds: ids, Parameters: params,
		Comment: aws.String("storecrypt rerun"), MaxConcurrency: aws.String(p.maxConcurrency), MaxErrors: aws.String(p.maxErrors),
		// Where launch runs' output goes, so a rerun's is found next to them.
		CloudWatchOutputConfig: &ssmtypes.CloudWatchOutputConfig{CloudWatchOutputEnabled: true, CloudWatchLogGroupName: aws.String(p.logGroup)},
	}
}

// Target is an instance a rerun reaches (with the agent's architecture it is sent), or
// leaves out (with why).
type Target struct {
	Instance     string `json:"instance"`
	Architecture string `json:"architecture,omitempty"`
	Why          string `json:"why,omitempty"`
}

// SentDocument is the document a command sends, shown before it sends anything.
type SentDocument struct {
	Document string `json:"document"`
	// Version is the version sent: its content has the digest the stack's output gives
	// (pinned); "" when no version has it, and nothing of it is sent.
	Version        string `json:"version"`
	DefaultVersion string `json:"default_version"`
}

func sentDocument(name string, pin document.Pin) SentDocument {
	return SentDocument{Document: name, Version: pin.Version, DefaultVersion: pin.Default}
}

// row is the text output's DOCUMENT row.
func (d SentDocument) row() []string {
	return []string{"DOCUMENT", d.Document, d.Version, d.DefaultVersion}
}

// line is the table's DOCUMENT line, and why the version is that one.
func (d SentDocument) line() string {
	version := "version " + d.Version + ", the default"
	switch d.Version {
	case "":
		version = "no version holds the deployed content: not sent"
	case d.DefaultVersion:
	default:
		version = "version " + d.Version + ", not the default " + d.DefaultVersion + ", which is not the deployed content"
	}
	return fmt.Sprintf("DOCUMENT  %s %s\n\n", d.Document, version)
}

// RerunTargets is what a rerun sends and to whom, shown before it sends anything.
type RerunTargets struct {
	SentDocument
	Instances []Target `json:"instances"`
	LeftOut   []Target `json:"left_out"`
}

// choose splits the instances found into those the rerun reaches and those it leaves
// out: outside the stack's scope (the launch function's rule), a type without instance
// store, or an architecture storecrypt has no agent for.
func (p rerunPlan) choose(ctx context.Context, e *env, found []ec2types.Instance) (RerunTargets, error) {
	list := RerunTargets{SentDocument: sentDocument(p.document, p.pin), Instances: []Target{}, LeftOut: []Target{}}
	store := &fleet.InstanceStore{EC2: e.EC2}
	if err := store.Learn(ctx, fleet.TypesOf(found)); err != nil {
		return RerunTargets{}, err
	}
	roles := e.roles()
	for _, i := range found {
		t := Target{Instance: aws.ToString(i.InstanceId)}
		in, why, err := p.scope.In(ctx, roles, fleet.Tags(i.Tags), fleet.Profile(i))
		switch {
		case err != nil:
			return RerunTargets{}, err
		case !in:
			t.Why = "outside the stack's scope: " + why
		case !has(store, i.InstanceType):
			t.Why = "type " + string(i.InstanceType) + " has no instance store"
		default:
			t.Architecture, t.Why = p.arch(i)
		}
		if t.Why != "" {
			t.Architecture = ""
			list.LeftOut = append(list.LeftOut, t)
			continue
		}
		list.Instances = append(list.Instances, t)
	}
	byID := func(a, b Target) int { return strings.Compare(a.Instance, b.Instance) }
	slices.SortFunc(list.Instances, byID)
	slices.SortFunc(list.LeftOut, byID)
	return list, nil
}

// arch is the document's Architecture value for an instance: the one --param gives, or
// the instance's own, since the document downloads the agent of the architecture it is
// given; or why there is none.
func (p rerunPlan) arch(i ec2types.Instance) (arch, why string) {
	if given, ok := p.params[document.ArchitectureParameter]; ok {
		return given[0], ""
	}
	arch, ok := document.ArchFromEC2(string(i.Architecture))
	if !ok {
		return "", "storecrypt has no agent for architecture " + string(i.Architecture)
	}
	return arch, ""
}

// printTargets shows a rerun's list: the version and why it is that one, the instances
// it reaches, and those it leaves out with why.
func printTargets(w io.Writer, output string, list RerunTargets) error {
	switch output {
	case "json":
		return writeJSON(w, list)
	case "text":
		rows := [][]string{list.row()}
		for _, t := range list.Instances {
			rows = append(rows, []string{"INSTANCES", t.Instance, t.Architecture})
		}
		for _, t := range list.LeftOut {
			rows = append(rows, []string{"LEFTOUT", t.Instance, t.Why})
		}
		return writeText(w, rows)
	}
	fmt.Fprint(w, list.line())
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintf(tw, "RERUN (%d)\tARCH\n", len(list.Instances))
	for _, t := range list.Instances {
		fmt.Fprintf(tw, "%s\t%s\n", t.Instance, t.Architecture)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	if len(list.LeftOut) == 0 {
		return nil
	}
	fmt.Fprintln(w)
	tw = tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintf(tw, "LEFT OUT (%d)\tWHY\n", len(list.LeftOut))
	for _, t := range list.LeftOut {
		fmt.Fprintf(tw, "%s\t%s\n", t.Instance, t.Why)
	}
	return tw.Flush()
}

// one reruns the document on one instance and shows the agent's report.
func (p rerunPlan) one(ctx context.Context, e *env, t Target, timeout time.Duration) error {
	instance, arch := t.Instance, t.Architecture
	in := p.input(arch, []string{instance})
	sent, err := e.SSM.SendCommand(ctx, in)
	if err != nil {
		return fmt.Errorf("sending %s to %s: %w", p.document, instance, err)
	}
	id := aws.ToString(sent.Command.CommandId)
	fmt.Fprintf(e.errOut, "storecrypt: command %s (%s version %s) sent to %s; waiting (up to %s)\n", id, p.document, p.pin.Version, instance, timeout)
	inv, err := e.wait(ctx, id, instance, timeout)
	if err != nil {
		return err
	}
	rep := fleet.ParseReport(aws.ToString(inv.StandardOutputContent))
	status := fleet.Shown(string(inv.Status), aws.ToString(inv.StatusDetails))
	switch {
	case e.output == "text":
		err = writeText(e.out, [][]string{rerunResult(instance, arch, id, status, inv.ResponseCode, rep).fields()})
	case rep != nil && e.output == "json":
		err = writeJSON(e.out, rep)
	case rep != nil:
		printReport(e.out, rep)
	default:
		fmt.Fprint(e.out, aws.ToString(inv.StandardOutputContent))
	}
	if err != nil {
		return err
	}
	if !fleet.Succeeded(status) {
		return &codeError{code: contract.CLIExitForAgent(contract.ExitCode(inv.ResponseCode)), err: fmt.Errorf("command %s on %s: %s (exit %d)", id, instance, status, inv.ResponseCode)}
	}
	return nil
}

func (e *env) wait(ctx context.Context, commandID, instance string, timeout time.Duration) (*ssm.GetCommandInvocationOutput, error) {
	deadline := time.Now().Add(timeout)
	last := ssmtypes.CommandInvocationStatus("")
	for {
		inv, err := e.SSM.GetCommandInvocation(ctx, &ssm.GetCommandInvocationInput{CommandId: aws.String(commandID), InstanceId: aws.String(instance), PluginName: aws.String(contract.DocumentRunStep)})
		var notYet *ssmtypes.InvocationDoesNotExist
		switch {
		case errors.As(err, &notYet):
			// SSM takes a moment to register the invocation after SendCommand.
		case err != nil:
			return nil, fmt.Errorf("reading command %s: %w", commandID, err)
		case fleet.Ended(string(inv.Status), aws.ToString(inv.StatusDetails)):
			return inv, nil
		case inv.Status != last:
			fmt.Fprintf(e.errOut, "storecrypt: %s\n", inv.Status)
			last = inv.Status
		}
		if time.Now().After(deadline) {
			return nil, fmt.Errorf("command %s on %s did not finish within %s", commandID, instance, timeout)
		}
		if err := e.sleep(ctx); err != nil {
			return nil, err
		}
	}
}

func (e *env) sleep(ctx context.Context) error {
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-time.After(e.poll):
		return nil
	}
}

func printReport(w io.Writer, r *contract.Report) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintf(tw, "RESULT\t%s (exit %d)\n", r.Result, r.ExitCode)
	if r.Error != "" {
		fmt.Fprintf(tw, "ERROR\t%s\n", r.Error)
	}
	if l := r.Layout; l != nil {
		fmt.Fprintf(tw, "VOLUME\t%s %s, %s %d-bit, %d-byte sectors\n", l.Volume, l.RAID, l.Cipher, l.KeySizeBits, l.SectorSize)
		fmt.Fprintf(tw, "KEY\t%s %s\n", l.KeySource, l.KeyID)
		fmt.Fprintf(tw, "MOUNT\t%s on %s (mounted %t)\n", l.Filesystem, l.MountPoint, l.Mounted)
		if l.ProvisionedBy != "" {
			fmt.Fprintf(tw, "MADE BY\t%s\n", l.ProvisionedBy)
		}
	}
	for _, s := range r.Steps {
		fmt.Fprintf(tw, "  %s\t%s\t%.2fs\n", s.Name, s.Action, s.Seconds)
	}
	tw.Flush()
}

// ---- many instances

// RerunResult is how a rerun ended on one instance.
type RerunResult struct {
	Instance     string `json:"instance"`
	Architecture string `json:"architecture"`
	CommandID    string `json:"command_id"`
	// Status is SSM's: Success, Failed, TimedOut, Cancelled, or the final StatusDetails
	// Terminated, Undeliverable, DeliveryTimedOut; Pending or InProgress when --timeout
	// came first.
	Status string `json:"status"`
	// Result is the agent's, from the report it printed; empty when it printed none.
	Result   string `json:"result,omitempty"`
	ExitCode int32  `json:"exit_code"`

	ended bool // fleet.Ended: SSM is done with the invocation
}

func rerunResult(instance, arch, commandID, status string, code int32, rep *contract.Report) RerunResult {
	r := RerunResult{Instance: instance, Architecture: arch, CommandID: commandID, Status: status, ExitCode: code}
	if rep != nil {
		r.Result = rep.Result
	}
	return r
}

func (r RerunResult) fields() []string {
	return []string{r.Instance, r.Architecture, r.CommandID, r.Status, r.Result, strconv.Itoa(int(r.ExitCode))}
}

// outcome is what the summary counts the instance under: the agent's result, or SSM's
// status where the agent said nothing.
func (r RerunResult) outcome() string {
	if r.Result != "" {
		return r.Result
	}
	return r.Status
}

// RerunSummary is a rerun of many instances.
type RerunSummary struct {
	Instances []RerunResult `json:"instances"`
	// Summary counts the instances by result (by SSM's status where the agent printed no
	// report).
	Summary map[string]int `json:"summary"`
}

// sentCommand is one SendCommand of a rerun and where it stands on each instance.
type sentCommand struct {
	id      string
	results []*RerunResult
}

func (s sentCommand) done() bool {
	return !slices.ContainsFunc(s.results, func(r *RerunResult) bool { return !r.ended })
}

// many reruns the document on every instance: one command per architecture and 50
// instances, then waits for them all.
func (p rerunPlan) many(ctx context.Context, e *env, instances []Target, timeout time.Duration) error {
	byArch := map[string][]string{}
	for _, t := range instances {
		byArch[t.Architecture] = append(byArch[t.Architecture], t.Instance)
	}
	var sent []sentCommand
	for _, arch := range slices.Sorted(maps.Keys(byArch)) {
		ids := byArch[arch]
		slices.Sort(ids)
		for chunk := range slices.Chunk(ids, maxInstanceIDs) {
			out, err := e.SSM.SendCommand(ctx, p.input(arch, chunk))
			if err != nil && len(sent) > 0 {
				return fmt.Errorf("sending %s to %s, after commands %s were sent: %w", p.document, strings.Join(chunk, ", "), commandIDs(sent), err)
			}
			if err != nil {
				return fmt.Errorf("sending %s to %s: %w", p.document, strings.Join(chunk, ", "), err)
			}
			s := sentCommand{id: aws.ToString(out.Command.CommandId)}
			for _, id := range chunk {
				s.results = append(s.results, &RerunResult{Instance: id, Architecture: arch, CommandID: s.id, Status: string(ssmtypes.CommandInvocationStatusPending)})
			}
			sent = append(sent, s)
		}
	}
	fmt.Fprintf(e.errOut, "storecrypt: %s version %s sent to %d instances (%s); waiting (up to %s)\n", p.document, p.pin.Version, len(instances), commandIDs(sent), timeout)
	if err := e.waitAll(ctx, sent, len(instances), timeout); err != nil {
		return err
	}
	sum := RerunSummary{Summary: map[string]int{}}
	failed := 0
	for _, s := range sent {
		for _, r := range s.results {
			sum.Instances = append(sum.Instances, *r)
			sum.Summary[r.outcome()]++
			if r.Status != string(ssmtypes.CommandInvocationStatusSuccess) {
				failed++
			}
		}
	}
	slices.SortFunc(sum.Instances, func(a, b RerunResult) int { return strings.Compare(a.Instance, b.Instance) })
	if err := printSummary(e, sum); err != nil {
		return err
	}
	if failed > 0 {
		return &codeError{code: contract.CLIExitRerunFailed, err: fmt.Errorf("%d of %d instances did not succeed", failed, len(instances))}
	}
	return nil
}

func commandIDs(sent []sentCommand) string {
	ids := make([]string, len(sent))
	for n, s := range sent {
		ids[n] = s.id
	}
	return strings.Join(ids, ", ")
}
