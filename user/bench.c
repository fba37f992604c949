// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * bunscope bench-parse: the kernel-side cost of one request and its response,
 * measured in isolation.  The bs_bench program runs the data path of a real
 * syscall exit (process(): window copy, parser steps, route cache, histogram
 * update) on buffers of this process, through BPF_PROG_TEST_RUN.  Raw
 * tracepoint test runs take no repeat count, so each run is one bpf()
 * call; the same call of an empty program is the baseline subtracted.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <bpf/bpf.h>
#include <bpf/libbpf.h>

#include "bunscope.h"
#include "bench.h"
#include "log.h"
#include "bunscope.skel.h"

struct bench_case {
	const char *name;
	const char *req;
	const char *resp;
};

#define RESP_HI "HTTP/1.1 200 OK\r\ncontent-type: text/plain;charset=utf-8\r\n" \
		"Date: Sun, 22 Nov 2026 09:54:49 GMT\r\nContent-Length: 2\r\n\r\nhi"

static const struct bench_case cases[] = {
	{ "wrk GET / and Bun's answer",
	  "GET / HTTP/1.1\r\nHost: 127.0.0.1:3000\r\n\r\n", RESP_HI },
	{ "curl GET with 3 fields",
	  "GET /users/42?x=1 HTTP/1.1\r\nHost: localhost:3000\r\nUser-Agent: curl/7.88.1\r\n"
	  "Accept: */*\r\n\r\n", RESP_HI },
	{ "browser-like GET, 9 fields",
	  "GET /api/items/123 HTTP/1.1\r\nHost: example.com\r\nUser-Agent: Mozilla/5.0 (X11; "
	  "Linux x86_64) AppleWebKit/537.36\r\nAccept: text/html,application/xhtml+xml\r\n"
	  "Accept-Language: en-US,en;q=0.9\r\nAccept-Encoding: gzip, deflate, br\r\n"
	  "Connection: keep-alive\r\nCookie: session=abcdef0123456789\r\n"
	  "Cache-Control: no-cache\r\nPragma: no-cache\r\n\r\n", RESP_HI },
	{ "POST with a 1 KiB body",
	  NULL, RESP_HI },
};

static double now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec * 1e9 + (double)ts.tv_nsec;
}

static int run_once(int fd, const void *req, size_t rl, const void *resp, size_t pl)
{
	__u64 args[4] = { (__u64)(uintptr_t)req, rl, (__u64)(uintptr_t)resp, pl };
	LIBBPF_OPTS(bpf_test_run_opts, opts, .ctx_in = args, .ctx_size_in = sizeof(args));

	return bpf_prog_test_run_opts(fd, &opts);
}

/* Teach the routes map the path of the request (the daemon does this live). */
static int route_cb(void *ctx, void *data, size_t size)
{
	struct bunscope_bpf *s = ctx;
	const struct bs_ev_path *ev = data;
	__u32 id = BS_ROUTE_FIRST;

	if (size >= sizeof(*ev) && ev->type == BS_EV_PATH)
		bpf_map_update_elem(bpf_map__fd(s->maps.routes), &ev->hash, &id, BPF_ANY);
	return 0;
}

static double median(double *v, int n)
{
	for (int i = 1; i < n; i++)
		for (int j = i; j > 0 && v[j - 1] > v[j]; j--) {
			double t = v[j];

			v[j] = v[j - 1];
			v[j - 1] = t;
		}
	return v[n / 2];
}

int bench_parse_run(unsigned long iterations)
{
	struct bunscope_bpf *s;
	struct bpf_program *p;
	struct ring_buffer *rb = NULL;
	char post[2048];
	int fd, nfd, err;

	s = bunscope_bpf__open();
	if (!s) {
		err = -errno;
		pr_warn("cannot open the BPF object: %s\n", strerror(errno));
		return err;
	}
	bpf_object__for_each_program(p, s->obj)
		bpf_program__set_autoload(p, p == s->progs.bs_bench || p == s->progs.bs_bench_null);
	err = bunscope_bpf__load(s);
	if (err) {
		pr_warn("cannot load the benchmark program: %s\n", strerror(-err));
		goto out;
	}
	fd = bpf_program__fd(s->progs.bs_bench);
	nfd = bpf_program__fd(s->progs.bs_bench_null);
	rb = ring_buffer__new(bpf_map__fd(s->maps.events), route_cb, s, NULL);
	if (!rb) {
		err = -errno;
		goto out;
	}
	{
		int n = snprintf(post, sizeof(post),
				 "POST /upload HTTP/1.1\r\nHost: x\r\nContent-Length: 1024\r\n\r\n");

		memset(post + n, 'b', 1024);
		post[n + 1024] = 0;
	}

	printf("bench-parse: kernel time of one request + response through bunscope's data "
	       "path\n(BPF_PROG_TEST_RUN, %lu runs per case, median of 5 batches, an empty "
	       "program's run subtracted;\n the tracepoint, target check and syscall-argument "
	       "reads of a live run come on top)\n\n", iterations);
	printf("  %-28s %7s %7s %12s\n", "case", "req B", "resp B", "ns/request");
	for (size_t c = 0; c < sizeof(cases) / sizeof(cases[0]); c++) {
		const char *req = cases[c].req ? cases[c].req : post;
		size_t rl = strlen(req), pl = strlen(cases[c].resp);
		double full[5], base[5];

		/* warm up, and let the route be known as it would be live */
		run_once(fd, req, rl, cases[c].resp, pl);
		ring_buffer__consume(rb);
		run_once(fd, req, rl, cases[c].resp, pl);
		for (int b = 0; b < 5; b++) {
			double t0 = now_ns();

			for (unsigned long i = 0; i < iterations; i++)
				run_once(fd, req, rl, cases[c].resp, pl);
			full[b] = (now_ns() - t0) / (double)iterations;
			t0 = now_ns();
			for (unsigned long i = 0; i < iterations; i++)
				run_once(nfd, req, rl, cases[c].resp, pl);
			base[b] = (now_ns() - t0) / (double)iterations;
		}
		printf("  %-28s %7zu %7zu %12.0f\n", cases[c].name, rl, pl,
		       median(full, 5) - median(base, 5));
	}
	err = 0;
out:
	ring_buffer__free(rb);
	bunscope_bpf__destroy(s);
	return err;
}
