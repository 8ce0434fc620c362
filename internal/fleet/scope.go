package fleet

// Scope is the one rule for which instances a storecrypt stack is responsible for: those
// whose instance profile's role the stack names, and those with its opt-in tag where it
// configures one. The launch function asks it before sending the document, and the CLI
// before listing (status) or rerunning (rerun), so that the CLI never reaches an instance
// the functions would leave alone. Scope is the stack's configuration: no tag takes an
// instance out of it (OptedOut leaves one in scope, unencrypted, where the stack allows).

import (
	"context"
	"fmt"
	"slices"

	"github.com/storecrypt/storecrypt/internal/contract"
)

// Roles resolves an instance profile to its role (binding.Roles).
type Roles interface {
	Role(ctx context.Context, profileARN string) (string, error)
}

// Rule is a stack's scope.
type Rule struct {
	Roles []string // role ARNs whose instances are in scope
	// OptInKey, with OptInValue, is the opt-in tag; "" when the stack has none.
	OptInKey, OptInValue string
	// AllowOptOut honours storecrypt:encrypt=false (recorded and alerted).
	AllowOptOut bool
}

// OptedOut says whether an instance in scope with these tags is left unencrypted by its
// own storecrypt:encrypt=false, which only a stack that allows opt-outs honours. ignored
// says the tag is there and the stack ignores it: anyone who may tag an instance could
// otherwise switch its encryption off.
func (r Rule) OptedOut(tags map[string]string) (out, ignored bool) {
	if tags[contract.TagEncrypt] != "false" {
		return false, false
	}
	if !r.AllowOptOut {
		return false, true
	}
	return true, false
}

// In says whether an instance with these tags and this instance profile ("" for none)
// is in scope, and when it is not, why, in words an operator reads.
func (r Rule) In(ctx context.Context, roles Roles, tags map[string]string, profileARN string) (in bool, why string, err error) {
	if r.OptInKey != "" && tags[r.OptInKey] == r.OptInValue {
		return true, "", nil
	}
	switch {
	case len(r.Roles) == 0:
		why = "the stack names no roles"
	case profileARN == "":
		why = "no instance profile"
	default:
		role, err := roles.Role(ctx, profileARN)
		if err != nil {
			return false, "", fmt.Errorf("reading the role of %s: %w", profileARN, err)
		}
		if slices.Contains(r.Roles, role) {
			return true, "", nil
		}
		why = "role " + role + " is not one of the stack's"
	}
	if r.OptInKey != "" {
		why += ", and no " + r.OptInKey + "=" + r.OptInValue + " tag"
	}
	return false, why, nil
}
