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
 * TCP receives are counted as advances of the socket's copied_seq (the
 * first byte the reader has not consumed yet), not as what recvmsg
 * returned: splice() and other tcp_read_sock readers consume data without
 * passing sock_recv_length. See "TCP receive" below.
 *
 * Unconnected UDP (sendto/recvfrom, sendmmsg/recvmmsg) has no daddr on the
 * socket; the cgroup sock_addr sendmsg4/6 and recvmsg4/6 hooks, attached at
 * the cgroup v2 root, see the peer of each message and leave it for the
 * send/recv hook of the same thread. They always allow the traffic.
 * Unconnected ICMP, raw and AF_PACKET sockets get no sock_addr hooks: the
 * route lookup of a send (fib:fib_table_lookup, fib6:fib6_table_lookup in
 * the sending task) and the datagram copied to the reader
 * (skb:skb_copy_datagram_iovec) leave their peer the same way.
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
_Static_assert(sizeof(struct flow_cache) == 136, "flow_cache layout: keep internal/bpf/types.go in step");

#define AF_INET 2
#define AF_INET6 10
#define AF_PACKET 17
#define SOCK_RAW 3
#define MSG_PEEK 2
#define ETH_P_IP_ 0x0800
#define ETH_P_IPV6_ 0x86DD
#define LOOPBACK_IFINDEX_ 1
#define PACKET_OUTGOING_ 4
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

/* Per TCP socket: the copied_seq up to which its receives are counted
 * (a u32 sequence number kept in 64 bits: compare-and-swap on 32 bits
 * needs BPF ISA v3). */
struct tcp_rx {
	__u64 seen;
};

struct {
	__uint(type, BPF_MAP_TYPE_SK_STORAGE);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, int);
	__type(value, struct tcp_rx);
} tcp_rx_seq SEC(".maps");

/* Destination of the current thread's last route lookup for an ICMP or raw
 * send, keyed by pid_tgid (see "peers of unconnected ICMP, raw ..."). */
struct route_peer {
	__u8 addr[16];
	__u64 ns; /* bpf_ktime_get_ns() of the lookup */
};

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 4096);
	__type(key, __u64);
	__type(value, struct route_peer);
} route_peers SEC(".maps");

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

/* Identity of the calling process. */
struct who {
	__u64 pid_tgid;
	__u64 start_ns;
	__u64 cgroup_id;
	__u64 comm[2];
	__u32 uid;
};

/* Reads the identity of task (the current one). Direct BTF loads instead of
 * helpers: bpf_get_current_uid_gid() maps the uid through the user
 * namespace (from_kuid), ~40 ns a call here; the kuid's value is that same
 * global uid. */
static __always_inline void read_who(struct who *w, struct task_struct *task, struct task_struct *leader, __u64 pid_tgid)
{
	w->pid_tgid = pid_tgid;
	w->uid = task->cred->uid.val;
	w->start_ns = leader->start_boottime;
	/* What bpf_get_current_cgroup_id() returns (cgroup v2 id), without the
	 * helper call. */
	w->cgroup_id = task->cgroups->dfl_cgrp->kn->id;
	/* The process's name (its group leader's comm), not the thread's:
	 * threads named "worker-3" still belong to their process. */
	__builtin_memcpy(w->comm, leader->comm, sizeof(w->comm));
}

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
 * flows map and cache this one. The cached flow remembers the task's
 * identity by the kernel objects it comes from (group leader, cred,
 * css_set: a setuid, a cgroup move or an exec from another thread replaces
 * them; the task holds a reference, so an equal pointer is the same object)
 * and the comm (exec changes it): a hit reads three pointers and the comm
 * instead of walking to the uid, start time and cgroup id. Returns 0 when
 * the cache was busy (this program preempted another user of it on this
 * CPU): count directly then. */
static __always_inline int cache_add(struct sock *sk, __u16 family, __u8 dir, struct task_struct *task, struct task_struct *leader, __u64 pid_tgid, long bytes)
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
	__u64 cred = (__u64)task->cred, cgroups = (__u64)task->cgroups;
	__u64 comm[2];
	__builtin_memcpy(comm, leader->comm, sizeof(comm));
	if (ce->valid && ce->sk == (__u64)sk && ce->pid_tgid == pid_tgid &&
	    ce->leader == (__u64)leader && ce->cred == cred && ce->cgroups == cgroups) {
		__u64 c[2];
		__builtin_memcpy(c, ce->key.comm, sizeof(c));
		if (c[0] == comm[0] && c[1] == comm[1]) {
			ce->bytes += bytes;
			ce->calls += 1;
			asm volatile("" ::: "memory");
			ce->busy = 0;
			return 1;
		}
	}
	void *flows = bpf_map_lookup_elem(&active_flows, &zero);
	if (!flows) {
		count_drop(BWT_DROP_NO_ACTIVE);
		asm volatile("" ::: "memory");
		ce->busy = 0;
		return 1;
	}
	if (ce->valid && ce->calls)
		flows_add(flows, &ce->key, ce->bytes, ce->calls);
	struct who w;
	read_who(&w, task, leader, pid_tgid);
	__builtin_memset(&ce->key, 0, sizeof(ce->key));
	fill_key(&ce->key, sk, family, BWT_PROTO_TCP, dir, &w);
	ce->sk = (__u64)sk;
	ce->pid_tgid = pid_tgid;
	ce->leader = (__u64)leader;
	ce->cred = cred;
	ce->cgroups = cgroups;
	ce->bytes = bytes;
	ce->calls = 1;
	ce->valid = 1;
	asm volatile("" ::: "memory");
	ce->busy = 0;
	return 1;
}

#define ROUTE_PEER_NS_ 20000000ULL /* 20 ms: see route_stash */

/* The destination of this thread's send, if a route lookup just gave one
 * (consumed). */
static __always_inline int route_take(__u64 id, __u8 *addr16)
{
	struct route_peer *rp = bpf_map_lookup_elem(&route_peers, &id);
	if (!rp)
		return 0;
	int fresh = bpf_ktime_get_ns() - rp->ns < ROUTE_PEER_NS_;
	if (fresh)
		__builtin_memcpy(addr16, rp->addr, 16);
	bpf_map_delete_elem(&route_peers, &id);
	return fresh;
}

/* The one accounting helper both backends call. */
static __always_inline void account(struct sock *sk, long bytes, __u8 dir)
{
	if (!sk || bytes <= 0)
		return;
	__u16 family = sk->__sk_common.skc_family;
	if (family != AF_INET && family != AF_INET6 && family != AF_PACKET)
		return; /* unix, netlink, vsock...: not network traffic */

	struct task_struct *task = bpf_get_current_task_btf();
	/* bpf_get_current_pid_tgid() without the call. */
	__u64 pid_tgid = ((__u64)task->tgid << 32) | (__u32)task->pid;
	if ((__u32)(pid_tgid >> 32) == self_tgid && self_tgid != 0)
		return;
	struct task_struct *leader = task->group_leader;
	if (!leader)
		return;
	__u8 proto = sock_proto(sk, family);
	if (proto == BWT_PROTO_TCP && cache_add(sk, family, dir, task, leader, pid_tgid, bytes))
		return;

	__u32 zero = 0;
	void *flows = bpf_map_lookup_elem(&active_flows, &zero);
	if (!flows) {
		count_drop(BWT_DROP_NO_ACTIVE);
		return;
	}
	struct who w = {};
	read_who(&w, task, leader, pid_tgid);
	struct flow_key key = {};
	fill_key(&key, sk, family, proto, dir, &w);
	/* A peer given with this very call (sendto/recvfrom on an unconnected
	 * socket) wins over the socket's own: it is the true remote. */
	if (proto == BWT_PROTO_UDP || proto == BWT_PROTO_ICMP || proto == BWT_PROTO_RAW || proto == BWT_PROTO_PACKET) {
		struct peer *p = bpf_map_lookup_elem(&peers, &w.pid_tgid);
		if (p) {
			if (p->dir == dir) {
				__builtin_memcpy(key.raddr, p->addr, 16);
				key.rport = p->port;
			}
			bpf_map_delete_elem(&peers, &w.pid_tgid);
		}
	}
	/* An ICMP or raw send's route lookup: its destination, when the socket
	 * has none of its own (always taken, so it never outlives its send). */
	if (dir == BWT_DIR_TX && (proto == BWT_PROTO_ICMP || proto == BWT_PROTO_RAW)) {
		__u8 a[16];
		if (route_take(w.pid_tgid, a) && addr_is_zero(key.raddr)) {
			__builtin_memcpy(key.raddr, a, 16);
			key.rport = 0;
		}
	}
	flows_add(flows, &key, bytes, 1);
}

/* ---- TCP receive: copied_seq advances ----
 *
 * A TCP reader consumes data by moving tcp_sock->copied_seq forward, on
 * every path: recvmsg (also io_uring, MSG_WAITALL), splice and other
 * tcp_read_sock readers, TCP_ZEROCOPY_RECEIVE. MSG_PEEK never moves it.
 * tcp_rx_seq holds, per socket, the copied_seq up to which its bytes were
 * counted; whichever hook runs next in the reader's context counts the
 * advance (compare-and-swap, so two hooks or two threads never count the
 * same byte): tcp:tcp_rcv_space_adjust, which every consuming path calls
 * after moving copied_seq, and sock_recv_length right after recvmsg (in
 * recvmsg syscalls only the latter, see in_recvmsg_syscall).
 *
 * Only "plain" TCP sockets are counted this way. kTLS and MPTCP subflows
 * (an upper layer protocol, icsk_ulp_ops) and sockmap sockets
 * (sk_user_data holds the psock) are consumed by the kernel itself, in
 * softirq or a kworker, through tcp_read_sock/tcp_read_skb; their reader
 * gets the bytes from the upper layer, so for them (and for MPTCP's own
 * socket) what sock_recv_length returned is counted, as before. Interrupt
 * context never counts (the current task is not the reader).
 *
 * The storage is seeded when the connection becomes established
 * (sock:inet_sock_set_state), so every byte of a connection opened while
 * the tracker runs is counted. A socket that was already open when the
 * tracker started is seeded by its first recv (copied_seq - what it
 * returned); one that is only ever spliced is not counted. */

/* The socket as a tcp_sock when its receives are counted by copied_seq. */
static __always_inline struct tcp_sock *plain_tcp(struct sock *sk)
{
	if (sk->sk_protocol != IPPROTO_TCP_)
		return NULL;
	struct tcp_sock *tp = bpf_skc_to_tcp_sock(sk);
	if (!tp)
		return NULL;
	if (tp->inet_conn.icsk_ulp_ops || sk->sk_user_data)
		return NULL;
	return tp;
}

/* copied_seq less a consumed FIN, which takes a sequence number but is no
 * payload (found_fin_ok in tcp_recvmsg_locked, ++seq in tcp_read_sock):
 * once the FIN is in (SOCK_DONE, rcv_nxt past it), copied_seq == rcv_nxt
 * means the reader consumed it too. copied_seq is read first: the FIN's
 * arrival (rcv_nxt, then SOCK_DONE) precedes its consumption. */
static __always_inline __u32 consumed_seq(struct sock *sk, struct tcp_sock *tp)
{
	__u32 seq = tp->copied_seq;
	asm volatile("" ::: "memory");
	if ((sk->__sk_common.skc_flags & (1UL << SOCK_DONE)) && seq == tp->rcv_nxt)
		seq--;
	return seq;
}

/* Counts what the reader consumed since the last count. ret is what a
 * recvmsg just returned (0 from tcp_rcv_space_adjust): a socket seen for
 * the first time by a recv is seeded with copied_seq - ret. */
static __always_inline void tcp_rx_harvest(struct sock *sk, struct tcp_sock *tp, long ret, int flags)
{
	__u32 cur = consumed_seq(sk, tp);
	struct tcp_rx *st = bpf_sk_storage_get(&tcp_rx_seq, sk, 0, 0);
	if (!st) {
		if (ret <= 0 || (flags & MSG_PEEK))
			return; /* tcp_rcv_space_adjust never seeds: see above */
		struct tcp_rx init = { .seen = (__u32)(cur - (__u32)ret) };
		st = bpf_sk_storage_get(&tcp_rx_seq, sk, &init, BPF_SK_STORAGE_GET_F_CREATE);
		if (!st)
			return;
	}
	for (int i = 0; i < 4; i++) {
		__u64 old = st->seen;
		__s32 delta = (__s32)(cur - (__u32)old);
		if (delta <= 0)
			return;
		if (__sync_val_compare_and_swap(&st->seen, old, (__u64)cur) == old) {
			account(sk, delta, BWT_DIR_RX);
			return;
		}
	}
}

/* Seeds a connection's storage when it becomes established: nothing was
 * consumed before (an active open's copied_seq is set from the SYN-ACK just
 * before; a passive child's was set at clone time, and a TFO child's reader
 * may have started: keep what it seeded). A reconnect (tcp_disconnect,
 * connect again) reseeds. */
SEC("tp_btf/inet_sock_set_state")
int BPF_PROG(tp_inet_sock_set_state, const struct sock *csk, const int oldstate, const int newstate)
{
	if (newstate != TCP_ESTABLISHED)
		return 0;
	struct sock *sk = (struct sock *)csk;
	struct tcp_sock *tp = plain_tcp(sk);
	if (!tp)
		return 0;
	struct tcp_rx init = { .seen = tp->copied_seq };
	struct tcp_rx *st = bpf_sk_storage_get(&tcp_rx_seq, sk, &init, BPF_SK_STORAGE_GET_F_CREATE);
	if (st && oldstate == TCP_SYN_SENT)
		st->seen = init.seen;
	return 0;
}

/* Whether the current task is in a syscall that reads through recvmsg
 * (read, readv, recvfrom, recvmsg, recvmmsg on x86-64): sock_recv_length
 * follows before it returns, and counting there once per call is cheaper
 * than once per chunk copied (tcp_recvmsg_locked calls
 * tcp_rcv_space_adjust after each skb). Anything else that consumes
 * (splice, sendfile, io_uring, TCP_ZEROCOPY_RECEIVE) counts at
 * tcp_rcv_space_adjust. Unknown architectures count at both (the
 * compare-and-swap keeps that exact). */
static __always_inline int in_recvmsg_syscall(void)
{
#ifdef __TARGET_ARCH_x86
	struct pt_regs *regs = (struct pt_regs *)bpf_task_pt_regs(bpf_get_current_task_btf());
	if (!regs)
		return 0;
	switch (regs->orig_ax) {
	case 0:   /* read */
	case 19:  /* readv */
	case 45:  /* recvfrom */
	case 47:  /* recvmsg */
	case 299: /* recvmmsg */
		return 1;
	}
#endif
	return 0;
}

static __always_inline void rcv_space_common(struct sock *sk)
{
	if (!sk || in_recvmsg_syscall())
		return;
	struct tcp_sock *tp = plain_tcp(sk);
	if (tp)
		tcp_rx_harvest(sk, tp, 0, 0);
}

/* What a recvmsg returned: TCP counts by copied_seq (above), the rest by
 * the return value; MSG_PEEK never counts. */
static __always_inline void recv_common(struct sock *sk, long ret, int flags)
{
	if (!sk)
		return;
	struct tcp_sock *tp = plain_tcp(sk);
	if (tp) {
		tcp_rx_harvest(sk, tp, ret, flags);
		return;
	}
	if (flags & MSG_PEEK)
		return; /* the data is still there; the real recv counts it */
	account(sk, ret, BWT_DIR_RX);
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
	recv_common(sk, ret, flags);
	return 0;
}

/* In the reader's context on every path that consumes TCP data: after each
 * chunk of tcp_recvmsg_locked, at the end of tcp_read_sock (splice) and of
 * TCP_ZEROCOPY_RECEIVE (see "TCP receive" above). */
SEC("tp_btf/tcp_rcv_space_adjust")
int BPF_PROG(tp_tcp_rcv_space_adjust, struct sock *sk)
{
	rcv_space_common(sk);
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
		recv_common(sk, (long)(int)ret, (int)flags);
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

/* The fentry twin of tp_tcp_rcv_space_adjust (the tracepoint is the
 * function's first statement). */
SEC("fentry/tcp_rcv_space_adjust")
int BPF_PROG(fentry_tcp_rcv_space_adjust, struct sock *sk)
{
	rcv_space_common(sk);
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

/* ---- peers of unconnected ICMP, raw and AF_PACKET sockets ----
 * The sock_addr hooks run for UDP only. A send on an unconnected ICMP or
 * raw socket looks its route up in the sending task (raw_sendmsg,
 * ping_v4_sendmsg, rawv6/ping_v6 through ip6_route_output): the flow's
 * destination is the peer. Only output lookups (iif = loopback, what
 * ip_route_output_key_hash and ip6_route_output set) for protocols whose
 * peer no other hook gives (not TCP, not UDP). Connected TCP and UDP sends
 * use their cached route and never get here: this costs nothing on them.
 *
 * The trap: the send's own packet may be answered at once by softirq code
 * running in the same task (loopback or veth delivery when bottom halves
 * are re-enabled inside dev_queue_xmit): the echo reply's route lookup
 * would overwrite the destination with our own address. There is no
 * preempt count to read here (per-CPU symbols are not in kallsyms), so the
 * first lookup wins: a destination younger than ROUTE_PEER_NS_ (20 ms) is kept, and
 * the send hook takes it only that young. */

static __always_inline int peer_from_route(__u8 proto)
{
	return proto != IPPROTO_TCP_ && proto != IPPROTO_UDP_ && proto != IPPROTO_UDPLITE_;
}

static __always_inline void route_stash(const __u8 *addr16)
{
	__u64 id = bpf_get_current_pid_tgid();
	__u64 now = bpf_ktime_get_ns();
	struct route_peer *cur = bpf_map_lookup_elem(&route_peers, &id);
	if (cur && now - cur->ns < ROUTE_PEER_NS_)
		return; /* this send's own lookup came first */
	struct route_peer rp = { .ns = now };
	__builtin_memcpy(rp.addr, addr16, 16);
	if (bpf_map_update_elem(&route_peers, &id, &rp, BPF_ANY))
		count_drop(BWT_DROP_PEER_STASH);
}

SEC("tp_btf/fib_table_lookup")
int BPF_PROG(tp_fib_table_lookup, u32 tb_id, const struct flowi4 *flp, const struct fib_nh_common *nhc, int err)
{
	if (flp->__fl_common.flowic_iif != LOOPBACK_IFINDEX_ || !peer_from_route(flp->__fl_common.flowic_proto))
		return 0;
	__u8 a[16];
	set_v4(a, flp->daddr);
	route_stash(a);
	return 0;
}

SEC("tp_btf/fib6_table_lookup")
int BPF_PROG(tp_fib6_table_lookup, const struct net *net, const struct fib6_result *res, struct fib6_table *table, const struct flowi6 *flp)
{
	if (flp->__fl_common.flowic_iif != LOOPBACK_IFINDEX_ || !peer_from_route(flp->__fl_common.flowic_proto))
		return 0;
	__u8 a[16];
	__builtin_memcpy(a, flp->daddr.in6_u.u6_addr8, 16);
	route_stash(a);
	return 0;
}

static __always_inline void stash_addr(const __u8 *addr16, __u8 dir)
{
	__u64 id = bpf_get_current_pid_tgid();
	struct peer p = {};
	__builtin_memcpy(p.addr, addr16, 16);
	p.dir = dir;
	if (bpf_map_update_elem(&peers, &id, &p, BPF_ANY))
		count_drop(BWT_DROP_PEER_STASH);
}

/* A datagram copied to a reader of an ICMP, raw or AF_PACKET socket
 * (raw_recvmsg, ping_recvmsg, rawv6_recvmsg, packet_recvmsg all copy with
 * skb_copy_datagram_msg): its IP source is the peer; for a frame an
 * AF_PACKET socket saw going out (PACKET_OUTGOING), its IP destination.
 * Non-IP frames leave no peer. TCP and UDP receives return at the first
 * test (their peer is on the socket or from the sock_addr hooks). */
SEC("tp_btf/skb_copy_datagram_iovec")
int BPF_PROG(tp_skb_copy_datagram_iovec, const struct sk_buff *skb, int len)
{
	struct sock *sk = skb->sk;
	if (!sk)
		return 0;
	__u16 family = sk->__sk_common.skc_family;
	if (family == AF_INET || family == AF_INET6) {
		__u16 proto = sk->sk_protocol;
		if (sk->sk_type != SOCK_RAW && proto != IPPROTO_ICMP_ && proto != IPPROTO_ICMPV6_)
			return 0;
	} else if (family != AF_PACKET) {
		return 0;
	}
	unsigned char *nh = skb->head + skb->network_header;
	int outgoing = family == AF_PACKET && skb->pkt_type == PACKET_OUTGOING_;
	__u8 a[16] = {};
	if (skb->protocol == bpf_htons(ETH_P_IP_)) {
		__u32 v4 = 0;
		if (bpf_probe_read_kernel(&v4, 4, nh + (outgoing ? 16 : 12)))
			return 0;
		set_v4(a, v4);
	} else if (skb->protocol == bpf_htons(ETH_P_IPV6_)) {
		if (bpf_probe_read_kernel(a, 16, nh + (outgoing ? 24 : 8)))
			return 0;
	} else {
		return 0;
	}
	stash_addr(a, BWT_DIR_RX);
	return 0;
}
/* ---- DNS answers delivered to local sockets (remote names) ---- */
#include "dns.bpf.h"

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
