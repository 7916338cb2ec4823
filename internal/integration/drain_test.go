package integration

// Many distinct remotes within one interval: the kernel map holds far more
// entries than one lookup-and-delete batch (1,024), and every one of them
// must reach the database, through a periodic drain, through a map swap in
// the middle of the burst and through the shutdown drain.

import (
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

func init() {
	benchModes["udp-spray"] = func(args []string) (result, error) {
		return udpSpray(atoi(args[0]), atoi(args[1]), atoi(args[2]))
	}
}

// sprayAddr is the i-th destination of udpSpray: 127.100.0.0 upwards.
func sprayAddr(i int) netip.Addr {
	return netip.AddrFrom4([4]byte{127, byte(100 + i>>16), byte(i >> 8), byte(i)})
}

// udpSpray sends one size-byte datagram from one unconnected socket to each
// of n distinct loopback addresses (port 9, nobody listens: the send still
// counts), pausing pauseMS after the first half.
func udpSpray(n, size, pauseMS int) (result, error) {
	var r result
	fd, err := udpSocket("127.0.0.1:0")
	if err != nil {
		return r, err
	}
	buf := make([]byte, size)
	for i := 0; i < n; i++ {
		if i == n/2 && pauseMS > 0 {
			time.Sleep(time.Duration(pauseMS) * time.Millisecond)
		}
		sa := &unix.SockaddrInet4{Port: 9, Addr: sprayAddr(i).As4()}
		if err := sendtoRetry(fd, buf, sa); err != nil {
			return r, fmt.Errorf("sendto %s: %w", sprayAddr(i), err)
		}
		r.TX += uint64(size)
	}
	return r, nil
}

// status is the part of /api/status these tests read.
type status struct {
	LastFlush time.Time         `json:"last_flush"` // last successful write
	Drops     map[string]uint64 `json:"drops"`
	DB        struct {
		HeldSamples int    `json:"held_samples"`
		LostBytes   uint64 `json:"lost_bytes"`
	} `json:"db"`
}

func getStatus(t *testing.T, listen string) status {
	t.Helper()
	st, err := fetchStatus(listen)
	if err != nil {
		t.Fatal(err)
	}
	return st
}

var httpGet = http.Get

func decodeJSON(resp *http.Response, v any) error {
	defer resp.Body.Close()
	return json.NewDecoder(resp.Body).Decode(v)
}

// waitFlushes waits until the daemon has finished n flushes that started
// after `after`: every byte counted before `after` is then in the DB.
func waitFlushes(t *testing.T, d *daemon, listen string, after time.Time, n int) {
	t.Helper()
	var seen []time.Time
	deadline := time.Now().Add(3 * time.Minute)
	for time.Now().Before(deadline) {
		st := getStatus(t, listen)
		if st.LastFlush.After(after) && (len(seen) == 0 || st.LastFlush.After(seen[len(seen)-1])) {
			seen = append(seen, st.LastFlush)
			if len(seen) > n { // the first may have started before `after`
				return
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("the daemon did not flush %d times within 3 minutes after the burst:\n%s", n, d.log())
}

// waitCaughtUp waits until the daemon holds no backlog: a burst of new
// remotes bigger than one interval's write budget is written over the
// following intervals (collector: writes in pieces, drain cadence first).
func waitCaughtUp(t *testing.T, d *daemon, listen string) {
	t.Helper()
	deadline := time.Now().Add(3 * time.Minute)
	for time.Now().Before(deadline) {
		if st := getStatus(t, listen); st.DB.HeldSamples == 0 {
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("the daemon still held a backlog 3 minutes after the burst:\n%s", d.log())
}

// checkSpray asserts the exact per-process and per-remote totals of one
// udpSpray child.
func checkSpray(t *testing.T, d *daemon, c *child, n, size int) {
	t.Helper()
	rows := forPID(d.report("process,remote"), c.pid())
	tx, rx := sum(rows)
	mustEqual(t, "spraying process tx", tx, uint64(n*size))
	mustEqual(t, "spraying process rx", rx, 0)
	per := map[string]uint64{}
	for _, r := range rows {
		per[r.RemoteIP] += r.TX
	}
	bad := 0
	for i := 0; i < n; i++ {
		a := sprayAddr(i).String()
		if per[a] != uint64(size) && bad < 5 {
			t.Errorf("remote %s: %d bytes, want exactly %d", a, per[a], size)
			bad++
		}
		delete(per, a)
	}
	if len(per) > 0 {
		t.Errorf("%d unexpected remotes, e.g. %v", len(per), firstKeys(per, 3))
	}
	if len(rows) != n {
		t.Errorf("%d rows for %d remotes", len(rows), n)
	}
}

func firstKeys(m map[string]uint64, k int) []string {
	var out []string
	for a := range m {
		if len(out) == k {
			break
		}
		out = append(out, a)
	}
	return out
}

func checkNoDrops(t *testing.T, st status) {
	t.Helper()
	for k, v := range st.Drops {
		// peer_stash misses are other daemons' and tests' business;
		// drain_leftover moving means the batched drain was incomplete.
		if v != 0 && (k == "drain_leftover" || k == "flows_map_full" || k == "flows_map_update" || k == "db_backlog_overflow") {
			t.Errorf("drop counter %s = %d", k, v)
		}
	}
	if _, ok := st.Drops["drain_leftover"]; !ok {
		t.Errorf("/api/status drops has no drain_leftover counter: %v", st.Drops)
	}
}

// drainCase is one spray size with the map capacity it needs.
type drainCase struct {
	n       int
	entries string
}

var drainCases = []drainCase{{20_000, "32768"}, {100_000, "131072"}}

// nextListen picks a free loopback port for a daemon's API (other test
// runs on this machine start daemons too: no fixed ports).
func nextListen() string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		panic(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// Everything sent within one interval is in the DB after the next two
// flushes (the two maps), with the daemon still running.
func TestDrainManyRemotesOneInterval(t *testing.T) {
	for _, c := range drainCases {
		t.Run(strconv.Itoa(c.n), func(t *testing.T) {
			listen := nextListen()
			d := startDaemon(t, "2s", "--map-entries", c.entries, "--listen", listen)
			ch := startChild(t, "udp-spray", strconv.Itoa(c.n), "200", "0")
			cr := ch.wait()
			mustEqual(t, "child's own tx", cr.TX, uint64(c.n*200))
			waitFlushes(t, d, listen, time.Now(), 2)
			waitCaughtUp(t, d, listen)
			checkSpray(t, d, ch, c.n, 200)
			checkNoDrops(t, getStatus(t, listen))
			resp, err := http.Get("http://" + listen + "/metrics")
			if err != nil {
				t.Fatal(err)
			}
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if !strings.Contains(string(b), `bwtracker_drops_total{cause="drain_leftover"} 0`) {
				t.Errorf("/metrics lacks bwtracker_drops_total{cause=\"drain_leftover\"} 0")
			}
			d.stop()
		})
	}
}

// The shutdown drain (SIGTERM with nothing drained before: a 1 h interval)
// writes every remote.
func TestDrainManyRemotesShutdown(t *testing.T) {
	for _, c := range drainCases {
		t.Run(strconv.Itoa(c.n), func(t *testing.T) {
			d := startDaemon(t, "1h", "--map-entries", c.entries, "--no-web")
			ch := startChild(t, "udp-spray", strconv.Itoa(c.n), "200", "0")
			cr := ch.wait()
			mustEqual(t, "child's own tx", cr.TX, uint64(c.n*200))
			d.stop()
			checkSpray(t, d, ch, c.n, 200)
			if strings.Contains(d.log(), "batched drain left entries") {
				t.Errorf("the batched drain left entries behind:\n%s", d.log())
			}
		})
	}
}

// Map swaps in the middle of the burst (100 ms interval, and a 300 ms
// pause after the first half): each remote's bytes may be split over
// several drains and maps, and the sum is still exact.
func TestDrainManyRemotesMapSwap(t *testing.T) {
	for _, c := range drainCases {
		t.Run(strconv.Itoa(c.n), func(t *testing.T) {
			listen := nextListen()
			d := startDaemon(t, "100ms", "--map-entries", c.entries, "--listen", listen)
			ch := startChild(t, "udp-spray", strconv.Itoa(c.n), "200", "300")
			cr := ch.wait()
			mustEqual(t, "child's own tx", cr.TX, uint64(c.n*200))
			waitFlushes(t, d, listen, time.Now(), 2)
			waitCaughtUp(t, d, listen)
			checkSpray(t, d, ch, c.n, 200)
			checkNoDrops(t, getStatus(t, listen))
			d.stop()
		})
	}
}
