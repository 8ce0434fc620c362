package awsenv

import (
	"context"
	"testing"

	"github.com/storecrypt/storecrypt/test/emu"
)

// TestIdentityFromIMDS reads region and instance id from amazon-ec2-metadata-mock in
// IMDSv2-only mode, through the SDK's standard endpoint variable.
func TestIdentityFromIMDS(t *testing.T) {
	e := emu.Start(t)
	t.Setenv("AWS_EC2_METADATA_SERVICE_ENDPOINT", "http://"+e.IMDSAddr)
	t.Setenv("AWS_REGION", "")
	t.Setenv("AWS_DEFAULT_REGION", "")
	t.Setenv("AWS_CONFIG_FILE", "/dev/null")
	t.Setenv("AWS_SHARED_CREDENTIALS_FILE", "/dev/null")
	env := &Env{}
	id, err := env.InstanceID(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if id != emu.InstanceID {
		t.Errorf("instance id %q, want %q", id, emu.InstanceID)
	}
	cfg, err := env.load(context.Background())
	if err != nil || cfg.Region != emu.Region {
		t.Errorf("region %q, %v; want %q", cfg.Region, err, emu.Region)
	}
}
