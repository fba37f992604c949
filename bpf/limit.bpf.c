// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * bunscope's limiter: per-client rate limits, allow/deny lists and bans on
 * TCP traffic to the target's listening ports, in XDP (or tc ingress where
 * XDP cannot attach).  Everything else passes untouched.
 *
 * Order of decisions for a packet to a limited port:
 *   allow list -> pass;  deny list -> drop;  ban -> drop;
 *   SYN: the breaker (load shedding), then the new-connection rate of its
 *   source;  every packet: packet rate.
 *
 * Bans are made by the observer (bpf/bunscope.bpf.c) from a client's HTTP
 * request rate, into lim_bans, or by `bunscope limit ban`.  The breaker
 * reads the targets' pending requests from the observer's stats map
 * (lim_shed_src) on SYNs, at most once a millisecond.
 *
 * The maps are pinned by name under /sys/fs/bpf/bunscope, so enforcement
 * and counters outlive the daemon and a restarted daemon picks them up.
 */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>
#include "bunscope.h"
#include "limit.h"

char LICENSE[] SEC("license") = "Dual BSD/GPL";

#define ETH_P_IP     0x0800
#define ETH_P_IPV6   0x86DD
#define ETH_P_8021Q  0x8100
#define ETH_P_8021AD 0x88A8
#define IPPROTO_TCP_ 6
#define TC_ACT_OK    0
#define TC_ACT_SHOT  2

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct bs_lim_cfg);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} lim_cfg SEC(".maps");

/* destination ports limited (host byte order), a bit each: an inlined
 * array lookup and one cache line a packet, where a hash map costs a call,
 * a jhash and its bucket's lines */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, BS_LIM_PORT_WORDS);
	__type(key, __u32);
	__type(value, __u64);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} lim_ports SEC(".maps");

/* per-source state; the loader sizes it (--limit-clients / 2 buckets) */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 32768);
	__type(key, __u32);
	__type(value, struct bs_lim_bucket);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} lim_src SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct bs_lim_stats);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} lim_stats SEC(".maps");

#define LPM_MAP(name, keytype)                        \
	struct {                                      \
		__uint(type, BPF_MAP_TYPE_LPM_TRIE);  \
		__uint(max_entries, 16384);           \
		__uint(map_flags, BPF_F_NO_PREALLOC); \
		__type(key, keytype);                 \
		__type(value, __u32);                 \
		__uint(pinning, LIBBPF_PIN_BY_NAME);  \
	} name SEC(".maps")

LPM_MAP(lim_allow4, struct bs_lim_lpm4);
LPM_MAP(lim_deny4, struct bs_lim_lpm4);
LPM_MAP(lim_allow6, struct bs_lim_lpm6);
LPM_MAP(lim_deny6, struct bs_lim_lpm6);

/* banned sources -> until when (bpf_ktime_get_ns) */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, BS_LIM_MAX_BANS);
	__type(key, struct bs_lim_key);
	__type(value, __u64);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} lim_bans SEC(".maps");

/* the breaker: the daemon's part, the program's part, and the observer's
 * stats map (the daemon puts it in; a dead daemon's stays, frozen, and the
 * stale heartbeat makes the breaker let everything through) */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct bs_lim_shed_ctl);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} lim_shed_ctl SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct bs_lim_shed);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} lim_shed SEC(".maps");

struct stats_map {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, BS_STATS_SLOTS);
	__uint(key_size, sizeof(__u32));
	__uint(value_size, sizeof(struct bs_server_stats));
};

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY_OF_MAPS);
	__uint(max_entries, 1);
	__type(key, __u32);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
	__array(values, struct stats_map);
} lim_shed_src SEC(".maps");

/* where the limiter is attached (for `bunscope limit status|detach`) */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, BS_LIM_MAX_IFACES);
	__type(key, __u32);
	__type(value, struct bs_lim_iface);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} lim_ifaces SEC(".maps");

/*
 * Load the line at p now, for a use further on: the source table's cache
 * miss, issued before the deny/allow lookups and the clock, overlaps them
 * (with the precise clock, whose rdtsc waits for the loads before it, at
 * least the clock's own misses) instead of following them.
 */
static __always_inline void prefetch(const void *p)
{
	asm volatile("" ::"r"(*(const volatile __u32 *)p));
}

static __always_inline void count(struct bs_lim_stats *st, __u32 c)
{
	st->c[c] += 1;
}

static __always_inline int port_limited(__u16 port)
{
	__u32 w = port / 64;
	__u64 *bits = bpf_map_lookup_elem(&lim_ports, &w);

	return bits && (*bits >> (port % 64) & 1);
}

/* What the packet is, as far as the limiter cares. */
struct pkt {
	struct bs_lim_key key;
	struct bs_lim_lpm6 lpm6; /* the source for the IPv6 tries */
	__u32 saddr4;		 /* network order, IPv4 only */
	__u16 dport;		 /* host order */
	__u8 v6;
	__u8 syn; /* SYN without ACK: a new connection */
};

/* 1 when data holds TCP to a port (filled in p), 0 for anything else. */
static __always_inline int parse(void *data, void *data_end, struct pkt *p,
				 const struct bs_lim_cfg *cfg)
{
	struct ethhdr *eth = data;
	struct tcphdr *th;
	__u16 proto;
	void *l3;

	if ((void *)(eth + 1) > data_end)
		return 0;
	proto = eth->h_proto;
	l3 = eth + 1;
	if (proto == bpf_htons(ETH_P_8021Q) || proto == bpf_htons(ETH_P_8021AD)) {
		struct vlan_hdr *vh = l3;

		if ((void *)(vh + 1) > data_end)
			return 0;
		proto = vh->h_vlan_encapsulated_proto;
		l3 = vh + 1;
	}
	if (proto == bpf_htons(ETH_P_IP)) {
		struct iphdr *ip = l3;
		__u32 ihl;

		if ((void *)(ip + 1) > data_end || ip->protocol != IPPROTO_TCP_)
			return 0;
		/* a later fragment has no TCP header: the stack drops it
		 * when its first fragment was dropped here */
		if (ip->frag_off & bpf_htons(0x1fff))
			return 0;
		ihl = ip->ihl * 4;
		if (ihl < sizeof(*ip))
			return 0;
		th = (void *)ip + ihl;
		p->saddr4 = ip->saddr;
		lim_key4(&p->key, ip->saddr);
		p->v6 = 0;
	} else if (proto == bpf_htons(ETH_P_IPV6)) {
		struct ipv6hdr *ip6 = l3;

		/* extension headers before TCP are not followed: such
		 * packets pass (Bun's clients do not send them) */
		if ((void *)(ip6 + 1) > data_end || ip6->nexthdr != IPPROTO_TCP_)
			return 0;
		th = (void *)(ip6 + 1);
		__builtin_memcpy(p->lpm6.addr, &ip6->saddr, 16);
		lim_key6(&p->key, p->lpm6.addr, cfg->v6_prefix);
		p->v6 = 1;
	} else {
		return 0;
	}
	if ((void *)(th + 1) > data_end)
		return 0;
	p->dport = bpf_ntohs(th->dest);
	p->syn = th->syn && !th->ack;
	return 1;
}

struct sum_ctx {
	void *inner;
	const struct bs_lim_shed_ctl *ctl;
	__u32 ncpus;
	__s64 sum;
};

static long sum_one(__u32 i, void *data)
{
	struct sum_ctx *x = data;
	struct bs_server_stats *st;
	__u64 slot = i / x->ncpus, cpu = i % x->ncpus;
	__u32 idx;

	if (slot >= BS_SHED_IDX)
		return 1;
	/* the verifier loses the upper half's bound of a 32-bit division:
	 * a 64-bit mask it sees (BS_SHED_IDX is a power of two) */
	asm volatile("%[s] &= %[m]" : [s] "+r"(slot) : [m] "i"(BS_SHED_IDX - 1));
	idx = x->ctl->idx[slot];
	st = bpf_map_lookup_percpu_elem(x->inner, &idx, (__u32)cpu);
	if (st)
		x->sum += (__s64)(st->started - st->completed - st->aborted - st->unstarted);
	return 0;
}

/* The targets' pending requests: started - completed - aborted - unstarted,
 * over the stats entries and CPUs the daemon named. */
static __always_inline __s64 sum_pending(const struct bs_lim_shed_ctl *ctl)
{
	struct sum_ctx x = { .ctl = ctl, .ncpus = ctl->ncpus };
	__u32 zero = 0, n;

	x.inner = bpf_map_lookup_elem(&lim_shed_src, &zero);
	if (!x.inner || !x.ncpus || x.ncpus > BS_SHED_MAX_CPUS || ctl->nidx > BS_SHED_IDX)
		return 0;
	n = ctl->nidx * x.ncpus;
	bpf_loop(n, sum_one, &x, 0);
	return x.sum;
}

static __always_inline void shed_to(struct bs_lim_shed *b, __u32 state, __u64 now,
				    struct bs_lim_stats *st)
{
	b->state = state;
	b->since_ns = now;
	if (state == BS_SHED_OPEN)
		count(st, BS_LIM_SHED_OPENS);
}

/*
 * The breaker, on a SYN: 1 to let the connection through, 0 to shed it.
 * Closed -> open when pending > shed_pending or the daemon's thresholds
 * trip; open -> half-open after shed_open_ns; half-open lets shed_probe_pct
 * per cent through, reopens on a trip, closes after shed_probe_ns with
 * pending at or below shed_low (the hysteresis).  Unlocked: two CPUs may
 * both move it, to the same state.
 */
static __always_inline int shed_pass(const struct bs_lim_cfg *cfg, __u64 now,
				     struct bs_lim_stats *st)
{
	struct bs_lim_shed_ctl *ctl;
	struct bs_lim_shed *b;
	__u32 zero = 0;
	int trip, healthy;

	ctl = bpf_map_lookup_elem(&lim_shed_ctl, &zero);
	b = bpf_map_lookup_elem(&lim_shed, &zero);
	if (!ctl || !b)
		return 1;
	if (now > ctl->heartbeat_ns && now - ctl->heartbeat_ns > BS_SHED_STALE_NS) {
		/* no daemon: fail open */
		if (b->state != BS_SHED_CLOSED)
			shed_to(b, BS_SHED_CLOSED, now, st);
		return 1;
	}
	if (cfg->shed_pending && now - b->pending_ns > BS_SHED_PENDING_NS) {
		b->pending = sum_pending(ctl);
		b->pending_ns = now;
	}
	trip = ctl->ext_trip || (cfg->shed_pending && b->pending > (__s64)cfg->shed_pending);
	healthy = !ctl->ext_trip && (!cfg->shed_pending || b->pending <= (__s64)cfg->shed_low);
	if (b->state == BS_SHED_CLOSED) {
		if (!trip)
			return 1;
		shed_to(b, BS_SHED_OPEN, now, st);
		return 0;
	}
	if (b->state == BS_SHED_OPEN) {
		if (now - b->since_ns < cfg->shed_open_ns)
			return 0;
		shed_to(b, BS_SHED_HALF_OPEN, now, st);
	}
	if (trip) {
		shed_to(b, BS_SHED_OPEN, now, st);
		return 0;
	}
	if (healthy && now - b->since_ns >= cfg->shed_probe_ns) {
		shed_to(b, BS_SHED_CLOSED, now, st);
		return 1;
	}
	return bpf_get_prandom_u32() % 100 < cfg->shed_probe_pct;
}

/* 1: pass, 0: drop. */
static __always_inline int decide(void *data, void *data_end)
{
	struct bs_lim_bucket *b;
	struct bs_lim_stats *st;
	struct bs_lim_cfg *cfg;
	struct bs_lim_src *s;
	struct pkt p = {};
	__u32 zero = 0, idx, tick;
	__u64 now, h, *until;
	int fresh;

	st = bpf_map_lookup_elem(&lim_stats, &zero);
	if (!st)
		return 1;
	cfg = bpf_map_lookup_elem(&lim_cfg, &zero);
	if (!cfg || !cfg->enabled || !parse(data, data_end, &p, cfg) || !port_limited(p.dport)) {
		count(st, BS_LIM_OTHER);
		return 1;
	}
	h = lim_hash(&p.key, cfg->seed);
	idx = (__u32)h & cfg->slots_mask;
	b = bpf_map_lookup_elem(&lim_src, &idx);
	if (b)
		prefetch(b);

	if (p.v6) {
		p.lpm6.prefixlen = 128;
		if ((cfg->lists & BS_LIM_LIST_ALLOW6) &&
		    bpf_map_lookup_elem(&lim_allow6, &p.lpm6)) {
			count(st, BS_LIM_PASS_ALLOW);
			return 1;
		}
		if ((cfg->lists & BS_LIM_LIST_DENY6) && bpf_map_lookup_elem(&lim_deny6, &p.lpm6)) {
			count(st, BS_LIM_DROP_DENY);
			return 0;
		}
	} else {
		struct bs_lim_lpm4 k4 = { .prefixlen = 32 };

		__builtin_memcpy(k4.addr, &p.saddr4, 4);
		if ((cfg->lists & BS_LIM_LIST_ALLOW4) && bpf_map_lookup_elem(&lim_allow4, &k4)) {
			count(st, BS_LIM_PASS_ALLOW);
			return 1;
		}
		if ((cfg->lists & BS_LIM_LIST_DENY4) && bpf_map_lookup_elem(&lim_deny4, &k4)) {
			count(st, BS_LIM_DROP_DENY);
			return 0;
		}
	}

	now = cfg->coarse ? bpf_ktime_get_coarse_ns() : bpf_ktime_get_ns();
	until = cfg->lists & BS_LIM_LIST_BANS ? bpf_map_lookup_elem(&lim_bans, &p.key) : NULL;
	if (until && *until > now) {
		count(st, BS_LIM_DROP_BAN);
		return 0;
	}
	if (p.syn && cfg->shed && !shed_pass(cfg, now, st)) {
		count(st, BS_LIM_DROP_SHED);
		return 0;
	}

	if (!cfg->conn.interval && !cfg->pkt.interval) {
		count(st, BS_LIM_PASS);
		return 1;
	}
	if (!b) {
		count(st, BS_LIM_PASS);
		return 1;
	}
	tick = lim_tick(now);
	s = lim_slot(b, lim_fp(h), tick, lim_tick(cfg->idle_ns), &fresh);
	if (fresh)
		count(st, fresh == 2 ? BS_LIM_SRC_EVICT : BS_LIM_SRC_NEW);
	s->last = tick;
	if (p.syn && !lim_allow(&s->conn_a, &s->conn_w, &cfg->conn, cfg->algo, now)) {
		count(st, BS_LIM_DROP_CONN);
		return 0;
	}
	if (!lim_allow(&s->pkt_a, &s->pkt_w, &cfg->pkt, cfg->algo, now)) {
		count(st, BS_LIM_DROP_PKT);
		return 0;
	}
	count(st, BS_LIM_PASS);
	return 1;
}

SEC("xdp")
int bs_xdp_limit(struct xdp_md *ctx)
{
	return decide((void *)(long)ctx->data, (void *)(long)ctx->data_end) ? XDP_PASS : XDP_DROP;
}

SEC("tc")
int bs_tc_limit(struct __sk_buff *skb)
{
	void *data, *data_end;

	/* the headers the decision reads, in the linear part */
	if (skb->data_end - skb->data < 14 + 40 + 20)
		bpf_skb_pull_data(skb, skb->len < 14 + 60 + 20 ? skb->len : 14 + 60 + 20);
	/* make the compiler forget &skb->data: the verifier refuses loads
	 * through a context pointer it has moved */
	asm volatile("" : "+r"(skb));
	data = (void *)(long)skb->data;
	data_end = (void *)(long)skb->data_end;
	return decide(data, data_end) ? TC_ACT_OK : TC_ACT_SHOT;
}
