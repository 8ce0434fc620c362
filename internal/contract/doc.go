// Package contract holds the names every part of storecrypt must agree on, and their
// validation: what the agent, the SSM document, the functions, the stack and the CLI
// would otherwise each spell again and let drift.
//
// The rule: contract imports no other storecrypt package and does no I/O, so any package
// may import it (test/layers checks both). A name that two parts must agree on lives
// here and nowhere else; a rule about the fleet (what a status means, who is in scope)
// does not: it belongs to the control plane's domain package.
//
// The files say who reads what:
//
//   - agent.go, validate.go, volume.go, report.go: the agent's side (its flags,
//     their checks, what it makes on an instance, its JSON report). These are the only
//     files whose names the agent's packages use (test/layers checks).
//   - document.go: the SSM document's name, step and parameters.
//   - status.go: the tags, status values and reasons the control plane records.
//   - stack.go: what the stack and the functions share: environment variables, event
//     types, queue tuning, metrics, outputs.
//   - cli.go: the operator CLI's exit codes.
package contract
