// Package cgroupinfo names the owner of a cgroup v2: the systemd unit, the
// container (id and runtime) and the Kubernetes pod it belongs to.
//
// The kernel hands the BPF programs a cgroup id (bpf_get_current_cgroup_id),
// which on cgroup v2 is the inode number of the cgroup's directory in
// cgroupfs. A Resolver maps that id to the directory's path by walking the
// cgroup2 mount, and Parse turns the path into names. Parsing is pure and
// works on the path alone, so it also serves paths read from /proc/PID/cgroup.
package cgroupinfo

import (
	"strings"
)

// Container runtimes that Parse recognises.
const (
	RuntimeDocker     = "docker"
	RuntimeContainerd = "containerd"
	RuntimeCRIO       = "cri-o"
	RuntimePodman     = "podman"
	// RuntimeKubernetes is used for a container under a kubepods cgroup set
	// up by the cgroupfs driver, whose path does not tell which CRI runtime
	// (containerd, cri-o, cri-dockerd) created it.
	RuntimeKubernetes = "kubernetes"
)

// Info is what a cgroup path says about who owns the processes in it.
// Empty strings mean "not applicable / not known".
type Info struct {
	// ID is the cgroup v2 id (inode of the cgroup directory); 0 when the
	// Info came from a path alone.
	ID uint64 `json:"cgroup_id,omitempty"`
	// Path is relative to the cgroup2 mount and starts with "/", as in
	// /proc/PID/cgroup: "/system.slice/nginx.service".
	Path string `json:"cgroup_path"`
	// Service is the systemd system unit that owns the cgroup
	// ("nginx.service", "user@1000.service", "session-3.scope",
	// "init.scope"). It is empty for a container's own scope
	// (docker-<id>.scope, ...): ContainerID names those.
	Service string `json:"service,omitempty"`
	// UserUnit is the innermost unit below a user manager
	// (user@UID.service), e.g. "app-firefox-1234.scope" or
	// "pipewire.service".
	UserUnit string `json:"user_unit,omitempty"`
	// ContainerID is the full container id (64 hex digits for docker,
	// containerd, cri-o and podman).
	ContainerID string `json:"container_id,omitempty"`
	// Runtime is one of the Runtime* constants when ContainerID is set.
	Runtime string `json:"container_runtime,omitempty"`
	// PodUID is the Kubernetes pod UID in its canonical dashed form.
	PodUID string `json:"pod_uid,omitempty"`

	// The Kubernetes names of the pod and container. Parse never sets
	// them (the path has only the UID and the container id):
	// internal/k8s fills them from the node's kubelet and log directories.
	Namespace     string `json:"namespace,omitempty"`
	Pod           string `json:"pod,omitempty"`
	ContainerName string `json:"container_name,omitempty"`
	// WorkloadKind ("deployment", "daemonset", ..., "" when unknown) and
	// WorkloadName name the pod's controller; Workload joins them.
	WorkloadKind string `json:"workload_kind,omitempty"`
	WorkloadName string `json:"workload_name,omitempty"`
}

// Workload is the pod's controller as "kind/name" ("deployment/web"), the
// name alone when the kind is not known, or "".
func (i Info) Workload() string {
	switch {
	case i.WorkloadName == "":
		return ""
	case i.WorkloadKind == "":
		return i.WorkloadName
	default:
		return i.WorkloadKind + "/" + i.WorkloadName
	}
}

// ShortContainerID is the 12-character form that docker ps and crictl show.
func (i Info) ShortContainerID() string {
	if len(i.ContainerID) > 12 && isHex(i.ContainerID) {
		return i.ContainerID[:12]
	}
	return i.ContainerID
}

// ContainerLabel is the container as a metrics label or report column:
// "docker:3f4e5a6b7c8d" (runtime and short id), or "" outside containers.
func (i Info) ContainerLabel() string {
	if i.ContainerID == "" {
		return ""
	}
	return i.Runtime + ":" + i.ShortContainerID()
}

// Owner is one short name for the owner of the cgroup, for a report column:
// the container ("docker:3f4e5a6b7c8d"), else the service, else the path.
func (i Info) Owner() string {
	switch {
	case i.ContainerID != "":
		return i.ContainerLabel()
	case i.Service != "":
		return i.Service
	default:
		return i.Path
	}
}

// scope prefixes that systemd-driver runtimes give a container's own
// scope: <prefix><id>.scope.
var scopePrefixes = []struct{ prefix, runtime string }{
	{"docker-", RuntimeDocker},
	{"cri-containerd-", RuntimeContainerd},
	{"nerdctl-", RuntimeContainerd},
	{"crio-", RuntimeCRIO},
	{"libpod-", RuntimePodman},
}

// monitor scopes hold a runtime's per-container monitor process (conmon),
// not the container: they get neither a ContainerID nor a Service.
var monitorPrefixes = []string{"crio-conmon-", "libpod-conmon-"}

// Parse names the owner of a cgroup v2 path such as
// "/system.slice/docker-<64hex>.scope" or "0::/..." line content. It never
// fails: unknown layouts give an Info with only Path set.
func Parse(path string) Info {
	path = cleanPath(path)
	info := Info{Path: path}
	comps := strings.Split(strings.TrimPrefix(path, "/"), "/")
	if path == "/" {
		comps = nil
	}

	underUserManager := false
	for i, c := range comps {
		if c == ".." { // a path relative to another cgroup namespace's root
			continue
		}
		prev := ""
		if i > 0 {
			prev = comps[i-1]
		}
		// Pod UID: kubepods-burstable-pod<uid_with_underscores>.slice
		// (systemd driver) or pod<uid> under kubepods (cgroupfs driver).
		if uid, ok := podUID(c, i, comps); ok {
			info.PodUID = uid
			continue
		}
		if id, rt, ok := containerComp(c, prev, i, comps); ok {
			info.ContainerID, info.Runtime = id, rt
			continue
		}
		if isMonitorScope(c) {
			continue
		}
		if isUnit(c) {
			switch {
			case info.Service == "" && info.ContainerID == "":
				info.Service = c
				underUserManager = strings.HasPrefix(c, "user@") && strings.HasSuffix(c, ".service")
			case underUserManager && info.ContainerID == "":
				info.UserUnit = c
			}
		}
	}
	// A container is named by its id; the scope systemd made for it is not
	// counted as a service. A rootless container below user@UID.service keeps
	// that service, since it says whose container it is.
	return info
}

// ParseProcCgroup returns the cgroup v2 path from the content of
// /proc/PID/cgroup: the "0::/path" line. ok is false when there is none
// (a v1-only host or a malformed file).
func ParseProcCgroup(content string) (path string, ok bool) {
	for _, line := range strings.Split(content, "\n") {
		if rest, found := strings.CutPrefix(line, "0::"); found {
			rest = strings.TrimSpace(rest)
			// A process whose cgroup was removed shows "/path (deleted)".
			rest = strings.TrimSuffix(rest, " (deleted)")
			if rest == "" {
				return "", false
			}
			return cleanPath(rest), true
		}
	}
	return "", false
}

func cleanPath(p string) string {
	p = strings.TrimSpace(p)
	if !strings.HasPrefix(p, "/") {
		p = "/" + p
	}
	for strings.Contains(p, "//") {
		p = strings.ReplaceAll(p, "//", "/")
	}
	if len(p) > 1 {
		p = strings.TrimSuffix(p, "/")
	}
	return p
}

func isUnit(c string) bool {
	return strings.HasSuffix(c, ".service") || strings.HasSuffix(c, ".scope")
}

func isMonitorScope(c string) bool {
	for _, p := range monitorPrefixes {
		if strings.HasPrefix(c, p) {
			return true
		}
	}
	return false
}

// containerComp recognises one path component as a container.
func containerComp(c, prev string, i int, comps []string) (id, runtime string, ok bool) {
	// systemd driver: <prefix><id>.scope
	if base, found := strings.CutSuffix(c, ".scope"); found {
		if isMonitorScope(c) {
			return "", "", false
		}
		for _, sp := range scopePrefixes {
			if rest, found := strings.CutPrefix(base, sp.prefix); found && isContainerID(rest) {
				return rest, sp.runtime, true
			}
		}
		return "", "", false
	}
	// cgroupfs driver: /docker/<id>, /libpod_parent/libpod-<id>,
	// /kubepods/<qos>/pod<uid>/<id>.
	switch {
	case prev == "docker" && isContainerID(c):
		return c, RuntimeDocker, true
	case strings.HasPrefix(prev, "libpod_parent") || strings.HasPrefix(c, "libpod-"):
		if rest, found := strings.CutPrefix(c, "libpod-"); found && isContainerID(rest) {
			return rest, RuntimePodman, true
		}
	case isContainerID(c) && len(c) == 64 && underKubepods(i, comps):
		return c, RuntimeKubernetes, true
	}
	return "", "", false
}

func underKubepods(i int, comps []string) bool {
	for _, c := range comps[:i] {
		if c == "kubepods" || strings.HasPrefix(c, "kubepods.") || strings.HasPrefix(c, "kubepods-") {
			return true
		}
	}
	return false
}

// podUID recognises "kubepods-burstable-pod<uid>.slice",
// "kubepods-pod<uid>.slice" and, under kubepods, "pod<uid>".
func podUID(c string, i int, comps []string) (string, bool) {
	if base, found := strings.CutSuffix(c, ".slice"); found && strings.HasPrefix(base, "kubepods") {
		j := strings.LastIndex(base, "-pod")
		if j < 0 {
			return "", false
		}
		uid := strings.ReplaceAll(base[j+len("-pod"):], "_", "-")
		if isUID(uid) {
			return uid, true
		}
		return "", false
	}
	if rest, found := strings.CutPrefix(c, "pod"); found && underKubepods(i, comps) && isUID(rest) {
		return rest, true
	}
	return "", false
}

// isContainerID accepts the 64-hex ids all the runtimes above use (and
// nothing shorter than 12 hex digits, so "docker-compose.scope" is not one).
func isContainerID(s string) bool {
	return len(s) >= 12 && len(s) <= 128 && isHex(s)
}

func isHex(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f') {
			return false
		}
	}
	return s != ""
}

// isUID accepts an RFC 4122 text UUID (8-4-4-4-12 hex), which is what
// Kubernetes assigns; static pods use a 32-hex config hash instead.
func isUID(s string) bool {
	if len(s) == 32 && isHex(s) {
		return true
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
			c := s[i]
			if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f') {
				return false
			}
		}
	}
	return true
}
