package opcli

import (
	"bytes"
	"testing"
	"time"
)

// TestProgress: on a terminal the line is rewritten in place and ended once; elsewhere
// each change is a line, an unchanged line is not repeated until the heartbeat, and
// nothing is rewritten.
func TestProgress(t *testing.T) {
	for _, tc := range []struct {
		name  string
		live  bool
		stale bool // the last line is older than the heartbeat
		want  string
	}{
		{"terminal", true, false, "\r\033[Ka\r\033[Kb\n"},
		{"terminal, a minute on", true, true, "\r\033[Ka\r\033[Kb\n"},
		{"log", false, false, "a\nb\n"},
		{"log, a minute on", false, true, "a\nb\nb\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var buf bytes.Buffer
			p := &progress{w: &buf, live: tc.live}
			p.show("a")
			p.show("a")
			p.show("b")
			if tc.stale {
				p.at = p.at.Add(-heartbeat - time.Second)
			}
			p.show("b")
			p.end()
			if got := buf.String(); got != tc.want {
				t.Errorf("got %q, want %q", got, tc.want)
			}
		})
	}
}
