/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * hp_harness.h: the userspace side of include/http_parse.h and ws_parse.h,
 * shared by the unit tests (tests/unit/test_http_parse.c) and the fuzzers
 * (tests/fuzz/): hooks that record what the parser reports (struct rec), and
 * a driver that feeds segments exactly as the kernel does (struct tconn,
 * feed_ex, tc_close).
 *
 * The includer defines HH_CHECK(cond) first: how a broken invariant fails
 * (cmocka's assert_true in the unit tests, abort() in the fuzzers), and may
 * define MAX_DONE (completions recorded one by one) and HP_WIN.
 */
#ifndef BUNSCOPE_HP_HARNESS_H
#define BUNSCOPE_HP_HARNESS_H

#include <linux/types.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#ifndef HH_CHECK
#error "define HH_CHECK(cond) before including hp_harness.h"
#endif

struct rec;
#define HP_RUN_EXTRA     \
	struct rec *rec; \
	struct ws_conn *ws;
#include "http_parse.h"
#include "ws_parse.h"
#include "traceparent.h"

#ifndef MAX_DONE
#define MAX_DONE 4096
#endif

struct done {
	__u16 status;
	__u8 method;
	__u64 req_body;
	__u64 resp_body;
	__u64 dur;
	__u64 hash;
	__u32 route;
};

struct rec {
	int started, completed, aborted, unstarted, timeouts, overflow;
	int rejects[BS_REJ_MAX];
	int desync[HP_DS_MAX];
	int ndone;
	struct done done[MAX_DONE];
	/* the last paths seen, by hash */
	int npaths;
	__u64 path_hash[64];
	char path[64][BS_PATH_MAX + 1];
	int path_trunc[64];
	unsigned long max_steps_over; /* steps beyond n + 2 for a segment */
	/* WebSocket side */
	int upgrades;
	__u64 ws_msgs[2][BS_WS_KINDS], ws_bytes[2][BS_WS_KINDS];
	int ws_frames[2];
	int ws_errors[2][WS_E_MAX];
	int nclose;
	__u16 close_codes[16];
	int resolve;	 /* hp_on_path resolves routes (as live) */
	__u32 fail_from; /* reads reaching segment offset fail_from - 1
					 * fail (a page the kernel cannot read); 0: none */
	/* traces: the hooks keep what the BPF side keeps in bs_conn.tr */
	int trace_on;
	int sample;   /* 1: every request; 2: parent-based (else all) */
	int cap_left; /* span starts allowed (-1: no cap) */
	struct {
		char target[BS_TRACE_TARGET_MAX + 1];
		__u32 plen, tlen;
		int ttrunc, tp; /* BS_TP_* */
		struct bs_tp tpv;
		char host[BS_TRACE_HOST_MAX + 1]; /* client: the first Host, "" if none */
		int nhost;			  /* Host values handed over */
	} cur;
	int nspans;
	struct span_rec {
		__u32 seq;
		char target[BS_TRACE_TARGET_MAX + 1];
		__u32 plen;
		int ttrunc, tp;
		struct bs_tp tpv;
		char host[BS_TRACE_HOST_MAX + 1];
		int ended, how; /* how: BS_SPAN_* */
		__u16 status;
	} spans[64];
	int nstates;
	char tracestate[8][BS_TRACESTATE_MAX + 1];
	__u32 tracestate_seq[8];
};

static inline void span_ended(struct rec *rec, __u32 seq, int how, __u16 status);

HP_INLINE int hp_src_read(struct hp_run *r, __u8 *dst, __u32 len, __u32 off)
{
	/* as the BPF side, whose HP_WIN (4096) the small-window builds shrink;
	 * a WebSocket window (WS_WIN) is never below 16 */
	if (len > HP_WIN && len > 16)
		return -1;
	if (r->rec->fail_from && off + len >= r->rec->fail_from)
		return -1;
	memcpy(dst, (const __u8 *)(uintptr_t)r->v->src + off, len);
	return 0;
}

HP_INLINE __u64 hp_seed(void)
{
	return 0x5eed5eed5eed5eedULL;
}

HP_INLINE __u32 hp_on_path(struct hp_run *r, __u64 hash, __u32 start, __u32 len, int truncated)
{
	struct rec *rec = r->rec;
	int i = rec->npaths++ % 64;

	rec->path_hash[i] = hash;
	for (__u32 k = 0; k < len; k++)
		rec->path[i][k] = (char)hp_b(r, start + k);
	rec->path[i][len] = 0;
	rec->path_trunc[i] = truncated;
	return rec->resolve ? BS_ROUTE_FIRST + (__u32)(hash & 0xff) : BS_ROUTE_UNRESOLVED;
}

HP_INLINE void hp_on_start(struct hp_run *r)
{
	r->rec->started++;
}

HP_INLINE void hp_on_complete(struct hp_run *r, struct hp_slot *s, __u16 status, __u64 req_body,
			      __u64 resp_body)
{
	struct rec *rec = r->rec;

	rec->completed++;
	if (s->flags & HP_SF_TRACED)
		span_ended(rec, s->seq, BS_SPAN_DONE, status);
	if (rec->ndone < MAX_DONE) {
		struct done *d = &rec->done[rec->ndone++];

		d->status = status;
		d->method = s->method;
		d->req_body = req_body;
		d->resp_body = resp_body;
		d->dur = r->now - s->start_ns;
		d->hash = s->path_hash;
		d->route = s->route_id;
	}
}

static inline struct span_rec *span_of(struct rec *rec, __u32 seq)
{
	for (int i = 0; i < rec->nspans && i < 64; i++)
		if (rec->spans[i].seq == seq)
			return &rec->spans[i];
	return NULL;
}

static inline void span_ended(struct rec *rec, __u32 seq, int how, __u16 status)
{
	struct span_rec *sp = span_of(rec, seq);

	HH_CHECK(sp != NULL); /* only traced slots end spans */
	HH_CHECK(sp->ended == 0);
	sp->ended = 1;
	sp->how = how;
	sp->status = status;
}

HP_INLINE void hp_on_abort(struct hp_run *r, struct hp_slot *s, __u32 count)
{
	r->rec->aborted += count;
	if (s->flags & HP_SF_TRACED)
		for (__u32 i = 0; i < count; i++)
			/* the overflow's record covers untraced ones too */
			if (s != &r->c->ovf || span_of(r->rec, s->seq + i))
				span_ended(r->rec, s->seq + i, BS_SPAN_ABORT, 0);
}

HP_INLINE void hp_on_unstart(struct hp_run *r, struct hp_slot *s)
{
	r->rec->unstarted++;
	if (s->flags & HP_SF_TRACED)
		span_ended(r->rec, s->seq, BS_SPAN_UNSTART, 0);
}

HP_INLINE int hp_trace_on(struct hp_run *r)
{
	return r->rec->trace_on;
}

HP_INLINE void hp_on_target(struct hp_run *r, __u32 start, __u32 plen, __u32 tlen, int ttrunc)
{
	struct rec *rec = r->rec;

	HH_CHECK(rec->trace_on);
	if (tlen > BS_TRACE_TARGET_MAX) {
		tlen = BS_TRACE_TARGET_MAX;
		ttrunc = 1;
	}
	for (__u32 k = 0; k < tlen; k++)
		rec->cur.target[k] = (char)hp_b(r, start + k);
	rec->cur.target[tlen] = 0;
	rec->cur.tlen = tlen;
	rec->cur.plen = plen < tlen ? plen : tlen;
	rec->cur.ttrunc = ttrunc;
	rec->cur.tp = BS_TP_NONE;
	rec->cur.host[0] = 0;
}

HP_INLINE void hp_on_target_again(struct hp_run *r)
{
	r->rec->cur.tp = BS_TP_NONE;
	r->rec->cur.host[0] = 0;
}

HP_INLINE void hp_on_trace_field(struct hp_run *r, int which, __u32 vs, __u32 ve, int trunc)
{
	struct rec *rec = r->rec;
	__u8 buf[BS_TRACESTATE_MAX + 1];
	__u32 len = ve - vs;

	HH_CHECK(ve >= vs);
	for (__u32 k = 0; k < len && k < sizeof(buf); k++)
		buf[k] = hp_b(r, vs + k);
	if (len < sizeof(buf))
		buf[len] = 0;
	if (which == HP_TF_HOST) {
		HH_CHECK(r->c->cflags & HP_CF_CLIENT);
		rec->cur.nhost++;
		if (!trunc && len && len <= BS_TRACE_HOST_MAX && !rec->cur.host[0]) {
			memcpy(rec->cur.host, buf, len);
			rec->cur.host[len] = 0;
		}
		return;
	}
	if (which == HP_TF_TRACEPARENT) {
		if (rec->cur.tp != BS_TP_NONE || trunc || len > BS_TRACESTATE_MAX ||
		    tp_parse(buf, len, &rec->cur.tpv))
			rec->cur.tp = BS_TP_BAD;
		else
			rec->cur.tp = BS_TP_VALID;
		return;
	}
	if (!trunc && len <= BS_TRACESTATE_MAX && rec->nstates < 8) {
		memcpy(rec->tracestate[rec->nstates], buf, len);
		rec->tracestate[rec->nstates][len] = 0;
		rec->tracestate_seq[rec->nstates++] = r->c->next_seq;
	}
}

HP_INLINE int hp_trace_sample(struct hp_run *r)
{
	struct rec *rec = r->rec;

	if (rec->sample == 2 && rec->cur.tp == BS_TP_VALID)
		return rec->cur.tpv.flags & TP_FLAG_SAMPLED;
	return rec->sample != 0;
}

HP_INLINE int hp_on_span_start(struct hp_run *r, struct hp_slot *s, __u32 seq)
{
	struct rec *rec = r->rec;
	struct span_rec *sp;

	(void)s;
	if (rec->cap_left == 0)
		return 0;
	if (rec->cap_left > 0)
		rec->cap_left--;
	HH_CHECK(rec->nspans < 64);
	HH_CHECK(span_of(rec, seq) == NULL);
	sp = &rec->spans[rec->nspans++];
	memset(sp, 0, sizeof(*sp));
	sp->seq = seq;
	memcpy(sp->target, rec->cur.target, sizeof(sp->target));
	sp->plen = rec->cur.plen;
	sp->ttrunc = rec->cur.ttrunc;
	sp->tp = rec->cur.tp;
	sp->tpv = rec->cur.tpv;
	memcpy(sp->host, rec->cur.host, sizeof(sp->host));
	return 1;
}

HP_INLINE void hp_on_reject(struct hp_run *r, int reason)
{
	r->rec->rejects[reason]++;
}

HP_INLINE void hp_on_timeout(struct hp_run *r)
{
	r->rec->timeouts++;
}

HP_INLINE void hp_on_desync(struct hp_run *r, int reason)
{
	r->rec->desync[reason]++;
}

HP_INLINE void hp_on_overflow(struct hp_run *r)
{
	r->rec->overflow++;
}

HP_INLINE void hp_on_upgrade(struct hp_run *r, struct hp_slot *s)
{
	(void)s;
	memset(r->ws, 0, sizeof(*r->ws));
	r->ws->open = 1;
	r->rec->upgrades++;
}

HP_INLINE void ws_on_frame(struct hp_run *r, int dir, __u32 kind, __u64 bytes, int msg_end)
{
	HH_CHECK(kind < BS_WS_KINDS);
	r->rec->ws_frames[dir]++;
	r->rec->ws_bytes[dir][kind] += bytes;
	if (msg_end)
		r->rec->ws_msgs[dir][kind]++;
}

HP_INLINE void ws_on_close_frame(struct hp_run *r, int dir, __u16 code)
{
	(void)dir;
	if (r->rec->nclose < 16)
		r->rec->close_codes[r->rec->nclose] = code;
	r->rec->nclose++;
}

HP_INLINE void ws_on_error(struct hp_run *r, int dir, int reason)
{
	r->rec->ws_errors[dir][reason]++;
}

/* ---- driver ---------------------------------------------------------------- */

struct tconn {
	struct hp_conn c;
	struct ws_conn ws;
	struct rec rec;
	__u8 scr[HP_SCR_ALLOC];
	__u64 now;
};

static inline struct tconn *tc_new(void)
{
	struct tconn *t = calloc(1, sizeof(*t));

	HH_CHECK(t != NULL);
	/* stale scratch must never matter */
	memset(t->scr, 0xA5, sizeof(t->scr));
	t->now = 1000;
	return t;
}

static inline void feed_ex(struct tconn *t, int dir, const void *buf, size_t n, int readable)
{
	struct hp_pos pos = {};
	struct hp_run r = { .c = &t->c, .scr = t->scr, .v = &pos, .rec = &t->rec, .ws = &t->ws };
	unsigned long steps = 0;

	t->now += 1000;
	r.now = t->now;
	hp_run_segment(&r, (__u64)(uintptr_t)buf, (__u32)n, readable);
	for (;;) {
		__u8 st = dir ? t->c.resp.state : t->c.req.state;
		int done;

		if (st == HS_WS)
			done = ws_step(&r, &t->ws.dir[dir], dir);
		else
			done = dir ? hp_step_resp(&r) : hp_step_req(&r);

		steps++;
		if (done)
			break;
		HH_CHECK(steps <= n + 2);
	}
	if (steps > n + 2)
		t->rec.max_steps_over++;
	HH_CHECK(pos.off == n);
}

static inline void feed(struct tconn *t, int dir, const char *s)
{
	feed_ex(t, dir, s, strlen(s), 1);
}

/* feed s split into pieces of at most `piece` bytes (separate syscalls) */
static inline void feed_split(struct tconn *t, int dir, const char *s, size_t len, size_t piece)
{
	for (size_t off = 0; off < len; off += piece) {
		size_t n = len - off < piece ? len - off : piece;

		feed_ex(t, dir, s + off, n, 1);
	}
}

static inline void tc_close(struct tconn *t)
{
	struct hp_pos pos = {};
	struct hp_run r = { .c = &t->c, .scr = t->scr, .v = &pos, .rec = &t->rec, .ws = &t->ws };

	t->now += 1000;
	r.now = t->now;
	hp_close(&r);
}

static inline int pending(const struct tconn *t)
{
	return t->rec.started - t->rec.completed - t->rec.aborted - t->rec.unstarted;
}

static inline const char *last_path(const struct tconn *t)
{
	return t->rec.path[(t->rec.npaths - 1) % 64];
}

#define REQ  0
#define RESP 1

#define WS_UPGRADE_REQ                                                           \
	"GET /chat HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n"                \
	"Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n" \
	"Sec-WebSocket-Version: 13\r\n\r\n"
#define WS_101                                                       \
	"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n" \
	"Connection: Upgrade\r\nSec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n\r\n"

static inline struct tconn *ws_open(void)
{
	struct tconn *t = tc_new();

	feed(t, REQ, WS_UPGRADE_REQ);
	feed(t, RESP, WS_101);
	HH_CHECK(t->rec.upgrades == 1);
	HH_CHECK(t->c.req.state == HS_WS);
	HH_CHECK(t->c.resp.state == HS_WS);
	return t;
}

#endif /* BUNSCOPE_HP_HARNESS_H */
