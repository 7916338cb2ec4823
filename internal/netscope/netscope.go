// Package netscope says where a remote address is, seen from this host:
// the `scope` dimension of `report --by scope` and the API.
//
//	loopback   127.0.0.0/8, ::1, the unspecified address (0.0.0.0, :::
//	           the kernel delivers it locally) and the host's own interface
//	           addresses: the traffic never leaves the host.
//	multicast  224.0.0.0/4, ff00::/8.
//	lan        a local network: by default RFC 1918 (10/8, 172.16/12,
//	           192.168/16), link-local (169.254/16, fe80::/10), ULA
//	           (fc00::/7), the limited broadcast 255.255.255.255, and every
//	           network an interface of this host has an address in (which is
//	           how CGNAT 100.64/10, or a public subnet, counts as LAN only on a
//	           host that is on it). `run --lan-cidr` replaces the whole list:
//	           then exactly those networks (plus link-local and broadcast,
//	           which never route) are LAN.
//	internet   everything else.
//	unknown    no address (the kernel saw no peer) or a placeholder such as
//	           "(overflow)".
//
// Interface addresses are read with net.Interfaces when classifying, at
// most every RefreshEvery. The store classifies an endpoint once, when it
// first interns it (endpoints.scope), so a laptop that changes networks
// keeps the scope an address had when it was first seen.
package netscope

import (
	"fmt"
	"net"
	"net/netip"
	"strings"
	"sync"
	"time"
)

// The scope names (the `scope` JSON field).
const (
	Loopback  = "loopback"
	LAN       = "lan"
	Multicast = "multicast"
	Internet  = "internet"
	Unknown   = "unknown"
)

// Scopes lists the scope names, nearest first.
var Scopes = []string{Loopback, LAN, Multicast, Internet, Unknown}

// RefreshEvery is how often the interface addresses are re-read.
const RefreshEvery = 30 * time.Second

var private = mustPrefixes("10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "fc00::/7")

var linkLocal = mustPrefixes("169.254.0.0/16", "fe80::/10")

func mustPrefixes(ss ...string) []netip.Prefix {
	out := make([]netip.Prefix, len(ss))
	for i, s := range ss {
		out[i] = netip.MustParsePrefix(s)
	}
	return out
}

// ParseCIDRs parses --lan-cidr values (a bare address is a /32 or /128).
func ParseCIDRs(vals []string) ([]netip.Prefix, error) {
	var out []netip.Prefix
	for _, v := range vals {
		for _, s := range strings.Split(v, ",") {
			s = strings.TrimSpace(s)
			if s == "" {
				continue
			}
			p, err := netip.ParsePrefix(s)
			if err != nil {
				a, aerr := netip.ParseAddr(s)
				if aerr != nil {
					return nil, fmt.Errorf("%q is not a network (want CIDR such as 192.168.0.0/16 or fd00::/8)", s)
				}
				p = netip.PrefixFrom(a.Unmap(), a.Unmap().BitLen())
			}
			out = append(out, netip.PrefixFrom(p.Addr().Unmap(), p.Bits()-unmapBits(p)).Masked())
		}
	}
	return out, nil
}

func unmapBits(p netip.Prefix) int {
	if p.Addr().Is4In6() {
		return 96
	}
	return 0
}

// Classifier classifies addresses; safe for concurrent use.
type Classifier struct {
	override []netip.Prefix // --lan-cidr; nil = the default list
	// interfaces returns the host's interface addresses (net.InterfaceAddrs).
	interfaces func() ([]net.Addr, error)

	mu        sync.Mutex
	read      time.Time
	ifaceNets []netip.Prefix
	own       map[netip.Addr]bool
}

// New returns a classifier. lan, when not empty, replaces the default list
// of local networks (see the package doc).
func New(lan []netip.Prefix) *Classifier {
	return &Classifier{override: lan, interfaces: net.InterfaceAddrs}
}

var (
	defaultOnce sync.Once
	defaultC    *Classifier
)

// Default is the classifier with the default LAN list, for code that has no
// --lan-cidr (migrating old endpoints, reports on files without scopes).
func Default() *Classifier {
	defaultOnce.Do(func() { defaultC = New(nil) })
	return defaultC
}

func (c *Classifier) refresh() {
	if !c.read.IsZero() && time.Since(c.read) < RefreshEvery {
		return
	}
	c.read = time.Now()
	addrs, err := c.interfaces()
	if err != nil {
		return // keep what we had
	}
	nets := []netip.Prefix{}
	own := map[netip.Addr]bool{}
	for _, a := range addrs {
		ipn, ok := a.(*net.IPNet)
		if !ok {
			continue
		}
		ip, ok := netip.AddrFromSlice(ipn.IP)
		if !ok {
			continue
		}
		ip = ip.Unmap()
		own[ip] = true
		ones, _ := ipn.Mask.Size()
		if ip.IsLoopback() || (ip.Is4() && ones < 8) || (ip.Is6() && ones < 16) {
			continue // lo, or an implausibly wide route-all network
		}
		nets = append(nets, netip.PrefixFrom(ip, ones).Masked())
	}
	c.ifaceNets, c.own = nets, own
}

// Classify returns the scope of a remote address in text form.
func (c *Classifier) Classify(ip string) string {
	a, err := netip.ParseAddr(ip)
	if err != nil {
		return Unknown
	}
	return c.ClassifyAddr(a)
}

// ClassifyAddr returns the scope of a.
func (c *Classifier) ClassifyAddr(a netip.Addr) string {
	if !a.IsValid() {
		return Unknown
	}
	a = a.Unmap().WithZone("")
	switch {
	case a.IsLoopback() || a.IsUnspecified():
		return Loopback
	case a.IsMulticast():
		return Multicast
	case a == netip.AddrFrom4([4]byte{255, 255, 255, 255}):
		return LAN
	}
	for _, p := range linkLocal {
		if p.Contains(a) {
			return LAN
		}
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.refresh()
	if c.own[a] {
		return Loopback
	}
	if c.override != nil {
		for _, p := range c.override {
			if p.Contains(a) {
				return LAN
			}
		}
		return Internet
	}
	for _, p := range private {
		if p.Contains(a) {
			return LAN
		}
	}
	for _, p := range c.ifaceNets {
		if p.Contains(a) {
			return LAN
		}
	}
	return Internet
}
