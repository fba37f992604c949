// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * Memory of the targets: resident memory from kmem:rss_stat (the mem map,
 * seeded from /proc/PID/status when a target is attached), the memory
 * syscalls (mem_calls), page faults (the kernel's own per-process counters
 * in /proc/PID/stat: exact and free), OOM kills and the --memory-ceiling.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <bpf/bpf.h>

#include "daemon.h"
#include "expo.h"
#include "log.h"

/* madvise advice names (include/uapi/asm-generic/mman-common.h); NULL: other */
static const char *const advice_names[BS_MADV_KINDS] = {
	[0] = "normal",		  [1] = "random",	  [2] = "sequential",
	[3] = "willneed",	  [4] = "dontneed",	  [8] = "free",
	[9] = "remove",		  [10] = "dontfork",	  [11] = "dofork",
	[12] = "mergeable",	  [13] = "unmergeable",	  [14] = "hugepage",
	[15] = "nohugepage",	  [16] = "dontdump",	  [17] = "dodump",
	[18] = "wipeonfork",	  [19] = "keeponfork",	  [20] = "cold",
	[21] = "pageout",	  [22] = "populate_read", [23] = "populate_write",
	[24] = "dontneed_locked", [25] = "collapse",
};

/* The resident figures of /proc/PID/status, in bytes. */
static int read_status(__u32 pid, struct bs_mem *m)
{
	static const char *const keys[] = { "RssFile", "RssAnon", "VmSwap", "RssShmem", "VmHWM" };
	unsigned long long kb[5];
	int err = proc_status_kb(pid, keys, kb, 5);

	memset(m, 0, sizeof(*m));
	if (err)
		return err;
	for (int i = 0; i < BS_RSS_KINDS; i++) /* keys[] is in BS_RSS_* order */
		m->rss[i] = kb[i] * 1024;
	m->hwm = kb[4] * 1024;
	return 0;
}

void mem_seed(struct app *a, const struct target *t)
{
	struct bs_mem m;
	__u32 k = (__u32)t->slot;

	if (read_status(t->pid, &m))
		memset(&m, 0, sizeof(m));
	if (bpf_map_update_elem(loader_fd_mem(&a->ld), &k, &m, BPF_ANY))
		pr_warn("pid %u: cannot seed its memory figures: %s\n", t->pid, strerror(errno));
	collect_zero_percpu(loader_fd_mem_calls(&a->ld), k, sizeof(struct bs_mem_calls));
	if (t->slot >= 0 && t->slot < BUNSCOPE_MAX_TARGETS)
		a->mem_over[t->slot] = false;
}

int mem_read(const struct app *a, const struct target *t, struct mem_view *v)
{
	__u32 k = (__u32)t->slot;
	struct bs_mem m;

	memset(v, 0, sizeof(*v));
	if (bpf_map_lookup_elem(loader_fd_mem(&a->ld), &k, &m))
		return -errno;
	v->anon = m.rss[BS_RSS_ANON];
	v->file = m.rss[BS_RSS_FILE];
	v->shmem = m.rss[BS_RSS_SHMEM];
	v->swap = m.rss[BS_RSS_SWAP];
	v->rss = v->anon + v->file + v->shmem;
	v->hwm = m.hwm > v->rss ? m.hwm : v->rss;
	v->over = v->rss > a->cfg.memory_ceiling;
	return 0;
}

/* minflt and majflt of /proc/PID/stat (the whole process, exited threads too). */
static int read_faults(__u32 pid, unsigned long long *minor, unsigned long long *major)
{
	static const int fields[2] = { 10, 12 };
	unsigned long long v[2];
	int err = proc_stat_fields(pid, NULL, fields, v, 2);

	if (!err) {
		*minor = v[0];
		*major = v[1];
	}
	return err;
}

static int read_calls(const struct app *a, int slot, struct bs_mem_calls *c)
{
	return collect_read_percpu(loader_fd_mem_calls(&a->ld), (__u32)slot, c, sizeof(*c));
}

/* One family: a sample per target, the value from get(). */
#define PER_TARGET(name, type, help, expr)                               \
	do {                                                             \
		expo_header(sb, name, type, help);                       \
		for (int i = 0; i < a->targets.n; i++) {                 \
			const struct mem_view *v = &views[i];            \
			const struct bs_mem_calls *c = &calls[i];        \
			struct expo_label l[1] = { { "pid", pids[i] } }; \
                                                                         \
			(void)v;                                         \
			(void)c;                                         \
			if (ok[i])                                       \
				expo_sample_u64(sb, name, l, 1, (expr)); \
		}                                                        \
	} while (0)

void mem_write_metrics(const struct app *a, struct sbuf *sb)
{
	struct mem_view views[BUNSCOPE_MAX_TARGETS];
	struct bs_mem_calls calls[BUNSCOPE_MAX_TARGETS];
	char pids[BUNSCOPE_MAX_TARGETS][16];
	bool ok[BUNSCOPE_MAX_TARGETS];
	static const char *const types[3] = { "anon", "file", "shmem" };

	for (int i = 0; i < a->targets.n; i++) {
		const struct target *t = &a->targets.t[i];

		snprintf(pids[i], sizeof(pids[i]), "%u", t->pid);
		ok[i] = !mem_read(a, t, &views[i]) && !read_calls(a, t->slot, &calls[i]);
	}

	/* ok[i] is set above for every i the macro reads (both < targets.n) */
	/* cppcheck-suppress uninitvar */
	PER_TARGET("bun_process_resident_memory_bytes", "gauge",
		   "Resident memory (anon + file + shmem) from kmem:rss_stat: VmRSS of "
		   "/proc/PID/status, kept exact by the kernel's events.",
		   v->rss);
	expo_header(sb, "bun_process_resident_memory_type_bytes", "gauge",
		    "Resident memory by kind.");
	for (int i = 0; i < a->targets.n; i++) {
		const __u64 vals[3] = { views[i].anon, views[i].file, views[i].shmem };

		for (int k = 0; ok[i] && k < 3; k++) {
			struct expo_label l[2] = { { "pid", pids[i] }, { "type", types[k] } };

			expo_sample_u64(sb, "bun_process_resident_memory_type_bytes", l, 2,
					vals[k]);
		}
	}
	PER_TARGET("bun_process_resident_memory_max_bytes", "gauge",
		   "High-water mark of resident memory (VmHWM at attach, then every change).",
		   v->hwm);
	PER_TARGET("bun_process_swap_bytes", "gauge", "Swapped-out memory (VmSwap).", v->swap);
	expo_header(sb, "bun_process_page_faults_total", "counter",
		    "Page faults of the process (all threads), from the kernel's counters.");
	for (int i = 0; i < a->targets.n; i++) {
		unsigned long long minor = 0, major = 0;

		if (read_faults(a->targets.t[i].pid, &minor, &major))
			continue;
		struct expo_label l[2] = { { "pid", pids[i] }, { "type", "minor" } };

		expo_sample_u64(sb, "bun_process_page_faults_total", l, 2, minor);
		l[1].value = "major";
		expo_sample_u64(sb, "bun_process_page_faults_total", l, 2, major);
	}
	PER_TARGET("bun_process_mmap_calls_total", "counter",
		   "Successful mmap calls since bunscope attached.", c->mmap_calls);
	PER_TARGET("bun_process_mmap_bytes_total", "counter",
		   "Bytes mapped by successful mmap calls (page-rounded lengths).", c->mmap_bytes);
	PER_TARGET("bun_process_munmap_calls_total", "counter", "Successful munmap calls.",
		   c->munmap_calls);
	PER_TARGET("bun_process_munmap_bytes_total", "counter",
		   "Bytes unmapped by successful munmap calls.", c->munmap_bytes);
	PER_TARGET("bun_process_brk_calls_total", "counter", "brk calls.", c->brk_calls);
	expo_header(sb, "bun_process_brk_bytes_total", "counter",
		    "Program break movements after the first brk call seen, by direction.");
	for (int i = 0; i < a->targets.n; i++) {
		struct expo_label l[2] = { { "pid", pids[i] }, { "direction", "grow" } };

		if (!ok[i])
			continue;
		expo_sample_u64(sb, "bun_process_brk_bytes_total", l, 2, calls[i].brk_grow_bytes);
		l[1].value = "shrink";
		expo_sample_u64(sb, "bun_process_brk_bytes_total", l, 2, calls[i].brk_shrink_bytes);
	}
	for (int pass = 0; pass < 2; pass++) {
		const char *name = pass ? "bun_process_madvise_bytes_total"
					: "bun_process_madvise_calls_total";

		expo_header(sb, name, "counter",
			    pass ? "Bytes of successful madvise calls, by advice (page-rounded)."
				 : "Successful madvise calls, by advice (Bun's allocator returns "
				   "memory with dontneed).");
		for (int i = 0; i < a->targets.n; i++) {
			unsigned long long other = 0;

			if (!ok[i])
				continue;
			for (int k = 0; k < BS_MADV_KINDS; k++) {
				unsigned long long val = pass ? calls[i].madvise_bytes[k]
							      : calls[i].madvise_calls[k];
				struct expo_label l[2] = { { "pid", pids[i] },
							   { "advice", advice_names[k] } };

				if (!advice_names[k]) {
					other += val;
					continue;
				}
				/* the usual two always, the rest once used */
				if (val || k == 4 || k == 8)
					expo_sample_u64(sb, name, l, 2, val);
			}
			if (other) {
				struct expo_label l[2] = { { "pid", pids[i] },
							   { "advice", "other" } };

				expo_sample_u64(sb, name, l, 2, other);
			}
		}
	}
	expo_header(sb, "bun_process_memory_ceiling_bytes", "gauge", "--memory-ceiling.");
	expo_sample_u64(sb, "bun_process_memory_ceiling_bytes", NULL, 0, a->cfg.memory_ceiling);
	PER_TARGET("bun_process_memory_ceiling_exceeded", "gauge",
		   "1 while resident memory is above --memory-ceiling.", v->over ? 1 : 0);
}

void mem_check_ceiling(struct app *a)
{
	for (int i = 0; i < a->targets.n; i++) {
		const struct target *t = &a->targets.t[i];
		struct mem_view v;

		if (t->slot < 0 || t->slot >= BUNSCOPE_MAX_TARGETS || mem_read(a, t, &v))
			continue;
		if (v.over != a->mem_over[t->slot]) {
			a->mem_over[t->slot] = v.over;
			if (v.over)
				pr_warn("pid %u (%s): resident memory %.1f MiB is above the memory "
					"ceiling of %.1f MiB\n",
					t->pid, t->comm, (double)v.rss / (1 << 20),
					(double)a->cfg.memory_ceiling / (1 << 20));
			else
				pr_info("pid %u (%s): resident memory %.1f MiB is back under the "
					"memory ceiling\n",
					t->pid, t->comm, (double)v.rss / (1 << 20));
		}
	}
}
