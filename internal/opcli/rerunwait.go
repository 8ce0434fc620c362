package opcli

import (
	"context"
	"fmt"
	"io"
	"maps"
	"slices"
	"strconv"
	"text/tabwriter"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ssm"

	"github.com/storecrypt/storecrypt/internal/contract"
	"github.com/storecrypt/storecrypt/internal/fleet"
)

// Waiting for a rerun of many instances, and its summary.

// waitAll polls each command that has instances still running with
// ListCommandInvocations, 50 invocations a call, and reads an instance's agent result
// with GetCommandInvocation once, when it ends: for n instances that is n/50 calls a poll
// and n in all, where GetCommandInvocation alone would be n a poll. --timeout is no
// error: what has not ended by then is reported as it stands.
func (e *env) waitAll(ctx context.Context, sent []sentCommand, total int, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	prog := &progress{w: e.errOut, live: e.live}
	defer prog.end()
	for {
		for _, s := range sent {
			if s.done() {
				continue
			}
			if err := e.refresh(ctx, s); err != nil {
				return err
			}
		}
		n := counts{total: total}
		for _, s := range sent {
			for _, r := range s.results {
				n.add(r)
			}
		}
		prog.show(n.String())
		if n.done == total || time.Now().After(deadline) {
			return nil
		}
		if err := e.sleep(ctx); err != nil {
			return err
		}
	}
}

// refresh brings the results of one command up to date.
func (e *env) refresh(ctx context.Context, s sentCommand) error {
	byID := map[string]*RerunResult{}
	for _, r := range s.results {
		byID[r.Instance] = r
	}
	p := ssm.NewListCommandInvocationsPaginator(e.SSM, &ssm.ListCommandInvocationsInput{CommandId: aws.String(s.id), MaxResults: aws.Int32(50)})
	for p.HasMorePages() {
		page, err := p.NextPage(ctx)
		if err != nil {
			return fmt.Errorf("listing the invocations of command %s: %w", s.id, err)
		}
		for _, inv := range page.CommandInvocations {
			r := byID[aws.ToString(inv.InstanceId)]
			if r == nil || r.ended {
				continue
			}
			status, details := string(inv.Status), aws.ToString(inv.StatusDetails)
			r.Status, r.ended = fleet.Shown(status, details), fleet.Ended(status, details)
			if !r.ended || r.Status != status {
				// Still running; or ended by its details alone, where no agent ran and
				// there is nothing to read.
				continue
			}
			out, err := e.SSM.GetCommandInvocation(ctx, &ssm.GetCommandInvocationInput{CommandId: aws.String(s.id), InstanceId: inv.InstanceId, PluginName: aws.String(contract.DocumentRunStep)})
			if err != nil {
				return fmt.Errorf("reading command %s on %s: %w", s.id, r.Instance, err)
			}
			*r = rerunResult(r.Instance, r.Architecture, s.id, status, out.ResponseCode, fleet.ParseReport(aws.ToString(out.StandardOutputContent)))
			r.ended = true
		}
	}
	return nil
}

// counts are how far a rerun of many instances is.
type counts struct{ total, done, ok, failed int }

func (c *counts) add(r *RerunResult) {
	if !r.ended {
		return
	}
	c.done++
	if fleet.Succeeded(r.Status) {
		c.ok++
	} else {
		c.failed++
	}
}

func (c counts) String() string {
	return fmt.Sprintf("storecrypt: %d/%d done, %d ok, %d failed, %d pending", c.done, c.total, c.ok, c.failed, c.total-c.done)
}

// progress shows how far a rerun is on stderr. On a terminal it is one line, rewritten in
// place; anywhere else (a CI log, a file) each change is a line of its own, since a
// carriage return there is noise, and the same line again after a minute without one, so
// a long wait does not look like a hang.
type progress struct {
	w    io.Writer
	live bool
	last string
	at   time.Time
}

// heartbeat is how often progress repeats an unchanged line where it cannot rewrite it.
const heartbeat = time.Minute

func (p *progress) show(line string) {
	if line == p.last && (p.live || time.Since(p.at) < heartbeat) {
		return
	}
	p.last, p.at = line, time.Now()
	if p.live {
		fmt.Fprintf(p.w, "\r\033[K%s", line) // \033[K clears what a longer line left
		return
	}
	fmt.Fprintln(p.w, line)
}

// end ends the live line, so that what follows starts on a line of its own.
func (p *progress) end() {
	if p.live && p.last != "" {
		fmt.Fprintln(p.w)
	}
}

func printSummary(e *env, sum RerunSummary) error {
	outcomes := slices.Sorted(maps.Keys(sum.Summary))
	switch e.output {
	case "json":
		return writeJSON(e.out, sum)
	case "text":
		// As the aws CLI writes nested lists: each row starts with its list's name.
		var rows [][]string
		for _, r := range sum.Instances {
			rows = append(rows, append([]string{"INSTANCES"}, r.fields()...))
		}
		for _, o := range outcomes {
			rows = append(rows, []string{"SUMMARY", o, strconv.Itoa(sum.Summary[o])})
		}
		return writeText(e.out, rows)
	}
	tw := tabwriter.NewWriter(e.out, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "INSTANCE\tARCH\tCOMMAND\tSTATUS\tRESULT\tEXIT")
	for _, r := range sum.Instances {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%d\n", r.Instance, r.Architecture, r.CommandID, r.Status, orDash(r.Result), r.ExitCode)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	return printCounts(e.out, sum.Summary)
}

// printCounts is the count of instances per result, under the table of instances.
func printCounts(w io.Writer, counts map[string]int) error {
	fmt.Fprintln(w)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "RESULT\tINSTANCES")
	for _, o := range slices.Sorted(maps.Keys(counts)) {
		fmt.Fprintf(tw, "%s\t%d\n", o, counts[o])
	}
	return tw.Flush()
}
