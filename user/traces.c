// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * traces.c: spans from the kernel's span records.
 *
 * The kernel samples a request when its head has been parsed and writes a
 * start record (target, peer, incoming traceparent) to the spans ring
 * buffer; when the response's last byte is handed to the kernel, or the
 * connection dies, an end record.  This thread joins the two by (tgid, fd,
 * connection, request number), gives the span its ids (the incoming trace
 * id, or a new one) and wall-clock times, and hands it to the exporters.
 *
 * Memory is bounded: at most pending_max spans wait for their end (a start
 * beyond that is dropped and counted); entries are allocated as they are
 * first used.  A span whose end never comes (its process died, its
 * connection was forgotten) is dropped after max_age_ns, or at once when the
 * daemon learns its process exited.  After a 101 the entry stays for the
 * WebSocket's own span (a child of the upgrade's) until the connection
 * closes; those are not aged out.
 */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <sys/random.h>
#include <bpf/libbpf.h>

#include "daemon.h"
#include "log.h"
#include "routes.h"
#include "traces.h"

#define PENDING_DEFAULT 16384
#define MAX_AGE_DEFAULT (15 * 60 * 1000000000ULL)
#define TS_RING		64 /* tracestate records kept until their span starts */
#define FORGET_MAX	BUNSCOPE_MAX_TARGETS

struct pend {
	struct bs_ev_span_start ev;
	char *tracestate; /* malloc()ed, or NULL */
	__u32 next_free;
	/* after a 101: the WebSocket's span waits for the connection's end,
	 * as a child of the upgrade's span */
	bool ws;
	__u8 up_trace[16];
	__u8 up_span[8];
};

struct ts_rec {
	__u32 tgid, fd, seq, used;
	__u64 conn;
	char value[BS_TRACESTATE_MAX + 1];
};

struct traces {
	struct app *app;
	struct tracer *tracer;
	struct traces_cfg cfg;
	struct ring_buffer *rb;
	pthread_t thread;
	volatile int stop;

	/* the join: open addressing over pool indexes + 1 (0: empty) */
	__u32 *slots;
	__u32 mask;
	struct pend *pool;
	__u32 free_head; /* index + 1, 0: none */
	__u32 pool_used; /* entries ever handed out (the rest are untouched) */
	__u32 npending;

	struct ts_rec ts[TS_RING];
	__u32 ts_next;

	__s64 mono_to_real; /* CLOCK_REALTIME - CLOCK_MONOTONIC, ns */
	__u64 rng[4];	    /* xoshiro256** */

	pthread_mutex_t forget_lock;
	__u32 forget[FORGET_MAX];
	int nforget;

	struct traces_stats st; /* written by the thread, read with atomics */
	struct span scratch;	/* the span being built */
};

static void bump(unsigned long long *c, unsigned long long n)
{
	__atomic_store_n(c, *c + n, __ATOMIC_RELAXED);
}

/* ---- ids ---------------------------------------------------------------------------- */

static __u64 rotl(__u64 x, int k)
{
	return (x << k) | (x >> (64 - k));
}

static __u64 rng_next(__u64 *s)
{
	__u64 r = rotl(s[1] * 5, 7) * 9, t = s[1] << 17;

	s[2] ^= s[0];
	s[3] ^= s[1];
	s[1] ^= s[2];
	s[0] ^= s[3];
	s[2] ^= t;
	s[3] = rotl(s[3], 45);
	return r;
}

/* n random bytes, not all zero (W3C: an all-zero id is invalid) */
static void random_id(struct traces *t, __u8 *out, size_t n)
{
	do {
		for (size_t i = 0; i < n; i += 8) {
			__u64 v = rng_next(t->rng);

			memcpy(out + i, &v, n - i < 8 ? n - i : 8);
		}
	} while (!memcmp(out, "\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0", n));
}

static void clock_sync(struct traces *t)
{
	struct timespec m1, r, m2;

	clock_gettime(CLOCK_MONOTONIC, &m1);
	clock_gettime(CLOCK_REALTIME, &r);
	clock_gettime(CLOCK_MONOTONIC, &m2);
	t->mono_to_real = ((__s64)r.tv_sec * 1000000000LL + r.tv_nsec) -
			  (((__s64)m1.tv_sec + m2.tv_sec) * 500000000LL +
			   ((__s64)m1.tv_nsec + m2.tv_nsec) / 2);
}

static __u64 mono_now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (__u64)ts.tv_sec * 1000000000ULL + (__u64)ts.tv_nsec;
}

/* ---- the join table ----------------------------------------------------------------- */

static __u64 key_hash(__u32 tgid, __u32 fd, __u64 conn, __u32 seq)
{
	__u64 h = ((__u64)tgid << 32 | fd) * 0x9E3779B97F4A7C15ULL;

	h ^= (conn + seq) * 0xBF58476D1CE4E5B9ULL;
	h ^= h >> 31;
	return h * 0x94D049BB133111EBULL;
}

static bool key_is(const struct pend *p, __u32 tgid, __u32 fd, __u64 conn, __u32 seq)
{
	return p->ev.tgid == tgid && p->ev.fd == fd && p->ev.conn == conn && p->ev.seq == seq;
}

/* The slot holding the key, or the empty slot where it would go. */
static __u32 find_slot(const struct traces *t, __u32 tgid, __u32 fd, __u64 conn, __u32 seq)
{
	__u32 i = (__u32)key_hash(tgid, fd, conn, seq) & t->mask;

	while (t->slots[i] && !key_is(&t->pool[t->slots[i] - 1], tgid, fd, conn, seq))
		i = (i + 1) & t->mask;
	return i;
}

/* Empty slot i, moving later entries of its run back (no tombstones). */
static void slot_delete(struct traces *t, __u32 i)
{
	__u32 j = i;

	t->slots[i] = 0;
	for (;;) {
		const struct pend *p;
		__u32 home;

		j = (j + 1) & t->mask;
		if (!t->slots[j])
			return;
		p = &t->pool[t->slots[j] - 1];
		home = (__u32)key_hash(p->ev.tgid, p->ev.fd, p->ev.conn, p->ev.seq) & t->mask;
		/* can the entry at j move to i: is i on its probe path? */
		if ((j > i && (home <= i || home > j)) || (j < i && home <= i && home > j)) {
			t->slots[i] = t->slots[j];
			t->slots[j] = 0;
			i = j;
		}
	}
}

static struct pend *pend_alloc(struct traces *t, __u32 *idx)
{
	if (t->free_head) {
		*idx = t->free_head - 1;
		t->free_head = t->pool[*idx].next_free;
	} else if (t->pool_used < t->cfg.pending_max) {
		*idx = t->pool_used++;
	} else {
		return NULL;
	}
	return &t->pool[*idx];
}

static void pend_release(struct traces *t, __u32 slot)
{
	__u32 idx = t->slots[slot] - 1;
	struct pend *p = &t->pool[idx];

	free(p->tracestate);
	p->tracestate = NULL;
	p->next_free = t->free_head;
	t->free_head = idx + 1;
	slot_delete(t, slot);
	t->npending--;
	__atomic_store_n(&t->st.pending, t->npending, __ATOMIC_RELAXED);
}

/* ---- spans ------------------------------------------------------------------------------ */

/* dst = src, cut to fit cap bytes with its NUL */
static void copy_str(char *dst, size_t cap, const char *src)
{
	size_t n = strnlen(src, cap - 1);

	memcpy(dst, src, n);
	dst[n] = 0;
}

/* printable ASCII kept, every other byte (space, controls, non-ASCII) as %XX */
static void escape_target(char *out, size_t cap, const char *in, size_t n)
{
	static const char hex[] = "0123456789ABCDEF";
	size_t o = 0;

	for (size_t i = 0; i < n && o + 4 <= cap; i++) {
		unsigned char c = (unsigned char)in[i];

		if (c > 0x20 && c < 0x7f) {
			out[o++] = (char)c;
		} else {
			out[o++] = '%';
			out[o++] = hex[c >> 4];
			out[o++] = hex[c & 15];
		}
	}
	out[o] = 0;
}

/*
 * A client span's Host (after the target in the record): kept only when it
 * is all printable ASCII without spaces, as a host[:port] is; anything else
 * leaves the span named by the address it connected to.
 */
static void copy_host(char *out, size_t cap, const struct bs_ev_span_start *ev)
{
	size_t n = ev->hlen, i;
	const char *h = ev->target + ev->tlen;

	out[0] = 0;
	if (!n || n >= cap || (size_t)ev->tlen + n > sizeof(ev->target))
		return;
	for (i = 0; i < n; i++)
		if ((unsigned char)h[i] <= ' ' || (unsigned char)h[i] > '~')
			return;
	memcpy(out, h, n);
	out[n] = 0;
}

/* The span of request number seq of p's connection, ended by e. */
static void build(struct traces *t, const struct pend *p, const struct bs_ev_span_end *e,
		  struct span *sp)
{
	const struct bs_ev_span_start *ev = &p->ev;
	struct app *a = t->app;
	__u32 plen = ev->plen < ev->tlen ? ev->plen : ev->tlen;
	int path_cut = (ev->flags & BS_SPAN_F_TTRUNC) && plen == ev->tlen;

	memset(sp, 0, sizeof(*sp));
	if ((ev->flags & (BS_SPAN_F_CLIENT | BS_SPAN_F_PARENT)) ==
	    (BS_SPAN_F_CLIENT | BS_SPAN_F_PARENT)) {
		/* the target's request carries its own traceparent: that names
		 * this very span (the upstream's server span is its child);
		 * its parent inside the target is not visible from here */
		memcpy(sp->trace_id, ev->trace_id, 16);
		memcpy(sp->span_id, ev->parent_id, 8);
	} else if (ev->flags & BS_SPAN_F_PARENT) {
		memcpy(sp->trace_id, ev->trace_id, 16);
		memcpy(sp->parent_id, ev->parent_id, 8);
		random_id(t, sp->span_id, 8);
	} else {
		random_id(t, sp->trace_id, 16);
		random_id(t, sp->span_id, 8);
	}
	sp->kind = (ev->flags & BS_SPAN_F_CLIENT) ? SPAN_KIND_CLIENT : SPAN_KIND_SERVER;
	sp->trace_flags = 1;
	sp->start_unix_ns = (__u64)((__s64)ev->start_ns + t->mono_to_real);
	sp->end_unix_ns = (__u64)((__s64)e->end_ns + t->mono_to_real);
	if (sp->end_unix_ns < sp->start_unix_ns)
		sp->end_unix_ns = sp->start_unix_ns;
	sp->pid = ev->tgid;
	sp->server_port = ev->port;
	sp->peer_port = ev->peer_port;
	sp->req_body = e->req_body;
	sp->resp_body = e->resp_body;
	if (e->how == BS_SPAN_DONE) {
		sp->http_status = e->status;
		/* semconv: a 4xx is the client's error, not the server's */
		if (e->status >= 500 || (sp->kind == SPAN_KIND_CLIENT && e->status >= 400)) {
			sp->status = SPAN_STATUS_ERROR;
			snprintf(sp->status_msg, sizeof(sp->status_msg), "HTTP %u", e->status);
		}
	} else {
		sp->status = SPAN_STATUS_ERROR;
		snprintf(sp->status_msg, sizeof(sp->status_msg),
			 "connection closed before the response ended");
	}
	copy_str(sp->method, sizeof(sp->method), collect_method_name(ev->method));
	escape_target(sp->target, sizeof(sp->target), ev->target, ev->tlen);
	collect_addr_text(ev->family, ev->peer, sp->peer_addr, sizeof(sp->peer_addr));
	if (sp->kind == SPAN_KIND_CLIENT)
		copy_host(sp->host, sizeof(sp->host), ev);
	if (p->tracestate)
		copy_str(sp->tracestate, sizeof(sp->tracestate), p->tracestate);

	pthread_mutex_lock(&a->lock);
	/* an upstream's paths are not the target's routes */
	if (sp->kind == SPAN_KIND_SERVER)
		routes_label_for(a->routes, ev->target, plen, path_cut, sp->route);
	if (t->cfg.service) {
		copy_str(sp->service, sizeof(sp->service), t->cfg.service);
	} else {
		copy_str(sp->service, sizeof(sp->service), "bun");
		for (int i = 0; i < a->targets.n; i++)
			if (a->targets.t[i].pid == ev->tgid)
				copy_str(sp->service, sizeof(sp->service), a->targets.t[i].comm);
	}
	pthread_mutex_unlock(&a->lock);
}

static void on_start(struct traces *t, const struct bs_ev_span_start *ev)
{
	__u32 slot, idx;
	struct pend *p;

	slot = find_slot(t, ev->tgid, ev->fd, ev->conn, ev->seq);
	if (t->slots[slot]) {
		/* the same key again: the first never ended (a connection the
		 * kernel lost track of); it will not now */
		pend_release(t, slot);
		bump(&t->st.dropped_incomplete, 1);
		slot = find_slot(t, ev->tgid, ev->fd, ev->conn, ev->seq);
	}
	p = pend_alloc(t, &idx);
	if (!p) {
		bump(&t->st.dropped_pending_full, 1);
		return;
	}
	memcpy(&p->ev, ev, sizeof(*ev));
	p->tracestate = NULL;
	p->ws = false;
	for (int i = 0; i < TS_RING; i++) {
		struct ts_rec *r = &t->ts[i];

		if (r->used && r->tgid == ev->tgid && r->fd == ev->fd && r->conn == ev->conn &&
		    r->seq == ev->seq) {
			/* W3C: without a valid traceparent, tracestate means nothing */
			if (ev->flags & BS_SPAN_F_PARENT)
				p->tracestate = strdup(r->value);
			r->used = 0;
			break;
		}
	}
	t->slots[slot] = idx + 1;
	t->npending++;
	__atomic_store_n(&t->st.pending, t->npending, __ATOMIC_RELAXED);
}

static void on_end(struct traces *t, const struct bs_ev_span_end *e)
{
	__u32 n = e->count ? e->count : 1;

	for (__u32 i = 0; i < n; i++) {
		__u32 slot = find_slot(t, e->tgid, e->fd, e->conn, e->seq + i);
		struct pend *p;

		/* its start was dropped (counted then), or it was not traced (the
		 * pipeline overflow's record covers untraced requests too) */
		if (!t->slots[slot])
			continue;
		p = &t->pool[t->slots[slot] - 1];
		if (p->ws)
			continue; /* not for an open WebSocket */
		/* BS_SPAN_UNSTART: Bun refused the head, there was no request */
		if (e->how != BS_SPAN_UNSTART) {
			build(t, p, e, &t->scratch);
			tracer_submit(t->tracer, &t->scratch);
			bump(&t->st.built, 1);
			if (e->how == BS_SPAN_DONE && e->status == 101 &&
			    !(p->ev.flags & BS_SPAN_F_CLIENT)) {
				/* the connection is a WebSocket now: its span later
				 * (a client's WebSockets are not followed) */
				p->ws = true;
				memcpy(p->up_trace, t->scratch.trace_id, 16);
				memcpy(p->up_span, t->scratch.span_id, 8);
				continue;
			}
		}
		pend_release(t, slot);
	}
}

/* A WebSocket whose upgrade had a span closed: the span of its life. */
static void on_ws_end(struct traces *t, const struct bs_ev_ws_end *e)
{
	__u32 slot = find_slot(t, e->tgid, e->fd, e->conn, e->seq);
	struct bs_ev_span_end end = { .end_ns = e->end_ns, .how = BS_SPAN_DONE };
	struct span *sp = &t->scratch;
	const struct pend *p;
	struct pend tmp;

	/* the upgrade's span was dropped before it got here (counted then) */
	if (!t->slots[slot] || !t->pool[t->slots[slot] - 1].ws)
		return;
	p = &t->pool[t->slots[slot] - 1];
	/* its life: from the 101 on; the upgrade's target, peer and resource */
	tmp = *p;
	tmp.ev.start_ns = e->open_ns;
	tmp.ev.flags |= BS_SPAN_F_PARENT;
	memcpy(tmp.ev.trace_id, p->up_trace, 16);
	memcpy(tmp.ev.parent_id, p->up_span, 8);
	build(t, &tmp, &end, sp);
	sp->ws = 1;
	sp->tracestate[0] = 0;
	sp->ws_close = e->close_code;
	sp->ws_msgs[0] = e->msgs[0];
	sp->ws_msgs[1] = e->msgs[1];
	sp->ws_bytes[0] = e->bytes[0];
	sp->ws_bytes[1] = e->bytes[1];
	tracer_submit(t->tracer, sp);
	bump(&t->st.built, 1);
	pend_release(t, slot);
}

static void on_tracestate(struct traces *t, const struct bs_ev_tracestate *ev)
{
	struct ts_rec *r = &t->ts[t->ts_next++ % TS_RING];
	size_t n = ev->len < BS_TRACESTATE_MAX ? ev->len : BS_TRACESTATE_MAX;

	r->tgid = ev->tgid;
	r->fd = ev->fd;
	r->conn = ev->conn;
	r->seq = ev->seq;
	memcpy(r->value, ev->value, n);
	r->value[n] = 0;
	r->used = 1;
}

static int on_record(void *ctx, void *data, size_t size)
{
	struct traces *t = ctx;
	__u32 type = size >= sizeof(__u32) ? *(__u32 *)data : 0;

	if (type == BS_EV_SPAN_START && size >= sizeof(struct bs_ev_span_start))
		on_start(t, data);
	else if (type == BS_EV_SPAN_END && size >= sizeof(struct bs_ev_span_end))
		on_end(t, data);
	else if (type == BS_EV_TRACESTATE && size >= sizeof(struct bs_ev_tracestate))
		on_tracestate(t, data);
	else if (type == BS_EV_WS_END && size >= sizeof(struct bs_ev_ws_end))
		on_ws_end(t, data);
	return 0;
}

/* Drop spans that will never end: too old, or their process exited. */
static void sweep(struct traces *t)
{
	__u32 forget[FORGET_MAX];
	int nforget;
	__u64 now = mono_now();

	pthread_mutex_lock(&t->forget_lock);
	nforget = t->nforget;
	memcpy(forget, t->forget, sizeof(forget[0]) * (size_t)nforget);
	t->nforget = 0;
	pthread_mutex_unlock(&t->forget_lock);

	if (!t->npending)
		return;
	for (__u32 i = 0; i <= t->mask;) {
		const struct pend *p;
		bool drop;

		if (!t->slots[i]) {
			i++;
			continue;
		}
		p = &t->pool[t->slots[i] - 1];
		drop = !p->ws && now > p->ev.start_ns && now - p->ev.start_ns > t->cfg.max_age_ns;
		for (int k = 0; k < nforget && !drop; k++)
			drop = p->ev.tgid == forget[k];
		if (!drop) {
			i++;
			continue;
		}
		/* the backward shift may move another entry into slot i: look again */
		pend_release(t, i);
		bump(&t->st.dropped_incomplete, 1);
	}
}

static void *traces_thread(void *arg)
{
	struct traces *t = arg;
	__u64 last = mono_now();

	while (!t->stop) {
		/* woken only when the ring fills up (see span_wakeup()): read
		 * what is there every 50 ms in any case */
		int n = ring_buffer__poll(t->rb, 50);
		__u64 now;

		if (n >= 0)
			n = ring_buffer__consume(t->rb);
		if (n < 0 && n != -EINTR) {
			pr_warn("traces: reading the spans ring buffer: %s\n", strerror(-n));
			break;
		}
		now = mono_now();
		if (now - last >= 1000000000ULL) {
			last = now;
			clock_sync(t);
			sweep(t);
		}
	}
	return NULL;
}

struct traces *traces_start(struct app *a, int spans_fd, const struct traces_cfg *cfg,
			    struct tracer *tracer, char *err, size_t errlen)
{
	struct traces *t = calloc(1, sizeof(*t));
	__u32 nslots = 16;
	int e;

	if (!t) {
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	t->app = a;
	t->tracer = tracer;
	t->cfg = *cfg;
	if (!t->cfg.pending_max)
		t->cfg.pending_max = PENDING_DEFAULT;
	if (!t->cfg.max_age_ns)
		t->cfg.max_age_ns = MAX_AGE_DEFAULT;
	while (nslots < 2 * t->cfg.pending_max)
		nslots <<= 1;
	t->mask = nslots - 1;
	t->slots = calloc(nslots, sizeof(*t->slots));
	/* calloc()ed pages stay untouched until spans use them */
	t->pool = calloc(t->cfg.pending_max, sizeof(*t->pool));
	if (!t->slots || !t->pool) {
		snprintf(err, errlen, "out of memory for %u pending spans", t->cfg.pending_max);
		goto fail;
	}
	if (getrandom(t->rng, sizeof(t->rng), 0) != sizeof(t->rng)) {
		snprintf(err, errlen, "getrandom: %s", strerror(errno));
		goto fail;
	}
	t->rng[0] |= 1;
	clock_sync(t);
	pthread_mutex_init(&t->forget_lock, NULL);
	t->rb = ring_buffer__new(spans_fd, on_record, t, NULL);
	if (!t->rb) {
		snprintf(err, errlen, "cannot open the spans ring buffer: %s", strerror(errno));
		goto fail_lock;
	}
	e = pthread_create(&t->thread, NULL, traces_thread, t);
	if (e) {
		snprintf(err, errlen, "cannot start the traces thread: %s", strerror(e));
		ring_buffer__free(t->rb);
		goto fail_lock;
	}
	return t;
fail_lock:
	pthread_mutex_destroy(&t->forget_lock);
fail:
	free(t->slots);
	free(t->pool);
	free(t);
	return NULL;
}

void traces_stop(struct traces *t)
{
	if (!t)
		return;
	t->stop = 1;
	pthread_join(t->thread, NULL);
	/* what the kernel wrote before the programs went away */
	ring_buffer__consume(t->rb);
	ring_buffer__free(t->rb);
	for (__u32 i = 0; i < t->pool_used; i++)
		free(t->pool[i].tracestate);
	pthread_mutex_destroy(&t->forget_lock);
	free(t->slots);
	free(t->pool);
	free(t);
}

void traces_get_stats(struct traces *t, struct traces_stats *st)
{
	unsigned long long *dst = (unsigned long long *)st;
	const unsigned long long *src = (const unsigned long long *)&t->st;

	for (size_t i = 0; i < sizeof(*st) / sizeof(*dst); i++)
		dst[i] = __atomic_load_n(&src[i], __ATOMIC_RELAXED);
}

void traces_forget_tgid(struct traces *t, __u32 tgid)
{
	if (!t)
		return;
	pthread_mutex_lock(&t->forget_lock);
	if (t->nforget < FORGET_MAX)
		t->forget[t->nforget++] = tgid;
	pthread_mutex_unlock(&t->forget_lock);
}
