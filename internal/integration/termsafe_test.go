package integration

import (
	"fmt"
	"net/netip"
	"os/exec"
	"strings"
	"testing"
	"time"
	"unicode/utf8"
	"unsafe"

	"golang.org/x/sys/unix"
)

// evilComm is a process name with an escape sequence and a tab in it.
const evilComm = "\x1b[31mev\til"

func init() {
	benchModes["evil-name"] = func(args []string) (result, error) {
		var r result
		name, _ := unix.BytePtrFromString(evilComm)
		if err := unix.Prctl(unix.PR_SET_NAME, uintptr(unsafe.Pointer(name)), 0, 0, 0); err != nil {
			return r, err
		}
		fd, err := udpSocket("127.0.0.1:0")
		if err != nil {
			return r, err
		}
		_, sa := sockaddr(netip.MustParseAddrPort("127.0.0.1:9"))
		buf := make([]byte, 4321)
		if err := sendtoRetry(fd, buf, sa); err != nil {
			return r, err
		}
		r.TX = uint64(len(buf))
		return r, nil
	}
}

// A real process named with an escape sequence: `report` tables show it as
// visible escapes with the columns intact; JSON keeps the exact name.
func TestReportEscapesProcessNames(t *testing.T) {
	d := startDaemon(t, "1s", "--no-web")
	c := startChild(t, "evil-name")
	c.wait()
	time.Sleep(1200 * time.Millisecond)
	d.stop()
	rows := forPID(d.report("process"), c.pid())
	if len(rows) != 1 || rows[0].Comm != evilComm {
		t.Fatalf("JSON rows of pid %d: %s (want comm %q exactly)", c.pid(), dump(rows), evilComm)
	}
	mustEqual(t, "tx of the oddly named process", rows[0].TX, 4321)
	for _, period := range []string{"", "hour"} {
		args := []string{"report", "--db", d.db, "--since", "1h", "--by", "process", "--no-resolve", "--top", "0"}
		if period != "" {
			args = append(args, "--period", period)
		}
		out, err := exec.Command(d.bin, args...).CombinedOutput()
		if err != nil {
			t.Fatalf("report %v: %v\n%s", args, err, out)
		}
		if strings.ContainsAny(string(out), "\x1b\t") {
			t.Fatalf("raw escape or tab in `report %s` output:\n%q", period, out)
		}
		if period == "" {
			if !strings.Contains(string(out), `\x1b[31mev\til`) {
				t.Fatalf("the name is not shown as visible escapes:\n%s", out)
			}
			// The row keeps its columns: same display width as the header.
			lines := strings.Split(string(out), "\n")
			for len(lines) > 1 && !strings.Contains(lines[0], "SENT") {
				lines = lines[1:] // the window line above the header
			}
			for _, l := range lines[1:] {
				// The bar after TOTAL has no header cell: the row without
				// it ends where the header's TOTAL does.
				cols := strings.TrimRight(l, " ▏▎▍▌▋▊▉█")
				if strings.Contains(l, fmt.Sprint(c.pid())) && utf8.RuneCountInString(cols) != utf8.RuneCountInString(lines[0]) {
					t.Errorf("row width %d without its bar, header %d:\n%s", utf8.RuneCountInString(cols), utf8.RuneCountInString(lines[0]), out)
				}
			}
		}
	}
}
