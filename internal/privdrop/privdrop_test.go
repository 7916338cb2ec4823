package privdrop

import (
	"testing"

	"kernel.org/pub/linux/libs/security/libcap/cap"
)

func TestKernelAtLeast(t *testing.T) {
	for rel, want := range map[string]bool{
		"6.18.44-fc-v1045": true, "6.5.0": true, "6.4.16-amd64": false, "5.15.0-91-generic": false,
		"7.0": true, "6.10-rc1": true, "garbage": false, "": false,
	} {
		if got := kernelAtLeast(rel, 6, 5); got != want {
			t.Errorf("kernelAtLeast(%q, 6, 5) = %v, want %v", rel, got, want)
		}
	}
}

// Old kernels keep CAP_BPF for the drain's map reads; a low listen port
// keeps CAP_NET_BIND_SERVICE; nothing is kept that the process lacks.
func TestNeeded(t *testing.T) {
	has := func(vs []cap.Value, v cap.Value) bool {
		for _, x := range vs {
			if x == v {
				return true
			}
		}
		return false
	}
	held := func(v cap.Value) bool { ok, _ := cap.GetProc().GetFlag(cap.Permitted, v); return ok }
	newK := Needed(Options{Kernel: "6.18.0", ListenPort: 8080})
	if has(newK, cap.BPF) || has(newK, cap.NET_BIND_SERVICE) || has(newK, cap.PERFMON) || has(newK, cap.NET_ADMIN) {
		t.Errorf("6.18, port 8080: keeps %s", Names(newK))
	}
	if held(cap.SYS_PTRACE) != has(newK, cap.SYS_PTRACE) {
		t.Errorf("CAP_SYS_PTRACE held %v, kept %v", held(cap.SYS_PTRACE), has(newK, cap.SYS_PTRACE))
	}
	oldK := Needed(Options{Kernel: "6.1.0", ListenPort: 443})
	if held(cap.BPF) && (!has(oldK, cap.BPF) || !has(oldK, cap.NET_BIND_SERVICE)) {
		t.Errorf("6.1, port 443: keeps %s, want cap_bpf and cap_net_bind_service too", Names(oldK))
	}
	if Names(nil) != "none" {
		t.Errorf("Names(nil) = %q", Names(nil))
	}
}
