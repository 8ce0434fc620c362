package docs

import (
	"fmt"
	"regexp"
	"slices"
	"strings"

	"github.com/storecrypt/storecrypt/internal/fakeaws/apimodel"
)

// awsGlobal are the aws CLI's global options, each with whether it takes a value, from
// "Command line options in the AWS CLI" (docs.aws.amazon.com/cli/latest/userguide/
// cli-configure-options.html); --cli-error-format from the synopsis each command's
// reference page now shows (e.g. docs.aws.amazon.com/cli/latest/reference/sso/login.html).
var awsGlobal = map[string]bool{
	"--ca-bundle": true, "--cli-auto-prompt": false, "--no-cli-auto-prompt": false,
	"--cli-binary-format": true, "--cli-connect-timeout": true, "--cli-read-timeout": true,
	"--cli-error-format": true, "--color": true, "--debug": false, "--endpoint-url": true,
	"--no-cli-pager": false, "--no-paginate": false, "--no-sign-request": false,
	"--no-verify-ssl": false, "--output": true, "--profile": true, "--query": true,
	"--region": true, "--version": false,
}

// awsInput are the options the aws CLI adds to every command that is an API operation,
// from "AWS CLI skeletons and input files" (docs.aws.amazon.com/cli/latest/userguide/
// cli-usage-skeleton.html).
var awsInput = map[string]bool{"--cli-input-json": true, "--cli-input-yaml": true, "--generate-cli-skeleton": true}

// awsPaging are the options a paginated operation adds, from "Using the pagination options
// in the AWS CLI" (docs.aws.amazon.com/cli/latest/userguide/pagination.html).
var awsPaging = map[string]bool{"--starting-token": true, "--page-size": true, "--max-items": true}

// awsCustom are the aws CLI's commands that are not one API operation, with their options
// from each command's page of the AWS CLI Command Reference
// (docs.aws.amazon.com/cli/latest/reference/<service>/<command>.html): botocore has no
// model of them.
var awsCustom = map[string][]string{
	// s3/cp.html
	"s3 cp": {"--dryrun", "--quiet", "--include", "--exclude", "--acl", "--follow-symlinks", "--no-follow-symlinks",
		"--no-guess-mime-type", "--sse", "--sse-c", "--sse-c-key", "--sse-kms-key-id", "--sse-c-copy-source",
		"--sse-c-copy-source-key", "--storage-class", "--grants", "--website-redirect", "--content-type",
		"--cache-control", "--content-disposition", "--content-encoding", "--content-language", "--expires",
		"--source-region", "--only-show-errors", "--no-progress", "--page-size", "--ignore-glacier-warnings",
		"--force-glacier-transfer", "--request-payer", "--checksum-mode", "--checksum-algorithm", "--metadata",
		"--copy-props", "--metadata-directive", "--expected-size", "--recursive"},
	// sso/login.html
	"sso login": {"--no-browser", "--use-device-code", "--redirect-port", "--sso-session"},
}

// awsServiceDirs are the aws CLI's service commands whose botocore directory has another
// name (docs.aws.amazon.com/cli/latest/reference/s3api/: the s3 API; s3 is the high-level
// commands of awsCustom).
var awsServiceDirs = map[string]string{"s3api": "s3"}

// checkAWS checks `aws <service> <operation> --param ...` against botocore's model of the
// service: the operation must be one of the model's, each option a member of its input
// (as the aws CLI spells them: CallAs is --call-as, a boolean also --no-...), a global
// option, or one the CLI adds to every operation. Values are not checked.
func checkAWS(args []string) error {
	var words, opts []string
	for i := 1; i < len(args); i++ {
		a := args[i]
		name, _, hasValue := strings.Cut(a, "=")
		switch {
		case len(words) < 2 && strings.HasPrefix(a, "--"):
			// Before the command only global options may stand; the value of one is not the
			// command's name.
			valued, ok := awsGlobal[name]
			if !ok {
				return fmt.Errorf("%s is not a global option of the aws CLI", name)
			}
			if valued && !hasValue {
				i++
			}
		case strings.HasPrefix(a, "--"):
			opts = append(opts, name)
		case len(words) < 2:
			words = append(words, a)
		}
	}
	if len(words) < 2 {
		return fmt.Errorf("want aws <service> <command>, got %d words", len(words))
	}
	command := strings.Join(words, " ")
	if custom, ok := awsCustom[command]; ok {
		for _, o := range opts {
			if _, global := awsGlobal[o]; !global && !slices.Contains(custom, o) {
				return fmt.Errorf("aws %s has no option %s (the aws CLI's reference)", command, o)
			}
		}
		return nil
	}
	m, err := awsService(words[0])
	if err != nil {
		return err
	}
	op, err := operation(m, words[1])
	if err != nil {
		return err
	}
	members, err := inputOptions(m, op)
	if err != nil {
		return err
	}
	paged, err := m.Paginated(op)
	if err != nil {
		return err
	}
	for _, o := range opts {
		_, global := awsGlobal[o]
		if allowed := global || awsInput[o] || paged && awsPaging[o] || members[o] != ""; !allowed {
			return fmt.Errorf("aws %s: %s is no member of %s's input in %s", command, o, op, m.File)
		}
	}
	return nil
}

// awsService is botocore's model of the service the aws CLI calls service.
func awsService(service string) (*apimodel.Model, error) {
	dir := service
	if d, ok := awsServiceDirs[dir]; ok {
		dir = d
	}
	m, err := apimodel.LoadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("aws %s: %w", service, err)
	}
	return m, nil
}

// operation is the model's operation the aws CLI names cli (create-stack-set is
// CreateStackSet).
func operation(m *apimodel.Model, cli string) (string, error) {
	for op := range m.Operations {
		if xformName(op) == cli {
			return op, nil
		}
	}
	return "", fmt.Errorf("%s has no operation the aws CLI calls %s", m.File, cli)
}

// inputOptions maps each option the aws CLI takes for op's input members to the member.
func inputOptions(m *apimodel.Model, op string) (map[string]string, error) {
	opts := map[string]string{}
	in := m.Operations[op].Input
	if in == nil {
		return opts, nil
	}
	s, ok := m.Shapes[in.Shape]
	if !ok {
		return nil, fmt.Errorf("%s: %s's input shape %s is not in the model", m.File, op, in.Shape)
	}
	for member, ref := range s.Members {
		opt := "--" + xformName(member)
		opts[opt] = member
		// The aws CLI gives a boolean a negative option too: --no-dry-run.
		if t, ok := m.Shapes[ref.Shape]; ok && t.Type == "boolean" {
			opts["--no-"+xformName(member)] = member
		}
	}
	return opts, nil
}

var (
	firstCap   = regexp.MustCompile(`(.)([A-Z][a-z]+)`)
	endCap     = regexp.MustCompile(`([a-z0-9])([A-Z])`)
	pluralAbbr = regexp.MustCompile(`[A-Z]{2,}s$`)
)

// xformName is botocore's xform_name(name, "-"), how the aws CLI names an operation and an
// input member: CreateStackSet is create-stack-set, TemplateURL template-url, and a plural
// abbreviation one word (RoleARNs is role-arns).
func xformName(name string) string {
	if strings.Contains(name, "-") {
		return name
	}
	if m := pluralAbbr.FindString(name); m != "" {
		name = name[:len(name)-len(m)] + "-" + strings.ToLower(m)
	}
	s := firstCap.ReplaceAllString(name, "${1}-${2}")
	return strings.ToLower(endCap.ReplaceAllString(s, "${1}-${2}"))
}
