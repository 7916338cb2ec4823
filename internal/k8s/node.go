package k8s

import (
	"bufio"
	"bytes"
	"os"
	"path/filepath"
	"sort"
	"strings"
)

// Pod is what the node's files say about one pod.
type Pod struct {
	UID       string
	Namespace string
	Name      string
	Workload  Workload
	// Containers are the pod's container names (init containers
	// included), sorted, as far as the log directory shows them.
	Containers []string
}

// container is one container id the node knows.
type container struct {
	podUID, name string
}

// scan is one reading of the node's layout.
type scan struct {
	pods       map[string]*Pod      // by UID
	containers map[string]container // by full container id
}

// readNode reads the three sources, cheapest and most complete first:
//
//  1. podLogRoot (/var/log/pods): one directory per pod,
//     <namespace>_<pod>_<uid>, holding one directory per container name.
//     Namespaces and pod names are DNS labels/subdomains and UIDs are hex
//     and dashes, so "_" separates them unambiguously.
//  2. containerLogRoot (/var/log/containers): the kubelet's symlink per
//     container, <pod>_<namespace>_<container>-<container id>.log, pointing
//     into podLogRoot (the link target gives the pod UID). This is what maps
//     a container id from the cgroup path to the container's name.
//  3. kubeletRoot/pods/<uid>: for pods not found above, the namespace from
//     the service-account volume (volumes/kubernetes.io~projected/
//     kube-api-access-*/namespace) and the pod name from the kubelet-managed
//     etc-hosts (its last line "<pod IP>\t<hostname>": the pod name unless
//     the pod sets spec.hostname), and the container names from
//     containers/<name>/.
//
// A missing or unreadable root is not an error: the node may not be a
// Kubernetes node, or the DaemonSet may not mount that directory.
func readNode(kubeletRoot, podLogRoot, containerLogRoot string) scan {
	sc := scan{pods: map[string]*Pod{}, containers: map[string]container{}}
	if podLogRoot != "" {
		ents, _ := os.ReadDir(podLogRoot)
		for _, e := range ents {
			ns, name, uid, ok := parsePodLogDir(e.Name())
			if !ok || !e.IsDir() {
				continue
			}
			p := &Pod{UID: uid, Namespace: ns, Name: name}
			if cs, err := os.ReadDir(filepath.Join(podLogRoot, e.Name())); err == nil {
				for _, c := range cs {
					if c.IsDir() {
						p.Containers = append(p.Containers, c.Name())
					}
				}
			}
			sc.pods[uid] = p
		}
	}
	if containerLogRoot != "" {
		ents, _ := os.ReadDir(containerLogRoot)
		for _, e := range ents {
			pod, ns, cname, id, ok := parseContainerLog(e.Name())
			if !ok {
				continue
			}
			uid := ""
			if t, err := os.Readlink(filepath.Join(containerLogRoot, e.Name())); err == nil {
				// .../<ns>_<pod>_<uid>/<container>/<n>.log
				if _, _, u, ok := parsePodLogDir(filepath.Base(filepath.Dir(filepath.Dir(t)))); ok {
					uid = u
				}
			}
			if uid == "" {
				uid = findPod(sc.pods, ns, pod)
			}
			if uid == "" {
				continue
			}
			if sc.pods[uid] == nil {
				sc.pods[uid] = &Pod{UID: uid, Namespace: ns, Name: pod}
			}
			sc.containers[id] = container{podUID: uid, name: cname}
		}
	}
	if kubeletRoot != "" {
		dir := filepath.Join(kubeletRoot, "pods")
		ents, _ := os.ReadDir(dir)
		for _, e := range ents {
			uid := e.Name()
			if !e.IsDir() || !isUID(uid) || sc.pods[uid] != nil {
				continue
			}
			if p, ok := readPodDir(filepath.Join(dir, uid), uid); ok {
				sc.pods[uid] = p
			}
		}
	}
	for _, p := range sc.pods {
		p.Workload = WorkloadFromPodName(p.Name)
		sort.Strings(p.Containers)
	}
	return sc
}

// readPodDir reads one kubelet pod directory; ok is false when it names
// neither the namespace nor the pod. It is only the fallback: etc-hosts is
// mounted writable into the pod's containers, so a pod could rename itself
// there; the log directories, which only the kubelet writes, win.
func readPodDir(dir, uid string) (*Pod, bool) {
	p := &Pod{UID: uid}
	if ms, _ := filepath.Glob(filepath.Join(dir, "volumes", "kubernetes.io~projected", "kube-api-access-*", "namespace")); len(ms) > 0 {
		if b, err := readSmall(ms[0]); err == nil {
			if ns := strings.TrimSpace(string(b)); isDNSName(ns) {
				p.Namespace = ns
			}
		}
	}
	if b, err := readSmall(filepath.Join(dir, "etc-hosts")); err == nil {
		p.Name = hostsName(b)
	}
	if cs, err := os.ReadDir(filepath.Join(dir, "containers")); err == nil {
		for _, c := range cs {
			if c.IsDir() {
				p.Containers = append(p.Containers, c.Name())
			}
		}
	}
	return p, p.Namespace != "" || p.Name != ""
}

// hostsName is the hostname of the last entry of a kubelet-managed
// etc-hosts file ("10.244.1.5\tweb-7c5ddbdf54-x7k2p"), or "" for a
// host-network pod's copy of the node's /etc/hosts.
func hostsName(b []byte) string {
	if !bytes.HasPrefix(b, []byte("# Kubernetes-managed hosts file")) ||
		bytes.HasPrefix(b, []byte("# Kubernetes-managed hosts file (host network)")) {
		return ""
	}
	name := ""
	s := bufio.NewScanner(bytes.NewReader(b))
	for s.Scan() {
		line := strings.TrimSpace(s.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		f := strings.Fields(line)
		// The pod's own entry comes after the fixed localhost/ip6 lines
		// and before any hostAliases block (which starts with a comment).
		if len(f) >= 2 && !isFixedHost(f[1]) {
			name = f[len(f)-1]
			break
		}
	}
	if !isDNSName(name) {
		return ""
	}
	return name
}

func isFixedHost(h string) bool {
	switch h {
	case "localhost", "ip6-localhost", "ip6-loopback", "ip6-localnet", "ip6-mcastprefix", "ip6-allnodes", "ip6-allrouters", "fe00::0":
		return true
	}
	return false
}

// readSmall reads at most 4 KiB of a file.
func readSmall(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	b := make([]byte, 4096)
	n, err := f.Read(b)
	if n > 0 {
		return b[:n], nil
	}
	return nil, err
}

func findPod(pods map[string]*Pod, ns, name string) string {
	for uid, p := range pods {
		if p.Namespace == ns && p.Name == name {
			return uid
		}
	}
	return ""
}

// parsePodLogDir splits "<namespace>_<pod>_<uid>".
func parsePodLogDir(s string) (ns, pod, uid string, ok bool) {
	f := strings.Split(s, "_")
	if len(f) != 3 || !isDNSName(f[0]) || !isDNSName(f[1]) || !isUID(f[2]) {
		return "", "", "", false
	}
	return f[0], f[1], f[2], true
}

// parseContainerLog splits "<pod>_<namespace>_<container>-<id>.log".
func parseContainerLog(s string) (pod, ns, cname, id string, ok bool) {
	base, found := strings.CutSuffix(s, ".log")
	if !found {
		return "", "", "", "", false
	}
	f := strings.Split(base, "_")
	if len(f) != 3 || !isDNSName(f[0]) || !isDNSName(f[1]) {
		return "", "", "", "", false
	}
	i := strings.LastIndexByte(f[2], '-')
	if i <= 0 {
		return "", "", "", "", false
	}
	cname, id = f[2][:i], f[2][i+1:]
	if !isDNSName(cname) || len(id) < 12 || !isHex(id) {
		return "", "", "", "", false
	}
	return f[0], f[1], cname, id, true
}

// isDNSName accepts the characters of a Kubernetes object name (RFC 1123
// subdomain: lowercase letters, digits, '-' and '.'), at most 253 bytes.
func isDNSName(s string) bool {
	if s == "" || len(s) > 253 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !('a' <= c && c <= 'z' || '0' <= c && c <= '9' || c == '-' || c == '.') {
			return false
		}
	}
	return true
}

func isHex(s string) bool { return allIn(s, "0123456789abcdef") }

// isUID accepts a pod UID: an RFC 4122 UUID, or the 32 hex digits of a
// static pod's config hash.
func isUID(s string) bool {
	if len(s) == 32 {
		return isHex(s)
	}
	if len(s) != 36 {
		return false
	}
	for i := 0; i < len(s); i++ {
		switch i {
		case 8, 13, 18, 23:
			if s[i] != '-' {
				return false
			}
		default:
			if strings.IndexByte("0123456789abcdef", s[i]) < 0 {
				return false
			}
		}
	}
	return true
}
