package integration

import (
	"context"
	"fmt"
	"net"
	"os"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/bwtracker/bwtracker/internal/store"
)

// tcpPair runs a server and a client child over addr and checks both
// directions of both processes exactly, with the right remote address.
func tcpPair(t *testing.T, host string, up, down int) {
	d := startDaemon(t, "1s")
	srv := startChild(t, "tcp-server", net.JoinHostPort(host, "0"), strconv.Itoa(down))
	port := srv.waitReady()
	cli := startChild(t, "tcp-client", net.JoinHostPort(host, port), strconv.Itoa(up))
	cr := cli.wait()
	sr := srv.wait()
	mustEqual(t, "client's own count of sent bytes", cr.TX, uint64(up))
	mustEqual(t, "client's own count of received bytes", cr.RX, uint64(down))
	mustEqual(t, "server's own count of received bytes", sr.RX, uint64(up))
	d.stop()

	rows := d.report("process,remote,protocol")
	c := forPID(rows, cli.pid())
	s := forPID(rows, srv.pid())
	if len(c) != 1 || len(s) != 1 {
		t.Fatalf("want one row per process, got client %d server %d:\n%s", len(c), len(s), dump(rows))
	}
	mustEqual(t, "client tx (upload)", c[0].TX, uint64(up))
	mustEqual(t, "client rx (download)", c[0].RX, uint64(down))
	mustEqual(t, "server rx", s[0].RX, uint64(up))
	mustEqual(t, "server tx", s[0].TX, uint64(down))
	for _, r := range []row{c[0], s[0]} {
		if r.Protocol != "tcp" || r.RemoteIP != host || r.Comm != expectedComm() {
			t.Errorf("row %+v: want protocol tcp, remote %s, comm %s", r, host, expectedComm())
		}
	}
	if c[0].Exe == "" {
		t.Errorf("client exe not resolved: %+v", c[0])
	}
}

func TestTCPv4UpDown(t *testing.T) { tcpPair(t, "127.0.0.1", 1_234_567, 765_432) }

func TestTCPv6UpDown(t *testing.T) { tcpPair(t, "::1", 2_000_003, 99_999) }

func TestUDPConnected(t *testing.T) {
	d := startDaemon(t, "1s")
	srv := startChild(t, "udp-server", "127.0.0.1:0", "40")
	port := srv.waitReady()
	cli := startChild(t, "udp-connected", "127.0.0.1:"+port, "40", "1200")
	cr := cli.wait()
	sr := srv.wait()
	mustEqual(t, "client's own tx", cr.TX, 40*1200)
	mustEqual(t, "server's own rx", sr.RX, 40*1200)
	d.stop()
	rows := d.report("process,remote,protocol")
	c := forPID(rows, cli.pid())
	if len(c) != 1 || c[0].Protocol != "udp" || c[0].RemoteIP != "127.0.0.1" {
		t.Fatalf("client rows:\n%s", dump(c))
	}
	mustEqual(t, "client tx", c[0].TX, 40*1200)
	s := forPID(rows, srv.pid())
	tx, rx := sum(s)
	mustEqual(t, "server rx", rx, 40*1200)
	mustEqual(t, "server tx", tx, 0)
}

// Unconnected UDP: the socket has no peer, so the remote comes from the
// sendto/recvfrom call (cgroup sock_addr hooks). Two destinations, two
// senders' addresses, sendto and sendmmsg.
func TestUDPUnconnectedSendtoRecvfrom(t *testing.T) {
	d := startDaemon(t, "1s")
	const count, size = 25, 333
	perDst := uint64(2 * count * size) // sendto + sendmmsg
	srvA := startChild(t, "udp-server", "127.0.0.2:0", strconv.Itoa(2*count))
	pa := srvA.waitReady()
	srvB := startChild(t, "udp-server", "127.0.0.3:0", strconv.Itoa(2*count))
	pb := srvB.waitReady()
	cli := startChild(t, "udp-sendto", "127.0.0.5:0", "127.0.0.2:"+pa+",127.0.0.3:"+pb, strconv.Itoa(count), strconv.Itoa(size))
	cr := cli.wait()
	ra, rb := srvA.wait(), srvB.wait()
	mustEqual(t, "client's own tx", cr.TX, 2*perDst)
	mustEqual(t, "server A's own rx from 127.0.0.5", ra.Peers["127.0.0.5"], perDst)
	mustEqual(t, "server B's own rx from 127.0.0.5", rb.Peers["127.0.0.5"], perDst)
	d.stop()

	rows := d.report("process,remote,protocol")
	byRemote := map[string]row{}
	for _, r := range forPID(rows, cli.pid()) {
		byRemote[r.RemoteIP] = r
	}
	mustEqual(t, "client tx to 127.0.0.2", byRemote["127.0.0.2"].TX, perDst)
	mustEqual(t, "client tx to 127.0.0.3", byRemote["127.0.0.3"].TX, perDst)
	if len(byRemote) != 2 {
		t.Errorf("client rows: %s", dump(forPID(rows, cli.pid())))
	}
	for _, s := range []*child{srvA, srvB} {
		r := forPID(rows, s.pid())
		if len(r) != 1 || r[0].RemoteIP != "127.0.0.5" || r[0].Protocol != "udp" {
			t.Errorf("server rows: %s", dump(r))
			continue
		}
		mustEqual(t, "server rx from 127.0.0.5", r[0].RX, perDst)
	}
}

func TestUDPv6Unconnected(t *testing.T) {
	d := startDaemon(t, "1s")
	srv := startChild(t, "udp-server", "[::1]:0", "20")
	p := srv.waitReady()
	cli := startChild(t, "udp-sendto", "[::1]:0", "[::1]:"+p, "10", "1000")
	cli.wait()
	srv.wait()
	d.stop()
	rows := d.report("process,remote,protocol")
	c := forPID(rows, cli.pid())
	if len(c) != 1 || c[0].RemoteIP != "::1" {
		t.Fatalf("client rows: %s", dump(c))
	}
	mustEqual(t, "client tx", c[0].TX, 20*1000)
	s := forPID(rows, srv.pid())
	if len(s) != 1 || s[0].RemoteIP != "::1" {
		t.Fatalf("server rows: %s", dump(s))
	}
	mustEqual(t, "server rx", s[0].RX, 20*1000)
}

func TestICMPEchoWithPayload(t *testing.T) {
	d := startDaemon(t, "1s")
	const payload, count = 1000, 5
	c := startChild(t, "icmp-ping", "127.0.0.1", strconv.Itoa(payload), strconv.Itoa(count))
	r := c.wait()
	mustEqual(t, "pinger's own tx", r.TX, count*(8+payload))
	d.stop()
	rows := forPID(d.report("process,protocol"), c.pid())
	if len(rows) != 1 || rows[0].Protocol != "icmp" {
		t.Fatalf("rows: %s", dump(rows))
	}
	mustEqual(t, "icmp tx (header + payload)", rows[0].TX, count*(8+payload))
	mustEqual(t, "icmp rx (what recvfrom returned)", rows[0].RX, r.RX)
}

// 50 processes that each send 64 KiB and exit at once: all named, all
// counted.
func TestShortLivedProcesses(t *testing.T) {
	d := startDaemon(t, "1s")
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	var wg sync.WaitGroup
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				buf := make([]byte, 65536)
				for {
					if _, err := c.Read(buf); err != nil {
						break
					}
				}
				c.Close()
			}()
		}
	}()
	const n = 50
	kids := make([]*child, n)
	for i := range kids {
		kids[i] = startChild(t, "burst", ln.Addr().String(), "65536")
	}
	start := time.Now()
	for _, k := range kids {
		if r := k.wait(); r.TX != 65536 {
			t.Fatalf("child sent %d", r.TX)
		}
	}
	t.Logf("50 children ran in %s", time.Since(start))
	d.stop()
	rows := d.report("process")
	for _, k := range kids {
		r := forPID(rows, k.pid())
		if len(r) != 1 {
			t.Errorf("pid %d: %d rows", k.pid(), len(r))
			continue
		}
		mustEqual(t, fmt.Sprintf("pid %d tx", k.pid()), r[0].TX, 65536)
		if r[0].Comm != expectedComm() {
			t.Errorf("pid %d named %q, want %q", k.pid(), r[0].Comm, expectedComm())
		}
		if r[0].Exe == "" {
			t.Errorf("pid %d: exe unknown", k.pid())
		}
	}
}

// A multi-second 4 GiB transfer while the daemon drains every 100 ms: no
// byte lost across the map swaps.
func TestNoLossWhileDraining(t *testing.T) {
	d := startDaemon(t, "100ms")
	const up = 4 << 30
	srv := startChild(t, "tcp-server", "127.0.0.1:0", "0")
	port := srv.waitReady()
	cli := startChild(t, "tcp-client", "127.0.0.1:"+port, strconv.Itoa(up))
	start := time.Now()
	cli.wait()
	srv.wait()
	elapsed := time.Since(start)
	time.Sleep(300 * time.Millisecond) // a few drains with nothing new
	d.stop()
	rows := d.report("process")
	c, s := forPID(rows, cli.pid()), forPID(rows, srv.pid())
	if len(c) != 1 || len(s) != 1 {
		t.Fatalf("rows: %s", dump(rows))
	}
	mustEqual(t, "client tx", c[0].TX, up)
	mustEqual(t, "server rx", s[0].RX, up)
	// The claim is "no loss while draining": the client's bytes must have
	// been drained in several flushes while it was still sending, or the
	// equality above proved nothing. Each 100 ms flush is its own point.
	st, err := store.Open(d.db, store.Options{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	pts, err := st.Series(context.Background(), store.Query{PID: uint32(cli.pid())}, 100*time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("transfer took %s, drained in %d flushes", elapsed, len(pts))
	if len(pts) < 3 {
		t.Fatalf("the %d-byte transfer was drained in %d flushes (took %s): it must span at least 3 drains to test draining under load", up, len(pts), elapsed)
	}
}

// SIGTERM mid-transfer: the client sends 64 KiB chunks and waits for an ack
// after each, so we know exactly what was sent when the daemon is told to
// stop; all of it must be in the database.
func TestSIGTERMMidTransfer(t *testing.T) {
	d := startDaemon(t, "1s")
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	const chunk, chunks, stopAfter = 65536, 40, 17
	cli := startChild(t, "stepped-client", ln.Addr().String(), strconv.Itoa(chunk), strconv.Itoa(chunks))
	conn, err := ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	buf := make([]byte, chunk)
	for i := 0; i < chunks; i++ {
		if _, err := readFull(conn, buf); err != nil {
			t.Fatal(err)
		}
		if i == stopAfter-1 {
			// stopAfter chunks sent, client blocked on its ack: stop the
			// daemon now.
			d.cmd.Process.Signal(syscall.SIGTERM)
			if err := d.cmd.Wait(); err != nil {
				t.Fatalf("daemon exit: %v\n%s", err, d.log())
			}
		}
		if _, err := conn.Write([]byte{1}); err != nil {
			t.Fatal(err)
		}
	}
	cli.wait()
	rows := forPID(d.report("process"), cli.pid())
	if len(rows) != 1 {
		t.Fatalf("rows: %s", dump(rows))
	}
	mustEqual(t, "client tx before SIGTERM", rows[0].TX, stopAfter*chunk)
	mustEqual(t, "client rx (acks) before SIGTERM", rows[0].RX, stopAfter-1)
	me := forPID(d.report("process"), os.Getpid())
	if len(me) != 1 {
		t.Fatalf("test process rows: %s", dump(me))
	}
	mustEqual(t, "receiver rx before SIGTERM", me[0].RX, stopAfter*chunk)
}

func readFull(c net.Conn, buf []byte) (int, error) {
	n := 0
	for n < len(buf) {
		m, err := c.Read(buf[n:])
		n += m
		if err != nil {
			return n, err
		}
	}
	return n, nil
}

// A full flows map is never silent: the kernel counts the flows it had no
// room for and the daemon logs them, as detail lost (their bytes are kept
// in the overflow map), not as dropped increments.
func TestMapFullIsCountedAndLogged(t *testing.T) {
	d := startDaemon(t, "1s", "--map-entries", "64", "--listen", "127.0.0.1:19312")
	f := startChild(t, "bench-flows", "300", "150")
	f.waitReady()
	f.wait()
	time.Sleep(1200 * time.Millisecond)
	d.stop()
	if !strings.Contains(d.log(), "detail lost, bytes kept") || !strings.Contains(d.log(), "cause=flows_map_full") {
		t.Fatalf("no detail loss logged with a 64-entry map and 300 flows:\n%s", d.log())
	}
	if strings.Contains(d.log(), "increments dropped") {
		t.Fatalf("a full flows map dropped increments:\n%s", d.log())
	}
}
