package contract

// AuditorRolePrefix begins the name of the read-only role each stack deploys for
// `storecrypt report --accounts` when it is given a principal to trust. The role is
// named by its region (AuditorRoleName): IAM is global, so a StackSet deployed in several
// regions of an account would otherwise create one name twice; and a role per region
// reads only its own region's stack. Its path is /, so its ARN is predictable in every
// account, and never /storecrypt/, the path of roles that may become key users.
const AuditorRolePrefix = "storecrypt-auditor-"

// AuditorRoleName is the name of the auditor role of the stack in region.
func AuditorRoleName(region string) string { return AuditorRolePrefix + region }

// AuditorSessionPrefix begins the name of each auditor session report --accounts opens;
// the caller's name follows, so a member account's CloudTrail says who read its evidence.
const AuditorSessionPrefix = "storecrypt-report-"
