// Package k8s names the Kubernetes pods and containers of the node
// bwtracker runs on: pod UID -> namespace, pod name, container name and
// workload (the controller that owns the pod), from the node's own
// directories. It needs no API-server access and no CRI socket.
//
// The cgroup path of a pod's process carries only the pod UID and the
// container id (internal/cgroupinfo parses them, for the cgroupfs driver's
// /kubepods/burstable/pod<uid>/<id> and the systemd driver's
// /kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod<uid_>.slice/cri-containerd-<id>.scope).
// The names come from what the kubelet writes on every node (readNode has
// the details):
//
//	/var/log/pods/<namespace>_<pod>_<uid>/<container>/         namespace, pod, container names
//	/var/log/containers/<pod>_<namespace>_<container>-<id>.log  container id -> container name
//	/var/lib/kubelet/pods/<uid>/                                 fallback: etc-hosts, the
//	                                                             service-account namespace file
//
// The roots are options (run --kubelet-root, --pod-log-root,
// --container-log-root) so that a DaemonSet mounting them elsewhere, or a
// test's fake node, can point at them; `bwtracker check` says what each
// holds (Resolver.Describe).
//
// The workload comes from the pod name by the controllers' naming
// conventions (WorkloadFromPodName): Deployment (through its ReplicaSet's
// pod-template-hash), StatefulSet, CronJob and indexed Job are told apart;
// "<name>-<5 random>" (a DaemonSet, a Job or a bare ReplicaSet) keeps the
// name with no kind. Owner references are in the API server only.
//
// # Cost and bounds
//
// A Resolver reads the directories only when asked for a pod or container
// it does not know, at most once per Options.RescanEvery (2s), and not
// again for the same unknown one within Options.MissTTL (30s): one readdir
// per pod and one readlink per container (BenchmarkRescan: a node of 110
// pods with 3 containers each). It remembers at most Options.MaxPods pods (4096); pods
// that are gone stay named (late samples, reports after the pod is deleted
// are named from the store) until newer pods push them out.
package k8s
