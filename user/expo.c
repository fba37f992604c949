// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * expo.c: Prometheus text format / JSON text building and the pure helpers
 * of the HTTP endpoints.  See expo.h for the contracts.
 *
 * Number formatting uses printf/strtod and therefore the C locale; the
 * daemon never calls setlocale(), so the decimal point stays a '.'.
 */
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <arpa/inet.h>
#include <netinet/in.h>

#define ZLIB_CONST
#include <zlib.h>

#include "expo.h"

#define SBUF_MIN_CAP 256

/* ---- sbuf --------------------------------------------------------------- */

void sbuf_init(struct sbuf *sb)
{
	sb->buf = NULL;
	sb->len = 0;
	sb->cap = 0;
	sb->oom = 0;
}

void sbuf_free(struct sbuf *sb)
{
	free(sb->buf);
	sbuf_init(sb);
}

void sbuf_reset(struct sbuf *sb)
{
	sb->len = 0;
	sb->oom = 0;
	if (sb->buf)
		sb->buf[0] = '\0';
}

/* make room for n more bytes plus the NUL; 0 or -1 (oom set) */
static int sbuf_reserve(struct sbuf *sb, size_t n)
{
	size_t need, cap;
	char *nb;

	if (sb->oom)
		return -1;
	if (n >= SIZE_MAX - sb->len)
		goto oom;
	need = sb->len + n + 1;
	if (need <= sb->cap)
		return 0;
	cap = sb->cap ? sb->cap : SBUF_MIN_CAP;
	while (cap < need)
		cap = cap > SIZE_MAX / 2 ? need : cap * 2;
	nb = realloc(sb->buf, cap);
	if (!nb)
		goto oom;
	sb->buf = nb;
	sb->cap = cap;
	return 0;
oom:
	/* keep what was built: the caller frees it and reports the failure */
	sb->oom = 1;
	return -1;
}

void sbuf_put_slow(struct sbuf *sb, const char *s, size_t n)
{
	if (sbuf_reserve(sb, n))
		return;
	memcpy(sb->buf + sb->len, s, n);
	sb->len += n;
	sb->buf[sb->len] = '\0';
}

void sbuf_put_u64(struct sbuf *sb, unsigned long long v)
{
	static const char pairs[] = "00010203040506070809101112131415161718192021222324"
				    "25262728293031323334353637383940414243444546474849"
				    "50515253545556575859606162636465666768697071727374"
				    "75767778798081828384858687888990919293949596979899";
	char tmp[20];
	size_t i = sizeof(tmp);

	/* two digits a step: span times have 19 */
	while (v >= 100) {
		unsigned int r = (unsigned int)(v % 100);

		v /= 100;
		tmp[--i] = pairs[2 * r + 1];
		tmp[--i] = pairs[2 * r];
	}
	if (v >= 10) {
		tmp[--i] = pairs[2 * v + 1];
		tmp[--i] = pairs[2 * v];
	} else {
		tmp[--i] = (char)('0' + v);
	}
	sbuf_put(sb, tmp + i, sizeof(tmp) - i);
}

void sbuf_printf(struct sbuf *sb, const char *fmt, ...)
{
	va_list ap;
	size_t room;
	int n;

	if (sbuf_reserve(sb, 0))
		return;
	/* first try in the space we have; most lines fit */
	room = sb->cap - sb->len;
	va_start(ap, fmt);
	n = vsnprintf(sb->buf + sb->len, room, fmt, ap);
	va_end(ap);
	if (n < 0) {
		sb->buf[sb->len] = '\0';
		return;
	}
	if ((size_t)n >= room) {
		if (sbuf_reserve(sb, n)) {
			sb->buf[sb->len] = '\0';
			return;
		}
		va_start(ap, fmt);
		vsnprintf(sb->buf + sb->len, n + 1, fmt, ap);
		va_end(ap);
	}
	sb->len += n;
}

/* ---- escaping ------------------------------------------------------------ */

/*
 * Length of the valid UTF-8 sequence at p (RFC 3629: no overlong forms, no
 * surrogates, nothing above U+10FFFF), or 0 if p[0] does not start one.
 */
static size_t utf8_len(const unsigned char *p, size_t n)
{
	unsigned char lo = 0x80, hi = 0xbf; /* range of the second byte */
	size_t len, i;

	if (p[0] < 0x80)
		return 1;
	if (p[0] < 0xc2)
		return 0;
	if (p[0] < 0xe0) {
		len = 2;
	} else if (p[0] < 0xf0) {
		len = 3;
		if (p[0] == 0xe0)
			lo = 0xa0;
		else if (p[0] == 0xed)
			hi = 0x9f;
	} else if (p[0] < 0xf5) {
		len = 4;
		if (p[0] == 0xf0)
			lo = 0x90;
		else if (p[0] == 0xf4)
			hi = 0x8f;
	} else {
		return 0;
	}
	if (n < len || p[1] < lo || p[1] > hi)
		return 0;
	for (i = 2; i < len; i++)
		if ((p[i] & 0xc0) != 0x80)
			return 0;
	return len;
}

enum esc_mode {
	ESC_LABEL, /* \\ \" \n */
	ESC_HELP,  /* \\ \n */
	ESC_JSON,  /* \\ \" \u00XX */
};

#define UTF8_REPLACEMENT "\xef\xbf\xbd"

/* the escape for byte c in this mode, or NULL to copy it as is */
static const char *esc_ascii(unsigned char c, enum esc_mode mode, char *tmp, size_t tmplen)
{
	if (c == '\\')
		return "\\\\";
	if (c == '"' && mode != ESC_HELP)
		return "\\\"";
	if (mode == ESC_JSON) {
		if (c >= 0x20)
			return NULL;
		snprintf(tmp, tmplen, "\\u%04x", c);
		return tmp;
	}
	return c == '\n' ? "\\n" : NULL;
}

/* copy s[0..n) escaped; unescaped runs are copied in one piece */
static void put_escaped(struct sbuf *sb, const char *s, size_t n, enum esc_mode mode)
{
	const unsigned char *p = (const unsigned char *)s;
	size_t i = 0, run = 0, k;
	const char *rep;
	char tmp[8];

	while (i < n) {
		/* plain in every mode: most bytes of most strings */
		if (p[i] >= 0x20 && p[i] < 0x80 && p[i] != '\\' && p[i] != '"') {
			i++;
			continue;
		}
		if (p[i] >= 0x80) {
			k = utf8_len(p + i, n - i);
			if (k) {
				i += k;
				continue;
			}
			rep = UTF8_REPLACEMENT;
		} else {
			rep = esc_ascii(p[i], mode, tmp, sizeof(tmp));
			if (!rep) {
				i++;
				continue;
			}
		}
		sbuf_put(sb, s + run, i - run);
		sbuf_puts(sb, rep);
		run = ++i;
	}
	sbuf_put(sb, s + run, n - run);
}

void expo_label_value(struct sbuf *sb, const char *v, size_t n)
{
	put_escaped(sb, v, n, ESC_LABEL);
}

void json_string(struct sbuf *sb, const char *s, size_t n)
{
	sbuf_put(sb, "\"", 1);
	put_escaped(sb, s, n, ESC_JSON);
	sbuf_put(sb, "\"", 1);
}

/* ---- Prometheus ------------------------------------------------------- */

void expo_header(struct sbuf *sb, const char *name, const char *type, const char *help)
{
	sbuf_printf(sb, "# HELP %s ", name);
	put_escaped(sb, help, strlen(help), ESC_HELP);
	sbuf_printf(sb, "\n# TYPE %s %s\n", name, type);
}

/*
 * Shortest text that strtod() reads back as v.  Integral values below 1e15
 * are printed without exponent (le="16777216", not "1.6777216e+07"); the
 * rest use the shortest %g precision that round-trips.
 */
static const char *fmt_double(char *buf, size_t len, double v)
{
	int prec;

	if (isnan(v))
		return "NaN";
	if (isinf(v))
		return v > 0 ? "+Inf" : "-Inf";
	if (v > -1e15 && v < 1e15 && v == (double)(long long)v) {
		snprintf(buf, len, "%.0f", v);
		return buf;
	}
	for (prec = 1; prec < 17; prec++) {
		snprintf(buf, len, "%.*g", prec, v);
		if (strtod(buf, NULL) == v)
			return buf;
	}
	snprintf(buf, len, "%.17g", v);
	return buf;
}

void expo_double(struct sbuf *sb, double v)
{
	char tmp[40];

	sbuf_puts(sb, fmt_double(tmp, sizeof(tmp), v));
}

/* {l1="v1",...,le="x"}; nothing at all without labels and le */
static void put_labels(struct sbuf *sb, const struct expo_label *labels, int nlabels,
		       const char *le)
{
	const char *v;
	int i;

	if (nlabels <= 0 && !le)
		return;
	sbuf_put(sb, "{", 1);
	for (i = 0; i < nlabels; i++) {
		v = labels[i].value ? labels[i].value : "";
		sbuf_printf(sb, "%s%s=\"", i ? "," : "", labels[i].name);
		expo_label_value(sb, v, strlen(v));
		sbuf_put(sb, "\"", 1);
	}
	if (le)
		sbuf_printf(sb, "%sle=\"%s\"", nlabels > 0 ? "," : "", le);
	sbuf_put(sb, "}", 1);
}

void expo_sample(struct sbuf *sb, const char *name, const struct expo_label *labels, int nlabels,
		 double value)
{
	sbuf_puts(sb, name);
	put_labels(sb, labels, nlabels, NULL);
	sbuf_put(sb, " ", 1);
	expo_double(sb, value);
	sbuf_put(sb, "\n", 1);
}

void expo_sample_u64(struct sbuf *sb, const char *name, const struct expo_label *labels,
		     int nlabels, unsigned long long value)
{
	sbuf_puts(sb, name);
	put_labels(sb, labels, nlabels, NULL);
	sbuf_printf(sb, " %llu\n", value);
}

static void put_bucket(struct sbuf *sb, const char *name, const struct expo_label *labels,
		       int nlabels, const char *le, unsigned long long cum)
{
	sbuf_printf(sb, "%s_bucket", name);
	put_labels(sb, labels, nlabels, le);
	sbuf_printf(sb, " %llu\n", cum);
}

void expo_histogram(struct sbuf *sb, const char *name, const struct expo_label *labels, int nlabels,
		    const double *bounds, int nbounds, const unsigned long long *counts, double sum)
{
	unsigned long long cum = 0;
	char le[40];
	int i;

	for (i = 0; i < nbounds; i++) {
		cum += counts[i];
		put_bucket(sb, name, labels, nlabels, fmt_double(le, sizeof(le), bounds[i]), cum);
	}
	cum += counts[nbounds];
	put_bucket(sb, name, labels, nlabels, "+Inf", cum);

	sbuf_printf(sb, "%s_sum", name);
	put_labels(sb, labels, nlabels, NULL);
	sbuf_put(sb, " ", 1);
	expo_double(sb, sum);
	sbuf_put(sb, "\n", 1);

	sbuf_printf(sb, "%s_count", name);
	put_labels(sb, labels, nlabels, NULL);
	sbuf_printf(sb, " %llu\n", cum);
}

/* ---- gzip ------------------------------------------------------------- */

/* zlib counts in uInt; feed and drain larger buffers in pieces */
#define ZCHUNK_MAX ((size_t)UINT_MAX)

static uInt zclamp(size_t n)
{
	return n > ZCHUNK_MAX ? (uInt)ZCHUNK_MAX : (uInt)n;
}

/* realloc to twice the size; NULL (buf untouched) on failure */
static char *grow_twice(char *buf, size_t *cap)
{
	char *nb;

	if (*cap > SIZE_MAX / 2)
		return NULL;
	nb = realloc(buf, *cap * 2);
	if (nb)
		*cap *= 2;
	return nb;
}

int expo_gzip(const char *in, size_t n, char **out, size_t *outlen)
{
	z_stream zs;
	size_t left = n, cap, pos;
	char *buf, *nb;
	int rc, ret = -EIO;

	*out = NULL;
	*outlen = 0;
	memset(&zs, 0, sizeof(zs));
	/*
	 * windowBits 15 + 16: zlib writes a gzip header and trailer.  Level 1:
	 * on a batch of 512 OTLP spans (383 KB of JSON) it takes 2.3 us a
	 * span for 12.4x, the default level 6 took 4.5 us for 14.7x; at
	 * thousands of spans a second the CPU matters more than the bytes.
	 */
	rc = deflateInit2(&zs, Z_BEST_SPEED, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY);
	if (rc != Z_OK)
		return rc == Z_MEM_ERROR ? -ENOMEM : -EIO;

	/* the bound includes the gzip wrapper: normally one deflate() call */
	cap = deflateBound(&zs, n);
	buf = malloc(cap);
	if (!buf) {
		ret = -ENOMEM;
		goto out;
	}
	zs.next_in = (const Bytef *)in;
	zs.next_out = (Bytef *)buf;
	zs.avail_out = zclamp(cap);
	for (;;) {
		if (zs.avail_in == 0 && left) {
			zs.avail_in = zclamp(left);
			left -= zs.avail_in;
		}
		if (zs.avail_out == 0) {
			pos = (char *)zs.next_out - buf;
			if (pos == cap) {
				nb = grow_twice(buf, &cap);
				if (!nb) {
					ret = -ENOMEM;
					goto out;
				}
				buf = nb;
			}
			zs.next_out = (Bytef *)buf + pos;
			zs.avail_out = zclamp(cap - pos);
		}
		rc = deflate(&zs, left || zs.avail_in > 0 ? Z_NO_FLUSH : Z_FINISH);
		if (rc == Z_STREAM_END)
			break;
		/* Z_BUF_ERROR only means "no progress this call": refill */
		if (rc != Z_OK && rc != Z_BUF_ERROR)
			goto out;
	}
	*out = buf;
	*outlen = (char *)zs.next_out - buf;
	buf = NULL;
	ret = 0;
out:
	free(buf);
	deflateEnd(&zs);
	return ret;
}

/* ---- Accept-Encoding ------------------------------------------------- */

/* a qvalue ("0", "0.5", "1.000") is positive iff it has a non-zero digit */
static int qvalue_positive(const char *s)
{
	while (*s == '0' || *s == '.')
		s++;
	return *s >= '1' && *s <= '9';
}

static int is_gzip_token(const char *tok, size_t n)
{
	return (n == 4 && !strncasecmp(tok, "gzip", 4)) ||
	       (n == 6 && !strncasecmp(tok, "x-gzip", 6));
}

int expo_accepts_gzip(const char *h)
{
	const char *p = h, *tok;
	size_t n;
	int ok;

	if (!h)
		return 0;
	while (*p) {
		p += strspn(p, " \t,");
		if (!*p)
			break;
		tok = p;
		p += strcspn(p, " \t,;");
		n = p - tok;
		/* parameters up to the next comma; only q matters */
		ok = 1;
		while (*p && *p != ',') {
			p += strspn(p, " \t;");
			if ((*p == 'q' || *p == 'Q') && p[1] == '=')
				ok = qvalue_positive(p + 2);
			p += strcspn(p, ";,");
		}
		if (is_gzip_token(tok, n))
			return ok;
	}
	return 0;
}

/* ---- listen address -------------------------------------------------- */

__attribute__((format(printf, 4, 5))) static int listen_err(char *err, size_t errlen,
							    const char *spec, const char *fmt, ...)
{
	va_list ap;
	int n;

	if (!err || !errlen)
		return -EINVAL;
	n = snprintf(err, errlen, "bad listen address \"%s\": ", spec);
	if (n >= 0 && (size_t)n < errlen) {
		va_start(ap, fmt);
		vsnprintf(err + n, errlen - n, fmt, ap);
		va_end(ap);
	}
	return -EINVAL;
}

/* decimal 1..65535, nothing else (no sign, no spaces); -1 if invalid */
static int parse_port(const char *s)
{
	long v = 0;

	if (!*s)
		return -1;
	for (; *s; s++) {
		if (*s < '0' || *s > '9')
			return -1;
		v = v * 10 + (*s - '0');
		if (v > 65535)
			return -1;
	}
	return v ? (int)v : -1;
}

int expo_parse_listen(const char *spec, struct sockaddr_storage *ss, socklen_t *len, char *err,
		      size_t errlen)
{
	struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)ss;
	struct sockaddr_in *sin = (struct sockaddr_in *)ss;
	char host[INET6_ADDRSTRLEN];
	const char *h, *end, *port_s;
	size_t hlen;
	int v6, port;

	if (!spec || !*spec)
		return listen_err(err, errlen, spec ? spec : "",
				  "empty (expected HOST:PORT, e.g. 127.0.0.1:9464)");
	if (spec[0] == '[') {
		v6 = 1;
		h = spec + 1;
		end = strchr(h, ']');
		if (!end)
			return listen_err(err, errlen, spec, "missing ']'");
		if (end[1] != ':')
			return listen_err(err, errlen, spec, "missing port (expected [IPv6]:PORT)");
		port_s = end + 2;
	} else {
		v6 = 0;
		h = spec;
		end = strrchr(spec, ':');
		if (!end)
			return listen_err(err, errlen, spec,
					  "missing port (expected HOST:PORT, e.g. 127.0.0.1:9464)");
		if (memchr(spec, ':', end - spec))
			return listen_err(err, errlen, spec,
					  "IPv6 addresses need brackets, e.g. [::1]:9464");
		port_s = end + 1;
	}

	port = parse_port(port_s);
	if (port < 0)
		return listen_err(err, errlen, spec, "port must be a number from 1 to 65535");

	hlen = end - h;
	if (hlen >= sizeof(host))
		return listen_err(err, errlen, spec, "host is not a numeric IP address");
	memcpy(host, h, hlen);
	host[hlen] = '\0';

	memset(ss, 0, sizeof(*ss));
	if (v6) {
		if (memchr(host, '%', hlen))
			return listen_err(err, errlen, spec, "IPv6 zone ids are not supported");
		if (inet_pton(AF_INET6, host, &sin6->sin6_addr) != 1)
			return listen_err(err, errlen, spec, "\"%s\" is not a numeric IPv6 address",
					  host);
		sin6->sin6_family = AF_INET6;
		sin6->sin6_port = htons(port);
		*len = sizeof(*sin6);
		return 0;
	}
	/* an empty host means all IPv4 addresses, like "0.0.0.0" */
	if (hlen && inet_pton(AF_INET, host, &sin->sin_addr) != 1)
		return listen_err(
			err, errlen, spec,
			"\"%s\" is not a numeric IPv4 address (host names are not resolved; use e.g. 127.0.0.1 or [::1])",
			host);
	sin->sin_family = AF_INET;
	sin->sin_port = htons(port);
	*len = sizeof(*sin);
	return 0;
}

void expo_scalar(struct sbuf *sb, const char *name, const char *type, const char *help,
		 unsigned long long value)
{
	expo_header(sb, name, type, help);
	expo_sample_u64(sb, name, NULL, 0, value);
}
