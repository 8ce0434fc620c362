package conformance

import (
	"encoding/json"
	"fmt"
	"net/url"
	"regexp"
	"strings"
	"testing"

	"github.com/storecrypt/storecrypt/internal/document"
	"github.com/storecrypt/storecrypt/internal/fakeaws"
	"github.com/storecrypt/storecrypt/test/cfn"
)

// TestREADMECodeBucketPolicy builds the code buckets' policy as the README's shell lines
// do, in every partition, and judges it with the fake's evaluator: it names no partition
// or prefix of its own, the prefix the lines set is the published template's CodePrefix
// default, and it lets a
// principal of the organization read every object the published template reads (the
// functions' zips, the agents), and nothing else: no principal outside the organization,
// no object outside the prefix, no write.
func TestREADMECodeBucketPolicy(t *testing.T) {
	block := readmeBlock(t, "put-bucket-policy")
	_, word, ok := strings.Cut(block, "--policy ")
	if !ok {
		t.Fatal("the README's put-bucket-policy has no --policy")
	}
	// With every variable a placeholder, the resource shows what the lines fill in: the
	// partition from the credentials, the prefix the template reads its code under.
	shape, err := shellWord(word, map[string]string{"partition": "PARTITION", "bucket": "BUCKET", "prefix": "PREFIX/", "org": "ORG"})
	if err != nil {
		t.Fatal(err)
	}
	var doc struct{ Statement []struct{ Resource string } }
	if err := json.Unmarshal([]byte(shape), &doc); err != nil || len(doc.Statement) != 1 {
		t.Fatalf("the README's bucket policy: %v\n%s", err, shape)
	}
	if got, want := doc.Statement[0].Resource, "arn:PARTITION:s3:::BUCKET/PREFIX/*"; got != want {
		t.Errorf("the README's bucket policy grants %s, want %s (no partition or prefix of its own)", got, want)
	}
	vars := shellAssignments(block)
	for _, name := range []string{"org", "prefix"} {
		if vars[name] == "" {
			t.Fatalf("the README's lines set no %s", name)
		}
	}
	if def := templates[stackSetTemplate].Parameters["CodePrefix"].Default; vars["prefix"] != def {
		t.Errorf("the README's prefix is %q, want the template's CodePrefix default %q", vars["prefix"], def)
	}
	for _, env := range cfn.Partitions {
		t.Run(env.Partition, func(t *testing.T) {
			d := deployVariant(t, stackSetTemplate, env)
			objects := d.codeObjects(t)
			bucket := strings.SplitN(objects[0], "/", 2)[0]
			policy, err := shellWord(word, map[string]string{"partition": env.Partition, "bucket": bucket, "prefix": vars["prefix"], "org": vars["org"]})
			if err != nil {
				t.Fatal(err)
			}
			if !json.Valid([]byte(policy)) {
				t.Fatalf("the README's bucket policy is not JSON:\n%s", policy)
			}
			member := fmt.Sprintf("arn:%s:iam::444455556666:role/any", env.Partition)
			ask := func(org, action, object string) fakeaws.Decision {
				t.Helper()
				got, _, err := fakeaws.Evaluate(policy, true, fakeaws.AuthzRequest{Principal: member, Action: action,
					Resource: "arn:" + env.Partition + ":s3:::" + object, Context: map[string][]string{"aws:PrincipalOrgID": {org}, "aws:PrincipalArn": {member}}})
				if err != nil {
					t.Fatal(err)
				}
				return got
			}
			for _, o := range objects {
				if got := ask(vars["org"], "s3:GetObject", o); got != fakeaws.Allow {
					t.Errorf("a member account reads %s: got %s, want %s", o, got, fakeaws.Allow)
				}
			}
			for _, tc := range []struct{ name, org, action, object string }{
				{"a principal outside the organization reads the code", "o-otherorgid", "s3:GetObject", objects[0]},
				{"a member account reads an object outside the prefix", vars["org"], "s3:GetObject", bucket + "/other/secret"},
				{"a member account writes the code", vars["org"], "s3:PutObject", objects[0]},
			} {
				if got := ask(tc.org, tc.action, tc.object); got != fakeaws.ImplicitDeny {
					t.Errorf("%s: got %s, want %s", tc.name, got, fakeaws.ImplicitDeny)
				}
			}
		})
	}
}

// codeObjects are the bucket/key of every object the deployment reads from the code
// bucket: each function's zip, and each architecture's agent as the SSM Agent fetches it.
func (d *deployment) codeObjects(t *testing.T) []string {
	t.Helper()
	var out []string
	for _, id := range d.Of("AWS::Lambda::Function") {
		code, err := d.Eval(d.Resources[id].Properties["Code"])
		if err != nil {
			t.Fatal(err)
		}
		c, _ := code.(map[string]any)
		out = append(out, fmt.Sprint(c["S3Bucket"], "/", c["S3Key"]))
	}
	for _, arch := range document.Architectures {
		_, urls := d.planFor(t, arch)
		for _, u := range urls {
			parsed, err := url.Parse(u)
			if err != nil {
				t.Fatal(err)
			}
			out = append(out, strings.TrimPrefix(parsed.Path, "/"))
		}
	}
	if len(out) != 2+len(document.Architectures) {
		t.Fatalf("the template reads %v from the code bucket, want two zips and an agent per architecture", out)
	}
	return out
}

// readmeBlock is the README's fenced block that holds marker.
func readmeBlock(t *testing.T, marker string) string {
	t.Helper()
	parts := strings.Split(readFile(t, "../../README.md"), "```")
	for i := 1; i < len(parts); i += 2 {
		if strings.Contains(parts[i], marker) {
			return parts[i]
		}
	}
	t.Fatalf("no block of the README holds %q", marker)
	return ""
}

// assignment is one shell variable assignment, name=value, with no quoting or expansion.
var assignment = regexp.MustCompile(`^([A-Za-z_][A-Za-z0-9_]*)=([^\s'"$]+)$`)

// shellAssignments are the plain assignments of the block's lines made of nothing else.
func shellAssignments(block string) map[string]string {
	vars := map[string]string{}
	for _, line := range strings.Split(block, "\n") {
		fields := strings.Fields(line)
		ok := len(fields) > 0
		for _, f := range fields {
			ok = ok && assignment.MatchString(f)
		}
		if !ok {
			continue
		}
		for _, f := range fields {
			m := assignment.FindStringSubmatch(f)
			vars[m[1]] = m[2]
		}
	}
	return vars
}

// shellWord expands the first word of s as a POSIX shell does for the forms the README
// uses: 'single-quoted' text as written (newlines included), $name and ${name} from vars
// outside quotes, other characters as they are; the word ends at white space outside
// quotes. A variable vars lacks is an error, not an empty string.
func shellWord(s string, vars map[string]string) (string, error) {
	name := regexp.MustCompile(`^\$(?:\{([A-Za-z_][A-Za-z0-9_]*)\}|([A-Za-z_][A-Za-z0-9_]*))`)
	var b strings.Builder
	for len(s) > 0 {
		switch {
		case s[0] == '\'':
			end := strings.IndexByte(s[1:], '\'')
			if end < 0 {
				return "", fmt.Errorf("unclosed ' in %q", s)
			}
			b.WriteString(s[1 : 1+end])
			s = s[2+end:]
		case s[0] == '$':
			m := name.FindStringSubmatch(s)
			if m == nil {
				return "", fmt.Errorf("an expansion the README should not need: %.20q", s)
			}
			v, ok := vars[m[1]+m[2]]
			if !ok {
				return "", fmt.Errorf("$%s is not set", m[1]+m[2])
			}
			b.WriteString(v)
			s = s[len(m[0]):]
		case strings.ContainsRune(" \t\n", rune(s[0])):
			return b.String(), nil
		case s[0] == '"' || s[0] == '\\':
			return "", fmt.Errorf("quoting the README should not need: %.20q", s)
		default:
			b.WriteByte(s[0])
			s = s[1:]
		}
	}
	return b.String(), nil
}
