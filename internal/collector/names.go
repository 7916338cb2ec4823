package collector

// Remote names from DNS answers: the collector feeds the kernel's captured
// answers (bpf/dns.go) into a dnsnames.Table and persists what changed
// after each successful write, so report and the API name remotes within
// one interval and history keeps its names after a restart.

import (
	"context"
	"net/netip"
	"time"

	"github.com/bwtracker/bwtracker/internal/bpf"
	"github.com/bwtracker/bwtracker/internal/dnsnames"
	"github.com/bwtracker/bwtracker/internal/store"
)

// DNSSource is implemented by a Source that captures DNS answers
// (internal/bpf.Tracker); DNSEvents is nil when the capture is off.
type DNSSource interface {
	DNSEvents() <-chan bpf.DNSEvent
}

// NameSink is implemented by a store that keeps DNS names.
type NameSink interface {
	PutNames(ctx context.Context, recs []store.NameRecord) error
}

// consumeDNS parses captured answers into the names table until the
// source closes its channel.
func (c *Collector) consumeDNS() {
	ds, ok := c.src.(DNSSource)
	if !ok || c.cfg.Names == nil {
		return
	}
	ch := ds.DNSEvents()
	if ch == nil {
		return
	}
	go func() {
		for ev := range ch {
			c.cfg.Names.ObservePayload(ev.NetNS, ev.Payload(), ev.Transport == bpf.DNSTCP, time.Now())
		}
	}()
}

// persistNames writes the names that changed since the last call; on
// failure they wait for the next flush.
func (c *Collector) persistNames(ctx context.Context) {
	ns, ok := c.sink.(NameSink)
	if c.cfg.Names == nil || !ok {
		return
	}
	recs := c.cfg.Names.Pending()
	if len(recs) == 0 {
		return
	}
	out := make([]store.NameRecord, len(recs))
	for i, r := range recs {
		out[i] = store.NameRecord{NetNS: r.NetNS, IP: r.Addr.String(), Name: r.Name, Domain: r.Domain,
			FirstSeen: r.FirstSeen, LastSeen: r.LastSeen, Expires: r.Expires}
	}
	if err := ns.PutNames(ctx, out); err != nil {
		c.cfg.Names.Requeue(recs)
		c.log.Debug("recording DNS names; retried next interval", "names", len(recs), "err", err)
	}
}

// LoadNames fills the names table from the store (newest limit names), so
// the live view names remotes after a restart too.
func LoadNames(ctx context.Context, t *dnsnames.Table, st interface {
	LoadNames(ctx context.Context, limit int) ([]store.NameRecord, error)
}, limit int) error {
	recs, err := st.LoadNames(ctx, limit)
	if err != nil {
		return err
	}
	rs := make([]dnsnames.Record, 0, len(recs))
	for _, r := range recs {
		rec, ok := dnsnames.RecordFrom(r.NetNS, r.IP, r.Name, r.Domain, r.FirstSeen, r.LastSeen, r.Expires)
		if ok {
			rs = append(rs, rec)
		}
	}
	t.Load(rs)
	return nil
}

// remoteName is the name the process's namespace resolved ip from, "" when
// none is known (live connections, ConnRate.RemoteName).
func (c *Collector) remoteName(netns uint32, ip string) string {
	if c.cfg.Names == nil {
		return ""
	}
	a, err := netip.ParseAddr(ip)
	if err != nil {
		return ""
	}
	if r, ok := c.cfg.Names.Lookup(netns, a); ok {
		return r.Name
	}
	return ""
}
