package report

import (
	"fmt"
	"io"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/mattn/go-runewidth"
)

// Terminal safety. Process names, executable paths, command lines and
// reverse-DNS names come from other users (a process can name itself
// anything, a PTR record can say anything): printed raw, an escape sequence
// in them recolours or rewrites the terminal of whoever runs `report` or
// `top`, and a tab or newline breaks the columns. Every table cell goes
// through Safe; JSON and CSV keep the exact bytes.

// Safe returns s with everything a terminal would interpret or not show as
// a visible escape: C0/C1 controls and DEL as \xNN (tab \t, newline \n,
// carriage return \r), bytes that are not UTF-8 as \xNN, other
// non-printable runes (bidi overrides, zero-width and other format
// characters, unassigned code points) as \uNNNN, and the backslash itself
// as \\ so that an escape in the output is never ambiguous. Printable text,
// including wide (CJK) and combining runes, is kept.
func Safe(s string) string {
	clean := true
	for i := 0; i < len(s); {
		r, n := utf8.DecodeRuneInString(s[i:])
		if (r == utf8.RuneError && n == 1) || r == '\\' || !printable(r) {
			clean = false
			break
		}
		i += n
	}
	if clean {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); {
		r, n := utf8.DecodeRuneInString(s[i:])
		switch {
		case r == utf8.RuneError && n == 1:
			fmt.Fprintf(&b, `\x%02x`, s[i])
		case r == '\\':
			b.WriteString(`\\`)
		case r == '\t':
			b.WriteString(`\t`)
		case r == '\n':
			b.WriteString(`\n`)
		case r == '\r':
			b.WriteString(`\r`)
		case r < 0x20 || r == 0x7f || (r >= 0x80 && r < 0xa0):
			fmt.Fprintf(&b, `\x%02x`, r)
		case !printable(r):
			if r > 0xffff {
				fmt.Fprintf(&b, `\U%08x`, r)
			} else {
				fmt.Fprintf(&b, `\u%04x`, r)
			}
		default:
			b.WriteString(s[i : i+n])
		}
		i += n
	}
	return b.String()
}

// printable: graphic runes and the plain space; not format characters
// (U+200B..U+200F, U+202A..U+202E, U+2066..U+2069, ...), which rewrite how a
// line is shown.
func printable(r rune) bool {
	return r == ' ' || (unicode.IsGraphic(r) && !unicode.Is(unicode.Cf, r) && r != '\u2028' && r != '\u2029' && !unicode.Is(unicode.Zs, r))
}

// Width is how many terminal columns s takes (wide runes count two,
// combining marks zero).
func Width(s string) int { return runewidth.StringWidth(s) }

// Table lays out rows of cells in columns separated by two spaces, like
// text/tabwriter with padding 2, but measures cells in terminal columns
// (go-runewidth) instead of runes and passes every cell through Safe.
// With Max set, the columns in Shrink give up width so that every line
// fits (fit.go); cells cut that way lose their middle (Middle).
type Table struct {
	// Right aligns every column to the right (tabwriter.AlignRight),
	// except those in Left.
	Right bool
	Left  map[int]bool
	// Max > 0 is the widest a line may be.
	Max int
	// Shrink maps a column to the narrowest it may become to fit Max.
	Shrink map[int]int
	rows   [][]string
}

// Add appends one row.
func (t *Table) Add(cells ...string) {
	row := make([]string, len(cells))
	for i, c := range cells {
		row[i] = Safe(c)
	}
	t.rows = append(t.rows, row)
}

// Write prints the rows, each cell padded to its column's width, columns
// two spaces apart, no trailing blanks.
func (t *Table) Write(w io.Writer) error {
	widths := t.fit(t.widths())
	var b strings.Builder
	for _, r := range t.rows {
		var line strings.Builder
		for i, c := range r {
			if Width(c) > widths[i] {
				c = Middle(c, widths[i])
			}
			pad := strings.Repeat(" ", widths[i]-Width(c))
			if i > 0 {
				line.WriteString("  ")
			}
			if t.Right && !t.Left[i] {
				line.WriteString(pad)
				line.WriteString(c)
			} else {
				line.WriteString(c)
				line.WriteString(pad)
			}
		}
		b.WriteString(strings.TrimRight(line.String(), " "))
		b.WriteByte('\n')
	}
	_, err := io.WriteString(w, b.String())
	return err
}
