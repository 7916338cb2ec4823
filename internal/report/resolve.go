package report

import (
	"context"
	"net"
	"net/netip"
	"strings"
	"sync"
	"time"
)

// DefaultResolveTimeout bounds how long a report waits for reverse DNS.
const DefaultResolveTimeout = 1500 * time.Millisecond

// Resolver turns remote addresses into host names by reverse DNS: lookups
// run concurrently, each address is asked once per Resolver (failures are
// cached too), and callers never wait longer than their deadline.
type Resolver struct {
	// Lookup does one reverse lookup; nil = net.DefaultResolver.LookupAddr.
	Lookup func(ctx context.Context, addr string) ([]string, error)
	// Workers bounds concurrent lookups (0 = 16).
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
			w = 16
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
