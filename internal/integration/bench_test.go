package integration

import (
	"fmt"
	"net"
	"net/netip"
	"os"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/bwtracker/bwtracker/internal/bpf/floor"
)

// Benchmark children.
func init() {
	benchModes["bench-stream"] = func(args []string) (result, error) {
		return benchStream(args[0], atoi(args[1]))
	}
	benchModes["bench-sink"] = func(args []string) (result, error) { return benchSink(args[0]) }
	benchModes["bench-pingpong"] = func(args []string) (result, error) {
		return benchPingPong(args[0], atoi(args[1]))
	}
	benchModes["bench-echo"] = func(args []string) (result, error) { return benchEcho(args[0]) }
	benchModes["bench-flows"] = func(args []string) (result, error) {
		return benchFlows(atoi(args[0]), atoi(args[1]))
	}
}

// benchStream writes 64-byte messages with TCP_NODELAY for ms milliseconds.
func benchStream(addr string, ms int) (result, error) {
	var r result
	c, err := net.Dial("tcp", addr)
	if err != nil {
		return r, err
	}
	c.(*net.TCPConn).SetNoDelay(true)
	f, _ := c.(*net.TCPConn).File()
	fd := int(f.Fd())
	unix.SetNonblock(fd, false)
	msg := make([]byte, 64)
	end := time.Now().Add(time.Duration(ms) * time.Millisecond)
	for i := 0; ; i++ {
		if i%256 == 0 && time.Now().After(end) {
			break
		}
		n, err := unix.Write(fd, msg)
		if err != nil {
			return r, err
		}
		r.TX += uint64(n)
	}
	return r, nil
}

// benchSink accepts one connection and reads until EOF.
func benchSink(bind string) (result, error) {
	var r result
	ln, err := net.Listen("tcp", bind)
	if err != nil {
		return r, err
	}
	fmt.Printf("READY %s\n", ln.Addr())
	c, err := ln.Accept()
	if err != nil {
		return r, err
	}
	buf := make([]byte, 1<<16)
	for {
		n, err := c.Read(buf)
		r.RX += uint64(n)
		if err != nil {
			return r, nil
		}
	}
}

// benchFlows keeps n distinct UDP flows active: each sends 64 bytes every
// 100 ms to its own port on 127.0.0.1 (nobody listens; the send still
// counts) for ms milliseconds.
func benchFlows(n, ms int) (result, error) {
	var r result
	fds := make([]int, n)
	for i := range fds {
		fd, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM, 0)
		if err != nil {
			return r, err
		}
		fds[i] = fd
	}
	msg := make([]byte, 64)
	fmt.Println("READY flows")
	end := time.Now().Add(time.Duration(ms) * time.Millisecond)
	for time.Now().Before(end) {
		for i, fd := range fds {
			sa := &unix.SockaddrInet4{Port: 20000 + i, Addr: netip.MustParseAddr("127.0.0.1").As4()}
			if err := unix.Sendto(fd, msg, 0, sa); err == nil {
				r.TX += 64
			}
		}
		time.Sleep(100 * time.Millisecond)
	}
	return r, nil
}

func procCPU(pid int) time.Duration {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0
	}
	s := string(b)
	f := strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
	ut, _ := strconv.ParseUint(f[11], 10, 64)
	st, _ := strconv.ParseUint(f[12], 10, 64)
	return time.Duration(ut+st) * 10 * time.Millisecond
}

// Phases of the overhead benchmark.
const (
	modeOff   = "off"       // no hook attached by this benchmark
	modeFloor = "floor"     // ebpf/floor.bpf.c: one per-CPU array add per event
	modeOn    = "bwtracker" // the real daemon
	modeOther = "other"     // BWT_BENCH_OTHER_BIN: another bwtracker build (before/after)
)

// benchPingPong sends a 64-byte TCP_NODELAY message and waits for it to
// come back, for ms milliseconds; TX counts the bytes of completed round
// trips.
func benchPingPong(addr string, ms int) (result, error) {
	var r result
	c, err := net.Dial("tcp", addr)
	if err != nil {
		return r, err
	}
	c.(*net.TCPConn).SetNoDelay(true)
	f, _ := c.(*net.TCPConn).File()
	defer func() { f.Close(); c.Close() }()
	fd := int(f.Fd())
	unix.SetNonblock(fd, false)
	msg := make([]byte, 64)
	end := time.Now().Add(time.Duration(ms) * time.Millisecond)
	for i := 0; ; i++ {
		if i%64 == 0 && time.Now().After(end) {
			break
		}
		if _, err := writeAllFD(fd, msg); err != nil {
			return r, err
		}
		if err := readFullFD(fd, msg); err != nil {
			return r, err
		}
		r.TX += 64
	}
	return r, nil
}

// benchEcho accepts one connection and sends back what it reads, to EOF.
func benchEcho(bind string) (result, error) {
	var r result
	ln, err := net.Listen("tcp", bind)
	if err != nil {
		return r, err
	}
	fmt.Printf("READY %s\n", ln.Addr())
	c, err := ln.Accept()
	if err != nil {
		return r, err
	}
	c.(*net.TCPConn).SetNoDelay(true)
	f, _ := c.(*net.TCPConn).File()
	defer func() { f.Close(); c.Close() }()
	fd := int(f.Fd())
	unix.SetNonblock(fd, false)
	buf := make([]byte, 64)
	for {
		n, err := unix.Read(fd, buf)
		if err == unix.EINTR {
			continue
		}
		if err != nil || n == 0 {
			return r, nil
		}
		r.RX += uint64(n)
		if _, err := writeAllFD(fd, buf[:n]); err != nil {
			return r, nil
		}
	}
}

func writeAllFD(fd int, b []byte) (int, error) {
	n := 0
	for n < len(b) {
		w, err := unix.Write(fd, b[n:])
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return n, err
		}
		n += w
	}
	return n, nil
}

func readFullFD(fd int, b []byte) error {
	n := 0
	for n < len(b) {
		m, err := unix.Read(fd, b[n:])
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return err
		}
		if m == 0 {
			return fmt.Errorf("EOF after %d of %d bytes", n, len(b))
		}
		n += m
	}
	return nil
}

// pinned runs child mode pinned to cpu with taskset (which execs it: the
// child keeps its pid).
func pinned(b *testing.B, cpu int, mode string, args ...string) *child {
	return startChildCmd(b, childCmd("taskset", mode, append([]string{"-c", strconv.Itoa(cpu), os.Args[0]}, args...)...))
}

func childCPU(c *child) time.Duration {
	ru := c.cmd.ProcessState.SysUsage().(*syscall.Rusage)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// benchPhase runs one workload ("stream" or "ping-pong") with client and
// server pinned to cpu for ms milliseconds: messages per second and the
// CPU time both processes spent per message.
func benchPhase(b *testing.B, workload string, cpu, ms int) (rate, cpuPerMsg float64) {
	var srv, cli *child
	if workload == "stream" {
		srv = pinned(b, cpu, "bench-sink", "127.0.0.1:0")
		addr := srv.waitReady()
		start := time.Now()
		cli = pinned(b, cpu, "bench-stream", addr, strconv.Itoa(ms))
		res := cli.wait()
		wall := time.Since(start)
		srv.wait()
		msgs := float64(res.TX / 64)
		return msgs / wall.Seconds(), float64((childCPU(cli) + childCPU(srv)).Nanoseconds()) / msgs
	}
	srv = pinned(b, cpu, "bench-echo", "127.0.0.1:0")
	addr := srv.waitReady()
	start := time.Now()
	cli = pinned(b, cpu, "bench-pingpong", addr, strconv.Itoa(ms))
	res := cli.wait()
	wall := time.Since(start)
	srv.wait()
	msgs := float64(res.TX / 64)
	return msgs / wall.Seconds(), float64((childCPU(cli) + childCPU(srv)).Nanoseconds()) / msgs
}

// BenchmarkTrackerOverhead measures, side by side in one run, the message
// rate of 64-byte TCP_NODELAY loopback messages, as a stream and as a
// ping-pong, client and server pinned to one CPU, in three modes: no hook
// ("off"), the floor (ebpf/floor.bpf.c: the same two tracepoints, one
// per-CPU array add each) and bwtracker. Rounds alternate the modes (the
// order rotates each round); 1,000 other UDP flows stay active on the other
// CPU throughout. It prints medians and ratios and the daemon's CPU use; it
// asserts nothing about speed. Run with `make bench` (BWT_BENCH_ROUNDS,
// default 5; BWT_BENCH_PHASE_MS, default 1500; BWT_BENCH_WORKLOADS, default
// "stream,ping-pong"; BWT_BENCH_OTHER_BIN adds a
// fourth mode: another bwtracker binary, e.g. the previous build).
func BenchmarkTrackerOverhead(b *testing.B) {
	if os.Geteuid() != 0 {
		b.Skip("SKIPPED: needs root")
	}
	phaseMS := 1500
	if v, _ := strconv.Atoi(os.Getenv("BWT_BENCH_PHASE_MS")); v > 0 {
		phaseMS = v
	}
	rounds := 5
	if v, _ := strconv.Atoi(os.Getenv("BWT_BENCH_ROUNDS")); v > 0 {
		rounds = v
	}
	ncpu := runtime.NumCPU()
	pairCPU, flowsCPU := ncpu-1, 0
	workloads := []string{"stream", "ping-pong"}
	if w := os.Getenv("BWT_BENCH_WORKLOADS"); w != "" {
		workloads = strings.Split(w, ",")
	}
	modes := []string{modeOff, modeFloor, modeOn}
	other, mine := os.Getenv("BWT_BENCH_OTHER_BIN"), bwtrackerBin(b)
	if other != "" {
		modes = append(modes, modeOther)
	}
	rate := map[string]map[string][]float64{}
	perMsg := map[string]map[string][]float64{}
	for _, w := range workloads {
		rate[w], perMsg[w] = map[string][]float64{}, map[string][]float64{}
	}
	var daemonCPU, daemonWall time.Duration
	fmt.Printf("64-byte TCP_NODELAY messages over loopback, client and server pinned to CPU %d, %d ms per phase, 1,000 UDP flows on CPU %d; load average %s\n", pairCPU, phaseMS, flowsCPU, loadavg())
	for round := 0; round < rounds; round++ {
		for i := range modes {
			mode := modes[(i+round)%len(modes)]
			var d *daemon
			var fl *floor.Floor
			switch mode {
			case modeOn:
				d = startDaemon(b, "1s")
			case modeOther:
				b.Setenv("BWTRACKER_BIN", other)
				d = startDaemon(b, "1s")
				b.Setenv("BWTRACKER_BIN", mine)
			case modeFloor:
				var err error
				if fl, err = floor.Attach(); err != nil {
					b.Fatal(err)
				}
			}
			flows := startChildCmd(b, childCmd("taskset", "bench-flows", "-c", strconv.Itoa(flowsCPU), os.Args[0], "1000", strconv.Itoa(2*phaseMS+1000)))
			flows.waitReady()
			var cpu0 time.Duration
			start := time.Now()
			if d != nil {
				cpu0 = procCPU(d.cmd.Process.Pid)
			}
			for _, w := range workloads {
				r, c := benchPhase(b, w, pairCPU, phaseMS)
				rate[w][mode] = append(rate[w][mode], r)
				perMsg[w][mode] = append(perMsg[w][mode], c)
				fmt.Printf("round %d %-9s %-9s: %9.0f msgs/s  %6.0f CPU-ns/msg (client+server)\n", round+1, w, mode, r, c)
			}
			if d != nil {
				daemonCPU += procCPU(d.cmd.Process.Pid) - cpu0
				daemonWall += time.Since(start)
				d.stop()
			}
			if fl != nil {
				fl.Close()
			}
			flows.wait()
		}
	}
	med := func(v []float64) float64 {
		s := append([]float64(nil), v...)
		sort.Float64s(s)
		if len(s)%2 == 0 {
			return (s[len(s)/2-1] + s[len(s)/2]) / 2
		}
		return s[len(s)/2]
	}
	fmt.Printf("\nmedians of %d rounds (load average now %s)\n", rounds, loadavg())
	fmt.Printf("%-10s %12s %12s %12s %10s %14s %16s\n", "workload", "off msgs/s", "floor", "bwtracker", "floor/off", "bwtracker/off", "bwtracker/floor")
	for _, w := range workloads {
		off, fl, on := med(rate[w][modeOff]), med(rate[w][modeFloor]), med(rate[w][modeOn])
		fmt.Printf("%-10s %12.0f %12.0f %12.0f %10.3f %14.3f %16.3f\n", w, off, fl, on, fl/off, on/off, on/fl)
		b.ReportMetric(on/fl, w+"-bwtracker/floor")
	}
	if other != "" {
		fmt.Printf("BWT_BENCH_OTHER_BIN=%s in the same rounds:\n", other)
		for _, w := range workloads {
			off, fl, o := med(rate[w][modeOff]), med(rate[w][modeFloor]), med(rate[w][modeOther])
			fmt.Printf("%-10s %12.0f msgs/s  other/off %.3f  other/floor %.3f  (CPU time: other/floor %.3f)\n", w, o, o/off, o/fl, med(perMsg[w][modeFloor])/med(perMsg[w][modeOther]))
		}
	}
	fmt.Printf("the same ratios in CPU time per message (client+server; less sensitive to other load on the CPU):\n")
	for _, w := range workloads {
		off, fl, on := med(perMsg[w][modeOff]), med(perMsg[w][modeFloor]), med(perMsg[w][modeOn])
		fmt.Printf("%-10s %9.0f ns %9.0f ns %9.0f ns %10.3f %14.3f %16.3f\n", w, off, fl, on, off/fl, off/on, fl/on)
	}
	total := daemonCPU.Seconds() / daemonWall.Seconds()
	fmt.Printf("daemon CPU %.2f%% of one core over all bwtracker phases (%s CPU in %s) with 1,000 active flows + the workloads (target < 2%%)\n", 100*total, daemonCPU.Round(time.Millisecond), daemonWall.Round(time.Millisecond))
	b.ReportMetric(100*total, "daemon-cpu-%")
}

func loadavg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "?"
	}
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return "?"
	}
	return strings.Join(f[:3], " ")
}
