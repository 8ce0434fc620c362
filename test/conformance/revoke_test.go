package conformance

import (
	"context"
	"fmt"
	"maps"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	ddbtypes "github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"github.com/aws/aws-sdk-go-v2/service/kms"
	kmstypes "github.com/aws/aws-sdk-go-v2/service/kms/types"

	"github.com/storecrypt/storecrypt/internal/contract"
	"github.com/storecrypt/storecrypt/internal/fakeaws"
	"github.com/storecrypt/storecrypt/internal/ledger"
	"github.com/storecrypt/storecrypt/test/cfn"
	"github.com/storecrypt/storecrypt/test/iamsim"
)

// shredPolicyDescription begins the shred policy's description: the template names the
// managed policy by a generated id only.
const shredPolicyDescription = "storecrypt responders: shred"

// revokedAt is the fleet tag's value in the tests: when the responder revoked the fleet.
const revokedAt = "2026-12-07T08:00:00Z"

// TestFleetRevokedAtTheKey: under the stack's key policy, the fleet tag
// (contract.KeyTagRevoked) refuses every instance its volumes' keys, through its grant or
// not, and the launch function any new grant, once KMS has applied the tag (the fake
// applies it at SettleTags, as KMS may take up to five minutes); the launch function still
// writes its ledger, whose table the key encrypts. Taking the tag off gives all back.
func TestFleetRevokedAtTheKey(t *testing.T) {
	ctx := context.Background()
	for _, env := range cfn.Partitions {
		t.Run(env.Partition, func(t *testing.T) {
			d := deploy(t, contract.KeySourceKMSDataKey, env)
			w := d.world(t)
			table := d.launchEnv[contract.EnvLedgerTable]
			w.TableKeys = map[string]string{table: d.keyARN}
			c := kms.NewFromConfig(w.Config())
			own := contract.EncryptionContext(d.instanceARN(keyUserInstance), "6a3c0b1e-0d5f-4c2b-9e7a-1f2e3d4c5b6a")
			grant := &kms.CreateGrantInput{KeyId: aws.String(d.keyARN), Name: aws.String(keyUserInstance),
				GranteePrincipal: aws.String(d.instanceRole), RetiringPrincipal: aws.String(d.launchRole),
				Operations:  []kmstypes.GrantOperation{kmstypes.GrantOperationDecrypt},
				Constraints: &kmstypes.GrantConstraints{EncryptionContextSubset: map[string]string{contract.ContextInstanceARN: d.instanceARN(keyUserInstance)}}}
			if _, err := c.CreateGrant(ctx, grant); err != nil {
				t.Fatal(err)
			}
			w.SettleGrants()
			onA := map[string][]string{"aws:PrincipalArn": {d.instanceRole}, "ec2:SourceInstanceARN": {d.instanceARN(keyUserInstance)}}
			launch := map[string][]string{"aws:PrincipalArn": {d.launchRole}}
			checks := []struct {
				name          string
				role, session string
				base          map[string][]string
				call          fakeaws.Call
			}{
				{"instance A reopens its volume (its grant)", d.instanceRole, d.sessionOf(d.instanceRole, keyUserInstance), onA,
					fakeaws.Call{Service: "KMS", Operation: "Decrypt", Params: &kms.DecryptInput{KeyId: aws.String(d.keyARN), CiphertextBlob: []byte("c"), EncryptionContext: own}}},
				{"instance A makes a volume", d.instanceRole, d.sessionOf(d.instanceRole, keyUserInstance), onA,
					fakeaws.Call{Service: "KMS", Operation: "GenerateDataKey", Params: &kms.GenerateDataKeyInput{KeyId: aws.String(d.keyARN), EncryptionContext: own}}},
				{"the launch function grants A", d.launchRole, d.sessionOf(d.launchRole, "launch"), launch,
					fakeaws.Call{Service: "KMS", Operation: "CreateGrant", Params: grant}},
				{"the launch function writes the ledger", d.launchRole, d.sessionOf(d.launchRole, "launch"), launch,
					fakeaws.Call{Service: "DynamoDB", Operation: "UpdateItem", Params: &dynamodb.UpdateItemInput{TableName: aws.String(table),
						Key: map[string]ddbtypes.AttributeValue{ledger.AttrInstance: &ddbtypes.AttributeValueMemberS{Value: keyUserInstance}}}}},
			}
			decide := func(i int) fakeaws.Decision {
				t.Helper()
				ch := checks[i]
				reqs, err := w.Authz(ch.call, ch.role, ch.session, ch.base)
				if err != nil {
					t.Fatal(err)
				}
				var grants []fakeaws.Grant
				w.With(func() { grants = append(grants, w.Keys[d.keyARN].Grants...) })
				for _, r := range reqs {
					if !d.onKey(r) {
						continue
					}
					got, err := fakeaws.KMSDecision(d.keyPolicy, d.policies[ch.role], grants, r)
					if err != nil {
						t.Fatal(err)
					}
					return got
				}
				t.Fatalf("%s: no request on the key", ch.name)
				return ""
			}
			tag := func() error {
				_, err := c.TagResource(ctx, &kms.TagResourceInput{KeyId: aws.String(d.keyARN),
					Tags: []kmstypes.Tag{{TagKey: aws.String(contract.KeyTagRevoked), TagValue: aws.String(revokedAt)}}})
				return err
			}
			untag := func() error {
				_, err := c.UntagResource(ctx, &kms.UntagResourceInput{KeyId: aws.String(d.keyARN), TagKeys: []string{contract.KeyTagRevoked}})
				return err
			}
			settle := func() error { w.SettleTags(); return nil }
			allowed := []fakeaws.Decision{fakeaws.Allow, fakeaws.Allow, fakeaws.Allow, fakeaws.Allow}
			revoked := []fakeaws.Decision{fakeaws.ExplicitDeny, fakeaws.ExplicitDeny, fakeaws.ExplicitDeny, fakeaws.Allow}
			for _, step := range []struct {
				name string
				do   func() error
				want []fakeaws.Decision
			}{
				{"not revoked", settle, allowed},
				{"tagged, before KMS applies it", tag, allowed},
				{"tagged and applied", settle, revoked},
				{"untagged, before KMS applies it", untag, revoked},
				{"untagged and applied", settle, allowed},
			} {
				if err := step.do(); err != nil {
					t.Fatalf("%s: %v", step.name, err)
				}
				for i, want := range step.want {
					if got := decide(i); got != want {
						t.Errorf("%s: %s: got %s, want %s", step.name, checks[i].name, got, want)
					}
				}
			}
		})
	}
}

// revokeRows are the requests that decide who may revoke, resume and shred, and what the
// fleet tag refuses, put to both evaluators (TestIAMMatrix). The key's tag is the request's
// aws:ResourceTag, as KMS sets it once the tag applies.
func (d *deployment) revokeRows(scps []string) []matrixRow {
	role := func(path, name string) string {
		return fmt.Sprintf("arn:%s:iam::%s:role%s%s", d.Env.Partition, d.Env.Account, path, name)
	}
	operator, admin, responder := role("/", "operator"), role("/", "Admin"), role("/storecrypt/responders/", "alice")
	sso := role("/aws-reserved/sso.amazonaws.com/", "AWSReservedSSO_Responder_0123456789abcdef")
	cdk := role("/", "cdk-hnb659fds-cfn-exec-role-"+d.Env.Account+"-"+d.Env.Region)
	everything := []string{fakeaws.Allows("*")}
	broad := append(append([]string{}, d.policies[d.instanceRole]...), fakeaws.Allows("kms:*"))
	operatorOnly, withShred := []string{d.operatorPolicy}, []string{d.operatorPolicy, d.shredPolicy}
	revoked := map[string][]string{"aws:ResourceTag/" + contract.KeyTagRevoked: {revokedAt}}
	mfa := map[string][]string{"aws:MultiFactorAuthPresent": {"true"}}
	noMFA := map[string][]string{"aws:MultiFactorAuthPresent": {"false"}}
	ctx := func(who string, parts ...map[string][]string) map[string][]string {
		c := map[string][]string{"aws:PrincipalArn": {who}}
		for _, p := range parts {
			maps.Copy(c, p)
		}
		return c
	}
	row := func(name, who, action, resource string, c map[string][]string, identity []string, want iamsim.Verdict) matrixRow {
		session := d.sessionOf(who, "alice")
		if ids, ok := c["ec2:SourceInstanceARN"]; ok {
			session = d.sessionOf(who, ids[0][len(ids[0])-len(keyUserInstance):])
		}
		return matrixRow{name: name, principal: who, session: session, action: action, resource: resource, context: c, identity: identity, want: want}
	}
	onA := map[string][]string{"ec2:SourceInstanceARN": {d.instanceARN(keyUserInstance)}}
	own := fakeaws.EncryptionContextKeys(contract.EncryptionContext(d.instanceARN(keyUserInstance), "uuid-1"))
	ownInstance := fakeaws.EncryptionContextKeys(map[string]string{contract.ContextInstanceARN: d.instanceARN(keyUserInstance)})
	grantKeys := map[string][]string{"kms:GrantOperations": {"Decrypt"}, "kms:GranteePrincipal": {d.instanceRole},
		"kms:RetiringPrincipal": {d.launchRole}, "kms:GrantConstraintType": {"EncryptionContextSubset"}}
	table := d.launchEnv[contract.EnvLedgerTable]
	ledgerKey := map[string][]string{"kms:ViaService": {"dynamodb." + d.Env.Region + "." + d.Env.URLSuffix()},
		"kms:EncryptionContext:aws:dynamodb:tableName": {table}, "kms:EncryptionContext:aws:dynamodb:subscriberId": {d.Env.Account},
		"kms:EncryptionContextKeys": {"aws:dynamodb:subscriberId", "aws:dynamodb:tableName"}}
	tagging := func(keys ...string) map[string][]string {
		c := map[string][]string{"aws:TagKeys": keys}
		for _, k := range keys {
			c["aws:RequestTag/"+k] = []string{revokedAt}
		}
		return c
	}
	untagging := map[string][]string{"aws:TagKeys": {contract.KeyTagRevoked}}
	k := d.keyARN
	rows := []matrixRow{
		// The fleet tag on the key.
		row("fleet revoked: instance A makes a volume", d.instanceRole, "kms:GenerateDataKey", k, ctx(d.instanceRole, onA, own, revoked), d.policies[d.instanceRole], iamsim.ExplicitlyDenied),
		row("fleet revoked: instance A with kms:* in IAM reopens its volume", d.instanceRole, "kms:Decrypt", k, ctx(d.instanceRole, onA, own, revoked), broad, iamsim.ExplicitlyDenied),
		row("fleet revoked: the launch function grants A", d.launchRole, "kms:CreateGrant", k, ctx(d.launchRole, grantKeys, ownInstance, revoked), d.policies[d.launchRole], iamsim.ExplicitlyDenied),
		row("fleet revoked: the launch function writes the ledger (its key through DynamoDB)", d.launchRole, "kms:Decrypt", k, ctx(d.launchRole, ledgerKey, revoked), d.policies[d.launchRole], iamsim.Allowed),
		// Who puts and takes the tag.
		row("the operator revokes the fleet (tags the key), with MFA", operator, "kms:TagResource", k, ctx(operator, mfa, tagging(contract.KeyTagRevoked)), operatorOnly, iamsim.Allowed),
		row("the operator resumes the fleet (untags the key), with MFA", operator, "kms:UntagResource", k, ctx(operator, mfa, untagging, revoked), operatorOnly, iamsim.Allowed),
		row("the operator untags the key from a role assumed without MFA", operator, "kms:UntagResource", k, ctx(operator, noMFA, untagging, revoked), operatorOnly, iamsim.ExplicitlyDenied),
		row("the operator tags the key with long-term keys (no MFA key)", operator, "kms:TagResource", k, ctx(operator, tagging(contract.KeyTagRevoked)), operatorOnly, iamsim.ExplicitlyDenied),
		row("an Identity Center role with the operator policy untags the key", sso, "kms:UntagResource", k, ctx(sso, untagging, revoked), operatorOnly, iamsim.Allowed),
		row("the operator tags the key with another storecrypt tag", operator, "kms:TagResource", k, ctx(operator, mfa, tagging(contract.TagComponent)), operatorOnly, iamsim.ImplicitlyDenied),
		row("instance A with kms:* in IAM untags the key", d.instanceRole, "kms:UntagResource", k, ctx(d.instanceRole, onA, untagging, revoked), broad, iamsim.ExplicitlyDenied),
		row("instance A with kms:* in IAM tags the key, the fleet not revoked", d.instanceRole, "kms:TagResource", k, ctx(d.instanceRole, onA, tagging(contract.KeyTagRevoked)), broad, iamsim.ExplicitlyDenied),
		row("CloudFormation's update (the CDK execution role) untags the key", cdk, "kms:UntagResource", k, ctx(cdk, untagging, revoked), everything, iamsim.ExplicitlyDenied),
		// Grants: the operator revokes one; an instance role neither revokes nor makes one.
		row("the operator revokes an instance's grant", operator, "kms:RevokeGrant", k, ctx(operator, mfa), operatorOnly, iamsim.Allowed),
		row("instance A revokes a grant", d.instanceRole, "kms:RevokeGrant", k, ctx(d.instanceRole, onA), d.policies[d.instanceRole], iamsim.ImplicitlyDenied),
		row("instance A grants itself Decrypt", d.instanceRole, "kms:CreateGrant", k, ctx(d.instanceRole, onA, grantKeys, ownInstance), d.policies[d.instanceRole], iamsim.ExplicitlyDenied),
		row("instance A writes the ledger", d.instanceRole, "dynamodb:UpdateItem", d.tableARN(table), ctx(d.instanceRole, onA,
			map[string][]string{"dynamodb:Attributes": {ledger.AttrInstance, ledger.AttrLaunchTime, contract.LedgerRevokedAt}}), d.policies[d.instanceRole], iamsim.ImplicitlyDenied),
	}
	// The documents: revoke and resume with the operator policy, shred only with the shred
	// policy, each with MFA.
	for _, tc := range []struct {
		name, doc string
		identity  []string
		mfa       map[string][]string
		want      iamsim.Verdict
	}{
		{"the operator sends revoke, with MFA", contract.DocumentRevoke, operatorOnly, mfa, iamsim.Allowed},
		{"the operator sends resume, with MFA", contract.DocumentResume, operatorOnly, mfa, iamsim.Allowed},
		{"the operator sends revoke without MFA", contract.DocumentRevoke, operatorOnly, noMFA, iamsim.ImplicitlyDenied},
		{"the operator without the shred policy sends shred, with MFA", contract.DocumentShred, operatorOnly, mfa, iamsim.ImplicitlyDenied},
		{"the operator with the shred policy sends shred, with MFA", contract.DocumentShred, withShred, mfa, iamsim.Allowed},
		{"the operator with the shred policy sends shred without MFA", contract.DocumentShred, withShred, noMFA, iamsim.ImplicitlyDenied},
	} {
		rows = append(rows, row(tc.name, operator, "ssm:SendCommand", d.revocationDocument(tc.doc), ctx(operator, tc.mfa), tc.identity, tc.want))
	}
	// Each sender reads its document's versions, to send only the one with the deployed
	// content (document.Trust).
	for _, tc := range []struct {
		doc      string
		identity []string
	}{{contract.DocumentRevoke, operatorOnly}, {contract.DocumentResume, operatorOnly}, {contract.DocumentShred, withShred}} {
		for _, action := range []string{"ssm:GetDocument", "ssm:ListDocumentVersions"} {
			rows = append(rows, row("the sender of "+tc.doc+" reads its versions ("+action+")", operator, action, d.revocationDocument(tc.doc), ctx(operator, mfa), tc.identity, iamsim.Allowed))
		}
	}
	// The ledger: the revocation's attributes, not the evidence; the shred mark only with
	// the shred policy.
	attrs := func(names ...string) map[string][]string {
		return map[string][]string{"dynamodb:Attributes": append([]string{ledger.AttrInstance, ledger.AttrLaunchTime}, names...)}
	}
	for _, tc := range []struct {
		name     string
		attrs    map[string][]string
		identity []string
		want     iamsim.Verdict
	}{
		{"the operator marks an instance revoked", attrs(contract.LedgerRevokedAt, contract.LedgerRevokedBy, contract.LedgerRevokedReason), operatorOnly, iamsim.Allowed},
		{"the operator resumes an instance", attrs(contract.LedgerRevokedAt, contract.LedgerRevokedBy, contract.LedgerRevokedReason,
			contract.LedgerResumedAt, contract.LedgerResumedBy, contract.LedgerResumedReason), operatorOnly, iamsim.Allowed},
		{"the operator writes the status (forges encrypted)", attrs("status"), operatorOnly, iamsim.ImplicitlyDenied},
		{"the operator appends to the story (entries)", attrs("entries"), operatorOnly, iamsim.ImplicitlyDenied},
		{"the operator writes encrypted_at", attrs("encrypted_at"), operatorOnly, iamsim.ImplicitlyDenied},
		{"the operator rewrites the evidence (luks_uuid)", attrs("luks_uuid"), operatorOnly, iamsim.ImplicitlyDenied},
		{"the operator closes the launch (terminated_at)", attrs("terminated_at"), operatorOnly, iamsim.ImplicitlyDenied},
		{"the operator writes naming no attribute", nil, operatorOnly, iamsim.ImplicitlyDenied},
		{"the operator without the shred policy marks an instance shredded", attrs(contract.LedgerShreddedAt), operatorOnly, iamsim.ImplicitlyDenied},
		{"the operator with the shred policy marks an instance shredded", attrs(contract.LedgerShreddedAt, contract.LedgerShreddedBy, contract.LedgerShreddedReason), withShred, iamsim.Allowed},
	} {
		rows = append(rows, row(tc.name, operator, "dynamodb:UpdateItem", d.tableARN(table), ctx(operator, mfa, tc.attrs), tc.identity, tc.want))
	}
	bus := fmt.Sprintf("arn:%s:events:%s:%s:event-bus/default", d.Env.Partition, d.Env.Region, d.Env.Account)
	for _, tc := range []struct {
		detail string
		want   iamsim.Verdict
	}{
		{contract.EventInstanceRevoked, iamsim.Allowed}, {contract.EventInstanceResumed, iamsim.Allowed}, {contract.EventInstanceShredded, iamsim.Allowed},
		{"storecrypt Instance Encrypted", iamsim.ImplicitlyDenied},
	} {
		rows = append(rows, row("the operator sends the event "+tc.detail, operator, "events:PutEvents", bus,
			ctx(operator, map[string][]string{"events:source": {contract.EventSource}, "events:detail-type": {tc.detail}}), operatorOnly, tc.want))
	}
	// The example SCPs: only a responder role takes the fleet tag off or sends shred, and
	// a responder writes the ledger's revocation attributes only.
	for _, tc := range []struct {
		name, who, action, resource string
		c                           map[string][]string
		want                        iamsim.Verdict
	}{
		{"a responder resumes the fleet (untags the key), with MFA", responder, "kms:UntagResource", k, ctx(responder, mfa, untagging, revoked), iamsim.Allowed},
		{"a responder revokes the fleet (tags the key), with MFA", responder, "kms:TagResource", k, ctx(responder, mfa, tagging(contract.KeyTagRevoked)), iamsim.Allowed},
		{"an admin untags the key, with MFA", admin, "kms:UntagResource", k, ctx(admin, mfa, untagging, revoked), iamsim.ExplicitlyDenied},
		{"an admin tags the key, with MFA", admin, "kms:TagResource", k, ctx(admin, mfa, tagging(contract.KeyTagRevoked)), iamsim.ExplicitlyDenied},
		{"a responder tags the key with the component tag", responder, "kms:TagResource", k, ctx(responder, mfa, tagging(contract.KeyTagRevoked, contract.TagComponent)), iamsim.ExplicitlyDenied},
		{"a responder sends shred", responder, "ssm:SendCommand", d.revocationDocument(contract.DocumentShred), ctx(responder, mfa), iamsim.Allowed},
		{"an admin sends shred", admin, "ssm:SendCommand", d.revocationDocument(contract.DocumentShred), ctx(admin, mfa), iamsim.ExplicitlyDenied},
		{"a responder marks an instance revoked", responder, "dynamodb:UpdateItem", d.tableARN(table), ctx(responder, attrs(contract.LedgerRevokedAt)), iamsim.Allowed},
		{"a responder rewrites the evidence", responder, "dynamodb:UpdateItem", d.tableARN(table), ctx(responder, attrs("luks_uuid")), iamsim.ExplicitlyDenied},
		{"a responder writes the status", responder, "dynamodb:UpdateItem", d.tableARN(table), ctx(responder, attrs("status")), iamsim.ExplicitlyDenied},
		{"a responder appends to the story", responder, "dynamodb:UpdateItem", d.tableARN(table), ctx(responder, attrs("entries")), iamsim.ExplicitlyDenied},
		{"a responder records a resume", responder, "dynamodb:UpdateItem", d.tableARN(table), ctx(responder, attrs(contract.LedgerResumedAt)), iamsim.Allowed},
		{"a responder writes naming no attribute", responder, "dynamodb:UpdateItem", d.tableARN(table), ctx(responder), iamsim.ExplicitlyDenied},
		{"a responder deletes a ledger item", responder, "dynamodb:DeleteItem", d.tableARN(table), ctx(responder), iamsim.ExplicitlyDenied},
	} {
		r := row("SCP: "+tc.name, tc.who, tc.action, tc.resource, tc.c, everything, tc.want)
		r.scps = scps
		rows = append(rows, r)
	}
	return rows
}

// revocationDocument is the ARN of a revocation document as the stack names it: the
// stack's name in place of storecrypt's (the app's stack is named by the defaults).
func (d *deployment) revocationDocument(doc string) string {
	return fmt.Sprintf("arn:%s:ssm:%s:%s:document/%s", d.Env.Partition, d.Env.Region, d.Env.Account, doc)
}

func (d *deployment) tableARN(table string) string {
	return fmt.Sprintf("arn:%s:dynamodb:%s:%s:table/%s", d.Env.Partition, d.Env.Region, d.Env.Account, table)
}
