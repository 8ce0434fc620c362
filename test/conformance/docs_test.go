package conformance

import (
	"context"
	"fmt"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/storecrypt/storecrypt/infra/publish"
	"github.com/storecrypt/storecrypt/internal/document"
	"github.com/storecrypt/storecrypt/internal/fakeaws"
	"github.com/storecrypt/storecrypt/internal/release"
	"github.com/storecrypt/storecrypt/test/cfn"
	"github.com/storecrypt/storecrypt/test/iamsim"
)

// TestStagedBucketPolicy judges the code buckets' policy `storecrypt stage` puts, in
// every partition, with the fake's evaluator and iam-simulate: a principal of the organization reads every
// object the published template reads (the functions' zips, the agents) under the
// template's CodePrefix default, and nothing else: no principal outside the organization,
// no object outside the prefix, no write.
func TestStagedBucketPolicy(t *testing.T) {
	prefix := fmt.Sprint(templates[stackSetTemplate].Parameters["CodePrefix"].Default)
	const org = "o-exampleorgid"
	for _, env := range cfn.Partitions {
		t.Run(env.Partition, func(t *testing.T) {
			d := deployVariant(t, stackSetTemplate, env)
			objects := d.codeObjects(t)
			bucket := strings.SplitN(objects[0], "/", 2)[0]
			if want := release.Bucket(fmt.Sprint(templates[stackSetTemplate].Parameters["CodeBucketPrefix"].Default), env.Region); bucket != want {
				t.Fatalf("the template reads bucket %s, want the one stage writes, %s", bucket, want)
			}
			policy := release.BucketPolicy(release.Partition(env.Region), bucket, prefix, org)
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
				if got := ask(org, "s3:GetObject", o); got != fakeaws.Allow {
					t.Errorf("a member account reads %s: got %s, want %s", o, got, fakeaws.Allow)
				}
			}
			denied := []struct{ name, org, action, object string }{
				{"a principal outside the organization reads the code", "o-otherorgid", "s3:GetObject", objects[0]},
				{"a member account reads an object outside the prefix", org, "s3:GetObject", bucket + "/other/secret"},
				{"a member account writes the code", org, "s3:PutObject", objects[0]},
			}
			for _, tc := range denied {
				if got := ask(tc.org, tc.action, tc.object); got != fakeaws.ImplicitDeny {
					t.Errorf("%s: got %s, want %s", tc.name, got, fakeaws.ImplicitDeny)
				}
			}
			// The second evaluator on the same requests: the member's read of the code
			// allowed, the three others denied.
			reqs := []iamsim.Request{{Principal: member, Action: "s3:GetObject", Resource: "arn:" + env.Partition + ":s3:::" + objects[0],
				ResourcePolicy: policy, Context: map[string][]string{"aws:PrincipalOrgID": {org}}}}
			for _, tc := range denied {
				reqs = append(reqs, iamsim.Request{Principal: member, Action: tc.action, Resource: "arn:" + env.Partition + ":s3:::" + tc.object,
					ResourcePolicy: policy, Context: map[string][]string{"aws:PrincipalOrgID": {tc.org}}})
			}
			verdicts, err := iamsim.Evaluate(context.Background(), reqs)
			if err != nil {
				t.Fatal(err)
			}
			for i, v := range verdicts {
				want := iamsim.ImplicitlyDenied
				if i == 0 {
					want = iamsim.Allowed
				}
				if v != want {
					t.Errorf("iam-simulate, %s on %s by org %s: got %s, want %s", reqs[i].Action, reqs[i].Resource, reqs[i].Context["aws:PrincipalOrgID"][0], v, want)
				}
			}
		})
	}
}

// TestOrganizationCommands reads each page's organization lines as a shell would: every
// StackSet command runs as the delegated administrator (--call-as DELEGATED_ADMIN), every
// parameter it names is one of the published template's, the bucket and prefix it gives
// the StackSet are the ones `storecrypt stage` wrote, and the template URL is the
// staged template in the home region's bucket. The README's short version is held to the
// same rules as the full one, so the front door cannot drift from the page it points to.
func TestOrganizationCommands(t *testing.T) {
	for _, tc := range []struct {
		doc       string
		stackSets []string
	}{
		{"README.md", []string{"create-stack-set", "create-stack-instances"}},
		{organizationsDoc, []string{"create-stack-set", "create-stack-instances", "update-stack-set"}},
	} {
		t.Run(tc.doc, func(t *testing.T) {
			checkOrganizationBlock(t, tc.doc, docBlock(t, tc.doc, " stage --release"), tc.stackSets)
		})
	}
}

// checkOrganizationBlock holds one block of doc to TestOrganizationCommands' rules; it
// must run each of the StackSet commands want.
func checkOrganizationBlock(t *testing.T, doc, block string, want []string) {
	t.Helper()
	vars := map[string]string{}
	var commands [][]string
	for _, line := range strings.Split(strings.ReplaceAll(block, "\\\n", " "), "\n") {
		line, _, _ = strings.Cut(line, "#")
		for k, v := range shellAssignments(line) {
			vars[k] = v
		}
		if fields := strings.Fields(line); len(fields) > 0 {
			commands = append(commands, fields)
		}
	}
	flag := func(cmd []string, name string) []string {
		for i, f := range cmd {
			if f == name {
				var out []string
				for _, v := range cmd[i+1:] {
					if strings.HasPrefix(v, "--") {
						break
					}
					out = append(out, v)
				}
				return out
			}
		}
		return nil
	}
	tpl := templates[stackSetTemplate]
	var stage []string
	ran := map[string]bool{}
	for _, cmd := range commands {
		if strings.HasSuffix(cmd[0], "storecrypt-linux-amd64") && len(cmd) > 1 && cmd[1] == "stage" {
			stage = cmd
		}
	}
	if stage == nil || len(flag(stage, "--bucket-prefix")) != 1 || len(flag(stage, "--prefix")) != 1 || len(flag(stage, "--regions")) != 1 {
		t.Fatalf("%s stages with %v, want --bucket-prefix, --prefix and --regions", doc, stage)
	}
	bucketPrefix, prefix, regions := flag(stage, "--bucket-prefix")[0], flag(stage, "--prefix")[0], strings.Split(flag(stage, "--regions")[0], ",")
	for _, cmd := range commands {
		if len(cmd) < 3 || cmd[0] != "aws" || cmd[1] != "cloudformation" || !strings.Contains(cmd[2], "stack-set") && !strings.Contains(cmd[2], "stack-instances") {
			continue
		}
		ran[cmd[2]] = true
		if got := flag(cmd, "--call-as"); len(got) != 1 || got[0] != "DELEGATED_ADMIN" {
			t.Errorf("aws cloudformation %s: got --call-as %v, want DELEGATED_ADMIN (the section runs from the delegated administrator)", cmd[2], got)
		}
		for _, p := range flag(cmd, "--parameters") {
			fields := map[string]string{}
			for _, kv := range strings.Split(p, ",") {
				k, v, _ := strings.Cut(kv, "=")
				fields[k] = v
			}
			key := fields["ParameterKey"]
			if _, ok := tpl.Parameters[key]; !ok {
				t.Errorf("aws cloudformation %s passes parameter %q, which the published template lacks", cmd[2], key)
			}
			want := map[string]string{"CodeBucketPrefix": bucketPrefix, "CodePrefix": prefix}[key]
			if v, ok := fields["ParameterValue"]; ok && want != "" && v != want {
				t.Errorf("aws cloudformation %s: %s=%s, want %s, as stage staged it", cmd[2], key, v, want)
			}
		}
		if u := flag(cmd, "--template-url"); len(u) == 1 {
			got, err := shellWord(u[0], vars)
			if err != nil {
				t.Fatal(err)
			}
			home := vars["home"]
			want := "https://" + release.Bucket(bucketPrefix, home) + ".s3." + home + "." + vars["domain"] + "/" + prefix + publish.Template
			if got != want || !slices.Contains(regions, home) {
				t.Errorf("aws cloudformation %s --template-url %s, want %s, the template stage put in the home region (%s, staged: %v)", cmd[2], got, want, home, regions)
			}
		}
	}
	for _, c := range want {
		if !ran[c] {
			t.Errorf("%s runs no aws cloudformation %s, want %v at least", doc, c, want)
		}
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

// docBlock is the fenced block of doc (a path from the module root) that holds marker.
func docBlock(t *testing.T, doc, marker string) string {
	t.Helper()
	parts := strings.Split(readFile(t, "../../"+doc), "```")
	for i := 1; i < len(parts); i += 2 {
		if strings.Contains(parts[i], marker) {
			return parts[i]
		}
	}
	t.Fatalf("no block of %s holds %q", doc, marker)
	return ""
}

// organizationsDoc is the page that holds the organization's commands and policies.
const organizationsDoc = "docs/organizations.md"

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

// shellWord expands the first word of s as a POSIX shell does for the forms the docs
// use: 'single-quoted' text as written (newlines included), $name and ${name} from vars
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
				return "", fmt.Errorf("an expansion the docs should not need: %.20q", s)
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
			return "", fmt.Errorf("quoting the docs should not need: %.20q", s)
		default:
			b.WriteByte(s[0])
			s = s[1:]
		}
	}
	return b.String(), nil
}

// TestDocumentedAlarmTopicPolicy asks the second evaluator (iam-simulate) about the
// central alarm topic's policy as docs/organizations.md's lines write it: CloudWatch
// publishes for an account of the organization, and neither for another organization nor
// as anyone else.
func TestDocumentedAlarmTopicPolicy(t *testing.T) {
	block := docBlock(t, organizationsDoc, "OrganizationAlarmsPublish")
	_, word, ok := strings.Cut(block, "--attribute-value ")
	if !ok {
		t.Fatalf("%s: set-topic-attributes has no --attribute-value", organizationsDoc)
	}
	vars := shellAssignments(block)
	topic := "arn:aws:sns:eu-west-1:999988887777:storecrypt-alarms"
	policy, err := shellWord(word, map[string]string{"topic": topic, "org": vars["org"]})
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name, principal, org string
		want                 iamsim.Verdict
	}{
		{"CloudWatch for an account of the organization", "cloudwatch.amazonaws.com", vars["org"], iamsim.Allowed},
		{"CloudWatch for another organization", "cloudwatch.amazonaws.com", "o-otherorgid1", iamsim.ImplicitlyDenied},
		{"a role of the organization", "arn:aws:iam::444455556666:role/any", vars["org"], iamsim.ImplicitlyDenied},
	}
	var reqs []iamsim.Request
	for _, c := range cases {
		key := "aws:SourceOrgID"
		if strings.HasPrefix(c.principal, "arn:") {
			key = "aws:PrincipalOrgID"
		}
		reqs = append(reqs, iamsim.Request{Principal: c.principal, Action: "sns:Publish", Resource: topic, ResourcePolicy: policy,
			Context: map[string][]string{key: {c.org}}})
	}
	got, err := iamsim.Evaluate(context.Background(), reqs)
	if err != nil {
		t.Fatal(err)
	}
	for i, c := range cases {
		if got[i] != c.want {
			t.Errorf("%s publishes: got %s, want %s", c.name, got[i], c.want)
		}
	}
}
