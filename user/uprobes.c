// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * --uprobe BINARY:SYMBOL: count the calls of a function and time them, in
 * every target that maps BINARY.  The probes are attached per target pid
 * (a uprobe on a shared library attached for every process would tax the
 * whole host), with the cookie slot * BS_MAX_UPROBES + probe naming the
 * uprobe_stats element.  A uprobe costs microseconds per hit: never put one
 * on a per-request path by default.
 */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <bpf/bpf.h>
#include <bpf/libbpf.h>

#include "limit.h"
#include "bunscope.skel.h"
#include "daemon.h"
#include "expo.h"
#include "log.h"

static const double ulat_bounds[BS_ULAT_BOUNDS] = {
	1e-6, 1e-5, 1e-4, 1e-3, 1e-2, 1e-1, 1, 10,
};

int uprobe_parse(const char *arg, struct uprobe_spec *u)
{
	const char *colon = strrchr(arg, ':');
	size_t blen, slen;

	if (!colon || colon == arg || !colon[1])
		return -EINVAL;
	blen = (size_t)(colon - arg);
	slen = strlen(colon + 1);
	if (blen >= sizeof(u->binary) || slen >= sizeof(u->symbol))
		return -ENAMETOOLONG;
	memcpy(u->binary, arg, blen);
	u->binary[blen] = 0;
	memcpy(u->symbol, colon + 1, slen + 1);
	snprintf(u->label, sizeof(u->label), "%s:%s", u->binary, u->symbol);
	return 0;
}

static struct bpf_link *attach_one(struct app *a, const struct uprobe_spec *u, int pid,
				   __u64 cookie, bool ret)
{
	LIBBPF_OPTS(bpf_uprobe_opts, o, .bpf_cookie = cookie, .retprobe = ret,
		    .func_name = u->symbol);
	struct bpf_program *prog =
		ret ? a->ld.skel->progs.bs_uprobe_return : a->ld.skel->progs.bs_uprobe_enter;

	return bpf_program__attach_uprobe_opts(prog, pid, u->binary, 0, &o);
}

int uprobes_validate(struct app *a)
{
	for (int i = 0; i < a->cfg.nuprobes; i++) {
		const struct uprobe_spec *u = &a->cfg.uprobes[i];
		/* a probe filtered to this process: resolves the path and symbol */
		struct bpf_link *l = attach_one(a, u, getpid(), 0, false);

		if (!l) {
			pr_warn("--uprobe %s: cannot attach: %s (BINARY must be a path or a "
				"library name such as libc.so.6, SYMBOL a function in its symbol "
				"table; the release Bun binary has none for its internals)\n",
				u->label, strerror(errno));
			return -EINVAL;
		}
		bpf_link__destroy(l);
	}
	return 0;
}

void uprobes_attach(struct app *a, const struct target *t)
{
	int fd = bpf_map__fd(a->ld.skel->maps.uprobe_stats);
	size_t stride = (sizeof(struct bs_uprobe_val) + 7) & ~(size_t)7;
	void *zero;

	if (!a->cfg.nuprobes || t->slot < 0 || t->slot >= BUNSCOPE_MAX_TARGETS)
		return;
	zero = calloc((size_t)collect_ncpus(), stride);
	for (int i = 0; i < a->cfg.nuprobes; i++) {
		const struct uprobe_spec *u = &a->cfg.uprobes[i];
		__u32 idx = (__u32)(t->slot * BS_MAX_UPROBES + i);
		struct bpf_link **l = a->ulinks[t->slot][i];

		if (zero)
			bpf_map_update_elem(fd, &idx, zero, BPF_ANY);
		l[0] = attach_one(a, u, (int)t->pid, idx, false);
		l[1] = l[0] ? attach_one(a, u, (int)t->pid, idx, true) : NULL;
		if (!l[0] || !l[1]) {
			pr_warn("pid %u: cannot attach --uprobe %s: %s\n", t->pid, u->label,
				strerror(errno));
			bpf_link__destroy(l[0]);
			l[0] = NULL;
		}
	}
	free(zero);
}

void uprobes_detach(struct app *a, int slot)
{
	if (slot < 0 || slot >= BUNSCOPE_MAX_TARGETS)
		return;
	for (int i = 0; i < BS_MAX_UPROBES; i++) {
		for (int r = 0; r < 2; r++) {
			bpf_link__destroy(a->ulinks[slot][i][r]);
			a->ulinks[slot][i][r] = NULL;
		}
	}
}

void uprobes_write_metrics(const struct app *a, struct sbuf *sb)
{
	int fd = bpf_map__fd(a->ld.skel->maps.uprobe_stats);
	size_t stride = (sizeof(struct bs_uprobe_val) + 7) & ~(size_t)7;
	struct bs_uprobe_val v[BUNSCOPE_MAX_TARGETS][BS_MAX_UPROBES];
	bool ok[BUNSCOPE_MAX_TARGETS][BS_MAX_UPROBES] = {};
	unsigned long long counts[BS_ULAT_SLOTS];
	void *buf;

	if (!a->cfg.nuprobes)
		return;
	buf = malloc(stride * (size_t)collect_ncpus());
	if (!buf)
		return;
	for (int t = 0; t < a->targets.n; t++) {
		int slot = a->targets.t[t].slot;

		for (int i = 0; i < a->cfg.nuprobes; i++) {
			__u32 idx = (__u32)(slot * BS_MAX_UPROBES + i);

			if (!a->ulinks[slot][i][0] || bpf_map_lookup_elem(fd, &idx, buf))
				continue;
			collect_sum_percpu(buf, sizeof(v[t][i]), &v[t][i]);
			ok[t][i] = true;
		}
	}
	free(buf);

	expo_header(sb, "bunscope_uprobe_calls_total", "counter",
		    "Calls of each --uprobe function in each target (at entry).");
	for (int t = 0; t < a->targets.n; t++) {
		char pid[16];

		snprintf(pid, sizeof(pid), "%u", a->targets.t[t].pid);
		for (int i = 0; i < a->cfg.nuprobes; i++) {
			struct expo_label l[2] = { { "pid", pid },
						   { "probe", a->cfg.uprobes[i].label } };

			if (ok[t][i])
				expo_sample_u64(sb, "bunscope_uprobe_calls_total", l, 2,
						v[t][i].calls);
		}
	}
	expo_header(sb, "bunscope_uprobe_duration_seconds", "histogram",
		    "Time from entry to return of each --uprobe function, calls that returned.");
	for (int t = 0; t < a->targets.n; t++) {
		char pid[16];

		snprintf(pid, sizeof(pid), "%u", a->targets.t[t].pid);
		for (int i = 0; i < a->cfg.nuprobes; i++) {
			struct expo_label l[2] = { { "pid", pid },
						   { "probe", a->cfg.uprobes[i].label } };

			if (!ok[t][i])
				continue;
			for (int s = 0; s < BS_ULAT_SLOTS; s++)
				counts[s] = v[t][i].lat[s];
			expo_histogram(sb, "bunscope_uprobe_duration_seconds", l, 2, ulat_bounds,
				       BS_ULAT_BOUNDS, counts, (double)v[t][i].lat_sum_ns / 1e9);
		}
	}
}
