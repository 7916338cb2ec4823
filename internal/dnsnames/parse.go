// Package dnsnames names remote addresses by the DNS answers local
// processes received: the kernel copies every packet from port 53 that is
// delivered to a local socket (ebpf/dns.bpf.h, internal/bpf/dns.go), Parse
// reads the answers, and a Table keeps address -> name per network
// namespace, which the collector persists in the store (dns_names) so
// history keeps its names after a restart.
//
// The name kept is the one the process asked for: a CNAME chain
// (www.example.com -> example.com.cdn.net -> 192.0.2.7) names 192.0.2.7
// "www.example.com". Answers for loopback and unspecified addresses are
// ignored (a resolver that answers 127.0.0.1 for blocked names would
// otherwise name every loopback connection), and names are scoped per
// network namespace: a container's resolver names only that container's
// remotes.
//
// Parsing uses golang.org/x/net/dns/dnsmessage rather than miekg/dns: it is
// already in the module graph (x/net, with publicsuffix for Domain), it
// parses one resource at a time so an answer cut short by the kernel's copy
// limit still yields the records before the cut, and it bounds compression
// pointers (at most 10 per name), so malformed, truncated and looping
// packets end in an error, never a crash or a stall (FuzzParse).
//
// What it cannot see: names resolved over DNS-over-HTTPS or DNS-over-TLS
// (the answer is inside TLS on port 443/853), and addresses a program has
// hard-coded or cached from before the daemon started. Those remotes keep
// no name here; report shows them by reverse DNS.
package dnsnames

import (
	"encoding/binary"
	"errors"
	"net/netip"
	"strings"

	"golang.org/x/net/dns/dnsmessage"
)

// Answer is one address a DNS response gave for the name asked.
type Answer struct {
	Name string // the question's name, lower case, no trailing dot
	Addr netip.Addr
	TTL  uint32 // seconds: the smallest TTL along the CNAME chain
}

// Limits that bound the work per packet.
const (
	maxAnswers = 64 // resource records read per message
	maxChain   = 16 // CNAME hops followed
)

// ErrNotAnswer is returned for DNS messages that name nothing: queries,
// errors (NXDOMAIN, SERVFAIL, ...) and responses without a question.
var ErrNotAnswer = errors.New("not a successful DNS answer")

// ParsePayload parses what the kernel copied from a packet's transport
// payload: a DNS message over UDP, or over TCP (tcp) a message preceded by
// its 2-byte length. Only the start of a TCP stream's message is
// recognised; continuation segments fail to parse and are ignored.
func ParsePayload(payload []byte, tcp bool) ([]Answer, error) {
	if tcp {
		if len(payload) < 2 {
			return nil, errors.New("tcp dns: no length prefix")
		}
		n := int(binary.BigEndian.Uint16(payload))
		payload = payload[2:]
		if n < len(payload) {
			payload = payload[:n]
		}
	}
	return Parse(payload)
}

// Parse reads the answers of one DNS response. A message cut short (the
// kernel copies at most abi.DNSCap bytes) yields the answers before the
// cut together with the error that ended the parse.
func Parse(msg []byte) ([]Answer, error) {
	var p dnsmessage.Parser
	h, err := p.Start(msg)
	if err != nil {
		return nil, err
	}
	if !h.Response || h.RCode != dnsmessage.RCodeSuccess {
		return nil, ErrNotAnswer
	}
	q, err := p.Question()
	if err != nil {
		if errors.Is(err, dnsmessage.ErrSectionDone) {
			return nil, ErrNotAnswer
		}
		return nil, err
	}
	asked, ok := canon(q.Name)
	if !ok {
		return nil, errors.New("dns: question name is not a host name")
	}
	if err := p.SkipAllQuestions(); err != nil {
		return nil, err
	}
	type rec struct {
		owner string
		addr  netip.Addr
		ttl   uint32
	}
	var recs []rec
	cnames := map[string]string{} // owner -> target
	cttl := map[string]uint32{}   // owner -> TTL of its CNAME
	var perr error
read:
	for i := 0; i < maxAnswers; i++ {
		ah, err := p.AnswerHeader()
		if err != nil {
			if !errors.Is(err, dnsmessage.ErrSectionDone) {
				perr = err
			}
			break
		}
		owner, ok := canon(ah.Name)
		switch {
		case !ok:
			err = p.SkipAnswer()
		case ah.Type == dnsmessage.TypeA && ah.Class == dnsmessage.ClassINET:
			var r dnsmessage.AResource
			if r, err = p.AResource(); err == nil {
				recs = append(recs, rec{owner, netip.AddrFrom4(r.A), ah.TTL})
			}
		case ah.Type == dnsmessage.TypeAAAA && ah.Class == dnsmessage.ClassINET:
			var r dnsmessage.AAAAResource
			if r, err = p.AAAAResource(); err == nil {
				recs = append(recs, rec{owner, netip.AddrFrom16(r.AAAA).Unmap(), ah.TTL})
			}
		case ah.Type == dnsmessage.TypeCNAME:
			var r dnsmessage.CNAMEResource
			if r, err = p.CNAMEResource(); err == nil {
				if t, ok := canon(r.CNAME); ok {
					cnames[owner], cttl[owner] = t, ah.TTL
				}
			}
		default:
			err = p.SkipAnswer()
		}
		if err != nil {
			perr = err
			break read
		}
	}
	// The chain from the question: every name on it stands for asked.
	chain := map[string]uint32{asked: ^uint32(0)}
	cur, ttl := asked, ^uint32(0)
	for i := 0; i < maxChain; i++ {
		next, ok := cnames[cur]
		if !ok {
			break
		}
		ttl = min(ttl, cttl[cur])
		if _, seen := chain[next]; seen {
			break // a CNAME loop
		}
		chain[next] = ttl
		cur = next
	}
	var out []Answer
	for _, r := range recs {
		if !Nameable(r.addr) {
			continue
		}
		if ct, ok := chain[r.owner]; ok {
			out = append(out, Answer{Name: asked, Addr: r.addr, TTL: min(r.ttl, ct)})
		}
	}
	return out, perr
}

// Nameable tells whether an answer for addr may name it: not loopback,
// unspecified or multicast (see the package doc).
func Nameable(a netip.Addr) bool {
	return a.IsValid() && !a.IsLoopback() && !a.IsUnspecified() && !a.IsMulticast()
}

// canon turns a DNS name into the form kept: lower case, no trailing dot.
// Names with bytes that cannot be in a host name (control characters,
// spaces, non-ASCII) are refused.
func canon(n dnsmessage.Name) (string, bool) {
	s := strings.TrimSuffix(n.String(), ".")
	if s == "" || len(s) > 253 {
		return "", false
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; c <= ' ' || c >= 0x7f {
			return "", false
		}
	}
	return strings.ToLower(s), true
}
