package report

import (
	"context"
	"net"
	"net/netip"
	"strings"
	"sync"
	"time"

	"github.com/bwtracker/bwtracker/internal/dnsnames"
	"github.com/bwtracker/bwtracker/internal/store"
)

// DefaultResolveTimeout bounds how long a report waits for reverse DNS.
const DefaultResolveTimeout = 1500 * time.Millisecond

// Resolver turns remote addresses into host names by reverse DNS: lookups
// run concurrently, each address is asked once per Resolver (failures are
// cached too), and callers never wait longer than their deadline.
type Resolver struct {
	// Lookup does one reverse lookup; nil = net.DefaultResolver.LookupAddr.
	Lookup func(ctx context.Context, addr string) ([]string, error)
	// Workers bounds concurrent lookups (0 = 64).
	Workers int

	mu      sync.Mutex
	names   map[string]string        // resolved ("" = no name)
	pending map[string]chan struct{} // in flight
	sem     chan struct{}
}

// NewResolver makes a Resolver using the system resolver.
func NewResolver() *Resolver { return &Resolver{} }

func (r *Resolver) init() {
	if r.names == nil {
		r.names = map[string]string{}
		r.pending = map[string]chan struct{}{}
		w := r.Workers
		if w <= 0 {
			w = 64
		}
		r.sem = make(chan struct{}, w)
	}
}

// Cached returns the name of addr if it is known ("" when it has none or
// was not looked up yet) and whether a lookup finished.
func (r *Resolver) Cached(addr string) (string, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.init()
	n, ok := r.names[addr]
	return n, ok
}

// Start begins looking up addrs in the background and returns at once.
// Lookups outlive no longer than timeout each.
func (r *Resolver) Start(addrs []string, timeout time.Duration) {
	r.mu.Lock()
	r.init()
	var todo []string
	for _, a := range addrs {
		if _, done := r.names[a]; done {
			continue
		}
		if _, busy := r.pending[a]; busy {
			continue
		}
		if _, err := netip.ParseAddr(a); err != nil {
			r.names[a] = ""
			continue
		}
		r.pending[a] = make(chan struct{})
		todo = append(todo, a)
	}
	r.mu.Unlock()
	for _, a := range todo {
		go r.lookup(a, timeout)
	}
}

func (r *Resolver) lookup(addr string, timeout time.Duration) {
	r.sem <- struct{}{}
	defer func() { <-r.sem }()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	look := r.Lookup
	if look == nil {
		look = net.DefaultResolver.LookupAddr
	}
	names, err := look(ctx, addr)
	name := ""
	if err == nil && len(names) > 0 {
		name = strings.TrimSuffix(names[0], ".")
	}
	r.mu.Lock()
	r.names[addr] = name
	ch := r.pending[addr]
	delete(r.pending, addr)
	r.mu.Unlock()
	close(ch)
}

// Resolve looks up addrs concurrently and waits until all are done or
// timeout has passed; it returns the names found (addresses without a
// name are absent).
func (r *Resolver) Resolve(addrs []string, timeout time.Duration) map[string]string {
	r.Start(addrs, timeout)
	deadline := time.After(timeout)
	r.mu.Lock()
	var wait []chan struct{}
	for _, a := range addrs {
		if ch, ok := r.pending[a]; ok {
			wait = append(wait, ch)
		}
	}
	r.mu.Unlock()
wait:
	for _, ch := range wait {
		select {
		case <-ch:
		case <-deadline:
			break wait
		}
	}
	out := map[string]string{}
	r.mu.Lock()
	for _, a := range addrs {
		if n := r.names[a]; n != "" {
			out[a] = n
		}
	}
	r.mu.Unlock()
	return out
}

// Cache keeps reverse-DNS results across runs (internal/store: rdns_cache).
type Cache interface {
	ReverseNames(ctx context.Context, ips []string) (map[string]store.ReverseName, error)
	SaveReverseNames(ctx context.Context, names map[string]string, domain func(string) string) error
}

// How long cached results are trusted before they are asked again (a
// stale name is still shown while it is).
const (
	CacheFresh    = 7 * 24 * time.Hour
	CacheNegative = time.Hour
)

// ResolveCached names addrs by reverse DNS without ever dropping a name it
// already knows: loopback addresses are "localhost" without asking, names
// in cache are used at once (and asked again in the background of this
// run when older than CacheFresh; failures are retried after
// CacheNegative), and the rest are looked up concurrently for at most
// timeout. What finished is saved to cache for the next run. late counts
// the addresses that got no name because their lookup did not finish in
// time.
func (r *Resolver) ResolveCached(ctx context.Context, cache Cache, addrs []string, timeout time.Duration) (names map[string]string, late int) {
	names = map[string]string{}
	seen := map[string]bool{}
	var ask []string
	for _, a := range addrs {
		ip, err := netip.ParseAddr(a)
		if err != nil || seen[a] {
			continue
		}
		seen[a] = true
		if ip.Unmap().IsLoopback() {
			names[a] = "localhost"
			continue
		}
		ask = append(ask, a)
	}
	cached := map[string]store.ReverseName{}
	if cache != nil && len(ask) > 0 {
		if c, err := cache.ReverseNames(ctx, ask); err == nil {
			cached = c
		}
	}
	now := time.Now()
	var todo []string
	for _, a := range ask {
		c, ok := cached[a]
		switch {
		case ok && c.Name != "":
			names[a] = c.Name
			if now.Sub(c.Resolved) > CacheFresh {
				todo = append(todo, a)
			}
		case ok && now.Sub(c.Resolved) <= CacheNegative:
			// asked recently, had no name
		default:
			todo = append(todo, a)
		}
	}
	if len(todo) == 0 {
		return names, 0
	}
	found := r.Resolve(todo, timeout)
	save := map[string]string{}
	for _, a := range todo {
		n, done := r.Cached(a)
		switch {
		case done:
			save[a] = n
			if n != "" {
				names[a] = found[a]
			}
		case names[a] == "":
			late++
		}
	}
	if cache != nil && len(save) > 0 {
		// Best effort: a reader without write access asks again next time.
		_ = cache.SaveReverseNames(ctx, save, dnsnames.Domain)
	}
	return names, late
}
