/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * bunscope's limiter: types and the rate arithmetic shared by the XDP/tc
 * program (bpf/limit.bpf.c) and the daemon, unit-tested in userspace.
 *
 * Per-client state lives in a fixed array of 2-way buckets indexed by a
 * hash of the source (struct bs_lim_src): memory is bounded whatever the
 * source addresses, and a new source costs a store, not a hash-map insert.
 * Rates use GCRA (the token bucket as one "theoretical arrival time") or a
 * two-window sliding counter.  Updates from several CPUs are not locked:
 * two packets of one source racing on two CPUs may both pass (as Cilium's
 * limiter); a source's packets usually arrive on one queue.
 *
 * Include after vmlinux.h (BPF) or <linux/types.h> (userspace).
 */
#ifndef BUNSCOPE_LIMIT_H
#define BUNSCOPE_LIMIT_H

#ifdef __bpf__
#define LIM_INLINE static __always_inline
#else
#define LIM_INLINE static inline
#endif

#define BS_LIM_PIN_DIR		"/sys/fs/bpf/bunscope"
#define BS_LIM_MAX_PORTS	64
#define BS_LIM_MAX_IFACES	16
#define BS_LIM_NSEC		1000000000ULL

enum bs_lim_algo {
	BS_LIM_TOKEN_BUCKET = 0,	/* GCRA: RATE per second, bursts of BURST */
	BS_LIM_SLIDING_WINDOW,		/* at most BURST in any BURST/RATE seconds */
};

/* One limit (connections or packets per source); interval 0: off. */
struct bs_lim_rate {
	__u64 interval;		/* ns between events at RATE: 1e9 / RATE */
	__u64 tolerance;	/* GCRA: interval * (BURST - 1) */
	__u64 window;		/* sliding window: interval * BURST */
	__u32 burst;
	__u32 rate;		/* per second, for display */
};

/* The limiter's configuration (lim_cfg, one element, written by the daemon). */
struct bs_lim_cfg {
	struct bs_lim_rate conn;	/* new connections (SYN) per source */
	struct bs_lim_rate pkt;		/* packets per source */
	__u64 idle_ns;		/* a source slot unused this long is free */
	__u64 seed;		/* of lim_bucket(), drawn by the daemon */
	__u32 algo;		/* enum bs_lim_algo */
	__u32 slots_mask;	/* lim_src has slots_mask + 1 buckets of 2 */
	__u32 v6_prefix;	/* IPv6 sources are grouped by this prefix (default 64) */
	__u32 enabled;		/* 0: pass everything (configuration not written yet) */
	__u32 lists;		/* BS_LIM_LIST_* of the tries that have entries */
	/* load shedding (the breaker): 0 shed_pending and no thresholds: off */
	__u32 shed;		/* 1: the breaker is on (pending and/or daemon thresholds) */
	__u32 shed_pending;	/* open above this many pending requests (0: not used) */
	__u32 shed_low;		/* ... and close at or below this many (hysteresis) */
	__u32 shed_probe_pct;	/* half-open: per cent of new connections let through */
	__u32 pad;
	__u64 shed_open_ns;	/* open this long before half-open */
	__u64 shed_probe_ns;	/* half-open this long, healthy, before closing */
};

#define BS_LIM_LIST_ALLOW4	0x1
#define BS_LIM_LIST_DENY4	0x2
#define BS_LIM_LIST_ALLOW6	0x4
#define BS_LIM_LIST_DENY6	0x8
#define BS_LIM_LIST_BANS	0x10	/* lim_bans may hold entries: look them up */

/* A source: IPv4 as ::ffff:a.b.c.d, IPv6 masked to the configured prefix. */
struct bs_lim_key {
	__u64 hi;
	__u64 lo;
};

/* State of one limit of one source: GCRA uses a; the window a, n, prev. */
struct bs_lim_state {
	__u64 a;		/* GCRA: theoretical arrival time; window: its start */
	__u32 n;		/* window: events in the current window */
	__u32 prev;		/* window: events in the previous one */
};

struct bs_lim_src {
	struct bs_lim_key key;
	__u64 last_ns;		/* last packet; 0: slot free */
	struct bs_lim_state conn;
	struct bs_lim_state pkt;
};

/* Two slots a bucket: a new source replaces the one used least recently. */
struct bs_lim_bucket {
	struct bs_lim_src s[2];
};

/* lim_stats counters (per CPU). */
enum bs_lim_counter {
	BS_LIM_PASS = 0,	/* packets to limited ports passed */
	BS_LIM_PASS_ALLOW,	/* passed because the source is allow-listed */
	BS_LIM_DROP_DENY,	/* dropped: deny list */
	BS_LIM_DROP_BAN,	/* dropped: banned source */
	BS_LIM_DROP_CONN,	/* dropped: new-connection rate */
	BS_LIM_DROP_PKT,	/* dropped: packet rate */
	BS_LIM_DROP_SHED,	/* dropped: load shedding (breaker open) */
	BS_LIM_OTHER,		/* not TCP to a limited port: passed untouched */
	BS_LIM_SRC_NEW,		/* a source took a free slot */
	BS_LIM_SRC_EVICT,	/* a source took a slot in use by another */
	BS_LIM_BANS_MADE,	/* bans made by the observer (--limit-req) */
	BS_LIM_SHED_OPENS,	/* the breaker went to open */
	BS_LIM_NCOUNTERS,
};

/* Interfaces the limiter is attached to (lim_ifaces, for status/detach). */
enum bs_lim_mode {
	BS_LIM_MODE_NONE = 0,
	BS_LIM_MODE_XDP_NATIVE,
	BS_LIM_MODE_XDP_GENERIC,
	BS_LIM_MODE_TC,
};

struct bs_lim_iface {
	__u32 ifindex;
	__u32 mode;		/* enum bs_lim_mode; NONE: entry unused */
	char name[16];
};

/* Bans (lim_bans): source -> until when (bpf_ktime_get_ns), made by the
 * observer from a client's HTTP request rate or by `bunscope limit ban`. */
#define BS_LIM_MAX_BANS		65536

/*
 * The breaker.  The daemon writes struct bs_lim_shed_ctl (lim_shed_ctl)
 * every refresh; the program keeps struct bs_lim_shed (lim_shed) and reads
 * the pending requests from the observer's stats map (lim_shed_src, a map
 * of maps the daemon fills) itself, with no daemon round trip.
 */
#define BS_SHED_IDX		16	/* observer stats entries summed (a power of two) */
#define BS_SHED_MAX_CPUS	256
#define BS_SHED_STALE_NS	(3 * BS_LIM_NSEC)	/* no heartbeat: fail open */
#define BS_SHED_PENDING_NS	1000000ULL	/* pending summed at most once a ms */

enum bs_shed_state {
	BS_SHED_CLOSED = 0,	/* new connections pass */
	BS_SHED_OPEN,		/* new connections are dropped */
	BS_SHED_HALF_OPEN,	/* a fraction of them pass, to probe */
	BS_SHED_NSTATES,
};

struct bs_lim_shed_ctl {
	__u64 heartbeat_ns;	/* the daemon's last write; stale: the breaker is closed */
	__u32 ext_trip;		/* the daemon's thresholds (p99, 5xx rate) are exceeded */
	__u32 ncpus;		/* possible CPUs, for the per-CPU sums */
	__u32 nidx;		/* entries of idx in use */
	__u32 idx[BS_SHED_IDX];	/* the observer's stats entries of the targets */
	__u32 pad;
};

struct bs_lim_shed {
	__u32 state;		/* enum bs_shed_state */
	__u32 pad;
	__u64 since_ns;		/* when state was entered */
	__u64 pending_ns;	/* when pending was summed */
	__s64 pending;		/* the targets' pending requests then */
};

/* lim_allow4/lim_deny4 and lim_allow6/lim_deny6 keys (LPM tries). */
struct bs_lim_lpm4 {
	__u32 prefixlen;
	__u8 addr[4];
};

struct bs_lim_lpm6 {
	__u32 prefixlen;
	__u8 addr[16];
};

/* ---- arithmetic ----------------------------------------------------------------- */

/* RATE per second with bursts of BURST; returns 0, or -1 for values out of range. */
LIM_INLINE int lim_rate_init(struct bs_lim_rate *r, __u32 rate, __u32 burst)
{
	if (!rate || !burst || rate > BS_LIM_NSEC)
		return -1;
	r->rate = rate;
	r->burst = burst;
	r->interval = BS_LIM_NSEC / rate;
	r->tolerance = r->interval * (burst - 1);
	r->window = r->interval * burst;
	return 0;
}

/* GCRA: may an event at now pass?  Moves the state when it does. */
LIM_INLINE int lim_gcra(struct bs_lim_state *s, const struct bs_lim_rate *r, __u64 now)
{
	__u64 tat = s->a > now ? s->a : now;

	if (tat - now > r->tolerance)
		return 0;
	s->a = tat + r->interval;
	return 1;
}

/*
 * Sliding window: the events of the previous window, weighted by how much
 * of it still overlaps the window ending now, plus the current window's,
 * must stay below burst.
 */
LIM_INLINE int lim_window(struct bs_lim_state *s, const struct bs_lim_rate *r, __u64 now)
{
	__u64 w = r->window, el, est;

	if (!w)
		return 1;
	if (now < s->a)			/* another CPU's clock, a little behind */
		s->a = now;
	el = now - s->a;
	if (el >= 2 * w) {
		s->a = now;
		s->prev = 0;
		s->n = 0;
		el = 0;
	} else if (el >= w) {
		s->a += w;
		s->prev = s->n;
		s->n = 0;
		el -= w;
	}
	est = (__u64)s->prev * (w - el) / w + s->n;
	if (est >= r->burst)
		return 0;
	s->n++;
	return 1;
}

LIM_INLINE int lim_allow(struct bs_lim_state *s, const struct bs_lim_rate *r, __u32 algo,
			 __u64 now)
{
	if (!r->interval)
		return 1;
	return algo == BS_LIM_SLIDING_WINDOW ? lim_window(s, r, now) : lim_gcra(s, r, now);
}

/* The source key of an IPv4 address (network byte order, as in the header). */
LIM_INLINE void lim_key4(struct bs_lim_key *k, __u32 addr_be)
{
	k->hi = 0;
	k->lo = 0x0000ffff00000000ULL | addr_be;
}

/* The source key of an IPv6 address (16 bytes as in the header), prefix 1..128. */
LIM_INLINE void lim_key6(struct bs_lim_key *k, const __u8 *a, __u32 prefix)
{
	__u64 hi = 0, lo = 0;

	for (int i = 0; i < 8; i++) {
		hi = hi << 8 | a[i];
		lo = lo << 8 | a[8 + i];
	}
	if (prefix < 64) {
		hi &= prefix ? ~0ULL << (64 - prefix) : 0;
		lo = 0;
	} else if (prefix < 128) {
		lo &= prefix > 64 ? ~0ULL << (128 - prefix) : 0;
	}
	k->hi = hi;
	k->lo = lo;
}

/*
 * The source key of a connection's peer as the observer has it: an AF_INET
 * address in the first 4 bytes, or an AF_INET6 one, where an IPv4-mapped
 * address (a dual-stack socket's IPv4 client) gets the key of its IPv4
 * packets.
 */
LIM_INLINE void lim_key_peer(struct bs_lim_key *k, int v6, const __u8 *a, __u32 prefix)
{
	if (!v6) {
		__u32 be;

		__builtin_memcpy(&be, a, 4);
		lim_key4(k, be);
		return;
	}
	if (!(a[0] | a[1] | a[2] | a[3] | a[4] | a[5] | a[6] | a[7] | a[8] | a[9]) &&
	    a[10] == 0xff && a[11] == 0xff) {
		__u32 be;

		__builtin_memcpy(&be, a + 12, 4);
		lim_key4(k, be);
		return;
	}
	lim_key6(k, a, prefix);
}

/* Bucket index of a key: a multiply-xorshift mix, good enough against
 * chosen sources once the seed is secret (the daemon draws it at start). */
LIM_INLINE __u32 lim_bucket(const struct bs_lim_key *k, __u64 seed, __u32 mask)
{
	__u64 h = (k->hi ^ seed) * 0x9E3779B97F4A7C15ULL;

	h ^= h >> 29;
	h = (h ^ k->lo) * 0xBF58476D1CE4E5B9ULL;
	h ^= h >> 32;
	return (__u32)h & mask;
}

/*
 * The slot of source k in bucket b at now: the one holding k, else a free
 * or idle one, else the one used least recently (evicted).  *fresh is 1 for
 * a slot just taken (its state reset), 2 when that evicted a live source.
 */
LIM_INLINE struct bs_lim_src *lim_slot(struct bs_lim_bucket *b, const struct bs_lim_key *k,
				       __u64 now, __u64 idle_ns, int *fresh)
{
	struct bs_lim_src *s0 = &b->s[0], *s1 = &b->s[1], *s;

	*fresh = 0;
	if (s0->last_ns && s0->key.hi == k->hi && s0->key.lo == k->lo)
		return s0;
	if (s1->last_ns && s1->key.hi == k->hi && s1->key.lo == k->lo)
		return s1;
	s = s0->last_ns <= s1->last_ns ? s0 : s1;
	*fresh = s->last_ns && now - s->last_ns < idle_ns ? 2 : 1;
	s->key = *k;
	s->conn.a = 0;
	s->conn.n = 0;
	s->conn.prev = 0;
	s->pkt.a = 0;
	s->pkt.n = 0;
	s->pkt.prev = 0;
	s->last_ns = now;
	return s;
}

#endif /* BUNSCOPE_LIMIT_H */
