package controlplane

import (
	"context"
	"fmt"
	"io"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/eventbridge"
	"github.com/aws/aws-sdk-go-v2/service/kms"
	"github.com/aws/aws-sdk-go-v2/service/ssm"

	"github.com/storecrypt/storecrypt/internal/contract"
	"github.com/storecrypt/storecrypt/internal/fakeaws"
	"github.com/storecrypt/storecrypt/internal/launch"
	"github.com/storecrypt/storecrypt/internal/ledger"
	"github.com/storecrypt/storecrypt/internal/revoke"
	"github.com/storecrypt/storecrypt/test/deployment"
	"github.com/storecrypt/storecrypt/test/emu"
)

// FleetRevokeResult is one `storecrypt revoke --all` over a fleet of the fake account,
// every API throttled at its documented rate (Rates), the ledger in dynalite. Times are
// simulated seconds from the responder's confirmation; KMS's own propagation (up to five
// minutes for a tag or a revoked grant) comes after each and is not in them.
type FleetRevokeResult struct {
	Instances int `json:"instances"`
	// Calls are the AWS calls but the ledger's (throttled attempts included);
	// LedgerCalls the ledger's DynamoDB calls.
	Calls            int            `json:"calls"`
	LedgerCalls      int            `json:"ledger_calls"`
	CallsPerInstance float64        `json:"calls_per_instance"`
	ByAPI            map[string]int `json:"calls_by_api"`
	Throttled        int            `json:"throttled_attempts"`
	// CallsToKeyRefusal counts the calls up to and including the key tag that refuses
	// every instance: the fleet is cut off at the key after this many.
	CallsToKeyRefusal int     `json:"calls_to_key_refusal"`
	KeyTaggedS        float64 `json:"key_tagged_s"`
	LastGrantRevokedS float64 `json:"last_grant_revoked_s"`
	LastCommandS      float64 `json:"last_command_s"`
	Revoked           int     `json:"revoked"`
	Failed            int     `json:"failed"`
}

// FleetRevoke grants n running instances the key as the launch function does, then runs
// the fleet revoke the CLI runs (internal/revoke), one responder, one call at a time.
func FleetRevoke(ctx context.Context, n int) (FleetRevokeResult, error) {
	w := fakeaws.NewAccount(nil)
	d, err := deployment.Into(w, fakeaws.KeyARN)
	if err != nil {
		return FleetRevokeResult{}, err
	}
	insts := make([]revoke.Instance, n)
	k := kms.NewFromConfig(w.Config())
	for i := range insts {
		id := fmt.Sprintf("i-%017x", i+1)
		w.AddInstance(id, "i4i.large", fakeaws.Profile(fakeaws.KeyUser), nil, launched)
		insts[i] = revoke.Instance{ID: id, LaunchTime: launched}
		if _, err := k.CreateGrant(ctx, launch.GrantInput(fakeaws.KeyARN, id, "arn:aws:ec2:us-east-1:111122223333:instance/"+id, fakeaws.KeyUser, deployment.LaunchRole("aws"))); err != nil {
			return FleetRevokeResult{}, fmt.Errorf("granting %s: %w", id, err)
		}
	}
	w.SettleGrants()

	db, err := emu.NewDynamoDB()
	if err != nil {
		return FleetRevokeResult{}, err
	}
	defer db.Close()
	if err := db.CreateTable(ctx, ledger.Table(emu.LedgerTable)); err != nil {
		return FleetRevokeResult{}, err
	}
	ledgerDB, ledgerCalls := counting(db.Client)
	for _, inst := range insts {
		// The launch function's first record of each launch: the item the mark goes on.
		if err := (&ledger.Ledger{DB: db.Client, Table: emu.LedgerTable}).Record(ctx, ledger.Launch{InstanceID: inst.ID, LaunchTime: launched},
			ledger.Entry{ID: "launch", At: launched, By: "launch", Status: contract.StatusEncrypted}); err != nil {
			return FleetRevokeResult{}, err
		}
	}

	c := &clock{parallel: 1}
	res := FleetRevokeResult{Instances: n}
	before := w.Calls()
	at := map[string]time.Duration{}
	w.Fault = func(service, op string, attempt int) error {
		err := c.hook(service, op, attempt)
		if err == nil {
			at[service+"."+op] = c.now
			if op == "TagResource" {
				res.CallsToKeyRefusal = w.TotalCalls() - sum(before)
			}
		}
		return err
	}
	cfg := c.config(w)
	r := &revoke.Runner{KMS: kms.NewFromConfig(cfg), SSM: ssm.NewFromConfig(cfg), Events: eventbridge.NewFromConfig(cfg),
		Ledger: &ledger.Ledger{DB: ledgerDB, Table: emu.LedgerTable}, KeyARN: fakeaws.KeyARN,
		Documents: revoke.Documents{Revoke: deployed(d, 0), Resume: deployed(d, 1), Shred: deployed(d, 2)},
		By:        "arn:aws:sts::111122223333:assumed-role/responder/bench", Reason: "bench fleet revoke", Granted: true, Progress: io.Discard}
	out, err := r.RevokeFleet(ctx, insts)
	if err != nil {
		return res, err
	}
	for _, x := range out {
		if x.Result == revoke.Revoked {
			res.Revoked++
		} else {
			res.Failed++
		}
	}
	calls := w.Calls()
	res.ByAPI = map[string]int{}
	for op, v := range calls {
		if v -= before[op]; v > 0 {
			res.ByAPI[op] = v
			res.Calls += v
		}
	}
	res.LedgerCalls, res.Throttled = ledgerCalls.total(), c.throttled
	res.CallsPerInstance = float64(res.Calls+res.LedgerCalls) / float64(n)
	res.KeyTaggedS, res.LastGrantRevokedS, res.LastCommandS = at["KMS.TagResource"].Seconds(), at["KMS.RevokeGrant"].Seconds(), at["SSM.SendCommand"].Seconds()
	return res, nil
}

// deployed is the i-th revocation document as the CLI pins it: the version deployment.Into
// registers with the deployed content, its first.
func deployed(d deployment.Deployment, i int) revoke.Document {
	return revoke.Document{Name: d.Env[contract.RevocationDocuments[i].EnvName], Version: "1"}
}

func sum(m map[string]int) int {
	n := 0
	for _, v := range m {
		n += v
	}
	return n
}

// ByAPI lists calls per API, most first, as `KMS.RevokeGrant 1000`.
func ByAPI(m map[string]int) string {
	ops := slices.SortedFunc(maps.Keys(m), func(a, b string) int {
		if m[a] != m[b] {
			return m[b] - m[a]
		}
		return strings.Compare(a, b)
	})
	parts := make([]string, len(ops))
	for i, op := range ops {
		parts[i] = fmt.Sprintf("%s %d", op, m[op])
	}
	return strings.Join(parts, ", ")
}
