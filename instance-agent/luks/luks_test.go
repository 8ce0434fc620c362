package luks

import (
	"context"
	"encoding/json"
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

// TestKeyOnlyOnStdin: format and open take the key through --key-file - and stdin.
func TestKeyOnlyOnStdin(t *testing.T) {
	key := []byte("k3y-material")
	fake := &sysexec.Fake{T: t, Calls: []sysexec.Call{
		{Argv: "cryptsetup luksFormat --batch-mode --type luks2 --cipher aes-xts-plain64 --key-size 512 --key-slot 0 --key-file - /dev/x"},
		{Argv: "cryptsetup open --type luks2 --key-file - --persistent /dev/x name"},
	}}
	c := Cryptsetup{R: fake}
	if err := c.Format(context.Background(), "/dev/x", FormatOptions{}, key); err != nil {
		t.Fatal(err)
	}
	if err := c.Open(context.Background(), "/dev/x", "name", key, OpenOptions{Workqueue: true, Persist: true}); err != nil {
		t.Fatal(err)
	}
	fake.Done()
	for i := range 2 {
		if string(fake.Stdins[i]) != string(key) {
			t.Errorf("call %d stdin %q, want the key", i, fake.Stdins[i])
		}
	}
}
