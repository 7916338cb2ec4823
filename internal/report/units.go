package report

import (
	"fmt"
	"strings"
)

// Units says how tables show amounts: bytes in IEC units (KiB, MiB; the
// default) or, with --bits, bits in SI units (kbit, Mbit), as network
// people quote link speeds. JSON and CSV always carry exact byte counts.
type Units struct {
	Bits bool
}

// Size is an amount of n bytes.
func (u Units) Size(n uint64) string {
	if u.Bits {
		return siBits(float64(n) * 8)
	}
	return IBytes(n)
}

// Rate is a rate of bytesPerSec; below half a byte a second it is 0.
func (u Units) Rate(bytesPerSec float64) string {
	if bytesPerSec < 0.5 {
		if u.Bits {
			return "0 bit/s"
		}
		return "0 B/s"
	}
	if u.Bits {
		return siBits(bytesPerSec*8) + "/s"
	}
	return IBytes(uint64(bytesPerSec+0.5)) + "/s"
}

// siBits is like humanize.IBytes in SI steps: one decimal below 10
// ("1.5 kbit"), none above ("47 Gbit"), rounded.
func siBits(v float64) string {
	if v < 1000 {
		return fmt.Sprintf("%.0f bit", v)
	}
	prefixes := "kMGTPE"
	i := -1
	for v >= 1000 && i < len(prefixes)-1 {
		v /= 1000
		i++
	}
	f := "%.0f %cbit"
	if v < 10 {
		f = "%.1f %cbit"
	}
	s := fmt.Sprintf(f, v, prefixes[i])
	return strings.Replace(s, ".0 ", " ", 1)
}
