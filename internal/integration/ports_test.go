package integration

import (
	"strconv"
	"syscall"
	"testing"
)

// --by port and --by netns with real traffic: one unconnected UDP client
// sends to two servers on two ports; the report names each remote's port
// and the client's network namespace (the inode of /proc/PID/ns/net, the
// test's own), with exact bytes, and --port / --netns select them.
func TestReportByPortAndNetns(t *testing.T) {
	var st syscall.Stat_t
	if err := syscall.Stat("/proc/self/ns/net", &st); err != nil {
		t.Fatal(err)
	}
	netns := st.Ino // children inherit the test's network namespace
	d := startDaemon(t, "1s")
	const count, size = 20, 271
	perDst := uint64(2 * count * size) // sendto + sendmmsg
	srvA := startChild(t, "udp-server", "127.0.0.2:0", strconv.Itoa(2*count))
	pa := srvA.waitReady()
	srvB := startChild(t, "udp-server", "127.0.0.3:0", strconv.Itoa(2*count))
	pb := srvB.waitReady()
	cli := startChild(t, "udp-sendto", "127.0.0.5:0", "127.0.0.2:"+pa+",127.0.0.3:"+pb, strconv.Itoa(count), strconv.Itoa(size))
	cr := cli.wait()
	srvA.wait()
	srvB.wait()
	mustEqual(t, "client's own tx", cr.TX, 2*perDst)
	d.stop()

	type key struct {
		ip    string
		port  string
		netns uint64
	}
	got := map[key]uint64{}
	for _, r := range d.reportRaw("process,remote,port,netns") {
		if int(r["pid"].(float64)) != cli.pid() {
			continue
		}
		got[key{r["remote_ip"].(string), strconv.Itoa(int(r["remote_port"].(float64))), uint64(r["netns"].(float64))}] += uint64(r["tx_bytes"].(float64))
	}
	want := map[key]uint64{{"127.0.0.2", pa, netns}: perDst, {"127.0.0.3", pb, netns}: perDst}
	if len(got) != len(want) {
		t.Fatalf("client rows by remote,port,netns: %v, want %v", got, want)
	}
	for k, v := range want {
		mustEqual(t, "client tx to "+k.ip+":"+k.port+" in netns "+strconv.FormatUint(k.netns, 10), got[k], v)
	}
	for _, s := range []*child{srvA, srvB} {
		rows := d.reportRaw("process,netns", "--pid", strconv.Itoa(s.pid()))
		if len(rows) != 1 || uint64(rows[0]["netns"].(float64)) != netns || uint64(rows[0]["rx_bytes"].(float64)) != perDst {
			t.Errorf("server %d by netns: %v, want one row with netns %d and rx %d", s.pid(), rows, netns, perDst)
		}
	}

	// Filters: the client's traffic to one port, and all of it in its netns.
	tx, _ := sum(forPID(d.report("process", "--port", pb), cli.pid()))
	mustEqual(t, "client tx with --port "+pb, tx, perDst)
	tx, _ = sum(forPID(d.report("process", "--netns", strconv.FormatUint(netns, 10), "--pid", strconv.Itoa(cli.pid())), cli.pid()))
	mustEqual(t, "client tx with --netns", tx, 2*perDst)
	if rows := d.report("process", "--netns", "1", "--pid", strconv.Itoa(cli.pid())); len(rows) != 0 {
		t.Errorf("--netns 1 matched %s", dump(rows))
	}
}
