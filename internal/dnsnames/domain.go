package dnsnames

import (
	"net/netip"
	"strings"

	"golang.org/x/net/publicsuffix"
)

// Domain is the registrable domain of a host name (eTLD+1 by the Public
// Suffix List that golang.org/x/net/publicsuffix embeds):
// "www.google.co.uk" -> "google.co.uk", "a.b.github.io" -> "b.github.io".
// A name that is itself a public suffix, a single label ("localhost") or
// an address keeps its own text; "" stays "".
func Domain(name string) string {
	name = strings.TrimSuffix(strings.ToLower(name), ".")
	if name == "" {
		return ""
	}
	if _, err := netip.ParseAddr(name); err == nil {
		return name
	}
	d, err := publicsuffix.EffectiveTLDPlusOne(name)
	if err != nil {
		return name
	}
	return d
}
