/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * httpd.h: the daemon's HTTP endpoints, on libmicrohttpd.
 *
 *   /                    a short text index of the endpoints
 *   /metrics             Prometheus text format 0.0.4 (gzip on request)
 *   /api/server-metrics  JSON, optionally ?pid=N
 *   /health              JSON; 503 when degraded
 *
 * GET and HEAD only; request bodies are ignored.
 *
 * The handlers run on libmicrohttpd's single internal polling thread: they
 * never run concurrently with each other, but do run concurrently with the
 * rest of the daemon, so they must lock (or read atomically) whatever state
 * they share with it.  They should be quick; while one runs, no other
 * request is served.
 */
#ifndef BUNSCOPE_HTTPD_H
#define BUNSCOPE_HTTPD_H

#include <stddef.h>

#include "expo.h"

struct httpd;

struct httpd_handlers {
	void *ctx;
	/* fill sb with the exposition; 0 or negative errno (-> 500) */
	int (*metrics)(void *ctx, struct sbuf *sb);
	/*
	 * fill sb with the JSON of /api/server-metrics.  pid_param is the
	 * (URL-decoded, otherwise unparsed) value of ?pid=, or NULL if absent.
	 * 0 -> 200; -ENOENT -> 404 and -EINVAL -> 400, each with a JSON error
	 * body; other negative errno -> 500.  On errors sb is discarded.
	 */
	int (*server_metrics)(void *ctx, const char *pid_param, struct sbuf *sb);
	/* fill sb with the /health JSON; 0 healthy (200), >0 degraded (503),
	 * negative errno -> 500 */
	int (*health)(void *ctx, struct sbuf *sb);
};

/*
 * Start serving on listen_spec (see expo_parse_listen()); a NULL handler
 * makes its endpoint answer 404.  Returns NULL on failure with a one-line
 * message in err, e.g.
 * "cannot listen on 127.0.0.1:9464: Address already in use".
 */
struct httpd *httpd_start(const char *listen_spec, const struct httpd_handlers *h, char *err,
			  size_t errlen);

/* stop serving and free; waits for the handler in progress.  NULL-safe. */
void httpd_stop(struct httpd *d);

#endif /* BUNSCOPE_HTTPD_H */
