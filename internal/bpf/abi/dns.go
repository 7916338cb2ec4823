package abi

import (
	"encoding/binary"
	"fmt"
)

// Keep in step with ebpf/dns.h (dns_test.go checks the size and a round
// trip).

// DNSCap is BWT_DNS_CAP: the DNS payload bytes the kernel copies per packet.
const DNSCap = 1024

// DNSEventSize is sizeof(struct dns_event).
const DNSEventSize = 16 + DNSCap

// Transports of a DNSEvent (BWT_DNS_*).
const (
	DNSUDP = 0
	DNSTCP = 1 // the payload starts with the message's 2-byte length
)

// DNS counters (BWT_DNS_STAT_*), indexes of the per-CPU dns_stats array.
const (
	DNSStatEvents = 0 // answers copied to the ring buffer
	DNSStatRBFull = 1 // answers lost: ring buffer full
	DNSStatMax    = 2
)

// DNSEvent mirrors struct dns_event: one packet from port 53 delivered to a
// local socket.
type DNSEvent struct {
	NetNS     uint32 // inode of the receiving socket's network namespace; 0 = unknown
	Len       uint16 // bytes of Data filled
	OrigLen   uint16 // transport payload bytes in the packet
	Transport uint8  // DNSUDP or DNSTCP
	Pad       [7]byte
	Data      [DNSCap]byte
}

// Payload is the copied part of the packet's transport payload.
func (e *DNSEvent) Payload() []byte {
	n := int(e.Len)
	if n > len(e.Data) {
		n = len(e.Data)
	}
	return e.Data[:n]
}

// DecodeDNSEvent decodes a ring buffer record.
func DecodeDNSEvent(b []byte) (DNSEvent, error) {
	var e DNSEvent
	if len(b) < DNSEventSize {
		return e, fmt.Errorf("dns event: %d bytes, want %d", len(b), DNSEventSize)
	}
	ne := binary.NativeEndian
	e.NetNS = ne.Uint32(b[0:])
	e.Len = ne.Uint16(b[4:])
	e.OrigLen = ne.Uint16(b[6:])
	e.Transport = b[8]
	copy(e.Pad[:], b[9:16])
	copy(e.Data[:], b[16:DNSEventSize])
	return e, nil
}
