package alerts

import (
	"fmt"
	"math"
	"math/rand"
	"os"
	"sort"
	"strings"
	"testing"
	"time"
)

// The anomaly benchmark (make bench-anomaly) replays synthetic 8-week
// hourly histories of a few typical programs with injected anomalies and
// scores the detector hour by hour (each hour judged against a baseline of
// the hours before it, as the daemon's hourly refresh does).
//
// Programs: a browser (daytime, weekends lighter), a backup job (2 GB every
// night at 02:00, start jittering ±1 h), an updater (30 MB once a day at a
// jittered morning hour), sshd (quiet, small sessions), a streaming client
// (evenings, more at weekends). Noise is log-normal.
//
// Anomalies (ground truth): spikes (one or two hours, adding 4-10x the
// program's usual p95 at that hour of day, at least 40 MB), a new nightly
// upload (200 MB every night at 03:00 from some day on, by a program quiet
// at night: the first night is the anomaly, after that it is the new
// normal), and an exfiltration-like steady upload (3x
// the program's median + 20 MB every hour for 48 hours).
//
// Recall: anomalies with at least one alert hour inside them. Precision:
// alert runs (consecutive alert hours of one program) that overlap an
// anomaly, over all alert runs.

type synthApp struct {
	name string
	gen  func(r *rand.Rand, h int) float64 // bytes in hour h of the history
}

const mb = float64(1 << 20)

func diurnal(hod int, from, to int) bool { return hod >= from && hod < to }

func lognorm(r *rand.Rand, sigma float64) float64 {
	return math.Exp(r.NormFloat64()*sigma - sigma*sigma/2)
}

func synthApps(r *rand.Rand) []synthApp {
	backupJitter := map[int]int{}
	updHour := map[int]int{}
	return []synthApp{
		{"browser", func(r *rand.Rand, h int) float64 {
			hod, dow := h%24, (h/24)%7
			v := 0.5 * mb
			if diurnal(hod, 8, 23) {
				v = 60 * mb
				if dow >= 5 {
					v *= 0.6
				}
			}
			return v * lognorm(r, 0.5)
		}},
		{"backup", func(r *rand.Rand, h int) float64 {
			day, hod := h/24, h%24
			j, ok := backupJitter[day]
			if !ok {
				j = r.Intn(3) - 1
				backupJitter[day] = j
			}
			if hod == 2+j {
				return 2048 * mb * (0.9 + 0.2*r.Float64())
			}
			return 0.05 * mb * r.Float64()
		}},
		{"updater", func(r *rand.Rand, h int) float64 {
			day, hod := h/24, h%24
			u, ok := updHour[day]
			if !ok {
				u = 6 + r.Intn(3)
				updHour[day] = u
			}
			if hod == u {
				return 30 * mb * lognorm(r, 0.3)
			}
			return 0.01 * mb * r.Float64()
		}},
		{"sshd", func(r *rand.Rand, h int) float64 {
			v := 0.2 * mb * lognorm(r, 0.6)
			if r.Float64() < 0.05 {
				v += 3 * mb * r.Float64()
			}
			return v
		}},
		{"stream", func(r *rand.Rand, h int) float64 {
			hod, dow := h%24, (h/24)%7
			v := 1.0 * mb
			if diurnal(hod, 18, 24) {
				v = 400 * mb
				if dow >= 5 {
					v *= 1.5
				}
			}
			return v * lognorm(r, 0.4)
		}},
	}
}

type anomaly struct {
	app      int
	from, to int // hours [from, to)
	kind     string
}

type history struct {
	start  time.Time
	hours  int
	apps   []string
	values [][]float64
	truth  []anomaly
}

func synthHistory(seed int64) history {
	r := rand.New(rand.NewSource(seed))
	apps := synthApps(r)
	const weeks = 8
	h := history{start: time.Date(2026, 1, 5, 0, 0, 0, 0, time.UTC), hours: weeks * 168}
	for _, a := range apps {
		h.apps = append(h.apps, a.name)
		vals := make([]float64, h.hours)
		for i := range vals {
			vals[i] = a.gen(r, i)
		}
		h.values = append(h.values, vals)
	}
	// peakAt is the app's p95 at this hour of day (±1 h) in week 1: a spike
	// is several times what the app usually does at that time.
	peakAt := func(app, hour int) float64 {
		var v []float64
		for d := 0; d < 7; d++ {
			for k := -1; k <= 1; k++ {
				if i := d*24 + (hour%24+k+24)%24; i >= 0 {
					v = append(v, h.values[app][i])
				}
			}
		}
		sort.Float64s(v)
		return v[len(v)*95/100]
	}
	medOf := func(app int) float64 { return median(h.values[app][:168]) }
	evalFrom := 2 * 168 // after warm-up and a week of baseline
	// Spikes: 3 per history.
	for i := 0; i < 3; i++ {
		app := r.Intn(len(apps))
		at := evalFrom + r.Intn(h.hours-evalFrom-2)
		n := 1 + r.Intn(2)
		add := math.Max(40*mb, (4+6*r.Float64())*peakAt(app, at))
		for k := 0; k < n; k++ {
			h.values[app][at+k] += add
		}
		h.truth = append(h.truth, anomaly{app, at, at + n, "spike"})
	}
	// A new nightly upload from some day on, at 03:00, by a program that
	// is quiet at night.
	{
		var quiet []int
		for a := range apps {
			if peakAt(a, 3) < 10*mb {
				quiet = append(quiet, a)
			}
		}
		app := quiet[r.Intn(len(quiet))]
		day := evalFrom/24 + r.Intn(h.hours/24-evalFrom/24-7)
		for d := day; d < h.hours/24; d++ {
			h.values[app][d*24+3] += 200 * mb * (0.9 + 0.2*r.Float64())
		}
		h.truth = append(h.truth, anomaly{app, day*24 + 3, day*24 + 4, "nightly"})
	}
	// Exfiltration-like steady upload for 48 hours.
	{
		app := r.Intn(len(apps))
		at := evalFrom + r.Intn(h.hours-evalFrom-48)
		add := 3*medOf(app) + 20*mb
		for k := 0; k < 48; k++ {
			h.values[app][at+k] += add
		}
		h.truth = append(h.truth, anomaly{app, at, at + 48, "exfil"})
	}
	return h
}

type score struct {
	events, detected     int
	runs, truePos        int
	byKind, detectedKind map[string]int
}

func replay(hs []history, sens string) score {
	sc := score{byKind: map[string]int{}, detectedKind: map[string]int{}}
	for _, h := range hs {
		b := NewBaseline(nil, h.start)
		alert := make([][]bool, len(h.apps))
		for a := range h.apps {
			alert[a] = make([]bool, h.hours)
		}
		for i := 0; i < h.hours; i++ {
			t := h.start.Add(time.Duration(i) * time.Hour)
			for a, name := range h.apps {
				v := h.values[a][i]
				if thr, _, ok := b.Threshold(name, t, sens); ok && v > thr {
					alert[a][i] = true
				}
			}
			for a, name := range h.apps {
				b.Add(name, t, h.values[a][i])
			}
		}
		inTruth := func(a, i int) bool {
			for _, an := range h.truth {
				if an.app == a && i >= an.from && i < an.to {
					return true
				}
			}
			return false
		}
		for _, an := range h.truth {
			sc.events++
			sc.byKind[an.kind]++
			for i := an.from; i < an.to; i++ {
				if alert[an.app][i] {
					sc.detected++
					sc.detectedKind[an.kind]++
					break
				}
			}
		}
		for a := range h.apps {
			for i := 0; i < h.hours; i++ {
				if !alert[a][i] || (i > 0 && alert[a][i-1]) {
					continue
				}
				sc.runs++
				for j := i; j < h.hours && alert[a][j]; j++ {
					if inTruth(a, j) {
						sc.truePos++
						break
					}
				}
			}
		}
	}
	return sc
}

// BenchmarkAnomalyReplay prints precision and recall per sensitivity; run
// it with `make bench-anomaly`. BWTRACKER_ANOMALY_HISTORIES sets how many
// 8-week histories (default 50).
func BenchmarkAnomalyReplay(b *testing.B) {
	n := 50
	if s := os.Getenv("BWTRACKER_ANOMALY_HISTORIES"); s != "" {
		fmt.Sscan(s, &n)
	}
	var hs []history
	for i := 0; i < n; i++ {
		hs = append(hs, synthHistory(int64(i+1)))
	}
	var out strings.Builder
	fmt.Fprintf(&out, "anomaly replay: %d synthetic 8-week histories x %d programs, %d injected anomalies each (3 spikes, 1 new nightly upload, 1 48-hour steady upload)\n",
		n, len(hs[0].apps), len(hs[0].truth))
	fmt.Fprintf(&out, "%-12s %9s %9s %7s %7s  %s\n", "sensitivity", "precision", "recall", "alerts", "events", "recall by kind")
	for i := 0; i < b.N; i++ {
		for _, sens := range []string{SensLow, SensMedium, SensHigh} {
			sc := replay(hs, sens)
			prec := 1.0
			if sc.runs > 0 {
				prec = float64(sc.truePos) / float64(sc.runs)
			}
			var kinds []string
			for _, k := range []string{"spike", "nightly", "exfil"} {
				kinds = append(kinds, fmt.Sprintf("%s %d/%d", k, sc.detectedKind[k], sc.byKind[k]))
			}
			if i == 0 {
				fmt.Fprintf(&out, "%-12s %9.3f %9.3f %7d %7d  %s\n", sens, prec, float64(sc.detected)/float64(sc.events), sc.runs, sc.events, strings.Join(kinds, ", "))
			}
		}
	}
	b.StopTimer()
	fmt.Print(out.String())
}

// TestAnomalyBaselineUnit checks the baseline's arithmetic on a tiny,
// hand-computed history.
func TestAnomalyBaselineUnit(t *testing.T) {
	start := time.Date(2026, 1, 5, 0, 0, 0, 0, time.UTC)
	b := NewBaseline(nil, start)
	// 14 days of exactly 10 MiB every hour.
	for i := 0; i < 14*24; i++ {
		b.Add("app", start.Add(time.Duration(i)*time.Hour), 10*mb)
	}
	at := start.Add(14 * 24 * time.Hour)
	thr, med, ok := b.Threshold("app", at, SensMedium)
	// median 10 MiB, MAD 0 so sigma = MinSigma 0.3: max(floor 8 MiB,
	// 2 x peak 10 MiB, exp(log(10 MiB + 64 KiB) + 4*0.3) - 64 KiB).
	want := (10*mb+logEps)*math.Exp(4*0.3) - logEps
	if !ok || med != 10*mb || math.Abs(thr-want) > 1 {
		t.Fatalf("thr %v med %v ok %v", thr/mb, med/mb, ok)
	}
	// Warm-up: an app seen for 6 days only may not fire.
	b.Add("young", at.Add(-6*24*time.Hour), 1)
	if _, _, ok := b.Threshold("young", at, SensMedium); ok {
		t.Fatal("young app has a threshold")
	}
	// Unknown apps have none (new-app's business).
	if _, _, ok := b.Threshold("nobody", at, SensMedium); ok {
		t.Fatal("unknown app has a threshold")
	}
	// A quiet app: the floor.
	q := NewBaseline(nil, start)
	for i := 0; i < 14*24; i++ {
		q.Add("quiet", start.Add(time.Duration(i)*time.Hour), 1000)
	}
	if thr, _, _ := q.Threshold("quiet", at, SensHigh); thr != 2*mb {
		t.Fatalf("floor: %v", thr)
	}
	// Sliding: half way through an hour, the blend of two hours.
	s, _, ok := b.SlidingThreshold("app", at.Add(30*time.Minute), SensMedium)
	if !ok || math.Abs(s-want) > 1 {
		t.Fatalf("sliding %v", s/mb)
	}
}
