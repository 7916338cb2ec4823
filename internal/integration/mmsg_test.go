package integration

import (
	"net/netip"
	"unsafe"

	"golang.org/x/sys/unix"
)

// sendmmsg sends count copies of buf to dst in one sendmmsg(2) call and
// returns the bytes the kernel reports as sent.
func sendmmsg(fd int, dst netip.AddrPort, buf []byte, count int) (int, error) {
	var name []byte
	if dst.Addr().Is4() {
		var sa unix.RawSockaddrInet4
		sa.Family = unix.AF_INET
		p := (*[2]byte)(unsafe.Pointer(&sa.Port))
		p[0], p[1] = byte(dst.Port()>>8), byte(dst.Port())
		sa.Addr = dst.Addr().As4()
		name = (*[unix.SizeofSockaddrInet4]byte)(unsafe.Pointer(&sa))[:]
	} else {
		var sa unix.RawSockaddrInet6
		sa.Family = unix.AF_INET6
		p := (*[2]byte)(unsafe.Pointer(&sa.Port))
		p[0], p[1] = byte(dst.Port()>>8), byte(dst.Port())
		sa.Addr = dst.Addr().As16()
		name = (*[unix.SizeofSockaddrInet6]byte)(unsafe.Pointer(&sa))[:]
	}
	iov := unix.Iovec{Base: &buf[0]}
	iov.SetLen(len(buf))
	msgs := make([]mmsghdr, count)
	for i := range msgs {
		msgs[i].hdr.Name = &name[0]
		msgs[i].hdr.Namelen = uint32(len(name))
		msgs[i].hdr.Iov = &iov
		msgs[i].hdr.SetIovlen(1)
	}
	sent := 0
	for sent < count {
		n, _, errno := unix.Syscall6(unix.SYS_SENDMMSG, uintptr(fd), uintptr(unsafe.Pointer(&msgs[sent])), uintptr(count-sent), 0, 0, 0)
		if errno == unix.EINTR {
			continue
		}
		if errno != 0 {
			return 0, errno
		}
		sent += int(n)
	}
	total := 0
	for i := range msgs {
		total += int(msgs[i].len)
	}
	return total, nil
}

type mmsghdr struct {
	hdr unix.Msghdr
	len uint32
	_   [4]byte
}
