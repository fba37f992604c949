/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/* bunscope's limiter: options, and the daemon side of bpf/limit.bpf.c. */
#ifndef BUNSCOPE_USER_LIMITER_H
#define BUNSCOPE_USER_LIMITER_H

#include <stdbool.h>
#include <linux/types.h>
#include "bunscope.h"
#include "limit.h"

#define LIMIT_MAX_CIDRS 256

enum limit_mode_opt { LIMIT_MODE_AUTO = 0, LIMIT_MODE_XDP, LIMIT_MODE_TC };

struct limit_cidr {
	__u8 v6;
	__u8 prefix;
	__u8 addr[16]; /* network order; IPv4 in the first 4 bytes */
};

struct limit_opts {
	const char *ifaces[BS_LIM_MAX_IFACES];
	int nifaces;
	enum limit_mode_opt mode;
	__u32 conn_rate, conn_burst; /* 0: no connection limit */
	__u32 pkt_rate, pkt_burst;   /* 0: no packet limit */
	enum bs_lim_algo algo;
	__u32 clients; /* source slots (power of two) */
	__u32 v6_prefix;
	struct limit_cidr allow[LIMIT_MAX_CIDRS], deny[LIMIT_MAX_CIDRS];
	int nallow, ndeny;
	/* bans by HTTP request rate (the observer's), 0: off */
	__u32 req_rate, req_burst;
	__u32 ban_seconds;
	/* the breaker: off while shed_pending, shed_p99 and shed_5xx are all 0 */
	__u32 shed_pending, shed_low; /* open above shed_pending, close at <= shed_low */
	double shed_p99;	      /* seconds: open when the window's p99 exceeds it */
	double shed_5xx;	      /* 0..1: open when the window's 5xx share exceeds it */
	double shed_window;	      /* seconds of requests the two above look at */
	__u32 shed_min_requests;      /* fewer in the window: the two above do not trip */
	double shed_open;	      /* seconds open before half-open */
	__u32 shed_probe_pct;	      /* half-open: per cent of new connections let in */
};

static inline bool limit_shed_enabled(const struct limit_opts *o)
{
	return o->shed_pending || o->shed_p99 > 0 || o->shed_5xx > 0;
}

/* ---- parsing (limit_parse.c, no libbpf: unit-tested) ---- */
void limit_opts_init(struct limit_opts *o);
/* "RATE:BURST" (BURST defaults to RATE when ":BURST" is left out); -ERANGE
 * for a BURST above BS_LIM_MAX_BURST, -EINVAL for anything else wrong */
int limit_parse_rate(const char *s, __u32 *rate, __u32 *burst);
/* a named preset (api, strict, burst) into o; -1 if unknown */
int limit_preset(const char *name, struct limit_opts *o);
const char *limit_presets_help(void);
/* "10.0.0.0/8", "2001:db8::/32", a bare address (a /32 or /128) */
int limit_parse_cidr(const char *s, struct limit_cidr *c);
/* one CIDR a line, '#' comments; appends to list; -1 with *line set on error */
int limit_read_cidr_file(const char *path, struct limit_cidr *list, int *n, int max, int *line);
int limit_format_cidr(const struct limit_cidr *c, char *buf, size_t len);
/* "N" or "N:LOW" (LOW < N; default N / 2) */
int limit_parse_shed_pending(const char *s, __u32 *n, __u32 *low);
/* a source key as an address (IPv4) or a network of v6_prefix (IPv6) */
int limit_format_key(const struct bs_lim_key *k, __u32 v6_prefix, char *buf, size_t len);
/* the source key of an address (an IPv6 one grouped by v6_prefix) */
void limit_cidr_key(const struct limit_cidr *c, __u32 v6_prefix, struct bs_lim_key *k);
/* is the source of k inside c? */
bool limit_key_in_cidr(const struct bs_lim_key *k, const struct limit_cidr *c);

/*
 * The breaker's window of completed requests, for --shed-p99 and --shed-5xx:
 * snapshots of cumulative totals, one a refresh; the window's figures are
 * the difference between the newest and the one a window ago.
 */
#define SHED_SNAPS 512

struct shed_snap {
	__u64 t_ms;
	__u64 dur[BS_DUR_SLOTS]; /* cumulative latency histogram, all series */
	__u64 n5xx, total;
};

struct shed_window {
	struct shed_snap s[SHED_SNAPS];
	int head, n; /* ring: s[head] is the newest */
};

struct shed_eval {
	__u64 requests; /* completed within the window */
	double p99;	/* seconds, interpolated as histogram_quantile does */
	double ratio_5xx;
	bool trip;
};

void shed_window_add(struct shed_window *w, const struct shed_snap *snap);
/* bounds: the histogram's BS_DUR_BOUNDS upper bounds (seconds) */
void shed_window_eval(const struct shed_window *w, const struct limit_opts *o, const double *bounds,
		      struct shed_eval *out);

/* ---- the limiter (limit.c) ---- */
struct limiter;

bool limit_enabled(const struct limit_opts *o);
/* load (reusing pinned state), configure and attach; NULL on failure (logged) */
struct limiter *limit_start(const struct limit_opts *o);
/* the limited ports: replaces the set */
int limit_set_ports(struct limiter *l, const __u16 *ports, int n);
/* create the pin directory (mounting bpffs) and refuse pinned maps of another
 * shape, before the observer shares its maps */
int limit_prepare_pins(const struct limit_opts *o);
/* give the breaker the observer's stats map */
int limit_bind_observer(struct limiter *l, int stats_fd);
/* once a refresh: the breaker's heartbeat, the targets' stats entries and the
 * daemon's thresholds; new bans logged */
void limit_tick(struct limiter *l, const __u32 *idx, int nidx, const struct shed_eval *ev);
/* the breaker for the JSON endpoint: state name, pending; false when off */
bool limit_breaker(struct limiter *l, const char **state, long long *pending);
/* Prometheus text of the limiter's figures */
struct sbuf;
void limit_write_metrics(struct limiter *l, struct sbuf *sb);
/* close our handles; enforcement stays attached (pinned) */
void limit_close(struct limiter *l);

/* `bunscope limit status|detach|bans|ban|unban` */
int limit_cli(int argc, char **argv);

#endif
