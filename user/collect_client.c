// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * The targets' own HTTP/1 requests (their fetch to an upstream): the cagg
 * map (a per-CPU hash keyed by target, upstream address and port, method and
 * status; see struct bs_cagg_key), read when scraped, as
 * http_client_request_duration_seconds, OTel's HTTP client metric.  Their
 * counters (each target's BS_CLIENT_STATS slot) are written with the
 * server's, in collect.c.
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
/* dotted quad; glibc's inet_ntop() goes through sprintf(), once per span */
static void ipv4_text(const __u8 a[4], char *out, size_t cap)
{
	char tmp[INET_ADDRSTRLEN], *p = tmp;

	for (int i = 0; i < 4; i++) {
		if (a[i] >= 100)
			*p++ = (char)('0' + a[i] / 100);
		if (a[i] >= 10)
			*p++ = (char)('0' + a[i] / 10 % 10);
		*p++ = (char)('0' + a[i] % 10);
		*p++ = i < 3 ? '.' : '\0';
	}
	if ((size_t)(p - tmp) <= cap)
		memcpy(out, tmp, (size_t)(p - tmp));
}

void collect_addr_text(__u8 family, const __u8 addr[16], char *out, size_t cap)
{
	static const __u8 mapped[12] = { 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff };

	out[0] = '\0';
	if (family == AF_INET)
		ipv4_text(addr, out, cap);
	else if (family == AF_INET6 && !memcmp(addr, mapped, 12))
		ipv4_text(addr + 12, out, cap);
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

int collect_client_metrics(const struct app *a, struct sbuf *sb)
{
	struct client_row *rows = NULL;
	__u64 counts[BS_DUR_SLOTS];
	int n;

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
	return sb->oom ? -ENOMEM : 0;
}
