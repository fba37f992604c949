// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * bunscope BPF side: follow the server connections of the target processes
 * through their syscalls and aggregate HTTP requests in maps.
 *
 *   accept/accept4 exit  -> a connection (tgid, fd) with its listening port
 *   connect exit         -> a client connection (tgid, fd) to an upstream
 *   read-family exit     -> request bytes  -> http_parse.h (request side)
 *   write-family exit    -> response bytes -> http_parse.h (response side)
 *                           (the other way round on client connections)
 *   shutdown/close exit  -> until-close bodies end, pending requests abort
 *
 * Completed requests land in a per-CPU histogram map keyed by route id; the
 * daemon maps path hashes to route ids and reads the maps when scraped.  Only
 * paths the routes map does not know yet cost a ring buffer record.
 *
 * Two ways in, chosen by the daemon: per-syscall tracepoints (syscalls:*,
 * needs tracefs) or the raw sys_enter/sys_exit tracepoints.
 */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_core_read.h>
#include <bpf/bpf_tracing.h>
#include <bpf/bpf_endian.h>
#include "bunscope.h"
#include "limit.h"
#include "thread_role.h"
#include "traceparent.h"

struct bs_conn;
struct bs_scratch;
struct bs_server_stats;
int bs_line_req(struct bs_scratch *s, struct bs_conn *conn, struct bs_server_stats *st);
int bs_line_resp(struct bs_scratch *s, struct bs_conn *conn, struct bs_server_stats *st);
/* complete lines are handled in separately verified functions (below) */
#define HP_LINE_CALL(r, d, dir)                                              \
	((dir) ? bs_line_resp((struct bs_scratch *)(r)->v, (r)->bc, (r)->st) \
	       : bs_line_req((struct bs_scratch *)(r)->v, (r)->bc, (r)->st))
#define HP_RUN_EXTRA                \
	struct bs_server_stats *st; \
	struct bs_conn *bc;         \
	__u32 tgid;                 \
	__u16 port;                 \
	__u16 pad_;
#include "bs_conn.h"

char LICENSE[] SEC("license") = "Dual BSD/GPL";

#define AF_UNIX	  1
#define AF_INET	  2
#define AF_INET6  10
#define SHUT_WR	  1
#define SHUT_RDWR 2

#define MAX_IOV 64 /* iovecs read per syscall */
/* parser steps per call of the step function: calls and returns are costly
 * (return thunks), the verifier's work grows with this */
#ifndef STEPS_PER_CALL
#define STEPS_PER_CALL 6
#endif

/* Set by the daemon before load. */
const volatile __u64 hash_seed = 0;
const volatile __u32 max_series = 16384;
/*
 * --hooks-only: every program returns at once and nothing is counted.  With
 * the same hooks attached, this measures what the hooks themselves cost
 * (make bench's floor).  Off, the verifier removes each test as dead code.
 */
const volatile __u32 hooks_only = 0;
/*
 * Target processes by slot; the daemon writes them through the mmaped .bss
 * and keeps a process in the same slot for its whole life.
 */
volatile __u32 targets[BUNSCOPE_MAX_TARGETS];
/* The listening ports seen per target slot (BS_PORT_USED | port), claimed at accept. */
volatile __u32 target_ports[BUNSCOPE_MAX_TARGETS][BS_PORT_SLOTS];
/* kmem:rss_stat's mm_id of each target slot, learnt from the target's own events. */
volatile __u32 target_mm[BUNSCOPE_MAX_TARGETS];
/* Attach at exec or listen: the armed slot + 1 (0: none), and what matches. */
volatile __u32 auto_slot;
volatile __u32 auto_how[BUNSCOPE_MAX_TARGETS]; /* BS_AUTO_* of the slot's last taker */
char auto_names[BS_AUTO_MAX][BS_COMM_LEN];
__u16 auto_ports[BS_AUTO_MAX];
/* the network namespace --port looks in (the daemon's), by inode number */
__u32 auto_netns;
/* Histogram series indexes never handed out yet start here. */
volatile __u32 series_next;

enum sys_kind {
	K_NONE = 0,
	K_READ,
	K_RECVFROM,
	K_READV,
	K_RECVMSG,
	K_WRITE,
	K_SENDTO,
	K_WRITEV,
	K_SENDMSG,
	K_SENDFILE,
};

/* Per-CPU working memory of one syscall's walk (see struct hp_pos). */
struct bs_scratch {
	struct hp_pos pos;
	__u64 iov;	/* next struct iovec to read */
	__u64 now;	/* when the syscall returned */
	__u32 iov_left; /* iovecs not read yet */
	__u32 left;	/* bytes of the syscall not assigned to a segment */
	__u32 tgid;
	__u32 ws_frames; /* frames counted in ws_msgs/ws_bytes, not yet in ws_agg */
	/* one syscall's WebSocket figures, added to ws_agg once at its end
	 * (ws_flush): a map lookup per frame cost 37 ns a frame */
	__u64 ws_msgs[BS_WS_KINDS];
	__u64 ws_bytes[BS_WS_KINDS];
	/* a traceparent value and what it says (bs_trace_field): here, not on
	 * the stack that the deepest call chain shares */
	struct bs_tp tp;
	__u8 tp_buf[TP_LEN + 1];
	__u8 b[HP_SCR_ALLOC];
};
_Static_assert(__builtin_offsetof(struct bs_scratch, pos) == 0,
	       "ws_on_frame finds the scratch from its hp_pos");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__uint(max_entries, 65536); /* --max-connections */
	__type(key, struct bs_conn_key);
	__type(value, struct bs_conn);
} conns SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct bs_scratch);
} scratch SEC(".maps");

/* All-zero values to insert from; never written. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct bs_conn);
} conn_zero SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, BS_STATS_ENTRIES);
	__type(key, __u32);
	__type(value, struct bs_server_stats);
} stats SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 16384); /* --max-series */
	__type(key, struct bs_agg_key);
	__type(value, __u32);
} series SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_QUEUE);
	__uint(max_entries, 16384); /* --max-series */
	__type(value, __u32);
} series_free SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 16384); /* --max-series */
	__type(key, __u32);
	__type(value, struct bs_agg_val);
} agg SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 65536);
	__type(key, __u64);
	__type(value, __u32);
} routes SEC(".maps");

/* the targets' own requests (client connections), see bs_cagg_key */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_HASH);
	__uint(max_entries, BS_MAX_CLIENT_SERIES);
	__type(key, struct bs_cagg_key);
	__type(value, struct bs_agg_val);
} cagg SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct bs_agg_val);
} agg_zero SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 1 << 20);
} events SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, BS_CNT_MAX);
	__type(key, __u32);
	__type(value, __u64);
} counters SEC(".maps");

/* WebSocket figures (struct bs_ws_val) and close codes, see bunscope.h */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_HASH);
	__uint(max_entries, 4096);
	__type(key, struct bs_ws_key);
	__type(value, struct bs_ws_val);
} ws_agg SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_HASH);
	__uint(max_entries, 4096);
	__type(key, struct bs_ws_key);
	__type(value, __u64);
} ws_close SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct bs_ws_val);
} ws_zero SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, BUNSCOPE_MAX_TARGETS);
	__type(key, __u32);
	__type(value, struct bs_mem);
} mem SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, BUNSCOPE_MAX_TARGETS);
	__type(key, __u32);
	__type(value, struct bs_mem_calls);
} mem_calls SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, BUNSCOPE_MAX_TARGETS);
	__type(key, __u32);
	__type(value, struct bs_thread_cpu);
} thread_cpu SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct bs_oncpu);
} oncpu SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, BUNSCOPE_MAX_TARGETS);
	__type(key, __u32);
	__type(value, struct bs_loop);
} loop SEC(".maps");

static __always_inline void count(__u32 idx)
{
	__u64 *v = bpf_map_lookup_elem(&counters, &idx);

	if (v)
		(*v)++;
}

/*
 * The value of k in a hash map, inserted from zero when new.  NULL when the
 * map is full (an insert that fails because another CPU made it first finds
 * that one).
 */
static __always_inline void *lookup_or_init(void *map, const void *k, const void *zero)
{
	void *v = bpf_map_lookup_elem(map, k);

	if (v || !zero)
		return v;
	bpf_map_update_elem(map, k, zero, BPF_NOEXIST);
	return bpf_map_lookup_elem(map, k);
}

/*
 * Request-rate bans (--limit-req): every request a server connection starts
 * passes its client's request limit; a client above it is banned in the
 * limiter's lim_bans, which the daemon hands in (the limiter's pinned map),
 * so its packets are dropped in XDP/tc from then on.  Off (and pruned by the
 * verifier) while req_lim.interval is 0.  Clients here have completed a
 * handshake, so a hash map's insert per new client is not a spoofing target.
 */
const volatile struct bs_lim_rate req_lim = {};
const volatile __u32 req_algo = 0;
const volatile __u32 req_v6_prefix = 64;
const volatile __u64 ban_ns = 60 * BS_LIM_NSEC;

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 65536); /* --limit-clients; 64 while off */
	__type(key, struct bs_lim_key);
	__type(value, struct bs_lim_state);
} req_rate SEC(".maps");

/* the limiter's maps of the same names (bpf/limit.bpf.c), reused */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, BS_LIM_MAX_BANS);
	__type(key, struct bs_lim_key);
	__type(value, __u64);
} lim_bans SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct bs_lim_stats);
} lim_stats SEC(".maps");

static __noinline void req_limit(const struct bs_conn *c)
{
	struct bs_lim_rate r = {
		.interval = req_lim.interval,
		.tolerance = req_lim.tolerance,
		.window = req_lim.window,
		.burst = req_lim.burst,
	};
	struct bs_lim_state fresh = {}, *s;
	struct bs_lim_key k;
	struct bs_lim_stats *st;
	__u64 now, until, *old;
	__u32 zero = 0;

	if (c->family != AF_INET && c->family != AF_INET6)
		return;
	lim_key_peer(&k, c->family == AF_INET6, c->peer, req_v6_prefix);
	now = bpf_ktime_get_ns();
	s = bpf_map_lookup_elem(&req_rate, &k);
	if (!s) {
		bpf_map_update_elem(&req_rate, &k, &fresh, BPF_NOEXIST);
		s = bpf_map_lookup_elem(&req_rate, &k);
		if (!s)
			return;
	}
	if (lim_allow(&s->a, &s->w, &r, req_algo, now))
		return;
	/* requests of a client being banned may still be in its sockets */
	old = bpf_map_lookup_elem(&lim_bans, &k);
	if (old && *old > now)
		return;
	until = now + ban_ns;
	if (bpf_map_update_elem(&lim_bans, &k, &until, BPF_ANY))
		return;
	/* unbanned later, the client starts with a full burst */
	s->a = 0;
	s->w = (struct bs_lim_win){};
	st = bpf_map_lookup_elem(&lim_stats, &zero);
	if (st)
		st->c[BS_LIM_BANS_MADE] += 1;
}

/*
 * Round-trip x through map memory: the verifier then treats it as an
 * unknown value and stops following each possible constant separately.
 */
static __always_inline __u32 launder(__u32 x)
{
	__u32 zk = 0;
	struct bs_scratch *s = bpf_map_lookup_elem(&scratch, &zk);

	if (!s)
		return x;
	*(volatile __u32 *)&s->pos.tmp = x;
	return *(volatile __u32 *)&s->pos.tmp;
}

/* The target slot of tgid, or -1 when it is not observed. */
static __always_inline int target_slot(__u32 tgid)
{
	if (!tgid)
		return -1;
	for (int i = 0; i < BUNSCOPE_MAX_TARGETS; i++) {
		if (targets[i] == tgid)
			return i;
	}
	return -1;
}

static __always_inline int is_target(__u32 tgid)
{
	return target_slot(tgid) >= 0;
}

/* The stats index of (target slot t, port), claiming a port slot if new. */
static __always_inline int stats_index(int t, __u16 port)
{
	__u32 want = BS_PORT_USED | port;

	if (t < 0 || t >= BUNSCOPE_MAX_TARGETS)
		return -1;
	for (int p = 0; p < BS_PORT_SLOTS; p++) {
		__u32 cur = target_ports[t][p];

		if (cur == want)
			return t * BS_PORT_SLOTS + p;
		if (!cur) {
			cur = __sync_val_compare_and_swap(&target_ports[t][p], 0, want);
			if (!cur || cur == want)
				return t * BS_PORT_SLOTS + p;
		}
	}
	count(BS_CNT_PORTS_FULL);
	return -1;
}

static __always_inline struct bs_server_stats *stats_at(__u32 idx)
{
	return bpf_map_lookup_elem(&stats, &idx);
}

/* The histogram series of k: an index into agg, or -1 when all are taken. */
static __always_inline int series_get(const struct bs_agg_key *k)
{
	__u32 *p = bpf_map_lookup_elem(&series, k), idx;

	if (p)
		return *p;
	if (bpf_map_pop_elem(&series_free, &idx)) {
		idx = __sync_fetch_and_add(&series_next, 1);
		if (idx >= max_series)
			return -1;
	}
	if (bpf_map_update_elem(&series, k, &idx, BPF_NOEXIST)) {
		/* another CPU added k first (or the map is full) */
		bpf_map_push_elem(&series_free, &idx, 0);
		p = bpf_map_lookup_elem(&series, k);
		return p ? (int)*p : -1;
	}
	return idx;
}

/* ---- hooks of http_parse.h ------------------------------------------------ */

HP_INLINE int hp_src_read(struct hp_run *r, __u8 *dst, __u32 len, __u32 off)
{
	if (len > HP_WIN)
		return -1;
	return bpf_probe_read_user(dst, len, (const void *)(r->v->src + off));
}

HP_INLINE __u64 hp_seed(void)
{
	return hash_seed;
}

HP_INLINE __u32 hp_on_path(struct hp_run *r, __u64 hash, __u32 start, __u32 len, int truncated)
{
	struct bs_ev_path *ev;
	__u32 *id;

	/* an upstream's paths are not the target's routes */
	if (r->bc->client)
		return BS_ROUTE_OTHER;
	/* keep-alive clients tend to repeat themselves */
	if (r->bc->last_hash == hash && r->bc->last_route)
		return r->bc->last_route;
	id = bpf_map_lookup_elem(&routes, &hash);
	if (id) {
		r->bc->last_hash = hash;
		r->bc->last_route = *id;
		return *id;
	}
	ev = bpf_ringbuf_reserve(&events, sizeof(*ev), 0);
	if (!ev) {
		r->st->events_lost++;
		count(BS_CNT_EV_LOST);
		return BS_ROUTE_UNRESOLVED;
	}
	len = hp_clamp(r, len, BS_PATH_MAX);
	ev->type = BS_EV_PATH;
	ev->len = len;
	ev->truncated = truncated;
	ev->pad = 0;
	ev->hash = hash;
	bpf_probe_read_kernel(ev->path, len, r->scr + (start & HP_SCR_MASK));
	bpf_ringbuf_submit(ev, 0);
	return BS_ROUTE_UNRESOLVED;
}

/* The bucket of ns: the first bound it does not exceed, or n (+Inf). */
static __always_inline __u32 bucket_of(const __u64 *bounds, int n, __u64 ns)
{
	for (int i = 0; i < n; i++) {
		if (ns <= bounds[i])
			return i;
	}
	return n;
}

static __always_inline __u32 dur_slot(__u64 ns)
{
	static const __u64 bounds[BS_DUR_BOUNDS] = {
		5000000ULL,    10000000ULL,   25000000ULL,   50000000ULL,    75000000ULL,
		100000000ULL,  250000000ULL,  500000000ULL,  750000000ULL,   1000000000ULL,
		2500000000ULL, 5000000000ULL, 7500000000ULL, 10000000000ULL,
	};

	/* written out, not bucket_of(): per request, and clang emits fewer
	 * instructions for this form */
	for (int i = 0; i < BS_DUR_BOUNDS; i++) {
		if (ns <= bounds[i])
			return i;
	}
	return BS_DUR_BOUNDS;
}

static __always_inline __u32 size_slot(__u64 n)
{
	/* 0, 64, 256, 1 KiB .. 16 MiB: powers of 4 */
	if (!n)
		return 0;
	for (int i = 1; i < BS_SIZE_BOUNDS; i++) {
		if (n <= (16ULL << (2 * i)))
			return i;
	}
	return BS_SIZE_BOUNDS;
}

/* ---- traces ----------------------------------------------------------------- */

/*
 * Set by the daemon before load.  With traces_on 0 the hooks below are
 * dead code the verifier prunes: the metrics path pays nothing.
 */
const volatile __u32 traces_on = 0;
const volatile __u32 traces_query = 0; /* keep the query string in the target */
const volatile __u32 trace_sampler = BS_SAMPLER_PB_ALWAYS_ON;
const volatile __u64 trace_ratio = 1ULL << 32;	 /* sample when a 32-bit draw is below */
const volatile struct bs_lim_rate span_cap = {}; /* spans per second; interval 0: none */

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 4096); /* --traces-ringbuf when traces are on */
} spans SEC(".maps");

/* the cap's GCRA, one for all CPUs: unlocked, a race lets a span too many by */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u64); /* the GCRA's theoretical arrival time */
} span_cap_state SEC(".maps");

/*
 * Span records do not wake the daemon one by one (a wakeup per record cost
 * microseconds a request): it reads the ring every 50 ms, and is woken only
 * when the ring is an eighth full.
 */
static __always_inline __u64 span_wakeup(void)
{
	return bpf_ringbuf_query(&spans, BPF_RB_AVAIL_DATA) >
			       bpf_ringbuf_query(&spans, BPF_RB_RING_SIZE) / 8
		       ? BPF_RB_FORCE_WAKEUP
		       : BPF_RB_NO_WAKEUP;
}

HP_INLINE int hp_trace_on(struct hp_run *r __attribute__((unused)))
{
	return traces_on != 0;
}

/* The request-target into the connection's trace state; its traceparent is unknown yet. */
__noinline int bs_trace_target(struct bs_scratch *s, struct bs_conn *bc, __u32 start, __u32 plen,
			       __u32 tlen_trunc)
{
	__u32 tlen = tlen_trunc >> 1, n;
	int cut = tlen_trunc & 1;

	if (!s || !bc)
		return 0;
	if (!traces_query) {
		/* a '?' ended the path: the path is whole */
		cut = cut && plen == tlen;
		tlen = plen;
	}
	if (tlen > BS_TRACE_TARGET_MAX) {
		tlen = BS_TRACE_TARGET_MAX;
		cut = 1;
	}
	n = tlen;
	asm volatile("" : "+r"(n));
	if (n > BS_TRACE_TARGET_MAX)
		n = BS_TRACE_TARGET_MAX;
	bpf_probe_read_kernel(bc->tr.target, n, s->b + (start & HP_SCR_MASK));
	bc->tr.tlen = (__u16)n;
	bc->tr.plen = (__u16)(plen < n ? plen : n);
	bc->tr.ttrunc = (__u8)cut;
	bc->tr.tp = BS_TP_NONE;
	bc->tr.hlen = 0;
	return 0;
}

HP_INLINE void hp_on_target(struct hp_run *r, __u32 start, __u32 plen, __u32 tlen, int ttrunc)
{
	bs_trace_target((struct bs_scratch *)r->v, r->bc, start, plen,
			tlen << 1 | (ttrunc ? 1 : 0));
}

HP_INLINE void hp_on_target_again(struct hp_run *r)
{
	r->bc->tr.tp = BS_TP_NONE;
	r->bc->tr.hlen = 0;
}

/*
 * A traceparent, tracestate or (client connections) Host field, scr[vs, ve):
 * which_trunc is enum hp_trace_field << 1, bit 0 set when its middle is
 * missing.  A tracestate goes out at once (its request may not be sampled:
 * the daemon drops what no span claims); it is rare.  A Host is kept after
 * the target, when both fit in target[].
 */
__noinline int bs_trace_field(struct bs_scratch *s, struct bs_conn *bc, __u32 which_trunc, __u32 vs,
			      __u32 ve)
{
	__u32 len = ve - vs, at;

	if (!s || !bc || ve < vs)
		return 0;
	if ((which_trunc >> 1) == HP_TF_HOST) {
		at = bc->tr.tlen;
		if ((which_trunc & 1) || !len || len > BS_TRACE_HOST_MAX ||
		    at > BS_TRACE_TARGET_MAX - BS_TRACE_HOST_MAX)
			return 0;
		/* the verifier's own bounds on both */
		asm volatile("" : "+r"(len), "+r"(at));
		if (len > BS_TRACE_HOST_MAX || at > BS_TRACE_TARGET_MAX - BS_TRACE_HOST_MAX)
			return 0;
		if (!bpf_probe_read_kernel(bc->tr.target + at, len, s->b + (vs & HP_SCR_MASK)))
			bc->tr.hlen = (__u8)len;
		return 0;
	}
	if ((which_trunc >> 1) == HP_TF_TRACEPARENT) {
		if (bc->tr.tp != BS_TP_NONE || (which_trunc & 1) || len < TP_LEN ||
		    bpf_probe_read_kernel(s->tp_buf, sizeof(s->tp_buf),
					  s->b + (vs & HP_SCR_MASK)) ||
		    tp_parse(s->tp_buf, len, &s->tp)) {
			bc->tr.tp = BS_TP_BAD;
			return 0;
		}
		__builtin_memcpy(bc->tr.trace_id, s->tp.trace_id, 16);
		__builtin_memcpy(bc->tr.parent_id, s->tp.parent_id, 8);
		bc->tr.tp_flags = s->tp.flags;
		bc->tr.tp = BS_TP_VALID;
		return 0;
	}
	if (!(which_trunc & 1) && len && len <= BS_TRACESTATE_MAX) {
		struct bs_ev_tracestate *ev = bpf_ringbuf_reserve(&spans, sizeof(*ev), 0);

		if (!ev) {
			count(BS_CNT_SPAN_LOST);
			return 0;
		}
		ev->type = BS_EV_TRACESTATE;
		ev->tgid = s->tgid;
		ev->fd = bc->fd;
		ev->seq = bc->hp.next_seq;
		ev->conn = bc->born;
		ev->len = (__u16)len;
		__builtin_memset(ev->pad, 0, sizeof(ev->pad));
		/* the verifier's own bound on the length */
		asm volatile("" : "+r"(len));
		if (len > BS_TRACESTATE_MAX)
			len = BS_TRACESTATE_MAX;
		bpf_probe_read_kernel(ev->value, len, s->b + (vs & HP_SCR_MASK));
		bpf_ringbuf_submit(ev, span_wakeup());
	}
	return 0;
}

HP_INLINE void hp_on_trace_field(struct hp_run *r, int which, __u32 vs, __u32 ve, int trunc)
{
	bs_trace_field((struct bs_scratch *)r->v, r->bc, (__u32)which << 1 | (trunc ? 1 : 0), vs,
		       ve);
}

/* A ratio sampler's draw: from the incoming trace id when there is one (the
 * same trace gets the same answer everywhere), else at random. */
static __always_inline int ratio_pass(const struct bs_trace_in *t, int parent)
{
	__u32 x;

	if (parent)
		x = (__u32)t->trace_id[12] << 24 | (__u32)t->trace_id[13] << 16 |
		    (__u32)t->trace_id[14] << 8 | t->trace_id[15];
	else
		x = bpf_get_prandom_u32();
	return (__u64)x < trace_ratio;
}

HP_INLINE int hp_trace_sample(struct hp_run *r)
{
	const struct bs_trace_in *t = &r->bc->tr;
	int parent = t->tp == BS_TP_VALID, yes;

	switch (trace_sampler) {
	case BS_SAMPLER_ALWAYS_ON:
		yes = 1;
		break;
	case BS_SAMPLER_ALWAYS_OFF:
		yes = 0;
		break;
	case BS_SAMPLER_RATIO:
		yes = ratio_pass(t, parent);
		break;
	case BS_SAMPLER_PB_ALWAYS_OFF:
		yes = parent && (t->tp_flags & TP_FLAG_SAMPLED);
		break;
	case BS_SAMPLER_PB_RATIO:
		yes = parent ? (t->tp_flags & TP_FLAG_SAMPLED) : ratio_pass(t, 0);
		break;
	default: /* BS_SAMPLER_PB_ALWAYS_ON */
		yes = parent ? (t->tp_flags & TP_FLAG_SAMPLED) : 1;
		break;
	}
	if (!yes)
		count(BS_CNT_SPAN_UNSAMPLED);
	return yes;
}

/* A sampled request (number seq on its connection) starts its span: 1, or 0
 * when the cap or a full ring buffer leaves it without one. */
__noinline int bs_span_start(struct bs_conn *bc, __u32 tgid, __u32 seq, __u64 now)
{
	const struct bs_trace_in *t;
	struct bs_ev_span_start *ev;
	__u32 zk = 0, n;

	if (!bc)
		return 0;
	t = &bc->tr;
	if (span_cap.interval) {
		struct bs_lim_rate cap = {
			.interval = span_cap.interval,
			.tolerance = span_cap.tolerance,
		};
		__u64 *tat = bpf_map_lookup_elem(&span_cap_state, &zk);

		if (!tat || !lim_gcra(tat, &cap, now)) {
			count(BS_CNT_SPAN_CAPPED);
			return 0;
		}
	}
	ev = bpf_ringbuf_reserve(&spans, sizeof(*ev), 0);
	if (!ev) {
		count(BS_CNT_SPAN_LOST);
		return 0;
	}
	ev->type = BS_EV_SPAN_START;
	ev->tgid = tgid;
	ev->fd = bc->fd;
	ev->seq = seq;
	ev->conn = bc->born;
	ev->start_ns = now;
	ev->port = bc->port;
	ev->peer_port = bc->peer_port;
	ev->family = bc->family;
	ev->method = bc->hp.req.method;
	ev->flags = bc->client ? BS_SPAN_F_CLIENT : 0;
	ev->tp_flags = 0;
	ev->hlen = 0;
	ev->pad[0] = ev->pad[1] = ev->pad[2] = 0;
	__builtin_memcpy(ev->peer, bc->peer, 16);
	if (t->tp == BS_TP_VALID) {
		ev->flags |= BS_SPAN_F_PARENT;
		ev->tp_flags = t->tp_flags;
		__builtin_memcpy(ev->trace_id, t->trace_id, 16);
		__builtin_memcpy(ev->parent_id, t->parent_id, 8);
	} else {
		if (t->tp == BS_TP_BAD)
			ev->flags |= BS_SPAN_F_TP_BAD;
		__builtin_memset(ev->trace_id, 0, 16);
		__builtin_memset(ev->parent_id, 0, 8);
	}
	if (t->ttrunc)
		ev->flags |= BS_SPAN_F_TTRUNC;
	n = t->tlen;
	if (n > BS_TRACE_TARGET_MAX)
		n = BS_TRACE_TARGET_MAX;
	ev->tlen = (__u16)n;
	ev->plen = t->plen;
	/* a client's Host follows its target (only client connections set hlen;
	 * bs_trace_field kept both in range, the test is the verifier's) */
	if (t->hlen && n + t->hlen <= BS_TRACE_TARGET_MAX) {
		ev->hlen = t->hlen;
		n += t->hlen;
	}
	bpf_probe_read_kernel(ev->target, n, t->target);
	bpf_ringbuf_submit(ev, span_wakeup());
	count(BS_CNT_SPAN_SAMPLED);
	return 1;
}

HP_INLINE int hp_on_span_start(struct hp_run *r, struct hp_slot *s __attribute__((unused)),
			       __u32 seq)
{
	return bs_span_start(r->bc, r->tgid, seq, r->now);
}

/* The end of count spans from number seq on, a record the daemon completes them with. */
__noinline int bs_span_end(struct bs_conn *bc, struct bs_ev_span_end *e)
{
	struct bs_ev_span_end *ev;

	if (!bc || !e)
		return 0;
	ev = bpf_ringbuf_reserve(&spans, sizeof(*ev), 0);
	if (!ev) {
		count(BS_CNT_SPAN_LOST);
		return 0;
	}
	__builtin_memcpy(ev, e, sizeof(*ev));
	ev->type = BS_EV_SPAN_END;
	ev->fd = bc->fd;
	ev->conn = bc->born;
	bpf_ringbuf_submit(ev, span_wakeup());
	return 0;
}

/* The end of a traced WebSocket connection's life. */
__noinline int bs_ws_span_end(struct bs_conn *bc, __u32 tgid, __u64 now)
{
	struct bs_ev_ws_end *ev;

	if (!bc)
		return 0;
	ev = bpf_ringbuf_reserve(&spans, sizeof(*ev), 0);
	if (!ev) {
		count(BS_CNT_SPAN_LOST);
		return 0;
	}
	ev->type = BS_EV_WS_END;
	ev->tgid = tgid;
	ev->fd = bc->fd;
	ev->seq = bc->ws.tr_seq;
	ev->conn = bc->born;
	ev->open_ns = bc->ws.open_ns;
	ev->end_ns = now;
	ev->msgs[0] = bc->ws.tr_msgs[0];
	ev->msgs[1] = bc->ws.tr_msgs[1];
	ev->bytes[0] = bc->ws.tr_bytes[0];
	ev->bytes[1] = bc->ws.tr_bytes[1];
	ev->close_code = bc->ws.close_code;
	__builtin_memset(ev->pad, 0, sizeof(ev->pad));
	bpf_ringbuf_submit(ev, span_wakeup());
	return 0;
}

static __always_inline void span_end(struct hp_run *r, struct hp_slot *s, __u32 count, __u32 how,
				     __u16 status, __u64 req_body, __u64 resp_body)
{
	struct bs_ev_span_end e = {
		.tgid = r->tgid,
		.seq = s->seq,
		.end_ns = r->now,
		.req_body = req_body,
		.resp_body = resp_body,
		.count = count,
		.status = status,
		.how = (__u8)how,
	};

	bs_span_end(r->bc, &e);
}

/* One completed request into its histograms. */
static __always_inline void agg_add(struct bs_agg_val *v, __u64 dur, __u64 req_body,
				    __u64 resp_body)
{
	__u32 i;

	i = dur_slot(dur);
	if (i < BS_DUR_SLOTS)
		v->dur[i]++;
	v->dur_sum_ns += dur;
	i = size_slot(req_body);
	if (i < BS_SIZE_SLOTS)
		v->req_size[i]++;
	v->req_size_sum += req_body;
	i = size_slot(resp_body);
	if (i < BS_SIZE_SLOTS)
		v->resp_size[i]++;
	v->resp_size_sum += resp_body;
	v->count++;
}

/* A request the target made that was answered, for bs_client_complete. */
struct bs_client_done {
	__u64 dur;
	__u64 req_body;
	__u64 resp_body;
	__u32 tgid;
	__u16 status;
	__u8 method;
	__u8 pad;
};

/*
 * Into the upstream's series: a hash lookup a request (the targets' own
 * requests are few next to the ones they serve).  Global: verified once.
 */
__noinline int bs_client_complete(struct bs_conn *bc, struct bs_server_stats *st,
				  struct bs_client_done *d)
{
	struct bs_cagg_key k = {};
	struct bs_agg_val *v;
	__u32 zk = 0;

	if (!bc || !st || !d)
		return 0;
	k.tgid = d->tgid;
	k.port = bc->port;
	k.status = d->status;
	k.method = d->method;
	k.family = bc->family;
	__builtin_memcpy(k.addr, bc->peer, 16);
	v = bpf_map_lookup_elem(&cagg, &k);
	if (!v) {
		v = lookup_or_init(&cagg, &k, bpf_map_lookup_elem(&agg_zero, &zk));
		if (!v) {
			st->agg_full++;
			return 0;
		}
	}
	agg_add(v, d->dur, d->req_body, d->resp_body);
	return 0;
}

HP_INLINE void hp_on_complete(struct hp_run *r, struct hp_slot *s, __u16 status, __u64 req_body,
			      __u64 resp_body)
{
	struct bs_agg_key k = {};
	struct bs_agg_val *v;
	struct bs_conn *bc;
	__u64 dur = r->now - s->start_ns;
	__u32 route = s->route_id, idx;

	r->st->completed++;
	if (traces_on && (s->flags & HP_SF_TRACED))
		span_end(r, s, 1, BS_SPAN_DONE, status, req_body, resp_body);
	if (r->bc->client) {
		struct bs_client_done d = {
			.dur = dur,
			.req_body = req_body,
			.resp_body = resp_body,
			.tgid = r->tgid,
			.status = status,
			.method = s->method,
		};

		bs_client_complete(r->bc, r->st, &d);
		return;
	}
	if (route == BS_ROUTE_UNRESOLVED) {
		__u32 *id = bpf_map_lookup_elem(&routes, &s->path_hash);

		if (id) {
			route = *id;
			s->route_id = route; /* for the slot's pipelined twins */
		}
	}
	if (route == BS_ROUTE_UNRESOLVED) {
		struct bs_ev_complete *ev;

		ev = bpf_ringbuf_reserve(&events, sizeof(*ev), 0);
		if (!ev) {
			r->st->events_lost++;
			count(BS_CNT_EV_LOST);
			return;
		}
		ev->type = BS_EV_COMPLETE;
		ev->tgid = r->tgid;
		ev->hash = s->path_hash;
		ev->dur_ns = dur;
		ev->req_body = req_body;
		ev->resp_body = resp_body;
		ev->port = r->port;
		ev->status = status;
		ev->method = s->method;
		ev->pad[0] = ev->pad[1] = ev->pad[2] = 0;
		bpf_ringbuf_submit(ev, 0);
		count(BS_CNT_ROUTE_MISS);
		return;
	}

	k.tgid = r->tgid;
	k.route_id = route;
	k.port = r->port;
	k.status = status;
	k.method = s->method;
	bc = r->bc;
	if (bc->series_ok && bc->series_route == route && bc->series_status == status &&
	    bc->series_method == s->method) {
		idx = bc->series_idx;
	} else {
		int got = series_get(&k);

		if (got < 0) {
			r->st->agg_full++;
			return;
		}
		idx = (__u32)got;
		bc->series_idx = idx;
		bc->series_route = route;
		bc->series_status = status;
		bc->series_method = s->method;
		bc->series_ok = 1;
	}
	v = bpf_map_lookup_elem(&agg, &idx);
	if (v)
		agg_add(v, dur, req_body, resp_body);
}

HP_INLINE void hp_on_start(struct hp_run *r)
{
	r->st->started++;
	/* an upstream is not a client to limit */
	if (req_lim.interval && !r->bc->client)
		req_limit(r->bc);
}

HP_INLINE void hp_on_abort(struct hp_run *r, struct hp_slot *s, __u32 n)
{
	r->st->aborted += n;
	if (traces_on && (s->flags & HP_SF_TRACED))
		span_end(r, s, n, BS_SPAN_ABORT, 0, s->req_body, 0);
}

HP_INLINE void hp_on_unstart(struct hp_run *r, struct hp_slot *s)
{
	r->st->unstarted++;
	if (traces_on && (s->flags & HP_SF_TRACED))
		span_end(r, s, 1, BS_SPAN_UNSTART, 0, 0, 0);
}

HP_INLINE void hp_on_reject(struct hp_run *r, int reason)
{
	if (reason >= 0 && reason < BS_REJ_MAX)
		r->st->rejected[reason]++;
}

HP_INLINE void hp_on_timeout(struct hp_run *r)
{
	r->st->timeouts++;
}

HP_INLINE void hp_on_desync(struct hp_run *r, int reason)
{
	(void)reason;
	r->st->desync++;
}

HP_INLINE void hp_on_overflow(struct hp_run *r)
{
	r->st->fifo_overflow++;
}

/* ---- WebSockets ----------------------------------------------------------- */

/*
 * The key of a WebSocket connection's figures (code 0; see bs_ws_key).  It is
 * the upgrade's, fixed for the connection's life: a route learned later must
 * not move the close to another row than the open (the gauge is opened -
 * closed per row), and the daemon names a path-hash row by its label.
 */
static __always_inline void ws_key(const struct bs_conn *bc, __u32 tgid, struct bs_ws_key *k)
{
	k->tgid = tgid;
	k->route_id = bc->ws.route;
	k->hash = bc->ws.route == BS_ROUTE_UNRESOLVED ? bc->ws.hash : 0;
	k->port = bc->port;
	k->code = 0;
	k->pad = 0;
}

/* The figures of r's WebSocket, created when new; its key is left in k. */
static __always_inline struct bs_ws_val *ws_val(struct hp_run *r, struct bs_ws_key *k)
{
	struct bs_ws_val *v;
	__u32 zk = 0;

	ws_key(r->bc, r->tgid, k);
	v = bpf_map_lookup_elem(&ws_agg, k);
	if (v)
		return v;
	v = lookup_or_init(&ws_agg, k, bpf_map_lookup_elem(&ws_zero, &zk));
	if (!v)
		r->st->ws_agg_full++;
	return v;
}

HP_INLINE void hp_on_upgrade(struct hp_run *r, struct hp_slot *s)
{
	struct ws_conn *w = &r->bc->ws;
	struct bs_ws_val *v;
	struct bs_ws_key k;

	__builtin_memset(w, 0, sizeof(*w));
	w->open_ns = r->now;
	w->hash = s->path_hash;
	w->route = s->route_id;
	w->open = 1;
	if (traces_on && (s->flags & HP_SF_TRACED)) {
		w->traced = 1;
		w->tr_seq = s->seq;
	}
	v = ws_val(r, &k);
	if (v)
		v->opened++;
}

HP_INLINE void ws_on_frame(struct hp_run *r, int dir __attribute__((unused)), __u32 kind,
			   __u64 bytes, int msg_end)
{
	struct bs_scratch *s = (struct bs_scratch *)r->v;

	if (kind >= BS_WS_KINDS)
		return;
	s->ws_bytes[kind] += bytes;
	if (msg_end)
		s->ws_msgs[kind]++;
	s->ws_frames++;
}

/* The syscall's frames into ws_agg: one lookup for all of them. */
static __always_inline void ws_flush(struct hp_run *r, int dir)
{
	struct bs_scratch *s = (struct bs_scratch *)r->v;
	struct bs_ws_val *v;
	struct bs_ws_key k;

	if (!s->ws_frames)
		return;
	v = ws_val(r, &k);
	dir = dir ? 1 : 0;
	if (traces_on && r->bc->ws.traced) {
		r->bc->ws.tr_msgs[dir] += s->ws_msgs[BS_WS_TEXT] + s->ws_msgs[BS_WS_BINARY];
		r->bc->ws.tr_bytes[dir] += s->ws_bytes[BS_WS_TEXT] + s->ws_bytes[BS_WS_BINARY];
	}
	for (int i = 0; i < BS_WS_KINDS; i++) {
		if (v) {
			v->bytes[dir][i] += s->ws_bytes[i];
			v->messages[dir][i] += s->ws_msgs[i];
		}
		s->ws_bytes[i] = 0;
		s->ws_msgs[i] = 0;
	}
	s->ws_frames = 0;
}

HP_INLINE void ws_on_close_frame(struct hp_run *r, int dir __attribute__((unused)), __u16 code)
{
	/* the first close frame decides (the answer echoes it) */
	if (!r->bc->ws.close_code)
		r->bc->ws.close_code = code;
}

HP_INLINE void ws_on_error(struct hp_run *r, int dir __attribute__((unused)),
			   int reason __attribute__((unused)))
{
	r->st->ws_errors++;
}

static __always_inline __u32 life_slot(__u64 ns)
{
	static const __u64 bounds[BS_LIFE_BOUNDS] = {
		100000000ULL,	   1000000000ULL,     10000000000ULL,	60000000000ULL,
		300000000000ULL,   900000000000ULL,   1800000000000ULL, 3600000000000ULL,
		14400000000000ULL, 86400000000000ULL,
	};

	return bucket_of(bounds, BS_LIFE_BOUNDS, ns);
}

/* The connection of a WebSocket ended: count the close, its code and lifetime. */
static __always_inline void ws_end(struct hp_run *r)
{
	struct bs_conn *bc = r->bc;
	struct bs_ws_val *v;
	struct bs_ws_key k;
	__u64 life = r->now - bc->ws.open_ns, one = 1, *n;
	__u16 code = bc->ws.close_code;
	__u32 i;

	bc->ws.open = 0;
	if (traces_on && bc->ws.traced)
		bs_ws_span_end(bc, r->tgid, r->now);
	v = ws_val(r, &k);
	if (v) {
		v->closed++;
		i = life_slot(life);
		if (i < BS_LIFE_SLOTS)
			v->life[i]++;
		v->life_sum_ns += life;
	}
	if (!code)
		k.code = BS_WS_CODE_ABNORMAL;
	else if (code < 1000 || code > 4999)
		k.code = BS_WS_CODE_INVALID;
	else
		k.code = code;
	n = bpf_map_lookup_elem(&ws_close, &k);
	if (n) {
		(*n)++;
	} else if (bpf_map_update_elem(&ws_close, &k, &one, BPF_NOEXIST)) {
		n = bpf_map_lookup_elem(&ws_close, &k); /* another CPU added it */
		if (n)
			(*n)++;
		else
			r->st->ws_agg_full++;
	}
}

/* ---- syscall plumbing ----------------------------------------------------- */

struct loop_ctx {
	struct hp_run r; /* for events without data (close, shutdown) */
	struct bs_scratch *s;
	struct bs_conn *conn;
	struct bs_server_stats *st;
	int dir;
};

/* Move to the next iovec (or the unreadable rest); 0 when nothing is left. */
static __always_inline int next_segment(struct hp_run *r, struct bs_scratch *s)
{
	struct iovec iov;
	__u32 len;

	if (!s->left)
		return 0;
	if (!s->iov_left || bpf_probe_read_user(&iov, sizeof(iov), (const void *)s->iov)) {
		/* more bytes than the iovecs we may read: count them only */
		hp_run_segment(r, 0, s->left, 0);
		s->left = 0;
		return 1;
	}
	s->iov += sizeof(iov);
	s->iov_left--;
	len = iov.iov_len < s->left ? (__u32)iov.iov_len : s->left;
	s->left -= len;
	hp_run_segment(r, (__u64)iov.iov_base, len, 1);
	return 1;
}

/* The run context of a connection's walk; the same for every step of a syscall. */
static __always_inline void run_init(struct hp_run *r, struct bs_scratch *s, struct bs_conn *conn,
				     struct bs_server_stats *st)
{
	r->c = &conn->hp;
	r->scr = s->b;
	r->v = &s->pos;
	r->st = st;
	r->bc = conn;
	r->tgid = s->tgid;
	r->port = conn->port;
	r->now = s->now;
}

/* Up to STEPS_PER_CALL parser steps in direction dir; 1 when the syscall is done. */
static __always_inline int steps(struct bs_scratch *s, struct bs_conn *conn,
				 struct bs_server_stats *st, const int dir)
{
	struct hp_run r;

	if (!s || !conn || !st)
		return 1;
	run_init(&r, s, conn, st);
	for (int i = 0; i < STEPS_PER_CALL; i++) {
		if (s->pos.off >= s->pos.n && !next_segment(&r, s))
			return 1;
		/* done with bytes left: a 101 switched the rest to frames (ws_steps) */
		if (hp_step(&r, dir) && s->pos.off < s->pos.n)
			return 1;
	}
	/* the last step may have taken the last byte: no bpf_loop for nothing */
	return s->pos.off >= s->pos.n && !s->left;
}

/* The same over WebSocket frames. */
static __always_inline int ws_steps(struct bs_scratch *s, struct bs_conn *conn,
				    struct bs_server_stats *st, int dir)
{
	struct ws_dir *d;
	struct hp_run r;

	if (!s || !conn || !st)
		return 1;
	run_init(&r, s, conn, st);
	d = &conn->ws.dir[dir ? 1 : 0];
	for (int i = 0; i < STEPS_PER_CALL; i++) {
		if (s->pos.off >= s->pos.n && !next_segment(&r, s))
			return 1;
		ws_step(&r, d, dir ? 1 : 0);
	}
	return s->pos.off >= s->pos.n && !s->left;
}

/* A complete line (bounds in s->pos) in direction dir. */
static __always_inline int line(struct bs_scratch *s, struct bs_conn *conn,
				struct bs_server_stats *st, const int dir)
{
	struct hp_run r;

	if (!s || !conn || !st)
		return 0;
	run_init(&r, s, conn, st);
	hp_line_do(&r, dir ? &conn->hp.resp : &conn->hp.req, dir);
	return 0;
}

/*
 * Global (not static) functions are verified once, on their own, with
 * unknown arguments: the parser's cost for the verifier does not multiply
 * with the states of its callers.  One per direction, so that each program
 * holds only the parser half it runs.
 */
__noinline int bs_step_req(struct bs_scratch *s, struct bs_conn *conn, struct bs_server_stats *st)
{
	return steps(s, conn, st, 0);
}

__noinline int bs_step_resp(struct bs_scratch *s, struct bs_conn *conn, struct bs_server_stats *st)
{
	return steps(s, conn, st, 1);
}

__noinline int bs_line_req(struct bs_scratch *s, struct bs_conn *conn, struct bs_server_stats *st)
{
	return line(s, conn, st, 0);
}

__noinline int bs_line_resp(struct bs_scratch *s, struct bs_conn *conn, struct bs_server_stats *st)
{
	return line(s, conn, st, 1);
}

__noinline int bs_ws_step(struct bs_scratch *s, struct bs_conn *conn, struct bs_server_stats *st,
			  int dir)
{
	return ws_steps(s, conn, st, dir);
}

static long ws_step_cb(__u32 i __attribute__((unused)), void *data)
{
	struct loop_ctx *x = data;

	return bs_ws_step(x->s, x->conn, x->st, x->dir) ? 1 : 0;
}

static long step_req_cb(__u32 i __attribute__((unused)), void *data)
{
	struct loop_ctx *x = data;

	return bs_step_req(x->s, x->conn, x->st) ? 1 : 0;
}

static long step_resp_cb(__u32 i __attribute__((unused)), void *data)
{
	struct loop_ctx *x = data;

	return bs_step_resp(x->s, x->conn, x->st) ? 1 : 0;
}

static __always_inline int is_read_kind(__u32 kind)
{
	return kind >= K_READ && kind <= K_RECVMSG;
}

/* The arguments of the current syscall, still in its saved registers. */
struct sys_args {
	__u64 a0, a1, a2;
};

/* From the trusted pointer bpf_task_pt_regs() returns: plain loads, no
 * bpf_probe_read_kernel() (about 45 ns a call here). */
static __always_inline int sys_args(struct pt_regs *regs, struct sys_args *a)
{
	if (!regs)
		return -1;
	a->a0 = regs->di;
	a->a1 = regs->si;
	a->a2 = regs->dx;
	return 0;
}

static __always_inline struct pt_regs *current_regs(void)
{
	return (struct pt_regs *)bpf_task_pt_regs(bpf_get_current_task_btf());
}

static __always_inline void process(struct bs_conn *conn, struct bs_server_stats *st,
				    const struct sys_args *a, __u32 tgid, __u32 kind, const int dir,
				    long ret)
{
	struct loop_ctx x = {};
	__u32 zk = 0, nr;
	struct bs_scratch *scr;
	__u8 state = dir ? conn->hp.resp.state : conn->hp.req.state;

	if (state == HS_DEAD || (state == HS_WS && (conn->ws.dir[dir].state == WS_DEAD)))
		return;
	scr = bpf_map_lookup_elem(&scratch, &zk);
	if (!scr)
		return;
	x.s = scr;
	x.conn = conn;
	x.st = st;
	x.dir = dir;
	scr->iov = 0;
	scr->iov_left = 0;
	scr->left = 0;
	scr->tgid = tgid;
	/* WebSocket frames never read the clock: a WebSocket's end is
	 * counted when its connection ends (conn_end() reads the clock) */
	scr->now = state == HS_WS ? 0 : bpf_ktime_get_ns();
	run_init(&x.r, scr, conn, st);

	switch (kind) {
	case K_READ:
	case K_RECVFROM:
	case K_WRITE:
	case K_SENDTO:
		hp_run_segment(&x.r, a->a1, (__u32)ret, 1);
		break;
	case K_SENDFILE:
		hp_run_segment(&x.r, 0, (__u32)ret, 0);
		break;
	case K_RECVMSG:
	case K_SENDMSG: {
		struct user_msghdr mh;

		if (bpf_probe_read_user(&mh, sizeof(mh), (const void *)a->a1)) {
			hp_run_segment(&x.r, 0, (__u32)ret, 0);
			break;
		}
		scr->iov = (__u64)mh.msg_iov;
		scr->iov_left = mh.msg_iovlen < MAX_IOV ? (__u32)mh.msg_iovlen : MAX_IOV;
		scr->left = (__u32)ret;
		hp_run_segment(&x.r, 0, 0, 1);
		break;
	}
	default: /* K_READV, K_WRITEV */
		scr->iov = a->a1;
		scr->iov_left = a->a2 < MAX_IOV ? (__u32)a->a2 : MAX_IOV;
		scr->left = (__u32)ret;
		hp_run_segment(&x.r, 0, 0, 1);
		break;
	}

	/* every step consumes at least a byte; segment switches are extra */
	nr = (__u32)ret + MAX_IOV + 8;
	if (nr > (1U << 23))
		nr = 1U << 23;
	/* most segments are done in one call; bpf_loop takes the rest */
	if (state != HS_WS) {
		if (dir) {
			if (!bs_step_resp(scr, conn, st))
				bpf_loop(nr, step_resp_cb, &x, 0);
		} else {
			if (!bs_step_req(scr, conn, st))
				bpf_loop(nr, step_req_cb, &x, 0);
		}
		state = dir ? conn->hp.resp.state : conn->hp.req.state;
	}
	/* after a 101, frames (possibly in the same write as the 101) */
	if (state == HS_WS && (scr->pos.off < scr->pos.n || scr->left)) {
		if (!bs_ws_step(scr, conn, st, dir))
			bpf_loop(nr, ws_step_cb, &x, 0);
		ws_flush(&x.r, dir);
	}
	if (scr->pos.off < scr->pos.n || scr->left)
		hp_on_desync(&x.r, HP_DS_STEPS);
}

/*
 * Exit of a data syscall of direction dir (0: the target read, 1: it wrote).
 * On a client connection what the target writes are requests: the parser
 * runs the other way round.
 */
static __always_inline void sys_exit(const int dir, __u32 tgid, __u32 kind,
				     const struct sys_args *a, long ret)
{
	struct bs_conn_key key = { .tgid = tgid, .fd = (__u32)a->a0 };
	struct bs_server_stats *st;
	struct bs_conn *conn;

	if (ret <= 0 || kind == K_NONE)
		return;
	conn = bpf_map_lookup_elem(&conns, &key);
	if (!conn)
		return;
	st = stats_at(conn->stats_idx);
	if (!st)
		return;
	if (dir)
		st->bytes_out += ret;
	else
		st->bytes_in += ret;
	/* one copy of process(), its direction known at run time */
	process(conn, st, a, tgid, kind, dir ^ (conn->client & 1), ret);
}

/* A walk context for connection events that carry no data. */
static __always_inline int conn_ctx(struct loop_ctx *x, struct bs_conn *conn, __u32 tgid)
{
	__u32 zk = 0;

	x->s = bpf_map_lookup_elem(&scratch, &zk);
	x->st = stats_at(conn->stats_idx);
	if (!x->s || !x->st)
		return -1;
	x->s->tgid = tgid;
	x->s->now = bpf_ktime_get_ns();
	run_init(&x->r, x->s, conn, x->st);
	return 0;
}

/* End of a connection: until-close answers complete, the rest aborts. */
static __always_inline void conn_end(struct bs_conn *conn, __u32 tgid)
{
	struct loop_ctx x = {};

	if (conn_ctx(&x, conn, tgid))
		return;
	if (conn->ws.open)
		ws_end(&x.r);
	hp_close(&x.r);
	x.r.st->conns_closed++;
}

/* The sock of the current task's fd (a socket, as the syscall said), or NULL. */
static __always_inline struct sock *fd_sock(long fd)
{
	struct task_struct *task = (struct task_struct *)bpf_get_current_task();
	struct file **fds, *f;
	struct socket *sock;

	if (fd < 0 || (__u32)fd >= BPF_CORE_READ(task, files, fdt, max_fds))
		return NULL;
	fds = BPF_CORE_READ(task, files, fdt, fd);
	if (bpf_probe_read_kernel(&f, sizeof(f), &fds[fd]) || !f)
		return NULL;
	sock = BPF_CORE_READ(f, private_data);
	return BPF_CORE_READ(sock, sk);
}

/* The peer's address and port from sk into conn. */
static __always_inline void conn_peer(struct bs_conn *conn, struct sock *sk, __u16 family)
{
	conn->peer_port = bpf_ntohs(BPF_CORE_READ(sk, __sk_common.skc_dport));
	/* bpf_core_read with the size: BPF_CORE_READ_INTO on an array
	 * reads sizeof(its element), one byte */
	if (family == AF_INET)
		bpf_core_read(conn->peer, 4, &sk->__sk_common.skc_daddr);
	else
		bpf_core_read(conn->peer, 16, &sk->__sk_common.skc_v6_daddr);
}

/* A new entry for (tgid, fd), ending the one an unseen close left behind. */
static __always_inline struct bs_conn *conn_new(struct bs_conn_key *key)
{
	struct bs_conn *conn, *zero;
	__u32 zk = 0;

	conn = bpf_map_lookup_elem(&conns, key);
	if (conn) {
		/* the fd was reused without a close we saw (close_range, exit) */
		conn_end(conn, key->tgid);
		bpf_map_delete_elem(&conns, key);
		count(BS_CNT_CONN_DELETE);
	}
	zero = bpf_map_lookup_elem(&conn_zero, &zk);
	if (!zero)
		return NULL;
	if (bpf_map_update_elem(&conns, key, zero, BPF_NOEXIST)) {
		count(BS_CNT_CONN_FULL);
		return NULL;
	}
	count(BS_CNT_CONN_INSERT);
	conn = bpf_map_lookup_elem(&conns, key);
	if (conn) {
		conn->fd = key->fd;
		conn->born = bpf_ktime_get_ns();
	}
	return conn;
}

static __always_inline void on_accept(long ret)
{
	__u64 id = bpf_get_current_pid_tgid();
	__u32 tgid = id >> 32;
	struct bs_conn_key key = { .tgid = tgid };
	struct bs_server_stats *st;
	struct bs_conn *conn;
	struct sock *sk;
	__u16 family, port = 0;
	int t = target_slot(tgid), idx;

	if (t < 0 || ret < 0)
		return;
	t = (int)launder((__u32)t);
	sk = fd_sock(ret);
	if (!sk)
		return;
	family = BPF_CORE_READ(sk, __sk_common.skc_family);
	if (family != AF_INET && family != AF_INET6 && family != AF_UNIX)
		return;
	if (family != AF_UNIX)
		port = BPF_CORE_READ(sk, __sk_common.skc_num);
	idx = stats_index(t, port);
	if (idx < 0)
		return;

	key.fd = (__u32)ret;
	conn = conn_new(&key);
	if (!conn)
		return;
	conn->family = (__u8)family;
	conn->port = port;
	conn->stats_idx = (__u32)idx;
	if (family != AF_UNIX)
		conn_peer(conn, sk, family);
	st = stats_at(conn->stats_idx);
	if (st)
		st->conns_opened++;
}

#define EINPROGRESS 115
#define SOCK_STREAM 1

/*
 * connect() of a target's TCP socket (non-blocking ones return EINPROGRESS,
 * Bun's fetch among them; the destination is set in the sock by then): a
 * client connection, whose requests are the target's own.  Anything it says
 * that is not HTTP/1 (TLS, a database protocol) is given up on at once.
 */
static __always_inline void on_connect(long ret, long fd)
{
	__u32 tgid = bpf_get_current_pid_tgid() >> 32;
	struct bs_conn_key key = { .tgid = tgid, .fd = (__u32)fd };
	struct bs_server_stats *st;
	struct bs_conn *conn;
	struct sock *sk;
	__u16 family;
	int t = target_slot(tgid);

	if (t < 0 || (ret && ret != -EINPROGRESS))
		return;
	t = (int)launder((__u32)t);
	sk = fd_sock(fd);
	if (!sk || BPF_CORE_READ(sk, sk_type) != SOCK_STREAM)
		return;
	family = BPF_CORE_READ(sk, __sk_common.skc_family);
	if (family != AF_INET && family != AF_INET6)
		return;
	conn = bpf_map_lookup_elem(&conns, &key);
	/* connect() again on a connection followed already (a non-blocking
	 * one asking whether it is up): nothing new */
	if (conn && conn->client &&
	    conn->peer_port == bpf_ntohs(BPF_CORE_READ(sk, __sk_common.skc_dport)))
		return;
	conn = conn_new(&key);
	if (!conn)
		return;
	conn->family = (__u8)family;
	conn->client = 1;
	conn->hp.cflags = HP_CF_CLIENT;
	conn_peer(conn, sk, family);
	conn->port = conn->peer_port;
	conn->stats_idx = BS_CLIENT_STATS((__u32)t & (BUNSCOPE_MAX_TARGETS - 1));
	st = stats_at(conn->stats_idx);
	if (st)
		st->conns_opened++;
}

static __always_inline void on_close(long fd)
{
	__u64 id = bpf_get_current_pid_tgid();
	__u32 tgid = id >> 32;
	struct bs_conn_key key = { .tgid = tgid, .fd = (__u32)fd };
	struct bs_conn *conn;

	if (!is_target(tgid))
		return;
	conn = bpf_map_lookup_elem(&conns, &key);
	if (!conn)
		return;
	conn_end(conn, tgid);
	if (!bpf_map_delete_elem(&conns, &key))
		count(BS_CNT_CONN_DELETE);
}

static __always_inline void on_shutdown(long fd, long how)
{
	__u64 id = bpf_get_current_pid_tgid();
	__u32 tgid = id >> 32;
	struct bs_conn_key key = { .tgid = tgid, .fd = (__u32)fd };
	struct loop_ctx x = {};
	struct bs_conn *conn;

	if (!is_target(tgid) || (how != SHUT_WR && how != SHUT_RDWR))
		return;
	conn = bpf_map_lookup_elem(&conns, &key);
	/* a client's shutdown ends its requests, not the answers it reads */
	if (conn && !conn->client && !conn_ctx(&x, conn, tgid))
		hp_shutdown_wr(&x.r);
}

/* ---- attach at exec or listen --------------------------------------------- */

static __always_inline int comm_is(const char *comm, const char *name)
{
	for (int i = 0; i < BS_COMM_LEN; i++) {
		if (comm[i] != name[i])
			return 0;
		if (!comm[i])
			return 1;
	}
	return 1;
}

/* Does the current process's comm match one of the --name selectors? */
static __always_inline int auto_name_match(void)
{
	char comm[BS_COMM_LEN];

	if (bpf_get_current_comm(comm, sizeof(comm)))
		return 0;
	for (int i = 0; i < BS_AUTO_MAX; i++) {
		if (!auto_names[i][0])
			break;
		if (comm_is(comm, auto_names[i]))
			return 1;
	}
	return 0;
}

/*
 * The current process takes the armed slot: at most one process per arming
 * (the compare-and-swap), never one already observed.  The daemon disarms
 * the slot while it scans /proc itself, so the two never pick the same
 * process twice.
 */
static __always_inline void auto_take(__u32 tgid, __u32 how)
{
	__u32 want = auto_slot, slot;
	struct bs_ev_attach *ev;

	if (!want || want > BUNSCOPE_MAX_TARGETS || is_target(tgid))
		return;
	if (__sync_val_compare_and_swap(&auto_slot, want, 0) != want)
		return;
	slot = (want - 1) & (BUNSCOPE_MAX_TARGETS - 1);
	target_mm[slot] = 0;
	auto_how[slot] = how;
	targets[slot] = tgid;
	ev = bpf_ringbuf_reserve(&events, sizeof(*ev), 0);
	if (!ev) {
		count(BS_CNT_EV_LOST);
		return;
	}
	ev->type = BS_EV_ATTACH;
	/* the daemon adopts it now rather than at its next scan */
	bpf_ringbuf_submit(ev, BPF_RB_FORCE_WAKEUP);
}

/* sched:sched_process_exec: a new program whose name is selected. */
SEC("tracepoint/sched/sched_process_exec")
int bs_auto_exec(void *ctx __attribute__((unused)))
{
	if (hooks_only)
		return 0;
	if (auto_slot && auto_name_match())
		auto_take(bpf_get_current_pid_tgid() >> 32, BS_AUTO_EXEC);
	return 0;
}

/* A successful listen() on fd by a process not observed yet. */
static __always_inline void auto_listen(long fd)
{
	__u32 tgid = bpf_get_current_pid_tgid() >> 32;
	struct sock *sk;
	__u16 port;

	if (auto_name_match()) {
		auto_take(tgid, BS_AUTO_LISTEN);
		return;
	}
	sk = fd_sock(fd);
	if (!sk || BPF_CORE_READ(sk, __sk_common.skc_net.net, ns.inum) != auto_netns)
		return;
	port = BPF_CORE_READ(sk, __sk_common.skc_num);
	for (int i = 0; i < BS_AUTO_MAX; i++) {
		if (!auto_ports[i])
			break;
		if (auto_ports[i] == port) {
			auto_take(tgid, BS_AUTO_LISTEN);
			return;
		}
	}
}

/* ---- entry points --------------------------------------------------------- */

/* x86_64 syscall numbers (arch/x86/entry/syscalls/syscall_64.tbl) */
#define NR_READ	    0
#define NR_WRITE    1
#define NR_CLOSE    3
#define NR_READV    19
#define NR_WRITEV   20
#define NR_SENDFILE 40
#define NR_ACCEPT   43
#define NR_SENDTO   44
#define NR_RECVFROM 45
#define NR_SENDMSG  46
#define NR_RECVMSG  47
#define NR_SHUTDOWN 48
#define NR_CONNECT  42
#define NR_LISTEN   50
#define NR_ACCEPT4  288

static __always_inline __u32 kind_of(long nr)
{
	switch (nr) {
	case NR_READ:
		return K_READ;
	case NR_RECVFROM:
		return K_RECVFROM;
	case NR_READV:
		return K_READV;
	case NR_RECVMSG:
		return K_RECVMSG;
	case NR_WRITE:
		return K_WRITE;
	case NR_SENDTO:
		return K_SENDTO;
	case NR_WRITEV:
		return K_WRITEV;
	case NR_SENDMSG:
		return K_SENDMSG;
	case NR_SENDFILE:
		return K_SENDFILE;
	}
	return K_NONE;
}

/*
 * Syscall tracepoints: exits only.  The arguments are read back from the
 * syscall's saved registers, so no enter hook (and no per-thread map) is
 * needed: every other process's reads and writes cost one target check.
 */
static __always_inline int nr_of(struct trace_event_raw_sys_exit *ctx)
{
	/* the record holds an int __syscall_nr and 4 bytes of padding where
	 * vmlinux.h says long id: only the low 32 bits mean anything */
	return (int)ctx->id;
}

static __always_inline void tp_data_exit(struct trace_event_raw_sys_exit *ctx, const int dir)
{
	__u32 tgid = bpf_get_current_pid_tgid() >> 32;
	struct sys_args a;

	if (ctx->ret <= 0 || !is_target(tgid) || sys_args(current_regs(), &a))
		return;
	sys_exit(dir, tgid, kind_of(nr_of(ctx)), &a, ctx->ret);
}

SEC("tracepoint")
int bs_tp_exit_read(struct trace_event_raw_sys_exit *ctx)
{
	if (hooks_only)
		return 0;
	tp_data_exit(ctx, 0);
	return 0;
}

SEC("tracepoint")
int bs_tp_exit_write(struct trace_event_raw_sys_exit *ctx)
{
	if (hooks_only)
		return 0;
	tp_data_exit(ctx, 1);
	return 0;
}

SEC("tracepoint")
int bs_tp_exit_accept(struct trace_event_raw_sys_exit *ctx)
{
	if (hooks_only)
		return 0;
	on_accept(ctx->ret);
	return 0;
}

/* close and shutdown: after the fact (only the fd number is needed) */
SEC("tracepoint")
int bs_tp_exit_close(struct trace_event_raw_sys_exit *ctx)
{
	struct sys_args a;

	if (hooks_only)
		return 0;
	if (!ctx->ret && is_target(bpf_get_current_pid_tgid() >> 32) &&
	    !sys_args(current_regs(), &a))
		on_close((long)(int)a.a0);
	return 0;
}

SEC("tracepoint")
int bs_tp_exit_connect(struct trace_event_raw_sys_exit *ctx)
{
	struct sys_args a;

	if (hooks_only)
		return 0;
	if (is_target(bpf_get_current_pid_tgid() >> 32) && !sys_args(current_regs(), &a))
		on_connect(ctx->ret, (long)(int)a.a0);
	return 0;
}

SEC("tracepoint")
int bs_tp_exit_listen(struct trace_event_raw_sys_exit *ctx)
{
	struct sys_args a;

	if (hooks_only)
		return 0;
	if (!ctx->ret && auto_slot && !sys_args(current_regs(), &a))
		auto_listen((long)(int)a.a0);
	return 0;
}

SEC("tracepoint")
int bs_tp_exit_shutdown(struct trace_event_raw_sys_exit *ctx)
{
	struct sys_args a;

	if (hooks_only)
		return 0;
	if (!ctx->ret && is_target(bpf_get_current_pid_tgid() >> 32) &&
	    !sys_args(current_regs(), &a))
		on_shutdown((long)(int)a.a0, (long)(int)a.a1);
	return 0;
}

/* ---- memory --------------------------------------------------------------- */

#define NR_MMAP	      9
#define NR_MUNMAP     11
#define NR_BRK	      12
#define NR_MADVISE    28
#define PAGE_ROUND(x) (((x) + 4095) & ~4095ULL)

/*
 * A madvise of the allocator's scavenger thread: calls, bytes and bursts
 * (the first call after BS_BURST_QUIET_NS without one).  Only that thread
 * writes these fields.
 */
static __always_inline void scavenge(__u32 k, __u64 bytes)
{
	__u64 id = bpf_get_current_pid_tgid(), now;
	char comm[BS_COMM_LEN];
	struct bs_loop *l;

	if (bpf_get_current_comm(comm, sizeof(comm)) ||
	    bs_thread_role(comm, (__u32)id, id >> 32) != BS_ROLE_ALLOCATOR)
		return;
	l = bpf_map_lookup_elem(&loop, &k);
	if (!l)
		return;
	now = bpf_ktime_get_ns();
	if (now - l->scav_last > BS_BURST_QUIET_NS)
		l->scav_bursts++;
	l->scav_last = now;
	l->scav_calls++;
	l->scav_bytes += bytes;
}

/* Exit of mmap, munmap, brk or madvise in target slot t. */
static __always_inline void mem_syscall(int t, long nr, const struct sys_args *a, long ret)
{
	__u32 k = (__u32)t;
	struct bs_mem_calls *c;
	struct bs_mem *m;

	c = bpf_map_lookup_elem(&mem_calls, &k);
	if (!c)
		return;
	switch (nr) {
	case NR_MMAP:
		if (ret < 0 && ret > -4096)
			return;
		c->mmap_calls++;
		c->mmap_bytes += PAGE_ROUND(a->a1);
		return;
	case NR_MUNMAP:
		if (ret)
			return;
		c->munmap_calls++;
		c->munmap_bytes += PAGE_ROUND(a->a1);
		return;
	case NR_BRK:
		c->brk_calls++;
		m = bpf_map_lookup_elem(&mem, &k);
		if (!m)
			return;
		/* the first break seen is the baseline (the old one is not in the exit) */
		if (m->brk && (__u64)ret > m->brk)
			c->brk_grow_bytes += (__u64)ret - m->brk;
		else if (m->brk && (__u64)ret < m->brk)
			c->brk_shrink_bytes += m->brk - (__u64)ret;
		m->brk = (__u64)ret;
		return;
	case NR_MADVISE: {
		__u64 adv = a->a2;

		if (ret)
			return;
		if (adv > BS_MADV_OTHER)
			adv = BS_MADV_OTHER;
		adv &= 31; /* for the verifier, which sees the clamp on another copy */
		if (adv < BS_MADV_KINDS) {
			c->madvise_calls[adv]++;
			c->madvise_bytes[adv] += PAGE_ROUND(a->a1);
		}
		scavenge(k, PAGE_ROUND(a->a1));
		return;
	}
	}
}

SEC("tracepoint")
int bs_tp_exit_mem(struct trace_event_raw_sys_exit *ctx)
{
	struct sys_args a;
	int t;

	if (hooks_only)
		return 0;
	t = target_slot(bpf_get_current_pid_tgid() >> 32);
	if (t >= 0 && !sys_args(current_regs(), &a))
		mem_syscall(t, nr_of(ctx), &a, ctx->ret);
	return 0;
}

/*
 * kmem:rss_stat: a resident-memory counter of some mm changed; size is the
 * counter's exact new value.  Events of the target itself (curr) teach the
 * mm_id; others (reclaim, another process touching the mm) match by it.
 */
SEC("tracepoint/kmem/rss_stat")
int bs_rss_stat(struct trace_event_raw_rss_stat *ctx)
{
	int member = ctx->member, t = -1;
	__u32 id = ctx->mm_id, k;
	struct bs_mem *m;
	__u64 total;

	if (hooks_only)
		return 0;
	if (member < 0 || member >= BS_RSS_KINDS)
		return 0;
	if (ctx->curr) {
		t = target_slot(bpf_get_current_pid_tgid() >> 32);
		if (t < 0)
			return 0;
		if (target_mm[t] != id)
			target_mm[t] = id;
	} else {
		for (int i = 0; i < BUNSCOPE_MAX_TARGETS; i++) {
			if (targets[i] && target_mm[i] == id) {
				t = i;
				break;
			}
		}
		if (t < 0)
			return 0;
	}
	k = (__u32)t;
	m = bpf_map_lookup_elem(&mem, &k);
	if (!m)
		return 0;
	m->rss[member] = ctx->size > 0 ? (__u64)ctx->size : 0;
	total = m->rss[BS_RSS_FILE] + m->rss[BS_RSS_ANON] + m->rss[BS_RSS_SHMEM];
	if (total > m->hwm)
		m->hwm = total;
	return 0;
}

/* oom:mark_victim: the OOM killer chose a process. */
SEC("tracepoint/oom/mark_victim")
int bs_oom_victim(struct trace_event_raw_mark_victim *ctx)
{
	struct bs_ev_oom *ev;

	if (hooks_only)
		return 0;
	if (!is_target((__u32)ctx->pid))
		return 0;
	count(BS_CNT_OOM_KILLS);
	ev = bpf_ringbuf_reserve(&events, sizeof(*ev), 0);
	if (!ev) {
		count(BS_CNT_EV_LOST);
		return 0;
	}
	ev->type = BS_EV_OOM;
	ev->pid = (__u32)ctx->pid;
	ev->anon_rss = (__u64)ctx->anon_rss << 10; /* the event has KiB */
	ev->file_rss = (__u64)ctx->file_rss << 10;
	ev->shmem_rss = (__u64)ctx->shmem_rss << 10;
	bpf_ringbuf_submit(ev, 0);
	return 0;
}

/* ---- threads, event loop, GC ---------------------------------------------- */

#define NR_EPOLL_WAIT	232
#define NR_EPOLL_PWAIT	281
#define NR_EPOLL_PWAIT2 441

static const __u64 block_bounds[BS_BLOCK_BOUNDS] = {
	100000ULL,     500000ULL,     1000000ULL,    5000000ULL,     10000000ULL,
	25000000ULL,   50000000ULL,   100000000ULL,  250000000ULL,   500000000ULL,
	1000000000ULL, 2500000000ULL, 5000000000ULL, 10000000000ULL,
};

static const __u64 rq_bounds[BS_RQ_BOUNDS] = {
	10000ULL,    50000ULL,	  100000ULL,	500000ULL,    1000000ULL,    5000000ULL,
	10000000ULL, 50000000ULL, 100000000ULL, 500000000ULL, 1000000000ULL,
};

static __always_inline struct bs_loop *loop_of(int t)
{
	__u32 k = (__u32)t;

	return bpf_map_lookup_elem(&loop, &k);
}

/* The loop state when the current thread is a target's JS thread, else NULL. */
static __always_inline struct bs_loop *js_loop(void)
{
	__u64 id = bpf_get_current_pid_tgid();
	__u32 tgid = id >> 32;

	if ((__u32)id != tgid)
		return NULL;
	int t = target_slot(tgid);

	return t < 0 ? NULL : loop_of(t);
}

/* The JS thread parks in epoll: the stretch since it last returned was busy. */
static __always_inline void epoll_in(struct bs_loop *l)
{
	__u64 now = bpf_ktime_get_ns();

	if (l->epoll_exit && now > l->epoll_exit) {
		__u64 d = now - l->epoll_exit;
		__u32 i = bucket_of(block_bounds, BS_BLOCK_BOUNDS, d);

		l->busy_ns += d;
		if (i < BS_BLOCK_SLOTS)
			l->block[i]++;
	}
	l->epoll_enter = now;
}

/* ... and returns: the wait was idle.  A wait begun before attach is not counted. */
static __always_inline void epoll_out(struct bs_loop *l)
{
	__u64 now = bpf_ktime_get_ns();

	if (l->epoll_enter && now > l->epoll_enter) {
		l->idle_ns += now - l->epoll_enter;
		l->iterations++;
	}
	l->epoll_enter = 0;
	l->epoll_exit = now;
}

SEC("tracepoint")
int bs_tp_enter_epoll(void *ctx __attribute__((unused)))
{
	struct bs_loop *l;

	if (hooks_only)
		return 0;
	l = js_loop();
	if (l)
		epoll_in(l);
	return 0;
}

SEC("tracepoint")
int bs_tp_exit_epoll(void *ctx __attribute__((unused)))
{
	struct bs_loop *l;

	if (hooks_only)
		return 0;
	l = js_loop();
	if (l)
		epoll_out(l);
	return 0;
}

/*
 * The kernel's generic cast kfunc (Linux >= 6.2): loads through its result
 * are inline probe loads, not bpf_probe_read_kernel() calls, which cost
 * ~90 ns each on mitigated CPUs.  This runs on every context switch.
 */
extern void *bpf_rdonly_cast(const void *obj, __u32 btf_id) __ksym;
#define TASK(p)                                             \
	((struct task_struct *)bpf_rdonly_cast((void *)(p), \
					       bpf_core_type_id_kernel(struct task_struct)))

/*
 * A target thread of slot t leaves the CPU: the run goes to its role.  The
 * run's CPU is the scheduler's own: sum_exec_runtime less what it was when
 * the thread was picked (prev_sum_exec_runtime), so a run whose switch-in
 * this CPU did not see (running at attach; or, rarely, not seen here) is
 * still counted.
 */
static __always_inline void run_end(struct bs_oncpu *oc, struct task_struct *prev, int t, __u32 tid,
				    __u32 tgid, __u64 now)
{
	__u32 k = (__u32)t, role = oc->role, now_role;
	__u64 since = oc->since, ran;
	bool seen = since && oc->tid == tid && oc->slot == k;
	char comm[BS_COMM_LEN];
	struct bs_thread_cpu *c;
	struct bs_loop *l;

	oc->since = 0;
	ran = prev->se.sum_exec_runtime - prev->se.prev_sum_exec_runtime;
	/* classes other than fair may not keep prev_sum_exec_runtime: bound it */
	if (seen && ran > now - since + 1000000ULL)
		ran = now - since;
	if (!seen)
		count(BS_CNT_RUN_UNSEEN);
	/* the name now: a new thread names itself during its first run */
	__builtin_memcpy(comm, prev->comm, sizeof(comm));
	now_role = bs_thread_role(comm, tid, tgid);
	c = bpf_map_lookup_elem(&thread_cpu, &k);
	if (c && now_role < BS_ROLES) {
		c->ns[now_role] += ran;
		c->runs[now_role]++;
	}
	/* GC bookkeeping by the role the switch-in counted */
	if (seen && bs_role_is_gc(role) && (l = loop_of(t))) {
		/* the end first: a GC thread that starts after the count drops sees it */
		l->gc_last = now;
		__sync_fetch_and_add(&l->gc_active, -1);
		if (__sync_fetch_and_add(&l->gc_burst_ns, ran) + ran >= BS_GC_BURST_MIN_NS &&
		    __sync_val_compare_and_swap(&l->gc_counted, 0, 1) == 0)
			__sync_fetch_and_add(&l->gc_bursts, 1);
	}
}

/* A target thread gets the CPU. */
static __always_inline void run_start(struct bs_oncpu *oc, struct task_struct *next, int t,
				      __u32 tgid, __u64 now)
{
	char comm[BS_COMM_LEN] = {};
	__u32 k = (__u32)t, tid = next->pid, role;
	struct bs_loop *l;

	__builtin_memcpy(comm, next->comm, sizeof(comm));
	role = bs_thread_role(comm, tid, tgid);
	oc->since = now;
	oc->tid = tid;
	oc->slot = k;
	oc->role = role;
	if (bs_role_is_gc(role) && (l = loop_of(t))) {
		/* the first GC run after a quiet spell starts a burst */
		if (__sync_fetch_and_add(&l->gc_active, 1) <= 0 &&
		    now - l->gc_last > BS_BURST_QUIET_NS) {
			l->gc_burst_ns = 0;
			l->gc_counted = 0;
		}
	}
}

/*
 * The JS thread leaves the CPU: the scheduler has added the wait before this
 * run to its sched_info.run_delay (at switch-in); the growth since its last
 * switch-out is that wait.  Kernels without CONFIG_SCHED_INFO have no figure.
 */
static __always_inline void js_run_delay(int t, struct task_struct *prev)
{
	struct bs_loop *l;
	__u64 rd, d;
	__u32 i;

	if (!bpf_core_field_exists(prev->sched_info) || !(l = loop_of(t)))
		return;
	rd = prev->sched_info.run_delay;
	if (l->run_delay_seen && rd >= l->run_delay) {
		d = rd - l->run_delay;
		i = bucket_of(rq_bounds, BS_RQ_BOUNDS, d);
		l->rq_ns += d;
		if (i < BS_RQ_SLOTS)
			l->rq[i]++;
	}
	l->run_delay = rd;
	l->run_delay_seen = 1;
}

/*
 * sched_switch(preempt, prev, next, ...), host-wide on every context switch:
 * two target checks (prev is the current task) before anything else.
 */
SEC("raw_tracepoint/sched_switch")
int bs_sched_switch(struct bpf_raw_tracepoint_args *ctx)
{
	struct task_struct *prev, *next;
	__u32 ptid, ptgid, ntgid, zero = 0;
	struct bs_oncpu *oc;
	int tp, tn;
	__u64 now;

	if (hooks_only)
		return 0;
	prev = TASK(ctx->args[1]);
	next = TASK(ctx->args[2]);
	ptid = prev->pid;
	ptgid = prev->tgid;
	ntgid = next->tgid;
	tp = target_slot(ptgid);
	tn = target_slot(ntgid);
	if (tp < 0 && tn < 0)
		return 0;
	oc = bpf_map_lookup_elem(&oncpu, &zero);
	if (!oc)
		return 0;
	now = bpf_ktime_get_ns();
	if (tp >= 0) {
		run_end(oc, prev, tp, ptid, ptgid, now);
		if (ptid == ptgid)
			js_run_delay(tp, prev);
	}
	if (tn >= 0)
		run_start(oc, next, tn, ntgid, now);
	return 0;
}

/* ---- --uprobe ------------------------------------------------------------- */

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, BUNSCOPE_MAX_TARGETS *BS_MAX_UPROBES);
	__type(key, __u32);
	__type(value, struct bs_uprobe_val);
} uprobe_stats SEC(".maps");

struct uprobe_key {
	__u64 pid_tgid; /* the calling thread */
	__u64 probe;	/* attach cookie */
};

/* Entry times of calls in progress (a nested call of the same function on the
 * same thread replaces its caller's: the outer latency is then not measured). */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 16384);
	__type(key, struct uprobe_key);
	__type(value, __u64);
} uprobe_start SEC(".maps");

SEC("uprobe")
int bs_uprobe_enter(struct pt_regs *ctx)
{
	struct uprobe_key k = {};
	struct bs_uprobe_val *v;
	__u32 idx;
	__u64 now;

	if (hooks_only)
		return 0;
	k.pid_tgid = bpf_get_current_pid_tgid();
	k.probe = bpf_get_attach_cookie(ctx);
	idx = (__u32)k.probe;
	v = bpf_map_lookup_elem(&uprobe_stats, &idx);
	now = bpf_ktime_get_ns();
	if (!v)
		return 0;
	v->calls++;
	bpf_map_update_elem(&uprobe_start, &k, &now, BPF_ANY);
	return 0;
}

SEC("uretprobe")
int bs_uprobe_return(struct pt_regs *ctx)
{
	static const __u64 bounds[BS_ULAT_BOUNDS] = {
		1000ULL,     10000ULL,	   100000ULL,	  1000000ULL,
		10000000ULL, 100000000ULL, 1000000000ULL, 10000000000ULL,
	};
	struct uprobe_key k = {};
	struct bs_uprobe_val *v;
	__u64 *start, dur;
	__u32 idx, i;

	if (hooks_only)
		return 0;
	k.pid_tgid = bpf_get_current_pid_tgid();
	k.probe = bpf_get_attach_cookie(ctx);
	idx = (__u32)k.probe;
	start = bpf_map_lookup_elem(&uprobe_start, &k);
	if (!start)
		return 0;
	dur = bpf_ktime_get_ns() - *start;
	bpf_map_delete_elem(&uprobe_start, &k);
	v = bpf_map_lookup_elem(&uprobe_stats, &idx);
	if (!v)
		return 0;
	i = bucket_of(bounds, BS_ULAT_BOUNDS, dur);
	if (i < BS_ULAT_SLOTS)
		v->lat[i]++;
	v->lat_sum_ns += dur;
	return 0;
}

/*
 * Raw sys_exit: for kernels without syscall tracepoints.  It runs for every
 * syscall of every process, so the target check comes first; the data
 * handlers of the two directions are separate programs (tail calls) to keep
 * each within the verifier's limits.
 */
struct {
	__uint(type, BPF_MAP_TYPE_PROG_ARRAY);
	__uint(max_entries, 2);
	__type(key, __u32);
	__type(value, __u32);
} raw_exit_progs SEC(".maps");

SEC("raw_tracepoint/sys_exit")
int bs_raw_exit(struct bpf_raw_tracepoint_args *ctx)
{
	long ret = (long)ctx->args[1];
	struct pt_regs *regs;
	struct sys_args a;
	__u32 kind;
	__u64 id;
	long nr;
	int t;

	if (hooks_only)
		return 0;
	id = bpf_get_current_pid_tgid();
	t = target_slot(id >> 32);
	if (t < 0) {
		/* a listen() that may select a process: only while a slot is armed */
		if (auto_slot && !ret && (regs = current_regs()) && regs->orig_ax == NR_LISTEN &&
		    !sys_args(regs, &a))
			auto_listen((long)(int)a.a0);
		return 0;
	}
	/* ctx->args[0] is the same pt_regs, but untrusted: reading through
	 * it would take bpf_probe_read_kernel() */
	regs = current_regs();
	if (!regs)
		return 0;
	nr = regs->orig_ax;
	switch (nr) {
	case NR_ACCEPT:
	case NR_ACCEPT4:
		on_accept(ret);
		return 0;
	case NR_CLOSE:
		if (!ret && !sys_args(regs, &a))
			on_close((long)(int)a.a0);
		return 0;
	case NR_SHUTDOWN:
		if (!ret && !sys_args(regs, &a))
			on_shutdown((long)(int)a.a0, (long)(int)a.a1);
		return 0;
	case NR_CONNECT:
		if (!sys_args(regs, &a))
			on_connect(ret, (long)(int)a.a0);
		return 0;
	case NR_MMAP:
	case NR_MUNMAP:
	case NR_BRK:
	case NR_MADVISE:
		if (!sys_args(regs, &a))
			mem_syscall(t, nr, &a, ret);
		return 0;
	case NR_EPOLL_WAIT:
	case NR_EPOLL_PWAIT:
	case NR_EPOLL_PWAIT2:
		if ((__u32)id == id >> 32) {
			struct bs_loop *l = loop_of(t);

			if (l)
				epoll_out(l);
		}
		return 0;
	}
	kind = kind_of(nr);
	if (kind != K_NONE && ret > 0)
		bpf_tail_call(ctx, &raw_exit_progs, is_read_kind(kind) ? 0 : 1);
	return 0;
}

/* Raw sys_enter, only for the JS thread's epoll entries (the event loop figures). */
SEC("raw_tracepoint/sys_enter")
int bs_raw_enter(struct bpf_raw_tracepoint_args *ctx)
{
	long nr = (long)ctx->args[1];
	struct bs_loop *l;

	if (hooks_only)
		return 0;
	if (nr != NR_EPOLL_PWAIT2 && nr != NR_EPOLL_PWAIT && nr != NR_EPOLL_WAIT)
		return 0;
	l = js_loop();
	if (l)
		epoll_in(l);
	return 0;
}

static __always_inline void raw_data_exit(struct bpf_raw_tracepoint_args *ctx, const int dir)
{
	struct pt_regs *regs = current_regs();
	struct sys_args a;

	if (sys_args(regs, &a))
		return;
	sys_exit(dir, bpf_get_current_pid_tgid() >> 32, kind_of(regs->orig_ax), &a,
		 (long)ctx->args[1]);
}

SEC("raw_tracepoint")
int bs_raw_exit_read(struct bpf_raw_tracepoint_args *ctx)
{
	if (hooks_only)
		return 0;
	raw_data_exit(ctx, 0);
	return 0;
}

SEC("raw_tracepoint")
int bs_raw_exit_write(struct bpf_raw_tracepoint_args *ctx)
{
	if (hooks_only)
		return 0;
	raw_data_exit(ctx, 1);
	return 0;
}

/*
 * Benchmark of the data path, run with BPF_PROG_TEST_RUN by
 * `bunscope bench-parse` (never attached): one request and one response,
 * given as (pointer, length) pairs in the caller's memory, through the same
 * process() as a real syscall, on a connection of tgid 0xffffffff.
 */
SEC("raw_tracepoint")
int bs_bench(struct bpf_raw_tracepoint_args *ctx)
{
	struct bs_conn_key key = { .tgid = 0xffffffff, .fd = 0 };
	struct sys_args a = {};
	struct bs_server_stats *st;
	struct bs_conn *conn;
	__u32 zk = 0;

	conn = bpf_map_lookup_elem(&conns, &key);
	if (!conn) {
		conn = lookup_or_init(&conns, &key, bpf_map_lookup_elem(&conn_zero, &zk));
		if (!conn)
			return 0;
		conn->stats_idx = BS_STATS_SLOTS - 1;
	}
	st = stats_at(conn->stats_idx);
	if (!st)
		return 0;
	a.a1 = ctx->args[0];
	process(conn, st, &a, 0xffffffff, K_RECVFROM, 0, (long)ctx->args[1]);
	a.a1 = ctx->args[2];
	process(conn, st, &a, 0xffffffff, K_SENDTO, 1, (long)ctx->args[3]);
	return 0;
}

/* bench-parse baseline: the cost of a test run itself */
SEC("raw_tracepoint")
int bs_bench_null(struct bpf_raw_tracepoint_args *ctx __attribute__((unused)))
{
	return 0;
}
