package lambdaenv

import (
	"path/filepath"
	"runtime/debug"
	"testing"
)

func TestMemoryLimit(t *testing.T) {
	for _, tc := range []struct {
		memory string
		want   int64
		ok     bool
	}{
		{"256", 192 << 20, true},
		{"10240", 7680 << 20, true},
		{"128", 96 << 20, true},
		{"", 0, false},    // outside Lambda
		{"0", 0, false},   // no memory is no limit
		{"abc", 0, false}, // not Lambda's
	} {
		got, ok := MemoryLimit(func(k string) string {
			if k != EnvMemorySize {
				t.Fatalf("read %s, want %s", k, EnvMemorySize)
			}
			return tc.memory
		})
		if got != tc.want || ok != tc.ok {
			t.Errorf("memory %q: limit %d, %v; want %d, %v", tc.memory, got, ok, tc.want, tc.ok)
		}
	}
}

// TestInitLimitsMemory: a function's start sets the limit from Lambda's variable.
func TestInitLimitsMemory(t *testing.T) {
	before := debug.SetMemoryLimit(-1)
	t.Cleanup(func() { debug.SetMemoryLimit(before) })
	dir := t.TempDir()
	for k, v := range map[string]string{
		EnvMemorySize: "256", "AWS_REGION": "us-east-1", "AWS_ACCESS_KEY_ID": "test", "AWS_SECRET_ACCESS_KEY": "test",
		"AWS_CONFIG_FILE": filepath.Join(dir, "config"), "AWS_SHARED_CREDENTIALS_FILE": filepath.Join(dir, "credentials"),
	} {
		t.Setenv(k, v)
	}
	got, _, _ := Init("test", func(func(string) string) (string, error) { return "loaded", nil })
	if got != "loaded" {
		t.Fatalf("configuration %q, want the loader's", got)
	}
	if limit := debug.SetMemoryLimit(-1); limit != 192<<20 {
		t.Errorf("memory limit %d after Init, want %d", limit, 192<<20)
	}
}
