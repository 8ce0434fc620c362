package launch

import (
	"cmp"
	"errors"
	"fmt"
	"regexp"
	"strings"
	"time"

	"github.com/storecrypt/storecrypt/internal/contract"
	"github.com/storecrypt/storecrypt/internal/fleet"
)

// Config is the launch function's configuration, from the environment the stack sets.
type Config struct {
	KeyARN          string
	DocumentName    string
	DocumentDigest  string                // document.Digest of the content the stack deployed
	fleet.Rule                            // the roles and the opt-in tag that put an instance in scope; opt-outs
	Agent           contract.AgentOptions // what the document's parameters say
	QueueURL        string                // the launch queue, for sweep mode
	EventBus        string
	StaleAfter      time.Duration
	AgentLogs       string // CloudWatch log group for the commands' output; "" leaves it off
	LedgerTable     string // the ledger's DynamoDB table; the stack always sets it ("" runs without one)
	MetricNamespace string // where the metrics go; contract.MetricNamespace unless the stack names another
	SecurityHub     bool   // file Security Hub findings
	// ComplianceItems writes each verdict as Systems Manager compliance.
	ComplianceItems bool
	// InstanceAccess, with an instance role path, is what the binding check also wants of
	// a role: the agent's download and the command's output (nil without a path).
	InstanceAccess *contract.InstanceAccess
	// LaunchRole is the function's own role, the retiring principal of its grants
	// (kms-datakey).
	LaunchRole string
}

var (
	keyARN    = regexp.MustCompile(`^arn:aws[a-z-]*:kms:[a-z0-9-]+:[0-9]{12}:key/[A-Za-z0-9-]+$`)
	roleARN   = regexp.MustCompile(`^arn:aws[a-z-]*:iam::[0-9]{12}:role/[\w+=,.@/-]+$`)
	policyARN = regexp.MustCompile(`^arn:aws[a-z-]*:iam::[0-9]{12}:policy/[\w+=,.@/-]+$`)
	docName   = regexp.MustCompile(`^[A-Za-z0-9_.-]{3,128}$`)
	digest    = regexp.MustCompile(`^[0-9a-f]{64}$`)
)

// LoadConfig reads and validates the configuration; every error names the variable.
func LoadConfig(getenv func(string) string) (Config, error) {
	var errs []error
	bad := func(name, value, why string) { errs = append(errs, fmt.Errorf("%s=%q: %s", name, value, why)) }
	c := Config{
		KeyARN:          getenv(contract.EnvKMSKeyARN),
		DocumentName:    getenv(contract.EnvDocumentName),
		QueueURL:        getenv(contract.EnvQueueURL),
		EventBus:        getenv(contract.EnvEventBus),
		DocumentDigest:  getenv(contract.EnvDocumentDigest),
		AgentLogs:       getenv(contract.EnvAgentLogs),
		LedgerTable:     getenv(contract.EnvLedgerTable),
		MetricNamespace: cmp.Or(getenv(contract.EnvMetricNamespace), contract.MetricNamespace),
		SecurityHub:     getenv(contract.EnvSecurityHub) == "true",
		ComplianceItems: getenv(contract.EnvComplianceItems) == "true",
		Agent:           contract.DefaultAgentOptions(),
		StaleAfter:      time.Hour,
	}
	if !keyARN.MatchString(c.KeyARN) {
		bad(contract.EnvKMSKeyARN, c.KeyARN, "want a KMS key ARN (arn:aws:kms:<region>:<account>:key/<id>)")
	}
	if !docName.MatchString(c.DocumentName) {
		bad(contract.EnvDocumentName, c.DocumentName, "want an SSM document name")
	}
	if !digest.MatchString(c.DocumentDigest) {
		bad(contract.EnvDocumentDigest, c.DocumentDigest, "want the document's SHA-256 digest (64 hex digits)")
	}
	for _, r := range strings.Split(getenv(contract.EnvInstanceRoles), ",") {
		if r = strings.TrimSpace(r); r == "" {
			continue
		}
		if !roleARN.MatchString(r) {
			bad(contract.EnvInstanceRoles, r, "want IAM role ARNs separated by commas")
		}
		c.Roles = append(c.Roles, r)
	}
	if optIn := getenv(contract.EnvOptInTag); optIn != "" {
		var ok bool
		if c.OptInKey, c.OptInValue, ok = strings.Cut(optIn, "="); !ok || c.OptInKey == "" || c.OptInValue == "" {
			bad(contract.EnvOptInTag, optIn, "want key=value")
		}
	}
	switch v := getenv(contract.EnvAllowOptOut); v {
	case "", "false":
	case "true":
		c.AllowOptOut = true
	default:
		bad(contract.EnvAllowOptOut, v, "want true or false")
	}
	if v := getenv(contract.EnvKeySource); v != "" {
		c.Agent.KeySource = v
	}
	c.Agent.KMSKeyID = c.KeyARN
	c.Agent.Secret = getenv(contract.EnvSecret)
	if err := c.Agent.SetStackChoices(getenv); err != nil {
		errs = append(errs, err)
	}
	if err := c.Agent.Validate(); err != nil {
		bad("agent options", "", err.Error())
	}
	if v := getenv(contract.EnvStaleAfter); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil || d < time.Minute {
			bad(contract.EnvStaleAfter, v, "want a duration of at least 1m")
		}
		c.StaleAfter = d
	}
	if p := getenv(contract.EnvInstanceAccessPolicy); p != "" {
		if !policyARN.MatchString(p) {
			bad(contract.EnvInstanceAccessPolicy, p, "want an IAM policy ARN")
		}
		a, err := contract.AgentAccess(p, strings.Split(getenv(contract.EnvAgentObjects), ","), c.AgentLogs, c.KeyARN)
		if err != nil {
			bad(contract.EnvAgentObjects, getenv(contract.EnvAgentObjects), err.Error()+" (with "+contract.EnvAgentLogs+")")
		}
		c.InstanceAccess = &a
	}
	if c.LaunchRole = getenv(contract.EnvLaunchRole); c.Agent.KeySource == contract.KeySourceKMSDataKey && !roleARN.MatchString(c.LaunchRole) {
		bad(contract.EnvLaunchRole, c.LaunchRole, "want the launch function's role ARN: it retires the grants it makes")
	}
	if c.EventBus == "" {
		c.EventBus = "default"
	}
	if len(errs) > 0 {
		return Config{}, fmt.Errorf("invalid configuration: %w", errors.Join(errs...))
	}
	return c, nil
}
