package launch_test

import (
	"errors"
	"slices"
	"testing"

	"github.com/storecrypt/storecrypt/events"
	"github.com/storecrypt/storecrypt/internal/launch"
)

func eventsFile(name string) (string, error) {
	b, err := events.Read(name)
	return string(b), err
}

func TestSampleEvents(t *testing.T) {
	for _, tc := range []struct {
		file    string
		ids     []string
		ignored bool
		bad     bool
	}{
		{"ec2-running.json", []string{"i-0abcdef1234567890"}, false, false},
		{"ec2-pending.json", nil, true, false},
		{"ec2-stopped.json", nil, true, false},
		{"ec2-terminated.json", nil, true, false}, // closes the ledger item (TestLedger)
		{"cloudtrail-runinstances.json", []string{"i-0aaaaaaaaaaaaaaa1", "i-0aaaaaaaaaaaaaaa2", "i-0aaaaaaaaaaaaaaa3"}, false, false},
		{"ssm-success.json", nil, true, false},
		{"scheduled-sweep.json", nil, true, false},
		{"malformed.json", nil, false, true},
	} {
		t.Run(tc.file, func(t *testing.T) {
			body, err := eventsFile(tc.file)
			if err != nil {
				t.Fatal(err)
			}
			if id, _, ok := launch.Terminated(body); ok != (tc.file == "ec2-terminated.json") || ok && id != "i-0abcdef1234567890" {
				t.Errorf("Terminated: %s, %v", id, ok)
			}
			ids, err := launch.InstanceIDs(body)
			switch {
			case tc.ignored && !errors.Is(err, launch.ErrIgnored):
				t.Errorf("got %v, %v; want ignored", ids, err)
			case tc.bad && (err == nil || errors.Is(err, launch.ErrIgnored)):
				t.Errorf("got %v, %v; want malformed", ids, err)
			case !tc.ignored && !tc.bad && (err != nil || !slices.Equal(ids, tc.ids)):
				t.Errorf("got %v, %v; want %v", ids, err, tc.ids)
			}
		})
	}
}
