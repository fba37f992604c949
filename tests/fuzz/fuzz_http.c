// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * fuzz_http: the HTTP/1 stream parser (include/http_parse.h), and the
 * WebSocket one behind a 101 (ws_parse.h), driven as the kernel drives them:
 * both directions of a connection interleaved, one syscall's bytes at a
 * time, in server or client mode, from a connection's start or attached
 * mid-stream, with traces on or off.  Built twice: with the real window
 * (fuzz_http) and with a 7-byte one and no fast path (fuzz_http_win7), where
 * every line crosses windows; and a third time as fuzz_ws (FUZZ_WS): every
 * connection a server's, upgraded by a real request and 101 before the input
 * starts, so that all of it is WebSocket frames.
 *
 * Input: one byte of configuration, then records up to the end:
 *   config  bits 0-1  0 server, 1 client (HP_CF_CLIENT), 2 server attached
 *                     mid-stream (HS_RESYNC), 3 client attached mid-stream
 *           bit 2     traces on;  bits 3-4: 0 no sampling, 1 every request,
 *                     2 parent-based, 3 every request, at most 4 spans
 *           bit 5     paths resolve to routes
 *           bits 6-7  what stale scratch holds in the second run (below)
 *   record  ctl byte: bit 0 direction (0 request bytes, 1 response bytes),
 *           bits 1-2 kind, bits 3-7 L:
 *     kind 0     a readable segment: L bytes (1..30); L 0: one more byte
 *                says 31 + b; L 31: two more bytes (little-endian) say it
 *     kind 1     the same, then a byte k: reading from segment offset k on
 *                fails (bpf_probe_read_user() on a page not present)
 *     kind 2     an unreadable segment (sendfile): two bytes v, (v + 1) << (L & 15) bytes
 *     kind 3     an event: L & 3 = 0 the connection closes and a new one
 *                starts (at most MAX_CONNS an input: each costs a setup),
 *                1 shutdown(SHUT_WR), 2 or 3 time passes
 * so the fuzzer chooses where reads split (heads, chunk-size lines, frame
 * headers across segments) and in which order the two sides move.
 *
 * Invariants checked, beyond the sanitizers: the hooks' own (a span ends
 * once, only traced requests end spans, paths and targets fit); never fewer
 * requests started than ended (started >= completed + aborted + unstarted);
 * started is the connection's request count and at most one per 18 request
 * bytes; a step per byte (feed_ex); body and WebSocket payload sizes at most
 * the bytes that passed; at most one WebSocket error per direction; at most
 * one rejection other than a late one (a rejected stream is dead); a closed
 * connection has nothing pending and every span ended.  And the same input
 * is run a second time with other stale bytes in the scratch buffer: what
 * the parser reports must not change.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz.h"

#define HH_CHECK(cond) FZ_CHECK(cond)
#define MAX_DONE       256
#include "../unit/hp_harness.h"

#ifndef FUZZ_WS
#define FUZZ_WS 0
#endif

#define MIN_REQUEST 18 /* "GET / HTTP/1.0\r\n\r\n" */
#define MAX_CONNS   8  /* connections an input may open */
#define SPAN_ROOM   60 /* the harness keeps 64 span records */

struct side {
	struct tconn *t;
	__u8 fill; /* stale scratch byte */
};

struct run {
	struct side s[2];
	__u8 cfg;
	int conns;	   /* opened so far */
	__u64 readable[2]; /* readable bytes fed per direction */
	__u64 total[2];	   /* all bytes fed per direction */
};

static struct tconn *conn_new(__u8 cfg, __u8 fill)
{
	struct tconn *t = tc_new();
	int sample = (cfg >> 3) & 3;

	memset(t->scr, fill, sizeof(t->scr));
	if (cfg & 1)
		t->c.cflags = HP_CF_CLIENT;
	if (cfg & 2) {
		t->c.req.state = HS_RESYNC;
		t->c.resp.state = HS_RESYNC;
	}
	t->rec.trace_on = !!(cfg & 4);
	t->rec.sample = sample == 3 ? 1 : sample;
	t->rec.cap_left = sample == 3 ? 4 : SPAN_ROOM;
	t->rec.resolve = !!(cfg & 0x20);
	return t;
}

static void segment(struct run *u, int dir, const __u8 *p, size_t n, int readable);

static void run_open(struct run *u)
{
	static const __u8 fills[4] = { 0x00, 0xff, '\n', '0' };

	u->conns++;
	u->s[0].fill = 0xA5;
	u->s[1].fill = fills[u->cfg >> 6];
	for (int i = 0; i < 2; i++)
		u->s[i].t = conn_new(u->cfg, u->s[i].fill);
	memset(u->readable, 0, sizeof(u->readable));
	memset(u->total, 0, sizeof(u->total));
	if (FUZZ_WS) {
		segment(u, REQ, (const __u8 *)WS_UPGRADE_REQ, strlen(WS_UPGRADE_REQ), 1);
		segment(u, RESP, (const __u8 *)WS_101, strlen(WS_101), 1);
		FZ_CHECK(u->s[0].t->c.req.state == HS_WS && u->s[0].t->c.resp.state == HS_WS);
	}
}

static int sum(const int *v, int n)
{
	int s = 0;

	for (int i = 0; i < n; i++)
		s += v[i];
	return s;
}

/* What must hold after any segment or event. */
static void check(const struct run *u)
{
	const struct tconn *t = u->s[0].t;
	const struct rec *rec = &t->rec;
	int ndone = rec->ndone < MAX_DONE ? rec->ndone : MAX_DONE;

	FZ_CHECK(pending(t) >= 0);
	FZ_CHECK((__u32)rec->started == t->c.next_seq);
	FZ_CHECK((__u64)rec->started * MIN_REQUEST <= u->readable[REQ]);
	FZ_CHECK(t->c.fifo_len <= HP_FIFO);
	FZ_CHECK(rec->upgrades <= 1);
	FZ_CHECK(sum(rec->rejects, BS_REJ_MAX) - rec->rejects[BS_REJ_LATE] <= 1);
	for (int i = 0; i < ndone; i++) {
		const struct done *d = &rec->done[i];

		FZ_CHECK(d->status >= 100 && d->status <= 999);
		FZ_CHECK(d->req_body <= u->total[REQ]);
		FZ_CHECK(d->resp_body <= u->total[RESP]);
		FZ_CHECK(d->dur <= t->now);
	}
	for (int dir = 0; dir < 2; dir++) {
		__u64 b = 0;

		for (int k = 0; k < BS_WS_KINDS; k++)
			b += rec->ws_bytes[dir][k];
		FZ_CHECK(b <= u->total[dir]);
		FZ_CHECK((__u64)rec->ws_frames[dir] * 2 <= u->readable[dir]);
		FZ_CHECK(sum(rec->ws_errors[dir], WS_E_MAX) <= 1);
	}
	/* the second run saw other stale scratch bytes, and nothing else:
	 * its counters here, all it recorded when the connection ends */
	FZ_CHECK(!memcmp(rec, &u->s[1].t->rec, offsetof(struct rec, ndone)));
	FZ_CHECK(rec->ndone == u->s[1].t->rec.ndone);
	FZ_CHECK(t->c.req.state == u->s[1].t->c.req.state);
	FZ_CHECK(t->c.resp.state == u->s[1].t->c.resp.state);
}

static void run_close(struct run *u)
{
	for (int i = 0; i < 2; i++)
		tc_close(u->s[i].t);
	check(u);
	FZ_CHECK(!memcmp(&u->s[0].t->rec, &u->s[1].t->rec, sizeof(struct rec)));
	for (int i = 0; i < 2; i++) {
		const struct tconn *t = u->s[i].t;

		FZ_CHECK(pending(t) == 0);
		FZ_CHECK(t->c.fifo_len == 0 && t->c.ovf.count == 0);
		for (int k = 0; k < t->rec.nspans && k < 64; k++)
			FZ_CHECK(t->rec.spans[k].ended);
		free(u->s[i].t);
		u->s[i].t = NULL;
	}
}

/* fail_from: as struct rec's (0: every read succeeds) */
static void segment_ex(struct run *u, int dir, const __u8 *p, size_t n, int readable,
		       __u32 fail_from)
{
	__u8 *copy = readable ? fz_dup(p, n) : NULL;

	u->total[dir] += n;
	if (readable)
		u->readable[dir] += n;
	for (int i = 0; i < 2; i++) {
		u->s[i].t->rec.fail_from = fail_from;
		feed_ex(u->s[i].t, dir, copy, n, readable);
		u->s[i].t->rec.fail_from = 0;
	}
	free(copy);
	check(u);
}

static void segment(struct run *u, int dir, const __u8 *p, size_t n, int readable)
{
	segment_ex(u, dir, p, n, readable, 0);
}

static void event(struct run *u, int what)
{
	switch (what) {
	case 0:
		if (u->conns >= MAX_CONNS)
			break;
		run_close(u);
		run_open(u);
		return;
	case 1:
		/* as the BPF side: a client's shutdown ends nothing it reads */
		if (!(u->cfg & 1)) {
			for (int i = 0; i < 2; i++) {
				struct hp_pos pos = {};
				struct hp_run r = { .c = &u->s[i].t->c,
						    .scr = u->s[i].t->scr,
						    .v = &pos,
						    .rec = &u->s[i].t->rec,
						    .ws = &u->s[i].t->ws,
						    .now = u->s[i].t->now };

				hp_shutdown_wr(&r);
			}
		}
		break;
	default:
		for (int i = 0; i < 2; i++)
			u->s[i].t->now += 1000000000ULL;
		break;
	}
	check(u);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct fz f = { data, size };
	struct run u;
	__u8 ctl, b;
	__u16 v;

	if (fz_u8(&f, &u.cfg))
		return 0;
	u.conns = 0;
	if (FUZZ_WS)
		u.cfg &= ~3; /* a server's connection from its start */
	run_open(&u);
	while (!fz_u8(&f, &ctl)) {
		int dir = ctl & 1, kind = (ctl >> 1) & 3, L = ctl >> 3;
		size_t len, got;
		const __u8 *p;

		if (kind == 3) {
			event(&u, L & 3);
			continue;
		}
		if (kind == 2) {
			if (fz_u16(&f, &v))
				break;
			segment(&u, dir, NULL, ((size_t)v + 1) << (L & 15), 0);
			continue;
		}
		if (L == 0) {
			if (fz_u8(&f, &b))
				break;
			len = 31 + (size_t)b;
		} else if (L == 31) {
			if (fz_u16(&f, &v))
				break;
			len = v ? v : 65536;
		} else {
			len = (size_t)L;
		}
		if (kind == 1 && fz_u8(&f, &b))
			break;
		p = fz_take(&f, len, &got);
		if (!got)
			break;
		segment_ex(&u, dir, p, got, 1, kind == 1 ? (__u32)b + 1 : 0);
	}
	run_close(&u);
	return 0;
}
