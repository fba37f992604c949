// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * Loading and attaching the BPF side.  Hooks are chosen by probing the
 * running kernel, never by its version:
 *
 *   1. syscalls:sys_{enter,exit}_* tracepoints: fire only for the syscalls we
 *      follow, so unrelated processes pay nothing for the rest.  Need
 *      CONFIG_FTRACE_SYSCALLS and tracefs (mounted here if missing).
 *   2. raw sys_enter/sys_exit tracepoints: no tracefs needed, but they run
 *      for every syscall on the host (a cheap target check first).
 *
 * fentry/kprobe variants are not built: the machines this was developed on
 * have neither, so they could not be tested (see README, Limitations).
 */
#include <errno.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/mount.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <linux/magic.h>
#include <bpf/bpf.h>
#include <bpf/btf.h>
#include <bpf/libbpf.h>

#include "bunscope.h"
#include "loader.h"
#include "log.h"
#include "limit.h"
#include "bunscope.skel.h"

#define TRACEFS "/sys/kernel/tracing"
#define BPFFS	"/sys/fs/bpf"

static const char *const exit_read_tps[] = { "read", "recvfrom", "readv", "recvmsg" };
static const char *const exit_write_tps[] = { "write", "sendto", "writev", "sendmsg",
					      "sendfile64" };
static const char *const exit_accept_tps[] = { "accept", "accept4" };
static const char *const exit_mem_tps[] = { "mmap", "munmap", "brk", "madvise" };

const char *capture_mode_name(enum capture_mode mode)
{
	switch (mode) {
	case CAPTURE_TRACEPOINT:
		return "tracepoint";
	case CAPTURE_RAW_TP:
		return "raw_tracepoint";
	default:
		return "auto";
	}
}

__u64 loader_caps(void)
{
	FILE *fp = fopen("/proc/self/status", "re");
	unsigned long long caps = 0;
	char line[256];

	if (!fp)
		return 0;
	while (fgets(line, sizeof(line), fp))
		if (!strncmp(line, "CapEff:", 7))
			caps = strtoull(line + 7, NULL, 16);
	fclose(fp);
	return caps;
}

bool loader_privileged(void)
{
	__u64 caps = loader_caps();

	/* CAP_SYS_ADMIN = 21, CAP_PERFMON = 38, CAP_BPF = 39 */
	return (caps & (1ULL << 21)) || ((caps & (1ULL << 38)) && (caps & (1ULL << 39)));
}

bool loader_bpf_stats_enabled(void)
{
	FILE *fp = fopen("/proc/sys/kernel/bpf_stats_enabled", "re");
	int v = 0;

	if (fp) {
		if (fscanf(fp, "%d", &v) != 1)
			v = 0;
		fclose(fp);
	}
	return v == 1;
}

static bool is_fs(const char *path, long magic)
{
	struct statfs sf;

	return !statfs(path, &sf) && sf.f_type == magic;
}

bool loader_tracefs_mounted(void)
{
	return is_fs(TRACEFS, TRACEFS_MAGIC);
}

bool loader_bpffs_mounted(void)
{
	return is_fs(BPFFS, BPF_FS_MAGIC);
}

bool loader_have_syscall_tracepoints(void)
{
	return !access(TRACEFS "/events/syscalls/sys_enter_recvfrom/id", F_OK);
}

int loader_prepare_fs(bool need_tracefs)
{
	int err = 0;

	if (need_tracefs && !loader_tracefs_mounted()) {
		if (mount("nodev", TRACEFS, "tracefs", 0, NULL)) {
			err = -errno;
			pr_warn("cannot mount tracefs on %s: %s (run: mount -t tracefs nodev %s)\n",
				TRACEFS, strerror(errno), TRACEFS);
		} else {
			pr_info("mounted tracefs on %s (it was not mounted)\n", TRACEFS);
		}
	}
	if (!loader_bpffs_mounted()) {
		if (mount("bpf", BPFFS, "bpf", 0, NULL))
			pr_debug("cannot mount bpffs on %s: %s (not needed yet)\n", BPFFS,
				 strerror(errno));
		else
			pr_info("mounted bpffs on %s (it was not mounted)\n", BPFFS);
	}
	return err;
}

/* syscalls:sys_DIR_SC; -errno on failure, without a word (optional hooks) */
static int attach_tp_quiet(struct loader *l, struct bpf_program *prog, const char *dir,
			   const char *sc)
{
	char name[64];
	struct bpf_link *link;

	if (l->nlinks >= LOADER_MAX_LINKS)
		return -E2BIG;
	snprintf(name, sizeof(name), "sys_%s_%s", dir, sc);
	link = bpf_program__attach_tracepoint(prog, "syscalls", name);
	if (!link)
		return -errno;
	l->links[l->nlinks++] = link;
	return 0;
}

static int attach_tp(struct loader *l, struct bpf_program *prog, const char *dir, const char *sc)
{
	int err = attach_tp_quiet(l, prog, dir, sc);

	if (err)
		pr_warn("cannot attach %s to syscalls:sys_%s_%s: %s\n", bpf_program__name(prog),
			dir, sc, strerror(-err));
	return err;
}

#define ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))

static int attach_tracepoints(struct loader *l)
{
	struct bunscope_bpf *s = l->skel;
	size_t i;
	int err;

	for (i = 0; i < ARRAY_LEN(exit_read_tps); i++)
		if ((err = attach_tp(l, s->progs.bs_tp_exit_read, "exit", exit_read_tps[i])))
			return err;
	for (i = 0; i < ARRAY_LEN(exit_write_tps); i++)
		if ((err = attach_tp(l, s->progs.bs_tp_exit_write, "exit", exit_write_tps[i])))
			return err;
	for (i = 0; i < ARRAY_LEN(exit_accept_tps); i++)
		if ((err = attach_tp(l, s->progs.bs_tp_exit_accept, "exit", exit_accept_tps[i])))
			return err;
	if ((err = attach_tp(l, s->progs.bs_tp_exit_close, "exit", "close")))
		return err;
	if ((err = attach_tp(l, s->progs.bs_tp_exit_shutdown, "exit", "shutdown")))
		return err;
	if ((err = attach_tp(l, s->progs.bs_tp_exit_connect, "exit", "connect")))
		return err;
	for (i = 0; i < ARRAY_LEN(exit_mem_tps); i++)
		if ((err = attach_tp(l, s->progs.bs_tp_exit_mem, "exit", exit_mem_tps[i])))
			return err;
	snprintf(l->capture, sizeof(l->capture),
		 "syscall exit tracepoints (syscalls:sys_exit_*, %d hooks): only the followed "
		 "syscalls are hooked",
		 l->nlinks);
	return 0;
}

/*
 * Memory events (kmem:rss_stat, oom:mark_victim): not needed for the HTTP
 * figures, so a kernel without them only loses the memory figures.
 */
static void attach_memory(struct loader *l)
{
	struct bpf_program *progs[] = { l->skel->progs.bs_rss_stat, l->skel->progs.bs_oom_victim };
	size_t len = strlen(l->capture);

	for (size_t i = 0; i < ARRAY_LEN(progs); i++) {
		struct bpf_link *link;
		const char *tp = bpf_program__section_name(progs[i]) + strlen("tracepoint/");

		if (l->nlinks >= LOADER_MAX_LINKS)
			return;
		link = bpf_program__attach(progs[i]);
		if (!link) {
			pr_warn("cannot attach %s: %s; the memory figures it feeds stay at their "
				"/proc values from attach time\n",
				tp, strerror(errno));
			continue;
		}
		l->links[l->nlinks++] = link;
		if (len < sizeof(l->capture))
			len += (size_t)snprintf(l->capture + len, sizeof(l->capture) - len, "%s %s",
						i ? "," : "; memory:", tp);
	}
}

static const char *const epoll_tps[] = { "epoll_wait", "epoll_pwait", "epoll_pwait2" };

/*
 * Threads and the event loop: sched_switch (a raw tracepoint, no tracefs
 * needed) and the JS thread's epoll entries and returns.  Like
 * the memory events, a kernel without them loses only the figures they feed.
 */
static void attach_sched(struct loader *l)
{
	struct bunscope_bpf *s = l->skel;
	struct bpf_program *sw = s->progs.bs_sched_switch;
	struct bpf_link *link = NULL;
	size_t len = strlen(l->capture);
	int loop_links = 0;

	if (bpf_program__fd(sw) >= 0 && l->nlinks < LOADER_MAX_LINKS) {
		link = bpf_program__attach(sw);
		if (link)
			l->links[l->nlinks++] = link;
		else
			pr_warn("cannot attach %s: %s; no thread CPU, run-queue or GC figures\n",
				bpf_program__section_name(sw), strerror(errno));
	}
	if (l->mode == CAPTURE_TRACEPOINT) {
		for (size_t i = 0; i < ARRAY_LEN(epoll_tps); i++) {
			/* epoll_pwait2 is Linux >= 5.11; what is missing is not used either */
			if (!attach_tp_quiet(l, s->progs.bs_tp_enter_epoll, "enter",
					     epoll_tps[i]) &&
			    !attach_tp_quiet(l, s->progs.bs_tp_exit_epoll, "exit", epoll_tps[i]))
				loop_links++;
		}
	} else {
		struct bpf_link *el = l->nlinks < LOADER_MAX_LINKS
					      ? bpf_program__attach(s->progs.bs_raw_enter)
					      : NULL;

		if (el) {
			l->links[l->nlinks++] = el;
			loop_links++;
		}
	}
	if (!loop_links)
		pr_warn("cannot hook the epoll calls: no event-loop figures\n");
	if (len < sizeof(l->capture))
		snprintf(l->capture + len, sizeof(l->capture) - len, "%s%s",
			 link ? "; threads: sched_switch" : "",
			 !loop_links ? ""
			 : l->mode == CAPTURE_TRACEPOINT
				 ? "; event loop: epoll_wait, epoll_pwait, epoll_pwait2"
				 : "; event loop: raw sys_enter");
}

static int attach_raw(struct loader *l)
{
	struct bunscope_bpf *s = l->skel;
	int map = bpf_map__fd(s->maps.raw_exit_progs);
	__u32 k0 = 0, k1 = 1;
	int fd0 = bpf_program__fd(s->progs.bs_raw_exit_read);
	int fd1 = bpf_program__fd(s->progs.bs_raw_exit_write);
	struct bpf_link *link;

	if (bpf_map_update_elem(map, &k0, &fd0, BPF_ANY) ||
	    bpf_map_update_elem(map, &k1, &fd1, BPF_ANY)) {
		int err = -errno;

		pr_warn("cannot fill the tail-call table: %s\n", strerror(-err));
		return err;
	}
	link = bpf_program__attach_raw_tracepoint(s->progs.bs_raw_exit, "sys_exit");
	if (!link)
		goto fail;
	l->links[l->nlinks++] = link;
	snprintf(l->capture, sizeof(l->capture),
		 "raw tracepoint sys_exit: every syscall on the host pays a target check");
	return 0;
fail : {
	int err = -errno;

	pr_warn("cannot attach raw tracepoints: %s\n", strerror(-err));
	return err;
}
}

/*
 * Attach at exec (sched_process_exec) and listen (its syscall exit, or the
 * raw sys_exit already attached): without them a new process matching
 * --name or --port is attached by the daemon's scan only, up to 250 ms
 * after it starts serving.
 */
static void attach_auto(struct loader *l)
{
	struct bunscope_bpf *s = l->skel;
	size_t len = strlen(l->capture);
	struct bpf_link *link = NULL;
	int listen = l->mode != CAPTURE_TRACEPOINT;

	if (l->nlinks < LOADER_MAX_LINKS && (link = bpf_program__attach(s->progs.bs_auto_exec)))
		l->links[l->nlinks++] = link;
	else
		pr_warn("cannot attach sched:sched_process_exec: %s; new processes are attached "
			"at listen() or by the 250 ms scan\n",
			strerror(errno));
	if (!listen)
		listen = !attach_tp_quiet(l, s->progs.bs_tp_exit_listen, "exit", "listen");
	if (!listen)
		pr_warn("cannot attach syscalls:sys_exit_listen: new processes are attached at "
			"exec (--name) or by the 250 ms scan\n");
	if (len < sizeof(l->capture) && (link || listen))
		snprintf(l->capture + len, sizeof(l->capture) - len, "; new targets at%s%s",
			 link ? " exec" : "", listen ? (link ? " and listen" : " listen") : "");
}

/* The kernel has this kfunc (Linux >= 6.2); bs_sched_switch needs it. */
static bool have_kfunc(const char *name)
{
	struct btf *btf = btf__load_vmlinux_btf();
	bool ok;

	if (!btf)
		return false;
	ok = btf__find_by_name_kind(btf, name, BTF_KIND_FUNC) >= 0;
	btf__free(btf);
	return ok;
}

static void set_autoload(struct bunscope_bpf *s, enum capture_mode mode)
{
	bool tp = mode == CAPTURE_TRACEPOINT;

	bpf_program__set_autoload(s->progs.bs_tp_exit_read, tp);
	bpf_program__set_autoload(s->progs.bs_tp_exit_write, tp);
	bpf_program__set_autoload(s->progs.bs_tp_exit_accept, tp);
	bpf_program__set_autoload(s->progs.bs_tp_exit_close, tp);
	bpf_program__set_autoload(s->progs.bs_tp_exit_shutdown, tp);
	bpf_program__set_autoload(s->progs.bs_tp_exit_connect, tp);
	bpf_program__set_autoload(s->progs.bs_tp_exit_mem, tp);
	bpf_program__set_autoload(s->progs.bs_raw_exit, !tp);
	bpf_program__set_autoload(s->progs.bs_raw_exit_read, !tp);
	bpf_program__set_autoload(s->progs.bs_raw_exit_write, !tp);
	bpf_program__set_autoload(s->progs.bs_tp_enter_epoll, tp);
	bpf_program__set_autoload(s->progs.bs_tp_exit_epoll, tp);
	bpf_program__set_autoload(s->progs.bs_raw_enter, !tp);
	if (!have_kfunc("bpf_rdonly_cast")) {
		pr_warn("the kernel lacks the bpf_rdonly_cast kfunc (Linux >= 6.2): no thread CPU, "
			"run-queue or GC figures\n");
		bpf_program__set_autoload(s->progs.bs_sched_switch, false);
	}
	bpf_program__set_autoload(s->progs.bs_tp_exit_listen, tp);
	bpf_program__set_autoload(s->progs.bs_bench, false);
	bpf_program__set_autoload(s->progs.bs_bench_null, false);
}

static enum capture_mode choose_mode(enum capture_mode want, const char **why)
{
	bool tp_ok = libbpf_probe_bpf_prog_type(BPF_PROG_TYPE_TRACEPOINT, NULL) == 1;
	bool raw_ok = libbpf_probe_bpf_prog_type(BPF_PROG_TYPE_RAW_TRACEPOINT, NULL) == 1;

	if (want == CAPTURE_TRACEPOINT || want == CAPTURE_RAW_TP) {
		*why = "forced with --capture";
		return want;
	}
	if (tp_ok && loader_have_syscall_tracepoints()) {
		*why = "syscall tracepoints present";
		return CAPTURE_TRACEPOINT;
	}
	if (raw_ok) {
		*why = loader_tracefs_mounted() ? "no syscall tracepoints in this kernel"
						: "tracefs unavailable";
		return CAPTURE_RAW_TP;
	}
	*why = "neither tracepoint nor raw_tracepoint programs are supported";
	return CAPTURE_AUTO;
}

/*
 * The limiter's lim_bans and lim_stats, shared through their pins, so bans
 * the observer makes are the ones XDP/tc enforce; without a limiter they
 * are small private maps the programs never touch.
 */
static int setup_bans(struct bunscope_bpf *s, const struct loader_opts *o)
{
	char path[256];
	int err;

	if (!o->lim_pin_dir) {
		if ((err = bpf_map__set_max_entries(s->maps.lim_bans, 64)) ||
		    (err = bpf_map__set_max_entries(s->maps.req_rate, 64)))
			return err;
		return 0;
	}
	snprintf(path, sizeof(path), "%s/lim_bans", o->lim_pin_dir);
	if ((err = bpf_map__set_pin_path(s->maps.lim_bans, path)))
		return err;
	snprintf(path, sizeof(path), "%s/lim_stats", o->lim_pin_dir);
	if ((err = bpf_map__set_pin_path(s->maps.lim_stats, path)))
		return err;
	if (!o->req.interval)
		return bpf_map__set_max_entries(s->maps.req_rate, 64);
	s->rodata->req_lim = o->req;
	s->rodata->req_algo = o->req_algo;
	s->rodata->req_v6_prefix = o->req_v6_prefix;
	s->rodata->ban_ns = o->ban_ns;
	return bpf_map__set_max_entries(s->maps.req_rate, o->req_clients);
}

int loader_start(struct loader *l, const struct loader_opts *o)
{
	struct bunscope_bpf *s;
	const char *why = "";
	__u64 seed = 0;
	int err;

	memset(l, 0, sizeof(*l));
	if (!loader_privileged()) {
		pr_warn("loading BPF programs needs root (CAP_BPF and CAP_PERFMON; CAP_SYS_ADMIN "
			"to mount tracefs): run it with sudo\n");
		return -EPERM;
	}
	loader_prepare_fs(o->mode != CAPTURE_RAW_TP);

	l->mode = choose_mode(o->mode, &why);
	if (l->mode == CAPTURE_AUTO) {
		pr_warn("no usable hook: %s; run `bunscope doctor`\n", why);
		return -EOPNOTSUPP;
	}
	if (libbpf_probe_bpf_helper(BPF_PROG_TYPE_TRACEPOINT, BPF_FUNC_loop, NULL) != 1)
		pr_warn("the kernel lacks bpf_loop() (Linux >= 5.17 has it); loading will fail\n");

	s = bunscope_bpf__open();
	if (!s) {
		err = -errno;
		pr_warn("cannot open the BPF object: %s\n", strerror(-err));
		return err;
	}
	l->skel = s;
	if (getrandom(&seed, sizeof(seed), 0) != sizeof(seed))
		seed = (__u64)getpid() * 0x9E3779B97F4A7C15ULL;
	s->rodata->hash_seed = seed;
	s->rodata->max_series = o->max_series;
	s->rodata->hooks_only = o->hooks_only;
	if ((err = bpf_map__set_max_entries(s->maps.conns, o->max_conns)) ||
	    (err = bpf_map__set_max_entries(s->maps.agg, o->max_series)) ||
	    (err = bpf_map__set_max_entries(s->maps.series, o->max_series)) ||
	    (err = bpf_map__set_max_entries(s->maps.series_free, o->max_series)) ||
	    (err = bpf_map__set_max_entries(s->maps.events, o->ringbuf_bytes))) {
		pr_warn("cannot size the maps: %s\n", strerror(-err));
		goto fail;
	}
	if (o->traces.on) {
		s->rodata->traces_on = 1;
		s->rodata->traces_query = o->traces.query;
		s->rodata->trace_sampler = o->traces.sampler;
		s->rodata->trace_ratio = o->traces.ratio;
		s->rodata->span_cap = o->traces.cap;
		if ((err = bpf_map__set_max_entries(s->maps.spans, o->traces.ringbuf_bytes))) {
			pr_warn("cannot size the spans ring buffer: %s\n", strerror(-err));
			goto fail;
		}
	}
	if ((err = setup_bans(s, o))) {
		pr_warn("cannot set up request-rate bans: %s\n", strerror(-err));
		goto fail;
	}
	set_autoload(s, l->mode);

	err = bunscope_bpf__load(s);
	if (err) {
		pr_warn("cannot load the BPF programs: %s%s\n", strerror(-err),
			err == -EPERM ? " (run as root: CAP_BPF and CAP_PERFMON are needed)" : "");
		goto fail;
	}
	err = l->mode == CAPTURE_TRACEPOINT ? attach_tracepoints(l) : attach_raw(l);
	if (err)
		goto fail;
	attach_memory(l);
	attach_sched(l);
	if (o->auto_attach)
		attach_auto(l);
	pr_info("capture: %s (%s)%s\n", l->capture, why,
		o->hooks_only ? "; hooks only: every program returns at once, nothing is counted"
			      : "");
	return 0;
fail:
	loader_stop(l);
	return err;
}

void loader_stop(struct loader *l)
{
	for (int i = l->nlinks - 1; i >= 0; i--)
		bpf_link__destroy(l->links[i]);
	l->nlinks = 0;
	bunscope_bpf__destroy(l->skel);
	l->skel = NULL;
}

void loader_auto_selectors(struct loader *l, const char *const *names, int nnames,
			   const __u16 *ports, int nports)
{
	struct bunscope_bpf__bss *b = l->skel->bss;
	struct stat st;
	int k = 0;

	memset(b->auto_names, 0, sizeof(b->auto_names));
	memset(b->auto_ports, 0, sizeof(b->auto_ports));
	for (int i = 0; i < nnames && k < BS_AUTO_MAX; i++)
		if (strlen(names[i]) < sizeof(b->auto_names[0]))
			memcpy(b->auto_names[k++], names[i], strlen(names[i]));
	for (int i = 0; i < nports && i < BS_AUTO_MAX; i++)
		b->auto_ports[i] = ports[i];
	/* --port finds listeners in /proc/net/tcp{,6}: this process's namespace */
	b->auto_netns = stat("/proc/self/ns/net", &st) ? 0 : (__u32)st.st_ino;
}

void loader_auto_arm(struct loader *l, int slot)
{
	if (slot >= 0 && slot < BUNSCOPE_MAX_TARGETS)
		__atomic_store_n(&l->skel->bss->auto_slot, (__u32)slot + 1, __ATOMIC_SEQ_CST);
}

int loader_auto_disarm(struct loader *l, int slot, __u32 *tgid, __u32 *how)
{
	__u32 want = (__u32)slot + 1;
	volatile __u32 *t;

	if (slot < 0 || slot >= BUNSCOPE_MAX_TARGETS ||
	    __atomic_compare_exchange_n(&l->skel->bss->auto_slot, &want, 0, false, __ATOMIC_SEQ_CST,
					__ATOMIC_SEQ_CST))
		return 0;
	/* taken: the program writes the slot right after its compare-and-swap */
	t = &l->skel->bss->targets[slot];
	for (int i = 0; i < 100000 && !__atomic_load_n(t, __ATOMIC_ACQUIRE); i++)
		sched_yield();
	*tgid = __atomic_load_n(t, __ATOMIC_ACQUIRE);
	*how = l->skel->bss->auto_how[slot];
	return *tgid ? 1 : 0;
}

void loader_set_target(struct loader *l, int slot, __u32 tgid)
{
	if (slot >= 0 && slot < BUNSCOPE_MAX_TARGETS) {
		l->skel->bss->targets[slot] = tgid;
		l->skel->bss->target_mm[slot] = 0;
	}
}

int loader_fd_mem(const struct loader *l)
{
	return bpf_map__fd(l->skel->maps.mem);
}

int loader_fd_thread_cpu(const struct loader *l)
{
	return bpf_map__fd(l->skel->maps.thread_cpu);
}

int loader_fd_oncpu(const struct loader *l)
{
	return bpf_map__fd(l->skel->maps.oncpu);
}

int loader_fd_loop(const struct loader *l)
{
	return bpf_map__fd(l->skel->maps.loop);
}

int loader_fd_mem_calls(const struct loader *l)
{
	return bpf_map__fd(l->skel->maps.mem_calls);
}

__u32 loader_target_port(const struct loader *l, int slot, int pslot)
{
	if (slot < 0 || slot >= BUNSCOPE_MAX_TARGETS || pslot < 0 || pslot >= BS_PORT_SLOTS)
		return 0;
	return l->skel->bss->target_ports[slot][pslot];
}

int loader_claim_port(struct loader *l, int slot, __u16 port)
{
	__u32 want = BS_PORT_USED | port;

	if (slot < 0 || slot >= BUNSCOPE_MAX_TARGETS)
		return -1;
	for (int p = 0; p < BS_PORT_SLOTS; p++) {
		__u32 *e = (__u32 *)&l->skel->bss->target_ports[slot][p];
		__u32 expect = 0;

		if (__atomic_load_n(e, __ATOMIC_ACQUIRE) == want ||
		    __atomic_compare_exchange_n(e, &expect, want, false, __ATOMIC_ACQ_REL,
						__ATOMIC_ACQUIRE) ||
		    expect == want)
			return slot * BS_PORT_SLOTS + p;
	}
	return -1;
}

void loader_clear_target_ports(struct loader *l, int slot)
{
	if (slot < 0 || slot >= BUNSCOPE_MAX_TARGETS)
		return;
	for (int p = 0; p < BS_PORT_SLOTS; p++)
		l->skel->bss->target_ports[slot][p] = 0;
}

int loader_fd_conns(const struct loader *l)
{
	return bpf_map__fd(l->skel->maps.conns);
}

int loader_fd_stats(const struct loader *l)
{
	return bpf_map__fd(l->skel->maps.stats);
}

int loader_fd_agg(const struct loader *l)
{
	return bpf_map__fd(l->skel->maps.agg);
}

int loader_fd_series(const struct loader *l)
{
	return bpf_map__fd(l->skel->maps.series);
}

int loader_fd_series_free(const struct loader *l)
{
	return bpf_map__fd(l->skel->maps.series_free);
}

int loader_fd_routes(const struct loader *l)
{
	return bpf_map__fd(l->skel->maps.routes);
}

int loader_fd_counters(const struct loader *l)
{
	return bpf_map__fd(l->skel->maps.counters);
}

int loader_fd_ws_agg(const struct loader *l)
{
	return bpf_map__fd(l->skel->maps.ws_agg);
}

int loader_fd_cagg(const struct loader *l)
{
	return bpf_map__fd(l->skel->maps.cagg);
}

int loader_fd_ws_close(const struct loader *l)
{
	return bpf_map__fd(l->skel->maps.ws_close);
}

int loader_fd_events(const struct loader *l)
{
	return bpf_map__fd(l->skel->maps.events);
}

int loader_fd_spans(const struct loader *l)
{
	return bpf_map__fd(l->skel->maps.spans);
}

int loader_prog_stats(const struct loader *l, struct prog_stat *out, int max)
{
	struct bpf_program *prog;
	int n = 0;

	bpf_object__for_each_program (prog, l->skel->obj) {
		struct bpf_prog_info info;
		__u32 len = sizeof(info);
		int fd = bpf_program__fd(prog);

		if (fd < 0 || n >= max)
			continue;
		memset(&info, 0, sizeof(info));
		if (bpf_obj_get_info_by_fd(fd, &info, &len))
			continue;
		out[n].name = bpf_program__name(prog);
		out[n].run_cnt = info.run_cnt;
		out[n].run_time_ns = info.run_time_ns;
		out[n].recursion_misses = info.recursion_misses;
		out[n].verified_insns = info.verified_insns;
		n++;
	}
	return n;
}
