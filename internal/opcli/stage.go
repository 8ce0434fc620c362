package opcli

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"regexp"
	"text/tabwriter"

	"github.com/aws/aws-sdk-go-v2/aws"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/aws-sdk-go-v2/service/organizations"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	s3types "github.com/aws/aws-sdk-go-v2/service/s3/types"
	"github.com/aws/aws-sdk-go-v2/service/sts"
	"github.com/aws/smithy-go"
	"github.com/spf13/pflag"

	"github.com/storecrypt/storecrypt/internal/release"
)

// The published template's rules for what stage writes (infra/publish's parameters).
var (
	bucketPrefixPattern = regexp.MustCompile(`^[a-z0-9][a-z0-9.-]{1,40}$`)
	codePrefixPattern   = regexp.MustCompile(`^([A-Za-z0-9!_.*'()/-]{0,199}/)?$`)
	regionPattern       = regexp.MustCompile(`^[a-z]{2}(-[a-z]+)+-[0-9]+$`)
	orgIDPattern        = regexp.MustCompile(`^o-[a-z0-9]{10,32}$`)
)

// shaMetadata is the object metadata that holds an object's SHA-256 in hex: S3 returns
// it on HeadObject, so a rerun skips what is already there.
const shaMetadata = "sha256"

func runStage(fs *pflag.FlagSet) checkFunc {
	path := fs.String("release", "", "the release: storecrypt-<version>.tar.gz, or the directory it extracts to (checked against its SHA256SUMS first)")
	bucketPrefix := fs.String("bucket-prefix", "", "the buckets are <this>-<region>: the template's CodeBucketPrefix")
	prefix := fs.String("prefix", "storecrypt/", "key prefix of the code in each bucket: the template's CodePrefix (empty, or ending in /)")
	regions := fs.StringSlice("regions", nil, "the regions the StackSet deploys to, comma-separated")
	org := fs.String("organization-id", "", "the organization whose accounts may read the code (default: the caller's, from organizations:DescribeOrganization)")
	dryRun := fs.Bool("dry-run", false, "say what would be created and uploaded; write nothing")
	return func(e *env) (runFunc, error) {
		switch {
		case *path == "":
			return nil, usageErr("give --release: the tarball make release wrote, or its directory")
		case !bucketPrefixPattern.MatchString(*bucketPrefix):
			return nil, usageErr(fmt.Sprintf("--bucket-prefix %q: want the template's CodeBucketPrefix, %s", *bucketPrefix, bucketPrefixPattern))
		case !codePrefixPattern.MatchString(*prefix):
			return nil, usageErr(fmt.Sprintf("--prefix %q: want the template's CodePrefix, empty or ending in /", *prefix))
		case len(*regions) == 0:
			return nil, usageErr("give --regions: every region the StackSet deploys to")
		case *org != "" && !orgIDPattern.MatchString(*org):
			return nil, usageErr(fmt.Sprintf("--organization-id %q: want o- and 10 to 32 letters or digits", *org))
		}
		for _, r := range *regions {
			if !regionPattern.MatchString(r) {
				return nil, usageErr(fmt.Sprintf("--regions: %q is not a region name", r))
			}
		}
		// The release is checked before any AWS call: a changed file is never staged.
		rel, err := release.Open(*path)
		if err != nil {
			return nil, err
		}
		if len(rel.Code()) == 0 {
			return nil, fmt.Errorf("the release %s holds no %s: not a storecrypt release", *path, release.CodeDir)
		}
		s := stager{release: rel, bucketPrefix: *bucketPrefix, prefix: *prefix, org: *org, dryRun: *dryRun}
		return func(ctx context.Context, e *env) error { return s.run(ctx, e, *regions) }, nil
	}
}

// stager stages one release.
type stager struct {
	release              release.Release
	bucketPrefix, prefix string
	org, account         string
	dryRun               bool
}

// regionResult is what staging did in one region.
type regionResult struct {
	Region    string   `json:"region"`
	Bucket    string   `json:"bucket"`
	Created   bool     `json:"created"`
	Uploaded  []string `json:"uploaded"`
	Unchanged []string `json:"unchanged"`
	Error     string   `json:"error,omitempty"`
}

func (s *stager) run(ctx context.Context, e *env, regions []string) error {
	id, err := e.STS.GetCallerIdentity(ctx, &sts.GetCallerIdentityInput{})
	if err != nil {
		return fmt.Errorf("sts:GetCallerIdentity (the buckets' owner): %w", err)
	}
	s.account = aws.ToString(id.Account)
	if s.org == "" {
		out, err := e.Organizations.DescribeOrganization(ctx, &organizations.DescribeOrganizationInput{})
		if err != nil {
			return fmt.Errorf("organizations:DescribeOrganization (give --organization-id to skip it): %w", err)
		}
		s.org = aws.ToString(out.Organization.Id)
	}
	var results []regionResult
	failed := 0
	for _, region := range regions {
		r := regionResult{Region: region, Bucket: release.Bucket(s.bucketPrefix, region), Uploaded: []string{}, Unchanged: []string{}}
		if err := s.stageRegion(ctx, e, &r); err != nil {
			r.Error = err.Error()
			failed++
			fmt.Fprintf(e.errOut, "%s: failed: %v\n", region, err)
		}
		results = append(results, r)
	}
	if err := s.summary(e, results); err != nil {
		return err
	}
	if failed > 0 {
		return fmt.Errorf("staging failed in %d of %d regions (above); the others are staged", failed, len(regions))
	}
	return nil
}

// stageRegion makes the region's bucket ours and current: created if absent (refused if
// another account owns it), private but for the organization's reads, and holding every
// object of the release under the prefix.
func (s *stager) stageRegion(ctx context.Context, e *env, r *regionResult) error {
	inRegion := func(o *s3.Options) { o.Region = r.Region }
	bucket := aws.String(r.Bucket)
	owner := aws.String(s.account)
	_, err := e.S3.HeadBucket(ctx, &s3.HeadBucketInput{Bucket: bucket, ExpectedBucketOwner: owner}, inRegion)
	switch status := httpStatus(err); {
	case err == nil:
		fmt.Fprintf(e.errOut, "%s: bucket %s exists (this account's)\n", r.Region, r.Bucket)
	case status == 403:
		return fmt.Errorf("bucket %s exists and is not this account's (%s), or this account may not read it: refusing to stage into it (choose another --bucket-prefix)", r.Bucket, s.account)
	case status != 404:
		return fmt.Errorf("s3:HeadBucket %s: %w", r.Bucket, err)
	case s.dryRun:
		fmt.Fprintf(e.errOut, "%s: would create bucket %s\n", r.Region, r.Bucket)
		r.Created = true
	default:
		if err := s.createBucket(ctx, e, r.Region, r.Bucket, inRegion); err != nil {
			return err
		}
		r.Created = true
		fmt.Fprintf(e.errOut, "%s: bucket %s created\n", r.Region, r.Bucket)
	}
	if !s.dryRun {
		if err := s.secureBucket(ctx, e, r.Region, r.Bucket, inRegion); err != nil {
			return err
		}
	}
	for _, f := range s.release.Code() {
		key := s.prefix + f.Path
		sum := f.SHA256()
		var head *s3.HeadObjectOutput
		if !r.Created {
			head, err = e.S3.HeadObject(ctx, &s3.HeadObjectInput{Bucket: bucket, Key: aws.String(key), ExpectedBucketOwner: owner}, inRegion)
			if err != nil && httpStatus(err) != 404 {
				return fmt.Errorf("s3:HeadObject s3://%s/%s: %w", r.Bucket, key, err)
			}
		}
		if head != nil && head.Metadata[shaMetadata] == sum {
			r.Unchanged = append(r.Unchanged, key)
			fmt.Fprintf(e.errOut, "%s: %s unchanged\n", r.Region, key)
			continue
		}
		verb := "would upload"
		if !s.dryRun {
			raw, _ := hex.DecodeString(sum)
			// S3 checks the bytes it receives against ChecksumSHA256 and refuses a mismatch.
			if _, err := e.S3.PutObject(ctx, &s3.PutObjectInput{Bucket: bucket, Key: aws.String(key), Body: bytes.NewReader(f.Data),
				ChecksumSHA256: aws.String(base64.StdEncoding.EncodeToString(raw)), Metadata: map[string]string{shaMetadata: sum},
				ExpectedBucketOwner: owner}, inRegion); err != nil {
				return fmt.Errorf("s3:PutObject s3://%s/%s: %w", r.Bucket, key, err)
			}
			verb = "uploaded"
		}
		r.Uploaded = append(r.Uploaded, key)
		fmt.Fprintf(e.errOut, "%s: %s %s (%s)\n", r.Region, key, verb, size(len(f.Data)))
	}
	return nil
}

func (s *stager) createBucket(ctx context.Context, e *env, region, bucket string, inRegion func(*s3.Options)) error {
	in := &s3.CreateBucketInput{Bucket: aws.String(bucket), ObjectOwnership: s3types.ObjectOwnershipBucketOwnerEnforced}
	// us-east-1 takes no location constraint; every other region needs its own.
	if region != "us-east-1" {
		in.CreateBucketConfiguration = &s3types.CreateBucketConfiguration{LocationConstraint: s3types.BucketLocationConstraint(region)}
	}
	_, err := e.S3.CreateBucket(ctx, in, inRegion)
	var api smithy.APIError
	switch {
	case err == nil:
		return nil
	case errors.As(err, &api) && api.ErrorCode() == "BucketAlreadyOwnedByYou":
		return nil
	case errors.As(err, &api) && api.ErrorCode() == "BucketAlreadyExists":
		return fmt.Errorf("bucket %s was just created by another account: refusing to stage into it (choose another --bucket-prefix)", bucket)
	}
	return fmt.Errorf("s3:CreateBucket %s in %s: %w", bucket, region, err)
}

// secureBucket blocks public ACLs, encrypts at rest by default and puts the
// organization's read-only policy; each call replaces what was there, so a rerun repairs
// a bucket changed by hand. BlockPublicPolicy and RestrictPublicBuckets stay off: S3's
// list of what makes a Principal "*" policy non-public names no aws:PrincipalOrgID
// (docs/aws-fidelity.md), so with them S3 could refuse, or ignore, the organization's
// policy; the policy itself is what keeps the code to the organization (tested).
func (s *stager) secureBucket(ctx context.Context, e *env, region, bucket string, inRegion func(*s3.Options)) error {
	b, owner := aws.String(bucket), aws.String(s.account)
	if _, err := e.S3.PutPublicAccessBlock(ctx, &s3.PutPublicAccessBlockInput{Bucket: b, ExpectedBucketOwner: owner,
		PublicAccessBlockConfiguration: &s3types.PublicAccessBlockConfiguration{BlockPublicAcls: aws.Bool(true), IgnorePublicAcls: aws.Bool(true),
			BlockPublicPolicy: aws.Bool(false), RestrictPublicBuckets: aws.Bool(false)}}, inRegion); err != nil {
		return fmt.Errorf("s3:PutPublicAccessBlock %s: %w", bucket, err)
	}
	if _, err := e.S3.PutBucketEncryption(ctx, &s3.PutBucketEncryptionInput{Bucket: b, ExpectedBucketOwner: owner,
		ServerSideEncryptionConfiguration: &s3types.ServerSideEncryptionConfiguration{Rules: []s3types.ServerSideEncryptionRule{{
			ApplyServerSideEncryptionByDefault: &s3types.ServerSideEncryptionByDefault{SSEAlgorithm: s3types.ServerSideEncryptionAes256}}}}}, inRegion); err != nil {
		return fmt.Errorf("s3:PutBucketEncryption %s: %w", bucket, err)
	}
	policy := release.BucketPolicy(release.Partition(region), bucket, s.prefix, s.org)
	if _, err := e.S3.PutBucketPolicy(ctx, &s3.PutBucketPolicyInput{Bucket: b, ExpectedBucketOwner: owner, Policy: aws.String(policy)}, inRegion); err != nil {
		return fmt.Errorf("s3:PutBucketPolicy %s: %w", bucket, err)
	}
	fmt.Fprintf(e.errOut, "%s: bucket %s: no public ACLs, encrypted, readable by %s under %s\n", region, bucket, s.org, s.prefix)
	return nil
}

func (s *stager) summary(e *env, results []regionResult) error {
	switch e.output {
	case "json":
		return writeJSON(e.out, results)
	case "text":
		var rows [][]string
		for _, r := range results {
			rows = append(rows, []string{r.Region, r.Bucket, fmt.Sprint(r.Created), fmt.Sprint(len(r.Uploaded)), fmt.Sprint(len(r.Unchanged)), r.Error})
		}
		return writeText(e.out, rows)
	}
	tw := tabwriter.NewWriter(e.out, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "REGION\tBUCKET\tCREATED\tUPLOADED\tUNCHANGED\tRESULT")
	for _, r := range results {
		result := "staged"
		if s.dryRun {
			result = "dry run"
		}
		if r.Error != "" {
			result = "failed: " + r.Error
		}
		fmt.Fprintf(tw, "%s\t%s\t%t\t%d\t%d\t%s\n", r.Region, r.Bucket, r.Created, len(r.Uploaded), len(r.Unchanged), result)
	}
	return tw.Flush()
}

// httpStatus is the HTTP status of an AWS error (HeadBucket and HeadObject have no
// body, so their 403 and 404 carry no error code), or 0.
func httpStatus(err error) int {
	var re *awshttp.ResponseError
	if errors.As(err, &re) {
		return re.HTTPStatusCode()
	}
	return 0
}

// size is n bytes as a person reads it.
func size(n int) string {
	switch {
	case n >= 1<<20:
		return fmt.Sprintf("%.1f MB", float64(n)/(1<<20))
	case n >= 1<<10:
		return fmt.Sprintf("%.1f KB", float64(n)/(1<<10))
	}
	return fmt.Sprintf("%d B", n)
}
