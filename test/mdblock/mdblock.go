// Package mdblock reads the fenced code blocks and the inline code spans of a Markdown
// file, for the tests that hold the docs' examples to what reads or runs them (test/docs,
// test/kubedocs).
package mdblock

import (
	"bufio"
	"fmt"
	"os"
	"regexp"
	"strings"
)

// Block is one fenced block: its info string (```sh gives "sh"), the line of its first
// text line, and its text.
type Block struct {
	File string
	Line int
	Info string
	Text string
}

// Span is an inline code span outside the fenced blocks: `make test` gives "make test".
type Span struct {
	File string
	Line int
	Text string
}

var span = regexp.MustCompile("`([^`]+)`")

// Read reads the fenced blocks of the Markdown file at path. A fence may be indented (in a
// list), and its block's lines lose as much indentation; a block closes at a fence with no
// info string, as CommonMark has it.
func Read(path string) ([]Block, error) {
	blocks, _, err := read(path)
	return blocks, err
}

// Spans reads the inline code spans of the Markdown file at path, each within one line.
func Spans(path string) ([]Span, error) {
	_, spans, err := read(path)
	return spans, err
}

func read(path string) ([]Block, []Span, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, nil, fmt.Errorf("reading the docs: %w", err)
	}
	defer f.Close()
	var blocks []Block
	var spans []Span
	var open *Block
	var text strings.Builder
	indent := 0
	sc := bufio.NewScanner(f)
	for n := 1; sc.Scan(); n++ {
		line := sc.Text()
		fence, isFence := strings.CutPrefix(strings.TrimSpace(line), "```")
		switch {
		case isFence && open == nil:
			open = &Block{File: path, Line: n + 1, Info: strings.TrimSpace(fence)}
			indent = len(line) - len(strings.TrimLeft(line, " "))
			text.Reset()
		case isFence && strings.Trim(fence, "`") == "":
			open.Text = text.String()
			blocks = append(blocks, *open)
			open = nil
		case open != nil:
			text.WriteString(dedent(line, indent) + "\n")
		default:
			for _, m := range span.FindAllStringSubmatch(line, -1) {
				spans = append(spans, Span{File: path, Line: n, Text: m[1]})
			}
		}
	}
	if err := sc.Err(); err != nil {
		return nil, nil, fmt.Errorf("reading %s: %w", path, err)
	}
	if open != nil {
		return nil, nil, fmt.Errorf("%s:%d: a fenced block that is never closed", path, open.Line-1)
	}
	return blocks, spans, nil
}

// dedent removes up to n leading spaces from line.
func dedent(line string, n int) string {
	for i := 0; i < n && strings.HasPrefix(line, " "); i++ {
		line = line[1:]
	}
	return line
}
