package integration

import (
	"fmt"
	"net"
	"net/netip"
	"os"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// Benchmark children.
func init() {
	benchModes["bench-stream"] = func(args []string) (result, error) {
		return benchStream(args[0], atoi(args[1]))
	}
	benchModes["bench-sink"] = func(args []string) (result, error) { return benchSink(args[0]) }
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

// BenchmarkTrackerOverhead measures, side by side in one run, the message
// rate of a loopback TCP stream of 64-byte TCP_NODELAY messages with the
// tracker off and on (alternating 3 times), while 1,000 other UDP flows stay
// active, and the daemon's CPU use. It reports ratios; it asserts nothing
// about speed. Run with `make bench`.
func BenchmarkTrackerOverhead(b *testing.B) {
	if os.Geteuid() != 0 {
		b.Skip("SKIPPED: needs root")
	}
	const phaseMS = 2000
	rounds := 6
	if v, _ := strconv.Atoi(os.Getenv("BWT_BENCH_ROUNDS")); v > 0 {
		rounds = v
	}
	var off, on, cpu []float64
	var offCPU, onCPU []float64 // stream sender's CPU ns per message
	var daemonCPU, daemonWall time.Duration
	for round := 0; round < rounds; round++ {
		for _, tracked := range []bool{false, true} {
			var d *daemon
			if tracked {
				d = startDaemon(b, "1s")
			}
			flows := startChild(b, "bench-flows", "1000", strconv.Itoa(phaseMS+500))
			flows.waitReady()
			sink := startChild(b, "bench-sink", "127.0.0.1:0")
			addr := sink.waitReady()
			cpu0 := time.Duration(0)
			if d != nil {
				cpu0 = procCPU(d.cmd.Process.Pid)
			}
			start := time.Now()
			st := startChild(b, "bench-stream", addr, strconv.Itoa(phaseMS))
			res := st.wait()
			wall := time.Since(start)
			ru := st.cmd.ProcessState.SysUsage().(*syscall.Rusage)
			senderCPU := time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
			perMsg := float64(senderCPU.Nanoseconds()) / float64(res.TX/64)
			sink.wait()
			flows.wait()
			rate := float64(res.TX/64) / wall.Seconds()
			if tracked {
				used := procCPU(d.cmd.Process.Pid) - cpu0
				cpu = append(cpu, used.Seconds()/wall.Seconds())
				daemonCPU += used
				daemonWall += wall
				d.stop()
				on = append(on, rate)
				onCPU = append(onCPU, perMsg)
			} else {
				off = append(off, rate)
				offCPU = append(offCPU, perMsg)
			}
			fmt.Printf("round %d tracker %-3s: %10.0f msgs/s  sender %5.0f CPU-ns/msg", round+1, map[bool]string{false: "off", true: "on"}[tracked], rate, perMsg)
			if tracked {
				fmt.Printf("   daemon CPU %.2f%% of one core", 100*cpu[len(cpu)-1])
			}
			fmt.Println()
		}
	}
	med := func(v []float64) float64 {
		s := append([]float64(nil), v...)
		sort.Float64s(s)
		return s[len(s)/2]
	}
	ratio := med(on) / med(off)
	fmt.Printf("median msgs/s off %.0f, on %.0f: on/off ratio %.3f (target >= 0.95)\n", med(off), med(on), ratio)
	cpuRatio := med(offCPU) / med(onCPU)
	fmt.Printf("median sender CPU per message off %.0f ns, on %.0f ns: off/on ratio %.3f (the same ratio measured in CPU time, less sensitive to scheduling noise)\n", med(offCPU), med(onCPU), cpuRatio)
	total := daemonCPU.Seconds() / daemonWall.Seconds()
	fmt.Printf("daemon CPU %.2f%% of one core over all tracked phases (%s CPU in %s) with 1,000 active flows + the stream (target < 2%%)\n", 100*total, daemonCPU, daemonWall.Round(time.Millisecond))
	b.ReportMetric(ratio, "on/off")
	b.ReportMetric(cpuRatio, "cpu-off/on")
	b.ReportMetric(100*total, "daemon-cpu-%")
}
