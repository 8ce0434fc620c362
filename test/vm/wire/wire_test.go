package wire

import (
	"bytes"
	"testing"
)

func TestFrameRoundTrip(t *testing.T) {
	var buf bytes.Buffer
	frames := []struct {
		kind byte
		p    string
	}{{Stdout, "hello\n"}, {Stderr, ""}, {Exit, "3"}}
	for _, f := range frames {
		if err := WriteFrame(&buf, f.kind, []byte(f.p)); err != nil {
			t.Fatal(err)
		}
	}
	for _, want := range frames {
		kind, p, err := ReadFrame(&buf)
		if err != nil || kind != want.kind || string(p) != want.p {
			t.Fatalf("got %c %q %v, want %c %q", kind, p, err, want.kind, want.p)
		}
	}
	if _, _, err := ReadFrame(bytes.NewReader([]byte{'o', 0xff, 0xff, 0xff, 0xff})); err == nil {
		t.Error("an oversized frame was accepted")
	}
}
