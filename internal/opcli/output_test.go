package opcli_test

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/storecrypt/storecrypt/internal/awscfg"
	"github.com/storecrypt/storecrypt/internal/opcli"
)

// TestMain keeps the tests from the developer's own AWS_DEFAULT_OUTPUT, AWS_PROFILE and
// ~/.aws/config, which choose the output format.
func TestMain(m *testing.M) {
	for _, k := range []string{"AWS_DEFAULT_OUTPUT", "AWS_PROFILE", "AWS_DEFAULT_PROFILE"} {
		os.Unsetenv(k)
	}
	os.Setenv("AWS_CONFIG_FILE", filepath.Join(os.TempDir(), "storecrypt-opcli-test-no-such-config"))
	os.Exit(m.Run())
}

// TestOutputDefault: without --output, the format is AWS_DEFAULT_OUTPUT's, else the
// profile's output in the config file, else table, as the aws CLI chooses; a format the
// aws CLI knows and storecrypt does not is a usage error naming where it came from.
func TestOutputDefault(t *testing.T) {
	config := filepath.Join(t.TempDir(), "config")
	if err := os.WriteFile(config, []byte(`[default]
region = eu-west-1
output = json

[profile ops]
s3 =
  output = yaml
output = text

[profile  yamls]
output=yaml-stream

[profile bare]
region = eu-west-1
`), 0o600); err != nil {
		t.Fatal(err)
	}
	const table, json, text = "storecrypt ", "{\n", "\t"
	for _, tc := range []struct {
		name           string
		env            map[string]string
		args           []string
		code           int
		stdout, stderr string // what each starts with, contains
	}{
		{"the default profile's", nil, nil, 0, json, ""},
		{"--profile's", nil, []string{"--profile", "ops"}, 0, "", text},
		{"AWS_PROFILE's", map[string]string{"AWS_PROFILE": "ops"}, nil, 0, "", text},
		{"--profile over AWS_PROFILE", map[string]string{"AWS_PROFILE": "ops"}, []string{"--profile", "bare"}, 0, table, ""},
		{"AWS_DEFAULT_OUTPUT over the profile", map[string]string{"AWS_DEFAULT_OUTPUT": "json"}, []string{"--profile", "ops"}, 0, json, ""},
		{"--output over AWS_DEFAULT_OUTPUT", map[string]string{"AWS_DEFAULT_OUTPUT": "json"}, []string{"--output", "table"}, 0, table, ""},
		{"no output in the profile", nil, []string{"--profile", "bare"}, 0, table, ""},
		{"a profile not in the file", nil, []string{"--profile", "nope"}, 0, table, ""},
		{"no config file", map[string]string{"AWS_CONFIG_FILE": filepath.Join(t.TempDir(), "none")}, nil, 0, table, ""},
		{"yaml from AWS_DEFAULT_OUTPUT", map[string]string{"AWS_DEFAULT_OUTPUT": "yaml"}, nil, 2, "",
			`storecrypt version: --output "yaml" (from AWS_DEFAULT_OUTPUT; give --output to override it): want one of table, json, text`},
		{"yaml-stream from the profile", nil, []string{"--profile", "yamls"}, 2, "",
			`--output "yaml-stream" (from output in profile yamls of ` + config + `; give --output to override it)`},
		{"--output over a yaml profile", nil, []string{"--profile", "yamls", "--output", "json"}, 0, json, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Setenv("AWS_CONFIG_FILE", config)
			for k, v := range tc.env {
				t.Setenv(k, v)
			}
			var out, errOut bytes.Buffer
			code := opcli.Main(context.Background(), append([]string{"version"}, tc.args...), strings.NewReader(""), &out, &errOut,
				func(context.Context, awscfg.Options) (opcli.Clients, error) {
					return opcli.Clients{}, errors.New("no AWS")
				})
			if code != tc.code || !strings.HasPrefix(out.String(), tc.stdout) || !strings.Contains(out.String()+errOut.String(), tc.stderr) {
				t.Errorf("got exit %d, stdout %q, stderr %q; want exit %d, stdout starting %q, saying %q", code, out.String(), errOut.String(), tc.code, tc.stdout, tc.stderr)
			}
		})
	}
}
