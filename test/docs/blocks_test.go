package docs

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"regexp"
	"strings"

	"mvdan.cc/sh/v3/syntax"

	agentcli "github.com/storecrypt/storecrypt/instance-agent/cli"
	"github.com/storecrypt/storecrypt/test/mdblock"
)

// commandLine is one simple command in a block: the words as written (quotes kept where a
// word is not a plain literal), at file:line.
type commandLine struct {
	file string
	line int
	args []string
}

func (c commandLine) String() string {
	return fmt.Sprintf("%s:%d: %s", c.file, c.line, strings.Join(c.args, " "))
}

// shellInfo are the info strings of blocks that hold shell; console holds a session, the
// commands after a `$ ` prompt.
var shellInfo = map[string]bool{"sh": true, "bash": true, "shell": true, "console": true}

var (
	prompt      = regexp.MustCompile(`(?m)^\$ `)
	placeholder = regexp.MustCompile(`<[A-Za-z][^<>\s'"]*>`)
)

// agentHelpFirstLine is the first line of storecrypt-agent --help.
func agentHelpFirstLine() string {
	var out bytes.Buffer
	agentcli.Main(context.Background(), []string{"--help"}, &out, io.Discard, nil)
	first, _, _ := strings.Cut(out.String(), "\n")
	return first
}

// commands finds the command lines of b. A block is shell when its info string says so,
// or, untagged, when it holds `$ ` prompts or its first command is a program the table
// knows (a script shown bare); anything else untagged (output, a file listing, help text)
// holds no commands. In a session only the prompted lines and their `\` continuations are
// commands; the rest is output. Each stage of a pipeline, each command in a $(...), a loop
// or a list is a line of its own.
func commands(b mdblock.Block) ([]commandLine, error) {
	if b.Info != "" && !shellInfo[b.Info] {
		return nil, nil
	}
	if b.Info == "" && strings.HasPrefix(b.Text, agentHelpFirstLine()) {
		return nil, nil // the agent's --help: TestDocumentedHelp holds it to the binary's
	}
	// <bucket> is a placeholder to a reader, two redirections to the shell.
	text := placeholder.ReplaceAllString(b.Text, "'$0'")
	session := prompt.MatchString(text)
	if session {
		text = promptedOnly(text)
	}
	f, err := syntax.NewParser(syntax.Variant(syntax.LangBash)).Parse(strings.NewReader(text), b.File)
	if err != nil {
		if b.Info == "" && !session {
			return nil, nil // untagged text that is not shell
		}
		var pe syntax.ParseError
		if errors.As(err, &pe) {
			return nil, fmt.Errorf("%s:%d: not shell: %s", b.File, b.Line+int(pe.Pos.Line())-1, pe.Text)
		}
		return nil, fmt.Errorf("%s:%d: not shell: %w", b.File, b.Line, err)
	}
	var lines []commandLine
	syntax.Walk(f, func(n syntax.Node) bool {
		call, ok := n.(*syntax.CallExpr)
		if !ok || len(call.Args) == 0 {
			return true
		}
		c := commandLine{file: b.File, line: b.Line + int(call.Args[0].Pos().Line()) - 1}
		for _, w := range call.Args {
			c.args = append(c.args, wordText(w))
		}
		lines = append(lines, c)
		return true
	})
	if b.Info == "" && !session && (len(lines) == 0 || !known(lines[0].args)) {
		return nil, nil
	}
	return lines, nil
}

// promptedOnly blanks every line of a session but the prompted ones and their `\`
// continuations, keeping the line numbers.
func promptedOnly(text string) string {
	lines := strings.Split(text, "\n")
	continued := false
	for i, l := range lines {
		switch {
		case strings.HasPrefix(l, "$ "):
			lines[i] = "  " + l[2:]
		case !continued:
			lines[i] = ""
		}
		continued = (strings.HasPrefix(l, "$ ") || continued) && strings.HasSuffix(l, `\`)
	}
	return strings.Join(lines, "\n")
}

// wordText is a word as written: a plain literal as it is, anything else (quotes,
// expansions) as the shell source prints it.
func wordText(w *syntax.Word) string {
	if lit := w.Lit(); lit != "" {
		return lit
	}
	var b strings.Builder
	if err := syntax.NewPrinter().Print(&b, w); err != nil {
		return fmt.Sprintf("%v", w)
	}
	return b.String()
}
