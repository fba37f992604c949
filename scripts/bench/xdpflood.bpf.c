// SPDX-License-Identifier: GPL-2.0
/*
 * xdpflood's packet program: run by BPF_PROG_TEST_RUN in live-frame mode
 * (BPF_F_TEST_XDP_LIVE_FRAMES) on a template TCP SYN frame, it gives each
 * frame a new source port and sequence number (and, with rand_mask, a new
 * source address), mends the IPv4 and TCP checksums incrementally and
 * redirects the frame out of ifindex_out.  On a veth, the frame reaches the
 * peer as an xdp_frame, the way a NIC's frames reach XDP: no skb exists
 * until something lets the frame pass.
 *
 * The page pool of live-frame mode fills each page from the template once
 * and then reuses it, so the program edits whatever the frame holds now and
 * mends the checksums from those bytes.
 */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

char LICENSE[] SEC("license") = "GPL";

const volatile __u32 ifindex_out;
const volatile __u32 rand_mask; /* host order: source bits drawn at random */

__u64 frames; /* frames the program handed on */

/* one's-complement checksum of 16-bit word old replaced by new (RFC 1624) */
static __always_inline __u16 csum_replace(__u16 sum, __u16 old, __u16 new)
{
	__u32 s = (__u16)~sum + (__u32)(__u16)~old + new;

	s = (s & 0xffff) + (s >> 16);
	s = (s & 0xffff) + (s >> 16);
	return ~s;
}

SEC("xdp")
int xdpflood(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data, *data_end = (void *)(long)ctx->data_end;
	struct ethhdr *eth = data;
	struct iphdr *ip = (void *)(eth + 1);
	struct tcphdr *th = (void *)(ip + 1);
	__u32 r = bpf_get_prandom_u32();
	__u16 old, new;

	if ((void *)(th + 1) > data_end)
		return XDP_ABORTED;
	old = th->source;
	new = (__u16)r | 1024;
	th->source = new;
	th->check = csum_replace(th->check, old, new);
	old = (__u16)th->seq;
	new = (__u16)(r >> 16);
	*(__u16 *)&th->seq = new;
	th->check = csum_replace(th->check, old, new);
	if (rand_mask) {
		__u32 oa = ip->saddr, na;

		na = bpf_htonl((bpf_ntohl(oa) & ~rand_mask) | (bpf_get_prandom_u32() & rand_mask));
		ip->saddr = na;
		/* the address is in the IP header and in TCP's pseudo-header */
		ip->check = csum_replace(ip->check, (__u16)oa, (__u16)na);
		ip->check = csum_replace(ip->check, (__u16)(oa >> 16), (__u16)(na >> 16));
		th->check = csum_replace(th->check, (__u16)oa, (__u16)na);
		th->check = csum_replace(th->check, (__u16)(oa >> 16), (__u16)(na >> 16));
	}
	__sync_fetch_and_add(&frames, 1);
	return bpf_redirect(ifindex_out, 0);
}

/* For make bench's receiving side: a program that does nothing, whose
 * bpf_stats figure is the statistics' own cost per run. */
SEC("xdp")
int bench_xdp_pass(struct xdp_md *ctx __attribute__((unused)))
{
	return XDP_PASS;
}
