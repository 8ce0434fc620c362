package fakeaws

import (
	"encoding/json"
	"fmt"
)

// Service control policies, by AWS Organizations' documentation:
//   - "Quotas for AWS Organizations": "Maximum size of a policy document: Service control
//     policies: 5120 bytes (not characters)", and "If you save the policy using an SDK
//     operation or the AWS CLI, then the policy is saved exactly as you provided" (only the
//     console removes white space), so the file as written is what counts.
//   - "Service control policies (SCPs)" and "SCP evaluation": an SCP grants nothing; with
//     FullAWSAccess attached, a request is refused only where an SCP explicitly denies it;
//     SCPs name no Principal (the statement applies to every principal of the accounts).

// SCPMaxBytes is the largest SCP Organizations stores.
const SCPMaxBytes = 5120

// CheckSCP refuses what Organizations' CreatePolicy would: a document over SCPMaxBytes,
// one that is not JSON, or a statement with a Principal or NotPrincipal element.
func CheckSCP(doc string) error {
	if len(doc) > SCPMaxBytes {
		return fmt.Errorf("MalformedPolicyDocument: %d bytes, more than an SCP's %d", len(doc), SCPMaxBytes)
	}
	var p struct {
		Statement []map[string]any
	}
	if err := json.Unmarshal([]byte(doc), &p); err != nil {
		return fmt.Errorf("MalformedPolicyDocument: %w", err)
	}
	for _, s := range p.Statement {
		for _, e := range []string{"Principal", "NotPrincipal"} {
			if s[e] != nil {
				return fmt.Errorf("MalformedPolicyDocument: statement %v: an SCP has no %s", s["Sid"], e)
			}
		}
	}
	return nil
}

// SCPsDeny says whether any of the SCPs explicitly denies the request, which then fails
// whatever the account's own policies allow.
func SCPsDeny(scps []string, req AuthzRequest) (bool, error) {
	for _, scp := range scps {
		d, _, err := Evaluate(scp, false, req)
		if err != nil {
			return false, err
		}
		if d == ExplicitDeny {
			return true, nil
		}
	}
	return false, nil
}
