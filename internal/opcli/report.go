package opcli

import (
	"context"
	"encoding/csv"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kms"
	"github.com/spf13/pflag"

	"github.com/storecrypt/storecrypt/internal/audit"
	"github.com/storecrypt/storecrypt/internal/binding"
	"github.com/storecrypt/storecrypt/internal/contract"
	"github.com/storecrypt/storecrypt/internal/ledger"
)

// reportPeriod is the period a report covers unless --since says otherwise.
const reportPeriod = 30 * 24 * time.Hour

func runReport(fs *pflag.FlagSet) checkFunc {
	sinceFlag := fs.String("since", "", "the first day (YYYY-MM-DD, UTC) or time (RFC 3339) of launches to report (default: 30 days before --until)")
	untilFlag := fs.String("until", "", "the end of the period, not included (default: now)")
	org := defineOrgFlags(fs)
	return func(e *env) (runFunc, error) {
		if _, _, err := period(*sinceFlag, *untilFlag, e.now()); err != nil {
			return nil, err
		}
		if err := org.check(fs, e); err != nil {
			return nil, err
		}
		return func(ctx context.Context, e *env) error {
			now := e.now()
			// Again with the clients' clock, which the defaults are relative to.
			since, until, err := period(*sinceFlag, *untilFlag, now)
			if err != nil {
				return err
			}
			if org.accounts != nil {
				return org.run(ctx, e, since, until, now)
			}
			p, err := gather(ctx, e, since, until)
			if err != nil {
				return err
			}
			r := audit.Build(p.Items, p.Running, since, until, now, p.Key)
			switch e.output {
			case "json":
				return writeJSON(e.out, r)
			case "html":
				return r.HTML(e.out)
			}
			return writeLaunches(e, r, false, func(tw io.Writer) {
				fmt.Fprintf(tw, "KEY\t%s (%s, rotation %s)\n", r.Key.ARN, r.Key.State, rotation(r.Key.Rotation))
			})
		}, nil
	}
}

// gather reads one account and region's evidence of the period: the ledger's launches,
// the running instances in scope it has no item for, and the key.
func gather(ctx context.Context, e *env, since, until time.Time) (audit.Part, error) {
	sc, err := readStack(ctx, e)
	if err != nil {
		return audit.Part{}, err
	}
	if sc.LedgerTable == "" {
		return audit.Part{}, fmt.Errorf("stack %s has no %s output: deploy this version of storecrypt, whose ledger the report reads", e.stack, contract.OutputLedgerTable)
	}
	book := &ledger.Ledger{DB: e.DynamoDB, Table: sc.LedgerTable}
	fmt.Fprintf(e.errOut, "reading the launches from %s to %s in %s\n", since.Format(time.RFC3339), until.Format(time.RFC3339), sc.LedgerTable)
	items, err := book.Launches(ctx, since, until)
	if err != nil {
		return audit.Part{}, err
	}
	running, err := unrecorded(ctx, e, sc, items, since, until)
	if err != nil {
		return audit.Part{}, err
	}
	key, err := describeKey(ctx, e.KMS, sc.KeyARN)
	if err != nil {
		return audit.Part{}, err
	}
	return audit.Part{Items: items, Running: running, Key: key}, nil
}

// writeLaunches writes the report as text, csv or a table; merged reports name each
// launch's account and region. keys writes the table's line (or lines) on the keys.
func writeLaunches(e *env, r audit.Report, merged bool, keys func(io.Writer)) error {
	header, fields := columns(merged)
	switch e.output {
	case "text":
		var rows [][]string
		for _, it := range r.Launches {
			rows = append(rows, fields(it))
		}
		return writeText(e.out, rows)
	case "csv":
		w := csv.NewWriter(e.out)
		_ = w.Write(header)
		for _, it := range r.Launches {
			_ = w.Write(fields(it))
		}
		w.Flush()
		return w.Error()
	}
	return reportTable(e, r, merged, keys)
}

// columns are the launches' columns; a merged report's begin with the account and region.
func columns(merged bool) ([]string, func(ledger.Item) []string) {
	if !merged {
		return launchHeader, launchFields
	}
	return append([]string{"account", "region"}, launchHeader...),
		func(it ledger.Item) []string { return append([]string{it.Account, it.Region}, launchFields(it)...) }
}

func rotation(on bool) string { return map[bool]string{true: "on", false: "off"}[on] }

// unrecorded are the running instances in scope, launched in the period, that the
// ledger has no item for: storecrypt has not seen them, and the report says so.
func unrecorded(ctx context.Context, e *env, sc stackConfig, items []ledger.Item, since, until time.Time) ([]ledger.Item, error) {
	insts, err := listTracked(ctx, e, sc)
	if err != nil {
		return nil, err
	}
	seen := map[string]bool{}
	for _, it := range items {
		seen[it.InstanceID+"/"+it.LaunchTime] = true
	}
	roles := &binding.Checker{IAM: e.IAM, KMS: e.KMS, TTL: time.Hour}
	var out []ledger.Item
	for _, i := range insts {
		launched := aws.ToTime(i.LaunchTime).UTC()
		id := aws.ToString(i.InstanceId)
		if !i.inScope || launched.Before(since) || !launched.Before(until) || seen[id+"/"+launched.Format(time.RFC3339)] {
			continue
		}
		it := ledger.Item{InstanceID: id, LaunchTime: launched.Format(time.RFC3339), InstanceType: string(i.InstanceType)}
		if i.IamInstanceProfile != nil {
			if it.Role, err = roles.Role(ctx, aws.ToString(i.IamInstanceProfile.Arn)); err != nil {
				return nil, err
			}
		}
		out = append(out, it)
	}
	return out, nil
}

func describeKey(ctx context.Context, c KMS, arn string) (audit.Key, error) {
	d, err := c.DescribeKey(ctx, &kms.DescribeKeyInput{KeyId: aws.String(arn)})
	if err != nil {
		return audit.Key{}, fmt.Errorf("describing the key %s: %w", arn, err)
	}
	rs, err := c.GetKeyRotationStatus(ctx, &kms.GetKeyRotationStatusInput{KeyId: aws.String(arn)})
	if err != nil {
		return audit.Key{}, fmt.Errorf("reading the rotation of %s: %w", arn, err)
	}
	return audit.Key{ARN: arn, State: string(d.KeyMetadata.KeyState), Rotation: rs.KeyRotationEnabled}, nil
}

// period is the period --since and --until give, their defaults relative to now.
func period(sinceFlag, untilFlag string, now time.Time) (since, until time.Time, err error) {
	until, err = parseWhen(untilFlag, now)
	if err != nil {
		return since, until, usageErr("--until: " + err.Error())
	}
	since, err = parseWhen(sinceFlag, until.Add(-reportPeriod))
	if err != nil {
		return since, until, usageErr("--since: " + err.Error())
	}
	if !since.Before(until) {
		return since, until, usageErr(fmt.Sprintf("--since %s is not before --until %s", since.Format(time.RFC3339), until.Format(time.RFC3339)))
	}
	return since, until, nil
}

// parseWhen reads a day (UTC midnight) or an RFC 3339 time; empty is def.
func parseWhen(v string, def time.Time) (time.Time, error) {
	if v == "" {
		return def, nil
	}
	if t, err := time.Parse(time.DateOnly, v); err == nil {
		return t, nil
	}
	t, err := time.Parse(time.RFC3339, v)
	if err != nil {
		return time.Time{}, fmt.Errorf("%q: want YYYY-MM-DD or an RFC 3339 time", v)
	}
	return t.UTC(), nil
}

var launchHeader = []string{"instance", "launched", "type", "role", "status", "reason", "encrypted_at", "seconds_to_encrypted", "key_source", "cipher",
	"luks_uuid", "agent_version", "document_hash", "command_id", "terminated_at", "provisioned_by",
	"revoked_at", "revoked_by", "revoked_reason", "shredded_at", "shredded_by", "shredded_reason", "resumed_at", "resumed_by", "resumed_reason"}

func launchFields(it ledger.Item) []string {
	return []string{it.InstanceID, it.LaunchTime, it.InstanceType, it.Role, it.Status, it.Reason, it.EncryptedAt, it.SecondsToEncrypted, it.KeySource,
		it.Cipher, it.LUKSUUID, it.AgentVersion, it.DocumentHash, it.CommandID, it.TerminatedAt, it.ProvisionedBy,
		it.RevokedAt, it.RevokedBy, it.RevokedReason, it.ShreddedAt, it.ShreddedBy, it.ShreddedReason, it.ResumedAt, it.ResumedBy, it.ResumedReason}
}

func reportTable(e *env, r audit.Report, merged bool, keys func(io.Writer)) error {
	tw := tabwriter.NewWriter(e.out, 0, 0, 2, ' ', 0)
	fmt.Fprintf(tw, "PERIOD\t%s to %s\n", r.Since.Format(time.RFC3339), r.Until.Format(time.RFC3339))
	keys(tw)
	fmt.Fprintf(tw, "COVERAGE\t%.1f%% (%d of %d launches in scope with instance store encrypted)\n", r.Coverage.Percent, r.Coverage.Encrypted, r.Coverage.InScope)
	for _, g := range [][]audit.Coverage{r.ByRole, r.ByType} {
		for _, c := range g {
			fmt.Fprintf(tw, "  %s\t%.1f%% (%d of %d)\n", c.Name, c.Percent, c.Encrypted, c.InScope)
		}
	}
	t := r.TimeToEncrypted
	fmt.Fprintf(tw, "LAUNCH TO ENCRYPTED\tp50 %gs, p95 %gs, max %gs (%d launches)\n", t.P50, t.P95, t.Max, t.N)
	fmt.Fprintf(tw, "EXCEPTIONS\t%d\n", len(r.Exceptions))
	for _, x := range r.Exceptions {
		where := ""
		if merged {
			where = x.Account + " " + x.Region + " "
		}
		fmt.Fprintf(tw, "  %s%s\t%s %s launched %s\n", where, x.InstanceID, x.Status, orDash(x.Reason), x.LaunchTime)
	}
	fmt.Fprintf(tw, "REVOKED OR SHREDDED\t%d\n", len(r.Revoked))
	for _, x := range r.Revoked {
		where := ""
		if merged {
			where = x.Account + " " + x.Region + " "
		}
		for _, l := range markLines(where+x.InstanceID, x.Marks) {
			fmt.Fprintln(tw, l)
		}
	}
	fmt.Fprintln(tw)
	if err := tw.Flush(); err != nil {
		return err
	}
	tw = tabwriter.NewWriter(e.out, 0, 0, 2, ' ', 0)
	cols := []int{0, 1, 2, 4, 5, 6, 7, 9, 13, 14} // the columns that fit a terminal; csv and json have all
	header, fields := columns(merged)
	if merged {
		for i := range cols {
			cols[i] += 2
		}
		cols = append([]int{0, 1}, cols...)
	}
	head := make([]string, len(cols))
	for n, c := range cols {
		head[n] = strings.ToUpper(header[c])
	}
	fmt.Fprintln(tw, strings.Join(head, "\t"))
	for _, it := range r.Launches {
		f := fields(it)
		row := make([]string, len(cols))
		for n, c := range cols {
			row[n] = orDash(f[c])
		}
		fmt.Fprintln(tw, strings.Join(row, "\t"))
	}
	return tw.Flush()
}
