// SPDX-License-Identifier: GPL-2.0
/*
 * bwtracker: per-process network byte accounting at the socket layer.
 *
 * Two hook backends share one accounting helper, account():
 *   - tracepoint: tp_btf/sock_send_length + tp_btf/sock_recv_length
 *     (kernel >= 6.4, commit 6e6eda44b939 "net: add sock_send_length and
 *     sock_recv_length tracepoints"): every socket family in one place.
 *   - fentry: fexit on tcp/udp/udpv6 sendmsg/recvmsg for older kernels.
 * The loader picks one backend and disables the other's programs with
 * SetAutoload(false) before load.
 *
 * Unconnected UDP (sendto/recvfrom, sendmmsg/recvmmsg) has no daddr on the
 * socket; the cgroup sock_addr sendmsg4/6 and recvmsg4/6 hooks, attached at
 * the cgroup v2 root, see the peer of each message and leave it for the
 * send/recv hook of the same thread. They always allow the traffic.
 *
 * Draining without loss: the programs write into whichever of flows_a /
 * flows_b the one-slot map-in-map active_flows points at. User space swaps
 * the slot; updating an ARRAY_OF_MAPS from a syscall waits for all running
 * non-sleepable BPF programs (maybe_wait_bpf_programs(), synchronize_rcu),
 * so once the swap returns nothing writes the old map any more and it can be
 * read and emptied at leisure.
 *
 * A full flows map loses detail, not bytes: flows_add() falls back to
 * overflow_add(), which adds the bytes to the process's entry (remote and
 * port zeroed) in the overflow map of the current generation, and when that
 * is full too, to the per-CPU unattributed slot of the generation and
 * direction. The generation (0/1) is a plain array entry user space flips
 * before it swaps the flows maps; the swap's wait for running programs is
 * what makes the old generation's overflow map and slots quiescent too.
 */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_core_read.h>
#include <bpf/bpf_tracing.h>
#include <bpf/bpf_endian.h>
#include "bwtracker.h"

char LICENSE[] SEC("license") = "GPL";

_Static_assert(sizeof(struct flow_key) == 64, "flow_key layout: keep internal/bpf/types.go in step");
_Static_assert(sizeof(struct flow_val) == 24, "flow_val layout: keep internal/bpf/types.go in step");
_Static_assert(sizeof(struct exec_event) == 288, "exec_event layout: keep internal/bpf/types.go in step");
_Static_assert(sizeof(struct peer) == 24, "peer layout");
_Static_assert(sizeof(struct flow_cache) == 112, "flow_cache layout: keep internal/bpf/types.go in step");

#define AF_INET 2
#define AF_INET6 10
#define AF_PACKET 17
#define SOCK_RAW 3
#define MSG_PEEK 2
#define IPPROTO_ICMP_ 1
#define IPPROTO_TCP_ 6
#define IPPROTO_UDP_ 17
#define IPPROTO_ICMPV6_ 58
#define IPPROTO_UDPLITE_ 136
#define IPPROTO_MPTCP_ 262
#define E2BIG_ 7
#define ENOMEM_ 12
#define EEXIST_ 17

#ifndef BWT_FLOWS_MAX
#define BWT_FLOWS_MAX 32768
#endif
#ifndef BWT_OVERFLOW_MAX
#define BWT_OVERFLOW_MAX 4096
#endif

/* Set by the loader before load. */
const volatile __u32 self_tgid = 0; /* don't count the daemon itself */

struct flows_map {
	__uint(type, BPF_MAP_TYPE_PERCPU_HASH);
	__uint(max_entries, BWT_FLOWS_MAX);
	__type(key, struct flow_key);
	__type(value, struct flow_val);
} flows_a SEC(".maps"), flows_b SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY_OF_MAPS);
	__uint(max_entries, 1);
	__type(key, __u32);
	__array(values, struct flows_map);
} active_flows SEC(".maps") = {
	.values = { [0] = &flows_a },
};

/* Per-CPU flow cache, slot = direction; swapped like the flows maps. */
struct bwt_cache_map {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 2);
	__type(key, __u32);
	__type(value, struct flow_cache);
} cache_a SEC(".maps"), cache_b SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY_OF_MAPS);
	__uint(max_entries, 1);
	__type(key, __u32);
	__array(values, struct bwt_cache_map);
} active_cache SEC(".maps") = {
	.values = { [0] = &cache_a },
};

/* Per-process aggregates of flows the flows map had no room for: the
 * flow_key with raddr/rport zeroed. One per generation. */
struct overflow_map {
	__uint(type, BPF_MAP_TYPE_PERCPU_HASH);
	__uint(max_entries, BWT_OVERFLOW_MAX);
	__type(key, struct flow_key);
	__type(value, struct flow_val);
} overflow_a SEC(".maps"), overflow_b SEC(".maps");

/* Never updated from user space: indexed by the generation. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY_OF_MAPS);
	__uint(max_entries, 2);
	__type(key, __u32);
	__array(values, struct overflow_map);
} overflow_maps SEC(".maps") = {
	.values = { [0] = &overflow_a, [1] = &overflow_b },
};

/* Last resort: bytes no map had room for, slot generation * 2 + dir. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, BWT_UNATTR_SLOTS);
	__type(key, __u32);
	__type(value, struct flow_val);
} unattributed SEC(".maps");

/* The generation the overflow map and unattributed slots belong to (0/1),
 * flipped by user space before each swap of the flows maps. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u32);
} generation SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, BWT_DROP_MAX);
	__type(key, __u32);
	__type(value, __u64);
} drops SEC(".maps");

/* Peer of the current thread's unconnected send/recv, keyed by pid_tgid. */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 16384);
	__type(key, __u64);
	__type(value, struct peer);
} peers SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 256 * 1024);
} exec_events SEC(".maps");

static __always_inline void count_drop(__u32 cause)
{
	__u64 *v = bpf_map_lookup_elem(&drops, &cause);
	if (v)
		__sync_fetch_and_add(v, 1);
}

static __always_inline __u64 task_start_ns(struct task_struct *task)
{
	/* start_boottime (v5.3, commit cf25e24db61c) is what /proc/PID/stat
	 * reports; fall back to start_time on older kernels. */
	if (bpf_core_field_exists(task->start_boottime))
		return BPF_CORE_READ(task, group_leader, start_boottime);
	return BPF_CORE_READ(task, group_leader, start_time);
}

/* sk is a BTF-typed (trusted) pointer in both backends, so fields are read
 * with direct, CO-RE-relocated loads instead of bpf_probe_read calls: this
 * runs on every send and recv, and each helper call costs.
 * sk_protocol/sk_type became plain u16 fields in v5.6 (commit bf9765145b85);
 * both backends need newer kernels than that. */
static __always_inline __u8 sock_proto(struct sock *sk, __u16 family)
{
	if (family == AF_PACKET)
		return BWT_PROTO_PACKET;
	__u16 proto = sk->sk_protocol;
	__u16 type = sk->sk_type;
	if (proto == IPPROTO_ICMP_ || proto == IPPROTO_ICMPV6_)
		return BWT_PROTO_ICMP;
	if (type == SOCK_RAW)
		return BWT_PROTO_RAW;
	switch (proto) {
	case IPPROTO_TCP_:
		return BWT_PROTO_TCP;
	case IPPROTO_UDP_:
	case IPPROTO_UDPLITE_:
		return BWT_PROTO_UDP;
	case IPPROTO_MPTCP_:
		return BWT_PROTO_MPTCP;
	}
	return BWT_PROTO_OTHER;
}

static __always_inline void set_v4(__u8 *addr, __u32 be_addr)
{
	__builtin_memset(addr, 0, 10);
	addr[10] = 0xff;
	addr[11] = 0xff;
	__builtin_memcpy(addr + 12, &be_addr, 4);
}

static __always_inline int addr_is_zero(const __u8 *a)
{
	__u64 lo, hi;
	__builtin_memcpy(&lo, a, 8);
	__builtin_memcpy(&hi, a + 8, 8);
	return lo == 0 && hi == 0;
}

/* Adds to the entry of key in a hash of flow_val, creating it when
 * missing. Returns 0, or the update error when the entry could not be
 * created (E2BIG/ENOMEM: the map is full). */
static __always_inline long hash_add(void *m, const struct flow_key *key, __u64 bytes, __u64 calls)
{
	struct flow_val *v = bpf_map_lookup_elem(m, key);
	if (!v) {
		/* The clock is read only when an entry is created: ~40 ns a
		 * call on this VM, too much for every send. */
		struct flow_val nv = { .bytes = bytes, .calls = calls, .first_ns = bpf_ktime_get_boot_ns() };
		long err = bpf_map_update_elem(m, key, &nv, BPF_NOEXIST);
		if (!err)
			return 0;
		if (err != -EEXIST_)
			return err;
		/* Another program on this CPU created it meanwhile. */
		v = bpf_map_lookup_elem(m, key);
		if (!v)
			return -EEXIST_;
	}
	/* Atomic: a preemptible kernel may run this program for another task on
	 * the same CPU in the middle of our add. */
	__sync_fetch_and_add(&v->bytes, bytes);
	__sync_fetch_and_add(&v->calls, calls);
	return 0;
}

/* The flows map had no room for key: keep the bytes with less detail. */
static __always_inline void overflow_add(const struct flow_key *key, __u64 bytes, __u64 calls)
{
	__u32 zero = 0;
	__u32 *g = bpf_map_lookup_elem(&generation, &zero);
	__u32 gen = g ? (*g & 1) : 0;
	void *ovf = bpf_map_lookup_elem(&overflow_maps, &gen);
	if (ovf) {
		struct flow_key pk = *key;
		__builtin_memset(pk.raddr, 0, sizeof(pk.raddr));
		pk.rport = 0;
		if (!hash_add(ovf, &pk, bytes, calls))
			return;
	}
	count_drop(BWT_DROP_OVERFLOW_FULL);
	__u32 slot = gen * 2 + (key->dir & 1);
	struct flow_val *u = bpf_map_lookup_elem(&unattributed, &slot);
	if (!u) {
		count_drop(BWT_DROP_UNATTRIBUTED);
		return;
	}
	__sync_fetch_and_add(&u->bytes, bytes);
	__sync_fetch_and_add(&u->calls, calls);
}

/* Adds to the entry of key in a flows map, creating it when missing; when
 * it cannot be created, to the overflow map (see overflow_add). */
static __always_inline void flows_add(void *flows, const struct flow_key *key, __u64 bytes, __u64 calls)
{
	long err = hash_add(flows, key, bytes, calls);
	if (!err)
		return;
	count_drop(err == -E2BIG_ || err == -ENOMEM_ ? BWT_DROP_FLOWS_FULL : BWT_DROP_FLOWS_UPDATE);
	overflow_add(key, bytes, calls);
}

/* Identity of the calling process, read once per event. */
struct who {
	__u64 pid_tgid;
	__u64 start_ns;
	__u64 cgroup_id;
	__u64 comm[2];
	__u32 uid;
};

/* Fills *key (zeroed by the caller) for this event. */
static __always_inline void fill_key(struct flow_key *key, struct sock *sk, __u16 family, __u8 proto, __u8 dir, const struct who *w)
{
	key->tgid = w->pid_tgid >> 32;
	key->uid = w->uid;
	key->start_ns = w->start_ns;
	key->cgroup_id = w->cgroup_id;
	key->proto = proto;
	key->dir = dir;
	struct net *net = sk->__sk_common.skc_net.net;
	if (net)
		key->netns = net->ns.inum;
	__builtin_memcpy(key->comm, w->comm, sizeof(key->comm));
	if (family == AF_INET) {
		__u32 daddr = sk->__sk_common.skc_daddr;
		if (daddr) {
			set_v4(key->raddr, daddr);
			key->rport = bpf_ntohs(sk->__sk_common.skc_dport);
		}
	} else if (family == AF_INET6) {
		__builtin_memcpy(key->raddr, sk->__sk_common.skc_v6_daddr.in6_u.u6_addr8, 16);
		if (!addr_is_zero(key->raddr))
			key->rport = bpf_ntohs(sk->__sk_common.skc_dport);
	}
}

/* TCP fast path: count into this CPU's cached flow when the same thread
 * uses the same socket again (a stream), else move the cached flow into the
 * flows map and cache this one. Returns 0 when the cache was busy (this
 * program preempted another user of it on this CPU): count directly then. */
static __always_inline int cache_add(void *flows, struct sock *sk, __u16 family, __u8 dir, const struct who *w, long bytes)
{
	__u32 zero = 0, slot = dir;
	void *cm = bpf_map_lookup_elem(&active_cache, &zero);
	if (!cm)
		return 0;
	struct flow_cache *ce = bpf_map_lookup_elem(cm, &slot);
	if (!ce)
		return 0;
	if (__sync_lock_test_and_set(&ce->busy, 1))
		return 0;
	if (ce->valid && ce->sk == (__u64)sk && ce->pid_tgid == w->pid_tgid &&
	    ce->key.start_ns == w->start_ns && ce->key.cgroup_id == w->cgroup_id &&
	    ce->key.uid == w->uid) {
		__u64 c[2];
		__builtin_memcpy(c, ce->key.comm, sizeof(c));
		if (c[0] == w->comm[0] && c[1] == w->comm[1]) {
			ce->bytes += bytes;
			ce->calls += 1;
			asm volatile("" ::: "memory");
			ce->busy = 0;
			return 1;
		}
	}
	if (ce->valid && ce->calls)
		flows_add(flows, &ce->key, ce->bytes, ce->calls);
	__builtin_memset(&ce->key, 0, sizeof(ce->key));
	fill_key(&ce->key, sk, family, BWT_PROTO_TCP, dir, w);
	ce->sk = (__u64)sk;
	ce->pid_tgid = w->pid_tgid;
	ce->bytes = bytes;
	ce->calls = 1;
	ce->valid = 1;
	asm volatile("" ::: "memory");
	ce->busy = 0;
	return 1;
}

/* The one accounting helper both backends call. */
static __always_inline void account(struct sock *sk, long bytes, __u8 dir)
{
	if (!sk || bytes <= 0)
		return;
	__u16 family = sk->__sk_common.skc_family;
	if (family != AF_INET && family != AF_INET6 && family != AF_PACKET)
		return; /* unix, netlink, vsock...: not network traffic */

	struct who w = {};
	w.pid_tgid = bpf_get_current_pid_tgid();
	__u32 tgid = w.pid_tgid >> 32;
	if (tgid == self_tgid && self_tgid != 0)
		return;
	/* Direct BTF loads instead of helpers: bpf_get_current_uid_gid() maps
	 * the uid through the user namespace (from_kuid), ~40 ns a call here;
	 * the kuid's value is that same global uid. */
	struct task_struct *task = bpf_get_current_task_btf();
	w.uid = task->cred->uid.val;
	struct task_struct *leader = task->group_leader;
	if (!leader)
		return;
	w.start_ns = leader->start_boottime;
	/* What bpf_get_current_cgroup_id() returns (cgroup v2 id), without the
	 * helper call. */
	w.cgroup_id = task->cgroups->dfl_cgrp->kn->id;
	/* The process's name (its group leader's comm), not the thread's:
	 * threads named "worker-3" still belong to their process. */
	__builtin_memcpy(w.comm, leader->comm, sizeof(w.comm));
	__u8 proto = sock_proto(sk, family);

	__u32 zero = 0;
	void *flows = bpf_map_lookup_elem(&active_flows, &zero);
	if (!flows) {
		count_drop(BWT_DROP_NO_ACTIVE);
		return;
	}
	if (proto == BWT_PROTO_TCP && cache_add(flows, sk, family, dir, &w, bytes))
		return;

	struct flow_key key = {};
	fill_key(&key, sk, family, proto, dir, &w);
	/* A peer given with this very call (sendto/recvfrom on an unconnected
	 * socket) wins over the socket's own: it is the true remote. */
	if (proto == BWT_PROTO_UDP || proto == BWT_PROTO_ICMP || proto == BWT_PROTO_RAW) {
		struct peer *p = bpf_map_lookup_elem(&peers, &w.pid_tgid);
		if (p) {
			if (p->dir == dir) {
				__builtin_memcpy(key.raddr, p->addr, 16);
				key.rport = p->port;
			}
			bpf_map_delete_elem(&peers, &w.pid_tgid);
		}
	}
	flows_add(flows, &key, bytes, 1);
}

/* ---- tracepoint backend (kernel >= 6.4) ---- */

SEC("tp_btf/sock_send_length")
int BPF_PROG(tp_sock_send_length, struct sock *sk, int ret, int flags)
{
	account(sk, ret, BWT_DIR_TX);
	return 0;
}

SEC("tp_btf/sock_recv_length")
int BPF_PROG(tp_sock_recv_length, struct sock *sk, int ret, int flags)
{
	if (flags & MSG_PEEK)
		return 0; /* the data is still there; the real recv counts it */
	account(sk, ret, BWT_DIR_RX);
	return 0;
}

/* ---- fentry backend (kernels 5.17 - 6.3) ----
 * bpf_get_func_arg/ret/arg_cnt (v5.17, commit f92c1e183604) read arguments
 * and the return value by position at run time, so one program fits both
 * tcp_recvmsg/udp_recvmsg signatures: v5.19 (commit ec095263a965) dropped
 * their `nonblock` argument, moving `flags` from position 4 to 3. */

static __always_inline void fexit_common(unsigned long long *ctx, struct sock *sk, __u8 dir)
{
	__u64 ret = 0;
	if (bpf_get_func_ret(ctx, &ret))
		return;
	if (dir == BWT_DIR_RX) {
		__u64 flags = 0;
		__u64 n = bpf_get_func_arg_cnt(ctx);
		bpf_get_func_arg(ctx, n == 6 ? 4 : 3, &flags);
		if (flags & MSG_PEEK)
			return;
	}
	account(sk, (long)(int)ret, dir);
}

SEC("fexit/tcp_sendmsg")
int BPF_PROG(fexit_tcp_sendmsg, struct sock *sk)
{
	fexit_common(ctx, sk, BWT_DIR_TX);
	return 0;
}

SEC("fexit/tcp_recvmsg")
int BPF_PROG(fexit_tcp_recvmsg, struct sock *sk)
{
	fexit_common(ctx, sk, BWT_DIR_RX);
	return 0;
}

SEC("fexit/udp_sendmsg")
int BPF_PROG(fexit_udp_sendmsg, struct sock *sk)
{
	fexit_common(ctx, sk, BWT_DIR_TX);
	return 0;
}

SEC("fexit/udp_recvmsg")
int BPF_PROG(fexit_udp_recvmsg, struct sock *sk)
{
	fexit_common(ctx, sk, BWT_DIR_RX);
	return 0;
}

SEC("fexit/udpv6_sendmsg")
int BPF_PROG(fexit_udpv6_sendmsg, struct sock *sk)
{
	fexit_common(ctx, sk, BWT_DIR_TX);
	return 0;
}

SEC("fexit/udpv6_recvmsg")
int BPF_PROG(fexit_udpv6_recvmsg, struct sock *sk)
{
	fexit_common(ctx, sk, BWT_DIR_RX);
	return 0;
}

/* ---- peers of unconnected sends/receives (both backends) ---- */

static __always_inline void stash_v4(__u32 be_addr, __u32 be_port, __u8 dir)
{
	__u64 id = bpf_get_current_pid_tgid();
	struct peer p = {};
	set_v4(p.addr, be_addr);
	p.port = bpf_ntohs((__u16)be_port);
	p.dir = dir;
	if (bpf_map_update_elem(&peers, &id, &p, BPF_ANY))
		count_drop(BWT_DROP_PEER_STASH);
}

static __always_inline void stash_v6(struct bpf_sock_addr *ctx, __u8 dir)
{
	__u64 id = bpf_get_current_pid_tgid();
	struct peer p = {};
	__u32 w[4];
	w[0] = ctx->user_ip6[0];
	w[1] = ctx->user_ip6[1];
	w[2] = ctx->user_ip6[2];
	w[3] = ctx->user_ip6[3];
	__builtin_memcpy(p.addr, w, 16);
	p.port = bpf_ntohs((__u16)ctx->user_port);
	p.dir = dir;
	if (bpf_map_update_elem(&peers, &id, &p, BPF_ANY))
		count_drop(BWT_DROP_PEER_STASH);
}

SEC("cgroup/sendmsg4")
int cg_sendmsg4(struct bpf_sock_addr *ctx)
{
	stash_v4(ctx->user_ip4, ctx->user_port, BWT_DIR_TX);
	return 1; /* always allow */
}

SEC("cgroup/recvmsg4")
int cg_recvmsg4(struct bpf_sock_addr *ctx)
{
	stash_v4(ctx->user_ip4, ctx->user_port, BWT_DIR_RX);
	return 1;
}

SEC("cgroup/sendmsg6")
int cg_sendmsg6(struct bpf_sock_addr *ctx)
{
	stash_v6(ctx, BWT_DIR_TX);
	return 1;
}

SEC("cgroup/recvmsg6")
int cg_recvmsg6(struct bpf_sock_addr *ctx)
{
	stash_v6(ctx, BWT_DIR_RX);
	return 1;
}

/* ---- exec events: executable path of processes that may be gone before
 * user space can read /proc ---- */

SEC("tp_btf/sched_process_exec")
int BPF_PROG(tp_sched_process_exec, struct task_struct *p, pid_t old_pid, struct linux_binprm *bprm)
{
	struct exec_event *e = bpf_ringbuf_reserve(&exec_events, sizeof(*e), 0);
	if (!e) {
		count_drop(BWT_DROP_EXEC_EVENT);
		return 0;
	}
	e->tgid = BPF_CORE_READ(p, tgid);
	e->uid = (__u32)bpf_get_current_uid_gid();
	e->start_ns = task_start_ns(p);
	bpf_get_current_comm(e->comm, sizeof(e->comm));
	const char *fn = BPF_CORE_READ(bprm, filename);
	bpf_probe_read_kernel_str(e->filename, sizeof(e->filename), fn);
	bpf_ringbuf_submit(e, 0);
	return 0;
}
