/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * bunscope's limiter: types and the rate arithmetic shared by the XDP/tc
 * program (bpf/limit.bpf.c) and the daemon, unit-tested in userspace.
 *
 * Per-client state lives in a fixed array of 2-way buckets indexed by a
 * hash of the source (struct bs_lim_src): memory is bounded whatever the
 * source addresses, and a new source costs a store, not a hash-map insert.
 * A bucket is one cache line: a random-source flood misses once a packet.
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

#define BS_LIM_PIN_DIR	  "/sys/fs/bpf/bunscope"
#define BS_LIM_MAX_PORTS  64
/* lim_ports: a bit a port, bit port % 64 of word port / 64 */
#define BS_LIM_PORT_WORDS (65536 / 64)
#define BS_LIM_MAX_IFACES 16
#define BS_LIM_NSEC	  1000000000ULL
/* the sliding window counts events in 16 bits (struct bs_lim_win) */
#define BS_LIM_MAX_BURST  65535
/* a source's last packet is kept in ticks of 2^20 ns (~1 ms), 32 bits */
#define BS_LIM_TICK_SHIFT 20

enum bs_lim_algo {
	BS_LIM_TOKEN_BUCKET = 0, /* GCRA: RATE per second, bursts of BURST */
	BS_LIM_SLIDING_WINDOW,	 /* at most BURST in any BURST/RATE seconds */
};

/* One limit (connections or packets per source); interval 0: off. */
struct bs_lim_rate {
	__u64 interval;	 /* ns between events at RATE: 1e9 / RATE */
	__u64 tolerance; /* GCRA: interval * (BURST - 1) */
	__u64 window;	 /* sliding window: interval * BURST */
	__u32 burst;
	__u32 rate; /* per second, for display */
};

/* The limiter's configuration (lim_cfg, one element, written by the daemon). */
struct bs_lim_cfg {
	struct bs_lim_rate conn; /* new connections (SYN) per source */
	struct bs_lim_rate pkt;	 /* packets per source */
	__u64 idle_ns;		 /* a source slot unused this long is free */
	__u64 seed;		 /* of lim_bucket(), drawn by the daemon */
	__u32 algo;		 /* enum bs_lim_algo */
	__u32 slots_mask;	 /* lim_src has slots_mask + 1 buckets of 2 */
	__u32 v6_prefix;	 /* IPv6 sources are grouped by this prefix (default 64) */
	__u32 enabled;		 /* 0: pass everything (configuration not written yet) */
	__u32 lists;		 /* BS_LIM_LIST_* of the tries that have entries */
	/* load shedding (the breaker): 0 shed_pending and no thresholds: off */
	__u32 shed;	      /* 1: the breaker is on (pending and/or daemon thresholds) */
	__u32 shed_pending;   /* open above this many pending requests (0: not used) */
	__u32 shed_low;	      /* ... and close at or below this many (hysteresis) */
	__u32 shed_probe_pct; /* half-open: per cent of new connections let through */
	__u32 coarse;	      /* 1: time from the coarse clock (lim_coarse_ok()) */
	__u64 shed_open_ns;   /* open this long before half-open */
	__u64 shed_probe_ns;  /* half-open this long, healthy, before closing */
};

#define BS_LIM_LIST_ALLOW4 0x1
#define BS_LIM_LIST_DENY4  0x2
#define BS_LIM_LIST_ALLOW6 0x4
#define BS_LIM_LIST_DENY6  0x8
#define BS_LIM_LIST_BANS   0x10 /* lim_bans may hold entries: look them up */

/* A source: IPv4 as ::ffff:a.b.c.d, IPv6 masked to the configured prefix. */
struct bs_lim_key {
	__u64 hi;
	__u64 lo;
};

/*
 * The state of one limit is a (GCRA: the theoretical arrival time; sliding
 * window: the current window's start) and, for the window only, the counts
 * below: they never exceed the burst, hence BS_LIM_MAX_BURST.
 */
struct bs_lim_win {
	__u16 n;    /* events in the current window */
	__u16 prev; /* events in the previous one */
};

/* One limit of one client (the observer's request limit). */
struct bs_lim_state {
	__u64 a;
	struct bs_lim_win w;
	__u32 pad;
};

/*
 * A slot of the source table.  The source is known by a fingerprint, not
 * its key: 32 bits of its hash beside the bucket's index bits, ~47 bits in
 * all with the default table, so two live sources merging is negligible,
 * and with a secret seed nobody can aim for it.
 */
struct bs_lim_src {
	__u32 fp;   /* lim_fp(); 0: slot free */
	__u32 last; /* last packet, lim_tick(); ages by subtraction */
	__u64 conn_a;
	__u64 pkt_a;
	struct bs_lim_win conn_w;
	struct bs_lim_win pkt_w;
};

/* Two slots a bucket, one cache line: a new source replaces the slot used
 * least recently. */
struct bs_lim_bucket {
	struct bs_lim_src s[2];
};

_Static_assert(sizeof(struct bs_lim_bucket) == 64, "a bucket is one cache line");

/* lim_stats counters (per CPU). */
enum bs_lim_counter {
	BS_LIM_PASS = 0,   /* packets to limited ports passed */
	BS_LIM_PASS_ALLOW, /* passed because the source is allow-listed */
	BS_LIM_DROP_DENY,  /* dropped: deny list */
	BS_LIM_DROP_BAN,   /* dropped: banned source */
	BS_LIM_DROP_CONN,  /* dropped: new-connection rate */
	BS_LIM_DROP_PKT,   /* dropped: packet rate */
	BS_LIM_DROP_SHED,  /* dropped: load shedding (breaker open) */
	BS_LIM_OTHER,	   /* not TCP to a limited port: passed untouched */
	BS_LIM_SRC_NEW,	   /* a source took a free slot */
	BS_LIM_SRC_EVICT,  /* a source took a slot in use by another */
	BS_LIM_BANS_MADE,  /* bans made by the observer (--limit-req) */
	BS_LIM_SHED_OPENS, /* the breaker went to open */
	BS_LIM_NCOUNTERS,
};

/* lim_stats, one per-CPU element: a packet's counters at one lookup */
struct bs_lim_stats {
	__u64 c[BS_LIM_NCOUNTERS];
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
	__u32 mode; /* enum bs_lim_mode; NONE: entry unused */
	char name[16];
};

/* Bans (lim_bans): source -> until when (bpf_ktime_get_ns), made by the
 * observer from a client's HTTP request rate or by `bunscope limit ban`. */
#define BS_LIM_MAX_BANS 65536

/*
 * The breaker.  The daemon writes struct bs_lim_shed_ctl (lim_shed_ctl)
 * every refresh; the program keeps struct bs_lim_shed (lim_shed) and reads
 * the pending requests from the observer's stats map (lim_shed_src, a map
 * of maps the daemon fills) itself, with no daemon round trip.
 */
#define BS_SHED_IDX	   16 /* observer stats entries summed (a power of two) */
#define BS_SHED_MAX_CPUS   256
#define BS_SHED_STALE_NS   (3 * BS_LIM_NSEC) /* no heartbeat: fail open */
#define BS_SHED_PENDING_NS 1000000ULL	     /* pending summed at most once a ms */

enum bs_shed_state {
	BS_SHED_CLOSED = 0, /* new connections pass */
	BS_SHED_OPEN,	    /* new connections are dropped */
	BS_SHED_HALF_OPEN,  /* a fraction of them pass, to probe */
	BS_SHED_NSTATES,
};

struct bs_lim_shed_ctl {
	__u64 heartbeat_ns;	/* the daemon's last write; stale: the breaker is closed */
	__u32 ext_trip;		/* the daemon's thresholds (p99, 5xx rate) are exceeded */
	__u32 ncpus;		/* possible CPUs, for the per-CPU sums */
	__u32 nidx;		/* entries of idx in use */
	__u32 idx[BS_SHED_IDX]; /* the observer's stats entries of the targets */
	__u32 pad;
};

struct bs_lim_shed {
	__u32 state; /* enum bs_shed_state */
	__u32 pad;
	__u64 since_ns;	  /* when state was entered */
	__u64 pending_ns; /* when pending was summed */
	__s64 pending;	  /* the targets' pending requests then */
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
	if (!rate || !burst || rate > BS_LIM_NSEC || burst > BS_LIM_MAX_BURST)
		return -1;
	r->rate = rate;
	r->burst = burst;
	r->interval = BS_LIM_NSEC / rate;
	r->tolerance = r->interval * (burst - 1);
	r->window = r->interval * burst;
	return 0;
}

/*
 * May the program read the coarse clock (CLOCK_MONOTONIC_COARSE, whose
 * resolution is res_ns, a timer tick) instead of the precise one?  The
 * coarse clock is a load, where the precise one reads the TSC after an
 * LFENCE that waits for the packet's cache misses.  Time then moves in
 * steps of a tick, and a limit decides within one as at the tick's start.
 * GCRA then catches up at the next tick: its rate stays exact while the
 * window (BURST / RATE) spans BS_LIM_COARSE_TICKS ticks, and a burst can
 * grow by 1/16 of itself for one tick.  The sliding window weighs the
 * previous window as if a tick earlier and passes about tick / window less
 * than its rate (tests/unit/test_limit.c): it takes the coarse clock from
 * BS_LIM_COARSE_TICKS_SW ticks, 1% at most.  Bans and the breaker are late
 * by a tick at most.
 */
#define BS_LIM_COARSE_TICKS    16
#define BS_LIM_COARSE_TICKS_SW 128

LIM_INLINE int lim_coarse_ok(const struct bs_lim_cfg *c, __u64 res_ns)
{
	__u64 min = res_ns * (c->algo == BS_LIM_SLIDING_WINDOW ? BS_LIM_COARSE_TICKS_SW
							       : BS_LIM_COARSE_TICKS);

	if (!res_ns || res_ns > BS_LIM_NSEC / 100)
		return 0;
	if (c->conn.interval && c->conn.window < min)
		return 0;
	if (c->pkt.interval && c->pkt.window < min)
		return 0;
	return 1;
}

/* GCRA: may an event at now pass?  Moves the arrival time *a when it does. */
LIM_INLINE int lim_gcra(__u64 *a, const struct bs_lim_rate *r, __u64 now)
{
	__u64 tat = *a > now ? *a : now;

	if (tat - now > r->tolerance)
		return 0;
	*a = tat + r->interval;
	return 1;
}

/*
 * Sliding window: the events of the previous window, weighted by how much
 * of it still overlaps the window ending now, plus the current window's,
 * must stay below burst.
 */
LIM_INLINE int lim_window(__u64 *start, struct bs_lim_win *s, const struct bs_lim_rate *r,
			  __u64 now)
{
	__u64 w = r->window, el, est;

	if (!w)
		return 1;
	if (now < *start) /* another CPU's clock, a little behind */
		*start = now;
	el = now - *start;
	if (el >= 2 * w) {
		*start = now;
		s->prev = 0;
		s->n = 0;
		el = 0;
	} else if (el >= w) {
		*start += w;
		s->prev = s->n;
		s->n = 0;
		el -= w;
	}
	est = (__u64)s->prev * (w - el) / w + s->n;
	if (est >= r->burst)
		return 0;
	s->n++; /* n < burst <= BS_LIM_MAX_BURST here */
	return 1;
}

LIM_INLINE int lim_allow(__u64 *a, struct bs_lim_win *w, const struct bs_lim_rate *r, __u32 algo,
			 __u64 now)
{
	if (!r->interval)
		return 1;
	return algo == BS_LIM_SLIDING_WINDOW ? lim_window(a, w, r, now) : lim_gcra(a, r, now);
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

/* Hash of a key: a multiply-xorshift mix, good enough against chosen
 * sources once the seed is secret (the daemon draws it at start).  Its low
 * bits index the bucket, its high half is the fingerprint. */
LIM_INLINE __u64 lim_hash(const struct bs_lim_key *k, __u64 seed)
{
	__u64 h = (k->hi ^ seed) * 0x9E3779B97F4A7C15ULL;

	h ^= h >> 29;
	h = (h ^ k->lo) * 0xBF58476D1CE4E5B9ULL;
	return h ^ h >> 32;
}

/* The fingerprint of hash h: never 0, which marks a free slot. */
LIM_INLINE __u32 lim_fp(__u64 h)
{
	__u32 fp = (__u32)(h >> 32);

	return fp ? fp : 1;
}

/* A bpf_ktime_get_ns() (CLOCK_MONOTONIC) time in the slots' ticks.  It wraps
 * every ~52 days: only differences of ticks mean anything. */
LIM_INLINE __u32 lim_tick(__u64 ns)
{
	return (__u32)(ns >> BS_LIM_TICK_SHIFT);
}

/* Ticks since slot s was used at tick now; a free slot is the oldest.  A
 * slot unused for more than 2^32 ticks looks recent again: at worst one
 * eviction that should have been a free slot. */
LIM_INLINE __u32 lim_age(const struct bs_lim_src *s, __u32 now)
{
	return s->fp ? now - s->last : ~0U;
}

/*
 * The slot of the source with fingerprint fp in bucket b at tick now: the
 * one holding fp, else a free or idle one (unused for idle ticks), else the
 * one used least recently (evicted).  *fresh is 1 for a slot just taken
 * (its state reset), 2 when that evicted a live source.
 */
LIM_INLINE struct bs_lim_src *lim_slot(struct bs_lim_bucket *b, __u32 fp, __u32 now, __u32 idle,
				       int *fresh)
{
	struct bs_lim_src *s0 = &b->s[0], *s1 = &b->s[1], *s;

	*fresh = 0;
	if (s0->fp == fp)
		return s0;
	if (s1->fp == fp)
		return s1;
	s = lim_age(s0, now) >= lim_age(s1, now) ? s0 : s1;
	*fresh = lim_age(s, now) < idle ? 2 : 1;
	s->fp = fp;
	s->last = now;
	s->conn_a = 0;
	s->pkt_a = 0;
	s->conn_w = (struct bs_lim_win){};
	s->pkt_w = (struct bs_lim_win){};
	return s;
}

#endif /* BUNSCOPE_LIMIT_H */
