// SPDX-License-Identifier: GPL-2.0
/*
 * The overhead floor for `make bench`: the two tracepoints bwtracker's
 * tracepoint backend counts on, each adding the length into a per-CPU
 * array and nothing else. What a hook itself costs on this kernel; what
 * bwtracker costs above it is its own work. Loaded by internal/bpf/floor.
 */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>

char LICENSE[] SEC("license") = "GPL";

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 2);
	__type(key, __u32);
	__type(value, __u64);
} floor_bytes SEC(".maps");

static __always_inline void add(__u32 slot, int ret)
{
	__u64 *v = bpf_map_lookup_elem(&floor_bytes, &slot);
	if (v && ret > 0)
		*v += ret;
}

SEC("tp_btf/sock_send_length")
int BPF_PROG(floor_send, struct sock *sk, int ret, int flags)
{
	add(0, ret);
	return 0;
}

SEC("tp_btf/sock_recv_length")
int BPF_PROG(floor_recv, struct sock *sk, int ret, int flags)
{
	add(1, ret);
	return 0;
}
