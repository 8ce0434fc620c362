package launch

import (
	"context"
	"fmt"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kms"
	kmstypes "github.com/aws/aws-sdk-go-v2/service/kms/types"

	"github.com/storecrypt/storecrypt/internal/contract"
	"github.com/storecrypt/storecrypt/internal/policy"
)

// KMS is the part of the KMS client the function uses to grant an instance its Decrypt,
// and (the sweep) to see which instances have a grant.
type KMS interface {
	CreateGrant(ctx context.Context, in *kms.CreateGrantInput, optFns ...func(*kms.Options)) (*kms.CreateGrantOutput, error)
	ListGrants(ctx context.Context, in *kms.ListGrantsInput, optFns ...func(*kms.Options)) (*kms.ListGrantsOutput, error)
}

// notRevoked skips (and tags) the instances the ledger marks revoked or shredded: no
// grant, no command. A failure to read the ledger retries the instance later.
func (b *batch) notRevoked(ctx context.Context, in []*instance) []*instance {
	h := b.h
	if h.Ledger == nil {
		return in
	}
	var keep []*instance
	for _, inst := range in {
		why, err := h.Ledger.Revoked(ctx, inst.id)
		switch {
		case err != nil:
			b.later(inst, err.Error())
		case why != "":
			h.log(inst).Warn("not granting the key nor sending the document: the ledger marks the instance", "reason", string(why))
			b.tag(inst, contract.StatusSkipped, why, "", 0)
		default:
			keep = append(keep, inst)
		}
	}
	return keep
}

// granted gives each instance (kms-datakey) the grant that lets its role Decrypt under
// its own instance's context, before the document that needs it is sent: the key policy
// no longer allows that Decrypt standing, so that revoking the grant refuses it at the
// key. The grant is named after the instance, so a retried batch gets the same grant
// back, not a second one. Until the grant has propagated (up to five minutes), the
// agent's Decrypt may be refused and waits in its key-unavailable retry: the token that
// would spare that wait is not passed, the document having no parameter for it yet.
func (b *batch) granted(ctx context.Context, in []*instance) []*instance {
	h := b.h
	if h.Config.Agent.KeySource != contract.KeySourceKMSDataKey {
		return in
	}
	var keep []*instance
	for _, inst := range in {
		if err := h.grant(ctx, inst); err != nil {
			b.later(inst, err.Error())
			continue
		}
		keep = append(keep, inst)
	}
	return keep
}

// grant makes inst's grant, or gets it back when it exists (its Name).
func (h *Handler) grant(ctx context.Context, inst *instance) error {
	arn := contract.InstanceARN(policy.Partition(h.Config.KeyARN), h.region(), policy.AccountOf(inst.role), inst.id)
	out, err := h.KMS.CreateGrant(ctx, &kms.CreateGrantInput{
		KeyId: aws.String(h.Config.KeyARN), Name: aws.String(inst.id),
		GranteePrincipal: aws.String(inst.role), RetiringPrincipal: aws.String(h.Config.LaunchRole),
		Operations:  []kmstypes.GrantOperation{kmstypes.GrantOperationDecrypt},
		Constraints: &kmstypes.GrantConstraints{EncryptionContextSubset: map[string]string{contract.ContextInstanceARN: arn}},
	})
	if err != nil {
		return fmt.Errorf("granting the instance's role Decrypt: %w", err)
	}
	h.log(inst).Info("granted the instance's role Decrypt under its own context", "grant_id", aws.ToString(out.GrantId), "grantee", inst.role)
	return nil
}

// grantMissing is the upgrade to grants: an instance running since before the key policy
// took its standing Decrypt away, already encrypted (so not due), has no grant, and its
// next boot would wait on the key until one comes. Each sweep grants the in-scope
// instances it does not queue that have none (one ListGrants read of the key, paged, and
// a CreateGrant per instance lacking one), skipping those the ledger marks revoked. A
// failure is the next sweep's to retry; until then the instance's boot waits in the
// agent's key-unavailable retry.
func (h *Handler) grantMissing(ctx context.Context, settled []*instance) []string {
	if h.Config.Agent.KeySource != contract.KeySourceKMSDataKey || len(settled) == 0 {
		return nil
	}
	have := map[string]bool{}
	p := kms.NewListGrantsPaginator(h.KMS, &kms.ListGrantsInput{KeyId: aws.String(h.Config.KeyARN), Limit: aws.Int32(100)})
	for p.HasMorePages() {
		page, err := p.NextPage(ctx)
		if err != nil {
			h.Log.Error("listing the key's grants; granting at the next sweep", "error", err.Error())
			return nil
		}
		for _, g := range page.Grants {
			have[aws.ToString(g.Name)] = true
		}
	}
	var granted []string
	for _, inst := range settled {
		if have[inst.id] {
			continue
		}
		if err := h.grantRunning(ctx, inst); err != nil {
			h.log(inst).Error("granting a running instance its Decrypt; at the next sweep", "error", err.Error())
			continue
		}
		if inst.role != "" {
			granted = append(granted, inst.id)
		}
	}
	return granted
}

// grantRunning grants a running instance that lacks its grant, unless its profile has no
// role (inst.role stays "") or the ledger marks it revoked.
func (h *Handler) grantRunning(ctx context.Context, inst *instance) error {
	role, err := h.Binder.Role(ctx, inst.profile())
	if err != nil || role == "" {
		return err
	}
	if h.Ledger != nil {
		why, err := h.Ledger.Revoked(ctx, inst.id)
		if err != nil || why != "" {
			return err
		}
	}
	inst.role = role
	return h.grant(ctx, inst)
}

// region is the key's region, the stack's: the instances it serves are in it (LoadConfig
// checked the ARN's form).
func (h *Handler) region() string {
	return strings.Split(h.Config.KeyARN, ":")[3]
}
