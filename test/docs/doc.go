// Package docs checks every command line that the README and docs/*.md show in a fenced
// shell block against what runs it: storecrypt's against the CLI's cobra tree
// (internal/opcli), storecrypt-agent's against the agent's own flag parsing
// (instance-agent/cli), aws's against botocore's service models (the same models the fakes
// check requests with: internal/fakeaws/apimodel) and a small table of the aws CLI's own
// commands and options, make's against the Makefile's targets, cdk's against the CDK CLI's
// commands. Every other program a block runs is listed with the reason it is not checked,
// so that a program nobody classified fails the test rather than going unread. The prose's
// code spans that name a checked program's command (`storecrypt rerun --targets`, `make
// integ`) are checked by name: the command exists and has each flag the span mentions.
//
// docs/cli.md itself is generated from the cobra tree (go generate ./internal/opcli) and
// the agent's help copies are checked by instance-agent/cli's TestDocumentedHelp.
package docs
