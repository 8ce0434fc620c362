// Package conformance checks the synthesized stack against what its code does, by AWS's
// documented rules, in every partition: every alarm watches a metric the functions
// publish, every event the functions take reaches them through a rule, every variable
// they read is set, and every call each part makes (the functions, the CLI, the agent's
// key source) is allowed by the policy the template gives it, while every action a
// policy allows is used or has a written reason. Its tests synthesize the stack
// in-process and drive the real handlers against the fake account (internal/fakeaws).
package conformance
