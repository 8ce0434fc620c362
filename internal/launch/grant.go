package launch

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kms"
	kmstypes "github.com/aws/aws-sdk-go-v2/service/kms/types"
	"github.com/aws/smithy-go"

	"github.com/storecrypt/storecrypt/internal/binding"
	"github.com/storecrypt/storecrypt/internal/contract"
	"github.com/storecrypt/storecrypt/internal/policy"
)

// KMS is the part of the KMS client the function uses to grant an instance its Decrypt,
// to see which instances have a grant (the sweep), and to retire a terminated instance's.
type KMS interface {
	CreateGrant(ctx context.Context, in *kms.CreateGrantInput, optFns ...func(*kms.Options)) (*kms.CreateGrantOutput, error)
	ListGrants(ctx context.Context, in *kms.ListGrantsInput, optFns ...func(*kms.Options)) (*kms.ListGrantsOutput, error)
	RetireGrant(ctx context.Context, in *kms.RetireGrantInput, optFns ...func(*kms.Options)) (*kms.RetireGrantOutput, error)
}

// grantQuotaNotRetried keeps the SDK from retrying a grant the key's grant quota refused.
// KMS answers LimitExceededException when the key already holds its 50,000 grants: a
// resource quota, which a retry milliseconds later does not change, but the SDK's standard
// retryer counts the code among its throttling errors and tries again (measured in the
// control-plane model: 8 attempts on each receive). The instance goes back to the queue
// instead, by whose redelivery retired grants may have made room. The SDK's retryers
// (standard, adaptive) are all aws.RetryerV2.
func grantQuotaNotRetried(o *kms.Options) {
	if r, ok := o.Retryer.(aws.RetryerV2); ok {
		o.Retryer = quotaRefusalFinal{r}
	}
}

type quotaRefusalFinal struct{ aws.RetryerV2 }

func (r quotaRefusalFinal) IsErrorRetryable(err error) bool {
	if api := smithy.APIError(nil); errors.As(err, &api) && api.ErrorCode() == "LimitExceededException" {
		return false
	}
	return r.RetryerV2.IsErrorRetryable(err)
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

// GrantInput is the grant the launch function makes an instance: its role may Decrypt
// under that instance's context alone, named after the instance (a retry gets the same
// grant back), the launch role its retiring principal.
func GrantInput(keyARN, instanceID, instanceARN, role, launchRole string) *kms.CreateGrantInput {
	return &kms.CreateGrantInput{
		KeyId: aws.String(keyARN), Name: aws.String(instanceID),
		GranteePrincipal: aws.String(role), RetiringPrincipal: aws.String(launchRole),
		Operations:  []kmstypes.GrantOperation{kmstypes.GrantOperationDecrypt},
		Constraints: &kmstypes.GrantConstraints{EncryptionContextSubset: map[string]string{contract.ContextInstanceARN: instanceARN}},
	}
}

// grant makes inst's grant, or gets it back when it exists (its Name).
func (h *Handler) grant(ctx context.Context, inst *instance) error {
	arn := contract.InstanceARN(policy.Partition(h.Config.KeyARN), h.region(), policy.AccountOf(inst.role), inst.id)
	out, err := h.KMS.CreateGrant(ctx, GrantInput(h.Config.KeyARN, inst.id, arn, inst.role, h.Config.LaunchRole))
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
	have, err := h.grantsByName(ctx)
	if err != nil {
		h.Log.Error("listing the key's grants; granting at the next sweep", "error", err.Error())
		return nil
	}
	var granted []string
	for _, inst := range settled {
		if len(have[inst.id]) > 0 {
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

// grantsByName are the key's grants by name (the function names each after its
// instance): one paged read, in full pages.
func (h *Handler) grantsByName(ctx context.Context) (map[string][]kmstypes.GrantListEntry, error) {
	byName := map[string][]kmstypes.GrantListEntry{}
	p := kms.NewListGrantsPaginator(h.KMS, &kms.ListGrantsInput{KeyId: aws.String(h.Config.KeyARN), Limit: aws.Int32(binding.GrantsPage)})
	for p.HasMorePages() {
		page, err := p.NextPage(ctx)
		if err != nil {
			return nil, fmt.Errorf("listing the key's grants: %w", err)
		}
		for _, g := range page.Grants {
			byName[aws.ToString(g.Name)] = append(byName[aws.ToString(g.Name)], g)
		}
	}
	return byName, nil
}

// termination is a terminated state change in a batch.
type termination struct {
	id, message string
	at          time.Time
	log         *slog.Logger
}

// retireGrants retires the grants the function made for the instances the batch saw
// terminate, as their retiring principal: an instance ID is never reused, so its grant would only
// take a place among KMS's 50,000 grants per key until CreateGrant fails with
// LimitExceededException and no new instance can be granted. One read of the key's
// grants serves the whole batch. A grant gone already (a replayed event, a grant revoked
// by `storecrypt revoke`) is done; a failure hands the message back.
func (h *Handler) retireGrants(ctx context.Context, b *batch, gone []termination) {
	if h.Config.Agent.KeySource != contract.KeySourceKMSDataKey || len(gone) == 0 {
		return
	}
	grants, err := h.grantsByName(ctx)
	if err != nil {
		for _, g := range gone {
			g.log.Error("retiring the terminated instance's grant; retrying later", "instance_id", g.id, "error", err.Error())
			b.retry[g.message] = true
		}
		return
	}
	for _, g := range gone {
		for _, grant := range grants[g.id] {
			// Only the function's own: it may retire no other (the grant decides who may).
			if aws.ToString(grant.RetiringPrincipal) != h.Config.LaunchRole {
				continue
			}
			id := aws.ToString(grant.GrantId)
			_, err := h.KMS.RetireGrant(ctx, &kms.RetireGrantInput{KeyId: aws.String(h.Config.KeyARN), GrantId: aws.String(id)})
			var retired *kmstypes.NotFoundException
			switch {
			case errors.As(err, &retired):
			case err != nil:
				g.log.Error("retiring the terminated instance's grant; retrying later", "instance_id", g.id, "grant_id", id, "error", err.Error())
				b.retry[g.message] = true
			default:
				g.log.Info("instance terminated: its grant is retired", "instance_id", g.id, "grant_id", id)
			}
		}
	}
}
