package integration

// Remote names from the DNS answers processes receive: a responder the test
// runs inside a network namespace it creates (resolv.conf pointing at it via
// /etc/netns/NAME/resolv.conf) answers a test-only name with a CNAME chain
// ending at an address on that namespace's loopback; a process in the
// namespace resolves it with getaddrinfo (python3's socket.getaddrinfo) and
// sends known bytes there. Reports must show that remote with the asked
// name and the exact bytes, and sum it under its registrable domain.

import (
	"crypto/rand"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/net/dns/dnsmessage"

	"github.com/bwtracker/bwtracker/internal/testenv"
)

func init() {
	benchModes["dns-responder"] = func(args []string) (result, error) { return dnsResponder(args[0], args[1]) }
	benchModes["dns-garbage"] = func(args []string) (result, error) { return dnsGarbage(args[0], args[1], args[2]) }
}

// zone is "name=cname=addr;..." : name is a CNAME of cname, which has addr.
type dnsZone map[string][2]string

func parseZone(spec string) dnsZone {
	z := dnsZone{}
	for _, e := range strings.Split(spec, ";") {
		p := strings.Split(e, "=")
		z[strings.ToLower(p[0])+"."] = [2]string{p[1] + ".", p[2]}
	}
	return z
}

// dnsAnswer builds the response to query msg from z.
func dnsAnswer(z dnsZone, msg []byte) ([]byte, error) {
	var p dnsmessage.Parser
	h, err := p.Start(msg)
	if err != nil {
		return nil, err
	}
	q, err := p.Question()
	if err != nil {
		return nil, err
	}
	rr, ok := z[strings.ToLower(q.Name.String())]
	rh := dnsmessage.Header{ID: h.ID, Response: true, Authoritative: true, RecursionDesired: h.RecursionDesired, RecursionAvailable: true}
	if !ok {
		rh.RCode = dnsmessage.RCodeNameError
	}
	b := dnsmessage.NewBuilder(nil, rh)
	b.EnableCompression()
	b.StartQuestions()
	b.Question(q)
	b.StartAnswers()
	if ok {
		b.CNAMEResource(dnsmessage.ResourceHeader{Name: q.Name, Class: dnsmessage.ClassINET, TTL: 60},
			dnsmessage.CNAMEResource{CNAME: dnsmessage.MustNewName(rr[0])})
		if q.Type == dnsmessage.TypeA {
			b.AResource(dnsmessage.ResourceHeader{Name: dnsmessage.MustNewName(rr[0]), Class: dnsmessage.ClassINET, TTL: 30},
				dnsmessage.AResource{A: netip.MustParseAddr(rr[1]).As4()})
		}
	}
	return b.Finish()
}

// dnsResponder answers queries for the zone over UDP and TCP on bind until
// killed.
func dnsResponder(bind, spec string) (result, error) {
	var r result
	z := parseZone(spec)
	pc, err := net.ListenPacket("udp4", bind)
	if err != nil {
		return r, err
	}
	ln, err := net.Listen("tcp4", bind)
	if err != nil {
		return r, err
	}
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				var l [2]byte
				for {
					if _, err := io.ReadFull(c, l[:]); err != nil {
						return
					}
					q := make([]byte, binary.BigEndian.Uint16(l[:]))
					if _, err := io.ReadFull(c, q); err != nil {
						return
					}
					a, err := dnsAnswer(z, q)
					if err != nil {
						return
					}
					c.Write(append(binary.BigEndian.AppendUint16(nil, uint16(len(a))), a...))
				}
			}()
		}
	}()
	fmt.Println("READY 53")
	buf := make([]byte, 65536)
	for {
		n, from, err := pc.ReadFrom(buf)
		if err != nil {
			return r, err
		}
		if a, err := dnsAnswer(z, buf[:n]); err == nil {
			pc.WriteTo(a, from)
		}
	}
}

// garbagePayloads are DNS-looking packets a parser must survive: cut
// answers, compression-pointer loops, junk with the response bit set,
// answers for loopback, a header alone, the largest datagram.
func garbagePayloads() [][]byte {
	z := parseZone("cut.bwt-garbage-test.example=edge.bwt-garbage-test.example=198.18.99.1")
	qb := dnsmessage.NewBuilder(nil, dnsmessage.Header{ID: 1, RecursionDesired: true})
	qb.StartQuestions()
	qb.Question(dnsmessage.Question{Name: dnsmessage.MustNewName("cut.bwt-garbage-test.example."), Type: dnsmessage.TypeA, Class: dnsmessage.ClassINET})
	query, _ := qb.Finish()
	ok, _ := dnsAnswer(z, query)
	var out [][]byte
	for n := 0; n < len(ok); n += 3 {
		out = append(out, ok[:n])
	}
	loop := append([]byte(nil), ok...)
	loop[12], loop[13] = 0xc0, 12
	out = append(out, loop)
	two := append([]byte(nil), ok...)
	two[12], two[13], two[14], two[15] = 0xc0, 14, 0xc0, 12
	out = append(out, two)
	lo, _ := dnsAnswer(parseZone("cut.bwt-garbage-test.example=lo.bwt-garbage-test.example=127.0.0.1"), query)
	out = append(out, lo)
	junk := make([]byte, 1472)
	rand.Read(junk)
	junk[2] |= 0x80
	out = append(out, junk, junk[:13], make([]byte, 12))
	for i := 0; i < 200; i++ {
		j := make([]byte, 12+i*7%1400)
		rand.Read(j)
		j[2] |= 0x80
		j[3] &^= 0x0f
		out = append(out, j)
	}
	return out
}

// dnsGarbage sends the garbage payloads from UDP bind (port 53) to dst, then
// one valid answer from spec's zone. It prints how many datagrams it will
// send before sending them.
func dnsGarbage(bind, dst, spec string) (result, error) {
	var r result
	fd, err := udpSocket(bind)
	if err != nil {
		return r, err
	}
	_, sa := sockaddr(netip.MustParseAddrPort(dst))
	z := parseZone(spec)
	var name string
	for n := range z {
		name = n
	}
	qb := dnsmessage.NewBuilder(nil, dnsmessage.Header{ID: 2})
	qb.StartQuestions()
	qb.Question(dnsmessage.Question{Name: dnsmessage.MustNewName(name), Type: dnsmessage.TypeA, Class: dnsmessage.ClassINET})
	q, _ := qb.Finish()
	good, err := dnsAnswer(z, q)
	if err != nil {
		return r, err
	}
	ps := append(garbagePayloads(), good)
	for i, p := range ps {
		if err := sendtoRetry(fd, p, sa); err != nil {
			return r, err
		}
		r.TX += uint64(len(p))
		if i%8 == 7 {
			// Paced: the receiver's socket buffer must not overflow (that
			// would lose datagrams before any hook counts them).
			time.Sleep(2 * time.Millisecond)
		}
	}
	return r, nil
}

// dnsNS is a network namespace with lo up, its own resolv.conf pointing at
// 127.0.0.1 (where the test's responder listens) and test addresses on lo.
type dnsNS struct {
	name string
}

func newDNSNS(t *testing.T, addrs ...string) *dnsNS {
	t.Helper()
	if _, err := exec.LookPath("ip"); err != nil {
		testenv.Missing(t, "ip", "apt-get install iproute2")
	}
	rnd := make([]byte, 4)
	rand.Read(rnd)
	n := &dnsNS{name: "bwt-dns-" + hex.EncodeToString(rnd)}
	run := func(args ...string) {
		t.Helper()
		if out, err := exec.Command("ip", args...).CombinedOutput(); err != nil {
			t.Fatalf("ip %s: %v: %s", strings.Join(args, " "), err, out)
		}
	}
	run("netns", "add", n.name)
	etc := filepath.Join("/etc/netns", n.name)
	t.Cleanup(func() {
		exec.Command("ip", "netns", "del", n.name).Run()
		os.RemoveAll(etc)
	})
	run("-n", n.name, "link", "set", "lo", "up")
	for _, a := range addrs {
		run("-n", n.name, "addr", "add", a+"/32", "dev", "lo")
	}
	// ip netns exec bind-mounts these over /etc's (DESIGN.md: measured).
	if err := os.MkdirAll(etc, 0o755); err != nil {
		t.Fatal(err)
	}
	for f, s := range map[string]string{
		"resolv.conf":   "nameserver 127.0.0.1\noptions timeout:2 attempts:3\n",
		"nsswitch.conf": "hosts: files dns\n",
		"hosts":         "127.0.0.1 localhost\n",
	} {
		if err := os.WriteFile(filepath.Join(etc, f), []byte(s), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return n
}

func (n *dnsNS) startChild(t *testing.T, mode string, args ...string) *child {
	cmd := childCmd("ip", mode, append([]string{"netns", "exec", n.name, os.Args[0]}, args...)...)
	return startChildCmd(t, cmd)
}

// testAddr picks an address in the benchmark range no other test uses.
func testAddr(second byte) string {
	rnd := make([]byte, 1)
	rand.Read(rnd)
	return fmt.Sprintf("198.18.%d.%d", 150+rnd[0]%100, second)
}

const pyResolveAndSend = `import socket, sys
name, port, n = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
ai = socket.getaddrinfo(name, port, socket.AF_INET, socket.SOCK_STREAM)
s = socket.create_connection(ai[0][4][:2])
s.sendall(b"x" * n)
s.shutdown(socket.SHUT_WR)
got = 0
while True:
    b = s.recv(65536)
    if not b:
        break
    got += len(b)
print(ai[0][4][0], got)
`

func python(t *testing.T) string {
	for _, p := range []string{"/usr/bin/python3", "/usr/local/bin/python3"} {
		if _, err := os.Stat(p); err == nil {
			return p
		}
	}
	p, err := exec.LookPath("python3")
	if err != nil {
		testenv.Missing(t, "python3", "apt-get install python3")
	}
	return p
}

func num(v any) uint64 {
	f, _ := v.(float64)
	return uint64(f)
}

func TestDNSNamesFromAnswers(t *testing.T) {
	bwtrackerBin(t)
	py := python(t)
	a1, a2 := testAddr(7), testAddr(8)
	for a2 == a1 {
		a2 = testAddr(8)
	}
	ns := newDNSNS(t, a1, a2)
	d := startDaemon(t, "200ms")
	const (
		asked1 = "www.bwt-names-test.example" // over UDP
		asked2 = "tcp.bwt-names-test.example" // over TCP (RES_OPTIONS=use-vc)
		domain = "bwt-names-test.example"
	)
	resp := ns.startChild(t, "dns-responder", "127.0.0.1:53",
		asked1+"=edge.bwt-cdn-test.example="+a1+";"+asked2+"=tcp-edge.bwt-cdn-test.example="+a2)
	resp.waitReady()
	t.Cleanup(func() { resp.cmd.Process.Kill(); resp.cmd.Wait() })

	type want struct {
		name, addr string
		up, down   int
		env        []string
		client     int
	}
	cases := []*want{
		{name: asked1, addr: a1, up: 123_457, down: 4_321},
		{name: asked2, addr: a2, up: 65_537, down: 777, env: []string{"RES_OPTIONS=use-vc"}},
	}
	for _, c := range cases {
		srv := ns.startChild(t, "tcp-server", c.addr+":0", strconv.Itoa(c.down))
		port := srv.waitReady()
		cmd := exec.Command("ip", "netns", "exec", ns.name, py, "-c", pyResolveAndSend, c.name, port, strconv.Itoa(c.up))
		cmd.Env = append(os.Environ(), c.env...)
		cmd.Stderr = os.Stderr
		out, err := cmd.Output()
		if err != nil {
			t.Fatalf("client resolving %s: %v", c.name, err)
		}
		if got := strings.TrimSpace(string(out)); got != fmt.Sprintf("%s %d", c.addr, c.down) {
			t.Fatalf("client resolving %s printed %q, want %q", c.name, got, fmt.Sprintf("%s %d", c.addr, c.down))
		}
		c.client = cmd.Process.Pid // ip netns exec execs python: same pid
		if r := srv.wait(); r.RX != uint64(c.up) || r.TX != uint64(c.down) {
			t.Fatalf("server of %s: %+v", c.name, r)
		}
	}
	d.stop()

	rows := d.reportRaw("process,remote")
	named := map[string]bool{}
	var namedTx, namedRx uint64
	for _, r := range rows {
		for _, c := range cases {
			if r["remote_ip"] == c.addr {
				named[c.addr] = true
				namedTx += num(r["tx_bytes"])
				namedRx += num(r["rx_bytes"])
				if r["remote_name"] != c.name {
					t.Errorf("row %v: remote_name %q, want %q", r, r["remote_name"], c.name)
				}
			}
		}
	}
	for _, c := range cases {
		var tx, rx uint64
		var seen bool
		for _, r := range rows {
			if int(num(r["pid"])) == c.client && r["remote_ip"] == c.addr {
				seen = true
				tx += num(r["tx_bytes"])
				rx += num(r["rx_bytes"])
			}
		}
		if !seen {
			t.Fatalf("no row for the client of %s (pid %d) to %s:\n%v", c.name, c.client, c.addr, rows)
		}
		mustEqual(t, c.name+" client tx", tx, uint64(c.up))
		mustEqual(t, c.name+" client rx", rx, uint64(c.down))
	}
	// --by domain: the registrable domain of the asked names sums every
	// byte to their addresses (client and server rows alike), exactly.
	var dom map[string]any
	for _, r := range d.reportRaw("domain") {
		if r["domain"] == domain {
			dom = r
		}
	}
	if dom == nil {
		t.Fatalf("no %s row in --by domain:\n%v", domain, d.reportRaw("domain"))
	}
	mustEqual(t, "domain tx", num(dom["tx_bytes"]), namedTx)
	mustEqual(t, "domain rx", num(dom["rx_bytes"]), namedRx)
	for _, c := range cases {
		drs := d.reportRaw("domain", "--pid", strconv.Itoa(c.client))
		var found bool
		for _, r := range drs {
			if r["domain"] == domain {
				found = true
				mustEqual(t, c.name+" client under its domain, tx", num(r["tx_bytes"]), uint64(c.up))
				mustEqual(t, c.name+" client under its domain, rx", num(r["rx_bytes"]), uint64(c.down))
			}
		}
		if !found {
			t.Errorf("client of %s: no %s row in --by domain --pid: %v", c.name, domain, drs)
		}
	}
	// "How much did this app send to that domain": --by app,domain.
	var appTx uint64
	for _, r := range d.reportRaw("app,domain", "--comm", "python3") {
		if r["domain"] == domain {
			if r["app"] == "" || r["app"] == nil {
				t.Errorf("app,domain row without an app: %v", r)
			}
			appTx += num(r["tx_bytes"])
		}
	}
	mustEqual(t, "--by app,domain tx of the python3 clients", appTx, uint64(cases[0].up+cases[1].up))
	// Tables show the name with the address.
	out, err := exec.Command(d.bin, "report", "--db", d.db, "--since", "1h", "--by", "remote", "--top", "0", "--no-resolve", "--width", "200").Output()
	if err != nil {
		t.Fatalf("report table: %v", err)
	}
	if !strings.Contains(string(out), asked1+" ("+a1+")") {
		t.Errorf("table lacks %q:\n%s", asked1+" ("+a1+")", out)
	}
}

// Garbage from port 53 (cut answers, pointer loops, junk, answers for
// loopback; UDP and TCP) reaching a process must not disturb the daemon:
// the garbage itself is counted exactly, and a valid answer after it still
// names its address.
func TestDNSGarbageKeepsCounting(t *testing.T) {
	bwtrackerBin(t)
	a := testAddr(9)
	ns := newDNSNS(t, a)
	d := startDaemon(t, "200ms")
	const good = "ok.bwt-garbage-test.example"
	n := len(garbagePayloads()) + 1
	recv := ns.startChild(t, "udp-server", "127.0.0.1:0", strconv.Itoa(n))
	port := recv.waitReady()
	snd := ns.startChild(t, "dns-garbage", "127.0.0.1:53", "127.0.0.1:"+port, good+"=edge.bwt-garbage-test.example="+a)
	sr := snd.wait()
	rr := recv.wait()
	if rr.RX != sr.TX || sr.TX == 0 {
		t.Fatalf("receiver got %d bytes, sender sent %d", rr.RX, sr.TX)
	}
	// TCP from port 53: a stream of junk to a client.
	const down, up = 300_000, 1_000
	tsrv := ns.startChild(t, "tcp-server", "127.0.0.1:53", strconv.Itoa(down))
	tsrv.waitReady()
	tcl := ns.startChild(t, "tcp-client", "127.0.0.1:53", strconv.Itoa(up))
	tcr := tcl.wait()
	tsrv.wait()
	if tcr.RX != down || tcr.TX != up {
		t.Fatalf("tcp client: %+v", tcr)
	}
	// The answer that came after the garbage names a; traffic to it shows.
	srv := ns.startChild(t, "tcp-server", a+":0", "10")
	p := srv.waitReady()
	cl := ns.startChild(t, "tcp-client", a+":"+p, "5000")
	clr := cl.wait()
	srv.wait()
	d.stop()
	if strings.Contains(d.log(), "panic") {
		t.Fatalf("daemon log has a panic:\n%s", d.log())
	}
	rows := d.report("process")
	mustEqual(t, "garbage sender tx", sum1(forPID(rows, snd.pid()), true), sr.TX)
	mustEqual(t, "garbage receiver rx", sum1(forPID(rows, recv.pid()), false), rr.RX)
	mustEqual(t, "tcp junk client rx", sum1(forPID(rows, tcl.pid()), false), down)
	var named bool
	for _, r := range d.reportRaw("process,remote", "--pid", strconv.Itoa(cl.pid())) {
		if r["remote_ip"] == a {
			named = r["remote_name"] == good
			mustEqual(t, "client after the garbage, tx", num(r["tx_bytes"]), clr.TX)
		}
	}
	if !named {
		t.Errorf("the answer after the garbage did not name %s %s", a, good)
	}
	for _, r := range d.reportRaw("remote") {
		if r["remote_ip"] == "127.0.0.1" && r["remote_name"] != "" {
			t.Errorf("loopback got a name from an answer: %v", r)
		}
	}
}

func sum1(rows []row, tx bool) uint64 {
	t, r := sum(rows)
	if tx {
		return t
	}
	return r
}
