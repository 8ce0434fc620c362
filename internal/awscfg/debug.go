package awscfg

import (
	"fmt"
	"io"
	"regexp"

	"github.com/aws/smithy-go/logging"
)

// redactingLogger writes the SDK's log as the aws CLI's --debug does, minus what would
// let a reader of the log act as the caller or read a secret: the request signature, the
// session token, and the secret fields of JSON and XML bodies (KMS Encrypt's Plaintext
// is put-secret's passphrase; STS answers carry keys).
type redactingLogger struct{ w io.Writer }

var _ logging.Logger = redactingLogger{}

func (l redactingLogger) Logf(c logging.Classification, format string, v ...any) {
	fmt.Fprintf(l.w, "%s %s\n", c, redact(fmt.Sprintf(format, v...)))
}

// secretFields are the fields of AWS request and response bodies whose values are
// secrets, wherever they appear.
const secretFields = `Plaintext|SecretString|SecretBinary|SecretAccessKey|SessionToken|Passphrase|passphrase`

var redactions = []struct {
	re   *regexp.Regexp
	with string
}{
	// SigV4's Authorization keeps the access key id and scope, which say who signed.
	{regexp.MustCompile(`(Signature=)[0-9a-f]+`), "${1}REDACTED"},
	{regexp.MustCompile(`(?im)^(X-Amz-Security-Token:\s*).*$`), "${1}REDACTED"},
	{regexp.MustCompile(`("(?:` + secretFields + `)"\s*:\s*)"[^"]*"`), `${1}"REDACTED"`},
	{regexp.MustCompile(`(<(` + secretFields + `)>)[^<]*(</(?:` + secretFields + `)>)`), "${1}REDACTED${3}"},
}

// redact removes the secrets from one SDK log message.
func redact(msg string) string {
	for _, r := range redactions {
		msg = r.re.ReplaceAllString(msg, r.with)
	}
	return msg
}
