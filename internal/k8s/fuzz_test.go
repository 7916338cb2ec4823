package k8s

import (
	"strings"
	"testing"
)

// The name parsers take directory entries written by the kubelet, and in
// the fallback a file the pod itself can write (etc-hosts): no input may
// panic, and what they accept must be a well-formed name.
func FuzzNames(f *testing.F) {
	for _, s := range []string{"default_web-7c5ddbdf54-x7k2p_6e7c1b8a-2f3d-4c5e-9a0b-1c2d3e4f5a6b",
		"web-0_prod_app-" + strings.Repeat("ab", 32) + ".log", "backup-29383920-q8zl4", "a-b-c", "_", "-", "--x7k2p",
		"# Kubernetes-managed hosts file.\n10.0.0.1\tweb-0\n"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if ns, pod, uid, ok := parsePodLogDir(s); ok && (ns+"_"+pod+"_"+uid != s || !isDNSName(ns) || !isDNSName(pod) || !isUID(uid)) {
			t.Fatalf("parsePodLogDir(%q) = %q %q %q", s, ns, pod, uid)
		}
		if pod, ns, c, id, ok := parseContainerLog(s); ok && pod+"_"+ns+"_"+c+"-"+id+".log" != s {
			t.Fatalf("parseContainerLog(%q) = %q %q %q %q", s, pod, ns, c, id)
		}
		w := WorkloadFromPodName(s)
		if w.Name != "" && (!strings.HasPrefix(s, w.Name+"-") || w.Name == "") {
			t.Fatalf("WorkloadFromPodName(%q) = %+v: not a prefix of the pod name", s, w)
		}
		if h := hostsName([]byte(s)); h != "" && !isDNSName(h) {
			t.Fatalf("hostsName(%q) = %q", s, h)
		}
	})
}
