package integration

// Traffic generators. The test binary re-executes itself with
// BWT_CHILD=<mode> so that every generator is its own process (own pid,
// own comm) and the tests can assert exact per-process byte counts. Every
// generator counts what its send/recv syscalls returned and prints it as the
// last line: "RESULT {json}".

import (
	"encoding/binary"
	"encoding/json"
	"fmt"
	"net"
	"net/netip"
	"os"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

type result struct {
	TX    uint64            `json:"tx"`
	RX    uint64            `json:"rx"`
	Peers map[string]uint64 `json:"peers,omitempty"` // remote -> bytes (rx side)
}

func childMain(mode string, args []string) {
	var r result
	var err error
	switch mode {
	case "tcp-server":
		r, err = tcpServer(args[0], atoi(args[1]))
	case "tcp-client":
		r, err = tcpClient(args[0], atoi(args[1]))
	case "burst":
		r, err = tcpClient(args[0], atoi(args[1]))
	case "stepped-client":
		r, err = steppedClient(args[0], atoi(args[1]), atoi(args[2]))
	case "udp-server":
		r, err = udpServer(args[0], atoi(args[1]))
	case "udp-connected":
		r, err = udpConnected(args[0], atoi(args[1]), atoi(args[2]))
	case "udp-sendto":
		r, err = udpSendto(args[0], strings.Split(args[1], ","), atoi(args[2]), atoi(args[3]))
	case "icmp-ping":
		r, err = icmpPing(args[0], atoi(args[1]), atoi(args[2]))
	default:
		if f := benchModes[mode]; f != nil {
			r, err = f(args)
		} else {
			err = fmt.Errorf("unknown child mode %q", mode)
		}
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "child %s: %v\n", mode, err)
		os.Exit(3)
	}
	b, _ := json.Marshal(r)
	fmt.Printf("RESULT %s\n", b)
	os.Exit(0)
}

var benchModes = map[string]func([]string) (result, error){}

func atoi(s string) int {
	n, err := strconv.Atoi(s)
	if err != nil {
		panic(err)
	}
	return n
}

func sockaddr(ap netip.AddrPort) (int, unix.Sockaddr) {
	if ap.Addr().Is4() {
		return unix.AF_INET, &unix.SockaddrInet4{Port: int(ap.Port()), Addr: ap.Addr().As4()}
	}
	return unix.AF_INET6, &unix.SockaddrInet6{Port: int(ap.Port()), Addr: ap.Addr().As16()}
}

func peerString(sa unix.Sockaddr) string {
	switch a := sa.(type) {
	case *unix.SockaddrInet4:
		return netip.AddrFrom4(a.Addr).String()
	case *unix.SockaddrInet6:
		return netip.AddrFrom16(a.Addr).Unmap().String()
	}
	return "?"
}

func boundPort(fd int) int {
	sa, _ := unix.Getsockname(fd)
	switch a := sa.(type) {
	case *unix.SockaddrInet4:
		return a.Port
	case *unix.SockaddrInet6:
		return a.Port
	}
	return 0
}

func sendAll(fd int, n int, r *result) error {
	buf := make([]byte, 64*1024)
	for n > 0 {
		w, err := unix.Write(fd, buf[:min(n, len(buf))])
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return err
		}
		r.TX += uint64(w)
		n -= w
	}
	return nil
}

func readAll(fd int, r *result) error {
	buf := make([]byte, 64*1024)
	for {
		n, err := unix.Read(fd, buf)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return err
		}
		if n == 0 {
			return nil
		}
		r.RX += uint64(n)
	}
}

// tcpServer accepts one connection, reads to EOF, answers down bytes.
func tcpServer(bind string, down int) (result, error) {
	var r result
	ap := netip.MustParseAddrPort(bind)
	fam, sa := sockaddr(ap)
	fd, err := unix.Socket(fam, unix.SOCK_STREAM, 0)
	if err != nil {
		return r, err
	}
	unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_REUSEADDR, 1)
	if err := unix.Bind(fd, sa); err != nil {
		return r, err
	}
	if err := unix.Listen(fd, 128); err != nil {
		return r, err
	}
	fmt.Printf("READY %d\n", boundPort(fd))
	c, _, err := unix.Accept(fd)
	if err != nil {
		return r, err
	}
	if err := readAll(c, &r); err != nil {
		return r, err
	}
	if err := sendAll(c, down, &r); err != nil {
		return r, err
	}
	unix.Close(c)
	return r, nil
}

// tcpClient sends up bytes, half-closes and reads to EOF.
func tcpClient(addr string, up int) (result, error) {
	var r result
	ap := netip.MustParseAddrPort(addr)
	fam, sa := sockaddr(ap)
	fd, err := unix.Socket(fam, unix.SOCK_STREAM, 0)
	if err != nil {
		return r, err
	}
	if err := unix.Connect(fd, sa); err != nil {
		return r, err
	}
	if err := sendAll(fd, up, &r); err != nil {
		return r, err
	}
	unix.Shutdown(fd, unix.SHUT_WR)
	if err := readAll(fd, &r); err != nil {
		return r, err
	}
	unix.Close(fd)
	return r, nil
}

// steppedClient sends chunks of `chunk` bytes and waits for a 1-byte ack
// after each, so the peer knows exactly how much was sent at any moment.
func steppedClient(addr string, chunk, chunks int) (result, error) {
	var r result
	c, err := net.Dial("tcp", addr)
	if err != nil {
		return r, err
	}
	tc := c.(*net.TCPConn)
	f, err := tc.File()
	if err != nil {
		return r, err
	}
	// f owns fd: keep it (and c) reachable, or the GC's finalizer closes
	// the descriptor mid-transfer ("bad file descriptor" on the ack read).
	defer func() { f.Close(); c.Close() }()
	fd := int(f.Fd())
	unix.SetNonblock(fd, false)
	ack := make([]byte, 1)
	for i := 0; i < chunks; i++ {
		if err := sendAll(fd, chunk, &r); err != nil {
			return r, err
		}
		n, err := unix.Read(fd, ack)
		for err == unix.EINTR {
			n, err = unix.Read(fd, ack)
		}
		if err != nil || n != 1 {
			return r, fmt.Errorf("ack %d: n=%d err=%v", i, n, err)
		}
		r.RX++
	}
	return r, nil
}

func udpSocket(bind string) (int, error) {
	ap := netip.MustParseAddrPort(bind)
	fam, sa := sockaddr(ap)
	fd, err := unix.Socket(fam, unix.SOCK_DGRAM, 0)
	if err != nil {
		return -1, err
	}
	if err := unix.Bind(fd, sa); err != nil {
		return -1, err
	}
	return fd, nil
}

// udpServer receives count datagrams with recvfrom and tallies per peer.
func udpServer(bind string, count int) (result, error) {
	r := result{Peers: map[string]uint64{}}
	fd, err := udpSocket(bind)
	if err != nil {
		return r, err
	}
	unix.SetsockoptTimeval(fd, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &unix.Timeval{Sec: 10})
	fmt.Printf("READY %d\n", boundPort(fd))
	buf := make([]byte, 65536)
	for i := 0; i < count; i++ {
		n, from, err := unix.Recvfrom(fd, buf, 0)
		if err == unix.EINTR { // Go's preemption signal (SIGURG)
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

// udpConnected connects a UDP socket and sends count datagrams of size.
func udpConnected(addr string, count, size int) (result, error) {
	var r result
	ap := netip.MustParseAddrPort(addr)
	fam, sa := sockaddr(ap)
	fd, err := unix.Socket(fam, unix.SOCK_DGRAM, 0)
	if err != nil {
		return r, err
	}
	if err := unix.Connect(fd, sa); err != nil {
		return r, err
	}
	buf := make([]byte, size)
	for i := 0; i < count; i++ {
		n, err := unix.Write(fd, buf)
		if err == unix.EINTR {
			i--
			continue
		}
		if err != nil {
			return r, err
		}
		r.TX += uint64(n)
		time.Sleep(time.Millisecond)
	}
	return r, nil
}

// udpSendto sends from an unconnected socket bound to `bind`: count
// datagrams of size to each destination with sendto, then the same again
// with one sendmmsg call per destination.
func udpSendto(bind string, dsts []string, count, size int) (result, error) {
	r := result{Peers: map[string]uint64{}}
	fd, err := udpSocket(bind)
	if err != nil {
		return r, err
	}
	buf := make([]byte, size)
	for _, d := range dsts {
		_, sa := sockaddr(netip.MustParseAddrPort(d))
		for i := 0; i < count; i++ {
			if err := sendtoRetry(fd, buf, sa); err != nil {
				return r, err
			}
			r.TX += uint64(size)
			r.Peers[netip.MustParseAddrPort(d).Addr().String()] += uint64(size)
			time.Sleep(time.Millisecond)
		}
		n, err := sendmmsg(fd, netip.MustParseAddrPort(d), buf, count)
		if err != nil {
			return r, err
		}
		r.TX += uint64(n)
		r.Peers[netip.MustParseAddrPort(d).Addr().String()] += uint64(n)
	}
	return r, nil
}

// icmpPing sends count echo requests with payload bytes over a raw ICMP
// socket and reads until it has seen count echo replies. RX counts every
// recvfrom (a raw socket returns the IP header and also sees the requests
// looped back on lo).
func icmpPing(dst string, payload, count int) (result, error) {
	var r result
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_RAW, unix.IPPROTO_ICMP)
	if err != nil {
		return r, err
	}
	unix.SetsockoptTimeval(fd, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &unix.Timeval{Sec: 5})
	a := netip.MustParseAddr(dst)
	sa := &unix.SockaddrInet4{Addr: a.As4()}
	id := uint16(os.Getpid())
	buf := make([]byte, 65536)
	replies := 0
	for seq := 0; seq < count; seq++ {
		pkt := make([]byte, 8+payload)
		pkt[0] = 8 // echo request
		binary.BigEndian.PutUint16(pkt[4:], id)
		binary.BigEndian.PutUint16(pkt[6:], uint16(seq))
		for i := 8; i < len(pkt); i++ {
			pkt[i] = byte(i)
		}
		binary.BigEndian.PutUint16(pkt[2:], icmpChecksum(pkt))
		if err := sendtoRetry(fd, pkt, sa); err != nil {
			return r, err
		}
		r.TX += uint64(len(pkt))
		for replies <= seq {
			n, _, err := unix.Recvfrom(fd, buf, 0)
			if err == unix.EINTR {
				continue
			}
			if err != nil {
				return r, fmt.Errorf("recv: %w", err)
			}
			r.RX += uint64(n)
			ihl := int(buf[0]&0x0f) * 4
			if n >= ihl+8 && buf[ihl] == 0 && binary.BigEndian.Uint16(buf[ihl+4:]) == id {
				replies++
			}
		}
	}
	return r, nil
}

// sendtoRetry is sendto that retries when Go's preemption signal interrupts
// it (EINTR: nothing was sent).
func sendtoRetry(fd int, b []byte, sa unix.Sockaddr) error {
	for {
		err := unix.Sendto(fd, b, 0, sa)
		if err != unix.EINTR {
			return err
		}
	}
}

func icmpChecksum(b []byte) uint16 {
	var s uint32
	for i := 0; i+1 < len(b); i += 2 {
		s += uint32(b[i])<<8 | uint32(b[i+1])
	}
	if len(b)%2 == 1 {
		s += uint32(b[len(b)-1]) << 8
	}
	for s>>16 != 0 {
		s = s&0xffff + s>>16
	}
	return ^uint16(s)
}
