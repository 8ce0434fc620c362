package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/storecrypt/storecrypt/internal/opcli"
)

// TestMissingConfiguration: with no region, or no credentials, `storecrypt status` says
// in one line what to do, and prints nothing from the SDK.
func TestMissingConfiguration(t *testing.T) {
	for _, tc := range []struct {
		name, region, want string
	}{
		{"no region", "", "no AWS region: pass --region"},
		{"no credentials", "us-east-1", "no AWS credentials: run `aws configure`"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			home := t.TempDir()
			for _, k := range []string{"AWS_REGION", "AWS_DEFAULT_REGION", "AWS_PROFILE", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN",
				"AWS_WEB_IDENTITY_TOKEN_FILE", "AWS_CONTAINER_CREDENTIALS_FULL_URI", "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI"} {
				t.Setenv(k, "")
				os.Unsetenv(k)
			}
			t.Setenv("HOME", home)
			t.Setenv("AWS_CONFIG_FILE", filepath.Join(home, "config"))
			t.Setenv("AWS_SHARED_CREDENTIALS_FILE", filepath.Join(home, "credentials"))
			// Off EC2 the chain's last try, the instance role, must not wait on IMDS.
			t.Setenv("AWS_EC2_METADATA_DISABLED", "true")
			if tc.region != "" {
				t.Setenv("AWS_REGION", tc.region)
			}
			var stdout, stderr bytes.Buffer
			code := opcli.Main(context.Background(), []string{"status"}, strings.NewReader(""), &stdout, &stderr, clients)
			lines := strings.Split(strings.TrimSpace(stderr.String()), "\n")
			if code != 1 || len(lines) != 1 || !strings.Contains(lines[0], tc.want) || stdout.Len() != 0 {
				t.Errorf("exit %d, stderr %q, stdout %q: want exit 1 and one line with %q", code, stderr.String(), stdout.String(), tc.want)
			}
		})
	}
}
