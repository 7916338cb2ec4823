package report

import (
	"os/user"
	"strconv"
	"strings"
	"sync"
)

// BarWidth is the width of the bar column in cells.
const BarWidth = 16

// MinBarWidth is the narrowest bar column drawn when a table must fit a
// width.
const MinBarWidth = 6

var eighths = []rune(" ▏▎▍▌▋▊▉")

// Bar draws v relative to peak as a horizontal bar of at most width cells,
// with eighth-cell resolution. Any non-zero value gets at least a sliver.
func Bar(v, peak uint64, width int) string {
	if peak == 0 || v == 0 || width <= 0 {
		return ""
	}
	n := int(float64(v) / float64(peak) * float64(width*8))
	n = max(n, 1)
	n = min(n, width*8)
	b := strings.Repeat("█", n/8)
	if n%8 != 0 {
		b += string(eighths[n%8])
	}
	return b
}

var sparks = []rune("▁▂▃▄▅▆▇█")

// Sparkline draws one cell per value scaled to the largest; zero is a
// blank so quiet stretches stand out.
func Sparkline(vals []uint64) string {
	var peak uint64
	for _, v := range vals {
		peak = max(peak, v)
	}
	var b strings.Builder
	for _, v := range vals {
		if v == 0 || peak == 0 {
			b.WriteRune(' ')
			continue
		}
		i := int(float64(v) / float64(peak) * float64(len(sparks)-1))
		b.WriteRune(sparks[min(max(i, 0), len(sparks)-1)])
	}
	return b.String()
}

var users sync.Map // uint32 -> string

// UserName is the login name of uid, or the number when it has none.
func UserName(uid uint32) string {
	if v, ok := users.Load(uid); ok {
		return v.(string)
	}
	id := strconv.FormatUint(uint64(uid), 10)
	name := id
	if u, err := user.LookupId(id); err == nil && u.Username != "" {
		name = u.Username
	}
	users.Store(uid, name)
	return name
}
