package contract

import (
	"os"
	"os/exec"
	"regexp"
	"runtime"
	"testing"
)

// TestDefaultsMatch: the value each pattern admits without compiling is one the pattern
// admits, so the shortcut lets nothing through that the pattern (and the SSM document's
// allowedPattern, the same text) would refuse.
func TestDefaultsMatch(t *testing.T) {
	for _, tc := range []struct {
		name string
		p    pattern
	}{
		{"kms key id", reKMSKeyID}, {"secret", reSecret}, {"mount point", reMountPoint}, {"model", reModel},
		{"devices", reDevices}, {"required by", reRequiredBy}, {"bind dirs", reBindDirs},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if !regexp.MustCompile(tc.p.source).MatchString(tc.p.def) {
				t.Errorf("%s refuses its default %q, which it admits uncompiled", tc.p.source, tc.p.def)
			}
		})
	}
}

// freshEnv marks the child process of TestValidatingDefaultsCompilesNothing.
const freshEnv = "STORECRYPT_CONTRACT_FRESH_PROCESS"

// TestValidatingDefaultsCompilesNothing: in a fresh process (no pattern compiled yet),
// validating the agent's defaults allocates next to nothing. Compiling the mount point's
// pattern alone allocates over 500 KB; the launch function validates the stack's
// defaults at every cold start.
func TestValidatingDefaultsCompilesNothing(t *testing.T) {
	o := DefaultAgentOptions()
	o.KeySource = KeySourceEphemeral // no key id: its pattern would compile
	if os.Getenv(freshEnv) != "" {
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		err := o.Validate()
		runtime.ReadMemStats(&after)
		if err != nil {
			t.Fatal(err)
		}
		if got := after.TotalAlloc - before.TotalAlloc; got > 4096 {
			t.Fatalf("validating the defaults allocated %d bytes, want at most 4096: a pattern was compiled", got)
		}
		return
	}
	cmd := exec.Command(os.Args[0], "-test.run=^TestValidatingDefaultsCompilesNothing$", "-test.count=1")
	cmd.Env = append(os.Environ(), freshEnv+"=1")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Errorf("in a fresh process: %v\n%s", err, out)
	}
}
