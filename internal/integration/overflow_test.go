package integration

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/netip"
	"strings"
	"testing"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// sprayComm is the name of the UDP spray child (prctl PR_SET_NAME), so its
// rows are found by name as well as by pid.
const sprayComm = "bwt-spray"

func init() {
	benchModes["named-spray"] = func(args []string) (result, error) {
		return namedSpray(atoi(args[0]), atoi(args[1]))
	}
}

// namedSpray sends one size-byte datagram to each of n distinct destinations
// (127.0.x.y:9000+i, nobody listening) as fast as it can, so that all of
// them land in one drain interval.
func namedSpray(n, size int) (result, error) {
	var r result
	name, _ := unix.BytePtrFromString(sprayComm)
	if err := unix.Prctl(unix.PR_SET_NAME, uintptr(unsafe.Pointer(name)), 0, 0, 0); err != nil {
		return r, fmt.Errorf("naming the process: %w", err)
	}
	fd, err := udpSocket("127.0.0.1:0")
	if err != nil {
		return r, err
	}
	buf := make([]byte, size)
	for i := 0; i < n; i++ {
		dst := netip.AddrPortFrom(netip.AddrFrom4([4]byte{127, 0, byte(1 + i/250), byte(1 + i%250)}), uint16(9000+i))
		_, sa := sockaddr(dst)
		if err := sendtoRetry(fd, buf, sa); err != nil {
			return r, fmt.Errorf("sendto %s: %w", dst, err)
		}
		r.TX += uint64(size)
	}
	return r, nil
}

// A full flows map loses detail, not bytes: with room for 64 flows, a
// process sending to 500 distinct UDP destinations in one interval still
// has its exact tx total in `report`; the flows without room are one
// "(overflow)" remote row, and /api/status counts them as detail lost
// (events and bytes), not as drops.
func TestMapFullKeepsBytes(t *testing.T) {
	const listen = "127.0.0.1:19311"
	d := startDaemon(t, "1s", "--map-entries", "64", "--listen", listen)
	const n, size = 500, 333
	c := startChild(t, "named-spray", fmt.Sprint(n), fmt.Sprint(size))
	res := c.wait()
	mustEqual(t, "child's own tally", res.TX, n*size)
	time.Sleep(1500 * time.Millisecond) // one drain after the spray

	var st struct {
		Drops      map[string]uint64 `json:"drops"`
		DetailLost map[string]uint64 `json:"detail_lost"`
	}
	resp, err := http.Get("http://" + listen + "/api/status")
	if err != nil {
		t.Fatal(err)
	}
	if err := json.NewDecoder(resp.Body).Decode(&st); err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	d.stop()

	rows := forPID(d.report("process"), c.pid())
	if len(rows) != 1 || rows[0].Comm != sprayComm {
		t.Fatalf("process rows of the spray child (pid %d): %s", c.pid(), dump(rows))
	}
	mustEqual(t, "tx of a process whose flows overflowed a 64-entry map", rows[0].TX, n*size)

	byRemote := forPID(d.report("process,remote"), c.pid())
	var overflow, detailed uint64
	for _, r := range byRemote {
		if r.RemoteIP == "(overflow)" {
			overflow += r.TX
		} else {
			detailed += r.TX
		}
	}
	mustEqual(t, "overflow + detailed rows", overflow+detailed, n*size)
	if overflow == 0 || detailed == 0 {
		t.Errorf("expected both detailed and (overflow) rows with 64 entries and %d destinations: %s", n, dump(byRemote))
	}
	if len(byRemote) > 2*64+2 { // the spray may span two drains
		t.Errorf("%d remote rows from a 64-entry map", len(byRemote))
	}
	if st.DetailLost["flows_map_full"] == 0 || st.DetailLost["remote_overflow_bytes"] < overflow {
		t.Errorf("/api/status detail_lost %v: want flows_map_full > 0 and remote_overflow_bytes >= %d", st.DetailLost, overflow)
	}
	for k, v := range st.Drops {
		if v != 0 {
			t.Errorf("/api/status drops %s = %d: a full flows map must not lose bytes", k, v)
		}
	}
	if !strings.Contains(d.log(), "detail lost, bytes kept") || strings.Contains(d.log(), "increments dropped") {
		t.Errorf("log should report detail lost and no drops:\n%s", d.log())
	}
	t.Logf("map-full exactness: %d of %d bytes in report (%d in (overflow) rows, %d with their remote, %d remote rows); detail_lost %v",
		rows[0].TX, n*size, overflow, detailed, len(byRemote), st.DetailLost)
}
