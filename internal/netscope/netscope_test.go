package netscope

import (
	"net"
	"net/netip"
	"testing"
)

func fake(cidrs ...string) func() ([]net.Addr, error) {
	return func() ([]net.Addr, error) {
		var out []net.Addr
		for _, s := range cidrs {
			ip, n, err := net.ParseCIDR(s)
			if err != nil {
				panic(err)
			}
			n.IP = ip
			out = append(out, n)
		}
		return out, nil
	}
}

func TestClassify(t *testing.T) {
	c := New(nil)
	// This host: lo, a CGNAT address (e.g. a carrier or Tailscale) and a
	// public /24.
	c.interfaces = fake("127.0.0.1/8", "::1/128", "100.64.3.7/24", "203.0.113.10/24", "2001:db8:1::5/64", "0.0.0.0/0")
	for ip, want := range map[string]string{
		"127.0.0.1":          Loopback,
		"127.5.5.5":          Loopback,
		"::1":                Loopback,
		"::ffff:127.0.0.1":   Loopback,
		"0.0.0.0":            Loopback,
		"203.0.113.10":       Loopback, // our own address
		"10.1.2.3":           LAN,
		"172.16.0.1":         LAN,
		"172.31.255.255":     LAN,
		"192.168.1.1":        LAN,
		"169.254.169.254":    LAN,
		"fe80::1%eth0":       LAN,
		"fd12:3456::1":       LAN,
		"100.64.3.1":         LAN,      // CGNAT: the local network here
		"100.64.9.1":         Internet, // CGNAT, another subnet
		"203.0.113.99":       LAN,      // same public /24 as an interface
		"2001:db8:1::99":     LAN,
		"255.255.255.255":    LAN,
		"224.0.0.251":        Multicast,
		"239.255.255.250":    Multicast,
		"ff02::fb":           Multicast,
		"8.8.8.8":            Internet,
		"172.32.0.1":         Internet,
		"2606:4700::1111":    Internet,
		"":                   Unknown,
		"(overflow)":         Unknown,
		"::ffff:192.168.0.9": LAN,
	} {
		if got := c.Classify(ip); got != want {
			t.Errorf("Classify(%q) = %q, want %q", ip, got, want)
		}
	}
}

func TestOverride(t *testing.T) {
	lan, err := ParseCIDRs([]string{"198.18.0.0/15,10.9.0.0/16", "2001:db8::7"})
	if err != nil {
		t.Fatal(err)
	}
	c := New(lan)
	c.interfaces = fake("192.168.1.5/24")
	for ip, want := range map[string]string{
		"198.19.1.1":  LAN,
		"10.9.3.3":    LAN,
		"10.1.1.1":    Internet, // RFC 1918, but not in --lan-cidr
		"192.168.1.7": Internet, // the interface's network is replaced too
		"192.168.1.5": Loopback,
		"2001:db8::7": LAN,
		"2001:db8::8": Internet,
		"169.254.1.1": LAN,
		"127.0.0.1":   Loopback,
	} {
		if got := c.Classify(ip); got != want {
			t.Errorf("Classify(%q) = %q, want %q", ip, got, want)
		}
	}
	for _, bad := range []string{"10.0.0.0/33", "lan", "1.2.3"} {
		if _, err := ParseCIDRs([]string{bad}); err == nil {
			t.Errorf("ParseCIDRs(%q): no error", bad)
		}
	}
	if p, _ := ParseCIDRs([]string{"::ffff:10.0.0.0/104"}); len(p) != 1 || p[0] != netip.MustParsePrefix("10.0.0.0/8") {
		t.Errorf("mapped prefix: %v", p)
	}
}
