package contract

import (
	"fmt"
	"slices"
)

// InstanceRolePathPattern is the rule an instance role path (Props.InstanceRolePath, the
// template's InstanceRolePath) must meet: IAM's own ("begin and end with forward
// slashes", any ASCII character from ! to ~, 1 to 512 characters: CreateRole, Path)
// without the characters a policy reads as wildcards or as a policy variable's start (*,
// ? and $), which would widen the ArnLike pattern the path becomes, and without "/"
// alone, which names every role of the account. InstanceRolePathMax is its length limit.
const (
	InstanceRolePathPattern = `^/([!-#%-)+-.0->@-~]+/)+$`
	InstanceRolePathMax     = 512
)

// RolePathPrefixes are the paths (besides "/") that hold the roles storecrypt itself
// creates under FunctionRolePath: an instance role path may be none of them, or the
// functions' roles, which no instance carries, would be key users too.
func RolePathPrefixes() []string {
	var out []string
	for i := 1; i < len(FunctionRolePath); i++ {
		if FunctionRolePath[i] == '/' {
			out = append(out, FunctionRolePath[:i+1])
		}
	}
	return out
}

var instanceRolePath = compiled(InstanceRolePathPattern)

// CheckInstanceRolePath says why p cannot name the instance roles, or nil.
func CheckInstanceRolePath(p string) error {
	switch {
	case len(p) > InstanceRolePathMax || !instanceRolePath().MatchString(p):
		return fmt.Errorf("instance role path %q: IAM takes 1 to %d characters from ! to ~ that begin and end with /; a key policy reads *, ? and $ as patterns, and / alone is every role of the account", p, InstanceRolePathMax)
	case slices.Contains(RolePathPrefixes(), p):
		return fmt.Errorf("instance role path %q holds storecrypt's function roles (%s), which must not be key users: choose a path of its own, /storecrypt/instances/ say", p, FunctionRolePath)
	}
	return nil
}
