package launch

import (
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"time"

	"github.com/aws/aws-lambda-go/events"

	"github.com/storecrypt/storecrypt/internal/contract"
)

var instanceID = regexp.MustCompile(`^i-[0-9a-f]{8,17}$`)

// ErrIgnored marks a well-formed event the launch function does not act on.
var ErrIgnored = errors.New("ignored")

// InstanceIDs returns the instances an EventBridge event (an SQS message body) asks the
// function to look at: a state change to running, or the instances of a RunInstances
// call. A malformed event is an error; one that needs no action wraps ErrIgnored.
func InstanceIDs(body string) ([]string, error) {
	ids, _, err := parse(body)
	return ids, err
}

// parse is InstanceIDs with the event's time.
func parse(body string) ([]string, time.Time, error) {
	var ev events.CloudWatchEvent
	if err := json.Unmarshal([]byte(body), &ev); err != nil {
		return nil, time.Time{}, fmt.Errorf("not an EventBridge event: %w", err)
	}
	ids, err := instanceIDs(ev)
	return ids, ev.Time, err
}

// Terminated reads a state change to terminated: the instance and when. Its launch's
// ledger item is closed then.
func Terminated(body string) (string, time.Time, bool) {
	var ev events.CloudWatchEvent
	if err := json.Unmarshal([]byte(body), &ev); err != nil || ev.DetailType != contract.DetailStateChange {
		return "", time.Time{}, false
	}
	var d struct {
		InstanceID string `json:"instance-id"`
		State      string `json:"state"`
	}
	if err := json.Unmarshal(ev.Detail, &d); err != nil || d.State != "terminated" || !instanceID.MatchString(d.InstanceID) {
		return "", time.Time{}, false
	}
	return d.InstanceID, ev.Time, true
}

func instanceIDs(ev events.CloudWatchEvent) ([]string, error) {
	switch ev.DetailType {
	case contract.DetailStateChange:
		var d struct {
			InstanceID string `json:"instance-id"`
			State      string `json:"state"`
		}
		if err := json.Unmarshal(ev.Detail, &d); err != nil || !instanceID.MatchString(d.InstanceID) {
			return nil, fmt.Errorf("state-change event %s: no valid instance-id", ev.ID)
		}
		if d.State != "running" {
			return nil, fmt.Errorf("%w: %s is %s", ErrIgnored, d.InstanceID, d.State)
		}
		return []string{d.InstanceID}, nil
	case contract.DetailCloudTrail:
		var d struct {
			EventName        string `json:"eventName"`
			ErrorCode        string `json:"errorCode"`
			ResponseElements *struct {
				InstancesSet struct {
					Items []struct {
						InstanceID string `json:"instanceId"`
					} `json:"items"`
				} `json:"instancesSet"`
			} `json:"responseElements"`
		}
		if err := json.Unmarshal(ev.Detail, &d); err != nil {
			return nil, fmt.Errorf("CloudTrail event %s: %w", ev.ID, err)
		}
		if d.EventName != "RunInstances" || d.ErrorCode != "" || d.ResponseElements == nil {
			return nil, fmt.Errorf("%w: CloudTrail %s (error %q)", ErrIgnored, d.EventName, d.ErrorCode)
		}
		var ids []string
		for _, it := range d.ResponseElements.InstancesSet.Items {
			if !instanceID.MatchString(it.InstanceID) {
				return nil, fmt.Errorf("CloudTrail event %s: invalid instance id %q", ev.ID, it.InstanceID)
			}
			ids = append(ids, it.InstanceID)
		}
		if len(ids) == 0 {
			return nil, fmt.Errorf("CloudTrail event %s: RunInstances without instances", ev.ID)
		}
		return ids, nil
	default:
		return nil, fmt.Errorf("%w: detail-type %q", ErrIgnored, ev.DetailType)
	}
}

// StateChangeEvent is the event the sweep enqueues for an instance it finds unhandled,
// shaped as EC2's own so that one code path handles both.
func StateChangeEvent(id string, at time.Time) string {
	detail, _ := json.Marshal(map[string]string{"instance-id": id, "state": "running"})
	ev := events.CloudWatchEvent{
		Version: "0", ID: fmt.Sprintf("storecrypt-sweep-%s-%d", id, at.Unix()), DetailType: contract.DetailStateChange,
		Source: "storecrypt.sweep", Time: at, Resources: []string{}, Detail: detail,
	}
	b, _ := json.Marshal(ev) // a struct of strings always encodes
	return string(b)
}
