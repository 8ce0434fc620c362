package probe

import (
	"context"
	"testing"

	"github.com/storecrypt/storecrypt/instance-agent/sysexec"
)

func TestDevice(t *testing.T) {
	for _, tc := range []struct {
		name  string
		call  sysexec.Call
		want  Signature
		blank bool
		what  string
	}{
		{"blank", sysexec.Call{Code: 2}, Signature{}, true, "nothing"},
		{"ours", sysexec.Call{Stdout: "DEVNAME=/dev/md127\nVERSION=2\nUUID=u-1\nLABEL=storecrypt\nSUBSYSTEM=storecrypt-ready\nTYPE=crypto_LUKS\nUSAGE=crypto\n"},
			Signature{Type: "crypto_LUKS", Label: "storecrypt", UUID: "u-1", Subsystem: "storecrypt-ready"}, false, `crypto_LUKS (label "storecrypt")`},
		{"gpt", sysexec.Call{Stdout: "DEVNAME=/dev/nvme1n1\nPTUUID=x\nPTTYPE=gpt\n"}, Signature{PTType: "gpt"}, false, "gpt partition table"},
		{"ambivalent", sysexec.Call{Code: 8}, Signature{Type: "ambivalent"}, false, "ambivalent"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tc.call.Argv = "blkid -p -o export /dev/x"
			fake := &sysexec.Fake{T: t, Calls: []sysexec.Call{tc.call}}
			got, err := Device(context.Background(), fake, "/dev/x")
			if err != nil {
				t.Fatal(err)
			}
			if got != tc.want || got.Blank() != tc.blank || got.What() != tc.what {
				t.Errorf("got %+v (blank %v, %q), want %+v (blank %v, %q)", got, got.Blank(), got.What(), tc.want, tc.blank, tc.what)
			}
		})
	}
	fake := &sysexec.Fake{T: t, Calls: []sysexec.Call{{Argv: "blkid -p -o export /dev/x", Code: 4, Stderr: "usage"}}}
	if _, err := Device(context.Background(), fake, "/dev/x"); sysexec.ExitCode(err) != 4 {
		t.Errorf("exit 4: got %v, want the *ExitError", err)
	}
}
