// Package awsenv builds the agent's AWS configuration on an instance: the instance
// profile's credentials from IMDSv2 and nothing else, the region from IMDSv2 unless
// AWS_REGION names one, endpoints overridable through the SDKs' standard
// AWS_ENDPOINT_URL_<SERVICE> variables (S3's read by package s3object's client here), and
// timeouts short enough that an unreachable endpoint fails a run in seconds, not minutes
// (the boot unit retries).
//
// Why the credentials are pinned: with Default Host Management Configuration on and an
// instance profile that SSM refuses, the SSM Agent runs under the DHMC role, writes that
// role's credentials to its own file and points AWS_SHARED_CREDENTIALS_FILE at it for
// aws:runShellScript (amazon-ssm-agent: ec2_role_provider.go, runscript.go). The SDK's
// default chain reads that file (and AWS_ACCESS_KEY_ID, AWS_PROFILE, credential_process,
// …) before IMDS, so the agent would call KMS and S3 as a role the key policy does not
// bind, while the binding check judged the instance role. Neither shared file is read:
// a profile can name credentials (role_arn, credential_process, sso_*) as well as
// settings. Environment settings that do not choose who signs stay honoured, for a
// regulated user sets them: AWS_CA_BUNDLE and HTTPS_PROXY (TLS inspection, egress
// proxies), AWS_USE_FIPS_ENDPOINT and AWS_USE_DUALSTACK_ENDPOINT (FIPS 140 endpoints,
// IPv6-only subnets), AWS_ENDPOINT_URL_<SERVICE> (VPC endpoints), AWS_REGION.
package awsenv

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/credentials/ec2rolecreds"
	"github.com/aws/aws-sdk-go-v2/feature/ec2/imds"
	"github.com/aws/aws-sdk-go-v2/service/kms"

	"github.com/storecrypt/storecrypt/instance-agent/keysource"
	"github.com/storecrypt/storecrypt/instance-agent/s3object"
	"github.com/storecrypt/storecrypt/internal/contract"
)

// Env loads the configuration once, on first use.
type Env struct {
	once sync.Once
	cfg  aws.Config
	// imds is the one IMDS client every read goes through: it keeps its IMDSv2 session
	// token, so a run asks for one (a client per read asked for three, each a round trip).
	imds *imds.Client
	err  error
}

func (e *Env) load(ctx context.Context) (aws.Config, error) {
	e.once.Do(func() {
		// The SDK's buildable client keeps AWS_CA_BUNDLE and proxy support working.
		httpClient := awshttp.NewBuildableClient().
			WithTimeout(20 * time.Second).
			WithDialerOptions(func(d *net.Dialer) { d.Timeout = 5 * time.Second }).
			WithTransportOptions(func(t *http.Transport) { t.TLSHandshakeTimeout = 5 * time.Second })
		cfg, err := config.LoadDefaultConfig(ctx, config.WithHTTPClient(httpClient), config.WithRetryMaxAttempts(3),
			config.WithSharedConfigFiles([]string{}), config.WithSharedCredentialsFiles([]string{}),
			// Replaced below by the instance profile's; naming a provider here keeps the SDK
			// from resolving its default chain (environment, files, containers) at all.
			config.WithCredentialsProvider(aws.AnonymousCredentials{}))
		if err != nil {
			e.err = fmt.Errorf("loading the AWS configuration: %w", err)
			return
		}
		client := imds.NewFromConfig(cfg)
		e.imds = client
		cfg.Credentials = aws.NewCredentialsCache(ec2rolecreds.New(func(o *ec2rolecreds.Options) { o.Client = client }))
		if cfg.Region == "" {
			out, err := client.GetRegion(ctx, &imds.GetRegionInput{})
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
	s3c := &s3object.Client{HTTP: cfg.HTTPClient, Credentials: cfg.Credentials, Region: cfg.Region,
		Endpoint: endpoint(os.Getenv, "S3"),
		Domain: func(ctx context.Context) (string, error) {
			return metadata(ctx, e.imds, "services/domain")
		}}
	owner := func(ctx context.Context) (string, error) {
		doc, err := identity(ctx, e.imds)
		return doc.AccountID, err
	}
	return keysource.Sources{KMS: kms.NewFromConfig(cfg), S3: s3c, Owner: owner}, nil
}

// identity reads the instance identity document, refusing one without the account.
func identity(ctx context.Context, client *imds.Client) (imds.InstanceIdentityDocument, error) {
	out, err := client.GetInstanceIdentityDocument(ctx, &imds.GetInstanceIdentityDocumentInput{})
	if err != nil {
		return imds.InstanceIdentityDocument{}, fmt.Errorf("reading the instance identity document from IMDS: %w", err)
	}
	if out.AccountID == "" {
		return imds.InstanceIdentityDocument{}, fmt.Errorf("IMDS gave an identity document without the account")
	}
	return out.InstanceIdentityDocument, nil
}

// endpoint is a service's endpoint as the SDKs' "service-specific endpoints" setting
// gives it in the environment: AWS_ENDPOINT_URL_<SERVICE>, else AWS_ENDPOINT_URL, neither
// when AWS_IGNORE_CONFIGURED_ENDPOINT_URLS is true; "" for the service's own.
func endpoint(getenv func(string) string, service string) string {
	if strings.EqualFold(getenv("AWS_IGNORE_CONFIGURED_ENDPOINT_URLS"), "true") {
		return ""
	}
	if u := getenv("AWS_ENDPOINT_URL_" + service); u != "" {
		return u
	}
	return getenv("AWS_ENDPOINT_URL")
}

// metadata reads one short IMDS value.
func metadata(ctx context.Context, client *imds.Client, path string) (string, error) {
	out, err := client.GetMetadata(ctx, &imds.GetMetadataInput{Path: path})
	if err != nil {
		return "", fmt.Errorf("reading %s from IMDS: %w", path, err)
	}
	defer out.Content.Close()
	b, err := io.ReadAll(io.LimitReader(out.Content, 256))
	if err != nil {
		return "", fmt.Errorf("reading %s from IMDS: %w", path, err)
	}
	return strings.TrimSpace(string(b)), nil
}

// Instance reads the instance's id and ARN from IMDSv2: the id, account and region from
// the instance identity document, the partition from services/partition. The ARN is the
// one KMS sees as ec2:SourceInstanceARN on requests signed with this instance's role.
func (e *Env) Instance(ctx context.Context) (id, arn string, err error) {
	if _, err := e.load(ctx); err != nil {
		return "", "", err
	}
	client := e.imds
	doc, err := identity(ctx, client)
	if err != nil {
		return "", "", err
	}
	partition, err := metadata(ctx, client, "services/partition")
	if err != nil {
		return "", "", err
	}
	if doc.InstanceID == "" || doc.AccountID == "" || doc.Region == "" || partition == "" {
		return "", "", fmt.Errorf("IMDS gave an incomplete identity: instance %q, account %q, region %q, partition %q", doc.InstanceID, doc.AccountID, doc.Region, partition)
	}
	return doc.InstanceID, contract.InstanceARN(partition, doc.Region, doc.AccountID, doc.InstanceID), nil
}
