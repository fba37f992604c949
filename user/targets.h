/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
#ifndef BUNSCOPE_TARGETS_H
#define BUNSCOPE_TARGETS_H

#include <linux/types.h>
#include <stdbool.h>
#include "bunscope.h"

#define SEL_MAX 16

/* What the operator asked for. */
struct selectors {
	__u32 pids[SEL_MAX];
	int npids;
	const char *names[SEL_MAX];
	int nnames;
	__u16 ports[SEL_MAX];
	int nports;
};

struct target {
	__u32 pid;
	int slot;    /* index in the BPF targets[] array, stable for life */
	__u64 start; /* start time in clock ticks, tells pid reuse apart */
	char comm[16];
	char how[48]; /* the selector that matched, e.g. "--name bun" */
	bool adopted; /* taken by the kernel at exec or listen, observed since */
};

struct target_set {
	struct target t[BUNSCOPE_MAX_TARGETS];
	int n;
	unsigned long long exits; /* targets that went away */
	/* --pid targets that exited are not taken again (their pid may be reused) */
	__u32 gone[SEL_MAX];
	int ngone;
	bool warned_full;
	bool slot_used[BUNSCOPE_MAX_TARGETS];
	/* --port: the listening sockets seen at the last scan */
	__u64 listen_sig;
};

typedef void (*target_cb)(void *ctx, const struct target *t, bool attached);

/*
 * Bring the set in line with the selectors: departures are reported first
 * (the callback must stop observing t->slot before it returns: the slot is
 * handed out again), then arrivals.  Returns the number of changes.
 */
int targets_refresh(struct target_set *ts, const struct selectors *sel, target_cb cb, void *ctx);

/* Set aside a free slot (for the kernel to attach a process in); -1 if none. */
int targets_reserve(struct target_set *ts);
/* Give back a slot set aside and not used. */
void targets_release(struct target_set *ts, int slot);
/*
 * The kernel attached pid in the reserved slot: add it to the set (the
 * callback sees it with adopted set).  -ESRCH if it is gone already
 * (-EEXIST if it is in the set already), the slot then given back.
 */
int targets_adopt(struct target_set *ts, const struct selectors *sel, __u32 pid, int slot,
		  bool at_exec, target_cb cb, void *ctx);

/*
 * Fields of /proc/PID/stat by their number in proc(5) (1: pid, 2: comm, ...),
 * given in increasing order, and comm (NULL to skip).  0 or -errno; -ESRCH
 * for a zombie too, which holds nothing of its own any more.
 */
int proc_stat_fields(__u32 pid, char comm[16], const int *fields, unsigned long long *vals, int n);
/* "Key:  N kB" values of /proc/PID/status (0 for a missing key).  0 or -errno. */
int proc_status_kb(__u32 pid, const char *const *keys, unsigned long long *vals, int n);

/* 0 if pid exists (and fills comm), -errno otherwise. */
int targets_probe_pid(__u32 pid, char comm[16]);

/* A connection that was open before bunscope attached. */
struct est_conn {
	int fd;
	__u16 lport;
	__u16 rport;
	__u8 family; /* AF_INET or AF_INET6 */
	__u8 client; /* the target connected it (its local port is not listened on) */
	__u8 addr[16];
};

/*
 * The established TCP connections of pid, found through /proc: accepted by it
 * (their local port is one it listens on) and, client set, the ones it made.
 * Returns how many (<= max).
 */
int targets_established(__u32 pid, struct est_conn *out, int max);

/* The TCP ports pid listens on (IPv4 and IPv6, each once); how many (<= max). */
int targets_listening_ports(__u32 pid, __u16 *out, int max);

#endif /* BUNSCOPE_TARGETS_H */
