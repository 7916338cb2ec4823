package k8s

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/bwtracker/bwtracker/internal/cgroupinfo"
)

// Default roots and bounds for Options.
const (
	DefaultKubeletRoot      = "/var/lib/kubelet"
	DefaultPodLogRoot       = "/var/log/pods"
	DefaultContainerLogRoot = "/var/log/containers"
	// DefaultRescanEvery is the least time between two readings of the
	// node's directories caused by an unknown pod or container.
	DefaultRescanEvery = 2 * time.Second
	// DefaultMissTTL is how long a pod or container still unknown after a
	// reading is not looked for again (a sandbox's pause container has no
	// log link; a cgroup named like a pod may belong to no kubelet).
	DefaultMissTTL = 30 * time.Second
	// DefaultMaxPods bounds the pods remembered (the kubelet runs 110 by
	// default; pods that are gone are kept for late lookups until this
	// many newer ones push them out).
	DefaultMaxPods = 4096
)

// Options configure a Resolver. Empty roots take the defaults; "-" turns a
// source off.
type Options struct {
	KubeletRoot      string
	PodLogRoot       string
	ContainerLogRoot string
	RescanEvery      time.Duration // DefaultRescanEvery when 0; negative: no limit
	MissTTL          time.Duration // DefaultMissTTL when 0; negative: none
	MaxPods          int           // DefaultMaxPods when 0
	Now              func() time.Time
}

// Names are a container's Kubernetes names.
type Names struct {
	Namespace, Pod, Container string
	Workload                  Workload
}

// Resolver names pods and containers from the node's directories. It reads
// them again at most once per RescanEvery, and only when asked for a pod or
// container id it does not know. It is safe for concurrent use.
type Resolver struct {
	kubeletRoot, podLogRoot, containerLogRoot string
	rescanEvery, missTTL                      time.Duration
	maxPods                                   int
	now                                       func() time.Time

	mu         sync.Mutex
	pods       map[string]*podEntry
	containers map[string]container
	missed     map[string]time.Time // pod/container -> when a reading did not find it
	lastScan   time.Time
	scans      uint64
	gen        uint64
}

type podEntry struct {
	Pod
	seen uint64 // generation of the last scan that saw it
}

// New returns a Resolver; it reads nothing until the first lookup.
func New(o Options) *Resolver {
	root := func(s, def string) string {
		switch s {
		case "":
			return def
		case "-":
			return ""
		}
		return s
	}
	r := &Resolver{
		kubeletRoot:      root(o.KubeletRoot, DefaultKubeletRoot),
		podLogRoot:       root(o.PodLogRoot, DefaultPodLogRoot),
		containerLogRoot: root(o.ContainerLogRoot, DefaultContainerLogRoot),
		rescanEvery:      o.RescanEvery,
		missTTL:          o.MissTTL,
		maxPods:          o.MaxPods,
		now:              o.Now,
		pods:             map[string]*podEntry{},
		containers:       map[string]container{},
		missed:           map[string]time.Time{},
	}
	if r.missTTL == 0 {
		r.missTTL = DefaultMissTTL
	}
	if r.rescanEvery == 0 {
		r.rescanEvery = DefaultRescanEvery
	}
	if r.maxPods <= 0 {
		r.maxPods = DefaultMaxPods
	}
	if r.now == nil {
		r.now = time.Now
	}
	return r
}

// Scans is how many times the node's directories were read.
func (r *Resolver) Scans() uint64 {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.scans
}

// Len is the number of pods remembered.
func (r *Resolver) Len() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.pods)
}

// Lookup names the pod podUID and, when containerID is given and known, its
// container. A pod with one container names it without the id. ok is false
// when the pod is unknown (yet: a later call may read the directories again).
func (r *Resolver) Lookup(podUID, containerID string) (Names, bool) {
	if podUID == "" {
		return Names{}, false
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	n, pod, cont := r.lookupLocked(podUID, containerID)
	if pod && (cont || containerID == "") {
		return n, true
	}
	now := r.now()
	key := podUID + "/" + containerID
	if t, ok := r.missed[key]; ok && r.missTTL > 0 && now.Sub(t) < r.missTTL {
		return n, pod
	}
	if r.rescanEvery < 0 || r.lastScan.IsZero() || now.Sub(r.lastScan) >= r.rescanEvery {
		r.rescanLocked(now)
		var cont bool
		n, pod, cont = r.lookupLocked(podUID, containerID)
		if !pod || (!cont && containerID != "") {
			if len(r.missed) >= r.maxPods {
				clear(r.missed) // bounded; worst case a few more readings
			}
			r.missed[key] = now
		}
	}
	return n, pod
}

// Rescan reads the node's directories now.
func (r *Resolver) Rescan() {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.rescanLocked(r.now())
}

func (r *Resolver) lookupLocked(podUID, containerID string) (n Names, pod, cont bool) {
	p := r.pods[podUID]
	if p == nil {
		return Names{}, false, false
	}
	n = Names{Namespace: p.Namespace, Pod: p.Name, Workload: p.Workload}
	if c, ok := r.containers[containerID]; ok && c.podUID == podUID {
		n.Container, cont = c.name, true
	} else if len(p.Containers) == 1 {
		n.Container = p.Containers[0]
	}
	return n, true, cont
}

// rescanLocked reads the directories and merges what it found: pods seen
// now replace their old entries, pods gone are kept (their traffic may still
// be named) until more than MaxPods are remembered, oldest first out.
func (r *Resolver) rescanLocked(now time.Time) {
	sc := readNode(r.kubeletRoot, r.podLogRoot, r.containerLogRoot)
	r.lastScan = now
	r.scans++
	r.gen++
	for uid, p := range sc.pods {
		r.pods[uid] = &podEntry{Pod: *p, seen: r.gen}
	}
	for id, c := range sc.containers {
		r.containers[id] = c
	}
	if len(r.pods) > r.maxPods {
		all := make([]*podEntry, 0, len(r.pods))
		for _, p := range r.pods {
			all = append(all, p)
		}
		sort.Slice(all, func(i, j int) bool { return all[i].seen < all[j].seen })
		for _, p := range all[:len(all)-r.maxPods] {
			delete(r.pods, p.UID)
		}
	}
	for id, c := range r.containers {
		if r.pods[c.podUID] == nil {
			delete(r.containers, id)
		}
	}
}

// Enrich fills the Kubernetes names of an Info whose cgroup path named a
// pod (PodUID); others are returned unchanged.
func (r *Resolver) Enrich(in cgroupinfo.Info) cgroupinfo.Info {
	if in.PodUID == "" {
		return in
	}
	n, ok := r.Lookup(in.PodUID, in.ContainerID)
	if !ok {
		return in
	}
	in.Namespace, in.Pod, in.ContainerName = n.Namespace, n.Pod, n.Container
	in.WorkloadKind, in.WorkloadName = n.Workload.Kind, n.Workload.Name
	return in
}

// CgroupResolver is what Cgroups wraps (internal/cgroupinfo.Resolver).
type CgroupResolver interface {
	ResolveMany(ids []uint64) map[uint64]cgroupinfo.Info
}

// Cgroups is a cgroup resolver whose answers carry the Kubernetes names of
// pod cgroups; the collector uses it in place of the plain one.
type Cgroups struct {
	Inner CgroupResolver
	K8s   *Resolver
}

// ResolveMany resolves ids with Inner and names the pods among them.
func (c Cgroups) ResolveMany(ids []uint64) map[uint64]cgroupinfo.Info {
	out := c.Inner.ResolveMany(ids)
	for id, in := range out {
		if in.PodUID != "" {
			out[id] = c.K8s.Enrich(in)
		}
	}
	return out
}

// Describe reads the node's directories once and says what they give, for
// `bwtracker check`: how many pods and container links each source has, or
// that none is there (not a Kubernetes node, or not mounted).
func (r *Resolver) Describe() string {
	var parts []string
	count := func(dir string, ok func(os.DirEntry) bool) int {
		ents, err := os.ReadDir(dir)
		if errors.Is(err, fs.ErrNotExist) {
			return -2
		}
		if err != nil {
			return -1
		}
		n := 0
		for _, e := range ents {
			if ok(e) {
				n++
			}
		}
		return n
	}
	add := func(root, what string, n int) {
		if root == "" {
			return
		}
		switch n {
		case -2:
			parts = append(parts, root+": absent")
			return
		case -1:
			parts = append(parts, root+": not readable")
			return
		}
		parts = append(parts, fmt.Sprintf("%s: %d %s", root, n, what))
	}
	add(r.podLogRoot, "pods", count(r.podLogRoot, func(e os.DirEntry) bool { _, _, _, ok := parsePodLogDir(e.Name()); return ok }))
	add(r.containerLogRoot, "container links", count(r.containerLogRoot, func(e os.DirEntry) bool { _, _, _, _, ok := parseContainerLog(e.Name()); return ok }))
	if r.kubeletRoot != "" {
		dir := filepath.Join(r.kubeletRoot, "pods")
		add(dir, "pod directories", count(dir, func(e os.DirEntry) bool { return isUID(e.Name()) }))
	}
	if len(parts) == 0 {
		return "all sources turned off"
	}
	return strings.Join(parts, "; ")
}
