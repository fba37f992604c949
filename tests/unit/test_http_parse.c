// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * Unit tests of the HTTP/1.x framing that the BPF programs run
 * (include/http_parse.h), driven here exactly as the kernel drives it:
 * segment by segment, step by step.  Built twice: with the real window and
 * with HP_WIN=16 so that every line crosses window boundaries.
 */
#include <linux/types.h>
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#define HH_CHECK(cond) assert_true(cond)
#include "hp_harness.h"

#define RESP_HI                                                         \
	"HTTP/1.1 200 OK\r\ncontent-type: text/plain;charset=utf-8\r\n" \
	"Date: Sun, 22 Nov 2026 09:54:49 GMT\r\nContent-Length: 2\r\n\r\nhi"
#define GET(path) "GET " path " HTTP/1.1\r\nHost: localhost:3000\r\nUser-Agent: t\r\n\r\n"

/* ---- tests -------------------------------------------------------------------- */

static void test_simple_get(void **state)
{
	struct tconn *t = tc_new();

	(void)state;
	feed(t, REQ, GET("/hello?x=1"));
	assert_int_equal(t->rec.started, 1);
	assert_int_equal(pending(t), 1);
	assert_string_equal(last_path(t), "/hello");
	feed(t, RESP, RESP_HI);
	assert_int_equal(t->rec.completed, 1);
	assert_int_equal(pending(t), 0);
	assert_int_equal(t->rec.done[0].status, 200);
	assert_int_equal(t->rec.done[0].method, BS_M_GET);
	assert_int_equal(t->rec.done[0].resp_body, 2);
	assert_int_equal(t->rec.done[0].req_body, 0);
	assert_int_equal(t->rec.done[0].dur, 1000);
	free(t);
}

static void test_keepalive(void **state)
{
	struct tconn *t = tc_new();

	(void)state;
	for (int i = 0; i < 50; i++) {
		feed(t, REQ, GET("/"));
		assert_int_equal(pending(t), 1);
		feed(t, RESP, RESP_HI);
		assert_int_equal(pending(t), 0);
	}
	assert_int_equal(t->rec.completed, 50);
	tc_close(t);
	assert_int_equal(t->rec.aborted, 0);
	free(t);
}

static void test_pipelined(void **state)
{
	struct tconn *t = tc_new();

	(void)state;
	feed(t, REQ, GET("/a") GET("/a") GET("/a") GET("/b") GET("/a"));
	assert_int_equal(t->rec.started, 5);
	assert_int_equal(pending(t), 5);
	/* Bun corks all answers into one send */
	feed(t, RESP, RESP_HI RESP_HI RESP_HI RESP_HI RESP_HI);
	assert_int_equal(t->rec.completed, 5);
	assert_int_equal(pending(t), 0);
	assert_int_equal(t->rec.overflow, 0);
	/* order preserved: the 4th completion is /b */
	assert_int_not_equal(t->rec.done[3].hash, t->rec.done[0].hash);
	assert_int_equal(t->rec.done[4].hash, t->rec.done[0].hash);
	free(t);
}

static void test_pipeline_overflow(void **state)
{
	struct tconn *t = tc_new();
	char buf[8192] = "";

	(void)state;
	/* 12 distinct paths in one read, the 11th a HEAD: more than HP_FIFO slots */
	for (int i = 0; i < 12; i++) {
		char one[128];

		if (i == 10)
			snprintf(one, sizeof(one), "HEAD /h HTTP/1.1\r\nHost: x\r\n\r\n");
		else
			snprintf(one, sizeof(one), GET("/p%d"), i);
		strcat(buf, one);
	}
	feed(t, REQ, buf);
	assert_int_equal(t->rec.started, 12);
	assert_int_equal(t->rec.overflow, 12 - HP_FIFO);
	buf[0] = 0;
	for (int i = 0; i < 12; i++)
		strcat(buf, i == 10 ? "HTTP/1.1 200 OK\r\ncontent-length: 5\r\n\r\n" : RESP_HI);
	feed(t, RESP, buf);
	assert_int_equal(t->rec.completed, 12);
	assert_int_equal(pending(t), 0);
	/* the slotted ones keep their routes (here: unresolved), the rest are _other */
	for (int i = 0; i < 12; i++)
		assert_int_equal(t->rec.done[i].route,
				 i < HP_FIFO ? BS_ROUTE_UNRESOLVED : BS_ROUTE_OTHER);
	assert_int_equal(t->rec.done[10].resp_body, 0);
	/* back to normal afterwards */
	feed(t, REQ, GET("/after"));
	feed(t, RESP, RESP_HI);
	assert_int_equal(t->rec.completed, 13);
	assert_int_equal(t->rec.done[12].route, BS_ROUTE_UNRESOLVED);
	/* any pipeline depth: every request counted and completed in order */
	{
		struct tconn *u = tc_new();
		char *big = malloc(100 * 128);

		big[0] = 0;
		for (int i = 0; i < 100; i++) {
			char one[128];

			snprintf(one, sizeof(one), GET("/q%d"), i);
			strcat(big, one);
		}
		feed(u, REQ, big);
		assert_int_equal(u->rec.started, 100);
		big[0] = 0;
		for (int i = 0; i < 100; i++)
			strcat(big, RESP_HI);
		feed(u, RESP, big);
		assert_int_equal(u->rec.completed, 100);
		assert_int_equal(pending(u), 0);
		free(big);
		free(u);
	}
	free(t);
}

/* The same exchange split at every byte must give the same result. */
static void test_split_everywhere(void **state)
{
	const char *req =
		"POST /api/items/42?q=z HTTP/1.1\r\nHost: x\r\nContent-Length: 11\r\n"
		"X-Long: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\r\n"
		"\r\nhello world"
		"GET /two HTTP/1.1\r\nHost: x\r\n\r\n";
	const char *resp = "HTTP/1.1 201 Created\r\nContent-Length: 5\r\nDate: x\r\n\r\nabcde"
			   "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n10\r\n"
			   "0123456789abcdef\r\n0\r\n\r\n";
	size_t rl = strlen(req), pl = strlen(resp);

	(void)state;
	for (size_t a = 1; a < rl; a++) {
		struct tconn *t = tc_new();

		feed_ex(t, REQ, req, a, 1);
		feed_ex(t, REQ, req + a, rl - a, 1);
		assert_int_equal(t->rec.started, 2);
		for (size_t b = 0; b < 3; b++) {
			/* responses split in three places too */
			size_t cut = (a * (b + 1) * 7) % pl;

			if (b)
				continue;
			feed_ex(t, RESP, resp, cut, 1);
			feed_ex(t, RESP, resp + cut, pl - cut, 1);
		}
		assert_int_equal(t->rec.completed, 2);
		assert_int_equal(t->rec.done[0].status, 201);
		assert_int_equal(t->rec.done[0].req_body, 11);
		assert_int_equal(t->rec.done[0].resp_body, 5);
		assert_int_equal(t->rec.done[0].method, BS_M_POST);
		assert_int_equal(t->rec.done[1].status, 200);
		assert_int_equal(t->rec.done[1].resp_body, 19);
		assert_int_equal(pending(t), 0);
		for (int k = 0; k < BS_REJ_MAX; k++)
			assert_int_equal(t->rec.rejects[k], 0);
		free(t);
	}
}

/* Byte-by-byte delivery of everything. */
static void test_bytewise(void **state)
{
	const char *req =
		GET("/users/7") "POST /x HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n"
				"5\r\nhello\r\n0\r\n\r\n";
	const char *resp = RESP_HI "HTTP/1.1 204 No Content\r\nDate: x\r\n\r\n";
	struct tconn *t = tc_new();

	(void)state;
	feed_split(t, REQ, req, strlen(req), 1);
	assert_int_equal(t->rec.started, 2);
	assert_string_equal(t->rec.path[0], "/users/7");
	feed_split(t, RESP, resp, strlen(resp), 1);
	assert_int_equal(t->rec.completed, 2);
	assert_int_equal(t->rec.done[1].status, 204);
	assert_int_equal(t->rec.done[1].req_body, 5);
	assert_int_equal(pending(t), 0);
	free(t);
}

static void test_large_bodies(void **state)
{
	size_t blen = 1536 * 1024;
	char *body = malloc(blen);
	struct tconn *t = tc_new();
	char head[256];

	(void)state;
	memset(body, 'z', blen);
	snprintf(head, sizeof(head),
		 "POST /upload HTTP/1.1\r\nHost: x\r\nContent-Length: %zu\r\n\r\n", blen);
	feed(t, REQ, head);
	/* the body arrives in 64 KiB reads; only the count matters */
	feed_split(t, REQ, body, blen, 65536);
	feed(t, REQ, GET("/after"));
	assert_int_equal(t->rec.started, 2);
	feed(t, RESP, "HTTP/1.1 200 OK\r\nContent-Length: 5000000\r\n\r\n");
	assert_int_equal(t->rec.completed, 0);
	/* 5 MB response in sends of 1 MiB, the last one also carries the next answer */
	for (int i = 0; i < 4; i++)
		feed_ex(t, RESP, body, 1048576, 1);
	{
		size_t rest = 5000000 - 4 * 1048576;
		char *tail = malloc(rest + sizeof(RESP_HI));

		memset(tail, 'y', rest);
		memcpy(tail + rest, RESP_HI, sizeof(RESP_HI));
		feed_ex(t, RESP, tail, rest + strlen(RESP_HI), 1);
		free(tail);
	}
	assert_int_equal(t->rec.completed, 2);
	assert_int_equal(t->rec.done[0].req_body, blen);
	assert_int_equal(t->rec.done[0].resp_body, 5000000);
	assert_int_equal(pending(t), 0);
	free(body);
	free(t);
}

/* sendfile bodies cannot be read, only counted */
static void test_unreadable_body(void **state)
{
	struct tconn *t = tc_new();

	(void)state;
	feed(t, REQ, GET("/file"));
	feed(t, RESP, "HTTP/1.1 200 OK\r\nContent-Length: 3000000\r\n\r\n");
	feed_ex(t, RESP, NULL, 3000000, 0);
	assert_int_equal(t->rec.completed, 1);
	assert_int_equal(t->rec.done[0].resp_body, 3000000);
	/* unreadable bytes where a head is expected: given up, counted */
	feed(t, REQ, GET("/file"));
	feed_ex(t, RESP, NULL, 100, 0);
	assert_int_equal(t->rec.desync[HP_DS_UNREADABLE], 1);
	free(t);
}

static void test_chunked_response_streaming(void **state)
{
	struct tconn *t = tc_new();

	(void)state;
	feed(t, REQ, GET("/stream"));
	feed(t, RESP, "HTTP/1.1 200 OK\r\nDate: x\r\nTransfer-Encoding: chunked\r\n\r\n1\r\na\r\n");
	assert_int_equal(t->rec.completed, 0);
	/* Bun's sendmsg with three iovecs is three segments of one syscall */
	feed(t, RESP, "1\r\n");
	feed(t, RESP, "b");
	assert_int_equal(t->rec.completed, 0);
	feed(t, RESP, "\r\n0\r\n\r\n");
	assert_int_equal(t->rec.completed, 1);
	assert_int_equal(t->rec.done[0].resp_body, 2);
	assert_int_equal(t->rec.done[0].dur, 4000);
	free(t);
}

static void test_head_204_304_100_101(void **state)
{
	struct tconn *t = tc_new();

	(void)state;
	feed(t, REQ, "HEAD / HTTP/1.1\r\nHost: x\r\n\r\n");
	feed(t, RESP, "HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\n");
	assert_int_equal(t->rec.completed, 1);
	assert_int_equal(t->rec.done[0].method, BS_M_HEAD);
	assert_int_equal(t->rec.done[0].resp_body, 0);

	feed(t, REQ, GET("/a") GET("/b"));
	feed(t, RESP,
	     "HTTP/1.1 304 Not Modified\r\nDate: x\r\n\r\nHTTP/1.1 204 No Content\r\nDate: x\r\n\r\n");
	assert_int_equal(t->rec.completed, 3);

	feed(t, REQ,
	     "POST /e HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nExpect: 100-continue\r\n\r\n");
	feed(t, RESP, "HTTP/1.1 100 Continue\r\n\r\n");
	assert_int_equal(t->rec.completed, 3);
	assert_int_equal(pending(t), 1);
	feed(t, REQ, "abc");
	feed(t, RESP, RESP_HI);
	assert_int_equal(t->rec.completed, 4);
	assert_int_equal(t->rec.done[3].req_body, 3);

	feed(t, REQ,
	     "GET /ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n");
	feed(t, RESP, "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n\r\n");
	assert_int_equal(t->rec.completed, 5);
	assert_int_equal(t->rec.done[4].status, 101);
	assert_true(t->c.cflags & HP_CF_UPGRADED);
	/* frames after the upgrade are not HTTP and not an error */
	feed(t, REQ, "\x81\x85\x37\xfa\x21\x3d\x7f\x9f\x4d\x51\x58");
	feed(t, RESP, "\x81\x05hello");
	assert_int_equal(pending(t), 0);
	assert_int_equal(t->rec.upgrades, 1);
	assert_int_equal(t->rec.ws_msgs[REQ][BS_WS_TEXT], 1);
	assert_int_equal(t->rec.ws_bytes[REQ][BS_WS_TEXT], 5);
	assert_int_equal(t->rec.ws_msgs[RESP][BS_WS_TEXT], 1);
	assert_int_equal(t->rec.ws_bytes[RESP][BS_WS_TEXT], 5);
	for (int k = 0; k < BS_REJ_MAX; k++)
		assert_int_equal(t->rec.rejects[k], 0);
	free(t);
}

static void test_http10_until_close(void **state)
{
	struct tconn *t = tc_new();

	(void)state;
	feed(t, REQ, "GET / HTTP/1.0\r\n\r\n");
	assert_int_equal(t->rec.started, 1);
	feed(t, RESP, "HTTP/1.0 200 OK\r\n\r\nsome body");
	feed(t, RESP, " and more");
	assert_int_equal(t->rec.completed, 0);
	tc_close(t);
	assert_int_equal(t->rec.completed, 1);
	assert_int_equal(t->rec.done[0].resp_body, 18);
	assert_int_equal(t->rec.aborted, 0);
	free(t);
}

static void test_abort_on_close(void **state)
{
	struct tconn *t = tc_new();

	(void)state;
	feed(t, REQ, GET("/slow") GET("/slow2"));
	assert_int_equal(pending(t), 2);
	tc_close(t);
	assert_int_equal(t->rec.aborted, 2);
	assert_int_equal(pending(t), 0);
	free(t);
}

/* A keep-alive client repeating its request line: parsed once, exactly. */
static void test_request_line_cache(void **state)
{
	struct tconn *t = tc_new();
	int paths;

	(void)state;
	t->rec.resolve = 1;
	for (int i = 0; i < 5; i++) {
		feed(t, REQ, GET("/"));
		feed(t, RESP, RESP_HI);
	}
	assert_int_equal(t->rec.completed, 5);
	/* the path was looked at once; the other four came from the cache
	 * (which the HP_NO_FAST build leaves out) */
	assert_int_equal(t->rec.npaths, HP_NO_FAST ? 5 : 1);
	for (int i = 1; i < 5; i++) {
		assert_int_equal(t->rec.done[i].hash, t->rec.done[0].hash);
		assert_int_equal(t->rec.done[i].route, t->rec.done[0].route);
		assert_int_equal(t->rec.done[i].method, BS_M_GET);
	}
	assert_int_not_equal(t->rec.done[0].route, BS_ROUTE_UNRESOLVED);
	/* same path, other method: not the cached line */
	feed(t, REQ, "HEAD / HTTP/1.1\r\nHost: x\r\n\r\n");
	feed(t, RESP, "HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\n");
	assert_int_equal(t->rec.done[5].method, BS_M_HEAD);
	assert_int_equal(t->rec.done[5].resp_body, 0);
	/* other version: HTTP/1.0 needs no Host, and must not inherit 1.1's flags */
	feed(t, REQ, "GET / HTTP/1.0\r\n\r\n");
	assert_int_equal(t->rec.started, 7);
	assert_true(t->c.req.mflags & HP_RF_ANCIENT);
	feed(t, RESP, RESP_HI);
	feed(t, REQ, "GET / HTTP/1.1\r\n\r\n"); /* 1.1 again, without Host */
	assert_int_equal(t->rec.rejects[BS_REJ_HOST], 1);
	free(t);

	/* a line longer than the cache is parsed every time, and right */
	t = tc_new();
	t->rec.resolve = 1;
	for (int i = 0; i < 3; i++) {
		feed(t, REQ, GET("/a/rather/long/path/that/does/not/fit"));
		feed(t, RESP, RESP_HI);
	}
	paths = t->rec.npaths;
	assert_int_equal(paths, 3);
	assert_string_equal(last_path(t), "/a/rather/long/path/that/does/not/fit");
	assert_int_equal(t->rec.completed, 3);
	free(t);
}

struct reject_case {
	const char *name;
	const char *req;
	int reason; /* -1: accepted */
};

/* Expectations measured against Bun 1.4.5 (see tests/integration). */
static const struct reject_case reject_cases[] = {
	{ "ok", "GET / HTTP/1.1\r\nHost: x\r\n\r\n", -1 },
	{ "all methods", "UNSUBSCRIBE / HTTP/1.1\r\nHost: x\r\n\r\n", -1 },
	{ "m-search", "M-SEARCH / HTTP/1.1\r\nHost: x\r\n\r\n", -1 },
	{ "unknown method", "FOO / HTTP/1.1\r\nHost: x\r\n\r\n", BS_REJ_METHOD },
	{ "PRI", "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", BS_REJ_METHOD },
	{ "lowercase", "get / HTTP/1.1\r\nHost: x\r\n\r\n", BS_REJ_METHOD },
	{ "no host", "GET / HTTP/1.1\r\n\r\n", BS_REJ_HOST },
	{ "connect no host", "CONNECT x:443 HTTP/1.1\r\n\r\n", BS_REJ_HOST },
	{ "connect", "CONNECT x:443 HTTP/1.1\r\nHost: x\r\n\r\n", -1 },
	{ "upgrade no host", "GET / HTTP/1.1\r\nUpgrade: foo\r\n\r\n", BS_REJ_HOST },
	{ "http10 no host", "GET / HTTP/1.0\r\n\r\n", -1 },
	{ "http2 version", "GET / HTTP/2.0\r\nHost: x\r\n\r\n", BS_REJ_VERSION },
	{ "bare lf", "GET / HTTP/1.1\nHost: x\n\n", BS_REJ_VERSION },
	{ "two spaces", "GET  / HTTP/1.1\r\nHost: x\r\n\r\n", BS_REJ_TARGET },
	{ "asterisk", "OPTIONS * HTTP/1.1\r\nHost: x\r\n\r\n", BS_REJ_TARGET },
	{ "absolute", "GET http://x/abs?q HTTP/1.1\r\nHost: x\r\n\r\n", -1 },
	{ "absolute https", "GET https://x HTTP/1.1\r\nHost: x\r\n\r\n", -1 },
	{ "space in target", "GET /a b HTTP/1.1\r\nHost: x\r\n\r\n", BS_REJ_VERSION },
	{ "leading crlf", "\r\nGET / HTTP/1.1\r\nHost: x\r\n\r\n", BS_REJ_GARBAGE },
	{ "space before colon", "GET / HTTP/1.1\r\nHost : x\r\n\r\n", BS_REJ_HEADER },
	{ "empty name", "GET / HTTP/1.1\r\nHost: x\r\n: y\r\n\r\n", BS_REJ_HEADER },
	{ "no colon", "GET / HTTP/1.1\r\nHost: x\r\nfoo\r\n\r\n", BS_REJ_HEADER },
	{ "ctl in value",
	  "GET / HTTP/1.1\r\nHost: x\r\nX-A: a\x01"
	  "b\r\n\r\n",
	  BS_REJ_HEADER },
	{ "tab in value", "GET / HTTP/1.1\r\nHost: x\r\nX-A: a\tb\r\n\r\n", -1 },
	{ "del in value",
	  "GET / HTTP/1.1\r\nHost: x\r\nX-A: a\x7f"
	  "b\r\n\r\n",
	  -1 },
	{ "cr alone", "GET / HTTP/1.1\r\nHost: x\r\nX-A: a\rb\r\n\r\n", BS_REJ_HEADER },
	{ "bad host value ok", "GET / HTTP/1.1\r\nHost: x y\r\n\r\n", -1 },
	{ "cl dup same",
	  "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\nContent-Length: 1\r\n\r\na", -1 },
	{ "cl dup diff",
	  "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\nContent-Length: 00\r\n\r\n",
	  BS_REJ_CONTENT_LENGTH },
	{ "cl empty", "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: \r\n\r\n",
	  BS_REJ_CONTENT_LENGTH },
	{ "cl neg", "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: -1\r\n\r\n",
	  BS_REJ_CONTENT_LENGTH },
	{ "cl huge", "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 99999999999999999999\r\n\r\n",
	  BS_REJ_CONTENT_LENGTH },
	{ "cl+te",
	  "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
	  BS_REJ_TRANSFER_ENCODING },
	{ "te chunked case",
	  "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: ChUnKeD\r\n\r\n0\r\n\r\n", -1 },
	{ "te trailing comma",
	  "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked,\r\n\r\n0\r\n\r\n", -1 },
	{ "te gzip,chunked",
	  "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n",
	  BS_REJ_TRANSFER_ENCODING },
	{ "te identity", "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: identity\r\n\r\n",
	  BS_REJ_TRANSFER_ENCODING },
	{ "te twice",
	  "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
	  BS_REJ_TRANSFER_ENCODING },
	{ "tls", "\x16\x03\x01\x00\xc4\x01\x00\x00\xc0\x03\x03", BS_REJ_TLS },
	{ "binary", "\x01\x02\x03garbage", BS_REJ_GARBAGE },
	{ "bad chunk",
	  "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nabc\r\n0\r\n\r\n",
	  BS_REJ_CHUNKED },
};

static void test_rejections(void **state)
{
	(void)state;
	for (size_t i = 0; i < sizeof(reject_cases) / sizeof(reject_cases[0]); i++) {
		const struct reject_case *rc = &reject_cases[i];
		struct tconn *t = tc_new();
		int total = 0;

		feed(t, REQ, rc->req);
		for (int k = 0; k < BS_REJ_MAX; k++)
			total += t->rec.rejects[k];
		if (rc->reason < 0) {
			if (total || t->rec.started != 1)
				fail_msg("%s: expected accepted, rejects=%d started=%d", rc->name,
					 total, t->rec.started);
		} else {
			if (t->rec.rejects[rc->reason] != 1 || total != 1)
				fail_msg("%s: expected reason %d once, got total %d", rc->name,
					 rc->reason, total);
			/* a bad chunk is found after dispatch: that request was pending */
			if (rc->reason != BS_REJ_CHUNKED && t->rec.started)
				fail_msg("%s: rejected request was started", rc->name);
		}
		free(t);
	}
}

static void test_limits(void **state)
{
	char *buf = malloc(40000);

	(void)state;
	/* head total (with the final CRLF) <= 16384 passes, 16385 does not */
	for (int total = 16382; total <= 16386; total++) {
		struct tconn *t = tc_new();
		const char *base = "GET / HTTP/1.1\r\nHost: x\r\nX-Pad: ";
		size_t bl = strlen(base), pad = total - bl - 4;

		memcpy(buf, base, bl);
		memset(buf + bl, 'a', pad);
		memcpy(buf + bl + pad, "\r\n\r\n", 5);
		assert_int_equal(strlen(buf), total);
		feed_split(t, REQ, buf, total, 1000);
		if (total <= 16384)
			assert_int_equal(t->rec.started, 1);
		else
			assert_int_equal(t->rec.rejects[BS_REJ_TOO_LARGE], 1);
		free(t);
	}
	/* 198 fields pass, 199 do not */
	for (int nf = 198; nf <= 199; nf++) {
		struct tconn *t = tc_new();
		size_t o = (size_t)sprintf(buf, "GET / HTTP/1.1\r\nHost: x\r\n");

		for (int i = 0; i < nf - 1; i++)
			o += (size_t)sprintf(buf + o, "X-%d: a\r\n", i);
		strcpy(buf + o, "\r\n");
		feed(t, REQ, buf);
		if (nf == 198)
			assert_int_equal(t->rec.started, 1);
		else
			assert_int_equal(t->rec.rejects[BS_REJ_TOO_LARGE], 1);
		free(t);
	}
	/* an endless line is cut off at the limit, not buffered forever */
	{
		struct tconn *t = tc_new();

		memset(buf, 'A', 40000);
		feed_split(t, REQ, buf, 40000, 3000);
		assert_int_equal(t->rec.rejects[BS_REJ_TOO_LARGE], 1);
		free(t);
	}
	free(buf);
}

/*
 * Chunk lines of requests as Bun 1.4 reads them (each case measured against
 * the binary): extensions after ';' of bytes above 0x20, any number of
 * leading zeros, a size below 2^58, CRLF after the data and after the last
 * chunk (no trailers); anything else is refused after dispatch.  An
 * accepted body is followed by a pipelined request, which must be seen.
 */
struct chunk_case {
	const char *name, *body;
	int ok;
};

static const struct chunk_case chunk_cases[] = {
	{ "plain", "5\r\nhello\r\n0\r\n\r\n", 1 },
	{ "two chunks, upper case", "2\r\nhe\r\nA\r\nllohellooo\r\n0\r\n\r\n", 1 },
	{ "extension", "5;ext=1\r\nhello\r\n0\r\n\r\n", 1 },
	{ "empty extension", "5;\r\nhello\r\n0\r\n\r\n", 1 },
	{ "extensions", "5;a=b;c=d\r\nhello\r\n0\r\n\r\n", 1 },
	{ "quoted extension", "5;a=\"b\"\r\nhello\r\n0\r\n\r\n", 1 },
	{ "DEL and high bytes", "5;\x7f\x80\xff\r\nhello\r\n0\r\n\r\n", 1 },
	{ "last chunk extension", "5\r\nhello\r\n0;x\r\n\r\n", 1 },
	{ "30 leading zeros", "000000000000000000000000000005\r\nhello\r\n0\r\n\r\n", 1 },
	{ "zeros, last chunk", "5\r\nhello\r\n000000000000000000000000\r\n\r\n", 1 },
	{ "space after size", "5 \r\nhello\r\n0\r\n\r\n", 0 },
	{ "space before ;", "5 ;x\r\nhello\r\n0\r\n\r\n", 0 },
	{ "tab after size", "5\t\r\nhello\r\n0\r\n\r\n", 0 },
	{ "space in extension", "5;a=\"b c\"\r\nhello\r\n0\r\n\r\n", 0 },
	{ "CTL in extension", "5;\x01\r\nhello\r\n0\r\n\r\n", 0 },
	{ "CR in extension", "5;a\rb\r\nhello\r\n0\r\n\r\n", 0 },
	{ "not hex", "5x\r\nhello\r\n0\r\n\r\n", 0 },
	{ "G", "5G\r\nhello\r\n0\r\n\r\n", 0 },
	{ "uWS digit alias", "5:\r\nhello\r\n0\r\n\r\n", 0 },
	{ "no digits", "\r\nhello\r\n0\r\n\r\n", 0 },
	{ "bare LF size line", "5\nhello\r\n0\r\n\r\n", 0 },
	{ "bare LF after data", "5\r\nhello\n0\r\n\r\n", 0 },
	{ "no CRLF after data", "5\r\nhelloXX0\r\n\r\n", 0 },
	{ "trailer", "5\r\nhello\r\n0\r\nX: y\r\n\r\n", 0 },
	{ "negative", "-5\r\nhello\r\n0\r\n\r\n", 0 },
	{ "2^58", "400000000000000\r\nhello\r\n0\r\n\r\n", 0 },
	{ "2^64 - 1", "ffffffffffffffff\r\nhello\r\n0\r\n\r\n", 0 },
};

static void check_chunk_case(const struct chunk_case *cc, const char *req, size_t piece)
{
	struct tconn *t = tc_new();

	feed_split(t, REQ, req, strlen(req), piece);
	if (cc->ok) {
		if (t->rec.started != 2 || t->rec.rejects[BS_REJ_CHUNKED])
			fail_msg("%s (pieces of %zu): started %d, chunk rejects %d", cc->name,
				 piece, t->rec.started, t->rec.rejects[BS_REJ_CHUNKED]);
		feed(t, RESP, RESP_HI RESP_HI);
		assert_int_equal(t->rec.completed, 2);
		if (t->rec.done[0].req_body != (strstr(cc->body, "hellooo") ? 12 : 5))
			fail_msg("%s: request body %llu", cc->name,
				 (unsigned long long)t->rec.done[0].req_body);
	} else {
		if (t->rec.started != 1 || t->rec.rejects[BS_REJ_CHUNKED] != 1)
			fail_msg("%s (pieces of %zu): started %d, chunk rejects %d", cc->name,
				 piece, t->rec.started, t->rec.rejects[BS_REJ_CHUNKED]);
		/* dispatched, then Bun's canned 400: aborted */
		feed(t, RESP, "HTTP/1.1 400 Bad Request\r\nConnection: close\r\n\r\n");
		assert_int_equal(t->rec.aborted, 1);
		assert_int_equal(t->rec.completed, 0);
	}
	assert_int_equal(pending(t), 0);
	free(t);
}

static void test_chunk_lines(void **state)
{
	static const char head[] =
		"POST /up HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n";
	char req[512];

	(void)state;
	for (size_t i = 0; i < sizeof(chunk_cases) / sizeof(chunk_cases[0]); i++) {
		const struct chunk_case *cc = &chunk_cases[i];

		snprintf(req, sizeof(req), "%s%s%s", head, cc->body, cc->ok ? GET("/after") : "");
		check_chunk_case(cc, req, strlen(req));
		check_chunk_case(cc, req, 1);
		check_chunk_case(cc, req, 7);
	}
}

/* Chunk extensions up to 16 KiB pass (across windows); longer: Bun's 413. */
static void test_chunk_extension_limit(void **state)
{
	static const char head[] =
		"POST /up HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n";
	char *req = malloc(40000);

	(void)state;
	for (int ext = HP_CHUNK_EXT_MAX - 1; ext <= HP_CHUNK_EXT_MAX + 1; ext++) {
		struct tconn *t = tc_new();
		size_t o = (size_t)sprintf(req, "%s0005", head);

		memset(req + o, ';', 1);
		memset(req + o + 1, 'e', (size_t)ext - 1);
		o += (size_t)ext;
		o += (size_t)sprintf(req + o, "\r\nhello\r\n0\r\n\r\n" GET("/after"));
		feed_split(t, REQ, req, o, 3000);
		if (ext <= HP_CHUNK_EXT_MAX) {
			assert_int_equal(t->rec.started, 2);
			assert_int_equal(t->rec.rejects[BS_REJ_CHUNKED], 0);
		} else {
			assert_int_equal(t->rec.started, 1);
			assert_int_equal(t->rec.rejects[BS_REJ_CHUNKED], 1);
			feed(t, RESP,
			     "HTTP/1.1 413 Payload Too Large\r\nConnection: close\r\n\r\n");
			assert_int_equal(t->rec.aborted, 1);
			assert_int_equal(t->rec.completed, 0);
		}
		free(t);
	}
	/* leading zeros past what is kept across reads: given up, counted */
	{
		struct tconn *t = tc_new();
		size_t o = (size_t)sprintf(req, "%s", head);

		memset(req + o, '0', 1000);
		o += 1000;
		o += (size_t)sprintf(req + o, "5\r\nhello\r\n0\r\n\r\n");
		feed_split(t, REQ, req, o, 500);
		assert_int_equal(t->rec.desync[HP_DS_LONG_FIELD], 1);
		assert_int_equal(t->rec.rejects[BS_REJ_CHUNKED], 0);
		free(t);
	}
	free(req);
}

/* A head bunscope accepted and Bun refused with the canned answer resp. */
static void check_late(const char *req, const char *resp)
{
	struct tconn *t = tc_new();

	feed(t, REQ, req);
	feed(t, RESP, resp);
	assert_int_equal(t->rec.unstarted, 1);
	assert_int_equal(t->rec.rejects[BS_REJ_LATE], 1);
	assert_int_equal(t->rec.completed, 0);
	assert_int_equal(pending(t), 0);
	free(t);
}

static void test_canned_responses(void **state)
{
	struct tconn *t;

	(void)state;
	/* bunscope rejected it too: the canned answer adds nothing */
	t = tc_new();
	feed(t, REQ, "GET / HTTP/2.0\r\nHost: x\r\n\r\n");
	feed(t, RESP, "HTTP/1.1 505 HTTP Version Not Supported\r\nConnection: close\r\n\r\n");
	assert_int_equal(t->rec.rejects[BS_REJ_VERSION], 1);
	assert_int_equal(t->rec.completed, 0);
	tc_close(t);
	assert_int_equal(pending(t), 0);
	assert_int_equal(t->rec.aborted, 0);
	free(t);

	/* bunscope accepted what Bun refused: taken back, not a request */
	check_late(GET("/"), "HTTP/1.1 400 Bad Request\r\nConnection: close\r\n\r\n");
	/* a body over Bun's maxRequestBodySize: the head is refused with a 413 */
	check_late("PUT /up HTTP/1.1\r\nHost: x\r\nContent-Length: 200000000\r\n\r\nabc",
		   "HTTP/1.1 413 Request Entity Too Large\r\nConnection: close\r\n\r\n");

	/* an app's own 400 is a request like any other */
	t = tc_new();
	feed(t, REQ, GET("/"));
	feed(t, RESP,
	     "HTTP/1.1 400 Bad Request\r\ncontent-type: text/plain\r\nDate: x\r\n"
	     "Content-Length: 3\r\n\r\nbad");
	assert_int_equal(t->rec.completed, 1);
	assert_int_equal(t->rec.done[0].status, 400);
	free(t);

	/* HEAD answered 400 by the app has one field of canned length */
	t = tc_new();
	feed(t, REQ, "HEAD / HTTP/1.1\r\nHost: x\r\n\r\n");
	feed(t, RESP, "HTTP/1.1 400 Bad Request\r\ncontent-length: 2\r\n\r\n");
	assert_int_equal(t->rec.completed, 1);
	free(t);

	/* 408 for a head that never finished */
	t = tc_new();
	feed(t, REQ, "GET / HTTP/1.1\r\nHost: x\r\n");
	feed(t, RESP, "HTTP/1.1 408 Request Timeout\r\nConnection: close\r\n\r\n");
	assert_int_equal(t->rec.timeouts, 1);
	assert_int_equal(pending(t), 0);
	free(t);

	/* a bad chunk after dispatch: Bun answers, then its canned 400 */
	t = tc_new();
	feed(t, REQ, "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n");
	assert_int_equal(t->rec.started, 1);
	feed(t, RESP, RESP_HI "HTTP/1.1 400 Bad Request\r\nConnection: close\r\n\r\n");
	assert_int_equal(t->rec.completed, 1);
	assert_int_equal(t->rec.rejects[BS_REJ_CHUNKED], 1);
	assert_int_equal(pending(t), 0);
	free(t);
}

/*
 * A client connection (the target's own fetch): what it writes are requests,
 * what it reads responses; an upstream's 400 of canned shape is a response
 * like any other, and a 101 does not make a WebSocket to follow.
 */
static void test_client_connection(void **state)
{
	struct tconn *t = tc_new();

	(void)state;
	/* Bun's canned shape: here an answer whose body ends with the connection */
	t->c.cflags = HP_CF_CLIENT;
	feed(t, REQ, GET("/a"));
	feed(t, RESP, "HTTP/1.1 400 Bad Request\r\nConnection: close\r\n\r\n");
	assert_int_equal(pending(t), 1);
	tc_close(t);
	assert_int_equal(t->rec.completed, 1);
	assert_int_equal(t->rec.done[0].status, 400);
	assert_int_equal(t->rec.unstarted, 0);
	assert_int_equal(t->rec.aborted, 0);
	assert_int_equal(t->rec.rejects[BS_REJ_LATE], 0);
	free(t);

	t = tc_new();
	t->c.cflags = HP_CF_CLIENT;
	feed(t, REQ, GET("/b"));
	feed(t, RESP, "HTTP/1.1 408 Request Timeout\r\nConnection: close\r\n\r\n");
	tc_close(t);
	assert_int_equal(t->rec.completed, 1);
	assert_int_equal(t->rec.timeouts, 0);
	free(t);

	t = tc_new();
	t->c.cflags = HP_CF_CLIENT;
	feed(t, REQ,
	     "GET /ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n");
	feed(t, RESP, "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n\r\n");
	assert_int_equal(t->rec.completed, 1);
	assert_int_equal(t->rec.done[0].status, 101);
	assert_int_equal(t->rec.upgrades, 0);
	assert_int_equal(t->c.req.state, HS_DEAD);
	assert_int_equal(t->c.resp.state, HS_DEAD);
	/* what follows is nobody's business, and not an error */
	feed(t, REQ, "\x81\x85\x37\xfa\x21\x3d\x7f\x9f\x4d\x51\x58");
	assert_int_equal(pending(t), 0);
	for (int k = 0; k < BS_REJ_MAX; k++)
		assert_int_equal(t->rec.rejects[k], 0);
	free(t);
}

static void test_path_capture(void **state)
{
	struct tconn *t = tc_new();
	char buf[1024], path[400];

	(void)state;
	feed(t, REQ, GET("/a/b/c?d=e&f=g"));
	assert_string_equal(last_path(t), "/a/b/c");
	feed(t, REQ, GET("/q?"));
	assert_string_equal(last_path(t), "/q");
	feed(t, REQ, "GET http://example.com/x?y HTTP/1.1\r\nHost: x\r\n\r\n");
	assert_string_equal(last_path(t), "http://example.com/x");
	memset(path, 'p', sizeof(path) - 1);
	path[0] = '/';
	path[sizeof(path) - 1] = 0;
	snprintf(buf, sizeof(buf), "GET %s HTTP/1.1\r\nHost: x\r\n\r\n", path);
	feed(t, REQ, buf);
	assert_int_equal(strlen(last_path(t)), BS_PATH_MAX);
	assert_true(t->rec.path_trunc[(t->rec.npaths - 1) % 64]);
	/* the same path always has the same hash, others differ */
	feed(t, REQ, GET("/same"));
	feed(t, REQ, GET("/same"));
	feed(t, REQ, GET("/samf"));
	{
		int n = t->rec.npaths;

		assert_true(t->rec.path_hash[(n - 2) % 64] == t->rec.path_hash[(n - 3) % 64]);
		assert_true(t->rec.path_hash[(n - 1) % 64] != t->rec.path_hash[(n - 2) % 64]);
	}
	assert_int_equal(t->rec.started, 7);
	free(t);
}

static void test_resync(void **state)
{
	struct tconn *t = tc_new();

	(void)state;
	t->c.req.state = HS_RESYNC;
	t->c.resp.state = HS_RESYNC;
	/* the tail of a body from before we attached, then a response to it */
	feed(t, REQ, "ody of a request from before\r\nmore\r\n");
	feed(t, RESP, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok");
	assert_int_equal(t->rec.started, 0);
	assert_int_equal(t->rec.completed, 0);
	feed(t, REQ, GET("/now"));
	assert_int_equal(t->rec.started, 1);
	feed(t, RESP, RESP_HI);
	assert_int_equal(t->rec.completed, 1);
	for (int k = 0; k < BS_REJ_MAX; k++)
		assert_int_equal(t->rec.rejects[k], 0);
	free(t);
}

/* ---- WebSockets ---------------------------------------------------------- */

/*
 * Append one frame to buf: header as RFC 6455 5.2 lays it out (the shortest
 * length form unless force_len says 126/127), then len payload bytes, masked
 * with a fixed key when masked.  Returns the frame's size.
 */
static size_t ws_frame(__u8 *buf, int fin, int rsv, int op, int masked, const __u8 *payload,
		       size_t len, int force_len)
{
	static const __u8 key[4] = { 0x37, 0xfa, 0x21, 0x3d };
	size_t o = 0;
	int l7 = force_len ? force_len : len < 126 ? (int)len : len < 65536 ? 126 : 127;

	buf[o++] = (__u8)((fin ? 0x80 : 0) | (rsv << 4) | op);
	buf[o++] = (__u8)((masked ? 0x80 : 0) | l7);
	if (l7 == 126) {
		buf[o++] = (__u8)(len >> 8);
		buf[o++] = (__u8)len;
	} else if (l7 == 127) {
		for (int i = 7; i >= 0; i--)
			buf[o++] = (__u8)((__u64)len >> (8 * i));
	}
	if (masked) {
		memcpy(buf + o, key, 4);
		o += 4;
	}
	for (size_t i = 0; i < len; i++) {
		__u8 c = payload ? payload[i] : (__u8)('a' + i % 26);

		buf[o + i] = masked ? c ^ key[i & 3] : c;
	}
	return o + len;
}

static void assert_ws_clean(const struct tconn *t)
{
	for (int d = 0; d < 2; d++)
		for (int k = 0; k < WS_E_MAX; k++)
			assert_int_equal(t->rec.ws_errors[d][k], 0);
}

/* A realistic exchange: 101 corked with a greeting, echo, ping, close. */
static void test_ws_exchange(void **state)
{
	static __u8 in[4096], out[4096];
	struct tconn *t = tc_new();
	size_t ni = 0, no = 0;
	__u8 code[2] = { 0x0f, 0xa1 }; /* 4001 */

	(void)state;
	feed(t, REQ, WS_UPGRADE_REQ);
	/* Bun corks the 101 with what the open handler sends */
	no = strlen(WS_101);
	memcpy(out, WS_101, no);
	no += ws_frame(out + no, 1, 0, WS_OP_TEXT, 0, (const __u8 *)"welcome", 7, 0);
	feed_ex(t, RESP, out, no, 1);
	assert_int_equal(t->rec.completed, 1);
	assert_int_equal(t->rec.done[0].status, 101);
	assert_int_equal(t->rec.upgrades, 1);
	assert_int_equal(t->rec.ws_msgs[RESP][BS_WS_TEXT], 1);
	assert_int_equal(t->rec.ws_bytes[RESP][BS_WS_TEXT], 7);

	ni = ws_frame(in, 1, 0, WS_OP_TEXT, 1, NULL, 300, 0);	      /* 16-bit length */
	ni += ws_frame(in + ni, 1, 0, WS_OP_BINARY, 1, NULL, 3, 127); /* 64-bit form */
	ni += ws_frame(in + ni, 1, 0, WS_OP_PING, 1, NULL, 4, 0);
	ni += ws_frame(in + ni, 1, 0, WS_OP_CLOSE, 1, code, 2, 0);
	feed_ex(t, REQ, in, ni, 1);
	no = ws_frame(out, 1, 0, WS_OP_TEXT, 0, NULL, 300, 0);
	no += ws_frame(out + no, 1, 0, WS_OP_BINARY, 0, NULL, 3, 0);
	no += ws_frame(out + no, 1, 0, WS_OP_PONG, 0, NULL, 4, 0);
	no += ws_frame(out + no, 1, 0, WS_OP_CLOSE, 0, code, 2, 0);
	feed_ex(t, RESP, out, no, 1);

	assert_int_equal(t->rec.ws_msgs[REQ][BS_WS_TEXT], 1);
	assert_int_equal(t->rec.ws_bytes[REQ][BS_WS_TEXT], 300);
	assert_int_equal(t->rec.ws_msgs[REQ][BS_WS_BINARY], 1);
	assert_int_equal(t->rec.ws_bytes[REQ][BS_WS_BINARY], 3);
	assert_int_equal(t->rec.ws_msgs[REQ][BS_WS_PING], 1);
	assert_int_equal(t->rec.ws_msgs[REQ][BS_WS_CLOSE], 1);
	assert_int_equal(t->rec.ws_msgs[RESP][BS_WS_TEXT], 2);
	assert_int_equal(t->rec.ws_msgs[RESP][BS_WS_PONG], 1);
	assert_int_equal(t->rec.ws_msgs[RESP][BS_WS_CLOSE], 1);
	assert_int_equal(t->rec.nclose, 2);
	assert_int_equal(t->rec.close_codes[0], 4001); /* unmasked from the client's */
	assert_int_equal(t->rec.close_codes[1], 4001);
	assert_ws_clean(t);
	assert_int_equal(pending(t), 0);
	free(t);
}

/* Fragmented messages with control frames between the fragments. */
static void test_ws_fragments(void **state)
{
	static __u8 in[8192];
	struct tconn *t = ws_open();
	size_t n = 0;

	(void)state;
	n += ws_frame(in + n, 0, 0, WS_OP_TEXT, 1, NULL, 10, 0);
	n += ws_frame(in + n, 1, 0, WS_OP_PING, 1, NULL, 0, 0);
	n += ws_frame(in + n, 0, 0, WS_OP_CONT, 1, NULL, 200, 0);
	n += ws_frame(in + n, 1, 0, WS_OP_PONG, 1, NULL, 1, 0);
	n += ws_frame(in + n, 1, 0, WS_OP_CONT, 1, NULL, 5, 0);
	/* a compressed (RSV1) binary message in two fragments */
	n += ws_frame(in + n, 0, 4, WS_OP_BINARY, 1, NULL, 7, 0);
	n += ws_frame(in + n, 1, 0, WS_OP_CONT, 1, NULL, 8, 0);
	n += ws_frame(in + n, 1, 0, WS_OP_CLOSE, 1, NULL, 0, 0); /* no code */
	feed_ex(t, REQ, in, n, 1);
	assert_ws_clean(t);
	assert_int_equal(t->rec.ws_msgs[REQ][BS_WS_TEXT], 1);
	assert_int_equal(t->rec.ws_bytes[REQ][BS_WS_TEXT], 215);
	assert_int_equal(t->rec.ws_msgs[REQ][BS_WS_BINARY], 1);
	assert_int_equal(t->rec.ws_bytes[REQ][BS_WS_BINARY], 15);
	assert_int_equal(t->rec.ws_msgs[REQ][BS_WS_PING], 1);
	assert_int_equal(t->rec.ws_msgs[REQ][BS_WS_PONG], 1);
	assert_int_equal(t->rec.ws_bytes[REQ][BS_WS_PONG], 1);
	assert_int_equal(t->rec.nclose, 1);
	assert_int_equal(t->rec.close_codes[0], WS_CODE_NONE);
	free(t);

	/* a one-byte close body is not "no code" (Bun refuses it) */
	t = ws_open();
	n = ws_frame(in, 1, 0, WS_OP_CLOSE, 1, NULL, 1, 0);
	feed_ex(t, REQ, in, n, 1);
	assert_int_equal(t->rec.nclose, 1);
	assert_int_equal(t->rec.close_codes[0], WS_CODE_SHORT);
	free(t);
}

/* Frames that uWS refuses give the direction up, and only that direction. */
static void test_ws_errors(void **state)
{
	static const struct {
		int fin, rsv, op, masked, force_len;
		size_t len;
		int dir, err;
	} cases[] = {
		{ 1, 0, WS_OP_TEXT, 0, 0, 3, REQ, WS_E_MASK },	/* client unmasked */
		{ 1, 0, WS_OP_TEXT, 1, 0, 3, RESP, WS_E_MASK }, /* server masked */
		{ 1, 0, 3, 1, 0, 3, REQ, WS_E_OPCODE },
		{ 1, 0, 0xB, 1, 0, 3, REQ, WS_E_OPCODE },
		{ 0, 0, WS_OP_PING, 1, 0, 3, REQ, WS_E_CONTROL },   /* fragmented control */
		{ 1, 0, WS_OP_PING, 1, 126, 3, REQ, WS_E_CONTROL }, /* long control */
		{ 1, 2, WS_OP_TEXT, 1, 0, 3, REQ, WS_E_RSV },
		{ 1, 4, WS_OP_PONG, 1, 0, 3, REQ, WS_E_RSV },
		{ 1, 0, WS_OP_CONT, 1, 0, 3, REQ, WS_E_SEQUENCE }, /* orphan continuation */
	};
	__u8 buf[512];

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct tconn *t = ws_open();
		int other = !cases[i].dir;
		size_t n = ws_frame(buf, cases[i].fin, cases[i].rsv, cases[i].op, cases[i].masked,
				    NULL, cases[i].len, cases[i].force_len);

		feed_ex(t, cases[i].dir, buf, n, 1);
		assert_int_equal(t->rec.ws_errors[cases[i].dir][cases[i].err], 1);
		assert_int_equal(t->ws.dir[cases[i].dir].state, WS_DEAD);
		/* what follows in that direction is only counted */
		n = ws_frame(buf, 1, 0, WS_OP_TEXT, cases[i].dir == REQ, NULL, 3, 0);
		feed_ex(t, cases[i].dir, buf, n, 1);
		assert_int_equal(t->rec.ws_msgs[cases[i].dir][BS_WS_TEXT], 0);
		/* the other direction goes on */
		n = ws_frame(buf, 1, 0, WS_OP_TEXT, other == REQ, NULL, 3, 0);
		feed_ex(t, other, buf, n, 1);
		assert_int_equal(t->rec.ws_msgs[other][BS_WS_TEXT], 1);
		free(t);
	}
	/* a new data message inside a fragmented one */
	{
		struct tconn *t = ws_open();
		size_t n = ws_frame(buf, 0, 0, WS_OP_TEXT, 1, NULL, 3, 0);

		n += ws_frame(buf + n, 1, 0, WS_OP_BINARY, 1, NULL, 3, 0);
		feed_ex(t, REQ, buf, n, 1);
		assert_int_equal(t->rec.ws_errors[REQ][WS_E_SEQUENCE], 1);
		free(t);
	}
	/* a 64-bit length with its top bit set */
	{
		struct tconn *t = ws_open();
		__u8 f[] = { 0x82, 0x7f, 0x80, 0, 0, 0, 0, 0, 0, 1 };

		feed_ex(t, RESP, f, sizeof(f), 1);
		assert_int_equal(t->rec.ws_errors[RESP][WS_E_LENGTH], 1);
		free(t);
	}
	/* a 101 that answers no Upgrade request opens nothing */
	{
		struct tconn *t = tc_new();

		feed(t, REQ, GET("/"));
		feed(t, RESP, WS_101);
		assert_int_equal(t->rec.upgrades, 0);
		assert_int_equal(t->c.resp.state, HS_DEAD);
		free(t);
	}
}

/*
 * A random valid frame stream per direction, delivered in random pieces
 * (down to one byte, so headers split at every position): the counts equal
 * the generator's.
 */
static __u64 rnd(void);

static void test_ws_random_streams(void **state)
{
	static __u8 buf[2][1 << 20];

	(void)state;
	for (int iter = 0; iter < 300; iter++) {
		struct tconn *t = ws_open();
		__u64 want_msgs[2][BS_WS_KINDS] = {}, want_bytes[2][BS_WS_KINDS] = {};
		size_t len[2] = { 0, 0 };
		int want_close = 0;


		for (int dir = 0; dir < 2; dir++) {
			int nmsg = 1 + (int)(rnd() % 40);

			for (int m = 0; m < nmsg; m++) {
				int op = rnd() % 2 ? WS_OP_TEXT : WS_OP_BINARY;
				int kind = op == WS_OP_TEXT ? BS_WS_TEXT : BS_WS_BINARY;
				int frags = 1 + (int)(rnd() % 4);

				/* room for the largest message and the close frame */
				if (len[dir] + 4 * (70000 + 14 + 140) + 16 > sizeof(buf[0]))
					break;

				for (int f = 0; f < frags; f++) {
					size_t pl = rnd() % 8 ? rnd() % 200 : rnd() % 70000;
					int force = rnd() % 10 == 0 ? 127 : 0;

					len[dir] += ws_frame(buf[dir] + len[dir], f == frags - 1, 0,
							     f ? WS_OP_CONT : op, dir == REQ, NULL,
							     pl, force && pl < 65536 ? force : 0);
					want_bytes[dir][kind] += pl;
					if (rnd() % 5 == 0) {
						int cop = rnd() % 2 ? WS_OP_PING : WS_OP_PONG;
						size_t cl = rnd() % 126;

						len[dir] += ws_frame(buf[dir] + len[dir], 1, 0, cop,
								     dir == REQ, NULL, cl, 0);
						want_msgs[dir][cop == WS_OP_PING ? BS_WS_PING
										 : BS_WS_PONG]++;
						want_bytes[dir][cop == WS_OP_PING ? BS_WS_PING
										  : BS_WS_PONG] +=
							cl;
					}
				}
				want_msgs[dir][kind]++;
			}
			if (rnd() % 2) {
				__u8 code[2] = { 0x03, 0xe8 }; /* 1000 */

				len[dir] += ws_frame(buf[dir] + len[dir], 1, 0, WS_OP_CLOSE,
						     dir == REQ, code, 2, 0);
				want_msgs[dir][BS_WS_CLOSE]++;
				want_bytes[dir][BS_WS_CLOSE] += 2;
				want_close++;
			}
		}
		for (int dir = 0; dir < 2; dir++) {
			size_t o = 0;
			size_t maxp = iter % 3 == 0 ? 3 : iter % 3 == 1 ? 40 : 9000;

			while (o < len[dir]) {
				size_t k = 1 + rnd() % maxp;

				if (k > len[dir] - o)
					k = len[dir] - o;
				feed_ex(t, dir, buf[dir] + o, k, 1);
				o += k;
			}
		}
		assert_ws_clean(t);
		for (int dir = 0; dir < 2; dir++) {
			for (int k = 0; k < BS_WS_KINDS; k++) {
				assert_int_equal(t->rec.ws_msgs[dir][k], want_msgs[dir][k]);
				assert_int_equal(t->rec.ws_bytes[dir][k], want_bytes[dir][k]);
			}
		}
		assert_int_equal(t->rec.nclose, want_close);
		for (int i = 0; i < want_close && i < 16; i++)
			assert_int_equal(t->rec.close_codes[i], 1000);
		free(t);
	}
}

/* Random bytes after the upgrade: no crash, bounded steps, nothing invented. */
static void test_ws_garbage(void **state)
{
	static __u8 g[4096];

	(void)state;
	for (int iter = 0; iter < 2000; iter++) {
		struct tconn *t = ws_open();
		size_t n = 1 + rnd() % sizeof(g), o = 0;

		for (size_t i = 0; i < n; i++)
			g[i] = (__u8)rnd();
		while (o < n) {
			size_t k = 1 + rnd() % 64;

			if (k > n - o)
				k = n - o;
			feed_ex(t, (int)(iter & 1), g + o, k, 1);
			o += k;
		}
		/* payload bytes reported never exceed the bytes fed */
		{
			__u64 sum = 0;

			for (int k = 0; k < BS_WS_KINDS; k++)
				sum += t->rec.ws_bytes[iter & 1][k];
			assert_true(sum <= n);
		}
		free(t);
	}
}

/* Deterministic PRNG for the randomized tests. */
static __u64 rng_state = 0x9E3779B97F4A7C15ULL;

static __u64 rnd(void)
{
	rng_state ^= rng_state << 13;
	rng_state ^= rng_state >> 7;
	rng_state ^= rng_state << 17;
	return rng_state;
}

/* Random valid traffic, split randomly: every request completes exactly. */
static void test_random_valid_streams(void **state)
{
	static char req[1 << 16], resp[1 << 17];

	(void)state;
	for (int iter = 0; iter < 300; iter++) {
		struct tconn *t = tc_new();
		size_t rl = 0, pl = 0;

		t->rec.resolve = iter & 1;	    /* with and without the line cache */
		int n = 1 + (int)(rnd() % HP_FIFO); /* beyond HP_FIFO: test_pipeline_overflow */
		__u64 want_req = 0, want_resp = 0;

		for (int i = 0; i < n; i++) {
			int kind = (int)(rnd() % 4);
			int blen = (int)(rnd() % 3000);

			if (kind == 0) {
				rl += (size_t)sprintf(req + rl,
						      "GET /r/%d?x=%d HTTP/1.1\r\nHost: h\r\n"
						      "Accept: */*\r\n\r\n",
						      i, iter);
			} else if (kind == 1) {
				rl += (size_t)sprintf(req + rl,
						      "POST /p HTTP/1.1\r\nHost: h\r\n"
						      "Content-Length: %d\r\n\r\n",
						      blen);
				memset(req + rl, 'b', blen);
				rl += blen;
				want_req += blen;
			} else {
				int left = blen;

				rl += (size_t)sprintf(req + rl,
						      "PUT /c HTTP/1.1\r\nHost: h\r\n"
						      "Transfer-Encoding: chunked\r\n\r\n");
				while (left > 0) {
					int c = 1 + (int)(rnd() % 700);

					if (c > left)
						c = left;
					rl += (size_t)sprintf(req + rl, "%x\r\n", c);
					memset(req + rl, 'c', c);
					rl += c;
					memcpy(req + rl, "\r\n", 2);
					rl += 2;
					left -= c;
				}
				rl += (size_t)sprintf(req + rl, "0\r\n\r\n");
				want_req += blen;
			}
			if (rnd() % 2) {
				pl += (size_t)sprintf(resp + pl,
						      "HTTP/1.1 200 OK\r\nDate: x\r\n"
						      "Content-Length: %d\r\n\r\n",
						      blen);
				memset(resp + pl, 'r', blen);
				pl += blen;
			} else {
				int left = blen;

				pl += (size_t)sprintf(resp + pl,
						      "HTTP/1.1 200 OK\r\n"
						      "Transfer-Encoding: chunked\r\n\r\n");
				while (left > 0) {
					int c = 1 + (int)(rnd() % 900);

					if (c > left)
						c = left;
					pl += (size_t)sprintf(resp + pl, "%X\r\n", c);
					memset(resp + pl, 's', c);
					pl += c;
					memcpy(resp + pl, "\r\n", 2);
					pl += 2;
					left -= c;
				}
				pl += (size_t)sprintf(resp + pl, "0\r\n\r\n");
			}
			want_resp += blen;
		}
		/* deliver in random pieces, interleaving directions as a server does */
		{
			size_t ro = 0, po = 0;

			while (ro < rl) {
				size_t k = 1 + rnd() % 900;

				if (k > rl - ro)
					k = rl - ro;
				feed_ex(t, REQ, req + ro, k, 1);
				ro += k;
			}
			while (po < pl) {
				size_t k = 1 + rnd() % 1500;

				if (k > pl - po)
					k = pl - po;
				feed_ex(t, RESP, resp + po, k, 1);
				po += k;
			}
		}
		assert_int_equal(t->rec.started, n);
		assert_int_equal(t->rec.completed, n);
		{
			__u64 got_req = 0, got_resp = 0;

			for (int i = 0; i < t->rec.ndone; i++) {
				got_req += t->rec.done[i].req_body;
				got_resp += t->rec.done[i].resp_body;
			}
			assert_int_equal(got_req, want_req);
			assert_int_equal(got_resp, want_resp);
		}
		for (int k = 0; k < BS_REJ_MAX; k++)
			assert_int_equal(t->rec.rejects[k], 0);
		for (int k = 0; k < HP_DS_MAX; k++)
			assert_int_equal(t->rec.desync[k], 0);
		free(t);
	}
}

/* Random bytes: never crash, never overrun, bookkeeping stays consistent. */
static void test_random_garbage(void **state)
{
	static __u8 buf[20000];

	(void)state;
	for (int iter = 0; iter < 2000; iter++) {
		struct tconn *t = tc_new();
		size_t len = rnd() % sizeof(buf);

		/* mix valid fragments into the noise */
		for (size_t i = 0; i < len; i++) {
			__u64 v = rnd();

			if (v % 7 == 0 && i + 40 < len) {
				static const char *frags[] = { GET("/"),
							       "\r\n",
							       "Content-Length: 5\r\n",
							       "Transfer-Encoding: chunked\r\n\r\n",
							       "HTTP/1.1 200 OK\r\n",
							       "0\r\n\r\n" };
				const char *f = frags[v % 6];
				size_t fl = strlen(f);

				memcpy(buf + i, f, fl);
				i += fl - 1;
			} else {
				buf[i] = (__u8)(v >> 8);
			}
		}
		for (size_t o = 0; o < len;) {
			size_t k = 1 + rnd() % 3000;

			if (k > len - o)
				k = len - o;
			feed_ex(t, (int)(rnd() % 2), buf + o, k, rnd() % 16 != 0);
			o += k;
		}
		tc_close(t);
		assert_int_equal(pending(t), 0);
		assert_true(t->c.fifo_len == 0);
		free(t);
	}
}


/* ---- traces -------------------------------------------------------------------- */

#define TP_S "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
#define TP_U "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00"

static struct tconn *tc_traced(int sample)
{
	struct tconn *t = tc_new();

	t->rec.trace_on = 1;
	t->rec.sample = sample;
	t->rec.cap_left = -1;
	return t;
}

static void test_tp_parse(void **state)
{
	static const struct {
		const char *v;
		int ok;
	} cases[] = {
		{ TP_S, 1 },
		{ TP_U, 1 },
		{ "00-4BF92F3577B34DA6A3CE929D0E0E4736-00F067AA0BA902B7-01", 0 },  /* uppercase */
		{ "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01", 0 },  /* version ff */
		{ "00-00000000000000000000000000000000-00f067aa0ba902b7-01", 0 },  /* zero trace */
		{ "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01", 0 },  /* zero parent */
		{ "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-", 0 }, /* 00: 55 only */
		{ "01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-what", 1 }, /* future */
		{ "01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01x", 0 },
		{ "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-0", 0 }, /* short */
		{ "00_4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01", 0 },
		{ "00-4bf92f3577b34da6a3ce929d0e0e473g-00f067aa0ba902b7-01", 0 },
		{ "0x-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01", 0 },
	};
	struct bs_tp tp;

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		__u8 buf[128] = { 0 };
		size_t n = strlen(cases[i].v);

		memcpy(buf, cases[i].v, n);
		if ((tp_parse(buf, (__u32)n, &tp) == 0) != cases[i].ok)
			fail_msg("tp_parse(%s) should be %s", cases[i].v,
				 cases[i].ok ? "valid" : "invalid");
	}
	assert_int_equal(tp_parse((const __u8 *)TP_S, TP_LEN, &tp), 0);
	assert_int_equal(tp.trace_id[0], 0x4b);
	assert_int_equal(tp.trace_id[15], 0x36);
	assert_int_equal(tp.parent_id[0], 0x00);
	assert_int_equal(tp.parent_id[7], 0xb7);
	assert_int_equal(tp.flags, 1);
}

static void test_trace_parent(void **state)
{
	struct tconn *t = tc_traced(2);
	const char *req = "GET /users/42?x=1 HTTP/1.1\r\nHost: h\r\nUser-Agent: a\r\n"
			  "TraceParent:  " TP_S " \r\nAccept: */*\r\n\r\n";

	(void)state;
	feed_split(t, REQ, req, strlen(req), 5);
	assert_int_equal(t->rec.nspans, 1);
	assert_int_equal(t->rec.spans[0].seq, 0);
	assert_string_equal(t->rec.spans[0].target, "/users/42?x=1");
	assert_int_equal(t->rec.spans[0].plen, 9);
	assert_int_equal(t->rec.spans[0].tp, BS_TP_VALID);
	assert_int_equal(t->rec.spans[0].tpv.trace_id[0], 0x4b);
	assert_int_equal(t->rec.spans[0].tpv.parent_id[7], 0xb7);
	feed(t, RESP, RESP_HI);
	assert_int_equal(t->rec.spans[0].ended, 1);
	assert_int_equal(t->rec.spans[0].how, BS_SPAN_DONE);
	assert_int_equal(t->rec.spans[0].status, 200);

	/* an unsampled parent: no span; the next request is a root again */
	feed(t, REQ, "GET /b HTTP/1.1\r\nHost: h\r\ntraceparent: " TP_U "\r\n\r\n");
	assert_int_equal(t->rec.nspans, 1);
	feed(t, RESP, RESP_HI);
	feed(t, REQ, "GET /c HTTP/1.1\r\nHost: h\r\n\r\n");
	assert_int_equal(t->rec.nspans, 2);
	assert_int_equal(t->rec.spans[1].seq, 2);
	assert_int_equal(t->rec.spans[1].tp, BS_TP_NONE);
	assert_string_equal(t->rec.spans[1].target, "/c");
	feed(t, RESP, RESP_HI);
	assert_int_equal(t->rec.spans[1].ended, 1);
	assert_int_equal(pending(t), 0);
	free(t);
}

static void test_trace_bad_parent(void **state)
{
	struct tconn *t = tc_traced(2);

	(void)state;
	/* two traceparent fields: neither counts */
	feed(t, REQ,
	     "GET / HTTP/1.1\r\nHost: h\r\ntraceparent: " TP_S "\r\n"
	     "traceparent: " TP_S "\r\n\r\n");
	assert_int_equal(t->rec.nspans, 1);
	assert_int_equal(t->rec.spans[0].tp, BS_TP_BAD);
	feed(t, RESP, RESP_HI);
	feed(t, REQ, "GET / HTTP/1.1\r\nHost: h\r\ntraceparent: 00-zz\r\n\r\n");
	assert_int_equal(t->rec.spans[1].tp, BS_TP_BAD);
	feed(t, RESP, RESP_HI);
	/* a field whose name only starts like it is not it */
	feed(t, REQ, "GET / HTTP/1.1\r\nHost: h\r\ntraceparentx: " TP_S "\r\n\r\n");
	assert_int_equal(t->rec.spans[2].tp, BS_TP_NONE);
	feed(t, RESP, RESP_HI);
	assert_int_equal(pending(t), 0);
	free(t);
}

/* a repeated request line takes the cached parse: the target must still be its own */
static void test_trace_repeated_line(void **state)
{
	struct tconn *t = tc_traced(1);

	(void)state;
	feed(t, REQ, GET("/a"));
	feed(t, RESP, RESP_HI);
	feed(t, REQ, "GET /a HTTP/1.1\r\nHost: localhost:3000\r\ntraceparent: " TP_S "\r\n\r\n");
	feed(t, RESP, RESP_HI);
	feed(t, REQ, GET("/a-much-longer-path-than-the-cache-holds/x/y/z"));
	feed(t, RESP, RESP_HI);
	feed(t, REQ, GET("/a"));
	feed(t, RESP, RESP_HI);
	assert_int_equal(t->rec.nspans, 4);
	assert_string_equal(t->rec.spans[0].target, "/a");
	assert_int_equal(t->rec.spans[0].tp, BS_TP_NONE);
	assert_string_equal(t->rec.spans[1].target, "/a");
	assert_int_equal(t->rec.spans[1].tp, BS_TP_VALID);
	assert_string_equal(t->rec.spans[2].target,
			    "/a-much-longer-path-than-the-cache-holds/x/y/z");
	assert_string_equal(t->rec.spans[3].target, "/a");
	assert_int_equal(t->rec.spans[3].tp, BS_TP_NONE);
	for (int i = 0; i < 4; i++) {
		assert_int_equal(t->rec.spans[i].seq, i);
		assert_int_equal(t->rec.spans[i].ended, 1);
	}
	free(t);
}

/*
 * A client connection's requests hand their first Host over (trimmed, at
 * most BS_TRACE_HOST_MAX bytes kept), also when the request line repeats;
 * a server connection's never do.
 */
static void test_trace_client_host(void **state)
{
	char longhost[BS_TRACE_HOST_MAX + 2];
	char req[256];
	struct tconn *t;

	(void)state;
	memset(longhost, 'h', sizeof(longhost) - 1);
	longhost[sizeof(longhost) - 1] = 0;
	snprintf(req, sizeof(req), "GET /a HTTP/1.1\r\nHost: %s\r\n\r\n", longhost);

	t = tc_traced(1);
	t->c.cflags = HP_CF_CLIENT;
	feed(t, REQ, "GET /a HTTP/1.1\r\nHost: upstream.test:8080\r\nAccept: */*\r\n\r\n");
	feed(t, RESP, RESP_HI);
	/* the same line again (the cached path), another Host, padded */
	feed(t, REQ, "GET /a HTTP/1.1\r\nUser-Agent: t\r\nhost: \t[::1]:80 \r\n\r\n");
	feed(t, RESP, RESP_HI);
	/* two Host fields: the first names the server */
	feed(t, REQ, "GET /b HTTP/1.1\r\nHost: first\r\nHost: second\r\n\r\n");
	feed(t, RESP, RESP_HI);
	/* none (HTTP/1.0), then one too long to keep */
	feed(t, REQ, "GET /a HTTP/1.0\r\n\r\n");
	feed(t, RESP, "HTTP/1.0 200 OK\r\nContent-Length: 0\r\n\r\n");
	feed(t, REQ, req);
	feed(t, RESP, RESP_HI);
	assert_int_equal(t->rec.completed, 5);
	assert_int_equal(t->rec.nspans, 5);
	assert_string_equal(t->rec.spans[0].host, "upstream.test:8080");
	assert_string_equal(t->rec.spans[1].host, "[::1]:80");
	assert_string_equal(t->rec.spans[2].host, "first");
	assert_string_equal(t->rec.spans[3].host, "");
	assert_string_equal(t->rec.spans[4].host, "");
	assert_int_equal(t->rec.cur.nhost, 4);
	assert_string_equal(t->rec.spans[1].target, "/a");
	free(t);

	/* a server connection: Host is checked, never handed over */
	t = tc_traced(1);
	feed(t, REQ, "GET /a HTTP/1.1\r\nHost: upstream.test:8080\r\n\r\n");
	feed(t, RESP, RESP_HI);
	assert_int_equal(t->rec.completed, 1);
	assert_int_equal(t->rec.cur.nhost, 0);
	assert_string_equal(t->rec.spans[0].host, "");
	free(t);
}

static void test_trace_pipelined(void **state)
{
	struct tconn *t = tc_traced(1);

	(void)state;
	/* identical twins share a slot: each still has its own span */
	feed(t, REQ, GET("/p") GET("/p") GET("/p"));
	assert_int_equal(t->rec.nspans, 3);
	feed(t, RESP, RESP_HI RESP_HI);
	assert_int_equal(t->rec.spans[0].ended, 1);
	assert_int_equal(t->rec.spans[1].ended, 1);
	assert_int_equal(t->rec.spans[2].ended, 0);
	tc_close(t);
	assert_int_equal(t->rec.spans[2].how, BS_SPAN_ABORT);
	free(t);

	/* the cap leaves the twins without spans: they are not the first's twins */
	t = tc_traced(1);
	t->rec.cap_left = 1;
	feed(t, REQ, GET("/p") GET("/p") GET("/p"));
	assert_int_equal(t->rec.started, 3);
	assert_int_equal(t->rec.nspans, 1);
	feed(t, RESP, RESP_HI RESP_HI RESP_HI);
	assert_int_equal(t->rec.completed, 3);
	assert_int_equal(t->rec.spans[0].ended, 1);
	assert_int_equal(pending(t), 0);
	free(t);
}

/* requests pipelined beyond the slots still get one span each, in order */
static void test_trace_pipeline_overflow(void **state)
{
	struct tconn *t = tc_traced(1);
	char buf[4096] = "";

	(void)state;
	for (int i = 0; i < 12; i++) {
		char one[64];

		snprintf(one, sizeof(one), "GET /o%d HTTP/1.1\r\nHost: x\r\n\r\n", i);
		strcat(buf, one);
	}
	feed(t, REQ, buf);
	assert_int_equal(t->rec.overflow, 4);
	assert_int_equal(t->rec.nspans, 12);
	for (int i = 0; i < 12; i++) {
		char want[8];

		snprintf(want, sizeof(want), "/o%d", i);
		assert_int_equal(t->rec.spans[i].seq, i);
		assert_string_equal(t->rec.spans[i].target, want);
	}
	feed(t, RESP,
	     RESP_HI RESP_HI RESP_HI RESP_HI RESP_HI RESP_HI RESP_HI RESP_HI RESP_HI RESP_HI);
	for (int i = 0; i < 12; i++)
		assert_int_equal(t->rec.spans[i].ended, i < 10);
	tc_close(t);
	assert_int_equal(t->rec.spans[10].how, BS_SPAN_ABORT);
	assert_int_equal(t->rec.spans[11].how, BS_SPAN_ABORT);
	assert_int_equal(pending(t), 0);
	free(t);

	/* a cap that leaves some of the overflow without spans */
	t = tc_traced(1);
	t->rec.cap_left = 10;
	feed(t, REQ, buf);
	assert_int_equal(t->rec.nspans, 10);
	feed(t, RESP, RESP_HI RESP_HI RESP_HI RESP_HI RESP_HI RESP_HI RESP_HI RESP_HI RESP_HI);
	assert_int_equal(t->rec.spans[8].ended, 1);
	assert_int_equal(t->rec.spans[9].ended, 0);
	tc_close(t);
	assert_int_equal(t->rec.spans[9].how, BS_SPAN_ABORT);
	assert_int_equal(t->rec.completed, 9);
	assert_int_equal(t->rec.aborted, 3);
	free(t);
}

static void test_trace_tracestate(void **state)
{
	struct tconn *t = tc_traced(1);

	(void)state;
	feed(t, REQ, GET("/"));
	feed(t, RESP, RESP_HI);
	feed(t, REQ,
	     "GET / HTTP/1.1\r\nHost: h\r\ntracestate: rojo=00f067aa0ba902b7, congo=t61rcWkgMzE\r\n"
	     "traceparent: " TP_S "\r\n\r\n");
	assert_int_equal(t->rec.nstates, 1);
	assert_string_equal(t->rec.tracestate[0], "rojo=00f067aa0ba902b7, congo=t61rcWkgMzE");
	assert_int_equal(t->rec.tracestate_seq[0], 1);
	assert_int_equal(t->rec.spans[1].seq, 1);
	assert_int_equal(t->rec.spans[1].tp, BS_TP_VALID);
	free(t);
}

static void test_trace_off(void **state)
{
	struct tconn *t = tc_new();

	(void)state;
	/* trace_on 0: the target and trace hooks are never called (they assert) */
	feed(t, REQ, "GET /x HTTP/1.1\r\nHost: h\r\ntraceparent: " TP_S "\r\n\r\n");
	feed(t, RESP, RESP_HI);
	assert_int_equal(t->rec.nspans, 0);
	assert_int_equal(t->rec.completed, 1);
	free(t);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_simple_get),
		cmocka_unit_test(test_keepalive),
		cmocka_unit_test(test_pipelined),
		cmocka_unit_test(test_pipeline_overflow),
		cmocka_unit_test(test_split_everywhere),
		cmocka_unit_test(test_bytewise),
		cmocka_unit_test(test_large_bodies),
		cmocka_unit_test(test_unreadable_body),
		cmocka_unit_test(test_chunked_response_streaming),
		cmocka_unit_test(test_chunk_lines),
		cmocka_unit_test(test_chunk_extension_limit),
		cmocka_unit_test(test_head_204_304_100_101),
		cmocka_unit_test(test_http10_until_close),
		cmocka_unit_test(test_abort_on_close),
		cmocka_unit_test(test_request_line_cache),
		cmocka_unit_test(test_rejections),
		cmocka_unit_test(test_limits),
		cmocka_unit_test(test_canned_responses),
		cmocka_unit_test(test_client_connection),
		cmocka_unit_test(test_trace_client_host),
		cmocka_unit_test(test_path_capture),
		cmocka_unit_test(test_resync),
		cmocka_unit_test(test_random_valid_streams),
		cmocka_unit_test(test_random_garbage),
		cmocka_unit_test(test_ws_exchange),
		cmocka_unit_test(test_ws_fragments),
		cmocka_unit_test(test_ws_errors),
		cmocka_unit_test(test_ws_random_streams),
		cmocka_unit_test(test_ws_garbage),
		cmocka_unit_test(test_tp_parse),
		cmocka_unit_test(test_trace_parent),
		cmocka_unit_test(test_trace_bad_parent),
		cmocka_unit_test(test_trace_repeated_line),
		cmocka_unit_test(test_trace_pipelined),
		cmocka_unit_test(test_trace_pipeline_overflow),
		cmocka_unit_test(test_trace_tracestate),
		cmocka_unit_test(test_trace_off),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
