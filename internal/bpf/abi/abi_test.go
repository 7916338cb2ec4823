package abi

import (
	"bytes"
	"encoding/binary"
	"net/netip"
	"os"
	"regexp"
	"strconv"
	"testing"
)

// The C header is the source of truth: its _Static_asserts pin the sizes
// that these Go mirrors must match.
func TestLayoutMatchesC(t *testing.T) {
	src, err := os.ReadFile("../../../ebpf/bwtracker.bpf.c")
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]int{}
	re := regexp.MustCompile(`sizeof\(struct (\w+)\) == (\d+)`)
	for _, m := range re.FindAllStringSubmatch(string(src), -1) {
		n, _ := strconv.Atoi(m[2])
		want[m[1]] = n
	}
	got := map[string]int{
		"flow_key":   binary.Size(FlowKey{}),
		"flow_val":   binary.Size(FlowVal{}),
		"exec_event": binary.Size(ExecEvent{}),
		"flow_cache": binary.Size(FlowCache{}),
	}
	for name, size := range got {
		if want[name] == 0 {
			t.Errorf("struct %s: no _Static_assert in the C source", name)
		} else if want[name] != size {
			t.Errorf("struct %s: Go size %d, C size %d", name, size, want[name])
		}
	}
}

func TestFlowKeyRoundTrip(t *testing.T) {
	k := FlowKey{TGID: 4242, UID: 1000, StartNS: 123456789012, CgroupID: 77, RPort: 443, Proto: ProtoTCP, Dir: DirRX, NetNS: 4026531840}
	copy(k.Comm[:], "curl")
	a := netip.MustParseAddr("::ffff:198.18.0.2").As16()
	k.RAddr = a
	var buf bytes.Buffer
	if err := binary.Write(&buf, binary.NativeEndian, &k); err != nil {
		t.Fatal(err)
	}
	b := buf.Bytes()
	// Field offsets as C lays them out.
	if got := binary.NativeEndian.Uint16(b[40:]); got != 443 {
		t.Errorf("rport at offset 40 = %d", got)
	}
	if b[42] != ProtoTCP || b[43] != DirRX {
		t.Errorf("proto/dir at 42/43 = %d/%d", b[42], b[43])
	}
	if string(b[48:52]) != "curl" {
		t.Errorf("comm at 48 = %q", b[48:52])
	}
	got, err := DecodeFlowKey(b)
	if err != nil {
		t.Fatal(err)
	}
	if got != k {
		t.Fatalf("round trip: got %+v want %+v", got, k)
	}
	if got.Remote().String() != "198.18.0.2" {
		t.Errorf("remote = %s", got.Remote())
	}
	if CString(got.Comm[:]) != "curl" {
		t.Errorf("comm = %q", CString(got.Comm[:]))
	}
}

func TestDecodePerCPUSums(t *testing.T) {
	var buf bytes.Buffer
	for _, v := range []FlowVal{{Bytes: 10, Calls: 1, FirstNS: 9}, {Bytes: 32, Calls: 2, FirstNS: 5}, {}} {
		binary.Write(&buf, binary.NativeEndian, v)
	}
	sum, err := DecodePerCPU(buf.Bytes())
	if err != nil {
		t.Fatal(err)
	}
	if sum != (FlowVal{Bytes: 42, Calls: 3, FirstNS: 5}) {
		t.Fatalf("sum = %+v", sum)
	}
	if _, err := DecodePerCPU(make([]byte, 25)); err == nil {
		t.Fatal("odd size accepted")
	}
}

func TestUnknownRemote(t *testing.T) {
	var k FlowKey
	if k.Remote().IsValid() {
		t.Fatal("zero address should be unknown")
	}
	k.RAddr = netip.MustParseAddr("2001:db8::1").As16()
	if k.Remote().String() != "2001:db8::1" {
		t.Fatal(k.Remote())
	}
}

// The drop counter names follow the BWT_DROP_* indexes of the header, and
// only the causes the header marks "BYTES LOST" lose bytes.
func TestDropCausesMatchC(t *testing.T) {
	src, err := os.ReadFile("../../../ebpf/bwtracker.h")
	if err != nil {
		t.Fatal(err)
	}
	re := regexp.MustCompile(`#define BWT_DROP_(\w+) (\d+)\s*(/\*[^*]*\*/)?`)
	n := 0
	lossy := 0
	for _, m := range re.FindAllStringSubmatch(string(src), -1) {
		idx, _ := strconv.Atoi(m[2])
		if m[1] == "MAX" {
			if idx != len(dropCauses) {
				t.Errorf("BWT_DROP_MAX %d, Go names %d causes", idx, len(dropCauses))
			}
			continue
		}
		n++
		if idx >= len(dropCauses) {
			t.Errorf("BWT_DROP_%s = %d has no Go name", m[1], idx)
			continue
		}
		if want := regexp.MustCompile(`BYTES LOST`).MatchString(m[3]); want != LosesBytes(dropCauses[idx]) {
			t.Errorf("BWT_DROP_%s (%s): header says bytes lost=%v, LosesBytes says %v", m[1], dropCauses[idx], want, !want)
		}
		if LosesBytes(dropCauses[idx]) {
			lossy++
		}
	}
	if n != len(dropCauses) || lossy != len(bytesLostCauses) {
		t.Errorf("header defines %d causes (%d lossy), Go %d (%d lossy)", n, lossy, len(dropCauses), len(bytesLostCauses))
	}
}

func TestOverflowFlag(t *testing.T) {
	k := FlowKey{Proto: ProtoUDP | ProtoOverflow}
	if !k.Overflow() || ProtoName(k.Proto) != "udp" {
		t.Fatalf("overflow %v name %q", k.Overflow(), ProtoName(k.Proto))
	}
	k.Proto = ProtoUDP
	if k.Overflow() {
		t.Fatal("plain key marked overflow")
	}
}

func TestDetailOnly(t *testing.T) {
	if !DetailOnly("flows_map_full") || !DetailOnly("peer_stash") || DetailOnly("no_active_map") || DetailOnly("drain_leftover") {
		t.Fatal("DetailOnly classification")
	}
}
