package contract

import (
	"flag"
	"io"
	"strings"
	"testing"
)

func TestRegisterFlags(t *testing.T) {
	o := DefaultAgentOptions()
	fs := flag.NewFlagSet("t", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	o.RegisterFlags(fs)
	err := fs.Parse([]string{"--key-source", "s3-kms", "--secret", "s3://b/k", "--devices", "/dev/nvme1n1, /dev/nvme2n1", "--discard=false", "--wipe"})
	if err != nil {
		t.Fatal(err)
	}
	if o.KeySource != KeySourceS3KMS || o.Secret != "s3://b/k" || len(o.Devices) != 2 || o.Devices[1] != "/dev/nvme2n1" || o.Discard || !o.Wipe {
		t.Fatalf("parsed %+v", o)
	}
	for _, name := range []string{FlagKeySource, FlagKMSKeyID, FlagSecret, FlagMountPoint, FlagFilesystem, FlagModel, FlagDevices, FlagDiscard, FlagWipe} {
		if fs.Lookup(name) == nil {
			t.Errorf("flag --%s is not registered", name)
		}
	}
}

func TestExitCodeNames(t *testing.T) {
	seen := map[string]bool{}
	for c := ExitOK; c <= ExitRevoked; c++ {
		name := c.String()
		if seen[name] || name == "" {
			t.Errorf("exit code %d has name %q, which is empty or not unique", c, name)
		}
		seen[name] = true
	}
	if got := ExitCode(42).String(); got != "exit-42" {
		t.Errorf("unknown code: got %q, want exit-42", got)
	}
}

// TestStackChoices: each stack choice is a document parameter, and what the launch
// function's variables set is what it sends; a value the flag refuses names its variable.
func TestStackChoices(t *testing.T) {
	env := map[string]string{EnvMountPoint: "/data", EnvFilesystem: FilesystemXFS, EnvLayout: LayoutPerDisk, EnvFastFormat: "true"}
	o := DefaultAgentOptions()
	if err := o.SetStackChoices(func(k string) string { return env[k] }); err != nil {
		t.Fatal(err)
	}
	sent := o.DocumentValues()
	for _, sc := range StackChoices {
		if got := sent[sc.Parameter]; len(got) != 1 || got[0] != env[sc.Env] {
			t.Errorf("%s=%s sends %s=%v", sc.Env, env[sc.Env], sc.Parameter, got)
		}
	}
	o = DefaultAgentOptions()
	err := o.SetStackChoices(func(k string) string { return map[string]string{EnvFastFormat: "maybe"}[k] })
	if err == nil || !strings.Contains(err.Error(), EnvFastFormat) {
		t.Errorf("%s=maybe: %v, want an error naming it", EnvFastFormat, err)
	}
}
