package binding_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/iam"
	"github.com/aws/aws-sdk-go-v2/service/kms"

	"github.com/storecrypt/storecrypt/internal/binding"
	"github.com/storecrypt/storecrypt/internal/contract"
	"github.com/storecrypt/storecrypt/internal/fakeaws"
)

func checker(w *fakeaws.World) *binding.Checker {
	cfg := w.Config()
	return &binding.Checker{IAM: iam.NewFromConfig(cfg), KMS: kms.NewFromConfig(cfg), TTL: time.Minute}
}

func TestVerdicts(t *testing.T) {
	for _, tc := range []struct {
		name    string
		edit    func(w *fakeaws.World)
		req     binding.Request
		allowed bool
		reason  contract.Reason
		fixSays string
	}{
		{"key user named in the key policy", nil, binding.Request{InstanceProfileARN: fakeaws.Profile(fakeaws.KeyUser)}, true, "", ""},
		{"identity policy, key delegates to the account", nil, binding.Request{InstanceProfileARN: fakeaws.Profile(fakeaws.IdentityUser)}, true, "", ""},
		{"identity policy, key does not delegate", func(w *fakeaws.World) {
			w.Keys[fakeaws.KeyARN].Policy = `{"Statement":[{"Effect":"Allow","Principal":{"AWS":"arn:aws:iam::111122223333:role/admin"},"Action":"kms:*","Resource":"*"}]}`
		}, binding.Request{InstanceProfileARN: fakeaws.Profile(fakeaws.IdentityUser)}, false, contract.ReasonNotKeyUser, `"Principal":{"AWS":"arn:aws:iam::111122223333:role/identity-user"}`},
		{"grant", nil, binding.Request{InstanceProfileARN: fakeaws.Profile(fakeaws.GrantUser)}, true, "", ""},
		{"not a key user", nil, binding.Request{InstanceProfileARN: fakeaws.Profile(fakeaws.NotKeyUser)}, false, contract.ReasonNotKeyUser, "kms:GenerateDataKey"},
		{"explicit deny in the key policy", func(w *fakeaws.World) {
			w.Keys[fakeaws.KeyARN].Policy = strings.Replace(fakeaws.KeyPolicy, `"Statement": [`, `"Statement": [{"Effect":"Deny","Principal":{"AWS":"`+fakeaws.KeyUser+`"},"Action":"kms:Decrypt","Resource":"*"},`, 1)
		}, binding.Request{InstanceProfileARN: fakeaws.Profile(fakeaws.KeyUser)}, false, contract.ReasonNotKeyUser, "kms:Decrypt"},
		{"no instance profile", nil, binding.Request{}, false, contract.ReasonNoInstanceProfile, "attach"},
		{"profile does not exist", nil, binding.Request{InstanceProfileARN: fakeaws.ProfilePrefix + "gone"}, false, contract.ReasonRoleMissing, "existing"},
		{"profile without a role", nil, binding.Request{InstanceProfileARN: fakeaws.ProfilePrefix + "empty"}, false, contract.ReasonRoleMissing, "add the storecrypt instance role"},
		{"key disabled", func(w *fakeaws.World) { w.Keys[fakeaws.KeyARN].State = "Disabled" },
			binding.Request{InstanceProfileARN: fakeaws.Profile(fakeaws.KeyUser)}, false, contract.ReasonKeyDisabled, "enable"},
		{"key pending deletion", func(w *fakeaws.World) { w.Keys[fakeaws.KeyARN].State = "PendingDeletion" },
			binding.Request{InstanceProfileARN: fakeaws.Profile(fakeaws.KeyUser)}, false, contract.ReasonKeyDisabled, "enable"},
		{"key not found", func(w *fakeaws.World) { delete(w.Keys, fakeaws.KeyARN) },
			binding.Request{InstanceProfileARN: fakeaws.Profile(fakeaws.KeyUser)}, false, contract.ReasonKeyNotFound, "key ARN"},
		{"s3-kms with a readable secret", nil, binding.Request{InstanceProfileARN: fakeaws.Profile(fakeaws.KeyUser), KeySource: contract.KeySourceS3KMS, Secret: "s3://secrets/seed"}, true, "", ""},
		{"s3-kms, secret unreadable", nil, binding.Request{InstanceProfileARN: fakeaws.Profile(fakeaws.GrantUser), KeySource: contract.KeySourceS3KMS, Secret: "s3://secrets/seed"}, false, contract.ReasonSecretUnreadable, "s3:GetObject"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			w := fakeaws.NewAccount()
			if tc.edit != nil {
				tc.edit(w)
			}
			tc.req.KeyARN = fakeaws.KeyARN
			if tc.req.KeySource == "" {
				tc.req.KeySource = contract.KeySourceKMSDataKey
			}
			v, err := checker(w).Check(context.Background(), tc.req)
			if err != nil {
				t.Fatal(err)
			}
			if v.Allowed != tc.allowed || v.Reason != tc.reason || !strings.Contains(v.Fix, tc.fixSays) {
				t.Errorf("got %+v, want allowed=%v reason=%q fix saying %q", v, tc.allowed, tc.reason, tc.fixSays)
			}
		})
	}
}

// TestCachedPerRole: checks for many instances of one role cost the calls of one.
func TestCachedPerRole(t *testing.T) {
	w := fakeaws.NewAccount()
	c := checker(w)
	for range 100 {
		for _, role := range []string{fakeaws.KeyUser, fakeaws.NotKeyUser} {
			if _, err := c.Check(context.Background(), binding.Request{InstanceProfileARN: fakeaws.Profile(role), KeyARN: fakeaws.KeyARN, KeySource: contract.KeySourceKMSDataKey}); err != nil {
				t.Fatal(err)
			}
		}
	}
	// Per role: GetInstanceProfile and SimulatePrincipalPolicy; once for the key:
	// DescribeKey, GetKeyPolicy, ListGrants.
	if got := w.TotalCalls(); got != 7 {
		t.Errorf("200 checks of 2 roles made %d calls (%v), want 7", got, w.Calls())
	}
}

// TestThrottlingIsRetriedBySDK: the SDK's retryer absorbs throttling; the check succeeds.
func TestThrottlingIsRetriedBySDK(t *testing.T) {
	w := fakeaws.NewAccount()
	w.Fault = fakeaws.Throttle("SimulatePrincipalPolicy")
	v, err := checker(w).Check(context.Background(), binding.Request{InstanceProfileARN: fakeaws.Profile(fakeaws.KeyUser), KeyARN: fakeaws.KeyARN, KeySource: contract.KeySourceKMSDataKey})
	if err != nil || !v.Allowed {
		t.Fatalf("got %+v, %v; want allowed after a retry", v, err)
	}
	if got := w.Calls()["IAM.SimulatePrincipalPolicy"]; got != 2 {
		t.Errorf("SimulatePrincipalPolicy attempts %d, want 2 (one throttled, one retried)", got)
	}
}

// TestAccessDeniedIsAnError: the function's own missing permission is not a verdict on
// the instance.
func TestAccessDeniedIsAnError(t *testing.T) {
	w := fakeaws.NewAccount()
	w.Fault = func(_, op string, _ int) error {
		if op == "GetKeyPolicy" {
			return fakeaws.APIError("AccessDeniedException", "not authorized to perform kms:GetKeyPolicy")
		}
		return nil
	}
	_, err := checker(w).Check(context.Background(), binding.Request{InstanceProfileARN: fakeaws.Profile(fakeaws.KeyUser), KeyARN: fakeaws.KeyARN, KeySource: contract.KeySourceKMSDataKey})
	if err == nil || !strings.Contains(err.Error(), "AccessDenied") {
		t.Fatalf("got %v, want the AccessDenied error", err)
	}
}
