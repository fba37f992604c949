/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * expo.h: text building for the Prometheus text exposition format 0.0.4 and
 * for JSON, plus the small pure helpers the HTTP endpoints need (gzip, the
 * --listen address parser, Accept-Encoding).
 *
 * Nothing here does I/O, so all of it is unit-tested without a server.
 *
 * Everything that copies caller-supplied text into the output (label values,
 * HELP text, JSON strings) replaces invalid UTF-8 with U+FFFD: label values
 * come from the observed processes (paths, methods) and one stray byte must
 * not make Prometheus reject the whole scrape.  Metric and label *names* are
 * trusted; the caller passes constants.
 */
#ifndef BUNSCOPE_EXPO_H
#define BUNSCOPE_EXPO_H

#include <stddef.h>
#include <sys/socket.h>

/*
 * Growable string buffer.  On allocation failure oom is set and every later
 * append is a no-op, so builders can append unconditionally and check oom
 * once at the end.  buf is NUL-terminated whenever it is non-NULL (len does
 * not count the NUL).
 */
struct sbuf {
	char *buf;
	size_t len, cap;
	int oom;
};

void sbuf_init(struct sbuf *sb);
void sbuf_free(struct sbuf *sb);
/* empty it but keep the allocation; clears oom */
void sbuf_reset(struct sbuf *sb);
void sbuf_put_slow(struct sbuf *sb, const char *s, size_t n);
void sbuf_printf(struct sbuf *sb, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* v in decimal */
void sbuf_put_u64(struct sbuf *sb, unsigned long long v);

/* append s[0..n); inline while it fits (the serializers' hot path) */
static inline void sbuf_put(struct sbuf *sb, const char *s, size_t n)
{
	if (!sb->oom && n < sb->cap - sb->len) {
		__builtin_memcpy(sb->buf + sb->len, s, n);
		sb->len += n;
		sb->buf[sb->len] = '\0';
		return;
	}
	sbuf_put_slow(sb, s, n);
}

static inline void sbuf_puts(struct sbuf *sb, const char *s)
{
	sbuf_put(sb, s, __builtin_strlen(s));
}

/* ---- Prometheus text format 0.0.4 ------------------------------------- */

/* "# HELP name help" and "# TYPE name type"; help has \ and newline escaped */
void expo_header(struct sbuf *sb, const char *name, const char *type, const char *help);

/*
 * The bytes of a label value, without the quotes: \ " and newline escaped as
 * \\ \" \n, other bytes (tab included) kept, each byte that is not part of a
 * valid UTF-8 sequence replaced by U+FFFD.
 */
void expo_label_value(struct sbuf *sb, const char *v, size_t n);

struct expo_label {
	const char *name;
	const char *value; /* NUL-terminated; NULL is written as "" */
};

/*
 * One sample line: name{l1="v1",...} value\n (no braces when nlabels is 0).
 * Doubles use the shortest form that reads back exactly (integers up to
 * 1e15 without exponent); NaN and infinities as NaN, +Inf, -Inf.
 */
void expo_sample(struct sbuf *sb, const char *name, const struct expo_label *labels, int nlabels,
		 double value);
void expo_sample_u64(struct sbuf *sb, const char *name, const struct expo_label *labels,
		     int nlabels, unsigned long long value);

/*
 * A whole histogram series: name_bucket{...,le="b"} lines with cumulative
 * counts (the last le="+Inf"), then name_sum and name_count.  bounds holds
 * nbounds finite upper bounds in increasing order; counts holds nbounds + 1
 * per-bucket (not cumulative) counts, the last one for +Inf.
 */
void expo_histogram(struct sbuf *sb, const char *name, const struct expo_label *labels, int nlabels,
		    const double *bounds, int nbounds, const unsigned long long *counts,
		    double sum);

/* a family of one unlabelled sample: header and value */
void expo_scalar(struct sbuf *sb, const char *name, const char *type, const char *help,
		 unsigned long long value);

/* the number formatting used above, for callers that build lines by hand */
void expo_double(struct sbuf *sb, double v);

/* ---- JSON -------------------------------------------------------------- */

/*
 * A quoted JSON string (RFC 8259): " and \ escaped, control characters as
 * \u00XX, invalid UTF-8 bytes replaced by U+FFFD.
 */
void json_string(struct sbuf *sb, const char *s, size_t n);

/* ---- HTTP helpers ------------------------------------------------------ */

/*
 * gzip (RFC 1952) of in[0..n).  On success *out is malloc()ed (the caller
 * frees it) and 0 is returned; otherwise -ENOMEM or -EIO and *out is NULL.
 */
int expo_gzip(const char *in, size_t n, char **out, size_t *outlen);

/*
 * Does an Accept-Encoding header value accept gzip?  True when it lists the
 * token gzip or x-gzip (any case) without q=0.  "*" is not honoured: a
 * client that wants compression says so.  NULL -> 0.
 */
int expo_accepts_gzip(const char *accept_encoding);

/*
 * Parse a listen address: "127.0.0.1:9464", "[::1]:9464", "[::]:9464",
 * ":9464" (all IPv4 addresses).  Only numeric hosts: no DNS lookups, so the
 * daemon never blocks or binds something unexpected at start-up.  Port must
 * be 1..65535.  Returns 0 and fills *ss and *len, or -EINVAL with a
 * one-line message in err (which may be NULL).
 */
int expo_parse_listen(const char *spec, struct sockaddr_storage *ss, socklen_t *len, char *err,
		      size_t errlen);

#endif /* BUNSCOPE_EXPO_H */
