package luks

import (
	"context"
	"encoding/json"
	"strings"
	"testing"

	"github.com/storecrypt/storecrypt/instance-agent/sysexec"
)

func TestParseVersion(t *testing.T) {
	for in, want := range map[string]Version{
		"cryptsetup 2.6.1 flags: UDEV BLKID KEYRING KERNEL_CAPI\n": {2, 6, 1},
		"cryptsetup 2.3.4\n": {2, 3, 4},
	} {
		got, err := ParseVersion(in)
		if err != nil || got != want {
			t.Errorf("ParseVersion(%q) = %v, %v; want %v", in, got, err, want)
		}
	}
	if _, err := ParseVersion("cryptsetup (unknown)"); err == nil {
		t.Error("want an error for an unrecognised version")
	}
	if !(Version{2, 6, 1}).AtLeast(PerfFlagsVersion) || (Version{2, 3, 3}).AtLeast(PerfFlagsVersion) || !(Version{3, 0, 0}).AtLeast(Version{2, 9, 9}) {
		t.Error("AtLeast is wrong")
	}
}

func TestTokenOfType(t *testing.T) {
	m := Metadata{Tokens: map[string]json.RawMessage{
		"0":  []byte(`{"type":"systemd-tpm2"}`),
		"10": []byte(`{"type":"storecrypt","n":10}`),
		"2":  []byte(`{"type":"storecrypt","n":2}`),
	}}
	if got := string(m.TokenOfType("storecrypt")); got != `{"type":"storecrypt","n":2}` {
		t.Errorf("got %s, want the lowest id", got)
	}
	if m.TokenOfType("clevis") != nil {
		t.Error("found a token that is not there")
	}
}

// TestKeyOnlyOnStdin: format and open read the key through --key-file -; Run hands it
// to cryptsetup on stdin, and no builder takes a key, so argv cannot hold one.
func TestKeyOnlyOnStdin(t *testing.T) {
	key := []byte("k3y-material")
	for _, tc := range []struct {
		name string
		cmd  sysexec.Command
		argv string
	}{
		{"format", FormatCommand("/dev/x", FormatOptions{}), "cryptsetup luksFormat --batch-mode --type luks2 --cipher aes-xts-plain64 --key-size 512 --key-slot 0 --key-file - /dev/x"},
		{"open", OpenCommand("/dev/x", "name", OpenOptions{Workqueue: true, Persist: true}), "cryptsetup open --type luks2 --key-file - --persistent /dev/x name"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			fake := &sysexec.Fake{T: t, Calls: []sysexec.Call{{Argv: tc.argv}}}
			if err := (Cryptsetup{R: fake}).Run(context.Background(), tc.cmd, key); err != nil {
				t.Fatal(err)
			}
			fake.Done()
			if got := string(fake.Stdins[0]); got != string(key) {
				t.Errorf("got stdin %q, want the key", got)
			}
			if strings.Contains(tc.cmd.String(), string(key)) {
				t.Errorf("got argv %s, want no key in it", tc.cmd)
			}
		})
	}
}
