/* SPDX-License-Identifier: GPL-2.0 OR MIT */
/*
 * Structs and constants of the DNS answer capture (ebpf/dns.bpf.h) shared
 * with Go. The Go mirror is internal/bpf/abi/dns.go: keep the two in step
 * (a test checks the size and a round trip).
 */
#ifndef BWTRACKER_DNS_H
#define BWTRACKER_DNS_H

/* DNS payload bytes copied per packet: a typical answer (a few CNAMEs and
 * addresses) fits; a longer one is parsed as far as it was copied. */
#define BWT_DNS_CAP 1024

/* Transport of the answer: for TCP the payload starts with the 2-byte
 * length of the DNS message (RFC 1035 4.2.2). */
#define BWT_DNS_UDP 0
#define BWT_DNS_TCP 1

/* Indexes of the per-CPU dns_stats counters. */
#define BWT_DNS_STAT_EVENTS 0   /* answers copied to the ring buffer */
#define BWT_DNS_STAT_RB_FULL 1  /* answers lost: ring buffer full */
#define BWT_DNS_STAT_MAX 2

/* One DNS packet from port 53 delivered to a local socket. 1040 bytes. */
struct dns_event {
	__u32 netns;    /* network namespace inode of the receiving socket; 0 = unknown */
	__u16 len;      /* bytes of data[] filled */
	__u16 orig_len; /* transport payload bytes in the packet (may exceed len) */
	__u8 transport; /* BWT_DNS_UDP or BWT_DNS_TCP */
	__u8 pad[7];
	__u8 data[BWT_DNS_CAP];
};

#endif
