/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
#ifndef BUNSCOPE_DAEMON_H
#define BUNSCOPE_DAEMON_H

#include <pthread.h>
#include <stdbool.h>
#include <time.h>
#include <linux/types.h>

#include "bunscope.h"
#include "limiter.h"
#include "loader.h"
#include "targets.h"
#include "traces.h"

#define DEFAULT_LISTEN	       "127.0.0.1:9464"
#define DEFAULT_MAX_ROUTES     1000
#define DEFAULT_MAX_CONNS      65536
#define DEFAULT_MAX_SERIES     16384
#define DEFAULT_RINGBUF	       (4u << 20)
#define MAX_ROUTE_PATTERNS     64
#define DEFAULT_MEMORY_CEILING (4ULL << 30)

struct uprobe_spec {
	char binary[256];
	char symbol[128];
	char label[400]; /* BINARY:SYMBOL, the probe label */
};

/* sched.c: event-loop utilisation samples */
#define ELU_RING      64 /* 3.2 s of 50 ms samples */
#define ELU_SAMPLE_MS 50
#define ELU_WINDOW_NS 1000000000ULL /* the gauge's window */

struct elu_sample {
	__u64 t, busy, idle; /* CLOCK_MONOTONIC ns; busy/idle totals then */
};

struct sched_state {
	__u64 cpu_ns[BS_ROLES]; /* the largest figures exported: counters never go back */
	__u64 runs[BS_ROLES];
	__u64 busy_ns, idle_ns;
	struct elu_sample ring[ELU_RING];
	int head, nsamples;
};

struct config {
	struct selectors sel;
	const char *listen;
	const char *routes[MAX_ROUTE_PATTERNS];
	int nroutes;
	unsigned int max_routes;
	unsigned long long memory_ceiling; /* bytes of resident memory */
	struct uprobe_spec uprobes[BS_MAX_UPROBES];
	int nuprobes;
	struct loader_opts lopts;
	struct limit_opts limit;
	struct traces_opts topts;   /* as given */
	struct traces_setup traces; /* resolved with the environment */
	int verbose;
};

struct route_table;
struct uagg;
struct limiter;
struct httpd;
struct ring_buffer;
struct bpf_link;

struct app {
	struct config cfg;
	struct loader ld;
	struct limiter *limiter;      /* NULL without --limit-iface */
	struct shed_window *shed_win; /* --shed-p99/--shed-5xx: completed requests */
	struct ring_buffer *rb;
	struct tracer *tracer; /* NULL without an exporter */
	struct traces *traces;
	struct httpd *httpd;
	struct timespec started;

	/* shared with the HTTP thread: everything below under lock */
	pthread_mutex_t lock;
	struct route_table *routes;
	struct uagg *uagg; /* completions whose route the kernel lacked */
	struct target_set targets;
	unsigned long long path_events;
	unsigned long long complete_events;
	unsigned long long unknown_hash;	   /* completion for a hash never seen */
	unsigned long long seeded_conns;	   /* connections open before attach */
	unsigned long long forgotten_conns;	   /* deleted for exited targets */
	struct target fresh[BUNSCOPE_MAX_TARGETS]; /* attached by this refresh */
	int nfresh;
	bool mem_over[BUNSCOPE_MAX_TARGETS]; /* by slot: above --memory-ceiling */
	unsigned long long oom_events;
	unsigned long long refreshes; /* target refresh ticks done (in /health) */
	int auto_slot;		      /* the slot armed for the kernel to attach in, -1: none */
	bool refresh_soon;	      /* the kernel attached a process: adopt it now */
	struct sched_state sched[BUNSCOPE_MAX_TARGETS];			  /* by slot */
	struct bpf_link *ulinks[BUNSCOPE_MAX_TARGETS][BS_MAX_UPROBES][2]; /* entry, return */
};

/* collect.c: what the endpoints serve */
struct sbuf;
int collect_metrics(void *app, struct sbuf *sb);
int collect_server_metrics(void *app, const char *pid_param, struct sbuf *sb);
int collect_health(void *app, struct sbuf *sb);
/* cumulative latency histogram, 5xx and total of every series (caller holds a->lock) */
struct shed_snap;
void collect_http_snapshot(struct app *a, struct shed_snap *snap);
/* the latency histogram's upper bounds, seconds (BS_DUR_BOUNDS of them) */
const double *collect_dur_bounds(void);

/* userspace aggregation of route-miss completions (collect.c) */
struct uagg *uagg_new(unsigned int capacity);
void uagg_free(struct uagg *u);
int uagg_add(struct uagg *u, const struct bs_agg_key *k, __u64 dur_ns, __u64 req_body,
	     __u64 resp_body);
void uagg_forget_tgid(struct uagg *u, __u32 tgid);
unsigned long long uagg_dropped(const struct uagg *u);

/* the histogram slot of a value, as the BPF side computes it */
unsigned int bs_dur_slot(__u64 ns);
unsigned int bs_size_slot(__u64 n);

/* collect.c helpers shared with collect_ws.c */
int collect_ncpus(void);
/* sum of the per-CPU copies (as a lookup returns them) of a value of __u64s */
void collect_sum_percpu(const void *percpu, size_t size, void *out);
bool collect_live_tgid(const struct app *a, __u32 tgid);
/* The route id of a path hash (a->lock held): the daemon's memory, else the
 * kernel's routes map; -ENOENT when neither knows it. */
int collect_route_of_hash(const struct app *a, __u64 hash, __u32 *id);
/* a per-CPU array element summed over the CPUs (0 or -errno); zeroed on every CPU */
int collect_read_percpu(int fd, __u32 idx, void *out, size_t vsz);
void collect_zero_percpu(int fd, __u32 idx, size_t vsz);

/* "GET", ... for an enum bs_method below BS_M_MAX */
const char *collect_method_name(unsigned int method);

/* collect_client.c: the targets' own requests (caller holds a->lock) */
int collect_client_metrics(const struct app *a, struct sbuf *sb);
/* an address of a bs_cagg_key or span record as text; IPv4-mapped as IPv4 */
void collect_addr_text(__u8 family, const __u8 addr[16], char *out, size_t cap);

/* collect_ws.c: WebSocket figures (caller holds a->lock) */
struct ws_totals {
	unsigned long long pending, opened, messages[2], bytes[2];
};
int collect_ws_metrics(const struct app *a, struct sbuf *sb);
int collect_ws_totals(const struct app *a, __u32 tgid, struct ws_totals *t);

/* memory.c: the targets' memory */
struct mem_view {
	unsigned long long rss, anon, file, shmem, swap, hwm;
	bool over; /* rss > --memory-ceiling */
};
/* before a target's slot is observed: its figures from /proc, its counters zeroed */
void mem_seed(struct app *a, const struct target *t);
int mem_read(const struct app *a, const struct target *t, struct mem_view *v);
void mem_write_metrics(const struct app *a, struct sbuf *sb);
/* log each crossing of --memory-ceiling, up or down */
void mem_check_ceiling(struct app *a);

/* sched.c: threads, event loop, GC (caller holds a->lock) */
struct sched_view {
	struct bs_thread_cpu cpu; /* with the runs under way */
	struct bs_loop loop;
	__u64 busy_ns, idle_ns; /* with the stretch under way */
	double elu;		/* over the last ELU_WINDOW_NS; < 0: unknown */
	bool have_loop;		/* the JS thread was seen in epoll */
};
/* before a target's slot is observed: its figures zeroed */
void sched_seed(struct app *a, const struct target *t);
/* every ELU_SAMPLE_MS */
void sched_sample(struct app *a);
int sched_read_target(struct app *a, __u32 pid, struct sched_view *v);
void sched_write_metrics(struct app *a, struct sbuf *sb);

/* uprobes.c: --uprobe BINARY:SYMBOL */
int uprobe_parse(const char *arg, struct uprobe_spec *u);
/* attach every probe to this process and detach again: fails early on a bad symbol */
int uprobes_validate(struct app *a);
void uprobes_attach(struct app *a, const struct target *t);
void uprobes_detach(struct app *a, int slot);
void uprobes_write_metrics(const struct app *a, struct sbuf *sb);

/* stop observing an exited target and remove everything the maps hold of it */
void collect_forget_target(struct app *a, const struct target *t);

#endif /* BUNSCOPE_DAEMON_H */
