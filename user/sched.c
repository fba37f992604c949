// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * Threads, event loop and GC of the targets, from the thread_cpu, oncpu and
 * loop maps (sched_switch and the JS thread's epoll calls).
 *
 * The kernel side books time when a stretch ends (a thread leaves the CPU,
 * the JS thread enters or leaves epoll); here the stretch under way is added
 * at read time, so a thread that runs for seconds without a switch is seen
 * as it runs.  Those reads race with the kernel's updates, so every counter
 * is exported as the largest value exported so far.
 *
 * Event-loop utilisation over a short window: a 50 ms timer samples the
 * busy/idle totals into a ring per target; the gauge compares now with the
 * newest sample at least ELU_WINDOW_NS old.
 */
#include <errno.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <bpf/bpf.h>

#include "daemon.h"
#include "expo.h"
#include "log.h"

static const char *const role_names[BS_ROLES] = {
	[BS_ROLE_JS] = "js",
	[BS_ROLE_GC_HELPER] = "gc_helper",
	[BS_ROLE_GC_COLLECTOR] = "gc_collector",
	[BS_ROLE_ALLOCATOR] = "allocator",
	[BS_ROLE_JIT] = "jit",
	[BS_ROLE_HTTP_CLIENT] = "http_client",
	[BS_ROLE_OTHER] = "other",
};

/* histogram bounds in seconds, as the BPF side's block_slot() and rq_slot() */
static const double block_bounds[BS_BLOCK_BOUNDS] = {
	0.0001, 0.0005, 0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10,
};
static const double rq_bounds[BS_RQ_BOUNDS] = {
	0.00001, 0.00005, 0.0001, 0.0005, 0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1,
};

static __u64 mono_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts); /* bpf_ktime_get_ns()'s clock */
	return (__u64)ts.tv_sec * 1000000000ULL + (__u64)ts.tv_nsec;
}

static __u64 max_u64(__u64 a, __u64 b)
{
	return a > b ? a : b;
}

void sched_seed(struct app *a, const struct target *t)
{
	__u32 k = (__u32)t->slot;
	struct bs_loop zero = {};

	if (t->slot < 0 || t->slot >= BUNSCOPE_MAX_TARGETS)
		return;
	if (bpf_map_update_elem(loader_fd_loop(&a->ld), &k, &zero, BPF_ANY))
		pr_warn("pid %u: cannot reset its event-loop figures: %s\n", t->pid,
			strerror(errno));
	collect_zero_percpu(loader_fd_thread_cpu(&a->ld), k, sizeof(struct bs_thread_cpu));
	memset(&a->sched[t->slot], 0, sizeof(a->sched[t->slot]));
}

/* The stretch under way of the JS thread, added to what the kernel booked. */
static void loop_totals(const struct bs_loop *l, __u64 now, __u64 *busy, __u64 *idle)
{
	*busy = l->busy_ns;
	*idle = l->idle_ns;
	if (l->epoll_enter) {
		if (now > l->epoll_enter)
			*idle += now - l->epoll_enter;
	} else if (l->epoll_exit && now > l->epoll_exit) {
		*busy += now - l->epoll_exit;
	}
}

/* The figures of one target, read now; the monotonic guard in a->sched applied. */
static int sched_read(struct app *a, const struct target *t, struct sched_view *v)
{
	int slot = t->slot, fd = loader_fd_oncpu(&a->ld), ncpu = collect_ncpus();
	struct sched_state *st;
	struct bs_oncpu *oc;
	__u32 k = (__u32)slot, zero = 0;
	__u64 now, busy, idle;

	memset(v, 0, sizeof(*v));
	if (slot < 0 || slot >= BUNSCOPE_MAX_TARGETS)
		return -EINVAL;
	st = &a->sched[slot];
	if (collect_read_percpu(loader_fd_thread_cpu(&a->ld), k, &v->cpu, sizeof(v->cpu)) ||
	    bpf_map_lookup_elem(loader_fd_loop(&a->ld), &k, &v->loop))
		return -errno;
	now = mono_ns();
	/* threads of this target on a CPU right now */
	oc = calloc((size_t)ncpu, sizeof(*oc));
	if (oc && !bpf_map_lookup_elem(fd, &zero, oc)) {
		for (int c = 0; c < ncpu; c++)
			if (oc[c].since && oc[c].slot == k && oc[c].role < BS_ROLES &&
			    now > oc[c].since) {
				v->cpu.ns[oc[c].role] += now - oc[c].since;
				v->cpu.runs[oc[c].role]++; /* the kernel counts arrivals */
			}
	}
	free(oc);
	for (int r = 0; r < BS_ROLES; r++) {
		v->cpu.ns[r] = st->cpu_ns[r] = max_u64(st->cpu_ns[r], v->cpu.ns[r]);
		v->cpu.runs[r] = st->runs[r] = max_u64(st->runs[r], v->cpu.runs[r]);
	}
	loop_totals(&v->loop, now, &busy, &idle);
	v->busy_ns = st->busy_ns = max_u64(st->busy_ns, busy);
	v->idle_ns = st->idle_ns = max_u64(st->idle_ns, idle);
	v->have_loop = v->loop.epoll_exit || v->loop.epoll_enter;
	v->elu = -1;
	/* the window: from the newest sample at least ELU_WINDOW_NS old (or the oldest) */
	for (int i = 0; v->have_loop && i < st->nsamples; i++) {
		const struct elu_sample *s = &st->ring[(st->head - 1 - i + ELU_RING) % ELU_RING];
		__u64 db, di;

		if (now - s->t < ELU_WINDOW_NS && i + 1 < st->nsamples)
			continue;
		db = v->busy_ns - s->busy;
		di = v->idle_ns - s->idle;
		if (db + di)
			v->elu = (double)db / (double)(db + di);
		break;
	}
	return 0;
}

void sched_sample(struct app *a)
{
	__u64 now = mono_ns();

	for (int i = 0; i < a->targets.n; i++) {
		const struct target *t = &a->targets.t[i];
		struct sched_state *st;
		struct bs_loop l;
		__u32 k = (__u32)t->slot;
		__u64 busy, idle;

		if (t->slot < 0 || t->slot >= BUNSCOPE_MAX_TARGETS ||
		    bpf_map_lookup_elem(loader_fd_loop(&a->ld), &k, &l))
			continue;
		if (!l.epoll_exit && !l.epoll_enter)
			continue;
		st = &a->sched[t->slot];
		loop_totals(&l, now, &busy, &idle);
		st->busy_ns = max_u64(st->busy_ns, busy);
		st->idle_ns = max_u64(st->idle_ns, idle);
		st->ring[st->head] = (struct elu_sample){ now, st->busy_ns, st->idle_ns };
		st->head = (st->head + 1) % ELU_RING;
		if (st->nsamples < ELU_RING)
			st->nsamples++;
	}
}

int sched_read_target(struct app *a, __u32 pid, struct sched_view *v)
{
	for (int i = 0; i < a->targets.n; i++)
		if (a->targets.t[i].pid == pid)
			return sched_read(a, &a->targets.t[i], v);
	return -ENOENT;
}

/* The counters with one sample per target: a field of struct sched_view. */
struct family {
	const char *name, *help;
	size_t off;
	bool seconds; /* ns exported as seconds, once the loop was seen */
};

#define V(field) offsetof(struct sched_view, field)
static const struct family families[] = {
	{ "bun_event_loop_busy_seconds_total",
	  "Time the JS thread spent outside epoll since the first epoll return seen.", V(busy_ns),
	  true },
	{ "bun_event_loop_idle_seconds_total", "Time the JS thread spent waiting in epoll.",
	  V(idle_ns), true },
	{ "bun_event_loop_iterations_total", "Returns of the JS thread from epoll.",
	  V(loop.iterations), false },
	{ "bun_gc_bursts_total",
	  "GC activity signal: bursts of JSC's GC threads (HeapHelper, the collector thread), "
	  "runs less than 20 ms apart, counted once they used 1 ms of CPU. Collections done "
	  "on the JS thread alone do not show; GC CPU is "
	  "bun_thread_cpu_seconds_total{thread=~\"gc_.*\"}.",
	  V(loop.gc_bursts), false },
	{ "bun_allocator_scavenge_bursts_total",
	  "madvise calls of the allocator's mi-scavenger thread after 20 ms without one: "
	  "memory returned to the kernel in the background.",
	  V(loop.scav_bursts), false },
	{ "bun_allocator_scavenge_calls_total",
	  "Successful madvise calls of the mi-scavenger thread.", V(loop.scav_calls), false },
	{ "bun_allocator_scavenge_bytes_total", "Bytes those calls covered (page-rounded).",
	  V(loop.scav_bytes), false },
};
#undef V

void sched_write_metrics(struct app *a, struct sbuf *sb)
{
	struct sched_view views[BUNSCOPE_MAX_TARGETS];
	struct expo_label pl[BUNSCOPE_MAX_TARGETS];
	char pids[BUNSCOPE_MAX_TARGETS][16];
	bool ok[BUNSCOPE_MAX_TARGETS];
	int n = a->targets.n;

	for (int i = 0; i < n; i++) {
		snprintf(pids[i], sizeof(pids[i]), "%u", a->targets.t[i].pid);
		pl[i] = (struct expo_label){ "pid", pids[i] };
		ok[i] = !sched_read(a, &a->targets.t[i], &views[i]);
	}
/* i names the variable it declares */
/* NOLINTBEGIN(bugprone-macro-parentheses) */
#define EACH(i)                     \
	for (int i = 0; i < n; i++) \
		if (ok[i])
	/* NOLINTEND(bugprone-macro-parentheses) */

	for (int pass = 0; pass < 2; pass++) {
		const char *name = pass ? "bun_thread_runs_total" : "bun_thread_cpu_seconds_total";

		expo_header(sb, name, "counter",
			    pass ? "Times a thread of the role was switched in (voluntary and "
				   "involuntary)."
				 : "On-CPU time of the target's threads by role (sched_switch), "
				   "since attach: js is the thread whose tid is the pid; gc_helper "
				   "and gc_collector are JSC's GC threads; allocator is "
				   "mi-scavenger.");
		EACH (i)
			for (int r = 0; r < BS_ROLES; r++) {
				struct expo_label l[2] = { pl[i], { "thread", role_names[r] } };

				if (pass)
					expo_sample_u64(sb, name, l, 2, views[i].cpu.runs[r]);
				else
					expo_sample(sb, name, l, 2,
						    (double)views[i].cpu.ns[r] / 1e9);
			}
	}
	expo_header(sb, "bun_event_loop_utilization", "gauge",
		    "Fraction of the last second the JS thread spent outside epoll (what "
		    "Node's eventLoopUtilization() reports).");
	EACH (i)
		if (views[i].elu >= 0)
			expo_sample(sb, "bun_event_loop_utilization", &pl[i], 1, views[i].elu);
	for (size_t f = 0; f < sizeof(families) / sizeof(families[0]); f++) {
		const struct family *fam = &families[f];

		expo_header(sb, fam->name, "counter", fam->help);
		EACH (i) {
			__u64 v = *(const __u64 *)((const char *)&views[i] + fam->off);

			if (fam->seconds && views[i].have_loop)
				expo_sample(sb, fam->name, &pl[i], 1, (double)v / 1e9);
			else if (!fam->seconds)
				expo_sample_u64(sb, fam->name, &pl[i], 1, v);
		}
	}
	expo_header(sb, "bun_event_loop_block_duration_seconds", "histogram",
		    "Time the JS thread ran between a return from epoll and the next epoll "
		    "call: a 200 ms synchronous handler is one 200 ms sample.");
	EACH (i)
		expo_histogram(sb, "bun_event_loop_block_duration_seconds", &pl[i], 1, block_bounds,
			       BS_BLOCK_BOUNDS, views[i].loop.block,
			       (double)views[i].loop.busy_ns / 1e9);
	expo_header(sb, "bun_event_loop_run_queue_delay_seconds", "histogram",
		    "Time the JS thread was runnable (woken or preempted) before it ran.");
	EACH (i)
		expo_histogram(sb, "bun_event_loop_run_queue_delay_seconds", &pl[i], 1, rq_bounds,
			       BS_RQ_BOUNDS, views[i].loop.rq, (double)views[i].loop.rq_ns / 1e9);
#undef EACH
}
