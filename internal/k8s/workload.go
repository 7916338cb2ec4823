package k8s

import "strings"

// Workload kinds, as kubectl names the resources ("deployment/web").
const (
	KindDeployment  = "deployment"
	KindReplicaSet  = "replicaset"
	KindDaemonSet   = "daemonset"
	KindStatefulSet = "statefulset"
	KindJob         = "job"
	KindCronJob     = "cronjob"
)

// Workload is the controller that owns a pod, as far as its name tells.
// The zero value means a bare pod (or a name no convention explains).
type Workload struct {
	// Kind is one of the Kind* constants, or "" when the name has a
	// generated suffix but does not tell which controller made it (a
	// DaemonSet, a Job or a bare ReplicaSet: see WorkloadFromPodName).
	Kind string
	// Name is the workload's name ("web" for deployment/web).
	Name string
	// ReplicaSet is the ReplicaSet between a Deployment and its pods
	// ("web-7c5ddbdf54"), and Job the Job a CronJob made
	// ("backup-29383920"); empty otherwise.
	ReplicaSet, Job string
}

// String is "kind/name" ("deployment/web"), the name alone when the kind is
// not known, or "" for a bare pod. It is the value of the workload
// dimension, label and report column.
func (w Workload) String() string {
	switch {
	case w.Name == "":
		return ""
	case w.Kind == "":
		return w.Name
	default:
		return w.Kind + "/" + w.Name
	}
}

// The alphabet of the random suffixes the API server generates
// (k8s.io/apimachinery/pkg/util/rand: no vowels, no 0, 1 or 3).
const randAlphabet = "bcdfghjklmnpqrstvwxz2456789"

// The digits of a pod-template-hash. The Deployment controller names a
// ReplicaSet <deployment>-<hash>, the hash being rand.SafeEncodeString of
// the decimal FNV-32a sum (controller.ComputeHash): each decimal digit '0'..'9'
// (48..57) becomes randAlphabet[c % 27], i.e. one of "4567 89bcdf".
const hashAlphabet = "456789bcdf"

// WorkloadFromPodName names a pod's controller from the pod name alone,
// following the names the controllers give their pods:
//
//	web-7c5ddbdf54-x7k2p      deployment/web     (ReplicaSet web-7c5ddbdf54: a pod-template-hash of 8-10 hash digits, then 5 random)
//	backup-29383920-q8zl4     cronjob/backup     (Job backup-29383920: the scheduled minute since the epoch, 8+ digits)
//	work-3-h5k9z              job/work           (an indexed Job's pod: <job>-<index>-<random>)
//	db-0                      statefulset/db     (<statefulset>-<ordinal>)
//	kube-proxy-x7k2p          kube-proxy         (<name>-<5 random>: a DaemonSet, a Job or a bare ReplicaSet; the name
//	                                              does not tell which, so the kind stays empty)
//	nginx                     (none)             (a bare pod, or a static pod: kube-apiserver-node1)
//
// It is a convention, not a lookup: a bare pod named like a StatefulSet's
// ("web-1") is taken for one. Exact owners need the API server, which
// bwtracker does not ask by default.
func WorkloadFromPodName(pod string) Workload {
	parts := strings.Split(pod, "-")
	n := len(parts)
	if n < 2 {
		return Workload{}
	}
	last, base := parts[n-1], strings.Join(parts[:n-1], "-")
	if base == "" {
		return Workload{}
	}
	if isRandSuffix(last) {
		if n >= 3 {
			prev, base2 := parts[n-2], strings.Join(parts[:n-2], "-")
			switch {
			case base2 == "":
			case len(prev) >= 8 && len(prev) <= 10 && allIn(prev, hashAlphabet):
				return Workload{Kind: KindDeployment, Name: base2, ReplicaSet: base}
			case len(prev) >= 8 && allDigits(prev): // has a 0-3: not a hash
				return Workload{Kind: KindCronJob, Name: base2, Job: base}
			case allDigits(prev) && isOrdinal(prev):
				return Workload{Kind: KindJob, Name: base2}
			}
		}
		return Workload{Name: base}
	}
	if isOrdinal(last) {
		return Workload{Kind: KindStatefulSet, Name: base}
	}
	return Workload{}
}

// isRandSuffix is the 5-character suffix of a generateName.
func isRandSuffix(s string) bool { return len(s) == 5 && allIn(s, randAlphabet) }

// isOrdinal is a decimal without leading zeros ("0", "7", "12").
func isOrdinal(s string) bool {
	return allDigits(s) && (s == "0" || s[0] != '0') && len(s) <= 7
}

func allDigits(s string) bool { return allIn(s, "0123456789") }

func allIn(s, set string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		if strings.IndexByte(set, s[i]) < 0 {
			return false
		}
	}
	return true
}
