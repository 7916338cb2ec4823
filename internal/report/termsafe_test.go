package report

import (
	"bytes"
	"encoding/csv"
	"encoding/json"
	"strings"
	"testing"

	"github.com/bwtracker/bwtracker/internal/store"
)

func TestSafe(t *testing.T) {
	for in, want := range map[string]string{
		"curl":                "curl",
		"/usr/bin/python3.11": "/usr/bin/python3.11",
		"\x1b[31mred\x1b[0m":  `\x1b[31mred\x1b[0m`,
		"a\tb\nc\rd":          `a\tb\nc\rd`,
		"bell\a\x00del\x7f":   `bell\x07\x00del\x7f`,
		"c1\u009b2J":          `c1\x9b2J`,
		"bad\xff\xfeutf8":     `bad\xff\xfeutf8`,
		"rtl\u202eexe.txt":    `rtl\u202eexe.txt`,
		"zero\u200bwidth":     `zero\u200bwidth`,
		`back\slash`:          `back\\slash`,
		"日本語のプロセス":            "日本語のプロセス",
		"café":                "café",
		"e\u0301":             "e\u0301", // combining mark: printable
		"line\u2028sep":       `line\u2028sep`,
		"nbsp\u00a0":          `nbsp\u00a0`,
		"plain space ok":      "plain space ok",
		"\U000e0001tag":       `\U000e0001tag`,
	} {
		if got := Safe(in); got != want {
			t.Errorf("Safe(%q) = %q, want %q", in, got, want)
		}
	}
}

// No output line of a table holds a control byte, and every line of a
// right-aligned table ends in the same column, with wide runes and escapes.
func TestTableAlignsEscapedAndWide(t *testing.T) {
	rows := []store.Row{
		{PID: 1, Comm: "\x1b]0;pwned\x07", Exe: "/tmp/a\tb\nc", TxBytes: 10},
		{PID: 22, Comm: "日本語", Exe: "/opt/日本/バイナリ", RxBytes: 1 << 20},
		{PID: 333, Comm: "curl", Exe: "/usr/bin/curl", TxBytes: 5, RxBytes: 5},
	}
	var b bytes.Buffer
	if err := WriteWith(&b, "table", []string{"process"}, rows, Options{}); err != nil {
		t.Fatal(err)
	}
	out := b.String()
	for _, c := range out {
		if c < 0x20 && c != '\n' || c == 0x7f {
			t.Fatalf("control character %q in table output:\n%s", c, out)
		}
	}
	if !strings.Contains(out, `\x1b]0;pwned\x07`) || !strings.Contains(out, `/tmp/a\tb\nc`) {
		t.Fatalf("escapes not visible:\n%s", out)
	}
	lines := strings.Split(strings.TrimSuffix(out, "\n"), "\n")
	lines = lines[:len(lines)-1] // the summary line
	if len(lines) != 4 {
		t.Fatalf("want header + 3 rows, got %d lines:\n%s", len(lines), out)
	}
	w := Width(lines[0])
	for _, l := range lines {
		if Width(l) != w {
			t.Errorf("line width %d, header %d:\n%s", Width(l), w, out)
		}
	}
	// The PID column's right edge is the same on every line.
	edge := strings.Index(lines[0], "PID") + 3
	for _, l := range lines[1:] {
		if l[edge-1] < '0' || l[edge-1] > '9' || l[edge] != ' ' {
			t.Errorf("PID column misaligned at %d in %q", edge, l)
		}
	}

	// JSON and CSV keep the exact bytes.
	b.Reset()
	WriteWith(&b, "json", []string{"process"}, rows, Options{})
	var js []map[string]any
	if err := json.Unmarshal(b.Bytes(), &js); err != nil {
		t.Fatal(err)
	}
	if js[0]["comm"] != rows[0].Comm || js[0]["exe"] != rows[0].Exe || js[1]["comm"] != "日本語" {
		t.Errorf("JSON changed names: %v", js)
	}
	b.Reset()
	WriteWith(&b, "csv", []string{"process"}, rows, Options{})
	recs, err := csv.NewReader(&b).ReadAll()
	if err != nil {
		t.Fatal(err)
	}
	if recs[1][1] != rows[0].Comm || recs[1][2] != rows[0].Exe {
		t.Errorf("CSV changed names: %q", recs[1])
	}
}

// Left-aligned tables (periods) pad by display width too.
func TestTableLeftWide(t *testing.T) {
	tb := &Table{}
	tb.Add("A", "B")
	tb.Add("日本", "x")
	tb.Add("ab\x1b", "y")
	var b bytes.Buffer
	tb.Write(&b)
	lines := strings.Split(strings.TrimSuffix(b.String(), "\n"), "\n")
	want := []string{"A       B", "日本    x", `ab\x1b  y`} // no trailing blanks
	for i := range want {
		if lines[i] != want[i] {
			t.Errorf("line %d = %q, want %q", i, lines[i], want[i])
		}
	}
}
