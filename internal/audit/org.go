package audit

import (
	"cmp"
	"io"
	"slices"
	"time"

	"github.com/storecrypt/storecrypt/internal/ledger"
)

// Part is one account and region's evidence, as a single report gathers it: the ledger's
// items of the period, the running instances in scope it has no item for, and the key.
type Part struct {
	Account, Region string
	Items, Running  []ledger.Item
	Key             Key
}

// Place is one account and region's line of an organization's report, counted by the
// same rules as a single report's.
type Place struct {
	Account         string      `json:"account"`
	Region          string      `json:"region"`
	Key             Key         `json:"key"`
	Coverage        Coverage    `json:"coverage"`
	Exceptions      int         `json:"exceptions"`
	Revoked         int         `json:"revoked"` // launches revoked or shredded
	TimeToEncrypted Percentiles `json:"time_to_encrypted_seconds"`
}

// Unreachable is an account and region whose evidence could not be read, and why. An
// organization's report lists each: a missing account must not read as a covered one.
type Unreachable struct {
	Account string `json:"account"`
	Region  string `json:"region"`
	Reason  string `json:"reason"`
}

// OrgReport is one period's evidence over several accounts and regions: the launches of
// every place reached, counted together, each place's own coverage, and every place
// that could not be read.
type OrgReport struct {
	Report
	Places      []Place       `json:"places"`
	Unreachable []Unreachable `json:"unreachable"`
}

// Merge makes the organization's report of the parts reached and the places not.
// Every launch is marked with the account and region whose ledger or EC2 it came from.
func Merge(parts []Part, unreachable []Unreachable, since, until, now time.Time) OrgReport {
	o := OrgReport{Places: []Place{}, Unreachable: slices.Clone(unreachable)}
	if o.Unreachable == nil {
		o.Unreachable = []Unreachable{}
	}
	var items, running []ledger.Item
	for _, p := range parts {
		mark := func(in []ledger.Item) []ledger.Item {
			out := slices.Clone(in)
			for i := range out {
				out[i].Account, out[i].Region = p.Account, p.Region
			}
			return out
		}
		p.Items, p.Running = mark(p.Items), mark(p.Running)
		items, running = append(items, p.Items...), append(running, p.Running...)
		r := build(p.Items, p.Running, since, until, now)
		o.Places = append(o.Places, Place{Account: p.Account, Region: p.Region, Key: p.Key, Coverage: r.Coverage, Exceptions: len(r.Exceptions), Revoked: len(r.Revoked), TimeToEncrypted: r.TimeToEncrypted})
	}
	o.Report = build(items, running, since, until, now)
	slices.SortFunc(o.Places, func(a, b Place) int {
		return cmp.Or(cmp.Compare(a.Account, b.Account), cmp.Compare(a.Region, b.Region))
	})
	slices.SortFunc(o.Unreachable, func(a, b Unreachable) int {
		return cmp.Or(cmp.Compare(a.Account, b.Account), cmp.Compare(a.Region, b.Region))
	})
	return o
}

// Merged says the page is an organization's: it names each launch's account and region.
func (o OrgReport) Merged() bool { return o.Places != nil }

// HTML writes the organization's report as one page.
func (o OrgReport) HTML(w io.Writer) error {
	return tmpl.Execute(w, o)
}
