// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * What the endpoints serve: the kernel maps are read when scraped (nothing
 * per request happens in userspace), merged with the few completions the
 * daemon aggregated itself (those whose path was new to the kernel), and
 * written as Prometheus text or JSON.
 */
#include <errno.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <bpf/bpf.h>
#include <bpf/libbpf.h>

#include "bs_conn.h"
#include "daemon.h"
#include "expo.h"
#include "log.h"
#include "routes.h"

/* ---- histogram layout (mirrors bpf/bunscope.bpf.c) --------------------- */

static const double dur_bounds[BS_DUR_BOUNDS] = {
	0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1, 2.5, 5, 7.5, 10,
};
static const double size_bounds[BS_SIZE_BOUNDS] = {
	0, 64, 256, 1024, 4096, 16384, 65536, 262144, 1048576, 4194304, 16777216,
};

unsigned int bs_dur_slot(__u64 ns)
{
	for (unsigned int i = 0; i < BS_DUR_BOUNDS; i++)
		if ((double)ns <= dur_bounds[i] * 1e9)
			return i;
	return BS_DUR_BOUNDS;
}

unsigned int bs_size_slot(__u64 n)
{
	for (unsigned int i = 0; i < BS_SIZE_BOUNDS; i++)
		if ((double)n <= size_bounds[i])
			return i;
	return BS_SIZE_BOUNDS;
}

static const char *const method_names[BS_M_MAX] = {
	[BS_M_OTHER] = "_OTHER",    [BS_M_GET] = "GET",		[BS_M_HEAD] = "HEAD",
	[BS_M_POST] = "POST",	    [BS_M_PUT] = "PUT",		[BS_M_DELETE] = "DELETE",
	[BS_M_CONNECT] = "CONNECT", [BS_M_OPTIONS] = "OPTIONS", [BS_M_TRACE] = "TRACE",
	[BS_M_PATCH] = "PATCH",	    [BS_M_QUERY] = "QUERY",
};

const char *collect_method_name(unsigned int method)
{
	return method < BS_M_MAX ? method_names[method] : "_OTHER";
}

static const char *const reject_names[BS_REJ_MAX] = {
	[BS_REJ_METHOD] = "method",
	[BS_REJ_TARGET] = "target",
	[BS_REJ_VERSION] = "version",
	[BS_REJ_HEADER] = "header",
	[BS_REJ_TOO_LARGE] = "too_large",
	[BS_REJ_HOST] = "host",
	[BS_REJ_CONTENT_LENGTH] = "content_length",
	[BS_REJ_TRANSFER_ENCODING] = "transfer_encoding",
	[BS_REJ_CHUNKED] = "chunked",
	[BS_REJ_TLS] = "tls",
	[BS_REJ_GARBAGE] = "garbage",
	[BS_REJ_LATE] = "late",
};

/* ---- userspace aggregates ------------------------------------------------ */

struct uagg_ent {
	int used;
	struct bs_agg_key k;
	struct bs_agg_val v;
};

struct uagg {
	struct uagg_ent *e;
	unsigned int mask; /* table size - 1 */
	unsigned int cap;  /* entries allowed */
	unsigned int n;
	unsigned long long dropped;
};

struct uagg *uagg_new(unsigned int capacity)
{
	struct uagg *u = calloc(1, sizeof(*u));
	unsigned int size = 16;

	if (!u)
		return NULL;
	while (size < 2 * capacity)
		size <<= 1;
	u->e = calloc(size, sizeof(*u->e));
	if (!u->e) {
		free(u);
		return NULL;
	}
	u->mask = size - 1;
	u->cap = capacity;
	return u;
}

void uagg_free(struct uagg *u)
{
	if (!u)
		return;
	free(u->e);
	free(u);
}

static unsigned int key_hash(const struct bs_agg_key *k)
{
	__u64 h = ((__u64)k->tgid << 32 | k->route_id) * 0x9E3779B97F4A7C15ULL;

	h ^= ((__u64)k->port << 32 | (__u64)k->status << 8 | k->method) * 0xC2B2AE3D27D4EB4FULL;
	return (unsigned int)(h ^ (h >> 31));
}

static bool key_eq(const struct bs_agg_key *a, const struct bs_agg_key *b)
{
	return a->tgid == b->tgid && a->route_id == b->route_id && a->port == b->port &&
	       a->status == b->status && a->method == b->method;
}

static struct uagg_ent *uagg_slot(struct uagg *u, const struct bs_agg_key *k, bool create)
{
	for (unsigned int i = key_hash(k) & u->mask;; i = (i + 1) & u->mask) {
		struct uagg_ent *e = &u->e[i];

		if (e->used && key_eq(&e->k, k))
			return e;
		if (!e->used) {
			if (!create || u->n >= u->cap)
				return NULL;
			e->used = 1;
			e->k = *k;
			memset(&e->v, 0, sizeof(e->v));
			u->n++;
			return e;
		}
	}
}

int uagg_add(struct uagg *u, const struct bs_agg_key *k, __u64 dur_ns, __u64 req_body,
	     __u64 resp_body)
{
	struct uagg_ent *e = uagg_slot(u, k, true);

	if (!e) {
		u->dropped++;
		return -ENOSPC;
	}
	e->v.dur[bs_dur_slot(dur_ns)]++;
	e->v.dur_sum_ns += dur_ns;
	e->v.req_size[bs_size_slot(req_body)]++;
	e->v.req_size_sum += req_body;
	e->v.resp_size[bs_size_slot(resp_body)]++;
	e->v.resp_size_sum += resp_body;
	e->v.count++;
	return 0;
}

void uagg_forget_tgid(struct uagg *u, __u32 tgid)
{
	/* rebuild: deleting from a linear-probing table in place is fiddly */
	unsigned int size = u->mask + 1;
	struct uagg_ent *old = u->e, *fresh = calloc(size, sizeof(*fresh));

	if (!fresh)
		return;
	u->e = fresh;
	u->n = 0;
	for (unsigned int i = 0; i < size; i++) {
		struct uagg_ent *e;

		if (!old[i].used || old[i].k.tgid == tgid)
			continue;
		e = uagg_slot(u, &old[i].k, true);
		if (e)
			e->v = old[i].v;
	}
	free(old);
}

unsigned long long uagg_dropped(const struct uagg *u)
{
	return u->dropped;
}

/* ---- reading the kernel maps --------------------------------------------- */

int collect_ncpus(void)
{
	static int n;

	if (!n)
		n = libbpf_num_possible_cpus();
	return n > 0 ? n : 1;
}

/* Sum of the per-CPU copies of a value made of __u64 fields. */
void collect_sum_percpu(const void *percpu, size_t size, void *out)
{
	size_t words = size / sizeof(__u64), stride = (size + 7) & ~(size_t)7;
	__u64 *o = out;

	memset(out, 0, size);
	for (int c = 0; c < collect_ncpus(); c++) {
		const __u64 *v = (const __u64 *)((const char *)percpu + (size_t)c * stride);

		for (size_t w = 0; w < words; w++)
			o[w] += v[w];
	}
}

struct stat_row {
	struct bs_server_key k;
	struct bs_server_stats s;
};

/* A per-CPU array element, summed over the CPUs; 0 on success. */
int collect_read_percpu(int fd, __u32 idx, void *out, size_t vsz)
{
	size_t stride = (vsz + 7) & ~(size_t)7;
	void *buf = malloc(stride * (size_t)collect_ncpus());
	int err;

	if (!buf)
		return -ENOMEM;
	err = bpf_map_lookup_elem(fd, &idx, buf) ? -errno : 0;
	if (!err)
		collect_sum_percpu(buf, vsz, out);
	free(buf);
	return err;
}

/* Zero a per-CPU array element on every CPU. */
void collect_zero_percpu(int fd, __u32 idx, size_t vsz)
{
	size_t stride = (vsz + 7) & ~(size_t)7;
	void *buf = calloc((size_t)collect_ncpus(), stride);

	if (buf)
		bpf_map_update_elem(fd, &idx, buf, BPF_ANY);
	free(buf);
}

/* One row per (target, port) the kernel has counted. */
static int read_stats(const struct app *a, struct stat_row **rows_out)
{
	struct stat_row *rows = calloc(BS_STATS_SLOTS, sizeof(*rows));
	int fd = loader_fd_stats(&a->ld), n = 0;

	if (!rows)
		return -ENOMEM;
	for (int i = 0; i < a->targets.n; i++) {
		const struct target *t = &a->targets.t[i];

		for (int p = 0; p < BS_PORT_SLOTS; p++) {
			__u32 port = loader_target_port(&a->ld, t->slot, p);

			if (!(port & BS_PORT_USED))
				continue;
			rows[n].k.tgid = t->pid;
			rows[n].k.port = (__u16)port;
			if (!collect_read_percpu(fd, (__u32)(t->slot * BS_PORT_SLOTS + p),
						 &rows[n].s, sizeof(rows[n].s)))
				n++;
		}
	}
	*rows_out = rows;
	return n;
}

struct agg_row {
	struct bs_agg_key k;
	struct bs_agg_val v;
};

static int add_row(struct agg_row **rows, int *n, int *cap)
{
	if (*n == *cap) {
		struct agg_row *r = realloc(*rows, (size_t)(*cap ? *cap * 2 : 64) * sizeof(*r));

		if (!r)
			return -ENOMEM;
		*rows = r;
		*cap = *cap ? *cap * 2 : 64;
	}
	memset(&(*rows)[*n], 0, sizeof(**rows));
	return (*n)++;
}

/* Every histogram series: the kernel's (series -> agg) and the daemon's own. */
static int read_agg(const struct app *a, struct agg_row **rows_out)
{
	int sfd = loader_fd_series(&a->ld), afd = loader_fd_agg(&a->ld);
	struct agg_row *rows = NULL;
	struct bs_agg_key key, next;
	int n = 0, cap = 0, j;
	void *prev = NULL;
	__u32 idx;

	while (!bpf_map_get_next_key(sfd, prev, &next)) {
		key = next;
		prev = &key;
		if (bpf_map_lookup_elem(sfd, &key, &idx))
			continue; /* deleted meanwhile */
		if ((j = add_row(&rows, &n, &cap)) < 0)
			break;
		rows[j].k = key;
		if (collect_read_percpu(afd, idx, &rows[j].v, sizeof(rows[j].v)))
			n--;
	}

	/* fold in what the daemon aggregated itself */
	for (unsigned int i = 0; i <= a->uagg->mask; i++) {
		const struct uagg_ent *e = &a->uagg->e[i];
		__u64 *dst;

		if (!e->used)
			continue;
		for (j = 0; j < n; j++)
			if (key_eq(&rows[j].k, &e->k))
				break;
		if (j == n) {
			if ((j = add_row(&rows, &n, &cap)) < 0)
				break;
			rows[j].k = e->k;
		}
		dst = (__u64 *)&rows[j].v;
		for (size_t w = 0; w < sizeof(e->v) / sizeof(__u64); w++)
			dst[w] += ((const __u64 *)&e->v)[w];
	}
	*rows_out = rows;
	return n;
}

const double *collect_dur_bounds(void)
{
	return dur_bounds;
}

void collect_http_snapshot(struct app *a, struct shed_snap *snap)
{
	struct agg_row *rows = NULL;
	struct timespec ts;
	int n = read_agg(a, &rows);

	memset(snap, 0, sizeof(*snap));
	clock_gettime(CLOCK_MONOTONIC, &ts);
	snap->t_ms = (__u64)ts.tv_sec * 1000 + (__u64)ts.tv_nsec / 1000000;
	for (int i = 0; i < n; i++) {
		for (int b = 0; b < BS_DUR_SLOTS; b++)
			snap->dur[b] += rows[i].v.dur[b];
		snap->total += rows[i].v.count;
		if (rows[i].k.status >= 500 && rows[i].k.status <= 599)
			snap->n5xx += rows[i].v.count;
	}
	free(rows);
}

static int cmp_agg(const void *pa, const void *pb)
{
	const struct bs_agg_key *a = &((const struct agg_row *)pa)->k;
	const struct bs_agg_key *b = &((const struct agg_row *)pb)->k;

	if (a->tgid != b->tgid)
		return a->tgid < b->tgid ? -1 : 1;
	if (a->port != b->port)
		return a->port < b->port ? -1 : 1;
	if (a->route_id != b->route_id)
		return a->route_id < b->route_id ? -1 : 1;
	if (a->method != b->method)
		return a->method < b->method ? -1 : 1;
	if (a->status != b->status)
		return a->status < b->status ? -1 : 1;
	return 0;
}

static int cmp_stat(const void *pa, const void *pb)
{
	const struct bs_server_key *a = &((const struct stat_row *)pa)->k;
	const struct bs_server_key *b = &((const struct stat_row *)pb)->k;

	if (a->tgid != b->tgid)
		return a->tgid < b->tgid ? -1 : 1;
	return a->port < b->port ? -1 : a->port > b->port;
}

static __s64 collect_pending(const struct bs_server_stats *s)
{
	__s64 p = (__s64)(s->started - s->completed - s->aborted - s->unstarted);

	return p < 0 ? 0 : p;
}

bool collect_live_tgid(const struct app *a, __u32 tgid)
{
	for (int i = 0; i < a->targets.n; i++)
		if (a->targets.t[i].pid == tgid)
			return true;
	return false;
}

int collect_route_of_hash(const struct app *a, __u64 hash, __u32 *id)
{
	if (!routes_lookup_hash(a->routes, hash, id))
		return 0;
	/* the memory is direct-mapped and bounded: a newer hash in the same slot
	 * made it forget, but the kernel's map (an LRU of every path the daemon
	 * named) still has it unless evicted */
	if (!bpf_map_lookup_elem(loader_fd_routes(&a->ld), &hash, id) && *id != BS_ROUTE_UNRESOLVED)
		return 0;
	return -ENOENT;
}

/* ---- exposition ------------------------------------------------------------ */

struct lbl {
	char pid[16], port[8], status[8];
	struct expo_label l[5];
};

static void http_labels(struct lbl *b, const struct app *a, const struct bs_agg_key *k)
{
	const char *route = routes_label(a->routes, k->route_id);

	/* *b is output only: snprintf writes b->pid, it does not read it */
	/* cppcheck-suppress ctuuninitvar */
	snprintf(b->pid, sizeof(b->pid), "%u", k->tgid);
	snprintf(b->port, sizeof(b->port), "%u", k->port);
	snprintf(b->status, sizeof(b->status), "%u", k->status);
	b->l[0] = (struct expo_label){ "pid", b->pid };
	b->l[1] = (struct expo_label){ "http_request_method", collect_method_name(k->method) };
	b->l[2] = (struct expo_label){ "http_response_status_code", b->status };
	b->l[3] = (struct expo_label){ "http_route", route ? route : "_unknown" };
	b->l[4] = (struct expo_label){ "server_port", b->port };
}

static void write_histograms(struct sbuf *sb, const struct app *a, const struct agg_row *rows,
			     int n)
{
	unsigned long long counts[BS_DUR_SLOTS > BS_SIZE_SLOTS ? BS_DUR_SLOTS : BS_SIZE_SLOTS];
	struct lbl b;
	int i;

	expo_header(sb, "http_server_request_duration_seconds", "histogram",
		    "Duration of HTTP server requests: from the request head being read to the "
		    "last response byte being handed to the kernel.");
	for (i = 0; i < n; i++) {
		http_labels(&b, a, &rows[i].k);
		for (int s = 0; s < BS_DUR_SLOTS; s++)
			counts[s] = rows[i].v.dur[s];
		expo_histogram(sb, "http_server_request_duration_seconds", b.l, 5, dur_bounds,
			       BS_DUR_BOUNDS, counts, (double)rows[i].v.dur_sum_ns / 1e9);
	}
	expo_header(sb, "http_server_request_body_size_bytes", "histogram",
		    "Size of HTTP request bodies (payload bytes; decoded size when chunked).");
	for (i = 0; i < n; i++) {
		http_labels(&b, a, &rows[i].k);
		for (int s = 0; s < BS_SIZE_SLOTS; s++)
			counts[s] = rows[i].v.req_size[s];
		expo_histogram(sb, "http_server_request_body_size_bytes", b.l, 5, size_bounds,
			       BS_SIZE_BOUNDS, counts, (double)rows[i].v.req_size_sum);
	}
	expo_header(sb, "http_server_response_body_size_bytes", "histogram",
		    "Size of HTTP response bodies (payload bytes; decoded size when chunked).");
	for (i = 0; i < n; i++) {
		http_labels(&b, a, &rows[i].k);
		for (int s = 0; s < BS_SIZE_SLOTS; s++)
			counts[s] = rows[i].v.resp_size[s];
		expo_histogram(sb, "http_server_response_body_size_bytes", b.l, 5, size_bounds,
			       BS_SIZE_BOUNDS, counts, (double)rows[i].v.resp_size_sum);
	}
}

typedef __u64 (*stat_get)(const struct bs_server_stats *s);

/* One family of a stats field: labels pid and, with_port, server_port. */
static void stat_family(struct sbuf *sb, const struct stat_row *rows, int n, bool with_port,
			const char *name, const char *type, const char *help, stat_get get)
{
	expo_header(sb, name, type, help);
	for (int i = 0; i < n; i++) {
		char pid[16], port[8];
		struct expo_label l[2] = { { "pid", pid }, { "server_port", port } };

		snprintf(pid, sizeof(pid), "%u", rows[i].k.tgid);
		snprintf(port, sizeof(port), "%u", rows[i].k.port);
		expo_sample_u64(sb, name, l, with_port ? 2 : 1, get(&rows[i].s));
	}
}

static void write_stat_family(struct sbuf *sb, const struct stat_row *rows, int n, const char *name,
			      const char *type, const char *help, stat_get get)
{
	stat_family(sb, rows, n, true, name, type, help, get);
}

#define GETTER(field)                                             \
	static __u64 get_##field(const struct bs_server_stats *s) \
	{                                                         \
		return s->field;                                  \
	}
GETTER(aborted)
GETTER(timeouts)
GETTER(conns_opened)
GETTER(conns_closed)
GETTER(bytes_in)
GETTER(bytes_out)
GETTER(desync)
GETTER(fifo_overflow)
GETTER(ws_errors)
GETTER(agg_full)

static __u64 get_pending(const struct bs_server_stats *s)
{
	return (__u64)collect_pending(s);
}

static __u64 get_conns_active(const struct bs_server_stats *s)
{
	return s->conns_opened >= s->conns_closed ? s->conns_opened - s->conns_closed : 0;
}

/* streams given up on: not HTTP/1 (TLS, databases, ...) or lost track of */
static __u64 get_unparsed(const struct bs_server_stats *s)
{
	__u64 n = s->desync;

	for (int r = 0; r < BS_REJ_MAX; r++)
		n += s->rejected[r];
	return n;
}

/* The live targets' own requests' counters: their BS_CLIENT_STATS slots. */
static void write_client_stats(struct sbuf *sb, const struct app *a)
{
	struct stat_row rows[BUNSCOPE_MAX_TARGETS];
	int n = 0;

	for (int i = 0; i < a->targets.n && n < BUNSCOPE_MAX_TARGETS; i++) {
		const struct target *t = &a->targets.t[i];

		memset(&rows[n].k, 0, sizeof(rows[n].k));
		rows[n].k.tgid = t->pid;
		if (!collect_read_percpu(loader_fd_stats(&a->ld), BS_CLIENT_STATS(t->slot),
					 &rows[n].s, sizeof(rows[n].s)))
			n++;
	}
	stat_family(sb, rows, n, false, "http_client_active_requests", "gauge",
		    "The targets' own HTTP/1 requests written whose response was not read "
		    "completely yet.",
		    get_pending);
	stat_family(sb, rows, n, false, "bunscope_http_client_requests_aborted_total", "counter",
		    "The targets' own requests whose connection closed before the response ended.",
		    get_aborted);
	stat_family(sb, rows, n, false, "bunscope_http_client_connections_total", "counter",
		    "TCP connections the targets opened (connect), whatever they carry.",
		    get_conns_opened);
	stat_family(sb, rows, n, false, "bunscope_http_client_unparsed_total", "counter",
		    "Outgoing byte streams given up on because they are not HTTP/1 (TLS, database "
		    "protocols) or could not be followed.",
		    get_unparsed);
	stat_family(sb, rows, n, false, "bunscope_http_client_series_dropped_total", "counter",
		    "Completed client requests not in the histogram because its map was full.",
		    get_agg_full);
}

static void write_server_stats(struct sbuf *sb, const struct stat_row *rows, int n)
{
	write_stat_family(sb, rows, n, "http_server_active_requests", "gauge",
			  "Requests whose head was read and whose response was not yet fully "
			  "handed to the kernel: Bun's server.pendingRequests.",
			  get_pending);
	expo_header(sb, "bunscope_http_requests_rejected_total", "counter",
		    "Request heads Bun's parser refuses (never pending), and bytes that are not "
		    "HTTP, by reason.");
	for (int i = 0; i < n; i++) {
		char pid[16], port[8];

		snprintf(pid, sizeof(pid), "%u", rows[i].k.tgid);
		snprintf(port, sizeof(port), "%u", rows[i].k.port);
		for (int r = 0; r < BS_REJ_MAX; r++) {
			struct expo_label l[3] = { { "pid", pid },
						   { "server_port", port },
						   { "reason", reject_names[r] } };

			expo_sample_u64(sb, "bunscope_http_requests_rejected_total", l, 3,
					rows[i].s.rejected[r]);
		}
	}
	write_stat_family(sb, rows, n, "bunscope_http_requests_aborted_total", "counter",
			  "Requests whose connection ended before their response did.",
			  get_aborted);
	write_stat_family(sb, rows, n, "bunscope_http_request_timeouts_total", "counter",
			  "Bun's 408 answers to heads that did not arrive in time.", get_timeouts);
	write_stat_family(sb, rows, n, "bunscope_http_connections_opened_total", "counter",
			  "Connections accepted by the target.", get_conns_opened);
	write_stat_family(sb, rows, n, "bunscope_http_connections_closed_total", "counter",
			  "Accepted connections closed by the target.", get_conns_closed);
	write_stat_family(sb, rows, n, "bunscope_http_connections_active", "gauge",
			  "Accepted connections currently open.", get_conns_active);
	write_stat_family(sb, rows, n, "bunscope_http_received_bytes_total", "counter",
			  "Bytes the target read from its server connections.", get_bytes_in);
	write_stat_family(sb, rows, n, "bunscope_http_sent_bytes_total", "counter",
			  "Bytes the target wrote to its server connections.", get_bytes_out);
	write_stat_family(sb, rows, n, "bunscope_http_desync_total", "counter",
			  "Connection streams bunscope stopped following (see README).",
			  get_desync);
	write_stat_family(
		sb, rows, n, "bunscope_http_pipeline_overflow_total", "counter",
		"Pipelined requests beyond the per-connection slots (latency approximate).",
		get_fifo_overflow);
	write_stat_family(sb, rows, n, "bunscope_websocket_errors_total", "counter",
			  "WebSocket directions bunscope stopped following: a frame Bun refuses "
			  "(Bun closes such connections) or bytes that could not be read.",
			  get_ws_errors);
}

static __u64 read_counter(int fd, __u32 idx)
{
	__u64 *vals = calloc((size_t)collect_ncpus(), sizeof(__u64)), sum = 0;

	if (!vals)
		return 0;
	if (!bpf_map_lookup_elem(fd, &idx, vals))
		for (int c = 0; c < collect_ncpus(); c++)
			sum += vals[c];
	free(vals);
	return sum;
}

static unsigned long long self_rss_bytes(void)
{
	static const char *const key[1] = { "VmRSS" };
	unsigned long long kb;

	return proc_status_kb((__u32)getpid(), key, &kb, 1) ? 0 : kb * 1024;
}

static double self_cpu_seconds(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* A family of one unlabelled sample. */
static void write_self(struct sbuf *sb, struct app *a, const struct agg_row *rows, int nrows,
		       const struct stat_row *srows, int nsrows)
{
	int cfd = loader_fd_counters(&a->ld);
	__u64 ins = read_counter(cfd, BS_CNT_CONN_INSERT),
	      del = read_counter(cfd, BS_CNT_CONN_DELETE);
	unsigned long long overflow = 0, agg_full = 0, ws_full = 0, conns;

	for (int i = 0; i < nrows; i++)
		if (rows[i].k.route_id == BS_ROUTE_OTHER)
			overflow += rows[i].v.count;
	for (int i = 0; i < nsrows; i++) {
		agg_full += srows[i].s.agg_full;
		ws_full += srows[i].s.ws_agg_full;
	}
	/* the kernel counts its inserts and deletes, the daemon its own */
	ins += a->seeded_conns;
	del += a->forgotten_conns;
	conns = ins >= del ? ins - del : 0;

	expo_header(sb, "bunscope_build_info", "gauge", "bunscope version and capture mode.");
	{
		struct expo_label l[2] = { { "version", BUNSCOPE_VERSION },
					   { "capture", capture_mode_name(a->ld.mode) } };

		expo_sample_u64(sb, "bunscope_build_info", l, 2, 1);
	}
	expo_scalar(sb, "bunscope_targets", "gauge", "Processes observed.",
		    (unsigned long long)a->targets.n);
	expo_header(sb, "bunscope_target_info", "gauge", "An observed process.");
	for (int i = 0; i < a->targets.n; i++) {
		const struct target *t = &a->targets.t[i];
		char pid[16];
		struct expo_label l[3] = { { "pid", pid },
					   { "comm", t->comm },
					   { "selector", t->how } };

		snprintf(pid, sizeof(pid), "%u", t->pid);
		expo_sample_u64(sb, "bunscope_target_info", l, 3, 1);
	}
	expo_scalar(sb, "bunscope_target_exits_total", "counter", "Observed processes that exited.",
		    a->targets.exits);

	expo_scalar(sb, "bunscope_events_lost_total", "counter",
		    "Ring buffer records dropped because it was full (the requests are still "
		    "counted in http_server_active_requests; their histograms miss them).",
		    read_counter(cfd, BS_CNT_EV_LOST));
	expo_scalar(sb, "bunscope_series_dropped_total", "counter",
		    "Completed requests not in the histograms because the series map was full.",
		    agg_full + uagg_dropped(a->uagg));
	expo_scalar(sb, "bun_process_oom_kills_total", "counter",
		    "Targets the OOM killer chose (oom:mark_victim), over bunscope's life.",
		    read_counter(cfd, BS_CNT_OOM_KILLS));
	expo_scalar(sb, "bunscope_thread_runs_unseen_total", "counter",
		    "Runs of target threads whose switch-in sched_switch did not see (running "
		    "at attach, or missed): counted from the kernel's per-run figure.",
		    read_counter(cfd, BS_CNT_RUN_UNSEEN));
	expo_scalar(sb, "bunscope_websocket_series_dropped_total", "counter",
		    "WebSocket events not counted because the WebSocket maps were full.", ws_full);
	expo_header(sb, "bunscope_ringbuf_records_total", "counter",
		    "Ring buffer records the daemon received, by type.");
	{
		struct expo_label l[1] = { { "type", "path" } };

		expo_sample_u64(sb, "bunscope_ringbuf_records_total", l, 1, a->path_events);
		l[0].value = "completion";
		expo_sample_u64(sb, "bunscope_ringbuf_records_total", l, 1, a->complete_events);
	}
	expo_scalar(
		sb, "bunscope_route_unknown_total", "counter",
		"Completions whose path neither the daemon nor the kernel's routes map knew any "
		"more (its path record was lost; counted under http_route=\"_other\").",
		a->unknown_hash);
	expo_scalar(sb, "bunscope_route_misses_total", "counter",
		    "Completed requests aggregated by the daemon because their path was new to "
		    "the kernel.",
		    read_counter(cfd, BS_CNT_ROUTE_MISS));
	expo_scalar(
		sb, "bunscope_route_overflow_requests_total", "counter",
		"Requests counted under http_route=\"_other\" because --max-routes was reached.",
		overflow);
	expo_scalar(sb, "bunscope_routes", "gauge", "Distinct http_route values (without _other).",
		    routes_count(a->routes));
	expo_scalar(sb, "bunscope_routes_limit", "gauge", "--max-routes.", a->cfg.max_routes);
	expo_scalar(sb, "bunscope_connections_untracked_total", "counter",
		    "Accepted connections not followed because the connection map was full.",
		    read_counter(cfd, BS_CNT_CONN_FULL));
	expo_scalar(sb, "bunscope_connections_unfollowed_ports_total", "counter",
		    "Accepted connections not followed because their process already had "
		    "8 listening ports counted.",
		    read_counter(cfd, BS_CNT_PORTS_FULL));

	expo_header(sb, "bunscope_map_entries", "gauge", "Entries in the BPF maps.");
	{
		struct expo_label l[1] = { { "map", "connections" } };

		expo_sample_u64(sb, "bunscope_map_entries", l, 1, conns);
		l[0].value = "series";
		expo_sample_u64(sb, "bunscope_map_entries", l, 1, (unsigned long long)nrows);
	}
	expo_header(sb, "bunscope_map_capacity", "gauge", "Maximum entries of the BPF maps.");
	{
		struct expo_label l[1] = { { "map", "connections" } };

		expo_sample_u64(sb, "bunscope_map_capacity", l, 1, a->cfg.lopts.max_conns);
		l[0].value = "series";
		expo_sample_u64(sb, "bunscope_map_capacity", l, 1, a->cfg.lopts.max_series);
	}

	expo_scalar(sb, "bunscope_process_resident_memory_bytes", "gauge",
		    "Resident memory of the bunscope daemon.", self_rss_bytes());
	expo_header(sb, "bunscope_process_cpu_seconds_total", "counter",
		    "CPU time of the bunscope daemon (user and system).");
	expo_sample(sb, "bunscope_process_cpu_seconds_total", NULL, 0, self_cpu_seconds());

	struct prog_stat ps[32];
	int np = loader_prog_stats(&a->ld, ps, 32);

	expo_header(sb, "bunscope_bpf_prog_recursion_misses_total", "counter",
		    "Runs of each BPF program the kernel skipped because it was already running "
		    "on that CPU: events not seen.");
	for (int i = 0; i < np; i++) {
		struct expo_label l[1] = { { "prog", ps[i].name } };

		expo_sample_u64(sb, "bunscope_bpf_prog_recursion_misses_total", l, 1,
				ps[i].recursion_misses);
	}
	expo_header(sb, "bunscope_bpf_prog_verified_insns", "gauge",
		    "Instructions the verifier processed to load each BPF program (its limit is "
		    "1000000; 0 where the kernel does not say).");
	for (int i = 0; i < np; i++) {
		struct expo_label l[1] = { { "prog", ps[i].name } };

		expo_sample_u64(sb, "bunscope_bpf_prog_verified_insns", l, 1, ps[i].verified_insns);
	}
	expo_scalar(
		sb, "bunscope_bpf_stats_enabled", "gauge",
		"1 when kernel.bpf_stats_enabled is on (then per-program run time is exported).",
		loader_bpf_stats_enabled());
	if (loader_bpf_stats_enabled()) {
		expo_header(sb, "bunscope_bpf_prog_runs_total", "counter",
			    "Runs of each BPF program (kernel.bpf_stats_enabled).");
		for (int i = 0; i < np; i++) {
			struct expo_label l[1] = { { "prog", ps[i].name } };

			expo_sample_u64(sb, "bunscope_bpf_prog_runs_total", l, 1, ps[i].run_cnt);
		}
		expo_header(sb, "bunscope_bpf_prog_run_seconds_total", "counter",
			    "Time spent in each BPF program (kernel.bpf_stats_enabled).");
		for (int i = 0; i < np; i++) {
			struct expo_label l[1] = { { "prog", ps[i].name } };

			expo_sample(sb, "bunscope_bpf_prog_run_seconds_total", l, 1,
				    (double)ps[i].run_time_ns / 1e9);
		}
	}
}

/* One sample per configured exporter: vals[exporter], and reason="..." if given. */
static void exporter_samples(struct sbuf *sb, const char *name, const struct tracer_stats *xs,
			     const unsigned long long *vals, const char *reason)
{
	struct expo_label l[2] = { { "exporter", NULL }, { "reason", reason } };

	for (int e = 0; e < TRACER_NEXPORTERS; e++) {
		if (!xs->on[e])
			continue;
		l[0].value = tracer_exporter_name(e);
		expo_sample_u64(sb, name, l, reason ? 2 : 1, vals[e]);
	}
}

/* Traces: the kernel's sampling counters, the join's, the exporters'. */
static void write_traces(struct sbuf *sb, struct app *a)
{
	int cfd = loader_fd_counters(&a->ld);
	struct traces_stats ts;
	struct tracer_stats xs;
	struct expo_label l[2];

	if (!a->traces)
		return;
	traces_get_stats(a->traces, &ts);
	tracer_get_stats(a->tracer, &xs);
	expo_scalar(sb, "bunscope_spans_sampled_total", "counter",
		    "Requests the sampler chose and that got a span record.",
		    read_counter(cfd, BS_CNT_SPAN_SAMPLED));
	expo_scalar(sb, "bunscope_spans_unsampled_total", "counter",
		    "Requests the sampler left out (an unsampled parent or the ratio).",
		    read_counter(cfd, BS_CNT_SPAN_UNSAMPLED));
	expo_header(sb, "bunscope_spans_dropped_total", "counter",
		    "Spans lost before the exporters: over --traces-max-rate, no room in the "
		    "spans ring buffer, too many awaiting their end, or their end never came.");
	l[0].name = "reason";
	l[0].value = "rate_cap";
	expo_sample_u64(sb, "bunscope_spans_dropped_total", l, 1,
			read_counter(cfd, BS_CNT_SPAN_CAPPED));
	l[0].value = "ringbuf_full";
	expo_sample_u64(sb, "bunscope_spans_dropped_total", l, 1,
			read_counter(cfd, BS_CNT_SPAN_LOST));
	l[0].value = "pending_full";
	expo_sample_u64(sb, "bunscope_spans_dropped_total", l, 1, ts.dropped_pending_full);
	l[0].value = "incomplete";
	expo_sample_u64(sb, "bunscope_spans_dropped_total", l, 1, ts.dropped_incomplete);
	expo_scalar(sb, "bunscope_spans_pending", "gauge",
		    "Sampled requests whose response has not ended yet, and traced "
		    "WebSockets still open.",
		    ts.pending);
	expo_scalar(sb, "bunscope_spans_built_total", "counter",
		    "Spans completed and handed to the exporters.", ts.built);

	expo_header(sb, "bunscope_spans_exported_total", "counter",
		    "Spans the receiver accepted (OTLP, Zipkin) or that were written (file, "
		    "console).");
	exporter_samples(sb, "bunscope_spans_exported_total", &xs, xs.exported, NULL);
	expo_header(sb, "bunscope_span_export_dropped_total", "counter",
		    "Spans an exporter dropped: the oldest when its queue was full, or a batch "
		    "the receiver refused.");
	exporter_samples(sb, "bunscope_span_export_dropped_total", &xs, xs.dropped_queue,
			 "queue_full");
	exporter_samples(sb, "bunscope_span_export_dropped_total", &xs, xs.dropped_rejected,
			 "rejected");
	expo_header(sb, "bunscope_span_export_errors_total", "counter",
		    "Failed export attempts (retried with backoff).");
	exporter_samples(sb, "bunscope_span_export_errors_total", &xs, xs.errors, NULL);
	expo_header(sb, "bunscope_span_export_queue", "gauge",
		    "Spans waiting in an exporter's queue, the batch being sent included.");
	exporter_samples(sb, "bunscope_span_export_queue", &xs, xs.queued, NULL);
}

int collect_metrics(void *ctx, struct sbuf *sb)
{
	struct app *a = ctx;
	struct agg_row *rows = NULL;
	struct stat_row *srows = NULL;
	int n, ns, k = 0;

	pthread_mutex_lock(&a->lock);
	n = read_agg(a, &rows);
	ns = read_stats(a, &srows);
	if (n < 0 || ns < 0) {
		pthread_mutex_unlock(&a->lock);
		free(rows);
		free(srows);
		return -ENOMEM;
	}
	/* series of exited targets may linger until their cleanup ran */
	for (int i = 0; i < n; i++)
		if (collect_live_tgid(a, rows[i].k.tgid))
			rows[k++] = rows[i];
	n = k;
	k = 0;
	for (int i = 0; i < ns; i++)
		if (collect_live_tgid(a, srows[i].k.tgid))
			srows[k++] = srows[i];
	ns = k;
	/* no rows: NULL, which qsort must not get even with a count of 0 */
	if (n > 1)
		qsort(rows, (size_t)n, sizeof(*rows), cmp_agg);
	if (ns > 1)
		qsort(srows, (size_t)ns, sizeof(*srows), cmp_stat);

	write_histograms(sb, a, rows, n);
	write_server_stats(sb, srows, ns);
	if (collect_ws_metrics(a, sb) || collect_client_metrics(a, sb))
		sb->oom = true;
	write_client_stats(sb, a);
	mem_write_metrics(a, sb);
	sched_write_metrics(a, sb);
	if (a->limiter)
		limit_write_metrics(a->limiter, sb);
	uprobes_write_metrics(a, sb);
	write_self(sb, a, rows, n, srows, ns);
	pthread_mutex_unlock(&a->lock);
	write_traces(sb, a);
	free(rows);
	free(srows);
	return sb->oom ? -ENOMEM : 0;
}

/* ---- JSON --------------------------------------------------------------- */

int collect_server_metrics(void *ctx, const char *pid_param, struct sbuf *sb)
{
	struct app *a = ctx;
	struct stat_row *srows = NULL;
	unsigned long long pending = 0, total = 0;
	struct mem_view mv = {};
	struct sched_view sv;
	struct ws_totals ws;
	struct timespec now;
	__u32 pid = 0;
	int ns;

	pthread_mutex_lock(&a->lock);
	if (pid_param) {
		char *end;
		unsigned long v = strtoul(pid_param, &end, 10);

		if (!*pid_param || *end || !v || v > 0xffffffffUL) {
			pthread_mutex_unlock(&a->lock);
			return -EINVAL;
		}
		pid = (__u32)v;
		if (!collect_live_tgid(a, pid)) {
			pthread_mutex_unlock(&a->lock);
			return -ENOENT;
		}
	} else if (a->targets.n) {
		pid = a->targets.t[0].pid;
	} else {
		pthread_mutex_unlock(&a->lock);
		return -ENOENT;
	}
	ns = read_stats(a, &srows);
	for (int i = 0; i < a->targets.n; i++)
		if (a->targets.t[i].pid == pid)
			mem_read(a, &a->targets.t[i], &mv);
	if (sched_read_target(a, pid, &sv))
		memset(&sv, 0, sizeof(sv));
	if (collect_ws_totals(a, pid, &ws)) {
		pthread_mutex_unlock(&a->lock);
		free(srows);
		return -ENOMEM;
	}
	pthread_mutex_unlock(&a->lock);
	for (int i = 0; i < ns; i++) {
		if (srows[i].k.tgid != pid)
			continue;
		pending += (unsigned long long)collect_pending(&srows[i].s);
		total += srows[i].s.started - srows[i].s.unstarted;
	}
	free(srows);
	clock_gettime(CLOCK_REALTIME, &now);
	sbuf_printf(sb,
		    "{\"timestamp\":%lld,\"pid\":%u,\"http\":{\"pendingRequests\":%llu,"
		    "\"totalRequests\":%llu},\"websockets\":{\"pendingConnections\":%llu,"
		    "\"totalConnections\":%llu,\"messages\":{\"in\":%llu,\"out\":%llu},"
		    "\"bytes\":{\"in\":%llu,\"out\":%llu}},"
		    "\"memory\":{\"rss\":%llu,\"rssAnon\":%llu,\"rssFile\":%llu,"
		    "\"rssShmem\":%llu,\"maxRss\":%llu,\"ceiling\":%llu,"
		    "\"ceilingExceeded\":%s},\"eventLoop\":{\"utilization\":",
		    (long long)now.tv_sec * 1000 + now.tv_nsec / 1000000, pid, pending, total,
		    ws.pending, ws.opened, ws.messages[0], ws.messages[1], ws.bytes[0], ws.bytes[1],
		    mv.rss, mv.anon, mv.file, mv.shmem, mv.hwm, a->cfg.memory_ceiling,
		    mv.over ? "true" : "false");
	if (sv.have_loop && sv.elu >= 0)
		expo_double(sb, sv.elu);
	else
		sbuf_puts(sb, "null");
	sbuf_printf(sb, ",\"busySeconds\":");
	expo_double(sb, (double)sv.busy_ns / 1e9);
	sbuf_printf(sb, ",\"idleSeconds\":");
	expo_double(sb, (double)sv.idle_ns / 1e9);
	sbuf_printf(sb, "},\"gc\":{\"bursts\":%llu},\"breaker\":",
		    (unsigned long long)sv.loop.gc_bursts);
	{
		const char *state;
		long long bp;

		if (limit_breaker(a->limiter, &state, &bp))
			sbuf_printf(sb, "{\"state\":\"%s\",\"pending\":%lld}", state, bp);
		else
			sbuf_puts(sb, "null");
	}
	sbuf_puts(sb, "}\n");
	return sb->oom ? -ENOMEM : 0;
}

int collect_health(void *ctx, struct sbuf *sb)
{
	struct app *a = ctx;
	struct timespec now;

	clock_gettime(CLOCK_MONOTONIC, &now);
	pthread_mutex_lock(&a->lock);
	sbuf_printf(sb,
		    "{\"status\":\"%s\",\"capture\":\"%s\",\"uptime_seconds\":%ld,"
		    "\"refreshes\":%llu,\"targets\":[",
		    a->targets.n ? "ok" : "waiting", capture_mode_name(a->ld.mode),
		    (long)(now.tv_sec - a->started.tv_sec), a->refreshes);
	for (int i = 0; i < a->targets.n; i++) {
		const struct target *t = &a->targets.t[i];

		sbuf_printf(sb, "%s{\"pid\":%u,\"comm\":", i ? "," : "", t->pid);
		json_string(sb, t->comm, strlen(t->comm));
		sbuf_puts(sb, ",\"selector\":");
		json_string(sb, t->how, strlen(t->how));
		sbuf_puts(sb, "}");
	}
	sbuf_puts(sb, "]}\n");
	pthread_mutex_unlock(&a->lock);
	return sb->oom ? -ENOMEM : 0;
}

/* ---- cleanup of an exited target ------------------------------------------- */

/* Delete every key of a hash map whose first 32 bits are tgid; returns how many. */
static size_t delete_keys_of(int fd, size_t ksz, __u32 tgid, int series_free, int agg_fd)
{
	char *keys = NULL, key[64], next[64];
	size_t n = 0, cap = 0;
	void *prev = NULL;

	if (ksz > sizeof(key))
		return 0;
	while (!bpf_map_get_next_key(fd, prev, next)) {
		memcpy(key, next, ksz);
		prev = key;
		if (*(__u32 *)key != tgid)
			continue;
		if (n == cap) {
			char *k = realloc(keys, (cap ? cap * 2 : 256) * ksz);

			if (!k)
				break;
			keys = k;
			cap = cap ? cap * 2 : 256;
		}
		memcpy(keys + n * ksz, key, ksz);
		n++;
	}
	for (size_t i = 0; i < n; i++) {
		__u32 idx;

		/* series: zero the histogram, then hand its index back */
		if (series_free >= 0 && !bpf_map_lookup_elem(fd, keys + i * ksz, &idx)) {
			collect_zero_percpu(agg_fd, idx, sizeof(struct bs_agg_val));
			bpf_map_delete_elem(fd, keys + i * ksz);
			bpf_map_update_elem(series_free, NULL, &idx, BPF_ANY);
			continue;
		}
		bpf_map_delete_elem(fd, keys + i * ksz);
	}
	free(keys);
	return n;
}

void collect_forget_target(struct app *a, const struct target *t)
{
	/* the BPF side stops looking at the slot first */
	loader_set_target(&a->ld, t->slot, 0);
	a->forgotten_conns +=
		delete_keys_of(loader_fd_conns(&a->ld), sizeof(struct bs_conn_key), t->pid, -1, -1);
	delete_keys_of(loader_fd_series(&a->ld), sizeof(struct bs_agg_key), t->pid,
		       loader_fd_series_free(&a->ld), loader_fd_agg(&a->ld));
	delete_keys_of(loader_fd_ws_agg(&a->ld), sizeof(struct bs_ws_key), t->pid, -1, -1);
	delete_keys_of(loader_fd_ws_close(&a->ld), sizeof(struct bs_ws_key), t->pid, -1, -1);
	delete_keys_of(loader_fd_cagg(&a->ld), sizeof(struct bs_cagg_key), t->pid, -1, -1);
	for (int p = 0; p < BS_PORT_SLOTS; p++)
		collect_zero_percpu(loader_fd_stats(&a->ld), (__u32)(t->slot * BS_PORT_SLOTS + p),
				    sizeof(struct bs_server_stats));
	collect_zero_percpu(loader_fd_stats(&a->ld), BS_CLIENT_STATS(t->slot),
			    sizeof(struct bs_server_stats));
	loader_clear_target_ports(&a->ld, t->slot);
	uagg_forget_tgid(a->uagg, t->pid);
}
