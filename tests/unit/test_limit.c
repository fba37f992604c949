// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * Unit tests for the limiter's arithmetic (include/limit.h: GCRA, the
 * sliding window, source keys, the 2-way source table and its clock) and its option
 * values (user/limit_parse.c: rates, presets, CIDRs), on simulated clocks.
 */
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>
#include <arpa/inet.h>
#include <linux/types.h>

#include "../../user/limiter.h"

#define MS 1000000ULL

/* Offer one event every `every` ns for `dur` ns; how many pass. */
static __u64 offer(__u32 algo, __u32 rate, __u32 burst, __u64 start, __u64 every, __u64 dur,
		   struct bs_lim_state *s)
{
	struct bs_lim_rate r;
	__u64 passed = 0;

	assert_int_equal(lim_rate_init(&r, rate, burst), 0);
	for (__u64 t = start; t < start + dur; t += every)
		passed += (__u64)lim_allow(&s->a, &s->w, &r, algo, t);
	return passed;
}

static void test_rate_init(void **state)
{
	struct bs_lim_rate r;

	(void)state;
	assert_int_equal(lim_rate_init(&r, 100, 200), 0);
	assert_int_equal(r.interval, 10 * MS);
	assert_int_equal(r.tolerance, 199 * 10 * MS);
	assert_int_equal(r.window, 2000 * MS);
	assert_int_equal(lim_rate_init(&r, 0, 1), -1);
	assert_int_equal(lim_rate_init(&r, 1, 0), -1);
	assert_int_equal(lim_rate_init(&r, 1000000001, 1), -1);
	assert_int_equal(lim_rate_init(&r, 1000000000, 1), 0);
	assert_int_equal(r.interval, 1);
	/* the window's counts are 16 bits */
	assert_int_equal(lim_rate_init(&r, 1, BS_LIM_MAX_BURST), 0);
	assert_int_equal(lim_rate_init(&r, 1, BS_LIM_MAX_BURST + 1), -1);
}

/*
 * What passes of a flood (one event every `every` ns for `dur` ns) when the
 * limit reads a clock that moves in steps of `tick` ns, as the coarse one.
 */
static __u64 offer_coarse(__u32 algo, __u32 rate, __u32 burst, __u64 start, __u64 every, __u64 dur,
			  __u64 tick)
{
	struct bs_lim_state s = {};
	struct bs_lim_rate r;
	__u64 passed = 0;

	assert_int_equal(lim_rate_init(&r, rate, burst), 0);
	for (__u64 t = start; t < start + dur; t += every)
		passed += (__u64)lim_allow(&s.a, &s.w, &r, algo, t - t % tick);
	return passed;
}

/* The coarse clock where every window spans 16 ticks (128 for the sliding
 * window), and nowhere else; the rates it then gives are the configured ones
 * (the sliding window's within 1%). */
static void test_coarse_clock(void **state)
{
	const __u64 tick = 4 * MS, t0 = 1000000 * MS + 1;
	struct bs_lim_cfg c = {};
	__u64 n;

	(void)state;
	assert_int_equal(lim_coarse_ok(&c, tick), 1); /* no limits */
	assert_int_equal(lim_coarse_ok(&c, 0), 0);
	assert_int_equal(lim_coarse_ok(&c, 20 * MS), 0);
	lim_rate_init(&c.conn, 50, 100); /* a 2 s window */
	assert_int_equal(lim_coarse_ok(&c, tick), 1);
	lim_rate_init(&c.pkt, 10000, 640); /* 64 ms: exactly 16 ticks */
	assert_int_equal(lim_coarse_ok(&c, tick), 1);
	c.algo = BS_LIM_SLIDING_WINDOW;
	assert_int_equal(lim_coarse_ok(&c, tick), 0);
	lim_rate_init(&c.pkt, 10000, 5120); /* 512 ms: 128 ticks */
	assert_int_equal(lim_coarse_ok(&c, tick), 1);
	c.algo = BS_LIM_TOKEN_BUCKET;
	lim_rate_init(&c.pkt, 10000, 639);
	assert_int_equal(lim_coarse_ok(&c, tick), 0);
	lim_rate_init(&c.pkt, 100000, 10); /* 100 us: the coarse clock would pass 10 a tick */
	assert_int_equal(lim_coarse_ok(&c, tick), 0);

	/* 10 s of a flood at 1 per 10 us: the burst, then the rate, to
	 * within the burst's 1/16 and a tick's worth */
	n = offer_coarse(BS_LIM_TOKEN_BUCKET, 50, 100, t0, 10000, 10000 * MS, tick);
	assert_in_range(n, 100 + 500 - 1, 100 + 500 + 100 / 16 + 1);
	n = offer_coarse(BS_LIM_TOKEN_BUCKET, 10000, 640, t0, 10000, 10000 * MS, tick);
	assert_in_range(n, 640 + 100000 - 40, 640 + 100000 + 640 / 16 + 40);
	/* the sliding window: at most BURST in any window, within 1% under */
	n = offer_coarse(BS_LIM_SLIDING_WINDOW, 50, 100, t0, 10000, 10000 * MS, tick);
	assert_in_range(n, 500 * 99 / 100, 500 + 1);
	n = offer_coarse(BS_LIM_SLIDING_WINDOW, 10000, 5120, t0, 10000, 10000 * MS, tick);
	assert_in_range(n, 100000 * 99 / 100, 100000 + 1);
	/* the case lim_coarse_ok() refuses: 10 a tick instead of 100,000/s */
	n = offer_coarse(BS_LIM_TOKEN_BUCKET, 100000, 10, t0, 1000, 1000 * MS, tick);
	assert_true(n < 10 * 251 + 10);
}

/* A burst at once, then exactly RATE per second. */
static void test_gcra(void **state)
{
	struct bs_lim_state s = {};
	struct bs_lim_rate r;
	__u64 t0 = 5000 * MS;

	(void)state;
	lim_rate_init(&r, 100, 20);
	for (int i = 0; i < 20; i++)
		assert_true(lim_gcra(&s.a, &r, t0));
	assert_false(lim_gcra(&s.a, &r, t0));
	/* 10 ms later one more token */
	assert_true(lim_gcra(&s.a, &r, t0 + 10 * MS));
	assert_false(lim_gcra(&s.a, &r, t0 + 10 * MS));

	/* 1000 offers a second for 10 s against 100/s: the burst plus 100 a second */
	memset(&s, 0, sizeof(s));
	assert_int_equal(offer(BS_LIM_TOKEN_BUCKET, 100, 20, t0, MS, 10000 * MS, &s),
			 20 + 1000 - 1);
	/* below the rate everything passes */
	memset(&s, 0, sizeof(s));
	assert_int_equal(offer(BS_LIM_TOKEN_BUCKET, 100, 1, t0, 20 * MS, 10000 * MS, &s), 500);
	/* idle long enough, the whole burst is back */
	assert_int_equal(offer(BS_LIM_TOKEN_BUCKET, 100, 20, t0 + 60000 * MS, 1, 1000, &s), 20);
}

/* The sliding window: no more than BURST in a window, RATE on average. */
static void test_window(void **state)
{
	struct bs_lim_state s = {};
	struct bs_lim_rate r;
	__u64 t0 = 7000 * MS, passed;

	(void)state;
	lim_rate_init(&r, 100, 50); /* 50 in any 0.5 s */
	for (int i = 0; i < 50; i++)
		assert_true(lim_window(&s.a, &s.w, &r, t0 + (__u64)i));
	assert_false(lim_window(&s.a, &s.w, &r, t0 + 100));

	memset(&s, 0, sizeof(s));
	passed = offer(BS_LIM_SLIDING_WINDOW, 100, 50, t0, MS, 20000 * MS, &s);
	/* 100/s over 20 s, within 10% */
	assert_true(passed >= 1800 && passed <= 2200);

	/* under the rate all pass */
	memset(&s, 0, sizeof(s));
	assert_int_equal(offer(BS_LIM_SLIDING_WINDOW, 100, 50, t0, 20 * MS, 10000 * MS, &s), 500);

	/* a clock behind the state (another CPU's): the window starts there,
	 * its count kept, instead of a wrapped elapsed time that frees all */
	s.a = t0 + 1000 * MS;
	s.w.n = 50;
	s.w.prev = 0;
	assert_false(lim_window(&s.a, &s.w, &r, t0));
	assert_int_equal(s.a, t0);
	assert_true(lim_window(&s.a, &s.w, &r, t0 + 1000 * MS + 1));
}

static void test_keys(void **state)
{
	struct bs_lim_key a, b;
	__u8 v6[16];

	(void)state;
	lim_key4(&a, htonl(0x0a000001));
	assert_int_equal(a.hi, 0);
	assert_int_equal(a.lo, 0x0000ffff00000000ULL | htonl(0x0a000001));

	inet_pton(AF_INET6, "2001:db8:1:2:aaaa:bbbb:cccc:dddd", v6);
	lim_key6(&a, v6, 64);
	assert_int_equal(a.hi, 0x20010db800010002ULL);
	assert_int_equal(a.lo, 0);
	/* another host of the same /64: the same source */
	inet_pton(AF_INET6, "2001:db8:1:2::1", v6);
	lim_key6(&b, v6, 64);
	assert_memory_equal(&a, &b, sizeof(a));
	lim_key6(&a, v6, 48);
	assert_int_equal(a.hi, 0x20010db800010000ULL);
	lim_key6(&a, v6, 128);
	assert_int_equal(a.lo, 1);
	lim_key6(&a, v6, 96);
	assert_int_equal(a.lo, 0);
	inet_pton(AF_INET6, "2001:db8:1:2:aaaa:bbbb:cccc:dddd", v6);
	lim_key6(&a, v6, 80);
	assert_int_equal(a.lo, 0xaaaa000000000000ULL);
}

static void test_peer_keys(void **state)
{
	struct bs_lim_key a, b;
	struct limit_cidr c;
	__u8 v6[16], v4[4];
	char buf[64];

	(void)state;
	/* an IPv4 client of a dual-stack socket has its IPv4 packets' key */
	inet_pton(AF_INET6, "::ffff:10.231.1.2", v6);
	inet_pton(AF_INET, "10.231.1.2", v4);
	lim_key_peer(&a, 1, v6, 64);
	lim_key_peer(&b, 0, v4, 64);
	assert_memory_equal(&a, &b, sizeof(a));
	lim_key4(&b, htonl(0x0ae70102));
	assert_memory_equal(&a, &b, sizeof(a));
	assert_int_equal(limit_format_key(&a, 64, buf, sizeof(buf)), 10);
	assert_string_equal(buf, "10.231.1.2");
	/* a native IPv6 peer is grouped by the prefix */
	inet_pton(AF_INET6, "fd00:231:1::2", v6);
	lim_key_peer(&a, 1, v6, 64);
	assert_int_equal(a.hi, 0xfd00023100010000ULL);
	assert_int_equal(a.lo, 0);
	limit_format_key(&a, 64, buf, sizeof(buf));
	assert_string_equal(buf, "fd00:231:1::/64");
	/* ::1 is not IPv4-mapped */
	inet_pton(AF_INET6, "::1", v6);
	lim_key_peer(&a, 1, v6, 128);
	assert_int_equal(a.hi, 0);
	assert_int_equal(a.lo, 1);
	limit_format_key(&a, 128, buf, sizeof(buf));
	assert_string_equal(buf, "::1/128");

	/* the CLI's addresses map to the same keys */
	assert_int_equal(limit_parse_cidr("10.231.1.2", &c), 0);
	limit_cidr_key(&c, 64, &a);
	lim_key4(&b, htonl(0x0ae70102));
	assert_memory_equal(&a, &b, sizeof(a));
	assert_true(limit_key_in_cidr(&a, &c));
	assert_int_equal(limit_parse_cidr("10.231.0.0/16", &c), 0);
	assert_true(limit_key_in_cidr(&a, &c));
	assert_int_equal(limit_parse_cidr("10.232.0.0/15", &c), 0);
	assert_false(limit_key_in_cidr(&a, &c));
	assert_int_equal(limit_parse_cidr("10.230.0.0/15", &c), 0);
	assert_true(limit_key_in_cidr(&a, &c));
	assert_int_equal(limit_parse_cidr("fd00:231:1::2", &c), 0);
	assert_false(limit_key_in_cidr(&a, &c)); /* another family */
	limit_cidr_key(&c, 64, &a);
	assert_int_equal(a.hi, 0xfd00023100010000ULL);
	assert_true(limit_key_in_cidr(&a, &c) == false); /* the host bits are gone */
	assert_int_equal(limit_parse_cidr("fd00:231::/32", &c), 0);
	assert_true(limit_key_in_cidr(&a, &c));
	assert_int_equal(limit_parse_cidr("::/0", &c), 0);
	assert_true(limit_key_in_cidr(&a, &c));
}

static void test_shed_pending(void **state)
{
	__u32 n, low;

	(void)state;
	assert_int_equal(limit_parse_shed_pending("100", &n, &low), 0);
	assert_int_equal(n, 100);
	assert_int_equal(low, 50);
	assert_int_equal(limit_parse_shed_pending("8:6", &n, &low), 0);
	assert_int_equal(n, 8);
	assert_int_equal(low, 6);
	assert_int_equal(limit_parse_shed_pending("1", &n, &low), 0);
	assert_int_equal(low, 0);
	assert_int_not_equal(limit_parse_shed_pending("8:8", &n, &low), 0);
	assert_int_not_equal(limit_parse_shed_pending("0", &n, &low), 0);
	assert_int_not_equal(limit_parse_shed_pending("", &n, &low), 0);
	assert_int_not_equal(limit_parse_shed_pending("5:", &n, &low), 0);
	assert_int_not_equal(limit_parse_shed_pending("-5", &n, &low), 0);
}

static const double bounds[BS_DUR_BOUNDS] = {
	0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1, 2.5, 5, 7.5, 10,
};

/* one snapshot a second: k more requests, in bucket b, f of them 5xx */
static void snap_add(struct shed_window *w, struct shed_snap *cum, __u64 t_s, __u64 k, int b,
		     __u64 f)
{
	cum->t_ms = t_s * 1000;
	cum->dur[b] += k;
	cum->total += k;
	cum->n5xx += f;
	shed_window_add(w, cum);
}

static void test_shed_window(void **state)
{
	static struct shed_window w;
	struct shed_snap cum = {};
	struct limit_opts o;
	struct shed_eval ev;
	__u64 t = 0;

	(void)state;
	limit_opts_init(&o);
	o.shed_p99 = 0.2;
	o.shed_5xx = 0.5;
	o.shed_window = 10;
	o.shed_min_requests = 20;

	shed_window_eval(&w, &o, bounds, &ev);
	assert_false(ev.trip);
	/* fast requests: 100 a second in (5, 10] ms */
	for (; t < 15; t++)
		snap_add(&w, &cum, t, 100, 1, 0);
	shed_window_eval(&w, &o, bounds, &ev);
	assert_int_equal(ev.requests, 1000); /* a 10 s window */
	assert_true(ev.p99 > 0.005 && ev.p99 <= 0.01);
	assert_false(ev.trip);
	/* slow ones: 50 a second in (0.25, 0.5]: p99 there after a while */
	for (; t < 20; t++)
		snap_add(&w, &cum, t, 50, 7, 0);
	shed_window_eval(&w, &o, bounds, &ev);
	assert_int_equal(ev.requests, 5 * 100 + 5 * 50);
	assert_true(ev.p99 > 0.25 && ev.p99 <= 0.5);
	assert_true(ev.trip);
	/* a quiet window: too few requests to judge */
	for (; t < 31; t++)
		snap_add(&w, &cum, t, 1, 7, 1);
	shed_window_eval(&w, &o, bounds, &ev);
	assert_int_equal(ev.requests, 10);
	assert_false(ev.trip);
	/* errors: 60% 5xx trips, fast as they are */
	for (; t < 42; t++)
		snap_add(&w, &cum, t, 10, 0, 6);
	shed_window_eval(&w, &o, bounds, &ev);
	assert_int_equal(ev.requests, 100);
	assert_true(ev.ratio_5xx > 0.59 && ev.ratio_5xx < 0.61);
	assert_true(ev.p99 <= 0.005);
	assert_true(ev.trip);
	o.shed_5xx = 0;
	shed_window_eval(&w, &o, bounds, &ev);
	assert_false(ev.trip);
	/* beyond the last bound: the last bound, as Prometheus says */
	for (; t < 53; t++)
		snap_add(&w, &cum, t, 100, BS_DUR_BOUNDS, 0);
	shed_window_eval(&w, &o, bounds, &ev);
	assert_true(ev.p99 == 10.0);
	assert_true(ev.trip);
	/* totals going down (a target gone): the window starts again */
	cum.total = 5;
	cum.t_ms = 54000;
	shed_window_add(&w, &cum);
	shed_window_eval(&w, &o, bounds, &ev);
	assert_int_equal(ev.requests, 0);
	assert_false(ev.trip);
}

#define TICK (1ULL << BS_LIM_TICK_SHIFT)

static void test_slots(void **state)
{
	struct bs_lim_bucket b;
	__u32 idle = lim_tick(10000 * MS), t = lim_tick(100000 * MS);
	struct bs_lim_src *s1, *s2, *s3;
	int fresh;

	(void)state;
	memset(&b, 0, sizeof(b));
	/* new: a free slot, its state reset */
	b.s[0].conn_a = 7;
	s1 = lim_slot(&b, 11, t, idle, &fresh);
	assert_int_equal(fresh, 1);
	assert_ptr_equal(s1, &b.s[0]);
	assert_int_equal(s1->fp, 11);
	assert_int_equal(s1->last, t);
	assert_int_equal(s1->conn_a, 0);
	/* hit: the same slot, state kept */
	s1->conn_a = 42;
	s1->pkt_w.n = 3;
	assert_ptr_equal(lim_slot(&b, 11, t + 1, idle, &fresh), s1);
	assert_int_equal(fresh, 0);
	assert_int_equal(s1->conn_a, 42);
	assert_int_equal(s1->pkt_w.n, 3);
	/* a second source takes the other free slot, not the older live one */
	s2 = lim_slot(&b, 22, t + 2, idle, &fresh);
	assert_int_equal(fresh, 1);
	assert_ptr_equal(s2, &b.s[1]);
	/* the caller marks use; a third source evicts the one used least
	 * recently (11), resetting it */
	s1->last = t + 3;
	s2->last = t + 5;
	s1->pkt_a = 9;
	s3 = lim_slot(&b, 33, t + 6, idle, &fresh);
	assert_int_equal(fresh, 2);
	assert_ptr_equal(s3, s1);
	assert_int_equal(s3->fp, 33);
	assert_int_equal(s3->conn_a, 0);
	assert_int_equal(s3->pkt_a, 0);
	assert_int_equal(s3->pkt_w.n, 0);
	/* 22 is still there */
	assert_ptr_equal(lim_slot(&b, 22, t + 7, idle, &fresh), s2);
	assert_int_equal(fresh, 0);
	/* idle reuse: 22 unused for idle ticks, 33 recent: 11 again takes 22's
	 * slot, a new source and not an eviction */
	s3->last = t + 5 + idle;
	s1 = lim_slot(&b, 11, t + 5 + idle, idle, &fresh);
	assert_int_equal(fresh, 1);
	assert_ptr_equal(s1, s2);
	/* an idle slot whose source comes back is a hit, its state kept */
	s1->conn_a = 5;
	assert_ptr_equal(lim_slot(&b, 11, t + 100 * idle, idle, &fresh), s1);
	assert_int_equal(fresh, 0);
	assert_int_equal(s1->conn_a, 5);
}

/* The coarse clock wraps every 2^32 ticks; ages still come out right. */
static void test_slots_wrap(void **state)
{
	struct bs_lim_bucket b;
	__u32 idle = lim_tick(10000 * MS);
	__u64 wrap = 1ULL << (32 + BS_LIM_TICK_SHIFT);
	int fresh;

	(void)state;
	assert_int_equal(lim_tick(wrap - TICK), 0xffffffffU);
	assert_int_equal(lim_tick(wrap + 3 * TICK + 5), 3);
	memset(&b, 0, sizeof(b));
	lim_slot(&b, 1, lim_tick(wrap - 20 * TICK), idle, &fresh);
	lim_slot(&b, 2, lim_tick(wrap - TICK), idle, &fresh);
	/* after the wrap 1 is 23 ticks old, 2 is 4: 1 goes, a live one */
	assert_ptr_equal(lim_slot(&b, 3, lim_tick(wrap + 3 * TICK), idle, &fresh), &b.s[0]);
	assert_int_equal(fresh, 2);
	assert_int_equal(b.s[1].fp, 2);
	/* and 2 is idle once idle ticks have passed, across the wrap */
	assert_int_equal(lim_age(&b.s[1], lim_tick(wrap - TICK) + idle), idle);
	b.s[0].last = lim_tick(wrap - TICK) + idle;
	assert_ptr_equal(lim_slot(&b, 4, lim_tick(wrap - TICK) + idle, idle, &fresh), &b.s[1]);
	assert_int_equal(fresh, 1);
	/* a free slot is older than any */
	memset(&b.s[1], 0, sizeof(b.s[1]));
	assert_int_equal(lim_age(&b.s[1], 12345), ~0U);
}

static int cmp_u64(const void *a, const void *b)
{
	__u64 x = *(const __u64 *)a, y = *(const __u64 *)b;

	return x < y ? -1 : x > y;
}

/* Fingerprints are never 0 (a free slot) and, with the bucket index, tell
 * a million sources apart. */
static void test_fingerprint(void **state)
{
	enum { N = 1 << 20, MASK = 32767 }; /* the default table's buckets */
	__u64 *id = malloc(N * sizeof(*id));
	int same = 0;

	(void)state;
	assert_int_equal(lim_fp(0), 1);
	assert_int_equal(lim_fp(0xffffffffULL), 1);
	assert_int_equal(lim_fp(1ULL << 32), 1);
	assert_int_equal(lim_fp(0xabcdef0100000000ULL), 0xabcdef01);
	assert_non_null(id);
	for (__u32 i = 0; i < N; i++) {
		struct bs_lim_key k;
		__u64 h;

		/* distinct sources, scattered: odd multipliers are bijections */
		if (i & 1) {
			k.hi = 0x2001000000000000ULL ^ (__u64)i * 0x9E3779B97F4A7C15ULL;
			k.lo = 0;
		} else {
			lim_key4(&k, i * 0x9E3779B1U);
		}
		h = lim_hash(&k, 0x5eed5eed5eed5eedULL);
		assert_int_not_equal(lim_fp(h), 0);
		id[i] = (__u64)lim_fp(h) << 32 | ((__u32)h & MASK);
	}
	qsort(id, N, sizeof(*id), cmp_u64);
	for (int i = 1; i < N; i++)
		same += id[i] == id[i - 1];
	/* ~2^39 pairs over 2^47 values: 0 expected (0.004) */
	assert_int_equal(same, 0);
	free(id);
}

/* Random sources spread evenly enough over the buckets. */
static void test_bucket_spread(void **state)
{
	enum { NB = 1024, N = 65536 };
	static unsigned load[NB];
	unsigned max = 0;

	(void)state;
	srandom(7);
	for (int i = 0; i < N; i++) {
		struct bs_lim_key k;

		lim_key4(&k, (__u32)random());
		load[(__u32)lim_hash(&k, 0x1234567890abcdefULL) & (NB - 1)]++;
	}
	for (int i = 0; i < NB; i++)
		max = load[i] > max ? load[i] : max;
	/* 64 on average; a fair hash stays well below twice that */
	assert_true(max < 110);
	/* sequential addresses too (a /16 scanning) */
	memset(load, 0, sizeof(load));
	max = 0;
	for (__u32 i = 0; i < N; i++) {
		struct bs_lim_key k;

		lim_key4(&k, htonl(0x0a000000 | i));
		load[(__u32)lim_hash(&k, 99) & (NB - 1)]++;
	}
	for (int i = 0; i < NB; i++)
		max = load[i] > max ? load[i] : max;
	assert_true(max < 110);
}

static void test_parse_rate(void **state)
{
	__u32 r, b;

	(void)state;
	assert_int_equal(limit_parse_rate("100:200", &r, &b), 0);
	assert_int_equal(r, 100);
	assert_int_equal(b, 200);
	assert_int_equal(limit_parse_rate("7", &r, &b), 0);
	assert_int_equal(b, 7);
	assert_int_equal(limit_parse_rate("100000:65535", &r, &b), 0);
	assert_int_equal(b, 65535);
	/* bursts beyond the window's 16-bit counts: an error of their own */
	assert_int_equal(limit_parse_rate("10:65536", &r, &b), -ERANGE);
	assert_int_equal(limit_parse_rate("70000", &r, &b), -ERANGE);
}

static void test_parse_rate_bad(void **state)
{
	static const char *const bad[] = { "",	    ":",    "0:5",	   "5:0",	   "x",
					   "1:",    ":1",   "-1:2",	   "4294967296:1", "1:2:3",
					   "1.5:2", " 1:2", "2000000000:1" };
	__u32 r, b;

	(void)state;
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		assert_int_not_equal(limit_parse_rate(bad[i], &r, &b), 0);
}

static void test_presets(void **state)
{
	struct limit_opts o;

	(void)state;
	limit_opts_init(&o);
	assert_int_equal(limit_preset("api", &o), 0);
	assert_true(o.conn_rate && o.conn_burst >= o.conn_rate && o.pkt_rate);
	assert_int_equal(limit_preset("strict", &o), 0);
	assert_int_equal(limit_preset("burst", &o), 0);
	assert_int_equal(limit_preset("nope", &o), -1);
	assert_non_null(strstr(limit_presets_help(), "strict"));
}

static void cidr_is(const char *in, const char *want)
{
	struct limit_cidr c;
	char buf[64];

	assert_int_equal(limit_parse_cidr(in, &c), 0);
	assert_true(limit_format_cidr(&c, buf, sizeof(buf)) > 0);
	assert_string_equal(buf, want);
}

static void test_cidr(void **state)
{
	static const char *const bad[] = {
		"",  "/8",	 "10.0.0.0/",	 "10.0.0.0/33", "::/129",
		"x", "10.0.0/8", "10.0.0.0/8/8", "10.0.0.0/-1", "1.2.3.4 "
	};
	struct limit_cidr c;

	(void)state;
	cidr_is("10.1.2.3/8", "10.0.0.0/8");
	cidr_is("192.168.7.9", "192.168.7.9/32");
	cidr_is("0.0.0.0/0", "0.0.0.0/0");
	cidr_is("2001:db8:abcd::1/33", "2001:db8:8000::/33");
	cidr_is("::1", "::1/128");
	cidr_is("10.255.255.255/9", "10.128.0.0/9");
	/* IPv4-mapped networks are IPv4 ones; wider ones stay IPv6 */
	cidr_is("::ffff:10.231.7.9/112", "10.231.0.0/16");
	cidr_is("::ffff:10.231.7.9", "10.231.7.9/32");
	cidr_is("::ffff:0:0/96", "0.0.0.0/0");
	cidr_is("::ffff:0:0/95", "::fffe:0:0/95");
	cidr_is("::fffe:10.0.0.1/112", "::fffe:a00:0/112");
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		assert_int_not_equal(limit_parse_cidr(bad[i], &c), 0);
}

static void test_cidr_file(void **state)
{
	char path[] = "/tmp/bunscope-cidrs-XXXXXX";
	struct limit_cidr list[4];
	int fd = mkstemp(path), n = 0, line;
	static const char good[] = "# office\n10.0.0.0/8\n\n  2001:db8::/32  # lab\n";
	static const char bad[] = "10.0.0.0/8\nnot-a-cidr\n";

	(void)state;
	assert_true(fd >= 0);
	assert_int_equal(write(fd, good, sizeof(good) - 1), (ssize_t)sizeof(good) - 1);
	close(fd);
	assert_int_equal(limit_read_cidr_file(path, list, &n, 4, &line), 0);
	assert_int_equal(n, 2);
	assert_int_equal(list[1].v6, 1);
	assert_int_equal(list[1].prefix, 32);
	/* more than max */
	assert_int_equal(limit_read_cidr_file(path, list, &n, 3, &line), -EINVAL);
	fd = open(path, O_WRONLY | O_TRUNC);
	assert_int_equal(write(fd, bad, sizeof(bad) - 1), (ssize_t)sizeof(bad) - 1);
	close(fd);
	n = 0;
	assert_int_equal(limit_read_cidr_file(path, list, &n, 4, &line), -EINVAL);
	assert_int_equal(line, 2);
	unlink(path);
	assert_int_equal(limit_read_cidr_file(path, list, &n, 4, &line), -ENOENT);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_rate_init),    cmocka_unit_test(test_gcra),
		cmocka_unit_test(test_window),	     cmocka_unit_test(test_keys),
		cmocka_unit_test(test_peer_keys),    cmocka_unit_test(test_shed_pending),
		cmocka_unit_test(test_shed_window),  cmocka_unit_test(test_slots),
		cmocka_unit_test(test_coarse_clock), cmocka_unit_test(test_slots_wrap),
		cmocka_unit_test(test_fingerprint),  cmocka_unit_test(test_bucket_spread),
		cmocka_unit_test(test_parse_rate),   cmocka_unit_test(test_parse_rate_bad),
		cmocka_unit_test(test_presets),	     cmocka_unit_test(test_cidr),
		cmocka_unit_test(test_cidr_file),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
