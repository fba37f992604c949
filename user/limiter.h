/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/* bunscope's limiter: options, and the daemon side of bpf/limit.bpf.c. */
#ifndef BUNSCOPE_USER_LIMITER_H
#define BUNSCOPE_USER_LIMITER_H

#include <stdbool.h>
#include <linux/types.h>
#include "limit.h"

#define LIMIT_MAX_CIDRS	256

enum limit_mode_opt { LIMIT_MODE_AUTO = 0, LIMIT_MODE_XDP, LIMIT_MODE_TC };

struct limit_cidr {
	__u8 v6;
	__u8 prefix;
	__u8 addr[16];		/* network order; IPv4 in the first 4 bytes */
};

struct limit_opts {
	const char *ifaces[BS_LIM_MAX_IFACES];
	int nifaces;
	enum limit_mode_opt mode;
	__u32 conn_rate, conn_burst;	/* 0: no connection limit */
	__u32 pkt_rate, pkt_burst;	/* 0: no packet limit */
	enum bs_lim_algo algo;
	__u32 clients;			/* source slots (power of two) */
	__u32 v6_prefix;
	struct limit_cidr allow[LIMIT_MAX_CIDRS], deny[LIMIT_MAX_CIDRS];
	int nallow, ndeny;
};

/* ---- parsing (limit_parse.c, no libbpf: unit-tested) ---- */
void limit_opts_init(struct limit_opts *o);
/* "RATE:BURST" (BURST defaults to RATE when ":BURST" is left out) */
int limit_parse_rate(const char *s, __u32 *rate, __u32 *burst);
/* a named preset (api, strict, burst) into o; -1 if unknown */
int limit_preset(const char *name, struct limit_opts *o);
const char *limit_presets_help(void);
/* "10.0.0.0/8", "2001:db8::/32", a bare address (a /32 or /128) */
int limit_parse_cidr(const char *s, struct limit_cidr *c);
/* one CIDR a line, '#' comments; appends to list; -1 with *line set on error */
int limit_read_cidr_file(const char *path, struct limit_cidr *list, int *n, int max, int *line);
int limit_format_cidr(const struct limit_cidr *c, char *buf, size_t len);

/* ---- the limiter (limit.c) ---- */
struct limiter;

bool limit_enabled(const struct limit_opts *o);
/* load (reusing pinned state), configure and attach; NULL on failure (logged) */
struct limiter *limit_start(const struct limit_opts *o);
/* the limited ports: replaces the set */
int limit_set_ports(struct limiter *l, const __u16 *ports, int n);
/* Prometheus text of the limiter's figures */
struct sbuf;
void limit_write_metrics(struct limiter *l, struct sbuf *sb);
/* close our handles; enforcement stays attached (pinned) */
void limit_close(struct limiter *l);

/* `bunscope limit status|detach` */
int limit_cli(int argc, char **argv);

#endif
