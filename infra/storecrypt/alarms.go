package storecrypt

import (
	"github.com/aws/aws-cdk-go/awscdk/v2"
	"github.com/aws/aws-cdk-go/awscdk/v2/awscloudwatch"
	"github.com/aws/aws-cdk-go/awscdk/v2/awscloudwatchactions"
	"github.com/aws/aws-cdk-go/awscdk/v2/awssns"
	"github.com/aws/aws-cdk-go/awscdk/v2/awssnssubscriptions"
	"github.com/aws/jsii-runtime-go"
	"github.com/cdklabs/cdk-nag-go/cdknag/v2"

	"github.com/storecrypt/storecrypt/internal/contract"
)

// alarmSet is every alarm the construct made and where they notify.
type alarmSet struct {
	all    []awscloudwatch.Alarm
	topic  awssns.Topic        // nil without StoreCryptProps.AlarmEmail
	optOut awscloudwatch.Alarm // nil without StoreCryptProps.AllowOptOut
}

func (s *builder) alarm(id, what string, metric awscloudwatch.IMetric, periods float64) awscloudwatch.Alarm {
	return awscloudwatch.NewAlarm(s.c, jsii.String(id), &awscloudwatch.AlarmProps{
		AlarmDescription: jsii.String("storecrypt: " + what), Metric: metric, Threshold: jsii.Number(0),
		ComparisonOperator: awscloudwatch.ComparisonOperator_GREATER_THAN_THRESHOLD, EvaluationPeriods: jsii.Number(periods),
		TreatMissingData: awscloudwatch.TreatMissingData_NOT_BREACHING,
	})
}

// dashboard shows the fleet's flow on one page: instances sent the document, encrypted,
// blocked and failed; time from launch to encrypted; what waits in the dead-letter
// queues; the functions' errors. Every storecrypt metric is one the functions publish
// without dimensions (package emf publishes each that way too).
func (s *builder) dashboard(f functionSet) {
	five := awscdk.Duration_Minutes(jsii.Number(5))
	own := func(name, stat, label string) awscloudwatch.IMetric {
		return awscloudwatch.NewMetric(&awscloudwatch.MetricProps{Namespace: jsii.String(s.props.MetricNamespace), MetricName: jsii.String(name),
			Statistic: jsii.String(stat), Period: five, Label: jsii.String(label)})
	}
	graph := func(title string, left ...awscloudwatch.IMetric) awscloudwatch.IWidget {
		return awscloudwatch.NewGraphWidget(&awscloudwatch.GraphWidgetProps{Title: jsii.String(title), Left: &left, Width: jsii.Number(12), Height: jsii.Number(6)})
	}
	maxDepth := &awscloudwatch.MetricOptions{Period: five, Statistic: jsii.String("Maximum")}
	awscloudwatch.NewDashboard(s.c, jsii.String("Dashboard"), &awscloudwatch.DashboardProps{
		Widgets: &[]*[]awscloudwatch.IWidget{
			{
				graph("Instances", own(contract.MetricCommandsSent, "Sum", "sent the document"), own(contract.MetricEncrypted, "Sum", "encrypted"),
					own(contract.MetricBlocked, "Sum", "blocked"), own(contract.MetricFailed, "Sum", "failed or unverified")),
				graph("Launch to encrypted (seconds)", own(contract.MetricSecondsToEncrypted, "p50", "p50"),
					own(contract.MetricSecondsToEncrypted, "p95", "p95"), own(contract.MetricSecondsToEncrypted, "Maximum", "max")),
			},
			{
				graph("Dead-letter queues", f.dlq.MetricApproximateNumberOfMessagesVisible(maxDepth), f.resultDLQ.MetricApproximateNumberOfMessagesVisible(maxDepth)),
				graph("Function errors", f.launch.MetricErrors(&awscloudwatch.MetricOptions{Period: five}), f.result.MetricErrors(&awscloudwatch.MetricOptions{Period: five})),
			},
		},
	})
}

func (s *builder) alarmsAndTopic(f functionSet) alarmSet {
	five := awscdk.Duration_Minutes(jsii.Number(5))
	var a alarmSet
	a.all = []awscloudwatch.Alarm{
		s.alarm("DLQNotEmpty", "launch events gave up (SSM agent never came online, or a fault): see the DLQ",
			f.dlq.MetricApproximateNumberOfMessagesVisible(&awscloudwatch.MetricOptions{Period: five, Statistic: jsii.String("Maximum")}), 1),
		s.alarm("ResultDLQNotEmpty", "results the result function could not record: see its DLQ",
			f.resultDLQ.MetricApproximateNumberOfMessagesVisible(&awscloudwatch.MetricOptions{Period: five, Statistic: jsii.String("Maximum")}), 1),
		s.alarm("LaunchErrors", "the launch function failed", f.launch.MetricErrors(&awscloudwatch.MetricOptions{Period: five}), 1),
		s.alarm("ResultErrors", "the result function failed", f.result.MetricErrors(&awscloudwatch.MetricOptions{Period: five}), 1),
	}
	// The functions publish these with no dimensions as well as per reason (package emf),
	// so an alarm without dimensions sees every instance.
	// Drift must last three periods: a deploy that changes the document updates it
	// minutes before the functions that trust the new content.
	type watched struct {
		name, what string
		periods    float64
	}
	metrics := []watched{
		{contract.MetricBlocked, "instances blocked: see the storecrypt:reason tag", 1},
		{contract.MetricFailed, "instances failed or unverified: see the storecrypt:reason tag", 1},
		{contract.MetricDocumentDrift, "the document's default version is not the content the stack deployed", 3},
	}
	if s.props.SecurityHub {
		metrics = append(metrics, watched{contract.MetricFindingsNotImported, "findings Security Hub did not import: its evidence is incomplete (see the functions' logs)", 1})
	}
	if s.props.AllowOptOut {
		metrics = append(metrics, watched{contract.MetricOptedOut, "instances in scope left unencrypted by storecrypt:encrypt=false", 1})
	}
	for _, m := range metrics {
		alarm := s.alarm("Alarm"+m.name, m.what, awscloudwatch.NewMetric(&awscloudwatch.MetricProps{
			Namespace: jsii.String(s.props.MetricNamespace), MetricName: jsii.String(m.name), Statistic: jsii.String("Sum"), Period: five,
		}), m.periods)
		a.all = append(a.all, alarm)
		if m.name == contract.MetricOptedOut {
			a.optOut = alarm
		}
	}
	if s.props.AlarmTopic != nil {
		for _, alarm := range a.all {
			alarm.AddAlarmAction(awscloudwatchactions.NewSnsAction(s.props.AlarmTopic))
		}
	}
	if s.props.AlarmEmail == "" {
		return a
	}
	topic := awssns.NewTopic(s.c, jsii.String("Alarms"), &awssns.TopicProps{EnforceSSL: jsii.Bool(true)})
	a.topic = topic
	cdknag.NagSuppressions_AddResourceSuppressions(topic, &[]*cdknag.NagPackSuppression{{
		Id: jsii.String("AwsSolutions-SNS2"), Reason: jsii.String("Alarm notices carry alarm names and states, no cardholder or key data; CloudWatch cannot publish to a topic under the AWS-managed SNS key."),
	}}, jsii.Bool(true))
	topic.AddSubscription(awssnssubscriptions.NewEmailSubscription(jsii.String(s.props.AlarmEmail), nil))
	for _, alarm := range a.all {
		alarm.AddAlarmAction(awscloudwatchactions.NewSnsAction(topic))
	}
	return a
}
