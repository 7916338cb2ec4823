package report

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"

	"github.com/bwtracker/bwtracker/internal/store"
)

var sampleRows = []store.Row{
	{PID: 42, Comm: "curl", Exe: "/usr/bin/curl", RemoteIP: "198.18.0.1", RemoteName: "www.example.com", Protocol: "tcp", TxBytes: 1536, RxBytes: 3 << 20},
	{PID: 7, Comm: "ping", Exe: "/usr/bin/ping", RemoteIP: "", Protocol: "icmp", TxBytes: 108, RxBytes: 0},
}

// The JSON contract (DESIGN.md): one array; each row has exactly the fields
// of its --by dimensions plus tx_bytes and rx_bytes, integers.
func TestJSONContract(t *testing.T) {
	var buf bytes.Buffer
	if err := Write(&buf, "json", []string{store.DimProcess, store.DimRemote, store.DimProtocol}, sampleRows); err != nil {
		t.Fatal(err)
	}
	var got []map[string]any
	if err := json.Unmarshal(buf.Bytes(), &got); err != nil {
		t.Fatal(err)
	}
	want := []string{"comm", "exe", "pid", "protocol", "remote_ip", "remote_name", "rx_bytes", "tx_bytes"}
	for _, r := range got {
		var keys []string
		for k := range r {
			keys = append(keys, k)
		}
		if len(keys) != len(want) {
			t.Fatalf("fields %v, want %v", keys, want)
		}
		for _, k := range want {
			if _, ok := r[k]; !ok {
				t.Fatalf("missing %s in %v", k, r)
			}
		}
	}
	if got[0]["rx_bytes"].(float64) != 3<<20 || got[0]["pid"].(float64) != 42 {
		t.Fatalf("values: %v", got[0])
	}
	// Field order is stable and readable.
	var compact bytes.Buffer
	json.Compact(&compact, buf.Bytes())
	if !strings.Contains(compact.String(), `"pid":42,"comm":"curl","exe":"/usr/bin/curl","remote_ip":"198.18.0.1","remote_name":"www.example.com","protocol":"tcp","tx_bytes":1536`) {
		t.Fatalf("order: %s", buf.String())
	}
	buf.Reset()
	Write(&buf, "json", []string{store.DimProtocol}, nil)
	if strings.TrimSpace(buf.String()) != "[]" {
		t.Fatalf("empty result should be [], got %q", buf.String())
	}
}

func TestTableHumanUnitsAndCSVExact(t *testing.T) {
	var buf bytes.Buffer
	Write(&buf, "table", []string{store.DimProcess}, sampleRows)
	out := buf.String()
	for _, s := range []string{"PID", "COMM", "SENT", "RECEIVED", "1.5 KiB", "3.0 MiB", "2 rows"} {
		if !strings.Contains(out, s) {
			t.Errorf("table lacks %q:\n%s", s, out)
		}
	}
	buf.Reset()
	Write(&buf, "csv", []string{store.DimRemote}, sampleRows)
	lines := strings.Split(strings.TrimSpace(buf.String()), "\n")
	if lines[0] != "remote_ip,remote_name,tx_bytes,rx_bytes" || lines[1] != "198.18.0.1,www.example.com,1536,3145728" {
		t.Fatalf("csv:\n%s", buf.String())
	}
	// Tables show the name the process resolved, else reverse DNS, and
	// say how many names did not resolve in time.
	buf.Reset()
	rows := append(append([]store.Row(nil), sampleRows...), store.Row{RemoteIP: "192.0.2.5", TxBytes: 1})
	WriteWith(&buf, "table", []string{store.DimRemote}, rows, Options{Names: map[string]string{"192.0.2.5": "rdns.example.net", "198.18.0.1": "rdns-loses.example"}, Unresolved: 3})
	out = buf.String()
	for _, s := range []string{"www.example.com (198.18.0.1)", "rdns.example.net (192.0.2.5)", "(unknown)", "3 remote names not resolved in time"} {
		if !strings.Contains(out, s) {
			t.Errorf("table lacks %q:\n%s", s, out)
		}
	}
	if strings.Contains(out, "NAME") || strings.Contains(out, "rdns-loses") {
		t.Errorf("table has a NAME column or overrode a DNS name:\n%s", out)
	}
	buf.Reset()
	Write(&buf, "json", []string{store.DimDomain}, []store.Row{{Domain: "example.com", TxBytes: 5}})
	if !strings.Contains(buf.String(), `"domain": "example.com"`) {
		t.Errorf("domain json: %s", buf.String())
	}
	buf.Reset()
	Write(&buf, "table", []string{store.DimProcess}, nil)
	if !strings.Contains(buf.String(), "no traffic") {
		t.Fatalf("empty table: %q", buf.String())
	}
	if err := Write(&buf, "xml", []string{store.DimProcess}, nil); err == nil {
		t.Fatal("xml accepted")
	}
}
