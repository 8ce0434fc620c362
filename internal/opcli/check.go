package opcli

import (
	"fmt"
	"regexp"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws/arn"
)

// checkFunc checks a command's flags, as given, before any AWS call (so a typo is exit 2
// whether or not there are credentials, and never reaches the network), and returns
// what runs the command.
type checkFunc func(e *env) (runFunc, error)

// checked is the check of a command whose flags need none.
func checked(run runFunc) checkFunc {
	return func(*env) (runFunc, error) { return run, nil }
}

// instanceIDPattern is EC2's instance id: i- and 8 hex digits (before 2016) or 17.
var instanceIDPattern = regexp.MustCompile(`^i-([0-9a-f]{8}|[0-9a-f]{17})$`)

// checkInstances refuses what cannot be an instance id.
func checkInstances(flag string, ids ...string) error {
	for _, id := range ids {
		if !instanceIDPattern.MatchString(id) {
			return usageErr(fmt.Sprintf("%s %q: want an instance id, i- and 8 or 17 hex digits", flag, id))
		}
	}
	return nil
}

// checkARN refuses a value that is not an ARN of service whose resource starts with one
// of kinds (role/, key/). An empty value is a flag not given.
func checkARN(flag, value, service string, kinds ...string) error {
	if value == "" {
		return nil
	}
	a, err := arn.Parse(value)
	if err == nil && a.Service == service {
		for _, k := range kinds {
			if strings.HasPrefix(a.Resource, k) && len(a.Resource) > len(k) {
				return nil
			}
		}
	}
	return usageErr(fmt.Sprintf("%s %q: want an ARN arn:PARTITION:%s:...:%s...", flag, value, service, strings.Join(kinds, "... or ")))
}
