package opcli

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"

	"github.com/spf13/pflag"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kms"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	s3types "github.com/aws/aws-sdk-go-v2/service/s3/types"
	"github.com/aws/smithy-go"

	"github.com/storecrypt/storecrypt/internal/binding"
	"github.com/storecrypt/storecrypt/internal/contract"
	"github.com/storecrypt/storecrypt/internal/document"
	"github.com/storecrypt/storecrypt/internal/fleet"
	"github.com/storecrypt/storecrypt/internal/ledger"
)

// ---- put-secret

func runPutSecret(fs *pflag.FlagSet) checkFunc {
	bucket := fs.String("bucket", "", "the secret bucket (default: from the stack's Secret output)")
	key := fs.String("key", "", "object key of the secret (default: from the stack's Secret output, else seed/passphrase)")
	keyID := fs.String("kms-key-id", "", "KMS key to encrypt with (default: the stack's KeyArn output)")
	generate := fs.Bool("generate", false, "generate a random passphrase instead of reading one from stdin")
	force := fs.Bool("force", false, "replace an existing secret (volumes made with the old one keep reading its version)")
	return func(e *env) (runFunc, error) {
		// A key id or alias name goes to KMS as given; an ARN must be a key's or an alias's.
		if strings.HasPrefix(*keyID, "arn:") {
			if err := checkARN("--kms-key-id", *keyID, "kms", "key/", "alias/"); err != nil {
				return nil, err
			}
		}
		return func(ctx context.Context, e *env) error {
			// stdin is read after the credentials, not in the check: a profile with
			// mfa_serial asks for its code on the same terminal first, and a passphrase read
			// before a credential failure would be held for nothing.
			pass, err := passphrase(e.stdin, *generate)
			if err != nil {
				return err
			}
			defer clear(pass)
			if *bucket == "" || *keyID == "" {
				var secret string
				if err := fromStack(ctx, e, map[string]*string{contract.OutputKeyARN: keyID, contract.OutputSecret: &secret}); err != nil {
					return err
				}
				if *bucket == "" && secret != "" {
					b, k, err := contract.SecretLocation(secret)
					if err != nil {
						return fmt.Errorf("the stack's %s output: %w", contract.OutputSecret, err)
					}
					*bucket = b
					if *key == "" {
						*key = k
					}
				}
			}
			if *bucket == "" || *keyID == "" {
				return usageErr(fmt.Sprintf("give --bucket and --kms-key-id: stack %s has no %s or %s output (a stack with --key-source s3-kms has both)", e.stack, contract.OutputSecret, contract.OutputKeyARN))
			}
			if *key == "" {
				*key = "seed/passphrase"
			}
			enc, err := e.KMS.Encrypt(ctx, &kms.EncryptInput{KeyId: aws.String(*keyID), Plaintext: pass})
			if err != nil {
				return fmt.Errorf("kms:Encrypt with %s: %w", *keyID, err)
			}
			// The raw ciphertext, as `aws kms encrypt ... | base64 --decode` writes it, which is
			// what the agent's s3-kms source and the seed recipe read.
			in := &s3.PutObjectInput{
				Bucket: aws.String(*bucket), Key: aws.String(*key), Body: bytes.NewReader(enc.CiphertextBlob),
				ServerSideEncryption: s3types.ServerSideEncryptionAwsKms, SSEKMSKeyId: aws.String(*keyID),
			}
			if !*force {
				// S3 itself refuses the write if the object exists, with no read of it first
				// and no race between a check and the write (a conditional write).
				in.IfNoneMatch = aws.String("*")
			}
			put, err := e.S3.PutObject(ctx, in)
			var apiErr smithy.APIError
			if errors.As(err, &apiErr) && apiErr.ErrorCode() == "PreconditionFailed" {
				return fmt.Errorf("s3://%s/%s already exists; volumes made with it read the version they were made with, so replacing it is safe for them, but new volumes will use the new one: rerun with --force to replace it", *bucket, *key)
			}
			if err != nil {
				return fmt.Errorf("s3:PutObject s3://%s/%s: %w", *bucket, *key, err)
			}
			res := map[string]string{"secret": "s3://" + *bucket + "/" + *key, "version": aws.ToString(put.VersionId), "key_id": aws.ToString(enc.KeyId)}
			switch e.output {
			case "json":
				return writeJSON(e.out, res)
			case "text":
				return writeText(e.out, [][]string{{res["secret"], res["version"], res["key_id"]}})
			}
			fmt.Fprintf(e.out, "stored %s (version %q), encrypted under %s\nagents read it with --key-source s3-kms --secret %s\n", res["secret"], res["version"], res["key_id"], res["secret"])
			return nil
		}, nil
	}
}

// passphrase reads one line from stdin (never from argv) or makes a random one.
func passphrase(stdin io.Reader, generate bool) ([]byte, error) {
	if generate {
		raw := make([]byte, 32)
		if _, err := rand.Read(raw); err != nil {
			return nil, err
		}
		out := []byte(base64.RawURLEncoding.EncodeToString(raw))
		clear(raw)
		return out, nil
	}
	b, err := io.ReadAll(io.LimitReader(stdin, 4097))
	if err != nil {
		return nil, fmt.Errorf("reading the passphrase from stdin: %w", err)
	}
	b = bytes.TrimSuffix(b, []byte("\n"))
	switch {
	case len(b) == 0:
		return nil, usageErr("no passphrase on stdin (pipe one in, or use --generate)")
	case len(b) > 4096 || bytes.ContainsAny(b, "\n\x00"):
		clear(b)
		return nil, usageErr("the passphrase must be one line of at most 4096 bytes")
	}
	return b, nil
}

// fromStack sets each empty value to the stack output of its key.
func fromStack(ctx context.Context, e *env, values map[string]*string) error {
	o, err := stackOutputs(ctx, e)
	if err != nil {
		return err
	}
	for key, dst := range values {
		if *dst != "" {
			continue
		}
		if *dst, err = o.get(key); err != nil {
			return fmt.Errorf("reading stack %s: %w", e.stack, err)
		}
	}
	return nil
}

// writeText writes rows as the aws CLI's text output does: no header, fields separated by
// tabs, None for an empty field (so that the shell's read, which folds runs of tabs,
// keeps the columns in place), and no tab or newline inside a field.
func writeText(w io.Writer, rows [][]string) error {
	clean := strings.NewReplacer("\t", " ", "\n", " ", "\r", " ")
	for _, row := range rows {
		f := make([]string, len(row))
		for i, v := range row {
			if f[i] = clean.Replace(v); f[i] == "" {
				f[i] = "None"
			}
		}
		if _, err := fmt.Fprintln(w, strings.Join(f, "\t")); err != nil {
			return err
		}
	}
	return nil
}

func writeJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

// ---- verify

func runVerify(fs *pflag.FlagSet) checkFunc {
	instance := fs.String("instance", "", "instance id whose role to check")
	role := fs.String("role", "", "role ARN to check")
	keyID := fs.String("kms-key-id", "", "the KMS key ARN (default: the stack's KeyArn output)")
	source := fs.String("key-source", "", "kms-datakey or s3-kms (default: the stack's KeySource output when the key comes from the stack, else kms-datakey)")
	secret := fs.String("secret", "", "s3://bucket/key of the seed secret, s3-kms (default: the stack's Secret output when the key comes from the stack)")
	return func(e *env) (runFunc, error) {
		if (*instance == "") == (*role == "") {
			return nil, usageErr("give one of --instance or --role")
		}
		if *instance != "" {
			if err := checkInstances("--instance", *instance); err != nil {
				return nil, err
			}
		}
		if err := checkARN("--role", *role, "iam", "role/"); err != nil {
			return nil, err
		}
		// The binding check reads the key's policy, so a key id or alias does, but an ARN
		// must be a key's.
		if strings.HasPrefix(*keyID, "arn:") {
			if err := checkARN("--kms-key-id", *keyID, "kms", "key/"); err != nil {
				return nil, err
			}
		}
		if *source != "" && !slices.Contains(contract.KeySources, *source) {
			return nil, usageErr(fmt.Sprintf("--key-source %q: want one of %s", *source, strings.Join(contract.KeySources, ", ")))
		}
		if *secret != "" {
			if _, _, err := contract.SecretLocation(*secret); err != nil {
				return nil, usageErr("--secret: " + err.Error())
			}
		}
		return func(ctx context.Context, e *env) error {
			fromTheStack := *keyID == ""
			if fromTheStack {
				// The key, and how the stack uses it, from the stack; flags given win.
				if err := fromStack(ctx, e, map[string]*string{contract.OutputKeyARN: keyID, contract.OutputKeySource: source, contract.OutputSecret: secret}); err != nil {
					return err
				}
				if *keyID == "" {
					return usageErr(fmt.Sprintf("give --kms-key-id: stack %s has no %s output", e.stack, contract.OutputKeyARN))
				}
			}
			if *source == "" {
				*source = contract.KeySourceKMSDataKey
			}
			checker := &binding.Checker{IAM: e.IAM, KMS: e.KMS}
			req := binding.Request{KeyARN: *keyID, KeySource: *source, Secret: *secret}
			if fromTheStack {
				var err error
				if req.Access, err = instanceAccess(ctx, e, *keyID); err != nil {
					return err
				}
			}
			var v binding.Verdict
			var err error
			if *role != "" {
				v, err = checker.CheckRole(ctx, *role, req)
			} else {
				inst, ierr := fleet.ByID(ctx, e.EC2, *instance)
				if ierr != nil {
					return ierr
				}
				if inst == nil {
					return fmt.Errorf("no instance %s", *instance)
				}
				req.InstanceProfileARN = fleet.Profile(*inst)
				req.InstanceID = *instance
				v, err = checker.Check(ctx, req)
			}
			if err != nil {
				return err
			}
			switch e.output {
			case "json":
				err = writeJSON(e.out, v)
			case "text":
				verdict := map[bool]string{true: "ok", false: "blocked"}[v.Allowed]
				err = writeText(e.out, [][]string{{v.Role, verdict, string(v.Reason), v.Fix}})
			default:
				printVerdict(e.out, v)
			}
			if err != nil {
				return err
			}
			if !v.Allowed {
				return &codeError{code: contract.CLIExitBlocked, err: fmt.Errorf("blocked: %s", v.Reason)}
			}
			return nil
		}, nil
	}
}

// instanceAccess is what the stack's launch function checks besides the key (the
// instance access policy's rights), from the stack's outputs; nil for a stack without an
// instance role path.
func instanceAccess(ctx context.Context, e *env, keyARN string) (*contract.InstanceAccess, error) {
	var policy, logs string
	values := map[string]*string{contract.OutputInstanceAccessPolicyARN: &policy, contract.OutputAgentLogGroup: &logs}
	urls := make([]string, len(document.Architectures))
	for i, arch := range document.Architectures {
		values[contract.OutputAgentS3URL(arch)] = &urls[i]
	}
	if err := fromStack(ctx, e, values); err != nil || policy == "" {
		return nil, err
	}
	a, err := contract.AgentAccess(policy, urls, logs, keyARN)
	if err != nil {
		return nil, fmt.Errorf("reading stack %s: %w", e.stack, err)
	}
	return &a, nil
}

func printVerdict(w io.Writer, v binding.Verdict) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	verdict := "ok: the agent can get and unwrap its key"
	if !v.Allowed {
		verdict = "blocked: " + string(v.Reason)
	}
	fmt.Fprintf(tw, "ROLE\t%s\nVERDICT\t%s\n", orDash(v.Role), verdict)
	if v.Detail != "" {
		fmt.Fprintf(tw, "DETAIL\t%s\nFIX\t%s\n", v.Detail, v.Fix)
	}
	for _, n := range v.Notes {
		fmt.Fprintf(tw, "NOTE\t%s\n", n)
	}
	tw.Flush()
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// ---- status and report

// StatusRow is one line of `storecrypt status`: what the instance's tags report, and
// for an instance they say is revoked or shredded, who did it, when and why, from the
// ledger (the tags have no room for a reason, and anyone who may tag could forge them).
type StatusRow struct {
	Instance  string `json:"instance"`
	Type      string `json:"type"`
	State     string `json:"state"`
	InScope   bool   `json:"in_scope"`
	Status    string `json:"status"`
	Reason    string `json:"reason,omitempty"`
	At        string `json:"at,omitempty"`
	CommandID string `json:"command_id,omitempty"`
	ledger.Marks
}

// cutOff says whether an instance's tags say a responder cut it off its data: its status
// (the result function's record of the command), or the reason the launch function
// skipped a later launch.
func cutOff(status, reason string) bool {
	for _, v := range []string{status, reason} {
		if v == contract.StatusRevoked || v == contract.StatusShredded {
			return true
		}
	}
	return false
}

// withMarks fills in the ledger's marks of the rows cutOff selects: one strongly
// consistent query per such instance, none for the others.
func withMarks(ctx context.Context, e *env, sc stackConfig, rows []StatusRow) error {
	if sc.LedgerTable == "" {
		return nil
	}
	book := &ledger.Ledger{DB: e.DynamoDB, Table: sc.LedgerTable}
	for n, r := range rows {
		if !cutOff(r.Status, r.Reason) {
			continue
		}
		m, err := book.MarksOf(ctx, r.Instance)
		if err != nil {
			return err
		}
		rows[n].Marks = m
	}
	return nil
}

// markLines are an instance's marks as the tables print them, one line each.
func markLines(instance string, m ledger.Marks) []string {
	var out []string
	for _, l := range [][4]string{{contract.StatusRevoked, m.RevokedAt, m.RevokedBy, m.RevokedReason}, {contract.StatusShredded, m.ShreddedAt, m.ShreddedBy, m.ShreddedReason},
		{contract.StatusResumed, m.ResumedAt, m.ResumedBy, m.ResumedReason}} {
		if l[1] != "" {
			out = append(out, fmt.Sprintf("  %s\t%s %s by %s: %s", instance, l[0], l[1], orDash(l[2]), orDash(l[3])))
		}
	}
	return out
}

func runStatus(*pflag.FlagSet) checkFunc {
	return checked(func(ctx context.Context, e *env) error {
		sc, err := readStack(ctx, e)
		if err != nil {
			return err
		}
		insts, err := listTracked(ctx, e, sc)
		if err != nil {
			return err
		}
		rows := []StatusRow{}
		for _, i := range insts {
			t := i.tags
			status := t[contract.TagStatus]
			if status == "" {
				status = "not yet seen"
			}
			rows = append(rows, StatusRow{Instance: aws.ToString(i.InstanceId), Type: string(i.InstanceType), State: string(i.State.Name), InScope: i.inScope,
				Status: status, Reason: t[contract.TagReason], At: t[contract.TagAt], CommandID: t[contract.TagCommandID]})
		}
		if err := withMarks(ctx, e, sc, rows); err != nil {
			return err
		}
		switch e.output {
		case "json":
			return writeJSON(e.out, rows)
		case "text":
			var lines [][]string
			for _, r := range rows {
				lines = append(lines, []string{r.Instance, r.Type, r.State, strconv.FormatBool(r.InScope), r.Status, r.Reason, r.At, r.CommandID,
					r.RevokedAt, r.RevokedBy, r.RevokedReason, r.ShreddedAt, r.ShreddedBy, r.ShreddedReason, r.ResumedAt, r.ResumedBy, r.ResumedReason})
			}
			return writeText(e.out, lines)
		}
		tw := tabwriter.NewWriter(e.out, 0, 0, 2, ' ', 0)
		fmt.Fprintln(tw, "INSTANCE\tTYPE\tSTATE\tIN SCOPE\tSTATUS\tREASON\tAT\tCOMMAND")
		var marks []string
		cut := 0
		for _, r := range rows {
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", r.Instance, r.Type, r.State, map[bool]string{true: "yes", false: "no"}[r.InScope], r.Status, orDash(r.Reason), orDash(r.At), orDash(r.CommandID))
			if m := markLines(r.Instance, r.Marks); m != nil {
				marks, cut = append(marks, m...), cut+1
			}
		}
		if err := tw.Flush(); err != nil || len(marks) == 0 {
			return err
		}
		tw = tabwriter.NewWriter(e.out, 0, 0, 2, ' ', 0)
		fmt.Fprintf(tw, "\nREVOKED OR SHREDDED\t%d (the ledger's record: when, by whom, why)\n", cut)
		for _, l := range marks {
			fmt.Fprintln(tw, l)
		}
		return tw.Flush()
	})
}
