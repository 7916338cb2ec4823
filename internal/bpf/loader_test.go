package bpf

import (
	"errors"
	"github.com/bwtracker/bwtracker/internal/testenv"
	"io"
	"net"
	"os"
	"strings"
	"testing"
)

func TestSelect(t *testing.T) {
	all := Probe{BTF: true, SockTracepoints: true, FentryTargets: true}
	fentryOnly := Probe{BTF: true, FentryTargets: true}
	cases := []struct {
		req  Backend
		p    Probe
		want Backend
		err  string
	}{
		{Auto, all, Tracepoint, ""},
		{"", all, Tracepoint, ""},
		{Auto, fentryOnly, Fentry, ""}, // kernels 5.17 - 6.3
		{Fentry, all, Fentry, ""},
		{Tracepoint, fentryOnly, "", "lacks the sock_send_length"},
		{Fentry, Probe{BTF: true, SockTracepoints: true}, "", "--hook fentry"},
		{Auto, Probe{BTF: true}, "", "upgrade the kernel"},
		{Auto, Probe{BTFErr: os.ErrNotExist}, "", "CONFIG_DEBUG_INFO_BTF"},
		{"kprobe", all, "", "must be auto, tracepoint or fentry"},
	}
	for _, c := range cases {
		got, err := Select(c.req, c.p)
		if c.err != "" {
			if err == nil || !strings.Contains(err.Error(), c.err) {
				t.Errorf("Select(%q, %+v) error = %v, want it to mention %q", c.req, c.p, err, c.err)
			}
			continue
		}
		if err != nil || got != c.want {
			t.Errorf("Select(%q, %+v) = %q, %v; want %q", c.req, c.p, got, err, c.want)
		}
	}
}

func requireRoot(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		testenv.NeedRoot(t, "loading BPF programs")
	}
}

// On this kernel fentry programs cannot load (EPERM): the loader must say so
// clearly instead of crashing.
func TestFentryRejectedClearly(t *testing.T) {
	requireRoot(t)
	p := ProbeKernel()
	if !p.FentryTargets {
		t.Skip("kernel lacks fentry targets")
	}
	tr, err := Load(Options{Hook: Fentry, NoAttach: true})
	if err == nil {
		// A kernel that allows fentry: it must actually be the fentry backend.
		defer tr.Close()
		if tr.Backend() != Fentry {
			t.Fatalf("backend = %s", tr.Backend())
		}
		t.Logf("fentry loads on this kernel")
		return
	}
	var le *LoadError
	if !errors.As(err, &le) {
		t.Fatalf("error is not a LoadError: %v", err)
	}
	if le.Backend != Fentry || le.Hint == "" || !strings.Contains(err.Error(), "--hook") {
		t.Fatalf("unclear fentry error: %v", err)
	}
	t.Logf("fentry refused as expected: %v", err)
}

func TestTracepointCountsLoopbackTCP(t *testing.T) {
	requireRoot(t)
	if !ProbeKernel().SockTracepoints {
		t.Skip("no sock tracepoints")
	}
	tr, err := Load(Options{Hook: Tracepoint})
	if err != nil {
		t.Fatal(err)
	}
	defer tr.Close()
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	const n = 123457
	done := make(chan int64)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			done <- -1
			return
		}
		got, _ := io.Copy(io.Discard, c)
		c.Close()
		done <- got
	}()
	c, err := net.Dial("tcp4", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Write(make([]byte, n)); err != nil {
		t.Fatal(err)
	}
	c.Close()
	if got := <-done; got != n {
		t.Fatalf("server read %d", got)
	}
	var tx, rx uint64
	pid := uint32(os.Getpid())
	_, err = tr.Detach(func(k FlowKey, v FlowVal) {
		if k.TGID != pid || k.Proto != ProtoTCP {
			return
		}
		if k.Dir == DirTX {
			tx += v.Bytes
		} else {
			rx += v.Bytes
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	if tx != n || rx != n {
		t.Fatalf("tx=%d rx=%d, want %d each", tx, rx, n)
	}
	drops, err := tr.Drops()
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range drops {
		if v != 0 && k != "peer_stash" {
			t.Errorf("drop %s = %d", k, v)
		}
	}
}

// The kernel's own account of the maps' memory (fdinfo memlock) matches the
// package formula within 1%, so the sizing that bounds it on big machines
// rests on the real figure.
func TestMapMemoryMatchesFormula(t *testing.T) {
	requireRoot(t)
	tr, err := Load(Options{Hook: Auto, NoAttach: true, MapEntries: 4096})
	if err != nil {
		t.Fatal(err)
	}
	defer tr.Close()
	ncpu, err := possibleCPUs()
	if err != nil {
		t.Fatal(err)
	}
	est := SizeMaps(ncpu, 4096).TotalBytes(ncpu)
	got := tr.MapMemory()
	t.Logf("%d possible CPUs: kernel says %d bytes, formula %d", ncpu, got, est)
	if got == 0 || float64(got) < float64(est)*0.99 || float64(got) > float64(est)*1.05 {
		t.Fatalf("kernel memory %d bytes, formula %d", got, est)
	}
}
