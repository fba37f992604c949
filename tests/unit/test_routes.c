// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * Unit tests for user/routes.c: path -> route label rules, the cardinality
 * cap, the hash -> id memory and bounded memory under random input.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "../../user/routes.h"

/* ---- helpers ------------------------------------------------------------- */

/* splitmix64: deterministic, so failures reproduce */
static __u64 prng_next(__u64 *state)
{
	__u64 z = (*state += 0x9e3779b97f4a7c15ULL);

	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
	return z ^ (z >> 31);
}

static bool is_hex_byte(char c)
{
	return (c >= '0' && c <= '9') || (c >= 'A' && c <= 'F') || (c >= 'a' && c <= 'f');
}

/* Rule 7 and 8: what any label handed to Prometheus must look like. */
static void assert_clean(const char *label)
{
	size_t i, n;

	assert_non_null(label);
	n = strlen(label);
	assert_true(n > 0);
	assert_true(n <= ROUTES_LABEL_MAX);
	for (i = 0; i < n; i++) {
		unsigned char c = label[i];

		assert_true(c >= 0x21 && c <= 0x7e);
		assert_true(c != '"' && c != '\\');
		if (c == '%') {
			assert_true(i + 2 < n);
			assert_true(is_hex_byte(label[i + 1]));
			assert_true(is_hex_byte(label[i + 2]));
		}
	}
}

static const char *resolve_n(struct route_table *rt, const char *path, size_t len, int truncated)
{
	__u32 id = routes_resolve(rt, path, len, truncated);
	const char *label;

	assert_true(id >= BS_ROUTE_FIRST);
	label = routes_label(rt, id);
	assert_clean(label);
	return label;
}

static const char *resolve(struct route_table *rt, const char *path)
{
	return resolve_n(rt, path, strlen(path), 0);
}

#define assert_route(rt, path, want) assert_string_equal(resolve((rt), (path)), (want))
#define assert_route_n(rt, path, len, trunc, want) \
	assert_string_equal(resolve_n((rt), (path), (len), (trunc)), (want))

static int setup(void **state)
{
	*state = routes_new(1000);
	return *state ? 0 : -1;
}

static int teardown(void **state)
{
	routes_free(*state);
	return 0;
}

/* ---- heuristics ---------------------------------------------------------- */

static void test_digits(void **state)
{
	struct route_table *rt = *state;

	assert_route(rt, "/users/42", "/users/:id");
	assert_route(rt, "/users/42/posts/7", "/users/:id/posts/:id");
	assert_route(rt, "/0", "/:id");
	assert_route(rt, "/v1/items", "/v1/items");
	assert_route(rt, "/12a", "/12a");
	assert_route(rt, "/-12", "/-12");
	assert_route(rt, "/1.5", "/1.5");
}

static void test_uuid(void **state)
{
	struct route_table *rt = *state;

	assert_route(rt, "/o/550e8400-e29b-41d4-a716-446655440000", "/o/:id");
	assert_route(rt, "/o/550E8400-E29B-41D4-A716-446655440000", "/o/:id");
	assert_route(rt, "/o/550e8400-E29B-41d4-A716-446655440000/x", "/o/:id/x");
	/* all letters, but a UUID: still an id */
	assert_route(rt, "/o/abcdefab-cdef-abcd-efab-cdefabcdefab", "/o/:id");
	/* wrong shapes are kept */
	assert_route(rt, "/o/550e8400-e29b-41d4-a716-44665544000",
		     "/o/550e8400-e29b-41d4-a716-44665544000");
	assert_route(rt, "/o/550e8400e-29b-41d4-a716-446655440000",
		     "/o/550e8400e-29b-41d4-a716-446655440000");
	assert_route(rt, "/o/550e8400-e29b-41d4-a716-44665544000g",
		     "/o/550e8400-e29b-41d4-a716-44665544000g");
}

static void test_long_hex(void **state)
{
	struct route_table *rt = *state;

	assert_route(rt, "/obj/5f1d7a3b9c2e4d6f", "/obj/:id");
	assert_route(rt, "/obj/5F1D7A3B9C2E4D6F", "/obj/:id");
	assert_route(rt, "/c/da39a3ee5e6b4b0d3255bfef95601890afd80709", "/c/:id");
	assert_route(rt, "/obj/0000000000000000", "/obj/:id");
	/* 16 hex letters, no digit: a word, kept */
	assert_route(rt, "/obj/deadbeefdeadbeef", "/obj/deadbeefdeadbeef");
	/* 15 hex digits: too short */
	assert_route(rt, "/obj/5f1d7a3b9c2e4d6", "/obj/5f1d7a3b9c2e4d6");
	/* not all hex */
	assert_route(rt, "/obj/5f1d7a3b9c2e4d6fg", "/obj/5f1d7a3b9c2e4d6fg");
	/* short hex words are kept */
	assert_route(rt, "/cafe", "/cafe");
	assert_route(rt, "/beef/f00d", "/beef/f00d");
	assert_route(rt, "/abc123", "/abc123");
}

static void test_empty_segments(void **state)
{
	struct route_table *rt = *state;

	assert_route(rt, "", "/");
	assert_route(rt, "/", "/");
	assert_route(rt, "//", "//");
	assert_route(rt, "//a", "//a");
	assert_route(rt, "/a/", "/a/");
	assert_route(rt, "/1//2/", "/:id//:id/");
	assert_route_n(rt, NULL, 0, 0, "/");
}

/* ---- explicit patterns --------------------------------------------------- */

static void add_ok(struct route_table *rt, const char *pattern)
{
	char err[128] = "";

	assert_int_equal(routes_add_pattern(rt, pattern, err, sizeof(err)), 0);
	assert_string_equal(err, "");
}

static void test_patterns(void **state)
{
	struct route_table *rt = *state;

	add_ok(rt, "/users/:id/posts");
	add_ok(rt, "/files/*");
	add_ok(rt, "/");

	assert_route(rt, "/users/alice/posts", "/users/:id/posts");
	assert_route(rt, "/users/42/posts", "/users/:id/posts");
	/* ':name' needs a non-empty segment; the heuristics take over */
	assert_route(rt, "/users//posts", "/users//posts");
	/* trailing slash and extra segments do not match */
	assert_route(rt, "/users/alice/posts/", "/users/alice/posts/");
	assert_route(rt, "/users/alice/posts/1", "/users/alice/posts/:id");
	assert_route(rt, "/users/alice", "/users/alice");
	/* literal segments are case-sensitive */
	assert_route(rt, "/Users/alice/posts", "/Users/alice/posts");

	assert_route(rt, "/files/a", "/files/*");
	assert_route(rt, "/files/a/b/c.txt", "/files/*");
	assert_route(rt, "/files//", "/files/*");
	/* '*' needs one or more segments */
	assert_route(rt, "/files/", "/files/");
	assert_route(rt, "/files", "/files");
	assert_route(rt, "/filesx/a", "/filesx/a");

	assert_route(rt, "/", "/");
	assert_route(rt, "/?q=1", "/");
	assert_route(rt, "http://h/users/bob/posts?x", "/users/:id/posts");
}

static void test_pattern_priority(void **state)
{
	struct route_table *a = *state, *b = routes_new(10);

	assert_non_null(b);
	add_ok(a, "/api/:version/health");
	add_ok(a, "/api/v1/:thing");
	add_ok(b, "/api/v1/:thing");
	add_ok(b, "/api/:version/health");

	assert_route(a, "/api/v1/health", "/api/:version/health");
	assert_route(b, "/api/v1/health", "/api/v1/:thing");
	assert_route(a, "/api/v1/status", "/api/v1/:thing");
	assert_route(b, "/api/v2/health", "/api/:version/health");

	/* patterns win over the heuristics */
	add_ok(a, "/orders/:order");
	assert_route(a, "/orders/123", "/orders/:order");
	assert_route(a, "/orders/123/items", "/orders/:id/items");
	routes_free(b);
}

static void add_bad(struct route_table *rt, const char *pattern)
{
	char err[128] = "";

	assert_int_equal(routes_add_pattern(rt, pattern, err, sizeof(err)), -EINVAL);
	assert_true(strlen(err) > 0);
	/* err is optional */
	assert_int_equal(routes_add_pattern(rt, pattern, NULL, 0), -EINVAL);
}

static void test_pattern_invalid(void **state)
{
	struct route_table *rt = *state;
	char err[8], longpat[ROUTES_LABEL_MAX + 2];

	add_bad(rt, NULL);
	add_bad(rt, "");
	add_bad(rt, "users/:id");
	add_bad(rt, "*");
	add_bad(rt, "/a/*/b");
	add_bad(rt, "/*/");
	add_bad(rt, "/a/:");
	add_bad(rt, "/a/:/b");
	add_bad(rt, "/:");
	add_bad(rt, "/a*");
	add_bad(rt, "/a/b*c");
	add_bad(rt, "/a?b=1");
	add_bad(rt, "/a#f");
	add_bad(rt, "/a b");
	add_bad(rt, "/a\"b");
	add_bad(rt, "/a\\b");
	add_bad(rt, "/a\nb");
	add_bad(rt, "/caf\xc3\xa9");
	add_bad(rt, "/100%");
	add_bad(rt, "/a%zz");

	memset(longpat, 'a', sizeof(longpat) - 1);
	longpat[0] = '/';
	longpat[sizeof(longpat) - 1] = '\0';
	add_bad(rt, longpat);
	longpat[ROUTES_LABEL_MAX] = '\0';
	add_ok(rt, longpat);

	/* a short err buffer is filled, not overrun */
	assert_int_equal(routes_add_pattern(rt, "", err, sizeof(err)), -EINVAL);
	assert_int_equal(strlen(err), sizeof(err) - 1);

	add_ok(rt, "/*");
	add_ok(rt, "/a%20b/:x:y");
	add_ok(rt, "/a//b");
	/* nothing rejected was added: the first valid catch-all wins */
	assert_route(rt, "/x/y", "/*");
	assert_route(rt, "/a", "/*");
}

/* ---- target forms -------------------------------------------------------- */

static void test_absolute_form(void **state)
{
	struct route_table *rt = *state;

	assert_route(rt, "http://example.com/a/1", "/a/:id");
	assert_route(rt, "https://example.com/a", "/a");
	assert_route(rt, "HTTPS://Example.com:8443/x?y=1", "/x");
	assert_route(rt, "HtTp://h:80//z", "//z");
	assert_route(rt, "http://host", "/");
	assert_route(rt, "http://host:8080", "/");
	assert_route(rt, "http://host?x=1", "/");
	assert_route(rt, "http://host#frag", "/");
	assert_route(rt, "http://", "/");
	assert_route(rt, "http://user@host/p", "/p");
	/* an authority that filled the capture: the path is unknown */
	assert_route_n(rt, "http://very-long-host", 21, 1, "/...");

	/* not absolute-form and not starting with '/' */
	assert_route(rt, "example.com:443", "_connect");
	assert_route(rt, "[::1]:8443", "_connect");
	assert_route(rt, "*", "_connect");
	assert_route(rt, "ftp://host/x", "_connect");
	assert_route(rt, "http:/host/x", "_connect");
	assert_route(rt, "httpx://host/x", "_connect");
	assert_route(rt, "a/b", "_connect");
	assert_route_n(rt, "host.example:44", 15, 1, "_connect");
}

static void test_query_fragment(void **state)
{
	struct route_table *rt = *state;

	assert_route(rt, "/a?b=1", "/a");
	assert_route(rt, "/a#frag", "/a");
	assert_route(rt, "/a/42?x=1#y", "/a/:id");
	assert_route(rt, "/a#x?y", "/a");
	assert_route(rt, "/a/?", "/a/");
	assert_route(rt, "/?x", "/");
	assert_route(rt, "?x", "/");
	assert_route(rt, "#x", "/");
	/* the query holds bytes that would otherwise need escaping */
	assert_route(rt, "/s?q=a b\"\n", "/s");
	/* the path ended before the capture limit: not really truncated */
	assert_route_n(rt, "/a/b?xxxxxxxx", 13, 1, "/a/b");
}

/* ---- label hygiene ------------------------------------------------------- */

static void test_escaping(void **state)
{
	struct route_table *rt = *state;

	assert_route(rt,
		     "/a\x01"
		     "b",
		     "/a%01b");
	assert_route(rt,
		     "/a\x1f"
		     "b",
		     "/a%1Fb");
	assert_route(rt, "/a b", "/a%20b");
	assert_route(rt, "/a\tb", "/a%09b");
	assert_route(rt, "/a\"b", "/a%22b");
	assert_route(rt, "/a\\b", "/a%5Cb");
	assert_route(rt, "/a\nb", "/a%0Ab");
	assert_route(rt, "/a\r\nb", "/a%0D%0Ab");
	assert_route(rt, "/a\x7f", "/a%7F");
	assert_route(rt, "/\x80\xff", "/%80%FF");
	assert_route(rt, "/caf\xc3\xa9", "/caf%C3%A9");
	assert_route_n(rt, "/a\0b", 4, 0, "/a%00b");
	/* a lone '%' is escaped, a valid escape is kept */
	assert_route(rt, "/100%", "/100%25");
	assert_route(rt, "/a%2", "/a%252");
	assert_route(rt, "/a%zz", "/a%25zz");
	assert_route(rt, "/%%41", "/%25%41");
	assert_route(rt, "/a%20b", "/a%20b");
	assert_route(rt, "/a%2fb", "/a%2fb");
	/* the escape's digits must be in the same segment */
	assert_route(rt, "/a%/20", "/a%25/:id");
	/* printable punctuation is kept */
	assert_route(rt, "/a'b{c}=d,e", "/a'b{c}=d,e");
	/* raw and pre-escaped spellings share a label */
	assert_int_equal(routes_resolve(rt, "/x y", 4, 0), routes_resolve(rt, "/x%20y", 6, 0));
}

/* ---- length -------------------------------------------------------------- */

static void test_truncation(void **state)
{
	struct route_table *rt = *state;
	char path[BS_PATH_MAX];

	assert_route_n(rt, "/a/b/partial", 12, 1, "/a/b/...");
	assert_route_n(rt, "/a/1/partial", 12, 1, "/a/:id/...");
	assert_route_n(rt, "/a/b/", 5, 1, "/a/b/...");
	assert_route_n(rt, "/partial", 8, 1, "/...");
	assert_route_n(rt, "/", 1, 1, "/...");

	/* a captured 128-byte path of digits: last segment dropped */
	memset(path, '7', BS_PATH_MAX);
	memcpy(path, "/n/", 3);
	assert_route_n(rt, path, BS_PATH_MAX, 1, "/n/...");
	assert_route_n(rt, path, BS_PATH_MAX, 0, "/n/:id");
}

static void test_label_length(void **state)
{
	struct route_table *rt = *state;
	char path[512], want[ROUTES_LABEL_MAX + 8];
	size_t i;

	/* exactly 160 bytes: kept whole */
	memset(path, 'a', ROUTES_LABEL_MAX);
	path[0] = '/';
	path[80] = '/';
	path[ROUTES_LABEL_MAX] = '\0';
	assert_route(rt, path, path);

	/* 161 bytes: cut after the first segment */
	path[ROUTES_LABEL_MAX] = 'a';
	path[ROUTES_LABEL_MAX + 1] = '\0';
	memcpy(want, path, 80);
	strcpy(want + 80, "/...");
	assert_route(rt, path, want);

	/* one segment longer than a label: nothing whole fits */
	path[80] = 'a';
	assert_route(rt, path, "/...");

	/* escaping expands 12 segments of ten spaces to 31 bytes each */
	for (i = 0; i < 12; i++) {
		path[i * 11] = '/';
		memset(path + i * 11 + 1, ' ', 10);
	}
	path[12 * 11] = '\0';
	want[0] = '\0';
	for (i = 0; i < 5; i++) /* 5 * 31 = 155 <= 160 - 4 */
		strcat(want, "/%20%20%20%20%20%20%20%20%20%20");
	strcat(want, "/...");
	assert_int_equal(strlen(want), 159);
	assert_route(rt, path, want);

	/* ':id' is longer than a one-digit segment */
	for (i = 0; i < 64; i++)
		memcpy(path + 2 * i, "/1", 2);
	path[128] = '\0';
	want[0] = '\0';
	for (i = 0; i < 39; i++) /* 39 * 4 = 156 */
		strcat(want, "/:id");
	strcat(want, "/...");
	assert_route(rt, path, want);
}

static void test_truncated_patterns(void **state)
{
	struct route_table *rt = *state;

	add_ok(rt, "/files/*");
	add_ok(rt, "/users/:id");
	add_ok(rt, "/static/:dir/*");

	assert_route_n(rt, "/files/abc", 10, 1, "/files/*");
	assert_route_n(rt, "/files/", 7, 1, "/files/*");
	assert_route_n(rt, "/static/css/x", 13, 1, "/static/:dir/*");
	/* ':dir' itself was cut off */
	assert_route_n(rt, "/static/cs", 10, 1, "/static/...");
	/* the last segment may be longer than what was captured */
	assert_route_n(rt, "/files", 6, 1, "/...");
	assert_route_n(rt, "/users/12", 9, 1, "/users/...");
}

/* ---- cardinality --------------------------------------------------------- */

static void test_cap(void **state)
{
	struct route_table *rt = routes_new(3);
	__u32 a, b, c;

	(void)state;
	assert_non_null(rt);
	a = routes_resolve(rt, "/a", 2, 0);
	b = routes_resolve(rt, "/b", 2, 0);
	c = routes_resolve(rt, "/c/1", 4, 0);
	assert_int_equal(a, BS_ROUTE_FIRST);
	assert_int_equal(b, BS_ROUTE_FIRST + 1);
	assert_int_equal(c, BS_ROUTE_FIRST + 2);
	assert_int_equal(routes_count(rt), 3);
	assert_int_equal(routes_overflowed(rt), 0);

	assert_int_equal(routes_resolve(rt, "/d", 2, 0), BS_ROUTE_OTHER);
	assert_int_equal(routes_overflowed(rt), 1);
	assert_int_equal(routes_resolve(rt, "/e", 2, 0), BS_ROUTE_OTHER);
	assert_int_equal(routes_resolve(rt, "/d", 2, 0), BS_ROUTE_OTHER);
	assert_int_equal(routes_overflowed(rt), 3);
	assert_int_equal(routes_count(rt), 3);

	/* known labels keep their ids, also from new raw paths */
	assert_int_equal(routes_resolve(rt, "/a", 2, 0), a);
	assert_int_equal(routes_resolve(rt, "/a?x=1", 6, 0), a);
	assert_int_equal(routes_resolve(rt, "/c/99", 5, 0), c);
	assert_int_equal(routes_resolve(rt, "http://h/b", 10, 0), b);
	assert_int_equal(routes_overflowed(rt), 3);

	assert_string_equal(routes_label(rt, a), "/a");
	assert_string_equal(routes_label(rt, c), "/c/:id");
	assert_string_equal(routes_label(rt, BS_ROUTE_OTHER), "_other");
	assert_null(routes_label(rt, BS_ROUTE_UNRESOLVED));
	assert_null(routes_label(rt, BS_ROUTE_FIRST + 3));
	assert_null(routes_label(rt, 0xffffffffu));
	routes_free(rt);
}

static void test_cap_zero(void **state)
{
	struct route_table *rt = routes_new(0);

	(void)state;
	assert_non_null(rt);
	assert_int_equal(routes_resolve(rt, "/", 1, 0), BS_ROUTE_OTHER);
	assert_int_equal(routes_resolve(rt, "/a", 2, 0), BS_ROUTE_OTHER);
	assert_int_equal(routes_count(rt), 0);
	assert_int_equal(routes_overflowed(rt), 2);
	assert_null(routes_label(rt, BS_ROUTE_FIRST));
	routes_free(rt);
}

static void test_shared_id(void **state)
{
	struct route_table *rt = *state;
	static const char *const paths[] = {
		"/users/1",
		"/users/22?page=2",
		"/users/550e8400-e29b-41d4-a716-446655440000",
		"/users/5f1d7a3b9c2e4d6f0011",
		"http://example.com/users/9",
		"HTTPS://x:1/users/0#top",
	};
	__u32 id = routes_resolve(rt, paths[0], strlen(paths[0]), 0);
	size_t i;

	for (i = 1; i < sizeof(paths) / sizeof(paths[0]); i++)
		assert_int_equal(routes_resolve(rt, paths[i], strlen(paths[i]), 0), id);
	assert_int_equal(routes_count(rt), 1);
	assert_string_equal(routes_label(rt, id), "/users/:id");

	/* distinct labels, distinct ids */
	assert_int_not_equal(routes_resolve(rt, "/users", 6, 0), id);
	assert_int_not_equal(routes_resolve(rt, "/users/", 7, 0), id);
	assert_int_equal(routes_count(rt), 3);
}

static void test_null_safe(void **state)
{
	(void)state;
	routes_free(NULL);
	assert_int_equal(routes_count(NULL), 0);
	assert_int_equal(routes_overflowed(NULL), 0);
	assert_string_equal(routes_label(NULL, BS_ROUTE_OTHER), "_other");
	assert_null(routes_label(NULL, BS_ROUTE_FIRST));
}

/* ---- hash -> id memory --------------------------------------------------- */

static void test_remember(void **state)
{
	struct route_table *rt = *state;
	__u32 id = 0;

	assert_int_equal(routes_lookup_hash(rt, 0x1234, &id), -ENOENT);
	routes_remember(rt, 0x1234, 7);
	assert_int_equal(routes_lookup_hash(rt, 0x1234, &id), 0);
	assert_int_equal(id, 7);
	/* the same slot may hold it; another hash is still unknown */
	assert_int_equal(routes_lookup_hash(rt, 0x1235, &id), -ENOENT);

	routes_remember(rt, 0x1234, 9);
	assert_int_equal(routes_lookup_hash(rt, 0x1234, &id), 0);
	assert_int_equal(id, 9);

	/* hash 0 is an ordinary hash */
	routes_remember(rt, 0, BS_ROUTE_OTHER);
	assert_int_equal(routes_lookup_hash(rt, 0, &id), 0);
	assert_int_equal(id, BS_ROUTE_OTHER);

	/* remembering BS_ROUTE_UNRESOLVED forgets */
	routes_remember(rt, 0x1234, BS_ROUTE_UNRESOLVED);
	assert_int_equal(routes_lookup_hash(rt, 0x1234, &id), -ENOENT);
	assert_int_equal(routes_lookup_hash(rt, 0, NULL), 0);
}

static void test_remember_collision(void **state)
{
	struct route_table *rt = *state;
	const __u64 a = 0xa5a5a5a5deadbeefULL;
	__u64 h, victim = 0;
	__u32 id = 0;

	routes_remember(rt, a, 100);
	/* find a hash that takes a's slot */
	for (h = 1; h < 64ULL * ROUTES_REMEMBER_SLOTS; h++) {
		routes_remember(rt, h, 200);
		if (routes_lookup_hash(rt, a, &id) == -ENOENT) {
			victim = h;
			break;
		}
		assert_int_equal(id, 100);
		/* keep the table free of everything but a */
		routes_remember(rt, h, BS_ROUTE_UNRESOLVED);
	}
	assert_int_not_equal(victim, 0);

	/* the newer hash owns the slot; a is gone, never answered with 200 */
	assert_int_equal(routes_lookup_hash(rt, victim, &id), 0);
	assert_int_equal(id, 200);
	assert_int_equal(routes_lookup_hash(rt, a, &id), -ENOENT);

	/* forgetting a must not forget the hash now in its slot */
	routes_remember(rt, a, BS_ROUTE_UNRESOLVED);
	assert_int_equal(routes_lookup_hash(rt, victim, &id), 0);
	assert_int_equal(id, 200);

	/* and a comes back when remembered again */
	routes_remember(rt, a, 101);
	assert_int_equal(routes_lookup_hash(rt, a, &id), 0);
	assert_int_equal(id, 101);
	assert_int_equal(routes_lookup_hash(rt, victim, &id), -ENOENT);
}

static void test_remember_eviction(void **state)
{
	struct route_table *rt = *state;
	const size_t n = 200000;
	__u64 *hashes, seed = 42;
	size_t i, found = 0;
	__u32 id;

	hashes = malloc(n * sizeof(*hashes));
	assert_non_null(hashes);
	for (i = 0; i < n; i++) {
		hashes[i] = prng_next(&seed);
		/* a unique id per hash, so any wrong answer is visible */
		routes_remember(rt, hashes[i], BS_ROUTE_FIRST + (__u32)i);
		assert_int_equal(routes_lookup_hash(rt, hashes[i], &id), 0);
		assert_int_equal(id, BS_ROUTE_FIRST + (__u32)i);
	}
	for (i = 0; i < n; i++) {
		if (routes_lookup_hash(rt, hashes[i], &id) != 0)
			continue;
		assert_int_equal(id, BS_ROUTE_FIRST + (__u32)i);
		found++;
	}
	assert_true(found <= ROUTES_REMEMBER_SLOTS);
	/* most slots are in use after 3x their number of inserts */
	assert_true(found > ROUTES_REMEMBER_SLOTS / 2);
	/* hashes never remembered are never found */
	for (i = 0; i < n; i++)
		assert_int_equal(routes_lookup_hash(rt, prng_next(&seed), &id), -ENOENT);
	free(hashes);
}

/* ---- bounded memory under random input ----------------------------------- */

static size_t random_segment(__u64 *seed, char *out, size_t room)
{
	static const char *const words[] = {
		"api", "v1", "users", "posts", "cafe", "static", "a", "",
	};
	static const char hex[] = "0123456789abcdef";
	__u64 r = prng_next(seed);
	char seg[64];
	size_t n, i;

	switch (r % 6) {
	case 0: /* digits */
		n = snprintf(seg, sizeof(seg), "%llu", (unsigned long long)(r >> 20));
		break;
	case 1: /* long hex */
		n = 16 + (r >> 8) % 24;
		for (i = 0; i < n; i++)
			seg[i] = hex[prng_next(seed) & 15];
		break;
	case 2: /* uuid-ish */
		n = snprintf(seg, sizeof(seg), "%08llx-%04llx-%04llx-%04llx-%012llx",
			     (unsigned long long)(r & 0xffffffff),
			     (unsigned long long)((r >> 32) & 0xffff),
			     (unsigned long long)((r >> 48) & 0xffff),
			     (unsigned long long)((r >> 16) & 0xffff),
			     (unsigned long long)(prng_next(seed) & 0xffffffffffffULL));
		break;
	case 3: /* word */
		n = snprintf(seg, sizeof(seg), "%s",
			     words[(r >> 8) % (sizeof(words) / sizeof(words[0]))]);
		break;
	default: /* random bytes, any value */
		n = (r >> 8) % 24;
		for (i = 0; i < n; i++)
			seg[i] = (char)prng_next(seed);
		break;
	}
	n = n < room ? n : room;
	memcpy(out, seg, n);
	return n;
}

static size_t random_path(__u64 *seed, char *path, size_t max)
{
	static const char *const prefixes[] = {
		"/", "/", "/", "/", "/", "http://h", "HTTPS://h:1", "",
	};
	const char *pre = prefixes[prng_next(seed) % 8];
	size_t len = strlen(pre);

	memcpy(path, pre, len);
	while (len < max && prng_next(seed) % 8) {
		len += random_segment(seed, path + len, max - len);
		if (len < max)
			path[len++] = '/';
	}
	return len;
}

static void test_stress_bounded(void **state)
{
	struct route_table *rt = routes_new(1000);
	char path[BS_PATH_MAX];
	__u64 seed = 0x5eed;
	unsigned long long other = 0;
	size_t i, len;
	__u32 id;

	(void)state;
	assert_non_null(rt);
	add_ok(rt, "/static/*");
	for (i = 0; i < 200000; i++) {
		len = random_path(&seed, path, sizeof(path));
		id = routes_resolve(rt, path, len, len == sizeof(path));
		assert_true(id == BS_ROUTE_OTHER || id >= BS_ROUTE_FIRST);
		assert_true(id < BS_ROUTE_FIRST + 1000);
		assert_clean(routes_label(rt, id));
		other += id == BS_ROUTE_OTHER;
		assert_true(routes_count(rt) <= 1000);
	}
	assert_int_equal(routes_count(rt), 1000);
	assert_int_equal(routes_overflowed(rt), other);
	assert_true(other > 0);
	/* every id handed out still has its label */
	for (id = BS_ROUTE_FIRST; id < BS_ROUTE_FIRST + 1000; id++)
		assert_clean(routes_label(rt, id));
	assert_null(routes_label(rt, BS_ROUTE_FIRST + 1000));
	routes_free(rt);
}

/* Explicit routes keep their label whatever fills the table afterwards. */
static void test_pattern_reserved(void **state)
{
	struct route_table *rt = routes_new(3);
	char err[128], path[32];
	__u32 id;

	(void)state;
	assert_non_null(rt);
	assert_int_equal(routes_add_pattern(rt, "/users/:name", err, sizeof(err)), 0);
	assert_int_equal(routes_count(rt), 1);
	/* a flood of new labels fills the cap ... */
	for (int i = 0; i < 100; i++) {
		snprintf(path, sizeof(path), "/flood%c%d", 'a' + i % 26, i);
		routes_resolve(rt, path, strlen(path), 0);
	}
	assert_int_equal(routes_count(rt), 3);
	/* ... and the pattern still labels its paths */
	id = routes_resolve(rt, "/users/bob", 10, 0);
	assert_int_not_equal(id, BS_ROUTE_OTHER);
	assert_string_equal(routes_label(rt, id), "/users/:name");
	/* patterns beyond the cap are refused with a reason */
	assert_int_equal(routes_add_pattern(rt, "/x/:y", err, sizeof(err)), -ENOSPC);
	assert_non_null(strstr(err, "--max-routes"));
	routes_free(rt);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_digits, setup, teardown),
		cmocka_unit_test_setup_teardown(test_uuid, setup, teardown),
		cmocka_unit_test_setup_teardown(test_long_hex, setup, teardown),
		cmocka_unit_test_setup_teardown(test_empty_segments, setup, teardown),
		cmocka_unit_test_setup_teardown(test_patterns, setup, teardown),
		cmocka_unit_test(test_pattern_reserved),
		cmocka_unit_test_setup_teardown(test_pattern_priority, setup, teardown),
		cmocka_unit_test_setup_teardown(test_pattern_invalid, setup, teardown),
		cmocka_unit_test_setup_teardown(test_absolute_form, setup, teardown),
		cmocka_unit_test_setup_teardown(test_query_fragment, setup, teardown),
		cmocka_unit_test_setup_teardown(test_escaping, setup, teardown),
		cmocka_unit_test_setup_teardown(test_truncation, setup, teardown),
		cmocka_unit_test_setup_teardown(test_label_length, setup, teardown),
		cmocka_unit_test_setup_teardown(test_truncated_patterns, setup, teardown),
		cmocka_unit_test(test_cap),
		cmocka_unit_test(test_cap_zero),
		cmocka_unit_test_setup_teardown(test_shared_id, setup, teardown),
		cmocka_unit_test(test_null_safe),
		cmocka_unit_test_setup_teardown(test_remember, setup, teardown),
		cmocka_unit_test_setup_teardown(test_remember_collision, setup, teardown),
		cmocka_unit_test_setup_teardown(test_remember_eviction, setup, teardown),
		cmocka_unit_test(test_stress_bounded),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
