// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * The targets' own HTTP/1 requests (their fetch to an upstream): the cagg
 * map (a per-CPU hash keyed by target, upstream address and port, method and
 * status; see struct bs_cagg_key) and each target's client slot of the stats
 * map (BS_CLIENT_STATS), read when scraped.
 *
 *   http_client_request_duration_seconds  histogram, OTel's HTTP client metric
 *   http_client_active_requests           requests written, answer not read yet
 *   bunscope_http_client_*                aborted requests, unparsed streams, ...
 */
#include <arpa/inet.h>
#include <errno.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <bpf/bpf.h>

#include "daemon.h"
#include "expo.h"

struct client_row {
	struct bs_cagg_key k;
	struct bs_agg_val v;
};

/* The upstream's address as text; an IPv4-mapped IPv6 one as IPv4. */
void collect_addr_text(__u8 family, const __u8 addr[16], char *out, size_t cap)
{
	static const __u8 mapped[12] = { 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff };

	out[0] = '\0';
	if (family == AF_INET)
		inet_ntop(AF_INET, addr, out, (socklen_t)cap);
	else if (family == AF_INET6 && !memcmp(addr, mapped, 12))
		inet_ntop(AF_INET, addr + 12, out, (socklen_t)cap);
	else if (family == AF_INET6)
		inet_ntop(AF_INET6, addr, out, (socklen_t)cap);
}

static int cmp_row(const void *pa, const void *pb)
{
	const struct bs_cagg_key *a = &((const struct client_row *)pa)->k;
	const struct bs_cagg_key *b = &((const struct client_row *)pb)->k;

	if (a->tgid != b->tgid)
		return a->tgid < b->tgid ? -1 : 1;
	return memcmp(&a->port, &b->port, sizeof(*a) - offsetof(struct bs_cagg_key, port));
}

/* Every live target's client series, summed over the CPUs; count or -ENOMEM. */
static int read_rows(const struct app *a, struct client_row **out)
{
	int fd = loader_fd_cagg(&a->ld), n = 0, cap = 0;
	size_t stride = (sizeof(struct bs_agg_val) + 7) & ~(size_t)7;
	void *buf = malloc(stride * (size_t)collect_ncpus());
	struct client_row *rows = NULL;
	struct bs_cagg_key key, next;
	void *prev = NULL;

	if (!buf)
		return -ENOMEM;
	while (!bpf_map_get_next_key(fd, prev, &next)) {
		key = next;
		prev = &key;
		if (!collect_live_tgid(a, key.tgid) || bpf_map_lookup_elem(fd, &key, buf))
			continue;
		if (n == cap) {
			struct client_row *r =
				realloc(rows, (size_t)(cap ? cap * 2 : 32) * sizeof(*r));

			if (!r) {
				free(rows);
				free(buf);
				return -ENOMEM;
			}
			rows = r;
			cap = cap ? cap * 2 : 32;
		}
		rows[n].k = key;
		memset(&rows[n].v, 0, sizeof(rows[n].v));
		collect_sum_percpu(buf, sizeof(struct bs_agg_val), &rows[n].v);
		n++;
	}
	free(buf);
	/* no rows: NULL, which qsort must not get even with a count of 0 */
	if (n > 1)
		qsort(rows, (size_t)n, sizeof(*rows), cmp_row);
	*out = rows;
	return n;
}

static void write_stat(struct sbuf *sb, const char *name, const char *type, const char *help,
		       const __u32 *pids, const struct bs_server_stats *st, int n,
		       __u64 (*get)(const struct bs_server_stats *))
{
	expo_header(sb, name, type, help);
	for (int i = 0; i < n; i++) {
		char pid[16];
		struct expo_label l[1] = { { "pid", pid } };

		snprintf(pid, sizeof(pid), "%u", pids[i]);
		expo_sample_u64(sb, name, l, 1, get(&st[i]));
	}
}

static __u64 get_active(const struct bs_server_stats *s)
{
	return (__u64)collect_pending(s);
}

static __u64 get_aborted(const struct bs_server_stats *s)
{
	return s->aborted;
}

static __u64 get_opened(const struct bs_server_stats *s)
{
	return s->conns_opened;
}

/* streams given up on: not HTTP/1 (TLS, databases, ...) or lost track of */
static __u64 get_unparsed(const struct bs_server_stats *s)
{
	__u64 n = s->desync;

	for (int r = 0; r < BS_REJ_MAX; r++)
		n += s->rejected[r];
	return n;
}

static __u64 get_dropped(const struct bs_server_stats *s)
{
	return s->agg_full;
}

int collect_client_metrics(const struct app *a, struct sbuf *sb)
{
	struct bs_server_stats st[BUNSCOPE_MAX_TARGETS];
	__u32 pids[BUNSCOPE_MAX_TARGETS];
	struct client_row *rows = NULL;
	__u64 counts[BS_DUR_SLOTS];
	int n, ns = 0;

	for (int i = 0; i < a->targets.n && ns < BUNSCOPE_MAX_TARGETS; i++) {
		const struct target *t = &a->targets.t[i];

		if (collect_read_percpu(loader_fd_stats(&a->ld), BS_CLIENT_STATS(t->slot), &st[ns],
					sizeof(st[ns])))
			continue;
		pids[ns++] = t->pid;
	}
	n = read_rows(a, &rows);
	if (n < 0)
		return n;

	expo_header(sb, "http_client_request_duration_seconds", "histogram",
		    "Duration of the targets' own HTTP/1 requests (fetch to an upstream), "
		    "from the request head written to the last response byte read.");
	for (int i = 0; i < n; i++) {
		const struct bs_cagg_key *k = &rows[i].k;
		char pid[16], port[8], status[8], addr[INET6_ADDRSTRLEN];
		struct expo_label l[5] = {
			{ "pid", pid },
			{ "http_request_method", collect_method_name(k->method) },
			{ "http_response_status_code", status },
			{ "server_address", addr },
			{ "server_port", port },
		};

		snprintf(pid, sizeof(pid), "%u", k->tgid);
		snprintf(port, sizeof(port), "%u", k->port);
		snprintf(status, sizeof(status), "%u", k->status);
		collect_addr_text(k->family, k->addr, addr, sizeof(addr));
		for (int s = 0; s < BS_DUR_SLOTS; s++)
			counts[s] = rows[i].v.dur[s];
		expo_histogram(sb, "http_client_request_duration_seconds", l, 5,
			       collect_dur_bounds(), BS_DUR_BOUNDS, counts,
			       (double)rows[i].v.dur_sum_ns / 1e9);
	}
	free(rows);

	write_stat(sb, "http_client_active_requests", "gauge",
		   "The targets' own HTTP/1 requests written whose response was not read "
		   "completely yet.",
		   pids, st, ns, get_active);
	write_stat(sb, "bunscope_http_client_requests_aborted_total", "counter",
		   "The targets' own requests whose connection closed before the response "
		   "ended.",
		   pids, st, ns, get_aborted);
	write_stat(sb, "bunscope_http_client_connections_total", "counter",
		   "TCP connections the targets opened (connect), whatever they carry.", pids, st,
		   ns, get_opened);
	write_stat(sb, "bunscope_http_client_unparsed_total", "counter",
		   "Outgoing byte streams given up on because they are not HTTP/1 (TLS, "
		   "database protocols) or could not be followed.",
		   pids, st, ns, get_unparsed);
	write_stat(sb, "bunscope_http_client_series_dropped_total", "counter",
		   "Completed client requests not in the histogram because its map was full.", pids,
		   st, ns, get_dropped);
	return sb->oom ? -ENOMEM : 0;
}
