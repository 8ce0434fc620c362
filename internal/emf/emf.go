// Package emf writes CloudWatch Embedded Metric Format lines: the Lambda's log stream
// carries the metrics, so the functions need no cloudwatch:PutMetricData permission and
// make no extra calls.
package emf

import (
	"encoding/json"
	"fmt"
	"io"
	"sync"
	"time"
)

// Metric is one value.
type Metric struct {
	Name  string
	Unit  string // Count, Seconds
	Value float64
}

// Writer emits EMF lines to W in Namespace.
type Writer struct {
	W         io.Writer
	Namespace string
	mu        sync.Mutex
}

// Emit writes one line with the metrics, a dimension per entry in dims, and props as
// searchable properties (an instance id, say) that are not dimensions.
func (w *Writer) Emit(at time.Time, metrics []Metric, dims map[string]string, props map[string]string) error {
	doc := map[string]any{}
	for k, v := range props {
		doc[k] = v
	}
	dimNames := []string{}
	for k, v := range dims {
		doc[k] = v
		dimNames = append(dimNames, k)
	}
	defs := make([]map[string]string, len(metrics))
	for i, m := range metrics {
		defs[i] = map[string]string{"Name": m.Name, "Unit": m.Unit}
		doc[m.Name] = m.Value
	}
	doc["_aws"] = map[string]any{
		"Timestamp": at.UnixMilli(),
		"CloudWatchMetrics": []map[string]any{{
			"Namespace":  w.Namespace,
			"Dimensions": [][]string{dimNames},
			"Metrics":    defs,
		}},
	}
	b, err := json.Marshal(doc)
	if err != nil {
		return fmt.Errorf("encoding an EMF line: %w", err)
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	_, err = w.W.Write(append(b, '\n'))
	return err
}
