package conformance

import (
	"context"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kms"
	kmstypes "github.com/aws/aws-sdk-go-v2/service/kms/types"

	"github.com/storecrypt/storecrypt/internal/contract"
	"github.com/storecrypt/storecrypt/internal/fakeaws"
	"github.com/storecrypt/storecrypt/test/cfn"
)

// TestInstanceDecryptThroughItsGrant: under the stack's key policy (kms-datakey) an
// instance reopens its volume only through the grant the launch function makes for it,
// as KMS judges it (the fake, with grants and their eventual consistency): refused before
// the grant, allowed with it (at once with its token), still allowed just after a revoke
// and refused once the revoke has propagated; a grant naming instance A's context lets
// no other instance open A's volume (the key policy's deny wins over any grant), and
// GenerateDataKey stays standing, so a revoked instance can still make a new volume.
func TestInstanceDecryptThroughItsGrant(t *testing.T) {
	const other = "i-0b000000000000002"
	ctx := context.Background()
	for _, env := range cfn.Partitions {
		t.Run(env.Partition, func(t *testing.T) {
			d := deploy(t, contract.KeySourceKMSDataKey, env)
			w := d.world(t)
			c := kms.NewFromConfig(w.Config())
			a := d.instanceARN(keyUserInstance)
			grantTo := func(instance, constraint string) (*kms.CreateGrantOutput, error) {
				return c.CreateGrant(ctx, &kms.CreateGrantInput{KeyId: aws.String(d.keyARN), Name: aws.String(instance),
					GranteePrincipal: aws.String(d.instanceRole), RetiringPrincipal: aws.String(d.launchRole),
					Operations:  []kmstypes.GrantOperation{kmstypes.GrantOperationDecrypt},
					Constraints: &kmstypes.GrantConstraints{EncryptionContextSubset: map[string]string{contract.ContextInstanceARN: constraint}}})
			}
			var token, id, otherID string
			decide := func(on, action string, tokens ...string) fakeaws.Decision {
				t.Helper()
				ctx := kmsContext(map[string][]string{"aws:PrincipalArn": {d.instanceRole}, "ec2:SourceInstanceARN": {d.instanceARN(on)}},
					contract.EncryptionContext(a, "6a3c0b1e-0d5f-4c2b-9e7a-1f2e3d4c5b6a"))
				var grants []fakeaws.Grant
				w.With(func() { grants = append(grants, w.Keys[d.keyARN].Grants...) })
				got, err := fakeaws.KMSDecision(d.keyPolicy, d.policies[d.instanceRole], grants, fakeaws.AuthzRequest{
					Principal: d.instanceRole, Session: d.sessionOf(d.instanceRole, on), Action: action, Resource: d.keyARN, Context: ctx, GrantTokens: tokens})
				if err != nil {
					t.Fatal(err)
				}
				return got
			}
			for _, step := range []struct {
				name   string
				do     func() error
				on     string // the instance whose role session calls
				action string
				token  bool
				want   fakeaws.Decision
			}{
				{"no grant yet", nil, keyUserInstance, "kms:Decrypt", false, fakeaws.ImplicitDeny},
				{"no grant yet, a new volume", nil, keyUserInstance, "kms:GenerateDataKey", false, fakeaws.Allow},
				{"granted, before it propagates", func() error {
					out, err := grantTo(keyUserInstance, a)
					if err == nil {
						token, id = *out.GrantToken, *out.GrantId
					}
					return err
				}, keyUserInstance, "kms:Decrypt", false, fakeaws.ImplicitDeny},
				{"granted, with its token", nil, keyUserInstance, "kms:Decrypt", true, fakeaws.Allow},
				{"granted and propagated", func() error { w.SettleGrants(); return nil }, keyUserInstance, "kms:Decrypt", false, fakeaws.Allow},
				{"another instance of the role, A's volume, A's grant", nil, other, "kms:Decrypt", false, fakeaws.ExplicitDeny},
				{"another instance, A's volume, a grant naming A made for it", func() error {
					out, err := grantTo(other, a)
					if err == nil {
						otherID = *out.GrantId
					}
					w.SettleGrants()
					return err
				}, other, "kms:Decrypt", false, fakeaws.ExplicitDeny},
				{"revoked, before it propagates", func() error {
					for _, g := range []string{id, otherID} {
						if _, err := c.RevokeGrant(ctx, &kms.RevokeGrantInput{KeyId: aws.String(d.keyARN), GrantId: aws.String(g)}); err != nil {
							return err
						}
					}
					return nil
				}, keyUserInstance, "kms:Decrypt", false, fakeaws.Allow},
				{"revoked and propagated", func() error { w.SettleGrants(); return nil }, keyUserInstance, "kms:Decrypt", false, fakeaws.ImplicitDeny},
				{"revoked, a new volume", nil, keyUserInstance, "kms:GenerateDataKey", false, fakeaws.Allow},
			} {
				if step.do != nil {
					if err := step.do(); err != nil {
						t.Fatalf("%s: %v", step.name, err)
					}
				}
				var tokens []string
				if step.token {
					tokens = []string{token}
				}
				if got := decide(step.on, step.action, tokens...); got != step.want {
					t.Errorf("%s: %s: got %s, want %s", step.name, step.action, got, step.want)
				}
			}
		})
	}
}
