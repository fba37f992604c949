/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * traces.h: spans, as the daemon builds them from the kernel's span records
 * (user/traces.c), and the exporters that ship them (user/export.c).
 *
 * Data path:
 *   BPF (head parsed, sampled)  -> BS_EV_SPAN_START   \
 *   BPF (response done/aborted) -> BS_EV_SPAN_END      > spans ring buffer
 *   BPF (tracestate field)      -> BS_EV_TRACESTATE   /
 *   traces.c: join start and end -> struct span -> tracer_submit()
 *   export.c: one bounded queue and one thread per exporter (OTLP/HTTP JSON,
 *   Zipkin v2 JSON, JSONL file, console); a full queue drops its oldest span.
 *
 * A span is a fixed-size value: queues hold copies, nothing is shared.
 */
#ifndef BUNSCOPE_TRACES_H
#define BUNSCOPE_TRACES_H

#include <stdbool.h>
#include <stddef.h>
#include <linux/types.h>

#include "bunscope.h"

#define SPAN_ROUTE_MAX	    161				  /* routes.h's ROUTES_LABEL_MAX + NUL */
#define SPAN_TARGET_MAX	    (BS_TRACE_TARGET_MAX * 4 + 1) /* escaped for display */
#define SPAN_TRACESTATE_MAX 513				  /* W3C: at most 512 characters */
#define SPAN_SERVICE_MAX    64
#define SPAN_MSG_MAX	    64

enum span_kind {
	SPAN_KIND_SERVER = 2, /* the OTLP enum values */
	SPAN_KIND_CLIENT = 3,
};

enum span_status {
	SPAN_STATUS_UNSET = 0,
	SPAN_STATUS_OK = 1,
	SPAN_STATUS_ERROR = 2,
};

struct span {
	__u8 trace_id[16];
	__u8 span_id[8];
	__u8 parent_id[8];   /* all zero: a root span */
	__u8 kind;	     /* enum span_kind */
	__u8 status;	     /* enum span_status */
	__u8 trace_flags;    /* W3C flags (bit 0: sampled, always set here) */
	__u8 ws;	     /* a WebSocket connection's life (a child of its upgrade) */
	__u64 start_unix_ns; /* wall clock */
	__u64 end_unix_ns;
	__u32 pid;	   /* the target process (the resource's process.pid) */
	__u16 http_status; /* 0: no response (the connection died first) */
	__u16 server_port; /* local port (server spans) or the peer's (client) */
	__u16 peer_port;
	__u16 ws_close;	   /* ws: the close frame's code, 0: closed without one */
	__u64 ws_msgs[2];  /* ws: data messages, [0] received, [1] sent */
	__u64 ws_bytes[2]; /* ws: their payload bytes */
	__u64 req_body;	   /* http.request.body.size */
	__u64 resp_body;   /* http.response.body.size */
	/* the strings: method first (fixed fields end there), short ones
	 * before long ones so that a copy up to each NUL touches few lines;
	 * export.c's span_copy() names each one */
	char method[16];		  /* http.request.method ("_OTHER" if not a known one) */
	char peer_addr[48];		  /* client.address / server.address, text */
	char host[BS_TRACE_HOST_MAX + 1]; /* client spans: the Host header the app
					   * sent (printable ASCII), "" if none */
	char service[SPAN_SERVICE_MAX];	  /* service.name of the resource */
	char status_msg[SPAN_MSG_MAX];	  /* status description for errors, "" if none */
	char route[SPAN_ROUTE_MAX];	  /* http.route ("" if none) */
	char target[SPAN_TARGET_MAX];	  /* url.path (and ?query with --traces-query),
					   * printable ASCII, other bytes %XX-escaped */
	char tracestate[SPAN_TRACESTATE_MAX]; /* incoming W3C tracestate, "" if none */
};

/* ---- the collector (traces.c) --------------------------------------------------- */

struct traces_cfg {
	const char *service;	       /* service.name; NULL: the target's comm */
	unsigned int pending_max;      /* sampled requests awaiting their end (default 16384) */
	unsigned long long max_age_ns; /* a span without an end this old is dropped */
};

/* Daemon-side figures; the kernel's own are in its counters map. */
struct traces_stats {
	unsigned long long built;		 /* spans handed to the exporters */
	unsigned long long pending;		 /* awaiting their end now (gauge) */
	unsigned long long dropped_pending_full; /* no room to wait for the end */
	unsigned long long dropped_incomplete;	 /* no end came (target gone, too old) */
};

struct app;
struct traces;
struct tracer;

/* Reads the spans ring buffer (fd) on its own thread and feeds tracer. */
struct traces *traces_start(struct app *a, int spans_fd, const struct traces_cfg *cfg,
			    struct tracer *tracer, char *err, size_t errlen);
void traces_stop(struct traces *t);
void traces_get_stats(struct traces *t, struct traces_stats *st);
/* A target exited: its spans still waiting will never end (dropped, counted). */
void traces_forget_tgid(struct traces *t, __u32 tgid);

/* ---- exporters (export.c) ----------------------------------------------------- */

struct tracer_cfg {
	const char *otlp_url;		   /* full URL of the OTLP/HTTP traces endpoint, or NULL */
	const char *otlp_headers;	   /* "k1=v1,k2=v2" (OTEL_EXPORTER_OTLP_HEADERS), or NULL */
	bool otlp_gzip;			   /* Content-Encoding: gzip (default on) */
	const char *zipkin_url;		   /* Zipkin v2 /api/v2/spans URL, or NULL */
	const char *file_path;		   /* JSONL file, or NULL */
	unsigned long long file_max_bytes; /* rotate above this (default 64 MiB) */
	unsigned int file_keep;		   /* rotated files kept: PATH.1 .. PATH.N (default 3) */
	bool console;			   /* one line per span on stdout */
	unsigned int queue_max;		   /* spans queued per exporter (default 4096) */
	unsigned int batch_max;		   /* spans per POST (default 512) */
	unsigned int batch_ms;		   /* longest a span waits for its batch (default 1000) */
	unsigned int timeout_ms;	   /* HTTP request timeout (default 10000) */
	const char *host_name;		   /* host.name resource attribute */
	const char *version;		   /* telemetry.sdk.version */
};

enum tracer_exporter {
	TRACER_OTLP = 0,
	TRACER_ZIPKIN,
	TRACER_FILE,
	TRACER_CONSOLE,
	TRACER_NEXPORTERS,
};

struct tracer_stats {
	bool on[TRACER_NEXPORTERS];			/* configured */
	unsigned long long exported[TRACER_NEXPORTERS]; /* accepted by the receiver / written */
	unsigned long long dropped_queue[TRACER_NEXPORTERS];	/* oldest dropped, queue full */
	unsigned long long dropped_rejected[TRACER_NEXPORTERS]; /* receiver refused (4xx but 429) */
	unsigned long long errors[TRACER_NEXPORTERS];		/* failed attempts (retried) */
	unsigned long long queued[TRACER_NEXPORTERS];		/* in the queue now (gauge) */
};

struct tracer;

/* NULL with err filled when an exporter cannot be set up (bad URL, file). */
struct tracer *tracer_start(const struct tracer_cfg *cfg, char *err, size_t errlen);
/* Never blocks on I/O: copies s into every exporter's queue. */
void tracer_submit(struct tracer *t, const struct span *s);
/* Flush what is queued, waiting at most deadline_ms, then stop the threads. */
void tracer_stop(struct tracer *t, unsigned int deadline_ms);
void tracer_get_stats(struct tracer *t, struct tracer_stats *st);
const char *tracer_exporter_name(enum tracer_exporter e); /* "otlp", "zipkin", ... */

/* Serializers, pure (unit-tested): append one batch of spans to out. */
struct sbuf;
void otlp_json_batch(struct sbuf *out, const struct span *const *spans, size_t n,
		     const struct tracer_cfg *cfg);
void zipkin_json_batch(struct sbuf *out, const struct span *const *spans, size_t n);
void span_jsonl(struct sbuf *out, const struct span *s);   /* one line, '\n' included */
void span_console(struct sbuf *out, const struct span *s); /* one line, '\n' included */
/* "k1=v1,k2=v2" -> "K1: v1" header lines (OTel spec: values are URL-decoded);
 * returns the number parsed, -1 on a malformed list */
int otlp_parse_headers(const char *spec, char out[][512], int max);

/* ---- configuration (traces_cfg.c) ---------------------------------------------- */

/* What the command line said; unset values come from the OTEL_* environment. */
struct traces_opts {
	const char *otlp_endpoint;   /* --otlp-endpoint (a base URL or .../v1/traces) */
	const char *otlp_headers;    /* --otlp-headers */
	const char *compression;     /* --otlp-compression gzip|none */
	const char *zipkin_url;	     /* --zipkin-endpoint */
	const char *file;	     /* --traces-file */
	const char *sampler;	     /* --traces-sampler (OTEL_TRACES_SAMPLER names) */
	const char *ratio;	     /* --traces-sample RATIO */
	const char *service;	     /* --service-name */
	unsigned long long file_max; /* --traces-file-size (0: default) */
	long max_rate;		     /* --traces-max-rate (-1: default) */
	unsigned int queue;	     /* --traces-queue (0: default) */
	unsigned int ringbuf;	     /* --traces-ringbuf (0: default) */
	bool console;		     /* --traces-console */
	bool query;		     /* --traces-query */
};

#define TRACES_DEFAULT_MAX_RATE 10000 /* spans per second */
#define TRACES_DEFAULT_RINGBUF	(8u << 20)

/* The resolved configuration, with the buffers its strings point into. */
struct traces_setup {
	bool on; /* an exporter is configured */
	struct tracer_cfg tracer;
	struct traces_cfg collector;
	/* for loader_opts.traces */
	bool query;
	__u32 sampler;	/* enum bs_sampler */
	__u64 ratio;	/* threshold of a 32-bit draw; 1 << 32: all */
	__u32 max_rate; /* 0: no cap */
	__u32 ringbuf;
	char otlp_url[1024];
	char sampler_desc[96]; /* e.g. "parentbased_traceidratio 0.1" */
};

/*
 * Combine flags and environment (env: getenv, or a stand-in for tests).
 * 0, or -EINVAL with the reason for the operator in err.
 */
int traces_resolve(const struct traces_opts *o, const char *(*env)(const char *),
		   struct traces_setup *ts, char *err, size_t errlen);

#endif /* BUNSCOPE_TRACES_H */
