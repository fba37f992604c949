// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * Unit tests for user/expo.c: Prometheus/JSON text building, gzip, the
 * Accept-Encoding check and the listen address parser.  The last test feeds
 * a hostile exposition to promtool, the reference parser.
 */
#include <errno.h>
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/wait.h>
#include <cmocka.h>
#include <zlib.h>

#include "../../user/expo.h"

#define PROMTOOL "/usr/bin/promtool"
#define FFFD	 "\xef\xbf\xbd"

/* ---- helpers ---------------------------------------------------------- */

static void expect_label(const char *in, size_t n, const char *want)
{
	struct sbuf sb;

	sbuf_init(&sb);
	expo_label_value(&sb, in, n);
	assert_false(sb.oom);
	assert_int_equal(sb.len, strlen(want));
	assert_memory_equal(sb.buf, want, sb.len);
	sbuf_free(&sb);
}

static void expect_json(const char *in, size_t n, const char *want)
{
	struct sbuf sb;

	sbuf_init(&sb);
	json_string(&sb, in, n);
	assert_false(sb.oom);
	assert_string_equal(sb.buf, want);
	sbuf_free(&sb);
}

static void expect_double(double v, const char *want)
{
	struct sbuf sb;

	sbuf_init(&sb);
	expo_double(&sb, v);
	assert_string_equal(sb.buf, want);
	sbuf_free(&sb);
}

/* ---- sbuf ------------------------------------------------------------- */

static void test_sbuf_grow(void **state)
{
	struct sbuf sb;
	char big[1000];
	int i;

	(void)state;
	sbuf_init(&sb);
	memset(big, 'x', sizeof(big) - 1);
	big[sizeof(big) - 1] = '\0';
	for (i = 0; i < 100; i++)
		sbuf_printf(&sb, "%d:%s;", i, big);
	assert_false(sb.oom);
	assert_int_equal(strlen(sb.buf), sb.len);
	assert_true(sb.cap > sb.len);
	assert_memory_equal(sb.buf, "0:xxx", 5);
	assert_non_null(strstr(sb.buf, ";99:x"));

	sbuf_reset(&sb);
	assert_int_equal(sb.len, 0);
	assert_string_equal(sb.buf, "");
	sbuf_puts(&sb, "ab");
	sbuf_put(&sb, "cdef", 2);
	sbuf_printf(&sb, "%s-%llu", "e", 18446744073709551615ULL);
	assert_string_equal(sb.buf, "abcde-18446744073709551615");
	sbuf_free(&sb);
	assert_null(sb.buf);
	assert_int_equal(sb.len, 0);
	sbuf_free(&sb); /* twice is fine */
}

static void test_sbuf_oom_sticks(void **state)
{
	struct sbuf sb;

	(void)state;
	sbuf_init(&sb);
	sbuf_puts(&sb, "kept");
	sb.oom = 1; /* as after a failed realloc */
	sbuf_puts(&sb, "dropped");
	sbuf_printf(&sb, "%d", 42);
	assert_string_equal(sb.buf, "kept");
	assert_int_equal(sb.len, 4);
	sbuf_reset(&sb);
	assert_false(sb.oom);
	sbuf_puts(&sb, "again");
	assert_string_equal(sb.buf, "again");
	sbuf_free(&sb);
}

/* decimal integers as printf("%llu") writes them, at every digit count */
static void test_sbuf_u64(void **state)
{
	unsigned long long x = 88172645463325252ULL, v;
	struct sbuf sb;
	char want[32];
	int i;

	(void)state;
	sbuf_init(&sb);
	for (i = 0; i < 200000; i++) {
		/* 0, 1, 9, 10, 99, 100, ... then random values of every length */
		if (i < 40) {
			unsigned long long p = 1;

			for (int k = 0; k < i / 2; k++)
				p *= 10;
			v = i % 2 ? p : p - 1;
		} else {
			x ^= x << 13;
			x ^= x >> 7;
			x ^= x << 17;
			v = x >> (x & 63);
		}
		sbuf_reset(&sb);
		sbuf_put_u64(&sb, v);
		snprintf(want, sizeof(want), "%llu", v);
		assert_string_equal(sb.buf, want);
		assert_int_equal(sb.len, strlen(want));
	}
	sbuf_reset(&sb);
	sbuf_put_u64(&sb, 18446744073709551615ULL);
	assert_string_equal(sb.buf, "18446744073709551615");
	sb.oom = 1;
	sbuf_put_u64(&sb, 7);
	assert_string_equal(sb.buf, "18446744073709551615");
	sbuf_free(&sb);
}

/* ---- escaping --------------------------------------------------------- */

static void test_label_escape(void **state)
{
	(void)state;
	expect_label("plain", 5, "plain");
	expect_label("", 0, "");
	expect_label("a\"b\\c\nd", 7, "a\\\"b\\\\c\\nd");
	expect_label("tab\there", 8, "tab\there");
	/* a NUL inside the given length is data, not the end */
	{
		struct sbuf sb;

		sbuf_init(&sb);
		expo_label_value(&sb, "a\0b", 3);
		assert_int_equal(sb.len, 3);
		assert_memory_equal(sb.buf, "a\0b", 3);
		sbuf_free(&sb);
	}
	expect_label("/api/users?x=1&y=%20", 20, "/api/users?x=1&y=%20");
}

static void test_label_utf8(void **state)
{
	(void)state;
	/* valid 2-, 3- and 4-byte sequences are kept */
	expect_label("caf\xc3\xa9 \xe2\x82\xac \xf0\x9d\x84\x9e", 14,
		     "caf\xc3\xa9 \xe2\x82\xac \xf0\x9d\x84\x9e");
	expect_label("\xef\xbf\xbf\xf4\x8f\xbf\xbf", 7, "\xef\xbf\xbf\xf4\x8f\xbf\xbf");
	/* every byte that does not start a valid sequence becomes U+FFFD */
	expect_label("a\xff\xfe"
		     "b",
		     4, "a" FFFD FFFD "b");
	expect_label("\x80", 1, FFFD);
	/* overlong encodings of '/' */
	expect_label("\xc0\xaf", 2, FFFD FFFD);
	expect_label("\xe0\x80\xaf", 3, FFFD FFFD FFFD);
	/* UTF-16 surrogate, above U+10FFFF */
	expect_label("\xed\xa0\x80", 3, FFFD FFFD FFFD);
	expect_label("\xf4\x90\x80\x80", 4, FFFD FFFD FFFD FFFD);
	/* truncated at the end of the value, and by an ASCII byte */
	expect_label("x\xe2\x82", 3, "x" FFFD FFFD);
	expect_label("\xe2\x82\"", 3, FFFD FFFD "\\\"");
	/* escaping still applies next to replaced bytes */
	expect_label("\xff\\\n", 3, FFFD "\\\\\\n");
}

static void test_help_escape(void **state)
{
	struct sbuf sb;

	(void)state;
	sbuf_init(&sb);
	expo_header(&sb, "x_total", "counter", "back\\slash\nnew \"quoted\"\ttab \xff");
	assert_string_equal(sb.buf, "# HELP x_total back\\\\slash\\nnew \"quoted\"\ttab " FFFD "\n"
				    "# TYPE x_total counter\n");
	sbuf_free(&sb);
}

static void test_json_escape(void **state)
{
	(void)state;
	expect_json("", 0, "\"\"");
	expect_json("plain / text", 12, "\"plain / text\"");
	expect_json("a\"b\\c", 5, "\"a\\\"b\\\\c\"");
	expect_json("\n\r\t\b\f\x01\x1f", 7,
		    "\"\\u000a\\u000d\\u0009\\u0008\\u000c\\u0001\\u001f\"");
	expect_json("nul\0x", 5, "\"nul\\u0000x\"");
	expect_json("\x7f", 1, "\"\x7f\"");
	expect_json("caf\xc3\xa9 \xf0\x9d\x84\x9e", 10, "\"caf\xc3\xa9 \xf0\x9d\x84\x9e\"");
	expect_json("a\xff\xc3"
		    "b",
		    4, "\"a" FFFD FFFD "b\"");
}

/* ---- samples ---------------------------------------------------------- */

static void test_double_format(void **state)
{
	(void)state;
	expect_double(0, "0");
	expect_double(1, "1");
	expect_double(-3, "-3");
	expect_double(0.005, "0.005");
	expect_double(2.5, "2.5");
	expect_double(0.1, "0.1");
	expect_double(10, "10");
	expect_double(16777216, "16777216");
	expect_double(123456789012345.0, "123456789012345");
	expect_double(1e15, "1e+15");
	expect_double(1e-7, "1e-07");
	expect_double(1.0 / 3, "0.3333333333333333");
	expect_double(1.5e300, "1.5e+300");
	expect_double(0.1 + 0.2, "0.30000000000000004");
	expect_double(NAN, "NaN");
	expect_double(INFINITY, "+Inf");
	expect_double(-INFINITY, "-Inf");
}

static void test_sample(void **state)
{
	const struct expo_label l[] = {
		{ "method", "GET" },
		{ "route", "/a\"b" },
		{ "empty", NULL },
	};
	struct sbuf sb;

	(void)state;
	sbuf_init(&sb);
	expo_sample_u64(&sb, "up", NULL, 0, 1);
	expo_sample_u64(&sb, "big_total", l, 1, 18446744073709551615ULL);
	expo_sample(&sb, "ratio", l, 3, 0.25);
	expo_sample(&sb, "temp", NULL, 0, -1.5e-9);
	expo_sample(&sb, "seconds", l, 2, 1234.5678);
	assert_false(sb.oom);
	assert_string_equal(sb.buf, "up 1\n"
				    "big_total{method=\"GET\"} 18446744073709551615\n"
				    "ratio{method=\"GET\",route=\"/a\\\"b\",empty=\"\"} 0.25\n"
				    "temp -1.5e-09\n"
				    "seconds{method=\"GET\",route=\"/a\\\"b\"} 1234.5678\n");
	sbuf_free(&sb);
}

static void test_histogram(void **state)
{
	static const double b[] = { 0.005, 1, 2.5, 16777216 };
	static const unsigned long long c[] = { 1, 2, 0, 3, 4 };
	const struct expo_label l[] = { { "method", "GET" }, { "code", "200" } };
	struct sbuf sb;

	(void)state;
	sbuf_init(&sb);
	expo_histogram(&sb, "d_seconds", l, 2, b, 4, c, 12.75);
	assert_string_equal(sb.buf,
			    "d_seconds_bucket{method=\"GET\",code=\"200\",le=\"0.005\"} 1\n"
			    "d_seconds_bucket{method=\"GET\",code=\"200\",le=\"1\"} 3\n"
			    "d_seconds_bucket{method=\"GET\",code=\"200\",le=\"2.5\"} 3\n"
			    "d_seconds_bucket{method=\"GET\",code=\"200\",le=\"16777216\"} 6\n"
			    "d_seconds_bucket{method=\"GET\",code=\"200\",le=\"+Inf\"} 10\n"
			    "d_seconds_sum{method=\"GET\",code=\"200\"} 12.75\n"
			    "d_seconds_count{method=\"GET\",code=\"200\"} 10\n");

	/* without labels le is the only one; with no bounds just +Inf */
	sbuf_reset(&sb);
	expo_histogram(&sb, "h", NULL, 0, b, 1, c, 0);
	assert_string_equal(sb.buf, "h_bucket{le=\"0.005\"} 1\n"
				    "h_bucket{le=\"+Inf\"} 3\n"
				    "h_sum 0\n"
				    "h_count 3\n");
	sbuf_reset(&sb);
	expo_histogram(&sb, "h", NULL, 0, NULL, 0, c + 4, 1.5);
	assert_string_equal(sb.buf, "h_bucket{le=\"+Inf\"} 4\n"
				    "h_sum 1.5\n"
				    "h_count 4\n");
	sbuf_free(&sb);
}

/* ---- gzip ------------------------------------------------------------- */

static void gunzip_check(const char *in, size_t n)
{
	char *gz = NULL, *back;
	size_t gzlen = 0;
	z_stream zs;

	assert_int_equal(expo_gzip(in, n, &gz, &gzlen), 0);
	assert_non_null(gz);
	assert_true(gzlen >= 18); /* header + trailer */
	assert_int_equal((unsigned char)gz[0], 0x1f);
	assert_int_equal((unsigned char)gz[1], 0x8b);

	back = malloc(n + 1);
	assert_non_null(back);
	memset(&zs, 0, sizeof(zs));
	assert_int_equal(inflateInit2(&zs, 15 + 16), Z_OK);
	zs.next_in = (Bytef *)gz;
	zs.avail_in = gzlen;
	zs.next_out = (Bytef *)back;
	zs.avail_out = n + 1; /* one spare byte: no trailing garbage */
	assert_int_equal(inflate(&zs, Z_FINISH), Z_STREAM_END);
	assert_int_equal(zs.total_out, n);
	assert_int_equal(zs.avail_in, 0);
	assert_memory_equal(back, in, n);
	inflateEnd(&zs);
	free(back);
	free(gz);
}

static void test_gzip_roundtrip(void **state)
{
	struct sbuf sb;
	size_t i, n = 1 << 20;
	uint32_t x = 2463534242u;
	char *rnd;
	int k;

	(void)state;
	gunzip_check("", 0);
	gunzip_check("hello\n", 6);

	/* compressible: a realistic exposition */
	sbuf_init(&sb);
	for (k = 0; k < 2000; k++)
		sbuf_printf(&sb, "m_total{route=\"/r/%d\"} %d\n", k, k * 7);
	gunzip_check(sb.buf, sb.len);
	sbuf_free(&sb);

	/* incompressible: the output needs the whole deflateBound() */
	rnd = malloc(n);
	assert_non_null(rnd);
	for (i = 0; i < n; i++) {
		x ^= x << 13;
		x ^= x >> 17;
		x ^= x << 5;
		rnd[i] = (char)x;
	}
	gunzip_check(rnd, n);
	free(rnd);
}

/* ---- Accept-Encoding -------------------------------------------------- */

static void test_accepts_gzip(void **state)
{
	(void)state;
	assert_false(expo_accepts_gzip(NULL));
	assert_false(expo_accepts_gzip(""));
	assert_true(expo_accepts_gzip("gzip"));
	assert_true(expo_accepts_gzip("GZip"));
	assert_true(expo_accepts_gzip("x-gzip"));
	assert_true(expo_accepts_gzip("deflate, gzip, br"));
	assert_true(expo_accepts_gzip("gzip;q=1.0, identity; q=0.5, *;q=0"));
	assert_true(expo_accepts_gzip("br;q=1, gzip ; q=0.001"));
	assert_false(expo_accepts_gzip("gzip;q=0"));
	assert_false(expo_accepts_gzip("gzip; q=0.000, deflate"));
	assert_false(expo_accepts_gzip("deflate, br"));
	assert_false(expo_accepts_gzip("*"));
	assert_false(expo_accepts_gzip("gzipx, xgzip"));
	assert_false(expo_accepts_gzip("identity;q=gzip"));
	assert_false(expo_accepts_gzip(" , ;, "));
}

/* ---- listen address -------------------------------------------------- */

static void expect_listen4(const char *spec, const char *ip, int port)
{
	struct sockaddr_storage ss;
	struct sockaddr_in *sin = (struct sockaddr_in *)&ss;
	char err[256] = "", buf[INET_ADDRSTRLEN];
	socklen_t len = 0;

	assert_int_equal(expo_parse_listen(spec, &ss, &len, err, sizeof(err)), 0);
	assert_string_equal(err, "");
	assert_int_equal(len, sizeof(struct sockaddr_in));
	assert_int_equal(sin->sin_family, AF_INET);
	assert_int_equal(ntohs(sin->sin_port), port);
	assert_non_null(inet_ntop(AF_INET, &sin->sin_addr, buf, sizeof(buf)));
	assert_string_equal(buf, ip);
}

static void expect_listen6(const char *spec, const char *ip, int port)
{
	struct sockaddr_storage ss;
	struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)&ss;
	char err[256] = "", buf[INET6_ADDRSTRLEN];
	socklen_t len = 0;

	assert_int_equal(expo_parse_listen(spec, &ss, &len, err, sizeof(err)), 0);
	assert_int_equal(len, sizeof(struct sockaddr_in6));
	assert_int_equal(sin6->sin6_family, AF_INET6);
	assert_int_equal(ntohs(sin6->sin6_port), port);
	assert_int_equal(sin6->sin6_scope_id, 0);
	assert_non_null(inet_ntop(AF_INET6, &sin6->sin6_addr, buf, sizeof(buf)));
	assert_string_equal(buf, ip);
}

static void expect_listen_bad(const char *spec, const char *why)
{
	struct sockaddr_storage ss;
	char err[256] = "";
	socklen_t len = 0;

	assert_int_equal(expo_parse_listen(spec, &ss, &len, err, sizeof(err)), -EINVAL);
	if (!strstr(err, why))
		fail_msg("\"%s\": message \"%s\" lacks \"%s\"", spec ? spec : "(null)", err, why);
	if (spec && !strstr(err, spec))
		fail_msg("\"%s\": message \"%s\" does not name it", spec, err);
}

static void test_listen_good(void **state)
{
	(void)state;
	expect_listen4("127.0.0.1:9464", "127.0.0.1", 9464);
	expect_listen4("0.0.0.0:9464", "0.0.0.0", 9464);
	expect_listen4(":9464", "0.0.0.0", 9464);
	expect_listen4("10.1.2.3:1", "10.1.2.3", 1);
	expect_listen4("127.0.0.1:65535", "127.0.0.1", 65535);
	expect_listen4("127.0.0.1:09464", "127.0.0.1", 9464);
	expect_listen6("[::1]:9464", "::1", 9464);
	expect_listen6("[::]:9464", "::", 9464);
	expect_listen6("[2001:db8::42]:80", "2001:db8::42", 80);
	expect_listen6("[::ffff:127.0.0.1]:80", "::ffff:127.0.0.1", 80);
}

static void test_listen_bad(void **state)
{
	struct sockaddr_storage ss;
	socklen_t len;

	(void)state;
	expect_listen_bad("", "empty");
	expect_listen_bad(NULL, "empty");
	expect_listen_bad("127.0.0.1", "missing port");
	expect_listen_bad("garbage", "missing port");
	expect_listen_bad("[::1]", "missing port");
	expect_listen_bad("[::1]9464", "missing port");
	expect_listen_bad("127.0.0.1:", "port");
	expect_listen_bad("127.0.0.1:0", "port");
	expect_listen_bad("127.0.0.1:65536", "port");
	expect_listen_bad("127.0.0.1:99999999999999999999999", "port");
	expect_listen_bad("127.0.0.1:-1", "port");
	expect_listen_bad("127.0.0.1:+80", "port");
	expect_listen_bad("127.0.0.1: 80", "port");
	expect_listen_bad("127.0.0.1:80x", "port");
	expect_listen_bad("[::1]:", "port");
	expect_listen_bad("localhost:9464", "not a numeric IPv4");
	expect_listen_bad("garbage:9464", "not a numeric IPv4");
	expect_listen_bad("127.1:9464", "not a numeric IPv4");
	expect_listen_bad("256.0.0.1:9464", "not a numeric IPv4");
	expect_listen_bad(" 127.0.0.1:9464", "not a numeric IPv4");
	expect_listen_bad("::1:9464", "brackets");
	expect_listen_bad("[::1:9464", "missing ']'");
	expect_listen_bad("[]:9464", "not a numeric IPv6");
	expect_listen_bad("[127.0.0.1]:9464", "not a numeric IPv6");
	expect_listen_bad("[fe80::1%eth0]:9464", "zone");
	expect_listen_bad("[0123456789abcdef0123456789abcdef0123456789abcdef0]:1",
			  "not a numeric IP");

	/* a NULL or tiny error buffer is fine */
	assert_int_equal(expo_parse_listen("x", &ss, &len, NULL, 0), -EINVAL);
	{
		char tiny[4] = "zzz";

		assert_int_equal(expo_parse_listen("x", &ss, &len, tiny, sizeof(tiny)), -EINVAL);
		assert_int_equal(strlen(tiny), 3);
	}
}

/* ---- promtool --------------------------------------------------------- */

static void build_exposition(struct sbuf *sb)
{
	static const double b[] = { 0.005, 0.1, 1, 2.5, 16777216 };
	static const unsigned long long c1[] = { 1, 2, 3, 0, 0, 5 };
	static const unsigned long long c2[] = { 0, 0, 0, 0, 0, 1 };
	static const char hostile[] = "a\"b\\c\nd\xff\xfe\te\0f";
	const struct expo_label l1[] = {
		{ "method", "GET" }, { "route", hostile }, /* stops at the NUL: strlen() */
	};
	const struct expo_label l2[] = {
		{ "method", "\xc3\xa9\xe2\x82\xac\xf0\x9d\x84\x9e" },
		{ "route", "/\xed\xa0\x80\xc0\xaf\x80" },
	};

	expo_header(sb, "bunscope_requests_total", "counter",
		    "Requests \"served\" \\ seen\nby bunscope \xff.");
	expo_sample_u64(sb, "bunscope_requests_total", l1, 2, 18446744073709551615ULL);
	expo_sample_u64(sb, "bunscope_requests_total", l2, 2, 0);

	expo_header(sb, "bunscope_pending_requests", "gauge", "Requests in flight.");
	expo_sample(sb, "bunscope_pending_requests", NULL, 0, 3);
	expo_sample(sb, "bunscope_pending_requests", l1, 1, 0.5);

	expo_header(sb, "bunscope_request_duration_seconds", "histogram", "Request duration.");
	expo_histogram(sb, "bunscope_request_duration_seconds", l1, 2, b, 5, c1, 0.1 + 0.2);
	expo_histogram(sb, "bunscope_request_duration_seconds", l2, 2, b, 5, c2, 1e300);
}

static void test_promtool(void **state)
{
	char path[] = "/tmp/bunscope-test-expo-XXXXXX";
	char cmd[128];
	struct sbuf sb;
	int fd, rc;

	(void)state;
	if (access(PROMTOOL, X_OK)) {
		print_message("%s not found (Debian package prometheus): "
			      "skipping the reference parser check\n",
			      PROMTOOL);
		skip();
	}
	sbuf_init(&sb);
	build_exposition(&sb);
	assert_false(sb.oom);

	fd = mkstemp(path);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, sb.buf, sb.len), (ssize_t)sb.len);
	close(fd);

	/* promtool prints problems on its own stdout/stderr; exit 0 = clean */
	snprintf(cmd, sizeof(cmd), "%s check metrics < %s", PROMTOOL, path);
	rc = system(cmd);
	unlink(path);
	if (rc != 0) {
		fprintf(stderr, "exposition was:\n%s", sb.buf);
		sbuf_free(&sb);
		fail_msg("promtool check metrics failed (status %d)", rc);
	}
	sbuf_free(&sb);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_sbuf_grow),      cmocka_unit_test(test_sbuf_oom_sticks),
		cmocka_unit_test(test_sbuf_u64),       cmocka_unit_test(test_label_escape),
		cmocka_unit_test(test_label_utf8),     cmocka_unit_test(test_help_escape),
		cmocka_unit_test(test_json_escape),    cmocka_unit_test(test_double_format),
		cmocka_unit_test(test_sample),	       cmocka_unit_test(test_histogram),
		cmocka_unit_test(test_gzip_roundtrip), cmocka_unit_test(test_accepts_gzip),
		cmocka_unit_test(test_listen_good),    cmocka_unit_test(test_listen_bad),
		cmocka_unit_test(test_promtool),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
