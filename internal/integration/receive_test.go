package integration

// Every way a process can consume TCP data is counted once: TCP receives
// are counted as advances of the socket's copied_seq (ebpf/bwtracker.bpf.c,
// "TCP receive"), so splice and other tcp_read_sock readers count, MSG_PEEK
// never does.

import (
	"fmt"
	"net"
	"net/netip"
	"runtime"
	"strconv"
	"sync/atomic"
	"testing"
	"unsafe"

	"golang.org/x/sys/unix"
)

func init() {
	benchModes["rx-server"] = func(args []string) (result, error) { return rxServer(args[0], args[1], args[2]) }
	benchModes["stream-client"] = func(args []string) (result, error) {
		return streamClient(args[0], args[1], atoi(args[2]))
	}
}

// streamSocket is a TCP or MPTCP stream socket for ap.
func streamSocket(ap netip.AddrPort, proto string) (int, unix.Sockaddr, error) {
	fam, sa := sockaddr(ap)
	p := 0
	if proto == "mptcp" {
		p = unix.IPPROTO_MPTCP
	}
	fd, err := unix.Socket(fam, unix.SOCK_STREAM, p)
	return fd, sa, err
}

// streamClient connects (TCP or MPTCP), sends up bytes and closes.
func streamClient(addr, proto string, up int) (result, error) {
	var r result
	fd, sa, err := streamSocket(netip.MustParseAddrPort(addr), proto)
	if err != nil {
		return r, err
	}
	if err := unix.Connect(fd, sa); err != nil {
		return r, err
	}
	if err := sendAll(fd, up, &r); err != nil {
		return r, err
	}
	return r, unix.Close(fd)
}

// rxServer accepts one connection and consumes it to EOF the way mode says,
// counting what the calls returned.
func rxServer(bind, proto, mode string) (result, error) {
	var r result
	fd, sa, err := streamSocket(netip.MustParseAddrPort(bind), proto)
	if err != nil {
		return r, err
	}
	if err := unix.Bind(fd, sa); err != nil {
		return r, err
	}
	if err := unix.Listen(fd, 8); err != nil {
		return r, err
	}
	fmt.Printf("READY %d\n", boundPort(fd))
	c, _, err := unix.Accept(fd)
	for err == unix.EINTR {
		c, _, err = unix.Accept(fd)
	}
	if err != nil {
		return r, err
	}
	switch mode {
	case "recv":
		err = recvLoop(c, 0, &r)
	case "waitall":
		err = recvLoop(c, unix.MSG_WAITALL, &r)
	case "peek":
		err = peekThenRecv(c, &r)
	case "splice":
		err = spliceLoop(c, 0, &r)
	case "splice-move":
		err = spliceLoop(c, unix.SPLICE_F_MOVE, &r)
	case "io_uring":
		err = uringRecvLoop(c, &r)
	case "sockmap":
		if err = addToSockmap(c); err == nil {
			err = recvLoop(c, 0, &r)
		}
	default:
		err = fmt.Errorf("unknown rx mode %q", mode)
	}
	if err != nil {
		return r, fmt.Errorf("%s: %w", mode, err)
	}
	unix.Close(c)
	return r, nil
}

func recvLoop(fd, flags int, r *result) error {
	buf := make([]byte, 64*1024)
	for {
		n, _, err := unix.Recvfrom(fd, buf, flags)
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

// peekThenRecv looks at every chunk with MSG_PEEK, then reads it.
func peekThenRecv(fd int, r *result) error {
	buf := make([]byte, 8192)
	for {
		n, _, err := unix.Recvfrom(fd, buf, unix.MSG_PEEK)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return err
		}
		if n == 0 {
			return nil
		}
		m, err := unix.Read(fd, buf[:n])
		for err == unix.EINTR {
			m, err = unix.Read(fd, buf[:n])
		}
		if err != nil {
			return err
		}
		if m != n {
			return fmt.Errorf("peeked %d bytes, read %d", n, m)
		}
		r.RX += uint64(m)
	}
}

// spliceLoop moves the socket's data into a pipe with splice (the kernel's
// tcp_splice_read -> tcp_read_sock) and from the pipe to /dev/null.
func spliceLoop(fd, flags int, r *result) error {
	var p [2]int
	if err := unix.Pipe2(p[:], unix.O_CLOEXEC); err != nil {
		return err
	}
	defer unix.Close(p[0])
	defer unix.Close(p[1])
	null, err := unix.Open("/dev/null", unix.O_WRONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return err
	}
	defer unix.Close(null)
	for {
		n, err := unix.Splice(fd, nil, p[1], nil, 1<<16, flags)
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
		for n > 0 {
			m, err := unix.Splice(p[0], nil, null, nil, int(n), flags)
			if err == unix.EINTR {
				continue
			}
			if err != nil {
				return err
			}
			n -= m
		}
	}
}

// addToSockmap puts the connected socket into a BPF sockmap (no programs):
// the kernel gives it a psock and the sockmap's own TCP proto.
func addToSockmap(fd int) error {
	create := struct {
		typ, keySize, valueSize, maxEntries, flags uint32
	}{typ: 15 /* BPF_MAP_TYPE_SOCKMAP */, keySize: 4, valueSize: 4, maxEntries: 1}
	m, _, errno := unix.Syscall(unix.SYS_BPF, 0 /* BPF_MAP_CREATE */, uintptr(unsafe.Pointer(&create)), unsafe.Sizeof(create))
	if errno != 0 {
		return fmt.Errorf("creating a sockmap: %w", errno)
	}
	key, val := uint32(0), uint32(fd)
	update := struct {
		mapFD, _   uint32
		key, value uint64
		flags      uint64
	}{mapFD: uint32(m), key: uint64(uintptr(unsafe.Pointer(&key))), value: uint64(uintptr(unsafe.Pointer(&val)))}
	_, _, errno = unix.Syscall(unix.SYS_BPF, 2 /* BPF_MAP_UPDATE_ELEM */, uintptr(unsafe.Pointer(&update)), unsafe.Sizeof(update))
	runtime.KeepAlive(&key)
	runtime.KeepAlive(&val)
	if errno != 0 {
		return fmt.Errorf("adding the socket to the sockmap: %w", errno)
	}
	return nil // the map (and the psock) live until the process exits
}

// uringRecvLoop reads the socket to EOF with io_uring IORING_OP_RECV, one
// submission at a time.
func uringRecvLoop(fd int, r *result) error {
	u, err := newURing(4)
	if err != nil {
		return err
	}
	defer u.close()
	buf := make([]byte, 64*1024)
	for {
		res, err := u.recv(fd, buf)
		if err != nil {
			return err
		}
		if res == -int32(unix.EINTR) {
			continue
		}
		if res < 0 {
			return fmt.Errorf("io_uring recv: %w", unix.Errno(-res))
		}
		if res == 0 {
			return nil
		}
		r.RX += uint64(res)
	}
}

// uring is the smallest io_uring: one ring, one operation in flight.
type uring struct {
	fd             int
	sq, cq, sqes   []byte
	params         uringParams
	sqTail, cqHead *uint32
}

type uringParams struct {
	sqEntries, cqEntries, flags, sqThreadCPU, sqThreadIdle, features, wqFD uint32
	resv                                                                   [3]uint32
	sqOff                                                                  struct {
		head, tail, ringMask, ringEntries, flags, dropped, array, resv1 uint32
		userAddr                                                        uint64
	}
	cqOff struct {
		head, tail, ringMask, ringEntries, overflow, cqes, flags, resv1 uint32
		userAddr                                                        uint64
	}
}

func newURing(entries uint32) (*uring, error) {
	u := &uring{}
	fd, _, errno := unix.Syscall(unix.SYS_IO_URING_SETUP, uintptr(entries), uintptr(unsafe.Pointer(&u.params)), 0)
	if errno != 0 {
		return nil, fmt.Errorf("io_uring_setup: %w", errno)
	}
	u.fd = int(fd)
	p := &u.params
	var err error
	if u.sq, err = unix.Mmap(u.fd, 0 /* IORING_OFF_SQ_RING */, int(p.sqOff.array+p.sqEntries*4), unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED|unix.MAP_POPULATE); err != nil {
		return nil, fmt.Errorf("mmap sq ring: %w", err)
	}
	if u.cq, err = unix.Mmap(u.fd, 0x8000000 /* IORING_OFF_CQ_RING */, int(p.cqOff.cqes+p.cqEntries*16), unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED|unix.MAP_POPULATE); err != nil {
		return nil, fmt.Errorf("mmap cq ring: %w", err)
	}
	if u.sqes, err = unix.Mmap(u.fd, 0x10000000 /* IORING_OFF_SQES */, int(p.sqEntries*64), unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED|unix.MAP_POPULATE); err != nil {
		return nil, fmt.Errorf("mmap sqes: %w", err)
	}
	u.sqTail = (*uint32)(unsafe.Pointer(&u.sq[p.sqOff.tail]))
	u.cqHead = (*uint32)(unsafe.Pointer(&u.cq[p.cqOff.head]))
	return u, nil
}

// recv submits one IORING_OP_RECV on fd into buf and waits for its
// completion; it returns the completion's result (bytes or -errno).
func (u *uring) recv(fd int, buf []byte) (int32, error) {
	p := &u.params
	tail := atomic.LoadUint32(u.sqTail)
	idx := tail & *(*uint32)(unsafe.Pointer(&u.sq[p.sqOff.ringMask]))
	sqe := u.sqes[idx*64 : idx*64+64]
	clear(sqe)
	sqe[0] = 27 // IORING_OP_RECV
	*(*int32)(unsafe.Pointer(&sqe[4])) = int32(fd)
	*(*uint64)(unsafe.Pointer(&sqe[16])) = uint64(uintptr(unsafe.Pointer(&buf[0])))
	*(*uint32)(unsafe.Pointer(&sqe[24])) = uint32(len(buf))
	*(*uint64)(unsafe.Pointer(&sqe[32])) = 1 // user_data
	(*[1 << 16]uint32)(unsafe.Pointer(&u.sq[p.sqOff.array]))[idx] = idx
	atomic.StoreUint32(u.sqTail, tail+1)
	sqHead := (*uint32)(unsafe.Pointer(&u.sq[p.sqOff.head]))
	cqTail := (*uint32)(unsafe.Pointer(&u.cq[p.cqOff.tail]))
	for {
		toSubmit := uintptr(0)
		if atomic.LoadUint32(sqHead) != tail+1 {
			toSubmit = 1 // not taken yet (an EINTR may have come first)
		}
		_, _, errno := unix.Syscall6(unix.SYS_IO_URING_ENTER, uintptr(u.fd), toSubmit, 1, 1 /* IORING_ENTER_GETEVENTS */, 0, 0)
		if atomic.LoadUint32(cqTail) != atomic.LoadUint32(u.cqHead) {
			break
		}
		if errno != 0 && errno != unix.EINTR {
			return 0, fmt.Errorf("io_uring_enter: %w", errno)
		}
	}
	runtime.KeepAlive(buf)
	head := atomic.LoadUint32(u.cqHead)
	ci := head & *(*uint32)(unsafe.Pointer(&u.cq[p.cqOff.ringMask]))
	res := *(*int32)(unsafe.Pointer(&u.cq[p.cqOff.cqes+ci*16+8]))
	atomic.StoreUint32(u.cqHead, head+1)
	return res, nil
}

func (u *uring) close() {
	unix.Munmap(u.sqes)
	unix.Munmap(u.cq)
	unix.Munmap(u.sq)
	unix.Close(u.fd)
}

// TestTCPReceivePaths: one receiver per way of consuming TCP (and MPTCP)
// data, each sent a known number of bytes; each receiver's rx must be
// exactly that, and its sender's tx too.
func TestTCPReceivePaths(t *testing.T) {
	d := startDaemon(t, "1s")
	type tc struct{ proto, mode, host string }
	cases := []tc{
		{"tcp", "recv", "127.0.0.1"},
		{"tcp", "waitall", "127.0.0.1"},
		{"tcp", "peek", "127.0.0.1"},
		{"tcp", "splice", "127.0.0.1"},
		{"tcp", "splice-move", "::1"},
		{"tcp", "io_uring", "127.0.0.1"},
		{"tcp", "sockmap", "127.0.0.1"},
		{"mptcp", "recv", "127.0.0.1"},
		{"mptcp", "splice", "127.0.0.1"},
	}
	type run struct {
		tc
		up       int
		srv, cli *child
	}
	var runs []run
	for i, c := range cases {
		up := 3_000_017 + 1000*i
		srv := startChild(t, "rx-server", net.JoinHostPort(c.host, "0"), c.proto, c.mode)
		port := srv.waitReady()
		cli := startChild(t, "stream-client", net.JoinHostPort(c.host, port), c.proto, strconv.Itoa(up))
		runs = append(runs, run{c, up, srv, cli})
	}
	for _, r := range runs {
		cr, sr := r.cli.wait(), r.srv.wait()
		mustEqual(t, r.proto+"/"+r.mode+": receiver's own count", sr.RX, uint64(r.up))
		mustEqual(t, r.proto+"/"+r.mode+": sender's own count", cr.TX, uint64(r.up))
	}
	d.stop()
	rows := d.report("process,remote,protocol")
	for _, r := range runs {
		name := r.proto + "/" + r.mode
		s := forPID(rows, r.srv.pid())
		tx, rx := sum(s)
		mustEqual(t, name+": receiver rx", rx, uint64(r.up))
		mustEqual(t, name+": receiver tx", tx, 0)
		for _, row := range s {
			if row.Protocol != r.proto || row.RemoteIP != r.host {
				t.Errorf("%s: receiver row %+v: want protocol %s, remote %s", name, row, r.proto, r.host)
			}
		}
		ctx, crx := sum(forPID(rows, r.cli.pid()))
		mustEqual(t, name+": sender tx", ctx, uint64(r.up))
		mustEqual(t, name+": sender rx", crx, 0)
	}
	if t.Failed() {
		t.Logf("rows:\n%s", dump(rows))
	}
}
