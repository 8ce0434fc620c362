package rie

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"

	"github.com/storecrypt/storecrypt/events"
	"github.com/storecrypt/storecrypt/internal/contract"
	"github.com/storecrypt/storecrypt/internal/lambdaenv"
)

// Probe is how a function is started outside Lambda to measure its start: the whole
// configuration the stack gives it (with any of it missing the init fails, and a failed
// init is no cold start) and an event it answers without calling AWS, so that what is
// measured is the start alone.
type Probe struct {
	Env   []string
	Event string // a file in events/
	// Wrap makes the invocation payload from the event's JSON.
	Wrap func(event []byte) string
}

// Payload is the probe's invocation payload.
func (p Probe) Payload() (string, error) {
	body, err := events.Read(p.Event)
	if err != nil {
		return "", fmt.Errorf("reading the probe's event: %w", err)
	}
	return p.Wrap(body), nil
}

// Probes has one entry per function in artifact.Functions (the bench's
// TestProbesCoverFunctions): a function nobody starts is one whose cold start nobody
// watches.
var Probes = map[string]Probe{
	"launch": {
		Env: append(stackEnv(),
			contract.EnvInstanceRoles+"=arn:aws:iam::111122223333:role/storecrypt-instance",
			contract.EnvLaunchRole+"=arn:aws:iam::111122223333:role"+contract.FunctionRolePath+"storecrypt-launch",
			contract.EnvQueueURL+"=https://sqs.us-east-1.amazonaws.com/111122223333/storecrypt-launch"),
		// A stopped instance needs no action.
		Event: "ec2-stopped.json",
		Wrap: func(event []byte) string {
			return fmt.Sprintf(`{"Records":[{"messageId":"m-1","body":%q}]}`, event)
		},
	},
	"result": {
		// Another document's invocation is ignored: the event's document is not the
		// stack's.
		Env:   append(stackEnv(), contract.EnvDocumentName+"=storecrypt-bench-other"),
		Event: "ssm-success.json",
		Wrap:  func(event []byte) string { return string(event) },
	},
}

// stackEnv is what the stack gives every function (infra/storecrypt's function), with
// the stack's defaults: Security Hub findings on, the ledger's table set.
func stackEnv() []string {
	return []string{
		contract.EnvKMSKeyARN + "=arn:aws:kms:us-east-1:111122223333:key/11111111-2222-4333-8444-555555555555",
		contract.EnvKeySource + "=" + contract.DefaultKeySource,
		contract.EnvMountPoint + "=" + contract.DefaultMountPoint,
		contract.EnvFilesystem + "=" + contract.DefaultFilesystem,
		contract.EnvDocumentName + "=" + contract.DocumentName,
		contract.EnvDocumentDigest + "=" + strings.Repeat("ab", 32),
		contract.EnvEventBus + "=default",
		contract.EnvLedgerTable + "=storecrypt-ledger",
		contract.EnvSecurityHub + "=true",
		contract.EnvGOGC + "=" + contract.FunctionGOGC,
		fmt.Sprintf("%s=%d", lambdaenv.EnvMemorySize, contract.FunctionMemoryMB),
		"AWS_REGION=us-east-1", "AWS_ACCESS_KEY_ID=probe", "AWS_SECRET_ACCESS_KEY=probe",
	}
}

// InitCost is what one package's init took (GODEBUG=inittrace=1).
type InitCost struct {
	Package string
	Bytes   int64
	Allocs  int64
}

// Start is what a function's start cost before its first request for an event.
type Start struct {
	Packages []InitCost
	// Collections is how many garbage collections ran (GODEBUG=gctrace=1).
	Collections int
}

// InitCosts starts bootstrap once with env and the init and GC traces on, against a
// runtime API that refuses: the process runs every package's init and its main up to
// the first request for an event, then exits.
func InitCosts(ctx context.Context, bootstrap string, env []string) (Start, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return Start{}, err
	}
	refused := ln.Addr().String()
	ln.Close()
	cmd := exec.CommandContext(ctx, bootstrap)
	cmd.Env = append(append(os.Environ(), env...), "GODEBUG=inittrace=1,gctrace=1", "AWS_LAMBDA_RUNTIME_API="+refused)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	// It exits 1 when the runtime API refuses; what matters is that its init ran.
	_ = cmd.Run()
	if !strings.Contains(out.String(), "/runtime/invocation/next") {
		return Start{}, fmt.Errorf("%s did not reach the runtime API (a failed init?):\n%s", bootstrap, out.String())
	}
	var st Start
	for sc := bufio.NewScanner(bytes.NewReader(out.Bytes())); sc.Scan(); {
		// init <package> @<t> ms, <clock> ms clock, <bytes> bytes, <allocs> allocs
		// gc <n> @<t>s <p>%: ...
		f := strings.Fields(sc.Text())
		if len(f) > 2 && f[0] == "gc" && strings.HasPrefix(f[2], "@") {
			st.Collections++
		}
		if len(f) != 11 || f[0] != "init" || f[8] != "bytes," {
			continue
		}
		c := InitCost{Package: f[1]}
		c.Bytes, _ = strconv.ParseInt(f[7], 10, 64)
		c.Allocs, _ = strconv.ParseInt(f[9], 10, 64)
		st.Packages = append(st.Packages, c)
	}
	if len(st.Packages) == 0 {
		return Start{}, fmt.Errorf("%s printed no init trace:\n%s", bootstrap, out.String())
	}
	return st, nil
}

// MaxOwnInit bounds what one of storecrypt's packages may allocate at init: a pattern
// with counted repetitions compiled there costs every cold start milliseconds (contract's
// took 12-17 ms, 2 MB, before they were compiled on first use).
const MaxOwnInit = 256 << 10

// CheckInit builds the function in the working directory (a functions/<fn> test's) and
// starts it with its probe's configuration: t fails when one of storecrypt's packages
// allocates more than MaxOwnInit at init, or all packages together more than maxTotal,
// the budget that a new SDK client (whose generated schemas and endpoint tables all
// initialize at start, used or not) would break, or when a garbage collection runs
// before the first request (contract.FunctionGOGC says why none should).
func CheckInit(t testing.TB, fn string, maxTotal int64) {
	t.Helper()
	bootstrap, err := BuildBootstrap(t.TempDir(), ".")
	if err != nil {
		t.Fatal(err)
	}
	st, err := InitCosts(t.Context(), bootstrap, Probes[fn].Env)
	if err != nil {
		t.Fatal(err)
	}
	var total int64
	for _, c := range st.Packages {
		total += c.Bytes
		if strings.HasPrefix(c.Package, "github.com/storecrypt/storecrypt/") && c.Bytes > MaxOwnInit {
			t.Errorf("%s allocates %d bytes at init, want at most %d: compile or build it on first use", c.Package, c.Bytes, MaxOwnInit)
		}
	}
	t.Logf("init: %d packages, %d bytes, %d collections", len(st.Packages), total, st.Collections)
	if total > maxTotal {
		t.Errorf("init allocates %d bytes in all, want at most %d: what was added to the function's start?", total, maxTotal)
	}
	if st.Collections != 0 {
		t.Errorf("%d garbage collections ran before the first request, want none: the stack's %s=%s no longer covers what the start allocates", st.Collections, contract.EnvGOGC, contract.FunctionGOGC)
	}
}
