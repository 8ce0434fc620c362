package conformance

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"sort"
	"strings"
	"testing"

	"github.com/storecrypt/storecrypt/internal/contract"
	"github.com/storecrypt/storecrypt/test/cfn"
)

// published reads EMF lines: every (namespace, metric, dimension names) they publish,
// one per DimensionSet as the EMF specification says ("Every DimensionSet used creates a
// new metric in CloudWatch").
func published(t *testing.T, lines ...*bytes.Buffer) map[string]bool {
	t.Helper()
	out := map[string]bool{}
	for _, buf := range lines {
		sc := bufio.NewScanner(bytes.NewReader(buf.Bytes()))
		for sc.Scan() {
			var line struct {
				AWS struct {
					CloudWatchMetrics []struct {
						Namespace  string
						Dimensions [][]string
						Metrics    []struct{ Name string }
					}
				} `json:"_aws"`
			}
			if err := json.Unmarshal(sc.Bytes(), &line); err != nil {
				t.Fatalf("an EMF line that is not JSON: %s", sc.Text())
			}
			for _, d := range line.AWS.CloudWatchMetrics {
				for _, set := range d.Dimensions {
					for _, m := range d.Metrics {
						out[metricKey(d.Namespace, m.Name, set)] = true
					}
				}
			}
		}
	}
	return out
}

func metricKey(namespace, name string, dims []string) string {
	d := slices.Clone(dims)
	sort.Strings(d)
	return namespace + " " + name + " [" + strings.Join(d, ",") + "]"
}

// TestAlarmsWatchWhatIsPublished: each alarm in the template names a metric that is
// published with exactly the alarm's dimensions ("you must include all of the dimensions
// for the custom metric", CloudWatch alarms). storecrypt's metrics are what the handlers
// wrote in the scenarios; AWS/Lambda's Errors is published per FunctionName and
// AWS/SQS's ApproximateNumberOfMessagesVisible per QueueName (the Lambda and SQS
// metrics pages), each for a function or queue of the template.
func TestAlarmsWatchWhatIsPublished(t *testing.T) {
	for _, source := range []string{contract.KeySourceKMSDataKey, contract.KeySourceS3KMS} {
		t.Run(source, func(t *testing.T) {
			d := deploy(t, source, cfn.Partitions[0])
			m := d.metrics(t)
			for _, name := range []string{contract.MetricBlocked, contract.MetricFailed, contract.MetricEncrypted, contract.MetricDocumentDrift, contract.MetricFindingsNotImported} {
				if !m.published[metricKey(m.own, name, nil)] {
					t.Errorf("the scenarios did not publish %s without dimensions; published %v", name, m.published)
				}
			}
			alarms := d.Of("AWS::CloudWatch::Alarm")
			if len(alarms) < 7 {
				t.Fatalf("%d alarms", len(alarms))
			}
			alarmed := map[string]bool{}
			for _, id := range alarms {
				props, err := d.Eval(d.Resources[id].Properties)
				if err != nil {
					t.Fatal(err)
				}
				p := props.(map[string]any)
				values := map[string]string{}
				if list, ok := p["Dimensions"].([]any); ok {
					for _, x := range list {
						dim := x.(map[string]any)
						values[dim["Name"].(string)] = dim["Value"].(string)
					}
				}
				if err := m.check(p["Namespace"].(string), p["MetricName"].(string), values); err != nil {
					t.Errorf("alarm %s: %v", id, err)
				}
				alarmed[p["MetricName"].(string)] = true
			}
			// What needs someone: an instance left unencrypted, a document not the
			// deployed one, evidence Security Hub did not take.
			for _, name := range []string{contract.MetricBlocked, contract.MetricFailed, contract.MetricDocumentDrift, contract.MetricFindingsNotImported} {
				if !alarmed[name] {
					t.Errorf("no alarm on %s; alarmed: %v", name, alarmed)
				}
			}
		})
	}
}

// TestDashboardShowsWhatIsPublished: every graph of the dashboard shows a metric that is
// published with exactly its dimensions, by the rules TestAlarmsWatchWhatIsPublished
// applies; a graph of a metric nobody publishes would stay empty and say nothing.
func TestDashboardShowsWhatIsPublished(t *testing.T) {
	d := deploy(t, contract.KeySourceKMSDataKey, cfn.Partitions[0])
	m := d.metrics(t)
	shown := map[string]bool{}
	for _, w := range dashboardWidgets(t, d) {
		if len(w.Properties.Metrics) == 0 {
			t.Errorf("widget %q shows no metric", w.Properties.Title)
		}
		for _, line := range w.Properties.Metrics {
			// [namespace, name, dimension, value, ..., {rendering}] (CloudWatch's "Dashboard
			// body structure and syntax").
			var parts []string
			for _, x := range line {
				if str, ok := x.(string); ok {
					parts = append(parts, str)
				}
			}
			if len(parts) < 2 || len(parts)%2 != 0 {
				t.Errorf("widget %q: a metric line %v", w.Properties.Title, line)
				continue
			}
			values := map[string]string{}
			for i := 2; i < len(parts); i += 2 {
				values[parts[i]] = parts[i+1]
			}
			if err := m.check(parts[0], parts[1], values); err != nil {
				t.Errorf("widget %q: %v", w.Properties.Title, err)
			}
			shown[parts[1]] = true
		}
	}
	for _, want := range []string{contract.MetricCommandsSent, contract.MetricEncrypted, contract.MetricBlocked, contract.MetricFailed,
		contract.MetricSecondsToEncrypted, "ApproximateNumberOfMessagesVisible", "Errors"} {
		if !shown[want] {
			t.Errorf("the dashboard does not show %s", want)
		}
	}
}

// widget is one graph of the dashboard: its title and its metric lines.
type widget struct {
	Properties struct {
		Title   string
		Metrics [][]any
	}
}

// dashboardWidgets is the graphs of the deployment's one dashboard, its body resolved.
func dashboardWidgets(t *testing.T, d *deployment) []widget {
	t.Helper()
	boards := d.Of("AWS::CloudWatch::Dashboard")
	if len(boards) != 1 {
		t.Fatalf("%d dashboards, want 1", len(boards))
	}
	body, err := d.String(d.Resources[boards[0]].Properties["DashboardBody"])
	if err != nil {
		t.Fatal(err)
	}
	var dash struct{ Widgets []widget }
	if err := json.Unmarshal([]byte(body), &dash); err != nil {
		t.Fatalf("the dashboard body is not JSON: %v", err)
	}
	return dash.Widgets
}

// metricSources is what may be watched: storecrypt's metrics as the scenarios' handlers
// published them (in own, the one namespace they wrote, which the template's environment
// chose), and AWS/Lambda's Errors and AWS/SQS's depth for the template's functions and
// queues.
type metricSources struct {
	published        map[string]bool
	own              string
	functions, queue map[string]bool
}

func (d *deployment) metrics(t *testing.T) metricSources {
	t.Helper()
	m := metricSources{published: published(t, &d.launchRun(t).metrics, &d.resultRun(t).metrics, &d.resultRunWith(t, refuseFindings).metrics),
		functions: map[string]bool{}, queue: map[string]bool{}}
	namespaces := map[string]bool{}
	for k := range m.published {
		namespaces[strings.Fields(k)[0]] = true
	}
	if len(namespaces) != 1 {
		t.Fatalf("the functions published into %d namespaces, want one: %v", len(namespaces), namespaces)
	}
	for ns := range namespaces {
		m.own = ns
	}
	for _, id := range d.Of("AWS::Lambda::Function") {
		name, _ := d.Ref(id)
		m.functions[name.(string)] = true
	}
	for _, id := range d.Of("AWS::SQS::Queue") {
		m.queue[id] = true
	}
	return m
}

// check: namespace/name with these dimension values is a metric someone publishes.
func (m metricSources) check(ns, name string, values map[string]string) error {
	dims := slices.Sorted(maps.Keys(values))
	switch ns {
	case m.own:
		if !m.published[metricKey(ns, name, dims)] {
			return fmt.Errorf("%s is published by nothing; published: %v", metricKey(ns, name, dims), m.published)
		}
	case "AWS/Lambda":
		if name != "Errors" || !slices.Equal(dims, []string{"FunctionName"}) || !m.functions[values["FunctionName"]] {
			return fmt.Errorf("%s %v is not a function's Errors", name, values)
		}
	case "AWS/SQS":
		if name != "ApproximateNumberOfMessagesVisible" || !slices.Equal(dims, []string{"QueueName"}) || !m.queue[values["QueueName"]] {
			return fmt.Errorf("%s %v is not a queue's depth", name, values)
		}
	default:
		return fmt.Errorf("namespace %s, which this test does not know", ns)
	}
	return nil
}
