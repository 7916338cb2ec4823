package cli

import (
	"bytes"
	"strings"
	"testing"
	"time"
)

// `top --once` prints names and paths with visible escapes and aligned
// columns; `--format json` keeps them exact.
func TestTopOnceEscapes(t *testing.T) {
	snap := liveSnap{Time: time.Unix(0, 0), Processes: []liveProc{
		{PID: 7, Comm: "\x1b[2Jwipe", Exe: "/tmp/x\ny", TxBytes: 1},
		{PID: 8, Comm: "日本語", Exe: "/usr/bin/日本", RxBytes: 2},
	}}
	var b bytes.Buffer
	if err := printSnapshot(&b, "table", snap, 0, false); err != nil {
		t.Fatal(err)
	}
	out := b.String()
	if strings.ContainsAny(out, "\x1b\t") || !strings.Contains(out, `\x1b[2Jwipe`) || !strings.Contains(out, `/tmp/x\ny`) {
		t.Fatalf("unsafe or missing escapes:\n%q", out)
	}
	lines := strings.Split(out, "\n")
	if len(lines) < 4 {
		t.Fatalf("lines: %q", lines)
	}
	for _, l := range lines[1:3] {
		if !strings.HasSuffix(l, "y") && !strings.HasSuffix(l, "本") {
			t.Errorf("row %q does not end with its exe", l)
		}
	}
	b.Reset()
	printSnapshot(&b, "json", snap, 80, false)
	if !strings.Contains(b.String(), `"\u001b[2Jwipe"`) {
		t.Errorf("JSON does not keep the exact name: %s", b.String())
	}
}
