// Package audit builds the report an auditor reads for a period from the ledger: every
// launch of an instance in scope, coverage (encrypted ÷ in scope with instance store)
// overall and per role and instance type, the time from launch to encrypted, and every
// exception with its reason. It decides nothing from tags: the ledger is written only by
// the functions, from SSM's record and the agent's evidence.
package audit

import (
	"cmp"
	"math"
	"slices"
	"strconv"
	"time"

	"github.com/storecrypt/storecrypt/internal/contract"
	"github.com/storecrypt/storecrypt/internal/ledger"
)

// NoRecord is the status of a running instance in scope that the ledger has no item for:
// storecrypt has not seen it (yet).
const NoRecord = "no-record"

// Report is one period's evidence.
type Report struct {
	Since           time.Time     `json:"since"`
	Until           time.Time     `json:"until"`
	Generated       time.Time     `json:"generated"`
	Key             *Key          `json:"key,omitempty"` // nil in an organization's report: each place has its own
	Coverage        Coverage      `json:"coverage"`
	ByRole          []Coverage    `json:"by_role"`
	ByType          []Coverage    `json:"by_type"`
	TimeToEncrypted Percentiles   `json:"time_to_encrypted_seconds"`
	Daily           []Coverage    `json:"daily"` // by the day of launch
	Exceptions      []ledger.Item `json:"exceptions"`
	// Revoked are the launches a responder revoked or shredded, or revoked and resumed,
	// with who, when and why.
	// They count as encrypted when they were: cutting an instance off its data is a
	// control acting, not one missing.
	Revoked  []ledger.Item `json:"revoked"`
	Launches []ledger.Item `json:"launches"`
}

// Key is the stack's key as KMS describes it when the report is made.
type Key struct {
	ARN      string `json:"arn"`
	State    string `json:"state"`
	Rotation bool   `json:"rotation"`
}

// Coverage counts one group's launches of instances in scope with instance store.
type Coverage struct {
	Name      string  `json:"name"`
	InScope   int     `json:"in_scope"`
	Encrypted int     `json:"encrypted"`
	Percent   float64 `json:"percent"` // encrypted ÷ in scope, 100 when there is none in scope
}

// Percentiles of seconds from launch to encrypted, nearest-rank.
type Percentiles struct {
	N   int     `json:"n"`
	P50 float64 `json:"p50"`
	P95 float64 `json:"p95"`
	Max float64 `json:"max"`
}

// Build makes the report for the launches in [since, until). items are the ledger's items
// of the period; running are the running instances in scope without an item, each
// counted as a launch nobody recorded.
func Build(items, running []ledger.Item, since, until, now time.Time, key Key) Report {
	r := build(items, running, since, until, now)
	r.Key = &key
	return r
}

func build(items, running []ledger.Item, since, until, now time.Time) Report {
	r := Report{Since: since.UTC(), Until: until.UTC(), Generated: now.UTC(), Exceptions: []ledger.Item{}, Revoked: []ledger.Item{}, Launches: []ledger.Item{}}
	for _, it := range running {
		it.Status = NoRecord
		if it.Entries == nil {
			it.Entries = []ledger.EntryRecord{}
		}
		items = append(items, it)
	}
	slices.SortFunc(items, func(a, b ledger.Item) int {
		return cmp.Or(cmp.Compare(a.LaunchTime, b.LaunchTime), cmp.Compare(a.InstanceID, b.InstanceID), cmp.Compare(a.Account, b.Account), cmp.Compare(a.Region, b.Region))
	})
	byRole, byType, daily := map[string]*Coverage{}, map[string]*Coverage{}, map[string]*Coverage{}
	var seconds []float64
	for _, it := range items {
		r.Launches = append(r.Launches, it)
		if it.RevokedAt != "" || it.ShreddedAt != "" || it.ResumedAt != "" {
			r.Revoked = append(r.Revoked, it)
		}
		if !counted(it) {
			continue
		}
		encrypted := it.Status == contract.StatusEncrypted || it.EncryptedAt != ""
		day := it.LaunchTime
		if len(day) >= 10 {
			day = day[:10]
		}
		for _, c := range []*Coverage{&r.Coverage, group(byRole, orUnknown(it.Role)), group(byType, orUnknown(it.InstanceType)), group(daily, day)} {
			c.InScope++
			if encrypted {
				c.Encrypted++
			}
		}
		if !encrypted {
			r.Exceptions = append(r.Exceptions, it)
		}
		if s, ok := parseSeconds(it.SecondsToEncrypted); ok {
			seconds = append(seconds, s)
		}
	}
	r.Coverage.Name = "all"
	r.Coverage.Percent = percent(r.Coverage)
	r.ByRole, r.ByType, r.Daily = sorted(byRole), sorted(byType), sorted(daily)
	r.TimeToEncrypted = percentiles(seconds)
	return r
}

// counted: the launch is of an instance in scope with instance store. An instance type
// without instance store has nothing to encrypt.
func counted(it ledger.Item) bool {
	return it.Status != contract.StatusSkipped || it.Reason != string(contract.ReasonNoInstanceStore)
}

func group(m map[string]*Coverage, name string) *Coverage {
	if m[name] == nil {
		m[name] = &Coverage{Name: name}
	}
	return m[name]
}

func orUnknown(s string) string {
	if s == "" {
		return "(unknown)"
	}
	return s
}

func sorted(m map[string]*Coverage) []Coverage {
	out := make([]Coverage, 0, len(m))
	for _, c := range m {
		c.Percent = percent(*c)
		out = append(out, *c)
	}
	slices.SortFunc(out, func(a, b Coverage) int { return cmp.Compare(a.Name, b.Name) })
	return out
}

func percent(c Coverage) float64 {
	if c.InScope == 0 {
		return 100
	}
	return math.Round(1000*float64(c.Encrypted)/float64(c.InScope)) / 10
}

func percentiles(s []float64) Percentiles {
	if len(s) == 0 {
		return Percentiles{}
	}
	slices.Sort(s)
	rank := func(p float64) float64 { return s[int(math.Ceil(p*float64(len(s))))-1] }
	return Percentiles{N: len(s), P50: rank(0.50), P95: rank(0.95), Max: s[len(s)-1]}
}

func parseSeconds(v string) (float64, bool) {
	f, err := strconv.ParseFloat(v, 64)
	return f, err == nil
}
