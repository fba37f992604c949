// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * export.c: the span exporters of traces.h.  OTLP/HTTP JSON and Zipkin v2
 * JSON over libcurl, a JSONL file with size-based rotation, and the console.
 *
 * Each configured exporter has one bounded queue and one thread.
 * tracer_submit() copies a span into every queue under that queue's mutex
 * and never waits for I/O; the thread takes batches out and ships them.
 *
 * Memory stays bounded whatever the receiver does: a queue holds at most
 * queue_max spans *including* the batch in flight, so the queued gauge is
 * the whole backlog.  While a batch is retried (receiver down for hours)
 * new spans keep arriving and the oldest queued ones are dropped.  A batch
 * is at most half the queue so that the queue keeps room for new spans
 * while one is retried.
 *
 * All text in a span was seen on the wire: every serializer escapes it
 * (JSON: expo.h's json_string(); console: \xNN for anything that is not
 * printable ASCII), and string fields are read with strnlen() so that a
 * span without a terminating NUL cannot make us read past it.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/stat.h>
#include <curl/curl.h>

#include "bunscope.h"
#include "expo.h"
#include "log.h"
#include "traces.h"

#define DEF_QUEUE_MAX  4096
#define DEF_BATCH_MAX  512
#define DEF_BATCH_MS   1000
#define DEF_TIMEOUT_MS 10000
#define DEF_FILE_MAX   (64ULL << 20)
#define DEF_FILE_KEEP  3

#define BACKOFF_FIRST_MS 250
#define BACKOFF_CAP_MS	 5000
#define HEADERS_MAX	 32
#define RESP_MAX	 1024 /* response body kept for messages */
#define NSEC_PER_MSEC	 1000000ULL

#define ATTRS_MAX 16

static const char *const exporter_names[TRACER_NEXPORTERS] = {
	[TRACER_OTLP] = "otlp",
	[TRACER_ZIPKIN] = "zipkin",
	[TRACER_FILE] = "file",
	[TRACER_CONSOLE] = "console",
};

const char *tracer_exporter_name(enum tracer_exporter e)
{
	if ((unsigned int)e >= TRACER_NEXPORTERS)
		return "?";
	return exporter_names[e];
}

/* ---- span fields as attributes ------------------------------------------ */

/* the bytes of a fixed-size char field, up to its NUL or its end */
#define FLD(f) (f), strnlen((f), sizeof(f))

enum attr_type {
	ATTR_STR,
	ATTR_INT,
};

struct attr {
	const char *key;
	enum attr_type type;
	const char *s; /* ATTR_STR: s[0..n), not NUL-terminated */
	size_t n;
	unsigned long long i; /* ATTR_INT */
};

/*
 * The semantic-convention attributes of one span, computed once and then
 * written in each format, so that OTLP, Zipkin and JSONL always agree.
 */
struct span_view {
	struct attr a[ATTRS_MAX];
	int na;
	char name[sizeof(((struct span *)0)->method) + 1 + SPAN_ROUTE_MAX];
	size_t name_len;
	char error_type[8];
	/* http://[addr]:port or http://host + target, for client spans */
	char url_full[sizeof("http://[]:65535") + 48 + BS_TRACE_HOST_MAX + SPAN_TARGET_MAX];
};

static void add_str(struct span_view *v, const char *key, const char *s, size_t n)
{
	v->a[v->na++] = (struct attr){ .key = key, .type = ATTR_STR, .s = s, .n = n };
}

static void add_int(struct span_view *v, const char *key, unsigned long long i)
{
	v->a[v->na++] = (struct attr){ .key = key, .type = ATTR_INT, .i = i };
}

static bool is_zero(const __u8 *b, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++)
		if (b[i])
			return false;
	return true;
}

/*
 * The host of a Host value, without its port: "[::1]:80" -> "::1",
 * "example.com:8080" -> "example.com"; a value it cannot split is whole.
 */
static const char *host_name(const char *h, size_t n, size_t *len)
{
	const char *colon = memchr(h, ':', n);
	const char *close;

	if (n > 1 && h[0] == '[') {
		close = memchr(h, ']', n);
		if (close && close > h + 1 && (close + 1 == h + n || close[1] == ':')) {
			*len = (size_t)(close - h - 1);
			return h + 1;
		}
	} else if (colon && colon > h && !memchr(colon + 1, ':', n - (size_t)(colon - h) - 1)) {
		*len = (size_t)(colon - h);
		return h;
	}
	*len = n;
	return h;
}

static void span_view_init(struct span_view *v, const struct span *s)
{
	size_t mlen = strnlen(s->method, sizeof(s->method));
	size_t rlen = strnlen(s->route, sizeof(s->route));
	size_t tlen = strnlen(s->target, sizeof(s->target));
	size_t plen = strnlen(s->peer_addr, sizeof(s->peer_addr));
	size_t hlen = strnlen(s->host, sizeof(s->host));
	const char *q = memchr(s->target, '?', tlen);
	bool v6 = memchr(s->peer_addr, ':', plen) != NULL;
	int k;

	v->na = 0;
	if (s->ws) {
		memcpy(v->name, "WebSocket", 9);
		v->name_len = 9;
	} else {
		memcpy(v->name, s->method, mlen);
		v->name_len = mlen;
	}
	if (rlen) {
		v->name[v->name_len++] = ' ';
		memcpy(v->name + v->name_len, s->route, rlen);
		v->name_len += rlen;
	}

	add_str(v, "http.request.method", s->method, mlen);
	if (rlen)
		add_str(v, "http.route", s->route, rlen);
	add_str(v, "url.path", s->target, q ? (size_t)(q - s->target) : tlen);
	if (q)
		add_str(v, "url.query", q + 1, tlen - (q - s->target) - 1);
	add_str(v, "url.scheme", "http", 4);
	if (s->http_status)
		add_int(v, "http.response.status_code", s->http_status);
	if (s->kind == SPAN_KIND_CLIENT) {
		/* named by the Host the app sent, else by the address it connected to */
		if (hlen) {
			size_t nlen;
			const char *name = host_name(s->host, hlen, &nlen);

			add_str(v, "server.address", name, nlen);
			if (plen)
				add_str(v, "network.peer.address", s->peer_addr, plen);
			if (s->peer_port)
				add_int(v, "network.peer.port", s->peer_port);
			k = snprintf(v->url_full, sizeof(v->url_full), "http://%.*s", (int)hlen,
				     s->host);
		} else {
			if (plen)
				add_str(v, "server.address", s->peer_addr, plen);
			k = snprintf(v->url_full, sizeof(v->url_full), "http://%s%.*s%s",
				     v6 ? "[" : "", (int)plen, s->peer_addr, v6 ? "]" : "");
			if (s->peer_port)
				k += snprintf(v->url_full + k, sizeof(v->url_full) - k, ":%u",
					      s->peer_port);
		}
		if (s->peer_port)
			add_int(v, "server.port", s->peer_port);
		/* url.full is the one URL attribute HTTP client spans require */
		snprintf(v->url_full + k, sizeof(v->url_full) - k, "%.*s", (int)tlen, s->target);
		if (hlen || plen)
			add_str(v, "url.full", v->url_full, strlen(v->url_full));
	} else {
		if (plen)
			add_str(v, "client.address", s->peer_addr, plen);
		if (s->peer_port)
			add_int(v, "client.port", s->peer_port);
		if (s->server_port)
			add_int(v, "server.port", s->server_port);
	}
	if (s->ws) {
		/* no semantic conventions for WebSockets yet: plain names */
		add_int(v, "websocket.messages.received", s->ws_msgs[0]);
		add_int(v, "websocket.messages.sent", s->ws_msgs[1]);
		add_int(v, "websocket.bytes.received", s->ws_bytes[0]);
		add_int(v, "websocket.bytes.sent", s->ws_bytes[1]);
		if (s->ws_close)
			add_int(v, "websocket.close_code", s->ws_close);
		else
			add_str(v, "websocket.close", "abnormal", 8);
	} else {
		add_int(v, "http.request.body.size", s->req_body);
		add_int(v, "http.response.body.size", s->resp_body);
	}
	/* semconv: the status code, or _OTHER when there was no response */
	if (s->status == SPAN_STATUS_ERROR) {
		if (s->http_status)
			snprintf(v->error_type, sizeof(v->error_type), "%u", s->http_status);
		else
			strcpy(v->error_type, "_OTHER");
		add_str(v, "error.type", v->error_type, strlen(v->error_type));
	}
}

/* ---- small writers ---------------------------------------------------------- */

static void put_hex(struct sbuf *sb, const __u8 *b, size_t n)
{
	static const char digits[] = "0123456789abcdef";
	char tmp[32];
	size_t i;

	for (i = 0; i < n && i < sizeof(tmp) / 2; i++) {
		tmp[2 * i] = digits[b[i] >> 4];
		tmp[2 * i + 1] = digits[b[i] & 15];
	}
	sbuf_put(sb, tmp, 2 * i);
}

static void put_hex_string(struct sbuf *sb, const __u8 *b, size_t n)
{
	sbuf_put(sb, "\"", 1);
	put_hex(sb, b, n);
	sbuf_put(sb, "\"", 1);
}

static void json_cstr(struct sbuf *sb, const char *s)
{
	json_string(sb, s, strlen(s));
}

/* "key": one of our own attribute or member names, which need no escaping */
static void json_key(struct sbuf *sb, const char *key)
{
	sbuf_put(sb, "\"", 1);
	sbuf_puts(sb, key);
	sbuf_put(sb, "\"", 1);
}

/* a decimal integer in quotes (64-bit integers in OTLP JSON, Zipkin tags) */
static void put_u64_string(struct sbuf *sb, unsigned long long v)
{
	sbuf_put(sb, "\"", 1);
	sbuf_put_u64(sb, v);
	sbuf_put(sb, "\"", 1);
}

static const char *service_of(const struct span *s, size_t *n)
{
	*n = strnlen(s->service, sizeof(s->service));
	if (*n)
		return s->service;
	/* the OTel default when a process has no name */
	*n = strlen("unknown_service");
	return "unknown_service";
}

static unsigned long long duration_ns(const struct span *s)
{
	/* the wall clock may step backwards between start and end */
	return s->end_unix_ns > s->start_unix_ns ? s->end_unix_ns - s->start_unix_ns : 0;
}

/* ---- OTLP/HTTP JSON ---------------------------------------------------------- */

static void otlp_kv_str(struct sbuf *sb, const char *key, const char *s, size_t n)
{
	sbuf_puts(sb, "{\"key\":");
	json_key(sb, key);
	sbuf_puts(sb, ",\"value\":{\"stringValue\":");
	json_string(sb, s, n);
	sbuf_puts(sb, "}}");
}

/* OTLP JSON writes 64-bit integers as strings (the protobuf JSON mapping) */
static void otlp_kv_int(struct sbuf *sb, const char *key, unsigned long long i)
{
	sbuf_puts(sb, "{\"key\":");
	json_key(sb, key);
	sbuf_puts(sb, ",\"value\":{\"intValue\":");
	put_u64_string(sb, i);
	sbuf_puts(sb, "}}");
}

/* '{"traceId":"..","<span>":".."' and the parent's id unless a root span */
static void put_ids(struct sbuf *sb, const struct span *s, const char *span_key,
		    const char *parent_key)
{
	sbuf_puts(sb, "{\"traceId\":");
	put_hex_string(sb, s->trace_id, sizeof(s->trace_id));
	sbuf_put(sb, ",", 1);
	json_key(sb, span_key);
	sbuf_put(sb, ":", 1);
	put_hex_string(sb, s->span_id, sizeof(s->span_id));
	if (!is_zero(s->parent_id, sizeof(s->parent_id))) {
		sbuf_put(sb, ",", 1);
		json_key(sb, parent_key);
		sbuf_put(sb, ":", 1);
		put_hex_string(sb, s->parent_id, sizeof(s->parent_id));
	}
}

static void otlp_span(struct sbuf *sb, const struct span *s)
{
	size_t tslen = strnlen(s->tracestate, sizeof(s->tracestate));
	size_t mlen = strnlen(s->status_msg, sizeof(s->status_msg));
	struct span_view v;
	int i;

	span_view_init(&v, s);
	put_ids(sb, s, "spanId", "parentSpanId");
	if (tslen) {
		sbuf_puts(sb, ",\"traceState\":");
		json_string(sb, s->tracestate, tslen);
	}
	sbuf_puts(sb, ",\"name\":");
	json_string(sb, v.name, v.name_len);
	sbuf_puts(sb, ",\"kind\":");
	sbuf_put_u64(sb, s->kind);
	sbuf_puts(sb, ",\"startTimeUnixNano\":");
	put_u64_string(sb, s->start_unix_ns);
	sbuf_puts(sb, ",\"endTimeUnixNano\":");
	put_u64_string(sb, s->end_unix_ns);
	sbuf_puts(sb, ",\"attributes\":[");
	for (i = 0; i < v.na; i++) {
		if (i)
			sbuf_put(sb, ",", 1);
		if (v.a[i].type == ATTR_INT)
			otlp_kv_int(sb, v.a[i].key, v.a[i].i);
		else
			otlp_kv_str(sb, v.a[i].key, v.a[i].s, v.a[i].n);
	}
	sbuf_put(sb, "]", 1);
	if (s->status == SPAN_STATUS_ERROR) {
		sbuf_puts(sb, ",\"status\":{\"code\":2");
		if (mlen) {
			sbuf_puts(sb, ",\"message\":");
			json_string(sb, s->status_msg, mlen);
		}
		sbuf_put(sb, "}", 1);
	} else if (s->status == SPAN_STATUS_OK) {
		sbuf_puts(sb, ",\"status\":{\"code\":1}");
	}
	sbuf_put(sb, "}", 1);
}

static void otlp_resource(struct sbuf *sb, const struct span *s, const struct tracer_cfg *cfg)
{
	const char *svc;
	size_t n;

	svc = service_of(s, &n);
	sbuf_puts(sb, "{\"resource\":{\"attributes\":[");
	otlp_kv_str(sb, "service.name", svc, n);
	if (cfg && cfg->host_name) {
		sbuf_put(sb, ",", 1);
		otlp_kv_str(sb, "host.name", cfg->host_name, strlen(cfg->host_name));
	}
	sbuf_put(sb, ",", 1);
	otlp_kv_int(sb, "process.pid", s->pid);
	/* no telemetry.sdk.language: bunscope is not an SDK in the process */
	sbuf_put(sb, ",", 1);
	otlp_kv_str(sb, "telemetry.sdk.name", "bunscope", 8);
	if (cfg && cfg->version) {
		sbuf_put(sb, ",", 1);
		otlp_kv_str(sb, "telemetry.sdk.version", cfg->version, strlen(cfg->version));
	}
	sbuf_puts(sb, "]},\"scopeSpans\":[{\"scope\":{\"name\":\"bunscope\"");
	if (cfg && cfg->version) {
		sbuf_puts(sb, ",\"version\":");
		json_cstr(sb, cfg->version);
	}
	sbuf_puts(sb, "},\"spans\":[");
}

static bool same_resource(const struct span *a, const struct span *b)
{
	return a->pid == b->pid && !strncmp(a->service, b->service, sizeof(a->service));
}

/* order by resource (pid, service), keeping the submission order inside one */
static int cmp_resource(const void *pa, const void *pb, void *arg)
{
	const struct span *const *spans = arg;
	size_t ia = *(const size_t *)pa, ib = *(const size_t *)pb;
	const struct span *a = spans[ia], *b = spans[ib];
	int c;

	if (a->pid != b->pid)
		return a->pid < b->pid ? -1 : 1;
	c = strncmp(a->service, b->service, sizeof(a->service));
	if (c)
		return c;
	return ia < ib ? -1 : ia > ib;
}

void otlp_json_batch(struct sbuf *out, const struct span *const *spans, size_t n,
		     const struct tracer_cfg *cfg)
{
	const struct span *prev = NULL;
	size_t *idx, i;

	idx = n ? malloc(n * sizeof(*idx)) : NULL;
	if (n && !idx) {
		out->oom = 1;
		return;
	}
	for (i = 0; i < n; i++)
		idx[i] = i;
	/* a sort, not a scan per resource: batch_max may be large */
	if (n > 1)
		qsort_r(idx, n, sizeof(*idx), cmp_resource, (void *)spans);

	sbuf_puts(out, "{\"resourceSpans\":[");
	for (i = 0; i < n; i++) {
		const struct span *s = spans[idx[i]];

		if (!prev || !same_resource(prev, s)) {
			if (prev)
				sbuf_puts(out, "]}]},");
			otlp_resource(out, s, cfg);
		} else {
			sbuf_put(out, ",", 1);
		}
		otlp_span(out, s);
		prev = s;
	}
	if (prev)
		sbuf_puts(out, "]}]}");
	sbuf_puts(out, "]}");
	free(idx);
}

/* ---- Zipkin v2 JSON ----------------------------------------------------------- */

/*
 * Zipkin checks endpoint addresses and refuses the whole POST for one it
 * cannot parse, so only addresses inet_pton() accepts are sent; an IPv4
 * mapped IPv6 address is sent as the IPv4 one it carries.
 */
static void zipkin_remote(struct sbuf *sb, const char *addr, size_t n, __u16 port)
{
	char buf[INET6_ADDRSTRLEN];
	struct in6_addr a6;
	struct in_addr a4;
	bool ip = false;

	sbuf_puts(sb, ",\"remoteEndpoint\":{");
	if (n && n < sizeof(buf)) {
		memcpy(buf, addr, n);
		buf[n] = '\0';
		if (inet_pton(AF_INET, buf, &a4) == 1) {
			sbuf_printf(sb, "\"ipv4\":\"%s\"", buf);
			ip = true;
		} else if (inet_pton(AF_INET6, buf, &a6) == 1) {
			if (IN6_IS_ADDR_V4MAPPED(&a6)) {
				inet_ntop(AF_INET, &a6.s6_addr[12], buf, sizeof(buf));
				sbuf_printf(sb, "\"ipv4\":\"%s\"", buf);
			} else {
				inet_ntop(AF_INET6, &a6, buf, sizeof(buf));
				sbuf_printf(sb, "\"ipv6\":\"%s\"", buf);
			}
			ip = true;
		}
	}
	if (port)
		sbuf_printf(sb, "%s\"port\":%u", ip ? "," : "", port);
	sbuf_put(sb, "}", 1);
}

/* "key":value,... of a view's attributes (Zipkin tags: integers as strings) */
static void put_attr_members(struct sbuf *sb, const struct span_view *v, bool int_strings)
{
	for (int i = 0; i < v->na; i++) {
		if (i)
			sbuf_put(sb, ",", 1);
		json_key(sb, v->a[i].key);
		sbuf_put(sb, ":", 1);
		if (v->a[i].type == ATTR_INT && int_strings)
			put_u64_string(sb, v->a[i].i);
		else if (v->a[i].type == ATTR_INT)
			sbuf_put_u64(sb, v->a[i].i);
		else
			json_string(sb, v->a[i].s, v->a[i].n);
	}
}

static void zipkin_span(struct sbuf *sb, const struct span *s)
{
	size_t mlen = strnlen(s->status_msg, sizeof(s->status_msg));
	size_t svclen, plen = strnlen(s->peer_addr, sizeof(s->peer_addr));
	const char *svc = service_of(s, &svclen);
	unsigned long long dur;
	struct span_view v;

	span_view_init(&v, s);
	put_ids(sb, s, "id", "parentId");
	sbuf_puts(sb, s->kind == SPAN_KIND_CLIENT ? ",\"kind\":\"CLIENT\",\"name\":"
						  : ",\"kind\":\"SERVER\",\"name\":");
	json_string(sb, v.name, v.name_len);
	/* Zipkin wants microseconds and a duration of at least 1 */
	dur = duration_ns(s) / 1000;
	sbuf_puts(sb, ",\"timestamp\":");
	sbuf_put_u64(sb, s->start_unix_ns / 1000);
	sbuf_puts(sb, ",\"duration\":");
	sbuf_put_u64(sb, dur ? dur : 1);

	sbuf_puts(sb, ",\"localEndpoint\":{\"serviceName\":");
	json_string(sb, svc, svclen);
	if (s->kind != SPAN_KIND_CLIENT && s->server_port) {
		sbuf_puts(sb, ",\"port\":");
		sbuf_put_u64(sb, s->server_port);
	}
	sbuf_put(sb, "}", 1);
	if (plen || s->peer_port)
		zipkin_remote(sb, s->peer_addr, plen, s->peer_port);

	/* tags are strings only */
	sbuf_puts(sb, ",\"tags\":{");
	put_attr_members(sb, &v, true);
	if (s->status == SPAN_STATUS_ERROR) {
		/* the OTel Zipkin mapping; "error" marks the span red in the UI */
		sbuf_puts(sb, ",\"otel.status_code\":\"ERROR\",\"error\":");
		if (mlen)
			json_string(sb, s->status_msg, mlen);
		else
			json_string(sb, v.error_type, strlen(v.error_type));
	} else if (s->status == SPAN_STATUS_OK) {
		sbuf_puts(sb, ",\"otel.status_code\":\"OK\"");
	}
	sbuf_puts(sb, "}}");
}

void zipkin_json_batch(struct sbuf *out, const struct span *const *spans, size_t n)
{
	size_t i;

	sbuf_put(out, "[", 1);
	for (i = 0; i < n; i++) {
		if (i)
			sbuf_put(out, ",", 1);
		zipkin_span(out, spans[i]);
	}
	sbuf_put(out, "]", 1);
}

/* ---- JSONL ---------------------------------------------------------------------- */

static const char *status_name(__u8 status)
{
	switch (status) {
	case SPAN_STATUS_OK:
		return "ok";
	case SPAN_STATUS_ERROR:
		return "error";
	default:
		return "unset";
	}
}

void span_jsonl(struct sbuf *out, const struct span *s)
{
	size_t tslen = strnlen(s->tracestate, sizeof(s->tracestate));
	size_t mlen = strnlen(s->status_msg, sizeof(s->status_msg));
	size_t svclen = strnlen(s->service, sizeof(s->service));
	struct span_view v;

	span_view_init(&v, s);
	sbuf_puts(out, "{\"trace_id\":");
	put_hex_string(out, s->trace_id, sizeof(s->trace_id));
	sbuf_puts(out, ",\"span_id\":");
	put_hex_string(out, s->span_id, sizeof(s->span_id));
	sbuf_puts(out, ",\"parent_id\":");
	if (is_zero(s->parent_id, sizeof(s->parent_id)))
		sbuf_puts(out, "null");
	else
		put_hex_string(out, s->parent_id, sizeof(s->parent_id));
	sbuf_puts(out, s->kind == SPAN_KIND_CLIENT ? ",\"kind\":\"client\",\"name\":"
						   : ",\"kind\":\"server\",\"name\":");
	json_string(out, v.name, v.name_len);
	sbuf_puts(out, ",\"start_unix_ns\":");
	sbuf_put_u64(out, s->start_unix_ns);
	sbuf_puts(out, ",\"end_unix_ns\":");
	sbuf_put_u64(out, s->end_unix_ns);
	sbuf_puts(out, ",\"duration_ns\":");
	sbuf_put_u64(out, duration_ns(s));
	sbuf_puts(out, ",\"service\":");
	json_string(out, s->service, svclen);
	sbuf_puts(out, ",\"pid\":");
	sbuf_put_u64(out, s->pid);
	sbuf_puts(out, ",\"trace_flags\":");
	sbuf_put_u64(out, s->trace_flags);
	if (tslen) {
		sbuf_puts(out, ",\"tracestate\":");
		json_string(out, s->tracestate, tslen);
	}
	sbuf_puts(out, ",\"status\":\"");
	sbuf_puts(out, status_name(s->status));
	sbuf_put(out, "\"", 1);
	if (mlen) {
		sbuf_puts(out, ",\"status_message\":");
		json_string(out, s->status_msg, mlen);
	}
	sbuf_puts(out, ",\"attributes\":{");
	put_attr_members(out, &v, false);
	sbuf_puts(out, "}}\n");
}

/* ---- console -------------------------------------------------------------------- */

/*
 * A field of the console line: printable ASCII but space and backslash as
 * is, everything else as \xNN, so that one field stays one word and no
 * terminal escape sequence gets through; "-" for an empty field.
 */
static void console_word(struct sbuf *sb, const char *s, size_t n)
{
	const unsigned char *p = (const unsigned char *)s;
	size_t i, run = 0;

	if (!n) {
		sbuf_put(sb, "-", 1);
		return;
	}
	for (i = 0; i < n; i++) {
		if (p[i] > 0x20 && p[i] < 0x7f && p[i] != '\\')
			continue;
		sbuf_put(sb, s + run, i - run);
		sbuf_printf(sb, "\\x%02x", p[i]);
		run = i + 1;
	}
	sbuf_put(sb, s + run, n - run);
}

void span_console(struct sbuf *out, const struct span *s)
{
	size_t plen = strnlen(s->peer_addr, sizeof(s->peer_addr));
	unsigned long long d = duration_ns(s);
	bool v6 = memchr(s->peer_addr, ':', plen) != NULL;

	sbuf_puts(out, "span ");
	put_hex(out, s->span_id, sizeof(s->span_id));
	sbuf_puts(out, " trace ");
	put_hex(out, s->trace_id, sizeof(s->trace_id));
	sbuf_put(out, " ", 1);
	console_word(out, FLD(s->method));
	sbuf_put(out, " ", 1);
	console_word(out, FLD(s->route));
	sbuf_put(out, " ", 1);
	console_word(out, FLD(s->target));
	if (s->http_status)
		sbuf_printf(out, " %u", s->http_status);
	else
		sbuf_puts(out, " -");
	sbuf_printf(out, " %llu.%03llums %s %s", d / NSEC_PER_MSEC, d % NSEC_PER_MSEC / 1000,
		    s->kind == SPAN_KIND_CLIENT ? "server" : "client", v6 ? "[" : "");
	console_word(out, s->peer_addr, plen);
	sbuf_printf(out, "%s:%u", v6 ? "]" : "", s->peer_port);
	if (!is_zero(s->parent_id, sizeof(s->parent_id))) {
		sbuf_puts(out, " parent ");
		put_hex(out, s->parent_id, sizeof(s->parent_id));
	}
	if (s->status == SPAN_STATUS_ERROR) {
		sbuf_puts(out, " error ");
		console_word(out, FLD(s->status_msg));
	}
	sbuf_put(out, "\n", 1);
}

/* ---- OTEL_EXPORTER_OTLP_HEADERS ---------------------------------------------- */

static bool is_ows(char c)
{
	return c == ' ' || c == '\t';
}

/* RFC 9110 token characters: what a header name may hold */
static bool is_tchar(unsigned char c)
{
	if ((c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'))
		return true;
	return c && strchr("!#$%&'*+-.^_`|~", c);
}

static int hexval(unsigned char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

/*
 * One list member k0..end into out as "key: value".  The value is
 * percent-decoded, then refused if it holds a control character other than
 * HTAB: a decoded CR or LF would let the variable inject header lines.
 */
static int parse_header(const char *k0, const char *end, char *out, size_t outlen)
{
	const char *eq = memchr(k0, '=', end - k0), *k1, *v0, *v1, *p;
	size_t o;
	int hi, lo;
	unsigned char c;

	if (!eq)
		return -1;
	for (k1 = eq; k1 > k0 && is_ows(k1[-1]); k1--)
		;
	if (k1 == k0)
		return -1;
	for (p = k0; p < k1; p++)
		if (!is_tchar(*p))
			return -1;
	for (v0 = eq + 1; v0 < end && is_ows(*v0); v0++)
		;
	for (v1 = end; v1 > v0 && is_ows(v1[-1]); v1--)
		;
	if ((size_t)(k1 - k0) + 2 >= outlen)
		return -1;
	memcpy(out, k0, k1 - k0);
	o = k1 - k0;
	out[o++] = ':';
	out[o++] = ' ';
	for (p = v0; p < v1; p++) {
		c = *p;
		if (c == '%') {
			if (v1 - p < 3 || (hi = hexval(p[1])) < 0 || (lo = hexval(p[2])) < 0)
				return -1;
			c = hi << 4 | lo;
			p += 2;
		}
		if ((c < 0x20 && c != '\t') || c == 0x7f)
			return -1;
		if (o + 1 >= outlen)
			return -1;
		out[o++] = c;
	}
	out[o] = '\0';
	return 0;
}

int otlp_parse_headers(const char *spec, char out[][512], int max)
{
	const char *p = spec, *end;
	int n = 0;

	if (!spec)
		return 0;
	while (*p) {
		end = strchrnul(p, ',');
		while (p < end && is_ows(*p))
			p++;
		/* an empty member ("a=1,,b=2", a trailing comma) is skipped */
		if (p < end) {
			if (n >= max || parse_header(p, end, out[n], sizeof(out[n])))
				return -1;
			n++;
		}
		p = *end ? end + 1 : end;
	}
	return n;
}

/* ---- the tracer ----------------------------------------------------------------- */

struct exporter {
	struct tracer *t;
	const char *name;
	pthread_t thread;
	enum tracer_exporter kind;
	bool running;

	/* the queue: everything here is under mu */
	pthread_mutex_t mu;
	pthread_cond_t data_cv; /* spans arrived (or stop) */
	pthread_cond_t stop_cv; /* stop: ends a backoff sleep */
	struct span *store;	/* cap spans; a span is never moved once queued */
	__u32 *ring;		/* the queue: indexes into store, oldest at head */
	__u64 *enq_ns;		/* when each ring slot was queued (monotonic) */
	__u32 *free;		/* indexes of store not queued and not in flight */
	unsigned int cap, head, len, nfree;
	unsigned int inflight; /* spans of the batch being shipped */
	unsigned int batch_max;
	bool waiting; /* the thread sleeps on data_cv */
	unsigned long long exported, dropped_queue, dropped_rejected, errors;

	/* 0, or the monotonic time flushing ends; read by curl's callback */
	_Atomic __u64 stop_at;

	/* the thread's own */
	__u32 *batch; /* indexes into store of the batch in flight */
	const struct span **ptrs;
	struct sbuf body;
	unsigned long long lost; /* not shipped when stopping */
	__u64 rnd;
	bool failing; /* last attempt failed (log transitions only) */
	bool partial_logged;
	unsigned char status_logged[1000 / 8];

	/* HTTP */
	CURL *curl;
	struct curl_slist *hdrs;
	bool gzip;
	char errbuf[CURL_ERROR_SIZE];
	char resp[RESP_MAX];
	size_t resp_len;

	/* file */
	char *path;
	int fd;
	unsigned long long size;
	unsigned long long max_bytes;
	unsigned int keep;
	bool regular; /* only a regular file is rotated */
	dev_t dev;
	ino_t ino;
};

struct tracer {
	struct tracer_cfg cfg; /* strings copied: the caller's may go away */
	unsigned int batch_ms;
	unsigned int timeout_ms;
	bool curl_inited;
	struct exporter ex[TRACER_NEXPORTERS];
	bool on[TRACER_NEXPORTERS];
};

static __u64 mono_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (__u64)ts.tv_sec * 1000000000ULL + ts.tv_nsec;
}

static struct timespec ns_to_ts(__u64 ns)
{
	return (struct timespec){ .tv_sec = ns / 1000000000ULL, .tv_nsec = ns % 1000000000ULL };
}

static __u64 next_rand(struct exporter *ex)
{
	/* xorshift64: jitter only needs to differ between daemons */
	ex->rnd ^= ex->rnd << 13;
	ex->rnd ^= ex->rnd >> 7;
	ex->rnd ^= ex->rnd << 17;
	return ex->rnd;
}

static void add_locked(struct exporter *ex, unsigned long long *ctr, unsigned long long n)
{
	pthread_mutex_lock(&ex->mu);
	*ctr += n;
	pthread_mutex_unlock(&ex->mu);
}

/* ---- queue ---- */

/* dst[0..n): the string in src and its NUL (all n bytes if it has none) */
static void copy_field(char *dst, const char *src, size_t n)
{
	size_t len = strnlen(src, n);

	memcpy(dst, src, len < n ? len + 1 : n);
}

/*
 * A span's strings are mostly short and its fields mostly empty: copy the
 * fixed part and each string up to its NUL, a few cache lines instead of
 * the whole 2 KiB.  The bytes after a NUL are left as they were; every
 * reader stops at the NUL (or at the field's end).
 */
#define SPAN_FSZ(f) sizeof(((struct span *)0)->f)
/* the fields below are all there is from method on */
_Static_assert(
	offsetof(struct span, tracestate) + SPAN_FSZ(tracestate) - offsetof(struct span, method) ==
			SPAN_FSZ(method) + SPAN_FSZ(peer_addr) + SPAN_FSZ(host) +
				SPAN_FSZ(service) + SPAN_FSZ(status_msg) + SPAN_FSZ(route) +
				SPAN_FSZ(target) + SPAN_FSZ(tracestate) &&
		sizeof(struct span) - offsetof(struct span, tracestate) - SPAN_FSZ(tracestate) < 8,
	"span_copy() must copy every string field of struct span");
#undef SPAN_FSZ

static void span_copy(struct span *dst, const struct span *src)
{
	memcpy(dst, src, offsetof(struct span, method));
#define COPY_FIELD(f) copy_field(dst->f, src->f, sizeof(dst->f))
	COPY_FIELD(method);
	COPY_FIELD(peer_addr);
	COPY_FIELD(host);
	COPY_FIELD(service);
	COPY_FIELD(status_msg);
	COPY_FIELD(route);
	COPY_FIELD(target);
	COPY_FIELD(tracestate);
#undef COPY_FIELD
}

void tracer_submit(struct tracer *t, const struct span *s)
{
	__u64 now;
	int i;

	if (!t)
		return;
	now = mono_ns();
	for (i = 0; i < TRACER_NEXPORTERS; i++) {
		struct exporter *ex = &t->ex[i];
		unsigned int slot, idx;

		if (!t->on[i])
			continue;
		pthread_mutex_lock(&ex->mu);
		if (!ex->nfree) {
			ex->dropped_queue++;
			if (!ex->len) {
				/* only with queue_max 1: the one slot is in flight */
				pthread_mutex_unlock(&ex->mu);
				continue;
			}
			ex->free[ex->nfree++] = ex->ring[ex->head];
			ex->head = (ex->head + 1) % ex->cap;
			ex->len--;
		}
		idx = ex->free[--ex->nfree];
		span_copy(&ex->store[idx], s);
		slot = (ex->head + ex->len) % ex->cap;
		ex->ring[slot] = idx;
		ex->enq_ns[slot] = now;
		ex->len++;
		/* the first span starts the batch_ms clock; a full batch goes now */
		if (ex->waiting && (ex->len == 1 || ex->len >= ex->batch_max))
			pthread_cond_signal(&ex->data_cv);
		pthread_mutex_unlock(&ex->mu);
	}
}

/*
 * Under mu: wait until a batch is due and return its size, or 0 when the
 * thread should end (stopping, and the queue is empty or the deadline past).
 */
static unsigned int wait_batch(struct exporter *ex)
{
	__u64 batch_ns = ex->t->batch_ms * NSEC_PER_MSEC, stop_at, now, due;
	struct timespec ts;

	for (;;) {
		stop_at = atomic_load(&ex->stop_at);
		now = mono_ns();
		if (stop_at && (!ex->len || now >= stop_at))
			return 0;
		if (ex->len >= ex->batch_max)
			return ex->batch_max;
		if (ex->len && (stop_at || now >= ex->enq_ns[ex->head] + batch_ns))
			return ex->len;
		ex->waiting = true;
		if (ex->len) {
			due = ex->enq_ns[ex->head] + batch_ns;
			ts = ns_to_ts(due);
			pthread_cond_timedwait(&ex->data_cv, &ex->mu, &ts);
		} else {
			pthread_cond_wait(&ex->data_cv, &ex->mu);
		}
		ex->waiting = false;
	}
}

/* Under mu: move the n oldest spans into the batch (their indexes only). */
static void take_batch(struct exporter *ex, unsigned int n)
{
	for (unsigned int i = 0; i < n; i++)
		ex->batch[i] = ex->ring[(ex->head + i) % ex->cap];
	ex->head = (ex->head + n) % ex->cap;
	ex->len -= n;
	ex->inflight = n;
}

/* Under mu: the batch has been shipped (or given up): its spans are free. */
static void release_batch(struct exporter *ex)
{
	for (unsigned int i = 0; i < ex->inflight; i++)
		ex->free[ex->nfree++] = ex->batch[i];
	ex->inflight = 0;
}

/*
 * Sleep ms or until the stop deadline, whichever is first.  Returns false
 * when the deadline has passed: the batch is given up.
 */
static bool backoff_sleep(struct exporter *ex, unsigned int ms)
{
	__u64 until = mono_ns() + ms * NSEC_PER_MSEC, stop_at;
	struct timespec ts;
	bool ok;

	pthread_mutex_lock(&ex->mu);
	for (;;) {
		stop_at = atomic_load(&ex->stop_at);
		if (stop_at && mono_ns() >= stop_at) {
			ok = false;
			break;
		}
		if (mono_ns() >= until) {
			ok = true;
			break;
		}
		ts = ns_to_ts(stop_at && stop_at < until ? stop_at : until);
		pthread_cond_timedwait(&ex->stop_cv, &ex->mu, &ts);
	}
	pthread_mutex_unlock(&ex->mu);
	return ok;
}

/* ---- HTTP (OTLP and Zipkin) ---- */

enum post_result {
	POST_OK,
	POST_RETRY,
	POST_REJECTED,
	POST_GIVE_UP, /* the stop deadline has passed */
};

static size_t on_body(char *data, size_t size, size_t nmemb, void *arg)
{
	struct exporter *ex = arg;
	size_t n = size * nmemb, room = sizeof(ex->resp) - 1 - ex->resp_len;

	/* keep the start for messages, swallow the rest */
	if (room) {
		memcpy(ex->resp + ex->resp_len, data, n < room ? n : room);
		ex->resp_len += n < room ? n : room;
	}
	return n;
}

/* bounds the request in flight by the stop deadline (called at least ~1/s) */
static int on_progress(void *arg, curl_off_t dltotal, curl_off_t dlnow, curl_off_t ultotal,
		       curl_off_t ulnow)
{
	struct exporter *ex = arg;
	__u64 stop_at = atomic_load(&ex->stop_at);

	(void)dltotal, (void)dlnow, (void)ultotal, (void)ulnow;
	return stop_at && mono_ns() >= stop_at;
}

/* the response text, one line of printable ASCII, for a log message */
static const char *resp_text(struct exporter *ex)
{
	size_t i;

	ex->resp[ex->resp_len] = '\0';
	for (i = 0; i < ex->resp_len; i++)
		if ((unsigned char)ex->resp[i] < 0x20 || (unsigned char)ex->resp[i] >= 0x7f)
			ex->resp[i] = ' ';
	if (ex->resp_len > 200)
		ex->resp[200] = '\0';
	return ex->resp;
}

/*
 * An OTLP partial success: 200 with {"partialSuccess":{"rejectedSpans":N}},
 * N as a string or a number.  Returns N (at most n), 0 if absent.
 */
static unsigned long long otlp_rejected(struct exporter *ex, unsigned long long n)
{
	const char *p;
	unsigned long long r;

	ex->resp[ex->resp_len] = '\0';
	p = strstr(ex->resp, "\"rejectedSpans\"");
	if (!p)
		return 0;
	p += strlen("\"rejectedSpans\"");
	while (*p == ' ' || *p == ':' || *p == '"' || *p == '\t' || *p == '\n' || *p == '\r')
		p++;
	if (*p < '0' || *p > '9')
		return 0;
	r = strtoull(p, NULL, 10);
	return r < n ? r : n;
}

static enum post_result http_post(struct exporter *ex, const char *data, size_t len, long *status,
				  long *retry_after_s)
{
	unsigned int timeout_ms = ex->t->timeout_ms;
	__u64 stop_at = atomic_load(&ex->stop_at), now;
	curl_off_t ra = -1;
	CURLcode rc;

	*status = 0;
	*retry_after_s = 0;
	if (stop_at) {
		/* flushing: no attempt may outlast the deadline */
		now = mono_ns();
		if (now >= stop_at)
			return POST_GIVE_UP;
		if ((stop_at - now) / NSEC_PER_MSEC < timeout_ms)
			timeout_ms = (stop_at - now) / NSEC_PER_MSEC + 1;
	}
	ex->resp_len = 0;
	ex->errbuf[0] = '\0';
	curl_easy_setopt(ex->curl, CURLOPT_POSTFIELDS, data);
	curl_easy_setopt(ex->curl, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)len);
	curl_easy_setopt(ex->curl, CURLOPT_TIMEOUT_MS, (long)timeout_ms);
	rc = curl_easy_perform(ex->curl);
	if (rc != CURLE_OK) {
		if (!ex->errbuf[0])
			snprintf(ex->errbuf, sizeof(ex->errbuf), "%s", curl_easy_strerror(rc));
		stop_at = atomic_load(&ex->stop_at);
		if (stop_at && mono_ns() >= stop_at)
			return POST_GIVE_UP;
		return POST_RETRY;
	}
	curl_easy_getinfo(ex->curl, CURLINFO_RESPONSE_CODE, status);
	if (*status >= 200 && *status < 300)
		return POST_OK;
	/* the retryable codes of the OTLP/HTTP spec */
	if (*status == 429 || *status == 502 || *status == 503 || *status == 504) {
		/* libcurl parses both forms: delta-seconds and an HTTP date */
		if ((*status == 429 || *status == 503) &&
		    curl_easy_getinfo(ex->curl, CURLINFO_RETRY_AFTER, &ra) == CURLE_OK && ra > 0)
			*retry_after_s = ra;
		return POST_RETRY;
	}
	return POST_REJECTED;
}

static void log_rejected(struct exporter *ex, long status, unsigned int n)
{
	unsigned int i = status >= 0 && status < 1000 ? (unsigned int)status : 0;

	/* once per status: a collector that refuses everything must not flood */
	if (ex->status_logged[i / 8] & (1 << i % 8))
		return;
	ex->status_logged[i / 8] |= 1 << i % 8;
	pr_warn("%s: the receiver refused %u span(s) with HTTP %ld, dropped (logged once per status): %s\n",
		ex->name, n, status, resp_text(ex));
}

static void http_ship(struct exporter *ex, unsigned int n)
{
	unsigned int backoff = BACKOFF_FIRST_MS, delay;
	char *gz = NULL, *data = ex->body.buf;
	size_t len = ex->body.len, gzlen;
	unsigned long long rej;
	long status, ra;
	int err;

	if (ex->gzip) {
		err = expo_gzip(ex->body.buf, ex->body.len, &gz, &gzlen);
		if (err) {
			pr_warn("%s: cannot compress a batch: %s; %u span(s) dropped\n", ex->name,
				strerror(-err), n);
			pthread_mutex_lock(&ex->mu);
			ex->errors++;
			ex->dropped_rejected += n;
			pthread_mutex_unlock(&ex->mu);
			return;
		}
		data = gz;
		len = gzlen;
	}
	for (;;) {
		switch (http_post(ex, data, len, &status, &ra)) {
		case POST_OK:
			rej = ex->kind == TRACER_OTLP ? otlp_rejected(ex, n) : 0;
			pthread_mutex_lock(&ex->mu);
			ex->exported += n - rej;
			ex->dropped_rejected += rej;
			pthread_mutex_unlock(&ex->mu);
			if (rej && !ex->partial_logged) {
				pr_warn("%s: the receiver accepted a batch but rejected %llu of its %u span(s) (logged once): %s\n",
					ex->name, rej, n, resp_text(ex));
				ex->partial_logged = true;
			}
			if (ex->failing)
				pr_info("%s: exporting again\n", ex->name);
			ex->failing = false;
			goto out;
		case POST_REJECTED:
			add_locked(ex, &ex->dropped_rejected, n);
			log_rejected(ex, status, n);
			ex->failing = false;
			goto out;
		case POST_GIVE_UP:
			ex->lost += n;
			goto out;
		case POST_RETRY:
			break;
		}
		add_locked(ex, &ex->errors, 1);
		if (!ex->failing) {
			if (status)
				pr_warn("%s: the receiver answered HTTP %ld, retrying (new spans queue, the oldest are dropped)\n",
					ex->name, status);
			else
				pr_warn("%s: cannot send: %s; retrying (new spans queue, the oldest are dropped)\n",
					ex->name, ex->errbuf);
			ex->failing = true;
		}
		/* "equal jitter": half fixed, half random, so daemons spread out */
		delay = backoff / 2 + next_rand(ex) % (backoff / 2 + 1);
		if (ra > 0)
			delay = ra >= BACKOFF_CAP_MS / 1000 ? BACKOFF_CAP_MS : ra * 1000;
		backoff = backoff * 2 < BACKOFF_CAP_MS ? backoff * 2 : BACKOFF_CAP_MS;
		if (!backoff_sleep(ex, delay)) {
			ex->lost += n;
			goto out;
		}
	}
out:
	free(gz);
}

static int http_setup(struct exporter *ex, const char *url, const char *headers,
		      const struct tracer_cfg *cfg, char *err, size_t errlen)
{
	char(*lines)[512] = NULL;
	char *scheme = NULL, *host = NULL, ua[64];
	CURLU *u;
	int nh = 0, i, ret = -EINVAL;
	struct curl_slist *l;
	CURLUcode uc;

	/* refuse what curl would do something else with: file://, no host */
	u = curl_url();
	if (!u) {
		snprintf(err, errlen, "%s: out of memory", ex->name);
		return -ENOMEM;
	}
	uc = curl_url_set(u, CURLUPART_URL, url, 0);
	if (uc) {
		snprintf(err, errlen, "%s: invalid URL '%s': %s", ex->name, url,
			 curl_url_strerror(uc));
		goto out;
	}
	if (curl_url_get(u, CURLUPART_SCHEME, &scheme, 0) ||
	    (strcasecmp(scheme, "http") && strcasecmp(scheme, "https"))) {
		snprintf(err, errlen, "%s: URL '%s' is not http:// or https://", ex->name, url);
		goto out;
	}
	if (curl_url_get(u, CURLUPART_HOST, &host, 0) || !*host) {
		snprintf(err, errlen, "%s: URL '%s' has no host", ex->name, url);
		goto out;
	}

	if (headers) {
		lines = calloc(HEADERS_MAX, sizeof(*lines));
		if (!lines) {
			ret = -ENOMEM;
			snprintf(err, errlen, "%s: out of memory", ex->name);
			goto out;
		}
		nh = otlp_parse_headers(headers, lines, HEADERS_MAX);
		if (nh < 0) {
			snprintf(err, errlen,
				 "%s: malformed header list (OTEL_EXPORTER_OTLP_HEADERS): want "
				 "key=value,key2=value2 with header-name keys, percent-encoded "
				 "values, no CR/LF, at most %d entries of 510 bytes",
				 ex->name, HEADERS_MAX);
			goto out;
		}
	}

	ret = -ENOMEM;
	l = curl_slist_append(NULL, "Content-Type: application/json");
	ex->hdrs = l;
	if (l && ex->gzip)
		l = curl_slist_append(ex->hdrs, "Content-Encoding: gzip");
	/* no Expect: 100-continue: a 1 s stall against servers that ignore it */
	if (l)
		l = curl_slist_append(ex->hdrs, "Expect:");
	for (i = 0; l && i < nh; i++) {
		size_t k = strlen(lines[i]);

		/* curl drops "Name: " (empty value); "Name;" sends it empty */
		if (k >= 2 && lines[i][k - 1] == ' ' && lines[i][k - 2] == ':') {
			lines[i][k - 2] = ';';
			lines[i][k - 1] = '\0';
		}
		l = curl_slist_append(ex->hdrs, lines[i]);
	}
	ex->curl = l ? curl_easy_init() : NULL;
	if (!ex->curl) {
		snprintf(err, errlen, "%s: cannot set up libcurl", ex->name);
		goto out;
	}
	snprintf(ua, sizeof(ua), "bunscope/%s", cfg->version ? cfg->version : "dev");
	curl_easy_setopt(ex->curl, CURLOPT_URL, url);
#if LIBCURL_VERSION_NUM >= 0x075500
	curl_easy_setopt(ex->curl, CURLOPT_PROTOCOLS_STR, "http,https");
#else
	curl_easy_setopt(ex->curl, CURLOPT_PROTOCOLS, CURLPROTO_HTTP | CURLPROTO_HTTPS);
#endif
	curl_easy_setopt(ex->curl, CURLOPT_HTTPHEADER, ex->hdrs);
	curl_easy_setopt(ex->curl, CURLOPT_USERAGENT, ua);
	curl_easy_setopt(ex->curl, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(ex->curl, CURLOPT_ERRORBUFFER, ex->errbuf);
	curl_easy_setopt(ex->curl, CURLOPT_WRITEFUNCTION, on_body);
	curl_easy_setopt(ex->curl, CURLOPT_WRITEDATA, ex);
	curl_easy_setopt(ex->curl, CURLOPT_NOPROGRESS, 0L);
	curl_easy_setopt(ex->curl, CURLOPT_XFERINFOFUNCTION, on_progress);
	curl_easy_setopt(ex->curl, CURLOPT_XFERINFODATA, ex);
	ret = 0;
out:
	free(lines);
	curl_free(scheme);
	curl_free(host);
	curl_url_cleanup(u);
	return ret;
}

/* ---- file ---- */

static int file_open(struct exporter *ex)
{
	struct stat st;

	ex->fd = open(ex->path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0640);
	if (ex->fd < 0)
		return -errno;
	if (fstat(ex->fd, &st)) {
		close(ex->fd);
		ex->fd = -1;
		return -errno;
	}
	ex->size = st.st_size;
	ex->regular = S_ISREG(st.st_mode);
	ex->dev = st.st_dev;
	ex->ino = st.st_ino;
	return 0;
}

/* PATH.(keep-1) -> PATH.keep, ..., PATH -> PATH.1 */
static void file_rotate(struct exporter *ex)
{
	char from[PATH_MAX + 16], to[PATH_MAX + 16];
	size_t n = sizeof(from);
	unsigned int i;

	close(ex->fd);
	ex->fd = -1;
	for (i = ex->keep; i > 1; i--) {
		snprintf(from, n, "%s.%u", ex->path, i - 1);
		snprintf(to, n, "%s.%u", ex->path, i);
		if (rename(from, to) && errno != ENOENT)
			pr_warn("file: cannot rename %s to %s: %s\n", from, to, strerror(errno));
	}
	snprintf(to, n, "%s.1", ex->path);
	if (rename(ex->path, to) && errno != ENOENT)
		pr_warn("file: cannot rename %s to %s: %s\n", ex->path, to, strerror(errno));
}

static int write_all(int fd, const char *p, size_t n)
{
	ssize_t w;

	while (n) {
		w = write(fd, p, n);
		if (w < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		p += w;
		n -= w;
	}
	return 0;
}

static void file_ship(struct exporter *ex, unsigned int n)
{
	struct stat st;
	int err;

	/* moved away or deleted by someone else (logrotate): start a new one */
	if (ex->fd >= 0 && (stat(ex->path, &st) || st.st_dev != ex->dev || st.st_ino != ex->ino)) {
		close(ex->fd);
		ex->fd = -1;
	}
	/*
	 * Only a regular file is rotated: renaming a device or a FIFO
	 * (--traces-file /dev/null, a pipe into a log shipper) would put a
	 * regular file in its place.
	 */
	if (ex->fd >= 0 && ex->regular && ex->size && ex->size + ex->body.len > ex->max_bytes)
		file_rotate(ex);
	if (ex->fd < 0 && (err = file_open(ex)))
		goto fail;
	err = write_all(ex->fd, ex->body.buf, ex->body.len);
	if (err) {
		/*
		 * No half line left behind for the next batch to be glued to;
		 * if even that fails, reopen to learn the real size.
		 */
		if (ftruncate(ex->fd, ex->size)) {
			close(ex->fd);
			ex->fd = -1;
		}
		goto fail;
	}
	ex->size += ex->body.len;
	add_locked(ex, &ex->exported, n);
	if (ex->failing)
		pr_info("file: writing %s again\n", ex->path);
	ex->failing = false;
	return;
fail:
	pthread_mutex_lock(&ex->mu);
	ex->errors++;
	ex->dropped_rejected += n;
	pthread_mutex_unlock(&ex->mu);
	if (!ex->failing)
		pr_warn("file: cannot write %s: %s; dropping spans until it works\n", ex->path,
			strerror(-err));
	ex->failing = true;
}

/* ---- console ---- */

static void console_ship(struct exporter *ex, unsigned int n)
{
	size_t w;
	int bad;

	/* one locked write: lines from other threads never interleave */
	flockfile(stdout);
	w = fwrite(ex->body.buf, 1, ex->body.len, stdout);
	bad = w != ex->body.len || fflush(stdout);
	funlockfile(stdout);
	if (bad) {
		clearerr(stdout);
		pthread_mutex_lock(&ex->mu);
		ex->errors++;
		ex->dropped_rejected += n;
		pthread_mutex_unlock(&ex->mu);
		return;
	}
	add_locked(ex, &ex->exported, n);
}

/* ---- the exporter thread ---- */

static void serialize(struct exporter *ex, unsigned int n)
{
	unsigned int i;

	sbuf_reset(&ex->body);
	for (i = 0; i < n; i++)
		ex->ptrs[i] = &ex->store[ex->batch[i]];
	switch (ex->kind) {
	case TRACER_OTLP:
		otlp_json_batch(&ex->body, ex->ptrs, n, &ex->t->cfg);
		break;
	case TRACER_ZIPKIN:
		zipkin_json_batch(&ex->body, ex->ptrs, n);
		break;
	case TRACER_FILE:
		for (i = 0; i < n; i++)
			span_jsonl(&ex->body, ex->ptrs[i]);
		break;
	case TRACER_CONSOLE:
		for (i = 0; i < n; i++)
			span_console(&ex->body, ex->ptrs[i]);
		break;
	default:
		break;
	}
}

static void *exporter_main(void *arg)
{
	struct exporter *ex = arg;
	unsigned int n;

	pthread_mutex_lock(&ex->mu);
	while ((n = wait_batch(ex))) {
		take_batch(ex, n);
		pthread_mutex_unlock(&ex->mu);

		serialize(ex, n);
		if (ex->body.oom) {
			pr_warn("%s: out of memory serializing %u span(s), dropped\n", ex->name, n);
			pthread_mutex_lock(&ex->mu);
			ex->errors++;
			ex->dropped_rejected += n;
			pthread_mutex_unlock(&ex->mu);
		} else if (ex->kind == TRACER_OTLP || ex->kind == TRACER_ZIPKIN) {
			http_ship(ex, n);
		} else if (ex->kind == TRACER_FILE) {
			file_ship(ex, n);
		} else {
			console_ship(ex, n);
		}
		/* a big batch's text is not kept for the daemon's lifetime */
		if (ex->body.cap > (4U << 20))
			sbuf_free(&ex->body);

		pthread_mutex_lock(&ex->mu);
		release_batch(ex);
	}
	/* stopping: what is still queued missed the deadline */
	ex->lost += ex->len;
	ex->len = 0;
	pthread_mutex_unlock(&ex->mu);
	return NULL;
}

/* ---- start / stop ---- */

static void exporter_free(struct exporter *ex)
{
	if (ex->curl)
		curl_easy_cleanup(ex->curl);
	curl_slist_free_all(ex->hdrs);
	if (ex->fd >= 0)
		close(ex->fd);
	free(ex->path);
	free(ex->store);
	free(ex->ring);
	free(ex->free);
	free(ex->enq_ns);
	free(ex->batch);
	free(ex->ptrs);
	sbuf_free(&ex->body);
	pthread_cond_destroy(&ex->data_cv);
	pthread_cond_destroy(&ex->stop_cv);
	pthread_mutex_destroy(&ex->mu);
}

static int exporter_init(struct tracer *t, enum tracer_exporter kind, const struct tracer_cfg *cfg,
			 char *err, size_t errlen)
{
	struct exporter *ex = &t->ex[kind];
	pthread_condattr_t ca;
	int ret;

	ex->t = t;
	ex->kind = kind;
	ex->name = exporter_names[kind];
	ex->fd = -1;
	sbuf_init(&ex->body);
	ex->rnd = mono_ns() ^ (uintptr_t)ex ^ ((__u64)getpid() << 32);
	if (!ex->rnd)
		ex->rnd = 1;
	pthread_mutex_init(&ex->mu, NULL);
	/* timed waits on the monotonic clock: wall-clock steps do not matter */
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&ex->data_cv, &ca);
	pthread_cond_init(&ex->stop_cv, &ca);
	pthread_condattr_destroy(&ca);
	t->on[kind] = true;

	ex->cap = cfg->queue_max ? cfg->queue_max : DEF_QUEUE_MAX;
	ex->batch_max = cfg->batch_max ? cfg->batch_max : DEF_BATCH_MAX;
	/* half the queue at most: new spans still fit while a batch is retried */
	if (ex->batch_max > ex->cap / 2)
		ex->batch_max = ex->cap / 2 ? ex->cap / 2 : 1;
	/* calloc()ed: the store's pages stay untouched until spans use them */
	ex->store = calloc(ex->cap, sizeof(*ex->store));
	ex->ring = calloc(ex->cap, sizeof(*ex->ring));
	ex->enq_ns = calloc(ex->cap, sizeof(*ex->enq_ns));
	ex->free = calloc(ex->cap, sizeof(*ex->free));
	ex->batch = calloc(ex->batch_max, sizeof(*ex->batch));
	/* NOLINTNEXTLINE(bugprone-sizeof-expression): an array of pointers */
	ex->ptrs = calloc(ex->batch_max, sizeof(*ex->ptrs));
	if (!ex->store || !ex->ring || !ex->enq_ns || !ex->free || !ex->batch || !ex->ptrs) {
		snprintf(err, errlen, "%s: cannot allocate a queue of %u spans", ex->name, ex->cap);
		return -ENOMEM;
	}
	/* the lowest indexes are taken first */
	for (ex->nfree = 0; ex->nfree < ex->cap; ex->nfree++)
		ex->free[ex->nfree] = ex->cap - 1 - ex->nfree;

	switch (kind) {
	case TRACER_OTLP:
		ex->gzip = cfg->otlp_gzip;
		return http_setup(ex, cfg->otlp_url, cfg->otlp_headers, cfg, err, errlen);
	case TRACER_ZIPKIN:
		return http_setup(ex, cfg->zipkin_url, NULL, cfg, err, errlen);
	case TRACER_FILE:
		ex->max_bytes = cfg->file_max_bytes ? cfg->file_max_bytes : DEF_FILE_MAX;
		ex->keep = cfg->file_keep ? cfg->file_keep : DEF_FILE_KEEP;
		ex->path = strdup(cfg->file_path);
		if (!ex->path)
			return -ENOMEM;
		ret = file_open(ex);
		if (ret)
			snprintf(err, errlen, "file: cannot open %s: %s", ex->path, strerror(-ret));
		return ret;
	default:
		return 0;
	}
}

static char *dup_opt(const char *s, bool *oom)
{
	char *d;

	if (!s)
		return NULL;
	d = strdup(s);
	if (!d)
		*oom = true;
	return d;
}

static void tracer_free(struct tracer *t)
{
	int i;

	for (i = 0; i < TRACER_NEXPORTERS; i++)
		if (t->on[i])
			exporter_free(&t->ex[i]);
	if (t->curl_inited)
		curl_global_cleanup();
	free((char *)t->cfg.otlp_url);
	free((char *)t->cfg.otlp_headers);
	free((char *)t->cfg.zipkin_url);
	free((char *)t->cfg.file_path);
	free((char *)t->cfg.host_name);
	free((char *)t->cfg.version);
	free(t);
}

struct tracer *tracer_start(const struct tracer_cfg *cfg, char *err, size_t errlen)
{
	sigset_t all, old;
	struct tracer *t;
	char tname[16];
	bool oom = false;
	int i, ret = 0;

	if (errlen)
		err[0] = '\0';
	t = calloc(1, sizeof(*t));
	if (!t) {
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	t->cfg = *cfg;
	t->cfg.otlp_url = dup_opt(cfg->otlp_url, &oom);
	t->cfg.otlp_headers = dup_opt(cfg->otlp_headers, &oom);
	t->cfg.zipkin_url = dup_opt(cfg->zipkin_url, &oom);
	t->cfg.file_path = dup_opt(cfg->file_path, &oom);
	t->cfg.host_name = dup_opt(cfg->host_name, &oom);
	t->cfg.version = dup_opt(cfg->version, &oom);
	if (oom) {
		snprintf(err, errlen, "out of memory");
		goto fail;
	}
	t->batch_ms = cfg->batch_ms ? cfg->batch_ms : DEF_BATCH_MS;
	t->timeout_ms = cfg->timeout_ms ? cfg->timeout_ms : DEF_TIMEOUT_MS;

	if (t->cfg.otlp_url || t->cfg.zipkin_url) {
		if (curl_global_init(CURL_GLOBAL_DEFAULT)) {
			snprintf(err, errlen, "cannot initialise libcurl");
			goto fail;
		}
		t->curl_inited = true;
	}
	if (!ret && t->cfg.otlp_url)
		ret = exporter_init(t, TRACER_OTLP, &t->cfg, err, errlen);
	if (!ret && t->cfg.zipkin_url)
		ret = exporter_init(t, TRACER_ZIPKIN, &t->cfg, err, errlen);
	if (!ret && t->cfg.file_path)
		ret = exporter_init(t, TRACER_FILE, &t->cfg, err, errlen);
	if (!ret && t->cfg.console)
		ret = exporter_init(t, TRACER_CONSOLE, &t->cfg, err, errlen);
	if (ret) {
		if (errlen && !err[0])
			snprintf(err, errlen, "%s", strerror(-ret));
		goto fail;
	}

	/*
	 * The threads take no signals: the daemon's arrive through its
	 * signalfd, and a SIGPIPE from a closed stdout or TLS socket becomes
	 * EPIPE instead of killing the process.
	 */
	sigfillset(&all);
	pthread_sigmask(SIG_SETMASK, &all, &old);
	for (i = 0; i < TRACER_NEXPORTERS; i++) {
		if (!t->on[i])
			continue;
		ret = pthread_create(&t->ex[i].thread, NULL, exporter_main, &t->ex[i]);
		if (ret) {
			snprintf(err, errlen, "%s: cannot start its thread: %s", t->ex[i].name,
				 strerror(ret));
			break;
		}
		t->ex[i].running = true;
		snprintf(tname, sizeof(tname), "bs-%s", t->ex[i].name);
		pthread_setname_np(t->ex[i].thread, tname);
	}
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	if (ret) {
		tracer_stop(t, 0);
		return NULL;
	}
	return t;
fail:
	tracer_free(t);
	return NULL;
}

void tracer_stop(struct tracer *t, unsigned int deadline_ms)
{
	__u64 stop_at;
	int i;

	if (!t)
		return;
	/* +1: 0 means "not stopping" */
	stop_at = mono_ns() + deadline_ms * NSEC_PER_MSEC + 1;
	for (i = 0; i < TRACER_NEXPORTERS; i++) {
		struct exporter *ex = &t->ex[i];

		if (!t->on[i])
			continue;
		pthread_mutex_lock(&ex->mu);
		atomic_store(&ex->stop_at, stop_at);
		pthread_cond_broadcast(&ex->data_cv);
		pthread_cond_broadcast(&ex->stop_cv);
		pthread_mutex_unlock(&ex->mu);
	}
	for (i = 0; i < TRACER_NEXPORTERS; i++) {
		struct exporter *ex = &t->ex[i];

		if (!t->on[i] || !ex->running)
			continue;
		pthread_join(ex->thread, NULL);
		if (ex->lost)
			pr_warn("%s: %llu span(s) not exported before the %u ms shutdown deadline\n",
				ex->name, ex->lost, deadline_ms);
	}
	tracer_free(t);
}

void tracer_get_stats(struct tracer *t, struct tracer_stats *st)
{
	int i;

	memset(st, 0, sizeof(*st));
	if (!t)
		return;
	for (i = 0; i < TRACER_NEXPORTERS; i++) {
		struct exporter *ex = &t->ex[i];

		if (!t->on[i])
			continue;
		pthread_mutex_lock(&ex->mu);
		st->on[i] = true;
		st->exported[i] = ex->exported;
		st->dropped_queue[i] = ex->dropped_queue;
		st->dropped_rejected[i] = ex->dropped_rejected;
		st->errors[i] = ex->errors;
		/* the batch in flight is part of the backlog */
		st->queued[i] = ex->len + ex->inflight;
		pthread_mutex_unlock(&ex->mu);
	}
}
