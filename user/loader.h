/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
#ifndef BUNSCOPE_LOADER_H
#define BUNSCOPE_LOADER_H

#include <linux/types.h>
#include <stdbool.h>
#include "limit.h"

enum capture_mode {
	CAPTURE_AUTO = 0,
	CAPTURE_TRACEPOINT, /* syscalls:sys_{enter,exit}_* */
	CAPTURE_RAW_TP,	    /* raw sys_enter / sys_exit */
};

struct loader_opts {
	enum capture_mode mode;
	__u32 max_conns;     /* connection map entries */
	__u32 max_series;    /* aggregation map entries */
	__u32 ringbuf_bytes; /* power of two, >= page size */
	/* request-rate bans (--limit-req); req.interval 0: off */
	struct bs_lim_rate req;
	__u32 req_algo; /* enum bs_lim_algo */
	__u32 req_v6_prefix;
	__u32 req_clients; /* clients whose request rate is followed */
	__u64 ban_ns;
	const char *lim_pin_dir; /* the limiter's pinned maps (lim_bans, lim_stats), or NULL */
	/* traces: on 0 leaves the span hooks out of the programs */
	struct {
		bool on;
		bool query;		/* keep the query string */
		__u32 sampler;		/* enum bs_sampler */
		__u64 ratio;		/* a 32-bit draw below this samples (1 << 32: all) */
		struct bs_lim_rate cap; /* spans per second; interval 0: no cap */
		__u32 ringbuf_bytes;	/* the spans ring buffer, power of two */
	} traces;
	/* --name/--port: processes may be attached by the kernel at exec or listen */
	bool auto_attach;
	/* --hooks-only: the same hooks, every program returning at once */
	bool hooks_only;
};

struct bunscope_bpf;
struct bpf_link;

#define LOADER_MAX_LINKS 32

struct loader {
	struct bunscope_bpf *skel;
	enum capture_mode mode;
	struct bpf_link *links[LOADER_MAX_LINKS];
	int nlinks;
	char capture[320]; /* one line: what was attached and why */
};

/* The effective capability set of this process (CapEff). */
__u64 loader_caps(void);
/* Can this process load tracing BPF programs (CAP_SYS_ADMIN, or CAP_BPF + CAP_PERFMON)? */
bool loader_privileged(void);
/* kernel.bpf_stats_enabled */
bool loader_bpf_stats_enabled(void);
/* Mount tracefs / bpffs where they are missing (and say so); 0 or -errno. */
int loader_prepare_fs(bool need_tracefs);
bool loader_tracefs_mounted(void);
bool loader_bpffs_mounted(void);
bool loader_have_syscall_tracepoints(void);
const char *capture_mode_name(enum capture_mode mode);

/* Open, configure, load and attach; on failure everything is released. */
int loader_start(struct loader *l, const struct loader_opts *o);
/* Detach and free (NULL-safe, idempotent). */
void loader_stop(struct loader *l);

/* Observe tgid in target slot (0 stops observing the slot). */
void loader_set_target(struct loader *l, int slot, __u32 tgid);
/*
 * Attach at exec or listen.  The selectors the kernel matches (names are
 * compared with the comm, so at most 15 bytes of each; longer ones are left
 * to the daemon's scan).
 */
void loader_auto_selectors(struct loader *l, const char *const *names, int nnames,
			   const __u16 *ports, int nports);
/* Arm slot: the next process to match takes it. */
void loader_auto_arm(struct loader *l, int slot);
/*
 * Disarm slot: 0 if no process took it, 1 with *tgid the process that did
 * and *how (BS_AUTO_EXEC or BS_AUTO_LISTEN) when (the kernel then observes
 * it in that slot already).
 */
int loader_auto_disarm(struct loader *l, int slot, __u32 *tgid, __u32 *how);
/* The port counted in (slot, port slot): BS_PORT_USED | port, or 0. */
__u32 loader_target_port(const struct loader *l, int slot, int pslot);
/* The stats index of (slot, port), claiming a port slot as the BPF side does; -1 if full. */
int loader_claim_port(struct loader *l, int slot, __u16 port);
/* Forget the ports of a slot (after its stats were zeroed). */
void loader_clear_target_ports(struct loader *l, int slot);

/* map fds */
int loader_fd_conns(const struct loader *l);
int loader_fd_stats(const struct loader *l);
int loader_fd_agg(const struct loader *l);
int loader_fd_series(const struct loader *l);
int loader_fd_series_free(const struct loader *l);
int loader_fd_routes(const struct loader *l);
int loader_fd_counters(const struct loader *l);
int loader_fd_events(const struct loader *l);
int loader_fd_spans(const struct loader *l);
int loader_fd_ws_agg(const struct loader *l);
int loader_fd_ws_close(const struct loader *l);
int loader_fd_cagg(const struct loader *l);
int loader_fd_mem(const struct loader *l);
int loader_fd_mem_calls(const struct loader *l);
int loader_fd_thread_cpu(const struct loader *l);
int loader_fd_oncpu(const struct loader *l);
int loader_fd_loop(const struct loader *l);

/* Per-program run statistics (kernel.bpf_stats_enabled). */
struct prog_stat {
	const char *name;
	__u64 run_cnt;
	__u64 run_time_ns;
	__u64 recursion_misses; /* runs skipped: the program was already running on that CPU */
	__u32 verified_insns;	/* instructions the verifier processed to load it (Linux >= 5.16) */
};
int loader_prog_stats(const struct loader *l, struct prog_stat *out, int max);

#endif /* BUNSCOPE_LOADER_H */
