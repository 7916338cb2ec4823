package metrics

import (
	"math"
	"sort"
	"sync"
	"time"
)

// CapOptions configure a Cap; zero values mean the package defaults.
type CapOptions struct {
	Top        int           // groups with their own series (DefaultTop)
	Grace      time.Duration // forget groups idle this long (DefaultGrace)
	HalfLife   time.Duration // half-life of the "recent bytes" score (DefaultHalfLife)
	Hysteresis float64       // a newcomer must beat a member's score by this factor (DefaultHysteresis)
	MaxTracked int           // groups remembered at most (DefaultMaxTracked)
}

func (o CapOptions) withDefaults() CapOptions {
	if o.Top <= 0 {
		o.Top = DefaultTop
	}
	if o.Grace <= 0 {
		o.Grace = DefaultGrace
	}
	if o.HalfLife <= 0 {
		o.HalfLife = DefaultHalfLife
	}
	if o.Hysteresis < 1 {
		o.Hysteresis = DefaultHysteresis
	}
	if o.MaxTracked <= 0 {
		o.MaxTracked = DefaultMaxTracked
	}
	if o.MaxTracked < o.Top {
		o.MaxTracked = o.Top
	}
	return o
}

// Item is one group's bytes in one interval.
type Item[K comparable] struct {
	Key    K
	Tx, Rx uint64
}

// Series is a group with its own series and its cumulative counters.
type Series[K comparable] struct {
	Key    K
	Tx, Rx uint64
}

// OtherSeries is the overflow counter of one protocol and direction.
type OtherSeries struct {
	Protocol, Dir string
	Bytes         uint64
}

// CapSnapshot is a copy of a Cap's exported state.
type CapSnapshot[K comparable] struct {
	Own     []Series[K]   // members only, in no particular order
	Other   []OtherSeries // never dropped once created
	Members int           // groups with their own series (<= Top)
	Tracked int           // groups remembered for ranking
}

// Cap is the bounded-cardinality rule shared by every exporter (the
// Prometheus /metrics here, OTLP in internal/otlp): of all the groups K
// that move bytes, only the top N by recent bytes keep their own cumulative
// counters; the rest are summed per (protocol, direction) into "other". The
// package doc spells out the rule (scores, hysteresis, grace, demotion). Its
// methods are safe for concurrent use.
type Cap[K comparable] struct {
	opts     CapOptions
	protocol func(K) string
	less     func(a, b K) bool

	mu       sync.Mutex
	sets     map[K]*setState
	other    map[otherKey]uint64
	members  int
	lastObs  time.Time
	observed uint64 // all bytes ever observed, for self-checks
}

type setState struct {
	tx, rx   uint64    // own-series counters (only grow while a member)
	score    float64   // decayed recent bytes
	lastSeen time.Time // last time it moved a byte
	member   bool
}

type otherKey struct {
	protocol, dir string
}

// NewCap returns an empty Cap. protocol tells a key's protocol (the other
// series are per protocol); less orders keys, to break ties in the ranking
// deterministically.
func NewCap[K comparable](opts CapOptions, protocol func(K) string, less func(a, b K) bool) *Cap[K] {
	return &Cap[K]{
		opts:     opts.withDefaults(),
		protocol: protocol,
		less:     less,
		sets:     make(map[K]*setState),
		other:    make(map[otherKey]uint64),
	}
}

// Top is the number of groups that may have their own series.
func (c *Cap[K]) Top() int { return c.opts.Top }

// Observe adds one interval's items. Call it once per interval (also with
// no items, so idle groups age); now is the interval's end.
func (c *Cap[K]) Observe(now time.Time, items []Item[K]) {
	c.mu.Lock()
	defer c.mu.Unlock()

	// 1. Age every score, then add this interval's bytes to them.
	if !c.lastObs.IsZero() {
		if dt := now.Sub(c.lastObs); dt > 0 {
			f := decay(dt, c.opts.HalfLife)
			for _, s := range c.sets {
				s.score *= f
			}
		}
	}
	if now.After(c.lastObs) {
		c.lastObs = now
	}
	kept := items[:0:0]
	for _, it := range items {
		if it.Tx == 0 && it.Rx == 0 {
			continue
		}
		s := c.sets[it.Key]
		if s == nil {
			s = &setState{}
			c.sets[it.Key] = s
		}
		s.score += float64(it.Tx) + float64(it.Rx)
		s.lastSeen = now
		kept = append(kept, it)
	}

	// 2. Forget idle groups, then choose this interval's members.
	for k, s := range c.sets {
		if now.Sub(s.lastSeen) >= c.opts.Grace {
			delete(c.sets, k)
		}
	}
	c.rank()

	// 3. Attribute this interval's bytes to own series or to "other".
	for _, it := range kept {
		c.observed += it.Tx + it.Rx
		if s := c.sets[it.Key]; s != nil && s.member {
			s.tx += it.Tx
			s.rx += it.Rx
			continue
		}
		p := c.protocol(it.Key)
		if it.Tx > 0 {
			c.other[otherKey{p, DirTx}] += it.Tx
		}
		if it.Rx > 0 {
			c.other[otherKey{p, DirRx}] += it.Rx
		}
	}
}

// rank picks the top N groups; members' scores count Hysteresis times so a
// member is only displaced by a clearly busier newcomer.
func (c *Cap[K]) rank() {
	type cand struct {
		k      K
		s      *setState
		weight float64
	}
	all := make([]cand, 0, len(c.sets))
	for k, s := range c.sets {
		w := s.score
		if s.member {
			w *= c.opts.Hysteresis
		}
		all = append(all, cand{k, s, w})
	}
	sort.Slice(all, func(i, j int) bool {
		if all[i].weight != all[j].weight {
			return all[i].weight > all[j].weight
		}
		if all[i].s.member != all[j].s.member {
			return all[i].s.member
		}
		return c.less(all[i].k, all[j].k)
	})
	c.members = 0
	for i, cd := range all {
		cd.s.member = i < c.opts.Top
		if cd.s.member {
			c.members++
		}
	}
	// Bound memory: forget the coldest candidates beyond MaxTracked.
	for _, cd := range all[min(len(all), c.opts.MaxTracked):] {
		delete(c.sets, cd.k)
	}
}

// Snapshot copies the exported state: the members' counters (only those
// that moved a byte in some direction) and the other series.
func (c *Cap[K]) Snapshot() CapSnapshot[K] {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := CapSnapshot[K]{Members: c.members, Tracked: len(c.sets)}
	for k, s := range c.sets {
		if s.member {
			out.Own = append(out.Own, Series[K]{k, s.tx, s.rx})
		}
	}
	for k, v := range c.other {
		out.Other = append(out.Other, OtherSeries{k.protocol, k.dir, v})
	}
	return out
}

// Observed is every byte ever observed (own series, other, and what
// demoted groups hold in unexported counters).
func (c *Cap[K]) Observed() uint64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.observed
}

// Frozen is what demoted groups hold in their unexported counters.
func (c *Cap[K]) Frozen() uint64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	var n uint64
	for _, s := range c.sets {
		if !s.member {
			n += s.tx + s.rx
		}
	}
	return n
}

// decay is 2^(-dt/halfLife).
func decay(dt, halfLife time.Duration) float64 {
	x := float64(dt) / float64(halfLife)
	if x > 64 {
		return 0
	}
	return math.Exp2(-x)
}
