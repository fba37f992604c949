// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * WebSocket figures: the ws_agg and ws_close maps (per-CPU hashes keyed by
 * target, port and upgrade route; see struct bs_ws_key) read when scraped.
 *
 * A key names its route by id, or by path hash while the kernel's routes map
 * did not know the path yet; rows are merged here by the route's label, so
 * one connection counted under both forms is still one series.
 */
#include <errno.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <bpf/bpf.h>

#include "daemon.h"
#include "expo.h"
#include "routes.h"

/* ---- layout (mirrors bpf/bunscope.bpf.c) ----------------------------------- */

static const double life_bounds[BS_LIFE_BOUNDS] = {
	0.1, 1, 10, 60, 300, 900, 1800, 3600, 14400, 86400,
};

static const char *const kind_names[BS_WS_KINDS] = {
	[BS_WS_TEXT] = "text", [BS_WS_BINARY] = "binary", [BS_WS_PING] = "ping",
	[BS_WS_PONG] = "pong", [BS_WS_CLOSE] = "close",
};

static const char *const dir_names[2] = { "in", "out" };

struct ws_row {
	__u32 tgid;
	__u16 port;
	__u16 code;	    /* close rows only */
	const char *route;  /* label, owned by the route table */
	struct bs_ws_val v; /* close rows: v.closed holds the count */
};

struct ws_rows {
	struct ws_row *r;
	int n, cap;
};

static const char *ws_route_label(const struct app *a, const struct bs_ws_key *k)
{
	__u32 id = k->route_id;
	const char *l;

	if (id == BS_ROUTE_UNRESOLVED && collect_route_of_hash(a, k->hash, &id))
		return "_unknown";
	l = routes_label(a->routes, id);
	return l ? l : "_unknown";
}

/* The row for (tgid, port, route, code), added when new; NULL on ENOMEM. */
static struct ws_row *ws_row_of(struct ws_rows *rs, __u32 tgid, __u16 port, const char *route,
				__u16 code)
{
	for (int i = 0; i < rs->n; i++) {
		struct ws_row *r = &rs->r[i];

		if (r->tgid == tgid && r->port == port && r->code == code &&
		    !strcmp(r->route, route))
			return r;
	}
	if (rs->n == rs->cap) {
		int cap = rs->cap ? rs->cap * 2 : 32;
		struct ws_row *nr = realloc(rs->r, (size_t)cap * sizeof(*nr));

		if (!nr)
			return NULL;
		rs->r = nr;
		rs->cap = cap;
	}
	memset(&rs->r[rs->n], 0, sizeof(rs->r[0]));
	rs->r[rs->n].tgid = tgid;
	rs->r[rs->n].port = port;
	rs->r[rs->n].route = route;
	rs->r[rs->n].code = code;
	return &rs->r[rs->n++];
}

/*
 * Read one of the two maps into rows merged by label.  vsz is the value size
 * (struct bs_ws_val or __u64); a __u64 value lands in v.closed.  Only live
 * targets count.  Returns 0 or -ENOMEM.
 */
static int ws_read(const struct app *a, int fd, size_t vsz, struct ws_rows *rs)
{
	size_t stride = (vsz + 7) & ~(size_t)7;
	void *buf = malloc(stride * (size_t)collect_ncpus());
	struct bs_ws_key key, next;
	struct bs_ws_val sum;
	void *prev = NULL;
	int err = 0;

	if (!buf)
		return -ENOMEM;
	while (!bpf_map_get_next_key(fd, prev, &next)) {
		struct ws_row *r;

		key = next;
		prev = &key;
		if (!collect_live_tgid(a, key.tgid) || bpf_map_lookup_elem(fd, &key, buf))
			continue;
		memset(&sum, 0, sizeof(sum));
		if (vsz == sizeof(__u64))
			collect_sum_percpu(buf, vsz, &sum.closed);
		else
			collect_sum_percpu(buf, vsz, &sum);
		r = ws_row_of(rs, key.tgid, key.port, ws_route_label(a, &key),
			      vsz == sizeof(__u64) ? key.code : 0);
		if (!r) {
			err = -ENOMEM;
			break;
		}
		for (size_t w = 0; w < sizeof(sum) / sizeof(__u64); w++)
			((__u64 *)&r->v)[w] += ((const __u64 *)&sum)[w];
	}
	free(buf);
	return err;
}

static int cmp_row(const void *pa, const void *pb)
{
	const struct ws_row *a = pa, *b = pb;
	int c;

	if (a->tgid != b->tgid)
		return a->tgid < b->tgid ? -1 : 1;
	if (a->port != b->port)
		return a->port < b->port ? -1 : 1;
	if ((c = strcmp(a->route, b->route)))
		return c;
	return a->code < b->code ? -1 : a->code > b->code;
}

struct ws_lbl {
	char pid[16], port[8], code[16];
	struct expo_label l[6];
};

static int ws_labels(struct ws_lbl *b, const struct ws_row *r)
{
	snprintf(b->pid, sizeof(b->pid), "%u", r->tgid);
	snprintf(b->port, sizeof(b->port), "%u", r->port);
	b->l[0] = (struct expo_label){ "pid", b->pid };
	b->l[1] = (struct expo_label){ "http_route", r->route };
	b->l[2] = (struct expo_label){ "server_port", b->port };
	return 3;
}

static const char *code_label(char *buf, size_t n, __u16 code)
{
	if (code == BS_WS_CODE_ABNORMAL)
		return "abnormal";
	if (code == BS_WS_CODE_INVALID)
		return "invalid";
	snprintf(buf, n, "%u", code);
	return buf;
}

/* One sample per row, direction and kind of the [2][BS_WS_KINDS] array at off. */
static void write_per_kind(struct sbuf *sb, const char *name, const struct ws_rows *rs, size_t off)
{
	struct ws_lbl b;

	for (int i = 0; i < rs->n; i++) {
		const __u64 *a = (const __u64 *)((const char *)&rs->r[i].v + off);

		for (int d = 0; d < 2; d++) {
			for (int k = 0; k < BS_WS_KINDS; k++) {
				int nl = ws_labels(&b, &rs->r[i]);

				b.l[nl++] = (struct expo_label){ "direction", dir_names[d] };
				b.l[nl++] = (struct expo_label){ "opcode", kind_names[k] };
				expo_sample_u64(sb, name, b.l, nl, a[d * BS_WS_KINDS + k]);
			}
		}
	}
}

static void ws_write(struct sbuf *sb, const struct ws_rows *rs, const struct ws_rows *cs)
{
	unsigned long long counts[BS_LIFE_SLOTS];
	struct ws_lbl b;
	int i, nl;

	expo_header(sb, "bun_websocket_active_connections", "gauge",
		    "Open WebSocket connections (101 sent, connection not closed yet): Bun's "
		    "server.pendingWebSockets.");
	for (i = 0; i < rs->n; i++) {
		const struct bs_ws_val *v = &rs->r[i].v;

		nl = ws_labels(&b, &rs->r[i]);
		expo_sample_u64(sb, "bun_websocket_active_connections", b.l, nl,
				v->opened >= v->closed ? v->opened - v->closed : 0);
	}
	expo_header(sb, "bun_websocket_opened_total", "counter",
		    "WebSocket upgrades: 101 responses handed to the kernel.");
	for (i = 0; i < rs->n; i++) {
		nl = ws_labels(&b, &rs->r[i]);
		expo_sample_u64(sb, "bun_websocket_opened_total", b.l, nl, rs->r[i].v.opened);
	}
	expo_header(sb, "bun_websocket_closed_total", "counter",
		    "WebSocket connections closed, by the status code of the first close frame "
		    "(\"abnormal\": the connection ended without one; \"invalid\": a code outside "
		    "1000..4999, or a one-byte body).");
	for (i = 0; i < cs->n; i++) {
		nl = ws_labels(&b, &cs->r[i]);
		b.l[nl++] = (struct expo_label){ "code", code_label(b.code, sizeof(b.code),
								    cs->r[i].code) };
		expo_sample_u64(sb, "bun_websocket_closed_total", b.l, nl, cs->r[i].v.closed);
	}
	expo_header(sb, "bun_websocket_messages_total", "counter",
		    "WebSocket messages by direction (in: from the client) and opcode; a "
		    "fragmented message counts once, control frames each.");
	write_per_kind(sb, "bun_websocket_messages_total", rs,
		       offsetof(struct bs_ws_val, messages));
	expo_header(sb, "bun_websocket_bytes_total", "counter",
		    "WebSocket payload bytes (without frame headers) by direction and opcode.");
	write_per_kind(sb, "bun_websocket_bytes_total", rs, offsetof(struct bs_ws_val, bytes));
	expo_header(sb, "bun_websocket_connection_duration_seconds", "histogram",
		    "Lifetime of closed WebSocket connections, from the 101 to the close.");
	for (i = 0; i < rs->n; i++) {
		nl = ws_labels(&b, &rs->r[i]);
		for (int s = 0; s < BS_LIFE_SLOTS; s++)
			counts[s] = rs->r[i].v.life[s];
		expo_histogram(sb, "bun_websocket_connection_duration_seconds", b.l, nl,
			       life_bounds, BS_LIFE_BOUNDS, counts,
			       (double)rs->r[i].v.life_sum_ns / 1e9);
	}
}

int collect_ws_metrics(const struct app *a, struct sbuf *sb)
{
	struct ws_rows rs = {}, cs = {};
	int err;

	err = ws_read(a, loader_fd_ws_agg(&a->ld), sizeof(struct bs_ws_val), &rs);
	if (!err)
		err = ws_read(a, loader_fd_ws_close(&a->ld), sizeof(__u64), &cs);
	if (!err) {
		/* no rows: NULL, which qsort must not get even with a count of 0 */
		if (rs.n > 1)
			qsort(rs.r, (size_t)rs.n, sizeof(*rs.r), cmp_row);
		if (cs.n > 1)
			qsort(cs.r, (size_t)cs.n, sizeof(*cs.r), cmp_row);
		ws_write(sb, &rs, &cs);
	}
	free(rs.r);
	free(cs.r);
	return err;
}

int collect_ws_totals(const struct app *a, __u32 tgid, struct ws_totals *t)
{
	struct ws_rows rs = {};
	int err;

	memset(t, 0, sizeof(*t));
	err = ws_read(a, loader_fd_ws_agg(&a->ld), sizeof(struct bs_ws_val), &rs);
	for (int i = 0; !err && i < rs.n; i++) {
		const struct bs_ws_val *v = &rs.r[i].v;

		if (rs.r[i].tgid != tgid)
			continue;
		t->pending += v->opened >= v->closed ? v->opened - v->closed : 0;
		t->opened += v->opened;
		for (int d = 0; d < 2; d++) {
			for (int k = 0; k < BS_WS_KINDS; k++) {
				t->messages[d] += v->messages[d][k];
				t->bytes[d] += v->bytes[d][k];
			}
		}
	}
	free(rs.r);
	return err;
}
