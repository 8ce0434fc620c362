package doclinks

import (
	"fmt"
	"os"
	"path"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"unicode"
)

const root = "../.."

// link is a Markdown inline link or image, [text](target) or ![alt](target); a target
// holds no space or closing parenthesis in these pages.
var link = regexp.MustCompile(`\]\(([^)\s]+)\)`)

// codeSpan is an inline code span, whose text is not Markdown.
var codeSpan = regexp.MustCompile("`[^`]*`")

// pages are README.md and every page of docs/ under root, as paths from root.
func pages(root string) ([]string, error) {
	docs, err := filepath.Glob(filepath.Join(root, "docs", "*.md"))
	if err != nil {
		return nil, fmt.Errorf("listing docs/: %w", err)
	}
	out := []string{"README.md"}
	for _, d := range docs {
		out = append(out, "docs/"+filepath.Base(d))
	}
	return out, nil
}

func read(root, page string) (string, error) {
	b, err := os.ReadFile(filepath.Join(root, filepath.FromSlash(page)))
	if err != nil {
		return "", fmt.Errorf("reading a page: %w", err)
	}
	return string(b), nil
}

// prose returns the lines of a Markdown page outside fenced code blocks: those GitHub
// renders as links and headings.
func prose(text string) []string {
	var out []string
	fenced := false
	for _, line := range strings.Split(text, "\n") {
		if strings.HasPrefix(strings.TrimSpace(line), "```") {
			fenced = !fenced
			continue
		}
		if !fenced {
			out = append(out, line)
		}
	}
	return out
}

// links are the relative targets a page links to, in order.
func links(text string) []string {
	var out []string
	for _, line := range prose(text) {
		for _, m := range link.FindAllStringSubmatch(codeSpan.ReplaceAllString(line, ""), -1) {
			if target := m[1]; !strings.Contains(target, "://") && !strings.HasPrefix(target, "mailto:") {
				out = append(out, target)
			}
		}
	}
	return out
}

// anchors are the fragment ids GitHub gives a page's headings: the heading's text in
// lower case, every character but letters, digits, spaces, '-' and '_' dropped (code
// spans keep their text, losing the backticks), each space made '-'; a repeated id takes
// -1, -2, ... in order.
func anchors(text string) map[string]bool {
	out := map[string]bool{}
	seen := map[string]int{}
	for _, line := range prose(text) {
		level := len(line) - len(strings.TrimLeft(line, "#"))
		if level == 0 || level > 6 || !strings.HasPrefix(line[level:], " ") {
			continue
		}
		var b strings.Builder
		for _, r := range strings.ToLower(strings.TrimSpace(line[level:])) {
			switch {
			case r == ' ':
				b.WriteRune('-')
			case unicode.IsLetter(r), unicode.IsDigit(r), r == '-', r == '_':
				b.WriteRune(r)
			}
		}
		id := b.String()
		if n := seen[id]; n > 0 {
			id = fmt.Sprintf("%s-%d", id, n)
		}
		seen[b.String()]++
		out[id] = true
	}
	return out
}

// brokenLinks are page's relative links, with why, that lead nowhere: to no file or
// directory under root, or to an #anchor that no heading of the target page has.
func brokenLinks(root, page string) ([]string, error) {
	text, err := read(root, page)
	if err != nil {
		return nil, err
	}
	var broken []string
	for _, target := range links(text) {
		file, anchor, _ := strings.Cut(target, "#")
		dest := page
		if file != "" {
			dest = path.Join(path.Dir(page), file)
			if _, err := os.Stat(filepath.Join(root, filepath.FromSlash(dest))); err != nil {
				broken = append(broken, target+": no such file")
				continue
			}
		}
		if anchor == "" {
			continue
		}
		if !strings.HasSuffix(dest, ".md") {
			broken = append(broken, target+": an anchor into a page that is not Markdown")
			continue
		}
		destText, err := read(root, dest)
		if err != nil {
			return nil, err
		}
		if !anchors(destText)[anchor] {
			broken = append(broken, target+": no such heading")
		}
	}
	return broken, nil
}

// unlinked are the pages of docs/ that README.md does not link.
func unlinked(root string) ([]string, error) {
	all, err := pages(root)
	if err != nil {
		return nil, err
	}
	readme, err := read(root, "README.md")
	if err != nil {
		return nil, err
	}
	linked := map[string]bool{}
	for _, target := range links(readme) {
		file, _, _ := strings.Cut(target, "#")
		linked[path.Clean(file)] = true
	}
	var out []string
	for _, page := range all[1:] {
		if !linked[page] {
			out = append(out, page)
		}
	}
	return out, nil
}

// TestLinksResolve follows every relative link of README.md and docs/*.md: its file (or
// directory) exists, and its #anchor, if any, is a heading of that page.
func TestLinksResolve(t *testing.T) {
	all, err := pages(root)
	if err != nil {
		t.Fatal(err)
	}
	for _, page := range all {
		t.Run(page, func(t *testing.T) {
			broken, err := brokenLinks(root, page)
			if err != nil {
				t.Fatal(err)
			}
			for _, b := range broken {
				t.Errorf("got the link %s, want an existing file and heading", b)
			}
		})
	}
}

// TestReadmeLinksEveryPage: the README is the way into the documentation, so a page of
// docs/ it does not link is a page nobody finds.
func TestReadmeLinksEveryPage(t *testing.T) {
	missing, err := unlinked(root)
	if err != nil {
		t.Fatal(err)
	}
	for _, page := range missing {
		t.Errorf("README.md links %s: got no, want a line for it", page)
	}
}

// TestCheckerFindsBrokenLinks runs the checks on pages written for each way a link can
// lead nowhere, and on links that lead somewhere, so the checks over the real pages
// cannot pass by finding nothing.
func TestCheckerFindsBrokenLinks(t *testing.T) {
	tree := map[string]string{
		"README.md": "# Front\n\n[a](docs/a.md) [b](docs/b.md#top) [self](#front) [gone](docs/gone.md)\n" +
			"[no heading](docs/a.md#nowhere) [dir](docs/examples) [json anchor](docs/examples/x.json#k)\n" +
			"`[in code](docs/gone.md)`\n```\n[in a block](docs/gone.md)\n```\n[web](https://example.com/x.md)\n",
		"docs/a.md":            "# A\n\n[back](../README.md#front) [sibling](b.md#b-heading-1)\n",
		"docs/b.md":            "# Top\n\n## B heading\n\n## B heading\n",
		"docs/unlinked.md":     "# Nobody links here\n",
		"docs/examples/x.json": "{}",
	}
	dir := t.TempDir()
	for name, text := range tree {
		p := filepath.Join(dir, filepath.FromSlash(name))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(text), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	for _, tc := range []struct {
		page string
		want []string
	}{
		{"README.md", []string{"docs/gone.md: no such file", "docs/a.md#nowhere: no such heading",
			"docs/examples/x.json#k: an anchor into a page that is not Markdown"}},
		{"docs/a.md", nil},
	} {
		got, err := brokenLinks(dir, tc.page)
		if err != nil {
			t.Fatal(err)
		}
		if strings.Join(got, "; ") != strings.Join(tc.want, "; ") {
			t.Errorf("%s: got %q, want %q", tc.page, got, tc.want)
		}
	}
	got, err := unlinked(dir)
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"docs/unlinked.md"}; strings.Join(got, ",") != strings.Join(want, ",") {
		t.Errorf("unlinked: got %q, want %q", got, want)
	}
}

// TestAnchors holds the anchor rules to ids GitHub gives headings of these pages.
func TestAnchors(t *testing.T) {
	for _, tc := range []struct{ heading, want string }{
		{"## Boot-time mode: encrypted before the workload starts", "boot-time-mode-encrypted-before-the-workload-starts"},
		{"## Roll out to an organization: a release, `storecrypt stage` and a StackSet", "roll-out-to-an-organization-a-release-storecrypt-stage-and-a-stackset"},
		{"### Directories onto the volume: `--bind-dirs`", "directories-onto-the-volume---bind-dirs"},
		{"## 6. Changes from the original design", "6-changes-from-the-original-design"},
		{"## Limits\n\n## Limits", "limits-1"},
		{"```\n# a shell comment\n```", ""},
	} {
		got := anchors(tc.heading)
		if tc.want == "" {
			if len(got) != 0 {
				t.Errorf("%q: got %v, want no heading", tc.heading, got)
			}
			continue
		}
		if !got[tc.want] {
			t.Errorf("%q: got %v, want %s", tc.heading, got, tc.want)
		}
	}
}
