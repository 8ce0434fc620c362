package awsenv

import (
	"context"
	"testing"

	"github.com/storecrypt/storecrypt/test/emu"
)

// TestIdentityFromIMDS reads region, instance id and ARN from amazon-ec2-metadata-mock in
// IMDSv2-only mode, through the SDK's standard endpoint variable.
func TestIdentityFromIMDS(t *testing.T) {
	e := emu.Start(t)
	t.Setenv("AWS_EC2_METADATA_SERVICE_ENDPOINT", "http://"+e.IMDSAddr)
	t.Setenv("AWS_REGION", "")
	t.Setenv("AWS_DEFAULT_REGION", "")
	t.Setenv("AWS_CONFIG_FILE", "/dev/null")
	t.Setenv("AWS_SHARED_CREDENTIALS_FILE", "/dev/null")
	env := &Env{}
	id, arn, err := env.Instance(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if id != emu.InstanceID || arn != emu.InstanceARN {
		t.Errorf("instance %q %q, want %q %q", id, arn, emu.InstanceID, emu.InstanceARN)
	}
	cfg, err := env.load(context.Background())
	if err != nil || cfg.Region != emu.Region {
		t.Errorf("region %q, %v; want %q", cfg.Region, err, emu.Region)
	}
}
