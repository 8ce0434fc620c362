package docs

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"

	agentcli "github.com/storecrypt/storecrypt/instance-agent/cli"
	"github.com/storecrypt/storecrypt/internal/modroot"
	"github.com/storecrypt/storecrypt/internal/opcli"
)

// program is how the test treats one program the docs run: check says whether a command
// line is one the program takes; where check is nil, why says why it is not checked here.
type program struct {
	check func(args []string) error
	why   string
}

// programs are every program the docs' shell blocks run, by base name. A block that runs
// one not listed fails the test: add it, checked or with the reason it is not.
var programs = map[string]program{
	"storecrypt":       {check: checkStorecrypt},
	"storecrypt-agent": {check: checkAgent},
	"aws":              {check: checkAWS},
	"make":             {check: checkMake},
	"cdk":              {check: checkCDK},
	"synth-time.sh":    {check: checkRepoScript},

	"cd":        {why: "a shell builtin"},
	"echo":      {why: "a shell builtin"},
	"set":       {why: "a shell builtin"},
	"date":      {why: "coreutils, with its usual flags"},
	"install":   {why: "coreutils, with its usual flags"},
	"sha256sum": {why: "coreutils, with its usual flags"},
	"gzip":      {why: "gzip, with its usual flags"},
	"tar":       {why: "tar, with its usual flags"},
	"npm":       {why: "npm's own CLI: the TypeScript example's install, run by make test (TestTypeScriptApp)"},
}

// releaseBinary is the CLI as make release names it in bin/: storecrypt-<os>-<arch>.
var releaseBinary = regexp.MustCompile(`^storecrypt-(linux|darwin)-(amd64|arm64)$`)

// resolve is the program a command line runs and its words from the program's name on:
// sudo and npx are looked through, a path is its base name, a release binary is storecrypt.
func resolve(args []string) (string, []string) {
	for len(args) > 0 {
		name := filepath.Base(args[0])
		switch {
		case name == "sudo":
			args = args[1:]
			for len(args) > 0 && strings.HasPrefix(args[0], "-") {
				args = args[1:]
			}
		case name == "npx" && len(args) > 1:
			// npx aws-cdk@2.x deploy is the CDK CLI's cdk deploy.
			if pkg, _, _ := strings.Cut(args[1], "@"); pkg == "aws-cdk" {
				return "cdk", append([]string{"cdk"}, args[2:]...)
			}
			args = args[1:]
		case releaseBinary.MatchString(name):
			return "storecrypt", args
		default:
			return name, args
		}
	}
	return "", nil
}

// known says whether the table knows the program args run.
func known(args []string) bool {
	name, _ := resolve(args)
	_, ok := programs[name]
	return ok
}

// check checks one command line against its program.
func check(c commandLine) error {
	name, args := resolve(c.args)
	p, ok := programs[name]
	switch {
	case !ok:
		return fmt.Errorf("%v: %q is not in the programs table: check it there, or say why not", c, name)
	case p.check == nil:
		return nil
	}
	if err := p.check(args); err != nil {
		return fmt.Errorf("%v: %w", c, err)
	}
	return nil
}

// checkStorecrypt parses the line with the CLI's own command tree: the command must exist,
// every flag be the command's or a global one, with a value its type takes, and no
// argument be left over where the command takes none.
func checkStorecrypt(args []string) error {
	root := opcli.Command()
	cmd, rest, err := root.Find(args[1:])
	if err != nil {
		return err
	}
	if err := cmd.ParseFlags(rest); err != nil {
		return fmt.Errorf("storecrypt %s: %w", cmd.Name(), err)
	}
	positional := cmd.Flags().Args()
	if !cmd.Runnable() && len(positional) > 0 {
		return fmt.Errorf("%s has no command %q", cmd.CommandPath(), positional[0])
	}
	if err := cmd.ValidateArgs(positional); err != nil {
		return fmt.Errorf("%s: %w", cmd.CommandPath(), err)
	}
	return nil
}

// checkAgent parses the line with the agent's own flags: the line with --help added is
// what the agent reads without running, and it exits 0 only when every flag before it is
// one the command has, with a value its type takes, and no argument is left over.
func checkAgent(args []string) error {
	var stdout, stderr bytes.Buffer
	if code := agentcli.Main(context.Background(), append(slices.Clone(args[1:]), "--help"), &stdout, &stderr, nil); code != 0 {
		first, _, _ := strings.Cut(stderr.String(), "\n")
		return fmt.Errorf("the agent refuses it (exit %d): %s", code, first)
	}
	return nil
}

// checkMake: every word that is not an option or a variable assignment is a target of the
// Makefile.
func checkMake(args []string) error {
	targets, err := makeTargets()
	if err != nil {
		return err
	}
	for _, a := range args[1:] {
		if strings.HasPrefix(a, "-") || strings.Contains(a, "=") {
			continue
		}
		if !targets[a] {
			return fmt.Errorf("the Makefile has no target %q", a)
		}
	}
	return nil
}

// checkRepoScript: a script of the repository, run by its path from the root, is there
// and executable, as the line runs it.
func checkRepoScript(args []string) error {
	root, err := modroot.Dir()
	if err != nil {
		return err
	}
	st, err := os.Stat(filepath.Join(root, args[0]))
	if err != nil {
		return err
	}
	if st.Mode()&0o111 == 0 {
		return fmt.Errorf("%s is not executable (mode %v)", args[0], st.Mode())
	}
	return nil
}

var makeRule = regexp.MustCompile(`^([A-Za-z0-9_./ -]+?)\s*:($|[^=])`)

// makeTargets are the targets the Makefile's rules name.
func makeTargets() (map[string]bool, error) {
	root, err := modroot.Dir()
	if err != nil {
		return nil, err
	}
	f, err := os.Open(filepath.Join(root, "Makefile"))
	if err != nil {
		return nil, fmt.Errorf("reading the Makefile: %w", err)
	}
	defer f.Close()
	targets := map[string]bool{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if m := makeRule.FindStringSubmatch(sc.Text()); m != nil {
			for _, t := range strings.Fields(m[1]) {
				targets[t] = true
			}
		}
	}
	return targets, sc.Err()
}

// cdkCommands are the CDK CLI's commands and their aliases, from its reference
// (docs.aws.amazon.com/cdk/v2/guide/ref-cli-cmd.html). Their options vary with the CLI's
// version, which the team picks: only the command is checked.
var cdkCommands = map[string]bool{
	"acknowledge": true, "ack": true, "bootstrap": true, "context": true, "deploy": true,
	"destroy": true, "diff": true, "docs": true, "doc": true, "doctor": true, "drift": true,
	"flags": true, "gc": true, "import": true, "init": true, "list": true, "ls": true,
	"metadata": true, "migrate": true, "notices": true, "refactor": true, "rollback": true,
	"synthesize": true, "synth": true, "watch": true,
}

// cdkValued are the CDK CLI's global options that take a value, so that the command is
// the first word after them.
var cdkValued = map[string]bool{"-a": true, "--app": true, "-c": true, "--context": true, "-o": true, "--output": true, "--profile": true}

func checkCDK(args []string) error {
	for i := 1; i < len(args); i++ {
		a := args[i]
		switch {
		case cdkValued[a]:
			i++
		case strings.HasPrefix(a, "-"):
		case cdkCommands[a]:
			return nil
		default:
			return fmt.Errorf("the CDK CLI has no command %q", a)
		}
	}
	return errors.New("no CDK command")
}
