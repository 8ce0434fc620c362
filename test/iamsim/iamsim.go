// Package iamsim asks a second IAM policy evaluator, one this project did not write
// (@cloud-copilot/iam-simulate, pinned in package.json), for its verdict on requests, so
// that a policy test does not rest on one reading of IAM's rules: the fake account's
// (internal/fakeaws) and the product's (internal/policy) were written here, and a
// mistake both share would pass every test that asks only them.
//
// A batch of requests runs in one node process (iamsim.mjs, beside this file), which
// needs node and the repository's node_modules (`npm ci`; make test runs it).
package iamsim

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
)

// Verdict is the evaluator's decision on one request.
type Verdict string

// The verdicts, as iam-simulate names them.
const (
	Allowed          Verdict = "Allowed"
	ExplicitlyDenied Verdict = "ExplicitlyDenied"
	ImplicitlyDenied Verdict = "ImplicitlyDenied"
)

// Request is one call and every policy that bears on it.
type Request struct {
	// Principal is the caller: an assumed-role session
	// (arn:aws:sts::<account>:assumed-role/<role>/<session>), a role, a user or an
	// account's root. A policy naming a role applies to that role's sessions.
	Principal string `json:"principal"`
	Action    string `json:"action"`
	Resource  string `json:"resource"`
	// Context holds the request's condition keys exactly as given: nothing is added (not
	// even aws:PrincipalArn) and nothing is dropped. A key AWS defines as single-valued
	// takes exactly one value.
	Context map[string][]string `json:"context,omitempty"`
	// IdentityPolicies, ResourcePolicy (a key or bucket policy) and SCPs are policy
	// documents as JSON. SCPs are evaluated beside FullAWSAccess, as AWS attaches it
	// by default, so a deny-list SCP only denies.
	IdentityPolicies []string `json:"identityPolicies,omitempty"`
	ResourcePolicy   string   `json:"resourcePolicy,omitempty"`
	SCPs             []string `json:"scps,omitempty"`
}

// script is iamsim.mjs, found beside this file's source so that node resolves the
// package from the repository's node_modules wherever the test runs.
func script() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Join(filepath.Dir(file), "iamsim.mjs")
}

// Evaluate returns iam-simulate's verdict on each request, in order. A malformed request
// (an invalid policy, an action or a condition key the simulator does not know) fails
// the whole batch, naming each bad request, so that no test passes on a request the
// simulator could not read.
func Evaluate(ctx context.Context, reqs []Request) ([]Verdict, error) {
	in, err := json.Marshal(map[string][]Request{"requests": reqs})
	if err != nil {
		return nil, fmt.Errorf("encoding the requests: %w", err)
	}
	cmd := exec.CommandContext(ctx, "node", script())
	var stdout, stderr bytes.Buffer
	cmd.Stdin, cmd.Stdout, cmd.Stderr = bytes.NewReader(in), &stdout, &stderr
	runErr := cmd.Run()
	var out struct {
		Verdicts []Verdict `json:"verdicts"`
		Errors   []string  `json:"errors"`
	}
	if err := json.Unmarshal(stdout.Bytes(), &out); err != nil {
		if runErr != nil {
			return nil, fmt.Errorf("running iam-simulate (node %s; `npm ci` installs it): %w: %s", script(), runErr, stderr.String())
		}
		return nil, fmt.Errorf("reading iam-simulate's verdicts: %w", err)
	}
	if len(out.Errors) > 0 {
		return nil, fmt.Errorf("iam-simulate refused %d of %d requests: %w", len(out.Errors), len(reqs), errors.New(strings.Join(out.Errors, "\n")))
	}
	if runErr != nil {
		return nil, fmt.Errorf("running iam-simulate: %w: %s", runErr, stderr.String())
	}
	if len(out.Verdicts) != len(reqs) {
		return nil, fmt.Errorf("iam-simulate returned %d verdicts for %d requests", len(out.Verdicts), len(reqs))
	}
	return out.Verdicts, nil
}
