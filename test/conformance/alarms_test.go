package conformance

import (
	"bufio"
	"bytes"
	"encoding/json"
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
			got := published(t, &d.launchRun(t).metrics, &d.resultRun(t).metrics)
			for _, m := range []string{contract.MetricBlocked, contract.MetricFailed, contract.MetricEncrypted, contract.MetricDocumentDrift} {
				if !got[metricKey(contract.MetricNamespace, m, nil)] {
					t.Errorf("the scenarios did not publish %s without dimensions; published %v", m, got)
				}
			}
			functions, queues := map[string]bool{}, map[string]bool{}
			for _, id := range d.Of("AWS::Lambda::Function") {
				name, _ := d.Ref(id)
				functions[name.(string)] = true
			}
			for _, id := range d.Of("AWS::SQS::Queue") {
				queues[id] = true
			}
			alarms := d.Of("AWS::CloudWatch::Alarm")
			if len(alarms) < 7 {
				t.Fatalf("%d alarms", len(alarms))
			}
			for _, id := range alarms {
				props, err := d.Eval(d.Resources[id].Properties)
				if err != nil {
					t.Fatal(err)
				}
				p := props.(map[string]any)
				ns, name := p["Namespace"].(string), p["MetricName"].(string)
				var dims []string
				values := map[string]string{}
				if list, ok := p["Dimensions"].([]any); ok {
					for _, x := range list {
						dim := x.(map[string]any)
						dims = append(dims, dim["Name"].(string))
						values[dim["Name"].(string)] = dim["Value"].(string)
					}
				}
				switch ns {
				case contract.MetricNamespace:
					if !got[metricKey(ns, name, dims)] {
						t.Errorf("alarm %s watches %s, which nothing publishes; published: %v", id, metricKey(ns, name, dims), got)
					}
				case "AWS/Lambda":
					if name != "Errors" || !slices.Equal(dims, []string{"FunctionName"}) || !functions[values["FunctionName"]] {
						t.Errorf("alarm %s watches %s %v, not a function's Errors", id, name, values)
					}
				case "AWS/SQS":
					if name != "ApproximateNumberOfMessagesVisible" || !slices.Equal(dims, []string{"QueueName"}) || !queues[values["QueueName"]] {
						t.Errorf("alarm %s watches %s %v, not a queue's depth", id, name, values)
					}
				default:
					t.Errorf("alarm %s watches namespace %s, which this test does not know", id, ns)
				}
			}
		})
	}
}
