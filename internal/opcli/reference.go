package opcli

import (
	"fmt"
	"io"
	"strings"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
)

//go:generate go test -run TestReference -update .

// ReferencePath is where WriteReference's output is kept, from the module's root.
const ReferencePath = "docs/cli.md"

// Command is storecrypt's command tree as Main builds it, with the help and completion
// commands and the --help flags cobra adds only when it runs: what docs/cli.md is written
// from and what the docs' command lines are checked against. It runs nothing.
func Command() *cobra.Command {
	root := newRoot(strings.NewReader(""), io.Discard, io.Discard, nil)
	root.InitDefaultHelpCmd()
	root.InitDefaultCompletionCmd()
	var help func(*cobra.Command)
	help = func(c *cobra.Command) {
		c.InitDefaultHelpFlag()
		for _, sub := range c.Commands() {
			help(sub)
		}
	}
	help(root)
	return root
}

// WriteReference writes docs/cli.md: an index, the global flags, then a section per command
// with its usage line, its description and a table of its own flags. It is written from
// the cobra tree rather than by hand because a hand-kept copy of --help drifts (the README's
// apply --help once listed two layouts where the binary had three).
func WriteReference(w io.Writer) error {
	root := Command()
	var cmds []*cobra.Command
	var walk func(*cobra.Command)
	walk = func(c *cobra.Command) {
		for _, sub := range c.Commands() {
			// help is cobra's, shown in every usage; hidden commands are not for users.
			if sub.IsAvailableCommand() {
				cmds = append(cmds, sub)
				walk(sub)
			}
		}
	}
	walk(root)

	b := &strings.Builder{}
	fmt.Fprintf(b, "# storecrypt command reference\n\n")
	fmt.Fprintf(b, "<!-- Generated from the CLI's cobra commands by `go generate ./internal/opcli`; TestReference fails when it differs. Do not edit. -->\n\n")
	fmt.Fprintf(b, "%s\n\n", root.Long)
	fmt.Fprintf(b, "```text\n%s\n```\n\n", usageLines(root))
	fmt.Fprintf(b, "| command | what it does |\n| --- | --- |\n")
	for _, c := range cmds {
		fmt.Fprintf(b, "| [%s](#%s) | %s |\n", c.CommandPath(), anchor(c.CommandPath()), cell(c.Short))
	}
	fmt.Fprintf(b, "\n## Global flags\n\nEvery command takes these, before or after its name, and -h, --help.\n")
	flagTable(b, root.PersistentFlags())
	fmt.Fprintf(b, "\n%s alone takes:\n", root.Name())
	flagTable(b, root.LocalNonPersistentFlags())
	for _, c := range cmds {
		fmt.Fprintf(b, "\n## %s\n\n%s\n\n```text\n%s\n```\n", c.CommandPath(), description(c), usageLines(c))
		if c.Example != "" {
			fmt.Fprintf(b, "\nExamples:\n\n```sh\n%s\n```\n", strings.TrimSpace(c.Example))
		}
		flagTable(b, c.LocalFlags())
		if c.HasAvailableInheritedFlags() {
			fmt.Fprintf(b, "\nAnd the [global flags](#global-flags).\n")
		}
	}
	_, err := io.WriteString(w, b.String())
	return err
}

// description is c's Long as Markdown. cobra's completion commands indent their shell
// lines with tabs and head paragraphs with "#### Linux:": that text is kept as it is.
func description(c *cobra.Command) string {
	long := strings.TrimSpace(c.Long)
	if strings.Contains(long, "\n\t") {
		return "```text\n" + long + "\n```"
	}
	return long
}

// usageLines is how c is invoked: its own line when it runs, and a line for its commands.
func usageLines(c *cobra.Command) string {
	var lines []string
	if c.Runnable() {
		lines = append(lines, c.UseLine())
	}
	if c.HasAvailableSubCommands() {
		lines = append(lines, c.CommandPath()+" [command]")
	}
	return strings.Join(lines, "\n")
}

// flagTable writes a table of fs's flags; nothing when it has none but --help.
func flagTable(b *strings.Builder, fs *pflag.FlagSet) {
	var rows []string
	fs.VisitAll(func(f *pflag.Flag) {
		// --help is on every command; the global flags' heading says so once.
		if f.Hidden || f.Name == "help" {
			return
		}
		name, usage := pflag.UnquoteUsage(f)
		spelled := "--" + f.Name
		if f.Shorthand != "" {
			spelled = "-" + f.Shorthand + ", " + spelled
		}
		if name != "" {
			spelled += " " + name
		}
		rows = append(rows, fmt.Sprintf("| `%s` | %s | %s |\n", spelled, defaultOf(f), cell(usage)))
	})
	if len(rows) > 0 {
		fmt.Fprintf(b, "\n| flag | default | what it does |\n| --- | --- | --- |\n%s", strings.Join(rows, ""))
	}
}

// defaultOf is f's default as a reader types it, or nothing where the default is the
// type's zero value (most defaults here come from the stack and are said in the usage).
func defaultOf(f *pflag.Flag) string {
	switch f.DefValue {
	case "", "false", "0", "0s", "[]":
		return ""
	}
	return "`" + f.DefValue + "`"
}

// cell keeps text inside one Markdown table cell.
func cell(s string) string {
	return strings.ReplaceAll(strings.ReplaceAll(s, "|", `\|`), "\n", " ")
}

// anchor is the fragment GitHub gives a heading: lower case, spaces as dashes.
func anchor(heading string) string {
	return strings.ReplaceAll(strings.ToLower(heading), " ", "-")
}
