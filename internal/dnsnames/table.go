package dnsnames

import (
	"container/list"
	"net/netip"
	"sync"
	"time"
)

// DefaultMaxEntries bounds a Table: about 160 bytes an entry plus its name
// (~20 MiB at the bound with 64-byte names); the least recently answered
// address is forgotten first (it stays in the store).
const DefaultMaxEntries = 100_000

// DefaultMaxPending bounds the records waiting for the next Pending call
// (one flush interval); beyond it the oldest changes are not persisted
// (counted in Stats.PendingDropped), the in-memory table keeps them.
const DefaultMaxPending = 20_000

// Record is what is known about one name of one address in one network
// namespace.
type Record struct {
	NetNS     uint32 // network namespace inode; 0 = unknown namespace
	Addr      netip.Addr
	Name      string // the name the process asked for
	Domain    string // Domain(Name)
	FirstSeen time.Time
	LastSeen  time.Time
	// Expires is LastSeen + the answer's TTL. A name is not dropped when
	// it expires: connections outlive TTLs (a download opened while the
	// answer was valid stays named); a newer answer replaces it.
	Expires time.Time
}

type key struct {
	netns uint32
	addr  netip.Addr
}

type pkey struct {
	key
	name string
}

// Stats counts a Table's work since it was made.
type Stats struct {
	Packets        uint64 // payloads given to Observe
	Answers        uint64 // addresses named
	Malformed      uint64 // payloads that did not parse (partly or at all)
	Entries        int    // addresses held now
	Evicted        uint64 // addresses forgotten for the size bound
	PendingDropped uint64 // changes not persisted for the pending bound
}

// Table maps (network namespace, address) to the latest name answered for
// it, bounded to MaxEntries addresses (LRU). It is safe for concurrent use.
type Table struct {
	// MaxEntries and MaxPending default to DefaultMaxEntries and
	// DefaultMaxPending when 0.
	MaxEntries int
	MaxPending int

	mu      sync.Mutex
	lru     *list.List // of *Record, most recently answered first
	byKey   map[key]*list.Element
	pending map[pkey]Record
	order   []pkey // pending insertion order (for the bound)
	st      Stats
}

// NewTable makes an empty table with the default bounds.
func NewTable() *Table { return &Table{} }

func (t *Table) init() {
	if t.lru == nil {
		t.lru = list.New()
		t.byKey = map[key]*list.Element{}
		t.pending = map[pkey]Record{}
		if t.MaxEntries <= 0 {
			t.MaxEntries = DefaultMaxEntries
		}
		if t.MaxPending <= 0 {
			t.MaxPending = DefaultMaxPending
		}
	}
}

// ObservePayload parses one captured payload (see ParsePayload) received
// in netns at now and records its answers. It returns how many addresses
// it named.
func (t *Table) ObservePayload(netns uint32, payload []byte, tcp bool, now time.Time) int {
	ans, err := ParsePayload(payload, tcp)
	t.mu.Lock()
	defer t.mu.Unlock()
	t.init()
	t.st.Packets++
	if err != nil && err != ErrNotAnswer {
		t.st.Malformed++
	}
	for _, a := range ans {
		t.observe(netns, a, now)
	}
	return len(ans)
}

// Observe records answers received in netns at now.
func (t *Table) Observe(netns uint32, answers []Answer, now time.Time) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.init()
	for _, a := range answers {
		if Nameable(a.Addr) && a.Name != "" {
			t.observe(netns, a, now)
		}
	}
}

func (t *Table) observe(netns uint32, a Answer, now time.Time) {
	t.st.Answers++
	k := key{netns, a.Addr.Unmap()}
	exp := now.Add(time.Duration(a.TTL) * time.Second)
	var r *Record
	if el, ok := t.byKey[k]; ok {
		r = el.Value.(*Record)
		t.lru.MoveToFront(el)
		if r.Name != a.Name {
			*r = Record{NetNS: netns, Addr: k.addr, Name: a.Name, Domain: Domain(a.Name), FirstSeen: now}
		}
	} else {
		r = &Record{NetNS: netns, Addr: k.addr, Name: a.Name, Domain: Domain(a.Name), FirstSeen: now}
		t.byKey[k] = t.lru.PushFront(r)
		for t.lru.Len() > t.MaxEntries {
			old := t.lru.Back()
			t.lru.Remove(old)
			or := old.Value.(*Record)
			delete(t.byKey, key{or.NetNS, or.Addr})
			t.st.Evicted++
		}
	}
	r.LastSeen = now
	if exp.After(r.Expires) {
		r.Expires = exp
	}
	pk := pkey{k, a.Name}
	if _, ok := t.pending[pk]; !ok {
		t.order = append(t.order, pk)
		for len(t.pending) >= t.MaxPending && len(t.order) > 1 {
			delete(t.pending, t.order[0])
			t.order = t.order[1:]
			t.st.PendingDropped++
		}
	}
	t.pending[pk] = *r
}

// Lookup returns the latest name answered for addr in netns; answers seen
// with an unknown namespace (0) stand for every namespace.
func (t *Table) Lookup(netns uint32, addr netip.Addr) (Record, bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.init()
	addr = addr.Unmap()
	if el, ok := t.byKey[key{netns, addr}]; ok {
		return *el.Value.(*Record), true
	}
	if el, ok := t.byKey[key{0, addr}]; ok && netns != 0 {
		return *el.Value.(*Record), true
	}
	return Record{}, false
}

// Pending returns the records changed since the last call (to persist) and
// forgets them.
func (t *Table) Pending() []Record {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.init()
	if len(t.order) == 0 {
		return nil
	}
	out := make([]Record, 0, len(t.order))
	for _, pk := range t.order {
		if r, ok := t.pending[pk]; ok {
			out = append(out, r)
		}
	}
	t.pending = map[pkey]Record{}
	t.order = nil
	return out
}

// Requeue puts records that could not be persisted back (they are merged
// with newer changes of the same name).
func (t *Table) Requeue(rs []Record) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.init()
	for _, r := range rs {
		pk := pkey{key{r.NetNS, r.Addr}, r.Name}
		if cur, ok := t.pending[pk]; ok {
			if r.FirstSeen.Before(cur.FirstSeen) {
				cur.FirstSeen = r.FirstSeen
				t.pending[pk] = cur
			}
			continue
		}
		if len(t.pending) >= t.MaxPending {
			t.st.PendingDropped++
			continue
		}
		t.pending[pk] = r
		t.order = append(t.order, pk)
	}
}

// Load fills the table with records from the store (oldest first, so the
// newest stay at the front), without marking them pending.
func (t *Table) Load(rs []Record) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.init()
	for _, r := range rs {
		if !Nameable(r.Addr) || r.Name == "" {
			continue
		}
		r.Addr = r.Addr.Unmap()
		k := key{r.NetNS, r.Addr}
		if el, ok := t.byKey[k]; ok {
			if cur := el.Value.(*Record); !r.LastSeen.Before(cur.LastSeen) {
				*cur = r
				t.lru.MoveToFront(el)
			}
			continue
		}
		rc := r
		t.byKey[k] = t.lru.PushFront(&rc)
		for t.lru.Len() > t.MaxEntries {
			old := t.lru.Back()
			t.lru.Remove(old)
			or := old.Value.(*Record)
			delete(t.byKey, key{or.NetNS, or.Addr})
			t.st.Evicted++
		}
	}
}

// Stats returns the counters.
func (t *Table) Stats() Stats {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.init()
	s := t.st
	s.Entries = t.lru.Len()
	return s
}

// RecordFrom makes a Record from stored fields; ok is false when ip is not
// an address.
func RecordFrom(netns uint32, ip, name, domain string, first, last, expires time.Time) (Record, bool) {
	a, err := netip.ParseAddr(ip)
	if err != nil {
		return Record{}, false
	}
	return Record{NetNS: netns, Addr: a.Unmap(), Name: name, Domain: domain, FirstSeen: first, LastSeen: last, Expires: expires}, true
}
