package docs

import (
	"bytes"
	"context"
	"fmt"
	"regexp"
	"strings"
	"testing"
	"unicode"

	agentcli "github.com/storecrypt/storecrypt/instance-agent/cli"
	"github.com/storecrypt/storecrypt/internal/opcli"
	"github.com/storecrypt/storecrypt/test/mdblock"
)

var (
	flagName = regexp.MustCompile(`--[a-z][a-z0-9-]*`)
	// elided marks a word the prose leaves out: aws kms encrypt ..., …stack-set…
	elided = regexp.MustCompile(`\.\.\.|…`)
)

// inline reads a span of prose (`storecrypt rerun --targets`, `make test`, a synopsis such
// as `storecrypt report --since --until [--output csv|json|html]`) as the program it names,
// the words that name its command, and the flags it mentions. ok is false where the span
// names no checked program, only the program (`aws`), or is an event's name
// (`storecrypt Instance Blocked`).
func inline(s mdblock.Span) (name string, words, flags []string, ok bool) {
	text, _, _ := strings.Cut(strings.ReplaceAll(s.Text, `\|`, "|"), " | ") // up to a pipe
	name, args := resolve(strings.Fields(text))
	if p, known := programs[name]; !known || p.check == nil || len(args) < 2 {
		return "", nil, nil, false
	}
	if r := []rune(args[1]); unicode.IsUpper(r[0]) {
		return "", nil, nil, false
	}
	for _, w := range args[1:] {
		if strings.HasPrefix(w, "-") || strings.ContainsAny(w, "[<|=") || elided.MatchString(w) {
			break
		}
		words = append(words, w)
	}
	return name, words, flagName.FindAllString(text, -1), true
}

// checkInline checks that the command a span names exists and has each flag it mentions.
// Values and the order of words are the prose's own: only names are checked.
func checkInline(s mdblock.Span) error {
	name, words, flags, ok := inline(s)
	if !ok {
		return nil
	}
	var err error
	switch name {
	case "storecrypt":
		err = storecryptNames(words, flags)
	case "storecrypt-agent":
		err = agentNames(words, flags)
	case "aws":
		if len(words) == 1 { // aws cloudformation …stack-set…: the prose names the service alone
			_, err = awsService(words[0])
		} else {
			err = checkAWS(append(append([]string{name}, words...), flags...))
		}
	default:
		// make and cdk read names alone as well as whole lines.
		err = programs[name].check(append(append([]string{name}, words...), flags...))
	}
	if err != nil {
		return fmt.Errorf("%s:%d: `%s`: %w", s.File, s.Line, s.Text, err)
	}
	return nil
}

func storecryptNames(words, flags []string) error {
	cmd, rest, err := opcli.Command().Find(words)
	if err != nil {
		return err
	}
	if len(rest) > 0 {
		return fmt.Errorf("%s has no command %q", cmd.CommandPath(), rest[0])
	}
	for _, f := range flags {
		name := strings.TrimPrefix(f, "--")
		if cmd.Flags().Lookup(name) == nil && cmd.InheritedFlags().Lookup(name) == nil {
			return fmt.Errorf("%s has no flag %s", cmd.CommandPath(), f)
		}
	}
	return nil
}

var agentFlag = regexp.MustCompile(`(?m)^  (--[a-z][a-z0-9-]*)`)

// agentNames: the command is one the agent's help lists, and each flag one its help shows.
func agentNames(words, flags []string) error {
	if len(words) != 1 {
		return fmt.Errorf("want storecrypt-agent <command>, got %q", words)
	}
	var out, errOut bytes.Buffer
	if code := agentcli.Main(context.Background(), []string{words[0], "--help"}, &out, &errOut, nil); code != 0 {
		first, _, _ := strings.Cut(errOut.String(), "\n")
		return fmt.Errorf("the agent refuses it (exit %d): %s", code, first)
	}
	have := map[string]bool{"--help": true}
	for _, m := range agentFlag.FindAllStringSubmatch(out.String(), -1) {
		have[m[1]] = true
	}
	for _, f := range flags {
		if !have[f] {
			return fmt.Errorf("storecrypt-agent %s has no flag %s", words[0], f)
		}
	}
	return nil
}

// TestDocumentedInlineCommands: every command the prose of the README and docs/ names in
// a code span (`storecrypt rerun --targets`, `make integ`, `aws sts get-session-token`)
// exists, with the flags it mentions.
func TestDocumentedInlineCommands(t *testing.T) {
	found := 0
	for _, path := range docs(t) {
		spans, err := mdblock.Spans(path)
		if err != nil {
			t.Fatal(err)
		}
		for _, s := range spans {
			if _, _, _, ok := inline(s); ok {
				found++
			}
			if err := checkInline(s); err != nil {
				t.Error(err)
			}
		}
	}
	if found == 0 {
		t.Fatal("no command found in the prose of the README or docs/: the test reads nothing")
	}
	t.Logf("%d commands in code spans", found)
}
