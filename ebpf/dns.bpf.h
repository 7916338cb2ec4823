/* SPDX-License-Identifier: GPL-2.0 */
/*
 * DNS answer capture: names for remote addresses, as the processes
 * themselves resolved them (internal/dnsnames parses them).
 *
 * cg_dns_ingress is a cgroup_skb/ingress program attached at the cgroup v2
 * root: it runs for every packet delivered to a local socket of any cgroup,
 * in every network namespace (the systemd-resolved stub on 127.0.0.53, a
 * container's own resolver, a test's responder in a netns). Packets from
 * UDP or TCP source port 53 get their first BWT_DNS_CAP payload bytes and
 * the receiving socket's network namespace inode copied into the dns_events
 * ring buffer; everything else costs the header check. It always allows the
 * packet (returns 1) and never changes it.
 *
 * The netns comes from the kernel's sk_buff through bpf_cast_to_kern_ctx
 * (a kfunc since v6.2, commit fd264ca02094); without it the inode is 0 and
 * Go keeps the names in the "unknown namespace" scope.
 *
 * Included from bwtracker.bpf.c (vmlinux.h and the libbpf headers first).
 * The loader drops this program when it does not load or attach: byte
 * counting never depends on it.
 */
#ifndef BWTRACKER_DNS_BPF_H
#define BWTRACKER_DNS_BPF_H

#include "dns.h"

_Static_assert(sizeof(struct dns_event) == 16 + BWT_DNS_CAP, "dns_event layout: keep internal/bpf/abi/dns.go in step");

#define BWT_ETH_P_IP 0x0800
#define BWT_ETH_P_IPV6 0x86DD
#define BWT_DNS_PORT 53

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 512 * 1024);
} dns_events SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, BWT_DNS_STAT_MAX);
	__type(key, __u32);
	__type(value, __u64);
} dns_stats SEC(".maps");

extern void *bpf_cast_to_kern_ctx(void *obj) __ksym __weak;

static __always_inline void dns_count(__u32 idx)
{
	__u64 *v = bpf_map_lookup_elem(&dns_stats, &idx);
	if (v)
		__sync_fetch_and_add(v, 1);
}

/* Network namespace inode of the socket the packet is delivered to. */
static __always_inline __u32 dns_netns(struct __sk_buff *skb)
{
	if (!bpf_ksym_exists(bpf_cast_to_kern_ctx))
		return 0;
	struct sk_buff *kskb = bpf_cast_to_kern_ctx(skb);
	struct sock *sk = kskb->sk;
	if (!sk)
		return 0;
	struct net *net = sk->__sk_common.skc_net.net;
	if (!net)
		return 0;
	return net->ns.inum;
}

SEC("cgroup_skb/ingress")
int cg_dns_ingress(struct __sk_buff *skb)
{
	/* skb data starts at the network header here. Headers are read in
	 * place (direct packet access) when they are in the linear part, with
	 * bpf_skb_load_bytes otherwise: this runs for every packet received. */
	void *data = (void *)(long)skb->data;
	void *end = (void *)(long)skb->data_end;
	__u32 l4off;
	__u8 l4proto;
	if (skb->protocol == bpf_htons(BWT_ETH_P_IP)) {
		__u8 hb[20];
		__u8 *ip = data;
		if (data + 20 > end) {
			if (bpf_skb_load_bytes(skb, 0, hb, sizeof(hb)))
				return 1;
			ip = hb;
		}
		/* A later fragment carries no transport header. */
		if (((ip[6] & 0x1f) | ip[7]) != 0)
			return 1;
		l4proto = ip[9];
		l4off = (ip[0] & 0x0f) * 4;
	} else if (skb->protocol == bpf_htons(BWT_ETH_P_IPV6)) {
		/* Extension headers before UDP/TCP are rare on answers: skipped. */
		if (data + 40 <= end) {
			l4proto = ((__u8 *)data)[6];
		} else if (bpf_skb_load_bytes(skb, 6, &l4proto, 1)) {
			return 1;
		}
		l4off = 40;
	} else {
		return 1;
	}
	if (l4proto != IPPROTO_UDP_ && l4proto != IPPROTO_TCP_)
		return 1;
	__u8 lb[13];
	__u8 *l4 = data + l4off;
	if ((void *)(l4 + 13) > end) {
		if (bpf_skb_load_bytes(skb, l4off, lb, l4proto == IPPROTO_UDP_ ? 8 : 13))
			return 1;
		l4 = lb;
	}
	if (l4[0] != 0 || l4[1] != BWT_DNS_PORT)
		return 1;
	__u32 payload = l4off + (l4proto == IPPROTO_UDP_ ? 8 : (l4[12] >> 4) * 4);
	__u32 n = skb->len;
	if (n <= payload + 12)
		return 1; /* no room for a DNS header (e.g. a bare TCP ACK) */
	n -= payload;
	struct dns_event *e = bpf_ringbuf_reserve(&dns_events, sizeof(*e), 0);
	if (!e) {
		dns_count(BWT_DNS_STAT_RB_FULL);
		return 1;
	}
	__u64 cp = n > BWT_DNS_CAP ? BWT_DNS_CAP : n;
	/* Keep clang from passing the unclamped copy of n to the helper: the
	 * verifier must see the bound on the register it gets. */
	asm volatile("" : "+r"(cp));
	if (cp < 1 || cp > BWT_DNS_CAP || bpf_skb_load_bytes(skb, payload, e->data, cp)) {
		bpf_ringbuf_discard(e, 0);
		return 1;
	}
	e->netns = dns_netns(skb);
	e->len = cp;
	e->orig_len = n > 0xffff ? 0xffff : n;
	e->transport = l4proto == IPPROTO_TCP_ ? BWT_DNS_TCP : BWT_DNS_UDP;
	__builtin_memset(e->pad, 0, sizeof(e->pad));
	bpf_ringbuf_submit(e, 0);
	dns_count(BWT_DNS_STAT_EVENTS);
	return 1;
}

#endif
