package emf

import (
	"bytes"
	"encoding/json"
	"testing"
	"time"
)

// TestDimensionSets: a metric with a dimension is published both with it and without
// any, so an alarm on the bare metric sees every value.
func TestDimensionSets(t *testing.T) {
	for _, tc := range []struct {
		name string
		dims map[string]string
		want string
	}{
		{"no dimensions", nil, `[[]]`},
		{"a reason", map[string]string{"Reason": "not-key-user"}, `[[],["Reason"]]`},
		{"two, sorted", map[string]string{"Reason": "x", "Kind": "y"}, `[[],["Kind","Reason"]]`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var buf bytes.Buffer
			w := &Writer{W: &buf, Namespace: "ns"}
			if err := w.Emit(time.UnixMilli(1700000000000), []Metric{{Name: "Blocked", Unit: "Count", Value: 1}}, tc.dims, map[string]string{"InstanceId": "i-1"}); err != nil {
				t.Fatal(err)
			}
			var line struct {
				AWS struct {
					Timestamp         int64
					CloudWatchMetrics []struct {
						Namespace  string
						Dimensions json.RawMessage
					}
				} `json:"_aws"`
				InstanceID string `json:"InstanceId"`
				Blocked    float64
			}
			if err := json.Unmarshal(buf.Bytes(), &line); err != nil {
				t.Fatal(err)
			}
			got := string(line.AWS.CloudWatchMetrics[0].Dimensions)
			if got != tc.want || line.Blocked != 1 || line.InstanceID != "i-1" || line.AWS.Timestamp != 1700000000000 {
				t.Errorf("got %s (%+v), want dimensions %s", got, line, tc.want)
			}
		})
	}
}
