package integration

// `make bench-scale`: the daemon under many new remotes per second. Not part
// of `make test` (a benchmark; it prints figures and asserts nothing about
// speed).

import (
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

func init() {
	benchModes["scale-gen"] = func(args []string) (result, error) {
		return scaleGen(atoi(args[0]), atoi(args[1]), atoi(args[2]), atoi(args[3]))
	}
}

// scaleAddr is the i-th remote of scaleGen (up to 150 * 65536 distinct).
func scaleAddr(i int) [4]byte {
	return [4]byte{127, byte(100 + (i>>16)%150), byte(i >> 8), byte(i)}
}

// scaleGen makes rate new remotes per second for secs seconds: remote i is
// born at i/rate s and gets one size-byte UDP datagram per second for life
// seconds, so rate*life flows are live at any time.
func scaleGen(rate, secs, life, size int) (result, error) {
	var r result
	fd, err := udpSocket("127.0.0.1:0")
	if err != nil {
		return r, err
	}
	buf := make([]byte, size)
	total := rate * secs
	idx := func(t float64) int { // remotes born by t
		return min(max(int(t*float64(rate)), 0), total)
	}
	fmt.Println("READY gen")
	start := time.Now()
	prev := 0.0
	sa := &unix.SockaddrInet4{Port: 9}
	for {
		t := time.Since(start).Seconds()
		for k := 0; k < life; k++ {
			for i := idx(prev - float64(k)); i < idx(t-float64(k)); i++ {
				sa.Addr = scaleAddr(i)
				if err := sendtoRetry(fd, buf, sa); err != nil {
					return r, fmt.Errorf("sendto %v: %w", netip.AddrFrom4(sa.Addr), err)
				}
				r.TX += uint64(size)
			}
		}
		prev = t
		if t > float64(secs+life) {
			return r, nil
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// stopWithin sends SIGTERM and waits up to limit for a clean exit.
func (d *daemon) stopWithin(limit time.Duration) time.Duration {
	d.t.Helper()
	t0 := time.Now()
	d.cmd.Process.Signal(syscall.SIGTERM)
	done := make(chan error, 1)
	go func() { done <- d.cmd.Wait() }()
	select {
	case err := <-done:
		if err != nil {
			d.t.Fatalf("daemon exit: %v\n%s", err, d.log())
		}
	case <-time.After(limit):
		d.cmd.Process.Kill()
		d.t.Fatalf("daemon did not stop within %s after SIGTERM\n%s", limit, d.log())
	}
	return time.Since(t0)
}

// BenchmarkScale runs, for each RATE[:LIFE] of BWT_SCALE_RATES (default
// 1000,5000,20000,50000,5000:10), one process making RATE new remotes a
// second for BWT_SCALE_SECS (20) seconds, each remote getting one 200-byte
// datagram a second for LIFE (1) seconds, so RATE*LIFE flows are live in
// every interval, and prints the daemon's CPU, its drain cadence, the
// bytes lost (generated minus reported after SIGTERM) and how long the stop
// took. With BWT_SCALE_PROFILE=DIR the daemon writes DIR/cpu-RATE-LIFE.prof.
func BenchmarkScale(b *testing.B) {
	spec := "1000,5000,20000,50000,5000:10"
	if v := os.Getenv("BWT_SCALE_RATES"); v != "" {
		spec = v
	}
	type point struct{ rate, life int }
	var points []point
	for _, f := range strings.Split(spec, ",") {
		r, l, ok := strings.Cut(f, ":")
		p := point{atoi(r), 1}
		if ok {
			p.life = atoi(l)
		}
		points = append(points, p)
	}
	secs := 20
	if v, _ := strconv.Atoi(os.Getenv("BWT_SCALE_SECS")); v > 0 {
		secs = v
	}
	type line struct {
		rate, live    int
		cpu           float64
		maxGap        time.Duration
		flushes, want int
		sent, got     uint64
		stop          time.Duration
		dbBytes       int64
		rss           int64
		backlog       int
		catchUp       time.Duration
		usPerRemote   float64
	}
	var lines []line
	for _, pt := range points {
		rate, life := pt.rate, pt.life
		listen := nextListen()
		args := []string{"--map-entries", "262144", "--listen", listen}
		if dir := os.Getenv("BWT_SCALE_PROFILE"); dir != "" {
			args = append(args, "--cpu-profile", filepath.Join(dir, fmt.Sprintf("cpu-%d-%d.prof", rate, life)))
		}
		d := startDaemon(b, "1s", args...)
		gen := startChild(b, "scale-gen", strconv.Itoa(rate), strconv.Itoa(secs), strconv.Itoa(life), "200")
		gen.waitReady()
		pid := d.cmd.Process.Pid
		cpu0, t0 := procCPU(pid), time.Now()
		// Watch the flush cadence while the generator runs.
		var flushes []time.Time
		var maxBacklog int
		stopWatch := make(chan struct{})
		watched := make(chan struct{})
		go func() {
			defer close(watched)
			var last time.Time
			for {
				select {
				case <-stopWatch:
					return
				case <-time.After(50 * time.Millisecond):
				}
				// The live snapshot's time is the last drain.
				var cur struct {
					Time time.Time `json:"time"`
				}
				if resp, err := httpGet("http://" + listen + "/api/current?top=1"); err == nil && decodeJSON(resp, &cur) == nil && cur.Time.After(last) {
					last = cur.Time
					flushes = append(flushes, last)
				}
				if st, err := fetchStatus(listen); err == nil {
					maxBacklog = max(maxBacklog, st.DB.HeldSamples)
				}
			}
		}()
		res := gen.wait()
		wall := time.Since(t0)
		cpu1 := procCPU(pid)
		// Let it catch up: the writer may be behind; wait until everything
		// drained is written (at most 5 minutes).
		time.Sleep(1500 * time.Millisecond)
		var catchUp time.Duration
		for tEnd := time.Now(); time.Since(tEnd) < 5*time.Minute; time.Sleep(100 * time.Millisecond) {
			st, err := fetchStatus(listen)
			if err == nil && st.DB.HeldSamples == 0 && st.LastFlush.After(tEnd) {
				catchUp = time.Since(tEnd)
				break
			}
		}
		cpuCaught := procCPU(pid)
		close(stopWatch)
		<-watched
		rss := procRSS(pid)
		stop := d.stopWithin(5 * time.Minute)
		var got uint64
		for _, r := range forPID(d.report("process"), gen.pid()) {
			got += r.TX
		}
		var maxGap time.Duration
		for i := 1; i < len(flushes); i++ {
			maxGap = max(maxGap, flushes[i].Sub(flushes[i-1]))
		}
		fi, _ := os.Stat(d.db)
		var dbBytes int64
		if fi != nil {
			dbBytes = fi.Size()
		}
		l := line{rate: rate, live: rate * life, cpu: (cpu1 - cpu0).Seconds() / wall.Seconds(),
			maxGap: maxGap, flushes: len(flushes), want: int(wall.Seconds()) + 3, sent: res.TX, got: got,
			stop: stop, dbBytes: dbBytes, rss: rss, backlog: maxBacklog, catchUp: catchUp,
			usPerRemote: float64((cpuCaught - cpu0).Microseconds()) / float64(rate*secs)}
		lines = append(lines, l)
		fmt.Printf("rate %6d/s life %2ds: live %6d  daemon CPU %6.1f%% of one core (%.0f CPU-µs per new remote incl. catch-up)  max drain gap %s  peak write backlog %d samples, caught up %s after the burst  bytes lost %d of %d  SIGTERM->exit %s  RSS %d MiB\n",
			rate, life, l.live, 100*l.cpu, l.usPerRemote, maxGap.Round(time.Millisecond), maxBacklog, catchUp.Round(100*time.Millisecond), int64(l.sent)-int64(l.got), l.sent, stop.Round(time.Millisecond), rss>>20)
	}
	fmt.Println()
	fmt.Println("new remotes/s | live flows | daemon CPU % of one core | CPU-µs/new remote | max drain gap | peak backlog | caught up after | bytes lost | SIGTERM->exit | RSS")
	for _, l := range lines {
		fmt.Printf("%13d | %10d | %24.1f | %17.0f | %13s | %12d | %15s | %10d | %13s | %3d MiB\n", l.rate, l.live, 100*l.cpu, l.usPerRemote,
			l.maxGap.Round(time.Millisecond), l.backlog, l.catchUp.Round(100*time.Millisecond), int64(l.sent)-int64(l.got), l.stop.Round(time.Millisecond), l.rss>>20)
	}
}

func fetchStatus(listen string) (status, error) {
	var st status
	resp, err := httpGet("http://" + listen + "/api/status")
	if err != nil {
		return st, err
	}
	err = decodeJSON(resp, &st)
	return st, err
}

// procRSS is a process's resident set in bytes.
func procRSS(pid int) int64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0
	}
	for _, l := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, "VmRSS:"); ok {
			kb, _ := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
			return kb << 10
		}
	}
	return 0
}
