package integration

import (
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"
)

// liveConn is the part of /api/current's "connections" these tests read.
type liveConn struct {
	RemoteIP string `json:"remote_ip"`
	Port     uint16 `json:"remote_port"`
	Protocol string `json:"protocol"`
	TxBytes  uint64 `json:"tx_bytes"`
	RxBytes  uint64 `json:"rx_bytes"`
}

// The live snapshot lists a process's connections with the remote port
// and exact bytes: what `top` shows in its connection pane. Then `top
// --once` prints the process with the columns of the interactive view.
func TestLiveConnectionsExact(t *testing.T) {
	const listen = "127.0.0.1:18161"
	d := startDaemon(t, "200ms", "--listen", listen)
	srv := startChild(t, "udp-server", "127.0.0.1:0", "30")
	port := srv.waitReady()
	cli := startChild(t, "udp-connected", "127.0.0.1:"+port, "30", "1111")
	cr := cli.wait()
	srv.wait()
	mustEqual(t, "client's own tx", cr.TX, 30*1111)
	var got liveConn
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		var cur struct {
			Processes []struct {
				PID   int        `json:"pid"`
				Conns []liveConn `json:"connections"`
			} `json:"processes"`
		}
		if resp, err := httpGet("http://" + listen + "/api/current"); err == nil && decodeJSON(resp, &cur) == nil {
			for _, p := range cur.Processes {
				if p.PID == cli.pid() && len(p.Conns) == 1 {
					got = p.Conns[0]
				}
			}
		}
		if got.TxBytes == 30*1111 {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	if got.RemoteIP != "127.0.0.1" || strconv.Itoa(int(got.Port)) != port || got.Protocol != "udp" {
		t.Fatalf("client's live connection %+v, want 127.0.0.1:%s udp", got, port)
	}
	mustEqual(t, "live connection tx", got.TxBytes, 30*1111)
	mustEqual(t, "live connection rx", got.RxBytes, 0)

	out, err := exec.Command(d.bin, "top", "--once", "--by", "process", "--idle", "0", "--url", "http://"+listen).CombinedOutput()
	if err != nil {
		t.Fatalf("top --once: %v\n%s", err, out)
	}
	var line string
	for _, l := range strings.Split(string(out), "\n") {
		if f := strings.Fields(l); len(f) > 0 && f[0] == strconv.Itoa(cli.pid()) {
			line = l
		}
	}
	// 33330 B sent = 33 KiB in SENT; the header is in the report order.
	hdr := strings.Fields(strings.SplitN(string(out), "\n", 2)[0])
	if strings.Join(hdr, " ") != "PID USER COMM SENDING RECEIVING TOTAL SENT RECEIVED REMOTES EXE" || !strings.Contains(line, "33 KiB") || !strings.Contains(line, "root") {
		t.Fatalf("top --once:\n%s", out)
	}
	d.stop()
}
