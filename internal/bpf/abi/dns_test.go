package abi

import (
	"bytes"
	"encoding/binary"
	"testing"
)

func TestDNSEventLayout(t *testing.T) {
	if n := binary.Size(DNSEvent{}); n != DNSEventSize {
		t.Fatalf("binary.Size(DNSEvent) = %d, want %d (ebpf/dns.h)", n, DNSEventSize)
	}
	in := DNSEvent{NetNS: 4026531840, Len: 3, OrigLen: 1500, Transport: DNSTCP}
	copy(in.Data[:], "abc")
	var buf bytes.Buffer
	if err := binary.Write(&buf, binary.NativeEndian, &in); err != nil {
		t.Fatal(err)
	}
	out, err := DecodeDNSEvent(buf.Bytes())
	if err != nil {
		t.Fatal(err)
	}
	if out != in {
		t.Fatalf("round trip: got %+v", out)
	}
	if string(out.Payload()) != "abc" {
		t.Fatalf("payload %q", out.Payload())
	}
	if _, err := DecodeDNSEvent(buf.Bytes()[:100]); err == nil {
		t.Fatal("short record decoded")
	}
	out.Len = 60000
	if len(out.Payload()) != DNSCap {
		t.Fatal("payload not clamped to the capture")
	}
}
