package report

import (
	"strings"

	"github.com/mattn/go-runewidth"
)

// DefaultWidth is how wide a table may be when the output is not a
// terminal whose width is known: the classic 80 columns.
const DefaultWidth = 80

// Middle shortens s to at most w terminal cells by cutting out its middle
// and putting "…" there ("/usr/lib/firefox/…/firefox-bin"): the start and
// the end of a path or a name say most. Wide runes are never split.
func Middle(s string, w int) string {
	if Width(s) <= w {
		return s
	}
	if w <= 1 {
		return runewidth.Truncate(s, w, "")
	}
	tailW := w / 2 // the end (a file name) gets the extra cell
	headW := w - 1 - tailW
	head := runewidth.Truncate(s, headW, "")
	rs := []rune(s)
	i, tw := len(rs), 0
	for i > 0 {
		cw := runewidth.RuneWidth(rs[i-1])
		if tw+cw > tailW {
			break
		}
		tw += cw
		i--
	}
	tail := string(rs[i:])
	// Pad when a wide rune left a cell unused, so the column stays exact.
	return head + "…" + tail + strings.Repeat(" ", max(0, w-Width(head)-1-tw))
}

// fit shrinks the columns in t.Shrink (widest first, never below their
// minimum) until a line is at most t.Max cells, and returns the widths.
func (t *Table) fit(widths []int) []int {
	if t.Max <= 0 {
		return widths
	}
	total := lineWidth(widths)
	for total > t.Max {
		best := -1
		for c, min := range t.Shrink {
			if c < len(widths) && widths[c] > min && (best < 0 || widths[c] > widths[best] || (widths[c] == widths[best] && c > best)) {
				best = c
			}
		}
		if best < 0 {
			break // as narrow as it gets: the terminal wraps
		}
		widths[best]--
		total--
	}
	return widths
}

func lineWidth(widths []int) int {
	n := 0
	for _, w := range widths {
		n += w + 2
	}
	return n - 2
}

// barWidth is how wide the bar column may be on a table t (without it):
// what Max leaves, at most BarWidth; at least MinBarWidth when shrinking
// the text columns makes room (shrink); 0 (no bar) when even that does not
// fit.
func (t *Table) barWidth(shrink bool) int {
	if t.Max <= 0 {
		return BarWidth
	}
	if bw := t.Max - t.Natural() - 2; bw >= MinBarWidth {
		return min(bw, BarWidth)
	}
	if !shrink {
		return 0
	}
	widths := t.widths()
	for c, m := range t.Shrink {
		if c < len(widths) {
			widths[c] = min(widths[c], m)
		}
	}
	if t.Max-lineWidth(widths)-2 >= MinBarWidth {
		return MinBarWidth
	}
	return 0
}

// Natural is the width of the widest line Write would print without Max.
func (t *Table) Natural() int { return lineWidth(t.widths()) }

func (t *Table) widths() []int {
	var widths []int
	for _, r := range t.rows {
		for i, c := range r {
			if i >= len(widths) {
				widths = append(widths, 0)
			}
			widths[i] = max(widths[i], Width(c))
		}
	}
	return widths
}
