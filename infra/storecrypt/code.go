package storecrypt

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/aws/aws-cdk-go/awscdk/v2"
	"github.com/aws/aws-cdk-go/awscdk/v2/awslambda"
	"github.com/aws/aws-cdk-go/awscdk/v2/awss3"
	"github.com/aws/aws-cdk-go/awscdk/v2/awss3assets"
	"github.com/aws/constructs-go/constructs/v10"
	"github.com/aws/jsii-runtime-go"

	"github.com/storecrypt/storecrypt/infra/artifact"
	"github.com/storecrypt/storecrypt/internal/document"
)

// code is where the construct put what it deploys as code: the agents, which the
// instance roles may read (instanceAccess), and the functions' zips.
type code struct {
	// bucket is StoreCryptProps.CodeBucket, imported; nil when the code goes as CDK's file assets.
	bucket awss3.IBucket
	// functions are the functions' code, in bucket or as file assets.
	functions map[string]functionFile
	// agents are what the document downloads; objects, the same for the outputs.
	agents  document.Agents
	objects []agentOutput
}

// agentOutput is one agent binary as an S3 object, as the outputs describe it.
type agentOutput struct {
	arch, s3URL, sha256 string
	arn                 string // the object's ARN (a token for CDK's file assets)
}

// goBundling builds storecrypt's code for CDK's asset staging, locally
// (awscdk.ILocalBundling). TryBundle cannot return an error, so it keeps it for
// builtCode. One value serves every construct of the app: CDK keys its cache of staged
// assets by the bundling options, this value among them, so an app with a construct in
// each of three regions builds once.
type goBundling struct {
	err error
}

var localGo = &goBundling{}

func (b *goBundling) TryBundle(outputDir *string, _ *awscdk.BundlingOptions) *bool {
	b.err = artifact.Build(context.Background(), *outputDir, artifact.Options{Log: os.Stderr})
	if b.err != nil {
		// CDK panics on an empty output, before builtCode could return the error that
		// says what went wrong; the output is discarded.
		b.err = errors.Join(b.err, os.WriteFile(filepath.Join(*outputDir, "build-failed"), []byte(b.err.Error()), 0o644))
	}
	return jsii.Bool(true)
}

// builtCode is the directory of storecrypt's code built for scope's stack through CDK's
// asset staging: CDK names the output by its hash, puts it in the cloud assembly (so two
// synths into two directories never share one), and bundles only for the stacks being
// synthesized or deployed. For the others (cdk ls, cdk destroy) it would stage the
// source unbuilt; builtCode stages stand-ins instead, so the template is whole and
// nothing is built.
func builtCode(scope constructs.Construct) (string, error) {
	outdir := *awscdk.Stage_Of(scope).AssetOutdir()
	if !*awscdk.Stack_Of(scope).BundlingRequired() {
		dir := filepath.Join(outdir, "storecrypt-stand-ins")
		return dir, artifact.StandIns(dir)
	}
	staged := awscdk.NewAssetStaging(scope, jsii.String("Code"), &awscdk.AssetStagingProps{
		// CDK wants a directory to bundle from, and reads only its path here: the build
		// reads storecrypt's module, wherever artifact.Source finds it, and the asset's
		// hash is the output's.
		SourcePath:    &outdir,
		AssetHashType: awscdk.AssetHashType_OUTPUT,
		Bundling: &awscdk.BundlingOptions{
			// Used only if TryBundle said no, which it never does.
			Image: awscdk.DockerImage_FromRegistry(jsii.String("storecrypt-builds-with-local-go")),
			Local: localGo,
		},
	})
	if localGo.err != nil {
		return "", localGo.err
	}
	return *staged.AbsoluteStagedPath(), nil
}

// codeFiles are the files the construct deploys as code, from a build (BuildDir, or
// the construct's own) or from a release (StoreCryptProps.Release).
type codeFiles struct {
	agents    []agentFile
	functions map[string]functionFile
}

// agentFile is one agent: its digests, and the gzipped object the instances download.
type agentFile struct {
	document.Agent
	gz string
}

// functionFile is one function's code.
type functionFile struct {
	// key is the zip's object key below CodePrefix in a code bucket.
	key string
	// path is what CDK stages: the bootstrap's directory, which CDK zips and hashes, or
	// a release's zip, staged as it is under hash, its digest.
	path, hash string
}

// fromBuild is the code in dir, laid out as `make build` writes bin/.
func fromBuild(dir string) (codeFiles, error) {
	files := codeFiles{functions: map[string]functionFile{}}
	for _, arch := range document.Architectures {
		path := artifact.Agent(dir, arch)
		a, err := agentDigests(path)
		if err != nil {
			return files, err
		}
		a.Arch = arch
		files.agents = append(files.agents, agentFile{Agent: a, gz: path + document.GzSuffix})
	}
	for _, fn := range artifact.Functions {
		key, err := artifact.FunctionKey(dir, fn)
		if err != nil {
			return files, err
		}
		files.functions[fn] = functionFile{key: key, path: artifact.Function(dir, fn)}
	}
	return files, nil
}

// stageCode puts the code where the stack deploys it from: StoreCryptProps.CodeBucket, where the
// publisher uploaded it, or else CDK's file assets.
func (s *builder) stageCode(files codeFiles) (code, error) {
	c := code{functions: files.functions}
	if s.props.CodeBucket != "" {
		c.bucket = awss3.Bucket_FromBucketName(s.c, jsii.String("CodeBucket"), jsii.String(s.props.CodeBucket))
	}
	var err error
	c.agents, c.objects, err = s.agentArtifacts(c.bucket, files.agents)
	return c, err
}

// agentArtifacts uploads the agents, gzipped, as file assets under keys that differ only
// in the architecture (storecrypt-agent-<build>-<arch>.gz, <build> from both objects'
// digests, so a new build is a new key), which lets one download step fetch only the
// instance's own; and lets the instance roles read exactly those objects. CDK names an
// awss3assets.Asset's object by its own hash, so the agents are staged and added to the
// synthesizer directly, as Asset does, with the key chosen here.
func (s *builder) agentArtifacts(codeBucket awss3.IBucket, files []agentFile) (document.Agents, []agentOutput, error) {
	var agents document.Agents
	var objects []agentOutput
	var digests []string
	for _, f := range files {
		agents.Each = append(agents.Each, f.Agent)
		digests = append(digests, f.GzSHA256)
	}
	id := artifact.BuildID(digests...)
	if s.props.CodeBucket != "" {
		for _, a := range agents.Each {
			key := s.props.CodePrefix + artifact.AgentKey(id, a.Arch)
			objects = append(objects, agentObject(a, codeBucket, key, "s3://"+s.props.CodeBucket+"/"+key))
		}
		agents.URLPrefix = s.objectURL(s.props.CodeBucket, s.props.CodePrefix+artifact.AgentKeyPrefix(id))
		return agents, objects, nil
	}
	var keyPrefix string
	for _, f := range files {
		staged := awscdk.NewAssetStaging(s.c, jsii.String("Agent-"+f.Arch), &awscdk.AssetStagingProps{
			SourcePath: jsii.String(f.gz), AssetHashType: awscdk.AssetHashType_CUSTOM, AssetHash: jsii.String(f.GzSHA256),
		})
		loc := s.st.Synthesizer().AddFileAsset(&awscdk.FileAssetSource{
			SourceHash: jsii.String(strings.TrimSuffix(artifact.AgentKey(id, f.Arch), document.GzSuffix)), FileName: staged.RelativeStagedPath(s.st), Packaging: awscdk.FileAssetPackaging_FILE,
		})
		// The URL HttpUrl would give, built here because HttpUrl is one opaque token.
		key, ok := strings.CutSuffix(*loc.ObjectKey, f.Arch+document.GzSuffix)
		if !ok || keyPrefix != "" && key != keyPrefix {
			return agents, nil, fmt.Errorf("the agent for %s was published as %s, not beside the others", f.Arch, *loc.ObjectKey)
		}
		if keyPrefix == "" {
			// The bucket is a token; the same bucket for every file asset of the stack.
			keyPrefix = key
			agents.URLPrefix = s.objectURL(*loc.BucketName, key)
		}
		objects = append(objects, agentObject(f.Agent, awss3.Bucket_FromBucketName(s.c, jsii.String("AgentBucket-"+f.Arch), loc.BucketName), *loc.ObjectKey, *loc.S3ObjectUrl))
	}
	return agents, objects, nil
}

// objectURL is the path-style HTTPS URL of an object, as aws:downloadContent takes it.
func (s *builder) objectURL(bucket, key string) string {
	return "https://s3." + *s.st.Region() + "." + *s.st.UrlSuffix() + "/" + bucket + "/" + key
}

// agentObject describes one agent object for the outputs and the instance roles' grant
// to read it (instanceAccess).
func agentObject(a document.Agent, bucket awss3.IBucket, key, s3URL string) agentOutput {
	return agentOutput{arch: a.Arch, s3URL: s3URL, sha256: a.SHA256, arn: *bucket.ArnForObjects(jsii.String(key))}
}

// agentDigests reads the .sha256 that `make build` wrote beside the agent at path and
// checks it against the binary and against what path.gz decompresses to, so neither a
// stale checksum nor a stale download can be deployed.
func agentDigests(path string) (document.Agent, error) {
	var a document.Agent
	b, err := os.ReadFile(path + ".sha256")
	if err != nil {
		return a, fmt.Errorf("reading the agent's checksum (run `make build`): %w", err)
	}
	fields := strings.Fields(string(b))
	binary, err := os.ReadFile(path)
	if err != nil {
		return a, fmt.Errorf("reading the agent (run `make build`): %w", err)
	}
	if len(fields) == 0 || fields[0] != artifact.SHA256(binary) {
		return a, fmt.Errorf("%s.sha256 does not match %s (run `make build`)", path, path)
	}
	gz, err := os.ReadFile(path + document.GzSuffix)
	if err != nil {
		return a, fmt.Errorf("reading the gzipped agent (run `make build`): %w", err)
	}
	inside, err := gunzip(gz)
	if err != nil {
		return a, fmt.Errorf("%s%s: %w", path, document.GzSuffix, err)
	}
	if !bytes.Equal(inside, binary) {
		return a, fmt.Errorf("%s%s does not decompress to %s (run `make build`)", path, document.GzSuffix, path)
	}
	return document.Agent{SHA256: fields[0], GzSHA256: artifact.SHA256(gz)}, nil
}

// functionCode is the code of function dir (launch, result): the zip in the code bucket,
// or a file asset.
func (s *builder) functionCode(c code, dir string) awslambda.Code {
	f := c.functions[dir]
	if c.bucket != nil {
		fromBucket := awslambda.Code_FromBucket(c.bucket, jsii.String(s.props.CodePrefix+f.key), nil)
		awscdk.Annotations_Of(s.c).AcknowledgeWarning(jsii.String("@aws-cdk/aws-lambda:codeFromBucketObjectVersionNotSpecified"),
			jsii.String("the key names the code's digest: new code is a new key, which CloudFormation sees"))
		return fromBucket
	}
	if f.hash == "" {
		return awslambda.Code_FromAsset(jsii.String(f.path), nil)
	}
	return awslambda.Code_FromAsset(jsii.String(f.path), &awss3assets.AssetOptions{AssetHashType: awscdk.AssetHashType_CUSTOM, AssetHash: jsii.String(f.hash)})
}
