// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/* The limiter's option values: rates, presets, CIDRs.  No libbpf here. */
#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "limiter.h"

void limit_opts_init(struct limit_opts *o)
{
	memset(o, 0, sizeof(*o));
	o->algo = BS_LIM_TOKEN_BUCKET;
	o->clients = 65536;
	o->v6_prefix = 64;
	o->ban_seconds = 60;
	o->shed_window = 10;
	o->shed_min_requests = 20;
	o->shed_open = 2;
	o->shed_probe_pct = 10;
}

static int parse_u32(const char *s, size_t n, __u32 *out)
{
	unsigned long long v = 0;

	if (!n || n > 10)
		return -EINVAL;
	for (size_t i = 0; i < n; i++) {
		if (!isdigit((unsigned char)s[i]))
			return -EINVAL;
		v = v * 10 + (unsigned)(s[i] - '0');
	}
	if (v > 0xffffffffULL)
		return -EINVAL;
	*out = (__u32)v;
	return 0;
}

int limit_parse_rate(const char *s, __u32 *rate, __u32 *burst)
{
	const char *colon = strchr(s, ':');
	__u32 r, b;

	if (parse_u32(s, colon ? (size_t)(colon - s) : strlen(s), &r))
		return -EINVAL;
	if (colon) {
		if (parse_u32(colon + 1, strlen(colon + 1), &b))
			return -EINVAL;
	} else {
		b = r;
	}
	if (!r || !b || r > 1000000000U)
		return -EINVAL;
	if (b > BS_LIM_MAX_BURST)
		return -ERANGE;
	*rate = r;
	*burst = b;
	return 0;
}

static const struct {
	const char *name;
	__u32 conn_rate, conn_burst, pkt_rate, pkt_burst;
	const char *what;
} presets[] = {
	{ "api", 50, 100, 2000, 4000,
	  "an API server's clients: 50 new connections/s (bursts "
	  "of 100), 2000 packets/s (bursts of 4000) per source" },
	{ "strict", 10, 20, 500, 1000,
	  "few connections per client: 10/s (20), 500 packets/s "
	  "(1000)" },
	{ "burst", 100, 1000, 5000, 20000,
	  "bursty browsers behind NAT: 100/s (1000), 5000 "
	  "packets/s (20000)" },
};

int limit_preset(const char *name, struct limit_opts *o)
{
	for (size_t i = 0; i < sizeof(presets) / sizeof(presets[0]); i++) {
		if (strcmp(name, presets[i].name))
			continue;
		o->conn_rate = presets[i].conn_rate;
		o->conn_burst = presets[i].conn_burst;
		o->pkt_rate = presets[i].pkt_rate;
		o->pkt_burst = presets[i].pkt_burst;
		return 0;
	}
	return -1;
}

const char *limit_presets_help(void)
{
	static char buf[512];
	size_t n = 0;

	buf[0] = 0;
	for (size_t i = 0; i < sizeof(presets) / sizeof(presets[0]) && n < sizeof(buf); i++)
		n += (size_t)snprintf(buf + n, sizeof(buf) - n, "%s%s", i ? ", " : "",
				      presets[i].name);
	return buf;
}

int limit_parse_cidr(const char *s, struct limit_cidr *c)
{
	char addr[64];
	const char *slash = strchr(s, '/');
	size_t alen = slash ? (size_t)(slash - s) : strlen(s);
	__u32 prefix;

	if (!alen || alen >= sizeof(addr))
		return -EINVAL;
	memcpy(addr, s, alen);
	addr[alen] = 0;
	memset(c, 0, sizeof(*c));
	if (inet_pton(AF_INET, addr, c->addr) == 1) {
		c->v6 = 0;
		prefix = 32;
	} else if (inet_pton(AF_INET6, addr, c->addr) == 1) {
		c->v6 = 1;
		prefix = 128;
	} else {
		return -EINVAL;
	}
	if (slash) {
		__u32 p;

		if (parse_u32(slash + 1, strlen(slash + 1), &p) || p > prefix)
			return -EINVAL;
		prefix = p;
	}
	/* an IPv4-mapped network (::ffff:10.0.0.0/104) is the IPv4 one: IPv4
	 * packets are matched against the IPv4 tries, and a dual-stack
	 * server's IPv4 clients are IPv4 sources */
	if (c->v6 && prefix >= 96 && !memcmp(c->addr, "\0\0\0\0\0\0\0\0\0\0\xff\xff", 12)) {
		memmove(c->addr, c->addr + 12, 4);
		memset(c->addr + 4, 0, 12);
		c->v6 = 0;
		prefix -= 96;
	}
	c->prefix = (__u8)prefix;
	/* clear the host bits: 10.1.2.3/8 means 10.0.0.0/8 */
	for (unsigned i = 0; i < 16; i++) {
		unsigned bit = i * 8;

		if (bit >= prefix)
			c->addr[i] = 0;
		else if (bit + 8 > prefix)
			c->addr[i] &= (__u8)(0xff << (8 - (prefix - bit)));
	}
	return 0;
}

int limit_format_cidr(const struct limit_cidr *c, char *buf, size_t len)
{
	char a[INET6_ADDRSTRLEN];

	if (!inet_ntop(c->v6 ? AF_INET6 : AF_INET, c->addr, a, sizeof(a)))
		return -1;
	return snprintf(buf, len, "%s/%u", a, c->prefix);
}

int limit_read_cidr_file(const char *path, struct limit_cidr *list, int *n, int max, int *line)
{
	char buf[256];
	FILE *f = fopen(path, "r");

	*line = 0;
	if (!f)
		return -errno;
	while (fgets(buf, sizeof(buf), f)) {
		char *p = buf, *e;

		(*line)++;
		if ((e = strchr(p, '#')))
			*e = 0;
		while (isspace((unsigned char)*p))
			p++;
		e = p + strlen(p);
		while (e > p && isspace((unsigned char)e[-1]))
			*--e = 0;
		if (!*p)
			continue;
		if (*n >= max || limit_parse_cidr(p, &list[*n])) {
			fclose(f);
			return -EINVAL;
		}
		(*n)++;
	}
	fclose(f);
	return 0;
}

/* The address bytes of a source key: 4 (IPv4) or 16; returns 0 for IPv4, 1 for IPv6. */
static int key_bytes(const struct bs_lim_key *k, __u8 out[16])
{
	if (!k->hi && (k->lo >> 32) == 0xffff) {
		__u32 be = (__u32)k->lo;

		memcpy(out, &be, 4);
		return 0;
	}
	for (int i = 0; i < 8; i++) {
		out[i] = (__u8)(k->hi >> (56 - 8 * i));
		out[8 + i] = (__u8)(k->lo >> (56 - 8 * i));
	}
	return 1;
}

int limit_format_key(const struct bs_lim_key *k, __u32 v6_prefix, char *buf, size_t len)
{
	struct limit_cidr c = {};

	c.v6 = (__u8)key_bytes(k, c.addr);
	if (!c.v6)
		return inet_ntop(AF_INET, c.addr, buf, (socklen_t)len) ? (int)strlen(buf) : -1;
	c.prefix = (__u8)(v6_prefix && v6_prefix <= 128 ? v6_prefix : 128);
	return limit_format_cidr(&c, buf, len);
}

void limit_cidr_key(const struct limit_cidr *c, __u32 v6_prefix, struct bs_lim_key *k)
{
	lim_key_peer(k, c->v6, c->addr, v6_prefix);
}

bool limit_key_in_cidr(const struct bs_lim_key *k, const struct limit_cidr *c)
{
	__u8 a[16] = {};
	unsigned full = c->prefix / 8, rest = c->prefix % 8;

	if (key_bytes(k, a) != c->v6)
		return false;
	if (memcmp(a, c->addr, full))
		return false;
	return !rest || !((a[full] ^ c->addr[full]) & (__u8)(0xff << (8 - rest)));
}

int limit_parse_shed_pending(const char *s, __u32 *n, __u32 *low)
{
	const char *colon = strchr(s, ':');
	__u32 v, l;

	if (parse_u32(s, colon ? (size_t)(colon - s) : strlen(s), &v) || !v)
		return -EINVAL;
	if (colon) {
		if (parse_u32(colon + 1, strlen(colon + 1), &l) || l >= v)
			return -EINVAL;
	} else {
		l = v / 2;
	}
	*n = v;
	*low = l;
	return 0;
}

void shed_window_add(struct shed_window *w, const struct shed_snap *snap)
{
	/* fewer requests than before: a target went away with its series */
	if (w->n && snap->total < w->s[w->head].total)
		w->n = 0;
	w->head = (w->head + 1) % SHED_SNAPS;
	w->s[w->head] = *snap;
	if (w->n < SHED_SNAPS)
		w->n++;
}

/* The q-quantile of a histogram as Prometheus' histogram_quantile(). */
static double quantile(double q, const __u64 *cnt, const double *bounds, __u64 total)
{
	double rank = q * (double)total, cum = 0, lo = 0;

	for (int i = 0; i < BS_DUR_BOUNDS; i++) {
		if (cum + (double)cnt[i] >= rank && cnt[i])
			return lo + (bounds[i] - lo) * (rank - cum) / (double)cnt[i];
		cum += (double)cnt[i];
		lo = bounds[i];
	}
	/* in the +Inf bucket: the largest finite bound, as Prometheus says */
	return bounds[BS_DUR_BOUNDS - 1];
}

void shed_window_eval(const struct shed_window *w, const struct limit_opts *o, const double *bounds,
		      struct shed_eval *out)
{
	const struct shed_snap *now, *old;
	__u64 cnt[BS_DUR_SLOTS];
	int back;

	memset(out, 0, sizeof(*out));
	if (w->n < 2)
		return;
	now = &w->s[w->head];
	/* the oldest snapshot still within the window (or the oldest there is) */
	old = now;
	for (back = 1; back < w->n; back++) {
		const struct shed_snap *s = &w->s[(w->head - back + SHED_SNAPS) % SHED_SNAPS];

		old = s;
		if ((double)(now->t_ms - s->t_ms) >= o->shed_window * 1000)
			break;
	}
	out->requests = now->total - old->total;
	if (!out->requests)
		return;
	for (int i = 0; i < BS_DUR_SLOTS; i++)
		cnt[i] = now->dur[i] - old->dur[i];
	out->p99 = quantile(0.99, cnt, bounds, out->requests);
	out->ratio_5xx = (double)(now->n5xx - old->n5xx) / (double)out->requests;
	if (out->requests < o->shed_min_requests)
		return;
	out->trip = (o->shed_p99 > 0 && out->p99 > o->shed_p99) ||
		    (o->shed_5xx > 0 && out->ratio_5xx > o->shed_5xx);
}
