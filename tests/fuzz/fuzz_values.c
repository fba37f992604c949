// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * fuzz_values: the parsers of what an operator or the environment hands the
 * daemon, plus the Accept-Encoding header of a scrape.  The first byte picks
 * the parser (modulo the number of them), the rest is its text:
 *
 *   0 parse_bytes         --memory-ceiling, --traces-file-size ("4G", "512KiB")
 *   1 parse_uint          --pid, --port, --max-routes ... (three ranges)
 *   2 limit_parse_rate    --limit-conn/--limit-pkt/--limit-req RATE[:BURST]
 *   3 limit_parse_shed_pending   --shed-pending N[:LOW]
 *   4 limit_parse_cidr    --allow/--deny, and its text again (round trip)
 *   5 limit_read_cidr_file       --allow-file/--deny-file contents
 *   6 expo_parse_listen   --listen HOST:PORT, [V6]:PORT
 *   7 otlp_parse_headers  --otlp-headers, OTEL_EXPORTER_OTLP_[TRACES_]HEADERS
 *   8 expo_accepts_gzip   a scraper's Accept-Encoding
 *   9 traces_resolve      trace flags and the OTEL_* environment: a byte of
 *                         switches, then '\n'-separated values (empty: unset)
 *                         for the variables in env_names[], then the flags
 *  10 limit_preset        --limit-preset NAME
 *
 * Invariants: what a parser accepts is in the range it promises (and what
 * limit_format_cidr writes parses back to the same network); header lines
 * are "name: value" with a token name and no control byte but tab (no
 * header injection); error messages are NUL-terminated within their buffer.
 */
#include <errno.h>
#include <unistd.h>
#include <netinet/in.h>
#include <sys/mman.h>
#include <strings.h>

#include "fuzz.h"
#include "expo.h"
#include "limiter.h"
#include "optval.h"
#include "traces.h"

static void check_err(const char *err, size_t len)
{
	FZ_CHECK(memchr(err, 0, len) != NULL);
}

static void do_bytes(const char *s)
{
	unsigned long long v;

	if (!parse_bytes(s, &v))
		FZ_CHECK(v > 0 && s[0] >= '0' && s[0] <= '9');
}

static void do_uint(const char *s)
{
	static const unsigned long r[][2] = { { 1, 65535 }, { 16, 4194304 }, { 0, 10000000 } };
	unsigned long v;

	for (size_t i = 0; i < sizeof(r) / sizeof(r[0]); i++)
		if (!parse_uint(s, r[i][0], r[i][1], &v))
			FZ_CHECK(v >= r[i][0] && v <= r[i][1] && s[0] >= '0' && s[0] <= '9');
}

static void do_rate(const char *s)
{
	__u32 rate = 0, burst = 0;
	int ret = limit_parse_rate(s, &rate, &burst);

	FZ_CHECK(ret == 0 || ret == -EINVAL || ret == -ERANGE);
	if (!ret)
		FZ_CHECK(rate >= 1 && rate <= 1000000000U && burst >= 1 &&
			 burst <= BS_LIM_MAX_BURST);
}

static void do_shed(const char *s)
{
	__u32 n, low;

	if (!limit_parse_shed_pending(s, &n, &low))
		FZ_CHECK(n >= 1 && low < n);
}

static void check_cidr(const struct limit_cidr *c)
{
	struct limit_cidr again;
	char text[64];
	int len;

	FZ_CHECK(c->v6 <= 1 && c->prefix <= (c->v6 ? 128 : 32));
	/* no host bits: the network itself */
	for (unsigned int bit = c->prefix; bit < 128; bit++)
		FZ_CHECK(!(c->addr[bit / 8] & (0x80 >> (bit % 8))));
	len = limit_format_cidr(c, text, sizeof(text));
	FZ_CHECK(len > 0 && (size_t)len < sizeof(text));
	FZ_CHECK(limit_parse_cidr(text, &again) == 0);
	FZ_CHECK(!memcmp(c, &again, sizeof(again)));
}

static void do_cidr(const char *s)
{
	struct limit_cidr c;

	if (!limit_parse_cidr(s, &c))
		check_cidr(&c);
}

static void do_cidr_file(const uint8_t *p, size_t n)
{
	struct limit_cidr list[4];
	char path[64];
	int fd = memfd_create("fuzz-cidrs", MFD_CLOEXEC), count = 0, line = -1, ret;

	FZ_CHECK(fd >= 0);
	FZ_CHECK(write(fd, p, n) == (ssize_t)n);
	snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
	ret = limit_read_cidr_file(path, list, &count, 4, &line);
	close(fd);
	FZ_CHECK(ret == 0 || ret == -EINVAL);
	FZ_CHECK(count >= 0 && count <= 4 && line >= count);
	for (int i = 0; i < count; i++)
		check_cidr(&list[i]);
}

static void do_listen(const char *s)
{
	struct sockaddr_storage ss;
	socklen_t len = 0;
	char err[48];

	memset(err, 'x', sizeof(err));
	if (expo_parse_listen(s, &ss, &len, err, sizeof(err))) {
		check_err(err, sizeof(err));
		return;
	}
	if (ss.ss_family == AF_INET) {
		FZ_CHECK(len == sizeof(struct sockaddr_in));
		FZ_CHECK(((struct sockaddr_in *)&ss)->sin_port != 0);
	} else {
		FZ_CHECK(ss.ss_family == AF_INET6 && len == sizeof(struct sockaddr_in6));
		FZ_CHECK(((struct sockaddr_in6 *)&ss)->sin6_port != 0);
	}
}

static void do_headers(const char *s)
{
	enum { MAX = 4 };
	static char out[MAX][512];
	int n = otlp_parse_headers(s, out, MAX);

	FZ_CHECK(n >= -1 && n <= MAX);
	for (int i = 0; i < n; i++) {
		const char *l = out[i], *colon;
		size_t len;

		FZ_CHECK(memchr(l, 0, sizeof(out[i])) != NULL);
		len = strlen(l);
		colon = strstr(l, ": ");
		FZ_CHECK(colon != NULL && colon > l);
		for (const char *p = l; p < colon; p++)
			FZ_CHECK(*p > 0x20 && *p < 0x7f && !strchr("\"(),/:;<=>?@[\\]{}", *p));
		for (size_t k = 0; k < len; k++)
			FZ_CHECK(((unsigned char)l[k] >= 0x20 || l[k] == '\t') && l[k] != 0x7f);
	}
}

static void do_gzip(const char *s)
{
	int r = expo_accepts_gzip(s);

	FZ_CHECK(r == 0 || r == 1);
	if (r)
		FZ_CHECK(strcasestr(s, "gzip") != NULL);
}

/* ---- traces_resolve: flags and a stand-in environment ---- */

static const char *const env_names[] = {
	"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
	"OTEL_EXPORTER_OTLP_ENDPOINT",
	"OTEL_EXPORTER_OTLP_TRACES_PROTOCOL",
	"OTEL_EXPORTER_OTLP_PROTOCOL",
	"OTEL_EXPORTER_OTLP_TRACES_HEADERS",
	"OTEL_EXPORTER_OTLP_HEADERS",
	"OTEL_EXPORTER_OTLP_TRACES_COMPRESSION",
	"OTEL_EXPORTER_OTLP_COMPRESSION",
	"OTEL_SERVICE_NAME",
	"OTEL_TRACES_SAMPLER",
	"OTEL_TRACES_SAMPLER_ARG",
	"OTEL_SDK_DISABLED",
	"OTEL_TRACES_EXPORTER",
};
#define NENV   (sizeof(env_names) / sizeof(env_names[0]))
#define NFLAGS 8 /* the string members of struct traces_opts, in order */

static char *env_vals[NENV];

static const char *env_get(const char *name)
{
	for (size_t i = 0; i < NENV; i++)
		if (!strcmp(name, env_names[i]))
			return env_vals[i];
	FZ_CHECK(!"traces_resolve asked for a variable env_names[] lacks");
	return NULL;
}

static void do_traces(struct fz *f)
{
	static const unsigned int ringbufs[4] = { 0, 4096, 3000, 1U << 20 };
	static const long rates[4] = { -1, 0, 100, 1000000 };
	char *flags[NFLAGS] = {}, *field, err[96];
	struct traces_opts o = {};
	struct traces_setup ts;
	uint8_t sw = 0;

	fz_u8(f, &sw);
	for (size_t i = 0; i < NENV + NFLAGS; i++) {
		field = fz_field(f, '\n');
		if (field && !*field) {
			free(field);
			field = NULL;
		}
		if (i < NENV)
			env_vals[i] = field;
		else
			flags[i - NENV] = field;
	}
	o.otlp_endpoint = flags[0];
	o.otlp_headers = flags[1];
	o.compression = flags[2];
	o.zipkin_url = flags[3];
	o.file = flags[4];
	o.sampler = flags[5];
	o.ratio = flags[6];
	o.service = flags[7];
	o.console = sw & 1;
	o.query = sw & 2;
	o.ringbuf = ringbufs[(sw >> 2) & 3];
	o.max_rate = rates[(sw >> 4) & 3];

	memset(err, 'x', sizeof(err));
	if (traces_resolve(&o, env_get, &ts, err, sizeof(err))) {
		check_err(err, sizeof(err));
	} else {
		FZ_CHECK(memchr(ts.otlp_url, 0, sizeof(ts.otlp_url)) != NULL);
		if (ts.tracer.otlp_url) {
			FZ_CHECK(ts.tracer.otlp_url == ts.otlp_url);
			FZ_CHECK(!strncasecmp(ts.otlp_url, "http://", 7) ||
				 !strncasecmp(ts.otlp_url, "https://", 8));
		}
		if (ts.on) {
			FZ_CHECK(ts.ratio <= 1ULL << 32);
			FZ_CHECK(ts.ringbuf >= 4096 && !(ts.ringbuf & (ts.ringbuf - 1)));
			FZ_CHECK(memchr(ts.sampler_desc, 0, sizeof(ts.sampler_desc)) != NULL);
			if (ts.tracer.otlp_headers)
				do_headers(ts.tracer.otlp_headers);
		}
	}
	for (size_t i = 0; i < NENV; i++) {
		free(env_vals[i]);
		env_vals[i] = NULL;
	}
	for (size_t i = 0; i < NFLAGS; i++)
		free(flags[i]);
}

static void do_preset(const char *s)
{
	struct limit_opts o;

	limit_opts_init(&o);
	if (!limit_preset(s, &o))
		FZ_CHECK(o.conn_rate && o.conn_burst >= o.conn_rate && o.pkt_rate &&
			 o.pkt_burst <= BS_LIM_MAX_BURST);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct fz f = { data, size };
	uint8_t which;
	char *s;

	if (fz_u8(&f, &which))
		return 0;
	which %= 11;
	if (which == 5) {
		do_cidr_file(f.p, f.n);
		return 0;
	}
	if (which == 9) {
		do_traces(&f);
		return 0;
	}
	/* a C string, as argv and getenv hand it over */
	s = malloc(f.n + 1);
	FZ_CHECK(s != NULL);
	memcpy(s, f.p, f.n);
	s[f.n] = 0;
	switch (which) {
	case 0:
		do_bytes(s);
		break;
	case 1:
		do_uint(s);
		break;
	case 2:
		do_rate(s);
		break;
	case 3:
		do_shed(s);
		break;
	case 4:
		do_cidr(s);
		break;
	case 6:
		do_listen(s);
		break;
	case 7:
		do_headers(s);
		break;
	case 8:
		do_gzip(s);
		break;
	default:
		do_preset(s);
		break;
	}
	free(s);
	return 0;
}
