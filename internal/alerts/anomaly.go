package alerts

import (
	"math"
	"sort"
	"time"
)

// Sensitivities of the anomaly kind.
const (
	SensLow    = "low"
	SensMedium = "medium"
	SensHigh   = "high"
)

// sensParams: the threshold is the largest of
//
//   - Floor: quiet apps must move at least this much in an hour;
//   - the log-normal model: exp(median(log v) + K*sigma(log v)), where v is
//     an hour's bytes (+64 KiB, so idle hours are not -Inf) and sigma the
//     MAD of log v scaled to a normal's standard deviation (x1.4826), at
//     least MinSigma. Traffic is multiplicative noise: a browser's busy
//     hour is a few times its median hour, not a few MiB more, so spread
//     is measured as a ratio;
//   - PeakRatio times the largest value seen around this hour (±1 h) on the
//     past days and weeks: what the app already did recently at about this
//     time (a nightly job whose start jitters, a new nightly upload once
//     its first night was reported) is not news.
type sensParams struct {
	K         float64
	MinSigma  float64
	PeakRatio float64
	Floor     float64 // bytes per hour
}

var sensitivities = map[string]sensParams{
	SensHigh:   {K: 3, MinSigma: 0.25, PeakRatio: 1.5, Floor: 2 << 20},
	SensMedium: {K: 4, MinSigma: 0.3, PeakRatio: 2, Floor: 8 << 20},
	SensLow:    {K: 6, MinSigma: 0.3, PeakRatio: 3, Floor: 32 << 20},
}

// logEps is added to an hour's bytes before taking its log.
const logEps = 64 << 10

// Baseline constants (see the package doc).
const (
	// BaselineWeeks is how many past weeks give same-hour-of-week samples.
	BaselineWeeks = 4
	// BaselineDays is how many past days give same-hour-of-day samples.
	BaselineDays = 7
	// WarmUp: an app must have history this old before it may fire.
	WarmUp = 7 * 24 * time.Hour
	// minSamples is the fewest baseline hours a threshold is computed from.
	minSamples = 15
)

// HourValue is one app's bytes in one clock hour (UTC bucket start), as the
// store's hour tier holds it.
type HourValue struct {
	App   string
	Hour  time.Time
	Bytes float64
}

// Baseline is every app's learned hour-of-week profile at one moment: the
// past hours' bytes, from which a threshold for any later hour is computed.
type Baseline struct {
	// hours[app][unix hour] = bytes; hours absent are zero once the app
	// was first seen.
	hours map[string]map[int64]float64
	first map[string]int64 // unix hour of the app's first traffic
	last  int64            // unix hour the history ends at (exclusive)
}

// NewBaseline builds a baseline from hour values up to (not including) end.
func NewBaseline(vals []HourValue, end time.Time) *Baseline {
	b := &Baseline{hours: map[string]map[int64]float64{}, first: map[string]int64{}, last: unixHour(end)}
	for _, v := range vals {
		h := unixHour(v.Hour)
		if h >= b.last {
			continue
		}
		m := b.hours[v.App]
		if m == nil {
			m = map[int64]float64{}
			b.hours[v.App] = m
		}
		m[h] += v.Bytes
		if f, ok := b.first[v.App]; !ok || h < f {
			b.first[v.App] = h
		}
	}
	return b
}

func unixHour(t time.Time) int64 { return floorDiv(t.Unix(), 3600) }

func floorDiv(a, b int64) int64 {
	q := a / b
	if (a%b != 0) && ((a < 0) != (b < 0)) {
		q--
	}
	return q
}

// Add records one more hour (the bench replays history hour by hour).
func (b *Baseline) Add(app string, hour time.Time, bytes float64) {
	h := unixHour(hour)
	m := b.hours[app]
	if m == nil {
		m = map[int64]float64{}
		b.hours[app] = m
	}
	m[h] += bytes
	if f, ok := b.first[app]; !ok || h < f {
		b.first[app] = h
	}
	if h+1 > b.last {
		b.last = h + 1
	}
}

// Threshold is the bytes above which app's traffic in the clock hour
// starting at hour is anomalous; ok is false while the app is warming up
// (or unknown: a new app is new-app's business, not anomaly's).
func (b *Baseline) Threshold(app string, hour time.Time, sens string) (thr, mid float64, ok bool) {
	p, found := sensitivities[sens]
	if !found {
		p = sensitivities[SensMedium]
	}
	h := unixHour(hour)
	first, known := b.first[app]
	if !known || (h-first)*3600 < int64(WarmUp/time.Second) {
		return 0, 0, false
	}
	m := b.hours[app]
	samples := make([]float64, 0, 3*(BaselineWeeks+BaselineDays))
	peak := 0.0
	add := func(x int64) {
		for _, y := range [3]int64{x - 1, x, x + 1} {
			if y >= first && y < b.last && y < h {
				samples = append(samples, m[y])
				peak = math.Max(peak, m[y])
			}
		}
	}
	for w := int64(1); w <= BaselineWeeks; w++ {
		add(h - w*168)
	}
	for d := int64(1); d <= BaselineDays; d++ {
		if d%7 != 0 { // day 7 is week 1, already in
			add(h - d*24)
		}
	}
	if len(samples) < minSamples {
		return 0, 0, false
	}
	med := median(samples)
	logs := make([]float64, len(samples))
	for i, v := range samples {
		logs[i] = math.Log(v + logEps)
	}
	ml := median(logs)
	dev := make([]float64, len(logs))
	for i, l := range logs {
		dev[i] = math.Abs(l - ml)
	}
	sigma := math.Max(p.MinSigma, 1.4826*median(dev))
	model := math.Exp(ml+p.K*sigma) - logEps
	thr = math.Max(math.Max(p.Floor, p.PeakRatio*peak), model)
	return thr, med, true
}

func median(xs []float64) float64 {
	s := append([]float64(nil), xs...)
	sort.Float64s(s)
	n := len(s)
	if n == 0 {
		return 0
	}
	if n%2 == 1 {
		return s[n/2]
	}
	return (s[n/2-1] + s[n/2]) / 2
}

// SlidingThreshold is the threshold for the hour ending at now (a sliding
// window): the two clock hours it overlaps blended by overlap. ok is false
// when either hour has no threshold.
func (b *Baseline) SlidingThreshold(app string, now time.Time, sens string) (thr, mid float64, ok bool) {
	cur := now.Truncate(time.Hour)
	prev := cur.Add(-time.Hour)
	f := now.Sub(cur).Seconds() / 3600 // share of the window in the current hour
	t1, m1, ok1 := b.Threshold(app, prev, sens)
	t2, m2, ok2 := b.Threshold(app, cur, sens)
	if !ok1 || !ok2 {
		return 0, 0, false
	}
	return (1-f)*t1 + f*t2, (1-f)*m1 + f*m2, true
}
