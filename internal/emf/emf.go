// Package emf writes CloudWatch Embedded Metric Format lines: the Lambda's log stream
// carries the metrics, so the functions need no cloudwatch:PutMetricData permission and
// make no extra calls.
package emf

import (
	"encoding/json"
	"fmt"
	"io"
	"sort"
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

// Emit writes one line with the metrics and props as searchable properties (an instance
// id, say) that are not dimensions. Each metric is published with no dimensions, which
// is what an alarm over every instance watches, and, when dims is not empty, also with
// dims as its dimensions: "Every DimensionSet used creates a new metric in CloudWatch"
// (the EMF specification), and an alarm must name exactly the dimensions of the metric
// it watches.
func (w *Writer) Emit(at time.Time, metrics []Metric, dims map[string]string, props map[string]string) error {
	doc := map[string]any{}
	for k, v := range props {
		doc[k] = v
	}
	sets := [][]string{{}}
	if len(dims) > 0 {
		names := make([]string, 0, len(dims))
		for k, v := range dims {
			doc[k] = v
			names = append(names, k)
		}
		sort.Strings(names)
		sets = append(sets, names)
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
			"Dimensions": sets,
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
