/* SPDX-License-Identifier: GPL-2.0 OR MIT */
/*
 * Structs and constants shared by the BPF programs and Go.
 * The Go mirror is internal/bpf/types.go: keep the two in step (a test
 * checks sizes and a round trip).
 */
#ifndef BWTRACKER_H
#define BWTRACKER_H

#define BWT_COMM_LEN 16
#define BWT_PATH_LEN 256

/* Direction of a send/recv, from the local process's point of view. */
#define BWT_DIR_TX 0
#define BWT_DIR_RX 1

/* Protocol of the socket. */
#define BWT_PROTO_OTHER 0
#define BWT_PROTO_TCP 1
#define BWT_PROTO_UDP 2
#define BWT_PROTO_ICMP 3
#define BWT_PROTO_RAW 4
#define BWT_PROTO_PACKET 5
#define BWT_PROTO_MPTCP 6

/*
 * Event counters, indexes of the per-CPU drops array. Two kinds:
 * detail lost (the bytes are still counted, coarser) and bytes lost.
 * A flow entry that cannot be created in the flows map is added to the
 * process's entry in the overflow map (remote address and port zeroed);
 * when that fails too, to the per-CPU unattributed slot of its direction.
 */
#define BWT_DROP_FLOWS_FULL 0    /* detail: flows map full (E2BIG/ENOMEM), bytes in the overflow map */
#define BWT_DROP_FLOWS_UPDATE 1  /* detail: other flows map update error, bytes in the overflow map */
#define BWT_DROP_NO_ACTIVE 2     /* BYTES LOST: no active flows map (never expected) */
#define BWT_DROP_PEER_STASH 3    /* detail: could not remember an unconnected peer */
#define BWT_DROP_EXEC_EVENT 4    /* detail: exec event ring buffer full (no exe path) */
#define BWT_DROP_OVERFLOW_FULL 5 /* detail: overflow map full too, bytes in the unattributed slot */
#define BWT_DROP_UNATTRIBUTED 6  /* BYTES LOST: no unattributed slot (never expected) */
#define BWT_DROP_MAX 7

/* Slots of the unattributed array: generation * 2 + direction. */
#define BWT_UNATTR_SLOTS 4

/*
 * Key of the flows maps: one entry per process, comm, cgroup, remote
 * endpoint, protocol and direction. 64 bytes, no implicit padding.
 */
struct flow_key {
	__u32 tgid;
	__u32 uid;
	__u64 start_ns;   /* group leader's start_boottime (ns since boot) */
	__u64 cgroup_id;  /* cgroup v2 id of the task */
	__u8 raddr[16];   /* IPv6, or IPv4 as ::ffff:a.b.c.d; zero = unknown */
	__u16 rport;      /* host byte order; 0 = unknown */
	__u8 proto;       /* BWT_PROTO_* */
	__u8 dir;         /* BWT_DIR_* */
	__u32 netns;      /* network namespace inode of the socket */
	char comm[BWT_COMM_LEN];
};

/* Value of the flows maps, per CPU. 24 bytes. */
struct flow_val {
	__u64 bytes; /* payload bytes the send/recv returned */
	__u64 calls; /* number of send/recv calls */
	__u64 first_ns; /* bpf_ktime_get_boot_ns() of the first call this interval */
};

/*
 * One cached flow per CPU and direction for TCP (the busiest case): as long
 * as the same thread keeps using the same socket, bytes are added here
 * without hashing a key. A miss moves the entry into the flows map. The
 * cache is swapped and drained together with the flows maps. 136 bytes.
 */
struct flow_cache {
	struct flow_key key;
	__u64 sk;       /* socket identity (kernel address) */
	__u64 pid_tgid; /* thread that last used it */
	__u64 bytes;
	__u64 calls;
	__u64 busy;     /* taken with an atomic exchange (64-bit: BPF ISA v1); preempted users skip the cache */
	__u64 valid;
	/* The identity the key was made from, as kernel addresses: the
	 * thread's group leader, cred and css_set (see cache_add). */
	__u64 leader;
	__u64 cred;
	__u64 cgroups;
};

/* Exec event: names short-lived processes by executable path. */
struct exec_event {
	__u32 tgid;
	__u32 uid;
	__u64 start_ns;
	char comm[BWT_COMM_LEN];
	char filename[BWT_PATH_LEN];
};

/* Peer remembered between a cgroup sock_addr hook and the send/recv hook. */
struct peer {
	__u8 addr[16];
	__u16 port; /* host byte order */
	__u8 dir;
	__u8 pad[5];
};

#endif
