package integration

// The remote of unconnected ICMP, raw and AF_PACKET traffic: a send's
// route lookup gives its destination, the datagram a reader gets its
// source (ebpf/bwtracker.bpf.c, "peers of unconnected ICMP, raw ...").
// Traffic crosses a veth pair into a network namespace the test makes.

import (
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"

	"github.com/bwtracker/bwtracker/internal/testenv"
	"golang.org/x/sys/unix"
)

func init() {
	benchModes["raw-send"] = func(args []string) (result, error) {
		return rawSend(args[0], atoi(args[1]), atoi(args[2]), atoi(args[3]))
	}
	benchModes["raw-recv"] = func(args []string) (result, error) {
		return rawRecv(args[0], atoi(args[1]), atoi(args[2]))
	}
	benchModes["packet-recv"] = func(args []string) (result, error) { return packetRecv(args[0], atoi(args[1])) }
}

// rawSend sends count datagrams of size bytes of IP protocol proto to dst
// from an unconnected raw socket.
func rawSend(dst string, proto, count, size int) (result, error) {
	var r result
	a := netip.MustParseAddr(dst)
	fam, sa := sockaddr(netip.AddrPortFrom(a, 0))
	fd, err := unix.Socket(fam, unix.SOCK_RAW, proto)
	if err != nil {
		return r, err
	}
	buf := make([]byte, size)
	for i := 0; i < count; i++ {
		if err := sendtoRetry(fd, buf, sa); err != nil {
			return r, err
		}
		r.TX += uint64(size)
	}
	return r, nil
}

// rawRecv receives count datagrams of IP protocol proto on a raw socket of
// family fam ("4" or "6").
func rawRecv(fam string, proto, count int) (result, error) {
	r := result{Peers: map[string]uint64{}}
	af := unix.AF_INET
	if fam == "6" {
		af = unix.AF_INET6
	}
	fd, err := unix.Socket(af, unix.SOCK_RAW, proto)
	if err != nil {
		return r, err
	}
	unix.SetsockoptTimeval(fd, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &unix.Timeval{Sec: 10})
	fmt.Println("READY raw")
	buf := make([]byte, 65536)
	for i := 0; i < count; i++ {
		n, from, err := unix.Recvfrom(fd, buf, 0)
		if err == unix.EINTR {
			i--
			continue
		}
		if err != nil {
			return r, fmt.Errorf("recvfrom %d/%d: %w", i, count, err)
		}
		r.RX += uint64(n)
		r.Peers[peerString(from)] += uint64(n)
	}
	return r, nil
}

// packetRecv reads IPv4 packets from an AF_PACKET SOCK_DGRAM socket bound to
// interface ifname until it has seen count packets of IP protocol 253.
func packetRecv(ifname string, count int) (result, error) {
	var r result
	const ethPIP = 0x0800
	fd, err := unix.Socket(unix.AF_PACKET, unix.SOCK_DGRAM, int(htons(ethPIP)))
	if err != nil {
		return r, err
	}
	idx, err := ifIndex(ifname)
	if err != nil {
		return r, err
	}
	if err := unix.Bind(fd, &unix.SockaddrLinklayer{Protocol: htons(ethPIP), Ifindex: idx}); err != nil {
		return r, err
	}
	unix.SetsockoptTimeval(fd, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &unix.Timeval{Sec: 10})
	fmt.Println("READY packet")
	buf := make([]byte, 65536)
	for seen := 0; seen < count; {
		n, _, err := unix.Recvfrom(fd, buf, 0)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return r, fmt.Errorf("recvfrom (%d/%d seen): %w", seen, count, err)
		}
		r.RX += uint64(n)
		if n >= 20 && buf[9] == 253 {
			seen++
		}
	}
	return r, nil
}

func htons(v uint16) uint16 { return v<<8 | v>>8 }

func ifIndex(name string) (int, error) {
	b, err := os.ReadFile("/sys/class/net/" + name + "/ifindex")
	if err != nil {
		return 0, err
	}
	return strconv.Atoi(strings.TrimSpace(string(b)))
}

// vethNS is a network namespace joined to this one by a veth pair:
// 198.18.140.1 and fd42:18:140::1 here, .2 and ::2 there.
type vethNS struct {
	name, hostIf, nsIf string
}

const (
	nsHost4, nsPeer4 = "198.18.140.1", "198.18.140.2"
	nsHost6, nsPeer6 = "fd42:18:140::1", "fd42:18:140::2"
)

func newVethNS(t *testing.T) *vethNS {
	t.Helper()
	if _, err := exec.LookPath("ip"); err != nil {
		testenv.Missing(t, "ip", "apt-get install iproute2")
	}
	suffix := strconv.Itoa(os.Getpid() % 100000)
	v := &vethNS{name: "bwt-k-" + suffix, hostIf: "bwtk" + suffix, nsIf: "bwtkp" + suffix}
	run := func(args ...string) {
		t.Helper()
		if out, err := exec.Command("ip", args...).CombinedOutput(); err != nil {
			t.Fatalf("ip %s: %v: %s", strings.Join(args, " "), err, out)
		}
	}
	run("netns", "add", v.name)
	t.Cleanup(func() {
		exec.Command("ip", "link", "del", v.hostIf).Run()
		exec.Command("ip", "netns", "del", v.name).Run()
	})
	run("link", "add", v.hostIf, "type", "veth", "peer", "name", v.nsIf, "netns", v.name)
	run("addr", "add", nsHost4+"/30", "dev", v.hostIf)
	run("-6", "addr", "add", nsHost6+"/64", "dev", v.hostIf, "nodad")
	run("link", "set", v.hostIf, "up")
	run("-n", v.name, "addr", "add", nsPeer4+"/30", "dev", v.nsIf)
	run("-n", v.name, "-6", "addr", "add", nsPeer6+"/64", "dev", v.nsIf, "nodad")
	run("-n", v.name, "link", "set", v.nsIf, "up")
	run("-n", v.name, "link", "set", "lo", "up")
	return v
}

// startChild starts child mode inside the namespace (ip netns exec execs it:
// same pid).
func (v *vethNS) startChild(t *testing.T, mode string, args ...string) *child {
	cmd := childCmd("ip", mode, append([]string{"netns", "exec", v.name, os.Args[0]}, args...)...)
	return startChildCmd(t, cmd)
}

// byRemote sums a process's rows per remote.
func byRemote(rows []row) map[string]row {
	out := map[string]row{}
	for _, r := range rows {
		s := out[r.RemoteIP]
		s.TX += r.TX
		s.RX += r.RX
		s.Protocol = r.Protocol
		out[r.RemoteIP] = s
	}
	return out
}

// ping (iputils, a raw ICMP socket as root) of an address in a netns: its
// echo requests and replies are counted exactly, with that address as the
// remote. The raw socket also gets other ICMP echo replies that reach this
// namespace (other tests' pings), so only the peer's row is asserted.
func TestPingRemote(t *testing.T) {
	if _, err := exec.LookPath("ping"); err != nil {
		testenv.Missing(t, "ping", "apt-get install iputils-ping")
	}
	newVethNS(t)
	d := startDaemon(t, "1s")
	const count, size = 5, 1000
	type pingRun struct {
		peer         string
		cmd          *exec.Cmd
		txPer, rxPer uint64
	}
	runs := []*pingRun{
		// IPv4 raw socket: recv returns the IP header too.
		{peer: nsPeer4, txPer: 8 + size, rxPer: 20 + 8 + size},
		// ICMPv6 raw socket: no IP header.
		{peer: nsPeer6, txPer: 8 + size, rxPer: 8 + size},
	}
	for _, p := range runs {
		p.cmd = exec.Command("ping", "-n", "-q", "-c", strconv.Itoa(count), "-i", "0.2", "-s", strconv.Itoa(size), p.peer)
		if out, err := p.cmd.CombinedOutput(); err != nil {
			t.Fatalf("%v: %v\n%s", p.cmd.Args, err, out)
		} else if !strings.Contains(string(out), fmt.Sprintf("%d received", count)) {
			t.Fatalf("%v: not all replies came back:\n%s", p.cmd.Args, out)
		}
	}
	d.stop()
	rows := d.report("process,remote,protocol")
	for _, p := range runs {
		mine := forPID(rows, p.cmd.Process.Pid)
		br := byRemote(mine)
		got := br[p.peer]
		if got.Protocol != "icmp" {
			t.Errorf("ping %s: no icmp row with remote %s:\n%s", p.peer, p.peer, dump(mine))
			continue
		}
		mustEqual(t, "ping "+p.peer+" tx", got.TX, count*p.txPer)
		mustEqual(t, "ping "+p.peer+" rx from the peer", got.RX, count*p.rxPer)
		if tx, _ := sum(mine); tx != got.TX {
			t.Errorf("ping %s: tx to other remotes than the peer:\n%s", p.peer, dump(mine))
		}
	}
}

// A raw IP protocol 253 sender (unconnected, sendto) to a receiver in a
// netns, IPv4 and IPv6, and an AF_PACKET reader on the netns's veth end:
// every row exact, with the right remote on both sides.
func TestRawAndPacketRemote(t *testing.T) {
	v := newVethNS(t)
	d := startDaemon(t, "1s")
	const count, size = 20, 700
	pkt := v.startChild(t, "packet-recv", v.nsIf, strconv.Itoa(count))
	pkt.waitReady()
	recv4 := v.startChild(t, "raw-recv", "4", "253", strconv.Itoa(count))
	recv4.waitReady()
	recv6 := v.startChild(t, "raw-recv", "6", "253", strconv.Itoa(count))
	recv6.waitReady()
	send4 := startChild(t, "raw-send", nsPeer4, "253", strconv.Itoa(count), strconv.Itoa(size))
	send6 := startChild(t, "raw-send", nsPeer6, "253", strconv.Itoa(count), strconv.Itoa(size))
	s4, s6 := send4.wait(), send6.wait()
	r4, r6, pr := recv4.wait(), recv6.wait(), pkt.wait()
	mustEqual(t, "v4 sender's own tx", s4.TX, count*size)
	mustEqual(t, "v6 sender's own tx", s6.TX, count*size)
	mustEqual(t, "v4 receiver's own rx (IP header + payload)", r4.RX, count*(20+size))
	mustEqual(t, "v6 receiver's own rx (payload)", r6.RX, count*size)
	d.stop()
	rows := d.report("process,remote,protocol")
	check := func(name string, c *child, remote string, tx, rx uint64) {
		t.Helper()
		mine := forPID(rows, c.pid())
		if len(mine) != 1 || mine[0].RemoteIP != remote {
			t.Errorf("%s: want one row with remote %s:\n%s", name, remote, dump(mine))
			return
		}
		mustEqual(t, name+" tx", mine[0].TX, tx)
		mustEqual(t, name+" rx", mine[0].RX, rx)
	}
	check("v4 raw sender", send4, nsPeer4, count*size, 0)
	check("v6 raw sender", send6, nsPeer6, count*size, 0)
	check("v4 raw receiver", recv4, nsHost4, 0, count*(20+size))
	check("v6 raw receiver", recv6, nsHost6, 0, count*size)
	check("AF_PACKET receiver", pkt, nsHost4, 0, pr.RX)
	for _, c := range []*child{send4, send6, recv4, recv6} {
		if r := forPID(rows, c.pid()); len(r) == 1 && r[0].Protocol != "raw" {
			t.Errorf("protocol %q, want raw: %+v", r[0].Protocol, r[0])
		}
	}
}
