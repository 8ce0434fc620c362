package document

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ssm"
)

// SSM is the part of the SSM client Trust uses.
type SSM interface {
	GetDocument(ctx context.Context, in *ssm.GetDocumentInput, optFns ...func(*ssm.Options)) (*ssm.GetDocumentOutput, error)
	ListDocumentVersions(ctx context.Context, in *ssm.ListDocumentVersionsInput, optFns ...func(*ssm.Options)) (*ssm.ListDocumentVersionsOutput, error)
}

// Trust decides which versions of the deployed document hold the content the stack
// deployed (Verify). Whoever may update the document or its default version could
// otherwise run code as root on every new instance through the launch function, and
// have the result recorded as encrypted. SSM never changes a version once it exists
// ("Any update to a document creates a new version"), so a version's verdict is kept
// for the life of the process; which version is the default is read again after TTL.
type Trust struct {
	SSM    SSM
	Name   string
	Digest string // the stack's Digest of the content
	KeyID  string // the KmsKeyId default the stack gave the document
	Secret string // the Secret default the stack gave the document
	TTL    time.Duration
	Now    func() time.Time

	mu       sync.Mutex
	verdicts map[string]error // version -> nil when trusted, else why not
	pin      Pin
	failure  error // no version holds the deployed content; remembered like pin
	until    time.Time
}

// Pin is the version the launch function sends.
type Pin struct {
	Version string // the newest version with the deployed content
	Default string // the document's default version
	// Fresh: this answer was read from SSM, not remembered; drift is reported once per
	// reading.
	Fresh bool
}

// Drift reports that the default version is not the deployed content.
func (p Pin) Drift() bool { return p.Version != p.Default }

func (t *Trust) now() time.Time {
	if t.Now == nil {
		return time.Now()
	}
	return t.Now()
}

// Version returns the version to send: the default when it holds the deployed content,
// else the newest version that does. An error wrapping ErrUntrusted means no version
// does.
func (t *Trust) Version(ctx context.Context) (Pin, error) {
	t.mu.Lock()
	if (t.pin.Version != "" || t.failure != nil) && t.now().Before(t.until) {
		p, err := t.pin, t.failure
		t.mu.Unlock()
		p.Fresh = false
		return p, err
	}
	t.mu.Unlock()
	out, err := t.SSM.GetDocument(ctx, &ssm.GetDocumentInput{Name: aws.String(t.Name), DocumentVersion: aws.String("$DEFAULT")})
	if err != nil {
		return Pin{}, fmt.Errorf("reading document %s: %w", t.Name, err)
	}
	def := aws.ToString(out.DocumentVersion)
	p := Pin{Default: def, Fresh: true}
	if t.remember(def, Verify(aws.ToString(out.Content), t.Digest, t.KeyID, t.Secret)) == nil {
		p.Version = def
	} else if p.Version, err = t.newestTrusted(ctx, def); err != nil {
		if !errors.Is(err, ErrUntrusted) {
			return Pin{}, err
		}
		p.Version = ""
	}
	t.mu.Lock()
	t.pin, t.failure, t.until = p, err, t.now().Add(t.TTL)
	t.mu.Unlock()
	return p, err
}

// newestTrusted looks through the other versions, newest first.
func (t *Trust) newestTrusted(ctx context.Context, skip string) (string, error) {
	var versions []int
	p := ssm.NewListDocumentVersionsPaginator(t.SSM, &ssm.ListDocumentVersionsInput{Name: aws.String(t.Name)})
	for p.HasMorePages() {
		page, err := p.NextPage(ctx)
		if err != nil {
			return "", fmt.Errorf("listing the versions of %s: %w", t.Name, err)
		}
		for _, v := range page.DocumentVersions {
			if n, err := strconv.Atoi(aws.ToString(v.DocumentVersion)); err == nil && aws.ToString(v.DocumentVersion) != skip {
				versions = append(versions, n)
			}
		}
	}
	slices.Sort(versions)
	slices.Reverse(versions)
	for _, n := range versions {
		err := t.Check(ctx, strconv.Itoa(n))
		switch {
		case err == nil:
			return strconv.Itoa(n), nil
		case !errors.Is(err, ErrUntrusted):
			return "", err
		}
	}
	return "", fmt.Errorf("document %s: %w (no version of it holds the deployed content)", t.Name, ErrUntrusted)
}

// Check says whether a version holds the deployed content: nil, or an error wrapping
// ErrUntrusted that says how it differs. Other errors are failures to read it.
//
// A command sent without a version number (a console rerun at "$DEFAULT") may report the
// version as it was requested rather than the number that ran: such a name is read as
// it resolves now, and not remembered, since what it names changes.
func (t *Trust) Check(ctx context.Context, version string) error {
	if version == "" {
		version = "$DEFAULT"
	}
	_, numbered := strconv.Atoi(version)
	t.mu.Lock()
	err, known := t.verdicts[version]
	t.mu.Unlock()
	if known && numbered == nil {
		return err
	}
	out, err := t.SSM.GetDocument(ctx, &ssm.GetDocumentInput{Name: aws.String(t.Name), DocumentVersion: aws.String(version)})
	if err != nil {
		return fmt.Errorf("reading version %s of %s: %w", version, t.Name, err)
	}
	return t.remember(aws.ToString(out.DocumentVersion), Verify(aws.ToString(out.Content), t.Digest, t.KeyID, t.Secret))
}

func (t *Trust) remember(version string, verdict error) error {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.verdicts == nil {
		t.verdicts = map[string]error{}
	}
	if verdict != nil {
		verdict = fmt.Errorf("version %s of %s: %w", version, t.Name, verdict)
	}
	t.verdicts[version] = verdict
	return verdict
}
