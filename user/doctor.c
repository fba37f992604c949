// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * bunscope doctor: everything bunscope needs from this host, checked one by
 * one, each failure with the exact command that fixes it.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <bpf/bpf.h>
#include <bpf/libbpf.h>

#include "daemon.h"
#include "doctor.h"
#include "expo.h"
#include "loader.h"
#include "targets.h"

enum verdict { OK, INFO, WARN, FAIL };

static int blockers;

static void item(enum verdict v, const char *fix, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static void item(enum verdict v, const char *fix, const char *fmt, ...)
{
	static const char *const tag[] = { "[ok]  ", "[info]", "[warn]", "[FAIL]" };
	va_list ap;

	printf("  %s ", tag[v]);
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	putchar('\n');
	if (fix)
		printf("         fix: %s\n", fix);
	if (v == FAIL)
		blockers++;
}

static void check_privileges(void)
{
	__u64 caps = loader_caps();
	int sys_admin = !!(caps & (1ULL << 21)), perfmon = !!(caps & (1ULL << 38)),
	    bpf = !!(caps & (1ULL << 39));

	if (sys_admin || (bpf && perfmon))
		item(OK, NULL, "privileges: %s",
		     sys_admin ? "CAP_SYS_ADMIN" : "CAP_BPF + CAP_PERFMON");
	else
		item(FAIL, "run bunscope (and this doctor) as root: sudo build/bunscope doctor",
		     "privileges: loading tracing BPF programs needs CAP_BPF + CAP_PERFMON");
}

static void check_kernel(void)
{
	struct rlimit rl;

	if (!loader_privileged()) {
		/* the probes below load BPF programs: without privileges they all
		 * fail, which says nothing about the kernel */
		item(INFO, NULL, "kernel BPF features not probed: that needs root too");
		return;
	}

	if (!access("/sys/kernel/btf/vmlinux", R_OK))
		item(OK, NULL, "kernel BTF: /sys/kernel/btf/vmlinux (CO-RE works)");
	else
		item(FAIL,
		     "use a kernel built with CONFIG_DEBUG_INFO_BTF=y (most distributions "
		     "since 2020)",
		     "kernel BTF: /sys/kernel/btf/vmlinux is missing");

	if (libbpf_probe_bpf_prog_type(BPF_PROG_TYPE_TRACEPOINT, NULL) == 1)
		item(OK, NULL, "program type tracepoint");
	else
		item(WARN, NULL, "program type tracepoint: not available");
	if (libbpf_probe_bpf_prog_type(BPF_PROG_TYPE_RAW_TRACEPOINT, NULL) == 1)
		item(OK, NULL, "program type raw_tracepoint");
	else
		item(WARN, NULL, "program type raw_tracepoint: not available");
	if (libbpf_probe_bpf_prog_type(BPF_PROG_TYPE_TRACEPOINT, NULL) != 1 &&
	    libbpf_probe_bpf_prog_type(BPF_PROG_TYPE_RAW_TRACEPOINT, NULL) != 1)
		item(FAIL, "run as root on Linux >= 5.17, or see the messages above",
		     "no way to hook syscalls");
	if (libbpf_probe_bpf_prog_type(BPF_PROG_TYPE_KPROBE, NULL) == 1)
		item(INFO, NULL,
		     "kprobe programs load (uprobes work; kprobe capture is not built)");
	if (libbpf_probe_bpf_prog_type(BPF_PROG_TYPE_TRACING, NULL) == 1)
		item(INFO, NULL, "fentry programs load (fentry capture is not built)");
	else
		item(INFO, NULL, "fentry: not available on this kernel (not needed)");

	if (libbpf_probe_bpf_helper(BPF_PROG_TYPE_TRACEPOINT, BPF_FUNC_loop, NULL) == 1)
		item(OK, NULL, "bpf_loop() helper");
	else
		item(FAIL, "Linux >= 5.17 is needed", "bpf_loop() helper: missing");
	if (libbpf_probe_bpf_map_type(BPF_MAP_TYPE_RINGBUF, NULL) == 1)
		item(OK, NULL, "ring buffer maps");
	else
		item(FAIL, "Linux >= 5.8 is needed", "ring buffer maps: missing");

	if (!getrlimit(RLIMIT_MEMLOCK, &rl))
		item(INFO, NULL,
		     "RLIMIT_MEMLOCK %s (Linux >= 5.11 charges BPF memory to the "
		     "cgroup instead; bunscope does not raise it)",
		     rl.rlim_cur == RLIM_INFINITY ? "unlimited" : "limited");

	if (loader_bpf_stats_enabled())
		item(OK, NULL, "kernel.bpf_stats_enabled=1: per-program run time is exported");
	else
		item(INFO,
		     "sysctl -w kernel.bpf_stats_enabled=1 (costs tens of ns per program run)",
		     "kernel.bpf_stats_enabled=0: no per-program run time in /metrics");
}

static void check_filesystems(void)
{
	if (loader_tracefs_mounted()) {
		item(OK, NULL, "tracefs mounted on /sys/kernel/tracing");
		if (!loader_privileged())
			item(INFO, NULL, "syscall tracepoints not looked for: tracefs needs root");
		else if (loader_have_syscall_tracepoints())
			item(OK, NULL, "syscall tracepoints present: capture mode 'tracepoint'");
		else
			item(WARN, NULL,
			     "no syscall tracepoints (CONFIG_FTRACE_SYSCALLS=n): "
			     "capture mode 'raw_tracepoint' will be used");
	} else {
		item(WARN, "mount -t tracefs nodev /sys/kernel/tracing (bunscope does this itself)",
		     "tracefs is not mounted");
	}
	if (loader_bpffs_mounted())
		item(OK, NULL, "bpffs mounted on /sys/fs/bpf");
	else
		item(WARN, "mount -t bpf bpf /sys/fs/bpf (bunscope does this itself)",
		     "bpffs is not mounted");
}

static void check_listen(const struct config *cfg)
{
	struct sockaddr_storage ss;
	socklen_t len;
	char err[128];
	int fd, one = 1;

	if (expo_parse_listen(cfg->listen, &ss, &len, err, sizeof(err))) {
		item(FAIL, "pass --listen ADDR:PORT", "--listen %s: %s", cfg->listen, err);
		return;
	}
	fd = socket(ss.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return;
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (bind(fd, (struct sockaddr *)&ss, len))
		item(WARN, "pick a free address with --listen, or stop what holds it",
		     "cannot bind %s: %s", cfg->listen, strerror(errno));
	else
		item(OK, NULL, "metrics address %s is free", cfg->listen);
	close(fd);
}

static int count_cb_n;
static void count_cb(void *ctx, const struct target *t, bool attached)
{
	(void)ctx;
	if (attached) {
		count_cb_n++;
		item(OK, NULL, "target pid %u (%s), selected by %s", t->pid, t->comm, t->how);
	}
}

static void check_targets(const struct config *cfg)
{
	struct target_set ts;

	if (!cfg->sel.npids && !cfg->sel.nnames && !cfg->sel.nports) {
		item(INFO, "pass --pid, --name or --port to check them",
		     "no target selectors given");
		return;
	}
	for (int i = 0; i < cfg->sel.npids; i++) {
		char comm[16];

		if (targets_probe_pid(cfg->sel.pids[i], comm))
			item(FAIL, "check the pid: pgrep -a bun", "--pid %u: no such process",
			     cfg->sel.pids[i]);
	}
	memset(&ts, 0, sizeof(ts));
	count_cb_n = 0;
	targets_refresh(&ts, &cfg->sel, count_cb, NULL);
	if (!count_cb_n && (cfg->sel.nnames || cfg->sel.nports))
		item(WARN,
		     "start the Bun server; the daemon waits for it and attaches when it "
		     "appears",
		     "no running process matches --name/--port yet");
}

int doctor_run(const struct config *cfg)
{
	blockers = 0;
	printf("bunscope %s doctor\n", BUNSCOPE_VERSION);
	check_privileges();
	check_kernel();
	check_filesystems();
	check_listen(cfg);
	check_targets(cfg);
	printf(blockers ? "%d blocker(s): bunscope cannot run here until fixed\n"
			: "nothing blocks bunscope on this host\n",
	       blockers);
	return blockers;
}
