package audit

import (
	_ "embed"
	"fmt"
	"html/template"
	"io"
	"math"
	"strings"

	"github.com/storecrypt/storecrypt/internal/ledger"
)

//go:embed report.html.tmpl
var page string

// The page is one self-contained file: styles inline, the chart an inline SVG drawn
// here, no script, nothing fetched. An auditor can open it, print it or attach it.
var tmpl = template.Must(template.New("report").Funcs(template.FuncMap{
	"chart": chart,
	"state": func(it ledger.Item) string {
		switch {
		case it.EncryptedAt != "":
			return "ok"
		case !counted(it):
			return "muted"
		}
		return "bad"
	},
	"seconds": func(s float64) string { return fmt.Sprintf("%gs", math.Round(s*10)/10) },
	"short": func(s string) string {
		if len(s) > 12 {
			return s[:12] + "…"
		}
		return s
	},
}).Parse(page))

// HTML writes the report as one page.
func (r Report) HTML(w io.Writer) error {
	return OrgReport{Report: r}.HTML(w)
}

// chart draws each day's coverage as a bar (100% full height), with the day's launch
// count under it when there is room.
func chart(days []Coverage) template.HTML {
	if len(days) == 0 {
		return template.HTML(`<p class="muted">No launches in the period.</p>`)
	}
	const height, top, bottom, left = 160.0, 10.0, 34.0, 40.0
	bar := math.Max(4, math.Min(40, 1000/float64(len(days))))
	width := left + bar*float64(len(days)) + 10
	var b strings.Builder
	fmt.Fprintf(&b, `<svg role="img" aria-label="coverage per day of launch" width="%.0f" height="%.0f" viewBox="0 0 %.0f %.0f" xmlns="http://www.w3.org/2000/svg">`,
		width, height+top+bottom, width, height+top+bottom)
	for _, pct := range []float64{0, 50, 100} {
		y := top + height*(1-pct/100)
		fmt.Fprintf(&b, `<line x1="%.0f" y1="%.1f" x2="%.0f" y2="%.1f" stroke="#d0d7de"/><text x="2" y="%.1f">%.0f%%</text>`, left, y, width-10, y, y+4, pct)
	}
	for n, d := range days {
		x := left + bar*float64(n)
		h := math.Max(2, height*d.Percent/100) // a day with none encrypted still shows
		color := "#1a7f37"
		if d.Encrypted < d.InScope {
			color = "#cf222e"
		}
		fmt.Fprintf(&b, `<rect x="%.1f" y="%.1f" width="%.1f" height="%.1f" fill="%s"><title>%s: %d of %d encrypted (%.1f%%)</title></rect>`,
			x+1, top+height-h, bar-2, h, color, template.HTMLEscapeString(d.Name), d.Encrypted, d.InScope, d.Percent)
		if bar >= 30 || n == 0 || n == len(days)-1 {
			fmt.Fprintf(&b, `<text x="%.1f" y="%.1f">%s</text>`, x, top+height+14, template.HTMLEscapeString(shortDay(d.Name)))
		}
	}
	b.WriteString(`</svg>`)
	return template.HTML(b.String())
}

// shortDay is MM-DD of a YYYY-MM-DD day.
func shortDay(day string) string {
	if len(day) == 10 {
		return day[5:]
	}
	return day
}
