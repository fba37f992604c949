// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * httpd.c: the HTTP endpoints on libmicrohttpd (see httpd.h).
 *
 * Bodies are built in a struct sbuf and handed to libmicrohttpd with
 * MHD_RESPMEM_MUST_FREE, so a scrape costs one allocation chain and no
 * copy; constant bodies are MHD_RESPMEM_PERSISTENT.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <microhttpd.h>

#include "expo.h"
#include "httpd.h"

#ifndef BUNSCOPE_VERSION
#define BUNSCOPE_VERSION "dev"
#endif

#define CT_METRICS "text/plain; version=0.0.4; charset=utf-8"
#define CT_TEXT	   "text/plain; charset=utf-8"
#define CT_JSON	   "application/json"

struct httpd {
	struct MHD_Daemon *mhd;
	struct httpd_handlers h;
};

struct hdr {
	const char *name;
	const char *value;
};

/* *con_cls after the first call for a request: "headers seen" */
static int request_seen;

static const char index_body[] =
	"bunscope " BUNSCOPE_VERSION "\n"
	"\n"
	"/metrics             Prometheus metrics (text format 0.0.4)\n"
	"/api/server-metrics  per-server metrics as JSON (?pid=N for one)\n"
	"/health              daemon health as JSON (503 when degraded)\n";

/* ---- responses -------------------------------------------------------- */

/*
 * Queue body[0..len) with the given status and headers.  With must_free the
 * body is malloc()ed and owned by us until MHD takes it, so it is freed here
 * on every failure path.
 */
static enum MHD_Result reply(struct MHD_Connection *conn, unsigned int status, char *body,
			     size_t len, int must_free, const struct hdr *hdrs, int nhdrs)
{
	struct MHD_Response *r;
	enum MHD_Result ret;
	int i;

	r = MHD_create_response_from_buffer(len, body,
					    must_free ? MHD_RESPMEM_MUST_FREE
						      : MHD_RESPMEM_PERSISTENT);
	if (!r) {
		if (must_free)
			free(body);
		return MHD_NO;
	}
	for (i = 0; i < nhdrs; i++) {
		if (MHD_add_response_header(r, hdrs[i].name, hdrs[i].value) != MHD_YES) {
			MHD_destroy_response(r); /* frees body */
			return MHD_NO;
		}
	}
	ret = MHD_queue_response(conn, status, r);
	MHD_destroy_response(r); /* MHD keeps its own reference */
	return ret;
}

/* a constant text/plain body */
static enum MHD_Result reply_const(struct MHD_Connection *conn, unsigned int status,
				   const char *text, const struct hdr *extra, int nextra)
{
	struct hdr hdrs[4] = { { MHD_HTTP_HEADER_CONTENT_TYPE, CT_TEXT } };
	int n = 1;

	while (nextra-- > 0 && n < (int)(sizeof(hdrs) / sizeof(hdrs[0])))
		hdrs[n++] = *extra++;
	return reply(conn, status, (char *)text, strlen(text), 0, hdrs, n);
}

/* hand sb's buffer to MHD; sb is left empty */
static enum MHD_Result reply_sbuf(struct MHD_Connection *conn, unsigned int status,
				  const char *ctype, struct sbuf *sb)
{
	const struct hdr hdrs[] = { { MHD_HTTP_HEADER_CONTENT_TYPE, ctype } };
	char *body = sb->buf;
	size_t len = sb->len;

	sbuf_init(sb);
	return reply(conn, status, body, len, 1, hdrs, 1);
}

/* {"error":"...", "pid":...} with status; pid_param NULL leaves pid out */
static enum MHD_Result reply_json_error(struct MHD_Connection *conn, unsigned int status,
					const char *msg, const char *pid_param)
{
	static const char oom_body[] = "{\"error\":\"out of memory\"}\n";
	const struct hdr hdrs[] = { { MHD_HTTP_HEADER_CONTENT_TYPE, CT_JSON } };
	struct sbuf sb;

	sbuf_init(&sb);
	sbuf_puts(&sb, "{\"error\":");
	json_string(&sb, msg, strlen(msg));
	if (pid_param) {
		sbuf_puts(&sb, ",\"pid\":");
		json_string(&sb, pid_param, strlen(pid_param));
	}
	sbuf_puts(&sb, "}\n");
	if (sb.oom) {
		sbuf_free(&sb);
		return reply(conn, MHD_HTTP_INTERNAL_SERVER_ERROR, (char *)oom_body,
			     sizeof(oom_body) - 1, 0, hdrs, 1);
	}
	return reply_sbuf(conn, status, CT_JSON, &sb);
}

static enum MHD_Result reply_not_found(struct MHD_Connection *conn)
{
	return reply_const(conn, MHD_HTTP_NOT_FOUND, "not found\n", NULL, 0);
}

/* ---- endpoints -------------------------------------------------------- */

static enum MHD_Result find_gzip(void *cls, enum MHD_ValueKind kind, const char *key,
				 const char *value)
{
	int *gzip = cls;

	(void)kind;
	if (key && !strcasecmp(key, MHD_HTTP_HEADER_ACCEPT_ENCODING) && expo_accepts_gzip(value)) {
		*gzip = 1;
		return MHD_NO; /* stop iterating */
	}
	return MHD_YES;
}

/* any Accept-Encoding header (there may be several) that takes gzip */
static int wants_gzip(struct MHD_Connection *conn)
{
	int gzip = 0;

	MHD_get_connection_values(conn, MHD_HEADER_KIND, find_gzip, &gzip);
	return gzip;
}

static enum MHD_Result serve_metrics(struct httpd *d, struct MHD_Connection *conn)
{
	/* the representation depends on Accept-Encoding either way */
	struct hdr hdrs[] = {
		{ MHD_HTTP_HEADER_CONTENT_TYPE, CT_METRICS },
		{ MHD_HTTP_HEADER_VARY, MHD_HTTP_HEADER_ACCEPT_ENCODING },
		{ MHD_HTTP_HEADER_CONTENT_ENCODING, "gzip" },
	};
	struct sbuf sb;
	size_t gzlen;
	char *gz;
	int rc;

	sbuf_init(&sb);
	rc = d->h.metrics(d->h.ctx, &sb);
	if (!rc && sb.oom)
		rc = -ENOMEM;
	if (rc) {
		sbuf_free(&sb);
		fprintf(stderr, "bunscope: /metrics: %s\n", strerror(-rc));
		return reply_const(conn, MHD_HTTP_INTERNAL_SERVER_ERROR, "internal error\n", NULL,
				   0);
	}
	/* if compressing fails, plain text is still a good answer */
	if (wants_gzip(conn) && !expo_gzip(sb.buf, sb.len, &gz, &gzlen)) {
		sbuf_free(&sb);
		return reply(conn, MHD_HTTP_OK, gz, gzlen, 1, hdrs, 3);
	}
	/* the buffer now belongs to the response */
	return reply(conn, MHD_HTTP_OK, sb.buf, sb.len, 1, hdrs, 2);
}

static enum MHD_Result serve_server_metrics(struct httpd *d, struct MHD_Connection *conn)
{
	const char *pid;
	struct sbuf sb;
	int rc;

	pid = MHD_lookup_connection_value(conn, MHD_GET_ARGUMENT_KIND, "pid");
	sbuf_init(&sb);
	rc = d->h.server_metrics(d->h.ctx, pid, &sb);
	if (!rc && sb.oom)
		rc = -ENOMEM;
	if (!rc)
		return reply_sbuf(conn, MHD_HTTP_OK, CT_JSON, &sb);

	sbuf_free(&sb);
	if (rc == -ENOENT)
		return reply_json_error(conn, MHD_HTTP_NOT_FOUND, "no such server", pid);
	if (rc == -EINVAL)
		return reply_json_error(conn, MHD_HTTP_BAD_REQUEST, "invalid pid", pid);
	fprintf(stderr, "bunscope: /api/server-metrics: %s\n", strerror(-rc));
	return reply_json_error(conn, MHD_HTTP_INTERNAL_SERVER_ERROR, strerror(-rc), NULL);
}

static enum MHD_Result serve_health(struct httpd *d, struct MHD_Connection *conn)
{
	struct sbuf sb;
	int rc;

	sbuf_init(&sb);
	rc = d->h.health(d->h.ctx, &sb);
	if (rc >= 0 && sb.oom)
		rc = -ENOMEM;
	if (rc < 0) {
		sbuf_free(&sb);
		fprintf(stderr, "bunscope: /health: %s\n", strerror(-rc));
		return reply_json_error(conn, MHD_HTTP_INTERNAL_SERVER_ERROR, strerror(-rc), NULL);
	}
	return reply_sbuf(conn, rc ? MHD_HTTP_SERVICE_UNAVAILABLE : MHD_HTTP_OK, CT_JSON, &sb);
}

static enum MHD_Result route(struct httpd *d, struct MHD_Connection *conn, const char *url)
{
	if (!strcmp(url, "/metrics") && d->h.metrics)
		return serve_metrics(d, conn);
	if (!strcmp(url, "/api/server-metrics") && d->h.server_metrics)
		return serve_server_metrics(d, conn);
	if (!strcmp(url, "/health") && d->h.health)
		return serve_health(d, conn);
	if (!strcmp(url, "/"))
		return reply_const(conn, MHD_HTTP_OK, index_body, NULL, 0);
	return reply_not_found(conn);
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *conn, const char *url,
				  const char *method, const char *version, const char *upload_data,
				  size_t *upload_data_size, void **con_cls)
{
	static const struct hdr allow = { MHD_HTTP_HEADER_ALLOW, "GET, HEAD" };

	(void)version;
	(void)upload_data;
	/*
	 * Answering in the first call (headers only) makes MHD skip the body
	 * and close the connection afterwards: right for methods we refuse,
	 * which are the ones that carry bodies.
	 */
	if (strcmp(method, MHD_HTTP_METHOD_GET) && strcmp(method, MHD_HTTP_METHOD_HEAD))
		return reply_const(conn, MHD_HTTP_METHOD_NOT_ALLOWED, "method not allowed\n",
				   &allow, 1);
	/* GET/HEAD: answer once the request is complete, so keep-alive works */
	if (!*con_cls) {
		*con_cls = &request_seen;
		return MHD_YES;
	}
	if (*upload_data_size) {
		*upload_data_size = 0; /* a body on GET: ignored */
		return MHD_YES;
	}
	/* MHD suppresses the body of HEAD answers but keeps Content-Length */
	return route(cls, conn, url);
}

/* ---- start/stop ------------------------------------------------------- */

__attribute__((format(printf, 3, 4))) static void set_err(char *err, size_t errlen, const char *fmt,
							  ...)
{
	va_list ap;

	if (!err || !errlen)
		return;
	va_start(ap, fmt);
	vsnprintf(err, errlen, fmt, ap);
	va_end(ap);
}

/*
 * MHD_start_daemon() returns NULL without a reliable errno, and error
 * logging is off.  Bind the address ourselves, the way MHD does
 * (SO_REUSEADDR, v6only unless dual stack), to learn why it failed.
 */
static int diagnose_bind(const struct sockaddr_storage *ss, socklen_t len, int dual_stack)
{
	int fd, on = 1, v6only = !dual_stack, e = 0;

	fd = socket(ss->ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return errno;
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &on, sizeof(on));
	if (ss->ss_family == AF_INET6)
		setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &v6only, sizeof(v6only));
	if (bind(fd, (const struct sockaddr *)ss, len) || listen(fd, 1))
		e = errno;
	close(fd);
	return e;
}

static int is_in6_any(const struct sockaddr_storage *ss)
{
	const struct sockaddr_in6 *sin6 = (const struct sockaddr_in6 *)ss;

	return ss->ss_family == AF_INET6 && IN6_IS_ADDR_UNSPECIFIED(&sin6->sin6_addr);
}

static unsigned short ss_port(const struct sockaddr_storage *ss)
{
	if (ss->ss_family == AF_INET6)
		return ntohs(((const struct sockaddr_in6 *)ss)->sin6_port);
	return ntohs(((const struct sockaddr_in *)ss)->sin_port);
}

struct httpd *httpd_start(const char *listen_spec, const struct httpd_handlers *h, char *err,
			  size_t errlen)
{
	/* epoll via MHD_USE_AUTO: select() would cap fds at FD_SETSIZE */
	unsigned int flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_AUTO;
	struct sockaddr_storage ss;
	struct httpd *d;
	socklen_t len;
	int e;

	if (expo_parse_listen(listen_spec, &ss, &len, err, errlen))
		return NULL;
	/* "[::]" also takes IPv4; any other IPv6 address is v6only */
	if (is_in6_any(&ss))
		flags |= MHD_USE_DUAL_STACK;
	else if (ss.ss_family == AF_INET6)
		flags |= MHD_USE_IPv6;

	d = calloc(1, sizeof(*d));
	if (!d) {
		set_err(err, errlen, "cannot listen on %s: %s", listen_spec, strerror(ENOMEM));
		return NULL;
	}
	d->h = *h;

	errno = 0;
	d->mhd = MHD_start_daemon(flags, ss_port(&ss), NULL, NULL, on_request, d,
				  MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&ss,
				  MHD_OPTION_CONNECTION_LIMIT, 64u, MHD_OPTION_CONNECTION_TIMEOUT,
				  10u, MHD_OPTION_PER_IP_CONNECTION_LIMIT, 16u, MHD_OPTION_END);
	if (!d->mhd) {
		e = errno;
		/* cppcheck-suppress selfAssignment ; it reads GNU "x ?: e" as "e = e" */
		e = diagnose_bind(&ss, len, is_in6_any(&ss)) ?: e;
		set_err(err, errlen, "cannot listen on %s: %s%s", listen_spec,
			e ? strerror(e) : "libmicrohttpd failed to start",
			e == EADDRINUSE ? " (another bunscope? Two can observe the same "
					  "targets, each on its own --listen address)"
					: "");
		free(d);
		return NULL;
	}
	return d;
}

void httpd_stop(struct httpd *d)
{
	if (!d)
		return;
	MHD_stop_daemon(d->mhd);
	free(d);
}
