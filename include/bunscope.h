/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * bunscope: types shared by the BPF programs and the daemon.
 *
 * Self-contained on purpose: fixed-size types, explicit padding, sizes as
 * #defines.  Include it after vmlinux.h (BPF) or <linux/types.h> (userspace).
 */
#ifndef BUNSCOPE_H
#define BUNSCOPE_H

#define BUNSCOPE_MAX_TARGETS 16 /* processes observed at once */
#define BS_PORT_SLOTS	     8	/* listening ports counted per process */
#define BS_STATS_SLOTS	     (BUNSCOPE_MAX_TARGETS * BS_PORT_SLOTS)
/* after the server slots, one per target slot for its outgoing (client) requests */
#define BS_CLIENT_STATS(t)   (BS_STATS_SLOTS + (t))
#define BS_STATS_ENTRIES     (BS_STATS_SLOTS + BUNSCOPE_MAX_TARGETS)
#define BS_MAX_CLIENT_SERIES 4096    /* http_client_request_duration series */
#define BS_PORT_USED	     0x10000 /* target_ports entry: BS_PORT_USED | port */

/* Histogram layouts.  Bucket i counts values <= bound i; the last slot is +Inf. */
#define BS_DUR_BOUNDS  14 /* 5ms .. 10s, the OTel/Beyla HTTP buckets */
#define BS_DUR_SLOTS   (BS_DUR_BOUNDS + 1)
#define BS_SIZE_BOUNDS 11 /* 0, 64, 256, .. 16 MiB (powers of 4) */
#define BS_SIZE_SLOTS  (BS_SIZE_BOUNDS + 1)

#define BS_LIFE_BOUNDS 10 /* WebSocket lifetime: 0.1 s .. 1 day */
#define BS_LIFE_SLOTS  (BS_LIFE_BOUNDS + 1)

/* Normalised HTTP request methods (OTel semconv set; anything else is _OTHER). */
enum bs_method {
	BS_M_OTHER = 0,
	BS_M_GET,
	BS_M_HEAD,
	BS_M_POST,
	BS_M_PUT,
	BS_M_DELETE,
	BS_M_CONNECT,
	BS_M_OPTIONS,
	BS_M_TRACE,
	BS_M_PATCH,
	BS_M_QUERY,
	BS_M_MAX,
};

/*
 * Why a request or a connection's byte stream was not counted as a request.
 * The first group mirrors the checks of Bun's uWS HttpParser (those requests
 * never reach server.pendingRequests); the rest are bunscope's own.
 */
enum bs_reject {
	BS_REJ_METHOD = 0,	  /* method not in Bun's list (Bun closes silently) */
	BS_REJ_TARGET,		  /* request-target not origin/absolute form (400) */
	BS_REJ_VERSION,		  /* not " HTTP/1.1" or " HTTP/1.0" (505) */
	BS_REJ_HEADER,		  /* malformed field name/value, bare LF (400) */
	BS_REJ_TOO_LARGE,	  /* head > 16 KiB or too many fields (431) */
	BS_REJ_HOST,		  /* HTTP/1.1 without a valid Host (400) */
	BS_REJ_CONTENT_LENGTH,	  /* empty/invalid/conflicting Content-Length (400) */
	BS_REJ_TRANSFER_ENCODING, /* TE with CL, chunked not last, repeated (400) */
	BS_REJ_CHUNKED,		  /* invalid chunk size line (400, request was pending) */
	BS_REJ_TLS,		  /* a TLS record on the plain-HTTP port */
	BS_REJ_GARBAGE,		  /* other bytes that are not HTTP */
	BS_REJ_LATE,		  /* bunscope accepted, Bun answered with its canned error */
	BS_REJ_MAX,
};

/*
 * Per (target, listening port) counters: a BPF_MAP_TYPE_PERCPU_ARRAY of
 * BS_STATS_SLOTS, index target slot * BS_PORT_SLOTS + port slot.  The port
 * of each slot is in the BPF object's target_ports[][] (.bss).
 */
struct bs_server_key {
	__u32 tgid;
	__u16 port; /* host byte order */
	__u16 pad;
};

struct bs_server_stats {
	__u64 started;	 /* heads parsed and accepted */
	__u64 completed; /* last response byte handed to the kernel */
	__u64 aborted;	 /* connection died while the request was pending */
	__u64 unstarted; /* started, then taken back (Bun rejected it: BS_REJ_LATE) */
	__u64 rejected[BS_REJ_MAX];
	__u64 timeouts; /* Bun's canned 408 */
	__u64 conns_opened;
	__u64 conns_closed;
	__u64 bytes_in;	     /* bytes read on server connections */
	__u64 bytes_out;     /* bytes written on server connections */
	__u64 desync;	     /* streams given up on (see bs_desync); never silent */
	__u64 fifo_overflow; /* pipelined requests beyond BS_FIFO_SLOTS shared a slot */
	__u64 agg_full;	     /* completions not aggregated: series map full */
	__u64 events_lost;   /* ring buffer full */
	__u64 ws_errors;     /* WebSocket directions given up (see enum ws_err) */
	__u64 ws_agg_full;   /* WebSocket events not aggregated: ws maps full */
};
/* pending == started - completed - aborted - unstarted */

/*
 * Aggregated completed requests.  The series map (hash) gives each key an
 * index into the agg map (BPF_MAP_TYPE_PERCPU_ARRAY); freed indexes go back
 * through the series_free queue.  Connections cache their last index, so a
 * request like the previous one on its connection needs no hash lookup.
 */
struct bs_agg_key {
	__u32 tgid;
	__u32 route_id; /* from the routes map; see BS_ROUTE_* */
	__u16 port;
	__u16 status;
	__u8 method; /* enum bs_method */
	__u8 pad[3];
};

/*
 * Requests the targets make themselves (an outgoing HTTP/1 connection, their
 * fetch): a BPF_MAP_TYPE_PERCPU_HASH of struct bs_agg_val by upstream, method
 * and status.  No route: the upstream's paths are not the target's routes.
 */
struct bs_cagg_key {
	__u32 tgid;
	__u16 port;   /* the upstream's port, host order */
	__u16 status; /* 0: the connection died before the response */
	__u8 method;  /* enum bs_method */
	__u8 family;  /* AF_INET, AF_INET6 */
	__u8 pad[2];
	__u8 addr[16]; /* the upstream's address; IPv4 in the first 4 bytes */
};

struct bs_agg_val {
	__u64 dur[BS_DUR_SLOTS];
	__u64 dur_sum_ns;
	__u64 req_size[BS_SIZE_SLOTS];
	__u64 req_size_sum;
	__u64 resp_size[BS_SIZE_SLOTS];
	__u64 resp_size_sum;
	__u64 count;
};

/*
 * WebSockets.  Kinds of frames and messages, the opcode label: a data
 * message is text or binary whole, however many frames it took.
 */
enum bs_ws_kind {
	BS_WS_TEXT = 0,
	BS_WS_BINARY,
	BS_WS_PING,
	BS_WS_PONG,
	BS_WS_CLOSE,
	BS_WS_KINDS,
};

/*
 * Per (target, port, upgrade route) WebSocket figures: a
 * BPF_MAP_TYPE_PERCPU_HASH.  The key is the upgrade's, for the connection's
 * whole life.  hash is 0 when the kernel's routes map knew the upgrade path;
 * when it did not yet, route_id is BS_ROUTE_UNRESOLVED and hash names the path
 * (the daemon merges the rows by label).
 */
struct bs_ws_key {
	__u32 tgid;
	__u32 route_id;
	__u64 hash;
	__u16 port;
	__u16 code; /* ws_close map only: BS_WS_CODE_* or the status code */
	__u32 pad;
};

#define BS_WS_CODE_ABNORMAL 0 /* TCP close without a close frame */
#define BS_WS_CODE_INVALID  1 /* a code outside 1000..4999 */

struct bs_ws_val {
	__u64 opened;
	__u64 closed;
	__u64 messages[2][BS_WS_KINDS]; /* [0] in (client to server), [1] out */
	__u64 bytes[2][BS_WS_KINDS];	/* payload bytes */
	__u64 life[BS_LIFE_SLOTS];	/* connection lifetime, closed ones */
	__u64 life_sum_ns;
};

/*
 * Memory of a target (BPF_MAP_TYPE_ARRAY, one element per target slot).
 * The daemon seeds it from /proc/PID/status before the slot is observed;
 * kmem:rss_stat events keep rss[] exact from then on.
 */
#define BS_RSS_FILE  0 /* the kernel's MM_FILEPAGES .. MM_SHMEMPAGES */
#define BS_RSS_ANON  1
#define BS_RSS_SWAP  2
#define BS_RSS_SHMEM 3
#define BS_RSS_KINDS 4

struct bs_mem {
	__u64 rss[BS_RSS_KINDS]; /* bytes (swap: swapped-out bytes) */
	__u64 hwm;		 /* highest file + anon + shmem seen */
	__u64 brk;		 /* the last program break returned by brk() */
};

/* madvise advice values below this are counted by value, the rest as "other" */
#define BS_MADV_KINDS 27
#define BS_MADV_OTHER (BS_MADV_KINDS - 1)

/* Memory syscalls of a target (BPF_MAP_TYPE_PERCPU_ARRAY, one per target slot). */
struct bs_mem_calls {
	__u64 mmap_calls, mmap_bytes;
	__u64 munmap_calls, munmap_bytes;
	__u64 brk_calls, brk_grow_bytes, brk_shrink_bytes;
	__u64 madvise_calls[BS_MADV_KINDS];
	__u64 madvise_bytes[BS_MADV_KINDS];
};

/*
 * --uprobe BINARY:SYMBOL: calls and latency per (target slot, probe), a
 * BPF_MAP_TYPE_PERCPU_ARRAY indexed slot * BS_MAX_UPROBES + probe (the
 * probe's attach cookie).
 */
#define BS_MAX_UPROBES 8
#define BS_ULAT_BOUNDS 8 /* 1 us, 10 us .. 10 s */
#define BS_ULAT_SLOTS  (BS_ULAT_BOUNDS + 1)

struct bs_uprobe_val {
	__u64 calls;		  /* entries */
	__u64 lat[BS_ULAT_SLOTS]; /* entry to return, calls that returned */
	__u64 lat_sum_ns;
};

/*
 * Threads, event loop and GC of a target (sched_switch and the JS thread's
 * epoll calls).  Roles of threads, by name (include/thread_role.h).
 */
enum bs_role {
	BS_ROLE_JS = 0,	      /* the main JS thread: tid == pid */
	BS_ROLE_GC_HELPER,    /* "HeapHelper": parallel GC markers */
	BS_ROLE_GC_COLLECTOR, /* JSC's concurrent collector thread */
	BS_ROLE_ALLOCATOR,    /* "mi-scavenger": mimalloc returning memory */
	BS_ROLE_JIT,	      /* "JITWorker" */
	BS_ROLE_HTTP_CLIENT,  /* "HTTP Client": fetch() */
	BS_ROLE_OTHER,
	BS_ROLES,
};

/*
 * On-CPU time per role (BPF_MAP_TYPE_PERCPU_ARRAY, one per target slot), the
 * scheduler's own figure for each run (se.sum_exec_runtime less
 * prev_sum_exec_runtime at switch-out): the time between the tracepoints
 * also holds the scheduler's own work (idle balancing), which the kernel
 * does not charge to the thread.
 */
struct bs_thread_cpu {
	__u64 ns[BS_ROLES];
	__u64 runs[BS_ROLES]; /* runs (switch-in to switch-out) ended */
};

/*
 * The target thread running on a CPU (BPF_MAP_TYPE_PERCPU_ARRAY of one):
 * the daemon adds the time it has run so far to what thread_cpu holds.
 */
struct bs_oncpu {
	__u64 since; /* switch-in time; 0 when no target thread runs */
	__u32 tid;
	__u32 slot;
	__u32 role;
	__u32 pad;
};

#define BS_BLOCK_BOUNDS	   14 /* event-loop blocks: 100 us .. 10 s */
#define BS_BLOCK_SLOTS	   (BS_BLOCK_BOUNDS + 1)
#define BS_RQ_BOUNDS	   11 /* run-queue delay: 10 us .. 1 s */
#define BS_RQ_SLOTS	   (BS_RQ_BOUNDS + 1)
/*
 * GC threads or the scavenger quiet this long: their next activity starts a
 * new burst.  A GC burst counts once its threads have used BS_GC_BURST_MIN_NS
 * of CPU: JSC's helper threads also wake briefly (tens of microseconds) when
 * no collection runs.
 */
#define BS_BURST_QUIET_NS  20000000ULL
#define BS_GC_BURST_MIN_NS 1000000ULL

/*
 * Event loop and GC of a target (BPF_MAP_TYPE_ARRAY, one per target slot).
 * The epoll and run-queue fields are written only on behalf of the JS
 * thread, which runs on one CPU at a time; the GC fields with atomics.
 * Run-queue delay is the kernel's own (sched_info.run_delay), one sample per
 * run of the JS thread.
 */
struct bs_loop {
	__u64 epoll_enter;	     /* when the JS thread entered epoll; 0: not inside */
	__u64 epoll_exit;	     /* when it last returned from epoll; 0: not yet */
	__u64 busy_ns;		     /* outside epoll, completed stretches */
	__u64 idle_ns;		     /* inside epoll, completed waits */
	__u64 iterations;	     /* epoll returns */
	__u64 block[BS_BLOCK_SLOTS]; /* epoll return to the next epoll entry */
	__u64 run_delay;	     /* its sched_info.run_delay at its last switch-out */
	__u64 run_delay_seen;	     /* run_delay holds a value */
	__u64 rq_ns;
	__u64 rq[BS_RQ_SLOTS];
	__u64 gc_last; /* when the last GC-thread run ended */
	__u64 gc_bursts;
	__u64 gc_burst_ns; /* CPU of the GC threads in the burst under way */
	__s64 gc_active;   /* GC threads on a CPU now */
	__u64 gc_counted;  /* the burst under way was counted */
	__u64 scav_last;   /* the scavenger's last madvise */
	__u64 scav_bursts;
	__u64 scav_calls; /* its successful madvise calls */
	__u64 scav_bytes;
};

/* Route ids: the daemon owns the mapping path hash -> id -> label. */
#define BS_ROUTE_UNRESOLVED 0 /* kernel has not been told yet */
#define BS_ROUTE_OTHER	    1 /* overflow of --max-routes */
#define BS_ROUTE_FIRST	    2

#define BS_PATH_MAX 128 /* bytes of the path (before '?') captured */

/* Ring buffer records. */
enum bs_event_type {
	BS_EV_PATH = 1,	      /* a path hash the routes map did not know */
	BS_EV_COMPLETE = 2,   /* a completed request whose route was still unknown */
	BS_EV_OOM = 3,	      /* the OOM killer picked a target */
	BS_EV_SPAN_START = 4, /* a sampled request's head was parsed (spans ring) */
	BS_EV_SPAN_END = 5,   /* ... its response ended or it was lost (spans ring) */
	BS_EV_TRACESTATE = 6, /* a tracestate field of a request head (spans ring) */
	BS_EV_WS_END = 7,     /* a WebSocket whose upgrade had a span closed (spans ring) */
	BS_EV_ATTACH = 8,     /* a process took the reserved target slot (auto_slot) */
};

/*
 * Attach at exec or listen (--name, --port): the daemon keeps one free target
 * slot armed (auto_slot = slot + 1) with the selectors below; the first
 * process to match takes it in the kernel, before it can accept a
 * connection, and the daemon adopts it.
 */
#define BS_AUTO_MAX    16 /* names, and ports, matched in the kernel */
#define BS_AUTO_EXEC   1  /* bs_ev_attach.how: its exec matched a name */
#define BS_AUTO_LISTEN 2  /* ... its listen() matched a name or a port */

/* only a wakeup: the daemon reads who took the slot, and how, from the .bss */
struct bs_ev_attach {
	__u32 type; /* BS_EV_ATTACH */
};

struct bs_ev_oom {
	__u32 type; /* BS_EV_OOM */
	__u32 pid;
	__u64 anon_rss; /* bytes, as the OOM killer saw them */
	__u64 file_rss;
	__u64 shmem_rss;
};

struct bs_ev_path {
	__u32 type;	/* BS_EV_PATH */
	__u16 len;	/* bytes in path[] */
	__u8 truncated; /* the path was longer than BS_PATH_MAX */
	__u8 pad;
	__u64 hash;
	char path[BS_PATH_MAX];
};

struct bs_ev_complete {
	__u32 type; /* BS_EV_COMPLETE */
	__u32 tgid;
	__u64 hash; /* path hash; the matching BS_EV_PATH came first */
	__u64 dur_ns;
	__u64 req_body;
	__u64 resp_body;
	__u16 port;
	__u16 status;
	__u8 method;
	__u8 pad[3];
};

/*
 * Traces.  The kernel decides sampling when a request head has been parsed
 * (parent-based on an incoming traceparent, else a ratio), applies the
 * spans-per-second cap, and writes span records to their own ring buffer;
 * the daemon joins start and end by (tgid, fd, conn, seq).
 */
#define BS_TRACE_TARGET_MAX 256 /* request-target bytes kept for a span */
#define BS_TRACESTATE_MAX   512 /* W3C: tracestate is at most 512 characters */
/* client spans: the Host header the observed app sent, kept after the
 * request-target when that leaves room (tlen <= BS_TRACE_TARGET_MAX -
 * BS_TRACE_HOST_MAX) */
#define BS_TRACE_HOST_MAX   64

/* OTEL_TRACES_SAMPLER values */
enum bs_sampler {
	BS_SAMPLER_ALWAYS_ON = 0,
	BS_SAMPLER_ALWAYS_OFF,
	BS_SAMPLER_RATIO,	 /* traceidratio */
	BS_SAMPLER_PB_ALWAYS_ON, /* parentbased_always_on (the default) */
	BS_SAMPLER_PB_ALWAYS_OFF,
	BS_SAMPLER_PB_RATIO, /* parentbased_traceidratio */
};

/* bs_ev_span_start.flags */
#define BS_SPAN_F_PARENT 0x01 /* a valid traceparent came with the request */
#define BS_SPAN_F_TP_BAD 0x02 /* a traceparent came, invalid or repeated: ignored */
#define BS_SPAN_F_TTRUNC 0x04 /* the target was longer than BS_TRACE_TARGET_MAX */
#define BS_SPAN_F_CLIENT 0x08 /* a request the target made (peer: the upstream) */

struct bs_ev_span_start {
	__u32 type; /* BS_EV_SPAN_START */
	__u32 tgid;
	__u32 fd;
	__u32 seq;	/* the request's number on its connection */
	__u64 conn;	/* the connection's accept time: fds are reused */
	__u64 start_ns; /* bpf_ktime_get_ns(): when the head was parsed */
	__u16 port;	/* local (listening) port; BS_SPAN_F_CLIENT: the peer's */
	__u16 peer_port;
	__u8 family;   /* AF_INET, AF_INET6, AF_UNIX */
	__u8 method;   /* enum bs_method */
	__u8 flags;    /* BS_SPAN_F_* */
	__u8 tp_flags; /* the incoming trace-flags */
	__u16 tlen;    /* bytes in target[] */
	__u16 plen;    /* of which the path (before '?') */
	__u8 hlen;     /* client: target[tlen, tlen + hlen) is the Host sent */
	__u8 pad[3];
	__u8 peer[16];	   /* IPv4 in the first 4 bytes, network order */
	__u8 trace_id[16]; /* the incoming trace (BS_SPAN_F_PARENT); client: the */
	__u8 parent_id[8]; /* traceparent the target sent, its span is parent_id */
	char target[BS_TRACE_TARGET_MAX];
};

enum bs_span_how {
	BS_SPAN_DONE = 0, /* the last response byte was handed to the kernel */
	BS_SPAN_ABORT,	  /* the connection died first */
	BS_SPAN_UNSTART,  /* Bun refused the head (its canned error): no request */
};

struct bs_ev_span_end {
	__u32 type; /* BS_EV_SPAN_END */
	__u32 tgid;
	__u32 fd;
	__u32 seq; /* the first request this ends ... */
	__u64 conn;
	__u64 end_ns;
	__u64 req_body;
	__u64 resp_body;
	__u32 count;  /* ... and how many (pipelined twins aborted together) */
	__u16 status; /* BS_SPAN_DONE: the response status */
	__u8 how;     /* enum bs_span_how */
	__u8 pad;
};

struct bs_ev_tracestate {
	__u32 type; /* BS_EV_TRACESTATE */
	__u32 tgid;
	__u32 fd;
	__u32 seq; /* the request whose head holds it */
	__u64 conn;
	__u16 len;
	__u8 pad[6];
	char value[BS_TRACESTATE_MAX];
};

/* A traced WebSocket connection ended: its span, child of the upgrade's. */
struct bs_ev_ws_end {
	__u32 type; /* BS_EV_WS_END */
	__u32 tgid;
	__u32 fd;
	__u32 seq; /* the upgrade request's number */
	__u64 conn;
	__u64 open_ns;	  /* the 101 handed to the kernel */
	__u64 end_ns;	  /* the connection closed */
	__u64 msgs[2];	  /* data messages, [0] in (client to server), [1] out */
	__u64 bytes[2];	  /* their payload bytes */
	__u16 close_code; /* the first close frame's code, 0: none (abnormal) */
	__u8 pad[6];
};

/* Connection-map occupancy is tracked with these per-CPU counters (index). */
enum bs_counter {
	BS_CNT_CONN_INSERT = 0,
	BS_CNT_CONN_DELETE,
	BS_CNT_CONN_FULL,      /* accept not tracked: connection map full */
	BS_CNT_EV_LOST,	       /* ring buffer reservations that failed */
	BS_CNT_ROUTE_MISS,     /* completions aggregated by the daemon */
	BS_CNT_PORTS_FULL,     /* accept on a (BS_PORT_SLOTS + 1)th port: not followed */
	BS_CNT_OOM_KILLS,      /* targets the OOM killer picked */
	BS_CNT_RUN_UNSEEN,     /* runs of target threads whose switch-in was not seen */
	BS_CNT_SPAN_SAMPLED,   /* requests given a span (start records written) */
	BS_CNT_SPAN_UNSAMPLED, /* requests the sampler left out */
	BS_CNT_SPAN_CAPPED,    /* sampled, over the spans-per-second cap: no span */
	BS_CNT_SPAN_LOST,      /* span records the spans ring buffer had no room for */
	BS_CNT_MAX,
};

#endif /* BUNSCOPE_H */
