// Package awsenv builds the agent's AWS configuration on an instance: credentials and
// region from IMDSv2, endpoints overridable through the SDK's standard
// AWS_ENDPOINT_URL_<SERVICE> variables, and timeouts short enough that an unreachable
// endpoint fails a run in seconds, not minutes (the boot unit retries).
package awsenv

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/feature/ec2/imds"
	"github.com/aws/aws-sdk-go-v2/service/kms"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/storecrypt/storecrypt/instance-agent/keysource"
	"github.com/storecrypt/storecrypt/internal/contract"
)

// Env loads the configuration once, on first use.
type Env struct {
	once sync.Once
	cfg  aws.Config
	err  error
}

func (e *Env) load(ctx context.Context) (aws.Config, error) {
	e.once.Do(func() {
		// The SDK's buildable client keeps AWS_CA_BUNDLE and proxy support working.
		httpClient := awshttp.NewBuildableClient().
			WithTimeout(20 * time.Second).
			WithDialerOptions(func(d *net.Dialer) { d.Timeout = 5 * time.Second }).
			WithTransportOptions(func(t *http.Transport) { t.TLSHandshakeTimeout = 5 * time.Second })
		cfg, err := config.LoadDefaultConfig(ctx, config.WithHTTPClient(httpClient), config.WithRetryMaxAttempts(3))
		if err != nil {
			e.err = fmt.Errorf("loading the AWS configuration: %w", err)
			return
		}
		if cfg.Region == "" {
			out, err := imds.NewFromConfig(cfg).GetRegion(ctx, &imds.GetRegionInput{})
			if err != nil {
				e.err = fmt.Errorf("reading the region from IMDS: %w", err)
				return
			}
			cfg.Region = out.Region
		}
		e.cfg = cfg
	})
	return e.cfg, e.err
}

// Keys returns the key sources backed by KMS and S3.
func (e *Env) Keys(ctx context.Context) (keysource.Sources, error) {
	cfg, err := e.load(ctx)
	if err != nil {
		return keysource.Sources{}, err
	}
	return keysource.Sources{KMS: kms.NewFromConfig(cfg), S3: s3.NewFromConfig(cfg)}, nil
}

// Instance reads the instance's id and ARN from IMDSv2: the id, account and region from
// the instance identity document, the partition from services/partition. The ARN is the
// one KMS sees as ec2:SourceInstanceARN on requests signed with this instance's role.
func (e *Env) Instance(ctx context.Context) (id, arn string, err error) {
	cfg, err := e.load(ctx)
	if err != nil {
		return "", "", err
	}
	client := imds.NewFromConfig(cfg)
	doc, err := client.GetInstanceIdentityDocument(ctx, &imds.GetInstanceIdentityDocumentInput{})
	if err != nil {
		return "", "", fmt.Errorf("reading the instance identity document from IMDS: %w", err)
	}
	out, err := client.GetMetadata(ctx, &imds.GetMetadataInput{Path: "services/partition"})
	if err != nil {
		return "", "", fmt.Errorf("reading the partition from IMDS: %w", err)
	}
	defer out.Content.Close()
	b, err := io.ReadAll(io.LimitReader(out.Content, 64))
	if err != nil {
		return "", "", fmt.Errorf("reading the partition from IMDS: %w", err)
	}
	partition := strings.TrimSpace(string(b))
	if doc.InstanceID == "" || doc.AccountID == "" || doc.Region == "" || partition == "" {
		return "", "", fmt.Errorf("IMDS gave an incomplete identity: instance %q, account %q, region %q, partition %q", doc.InstanceID, doc.AccountID, doc.Region, partition)
	}
	return doc.InstanceID, contract.InstanceARN(partition, doc.Region, doc.AccountID, doc.InstanceID), nil
}
