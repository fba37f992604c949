// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * bunscope bench-parse: the kernel-side cost of one request and its response,
 * measured in isolation.  The bs_bench program runs the data path of a real
 * syscall exit (process(): window copy, parser steps, route cache, histogram
 * update) on buffers of this process, through BPF_PROG_TEST_RUN.  The time
 * is the kernel's own measure of the program (kernel.bpf_stats_enabled,
 * switched on for the run), less the same measure of an empty program: that
 * removes the statistics' own clock reads and the test-run machinery.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <stdlib.h>
#include <bpf/bpf.h>
#include <bpf/libbpf.h>

#include "bunscope.h"
#include "bench.h"
#include "log.h"
#include "limit.h"
#include "bunscope.skel.h"

struct bench_case {
	const char *name;
	const char *req;
	const char *resp;
};

#define RESP_HI                                                         \
	"HTTP/1.1 200 OK\r\ncontent-type: text/plain;charset=utf-8\r\n" \
	"Date: Sun, 22 Nov 2026 09:54:49 GMT\r\nContent-Length: 2\r\n\r\nhi"

static const struct bench_case cases[] = {
	{ "wrk GET / and Bun's answer", "GET / HTTP/1.1\r\nHost: 127.0.0.1:3000\r\n\r\n", RESP_HI },
	{ "curl GET with 3 fields",
	  "GET /users/42?x=1 HTTP/1.1\r\nHost: localhost:3000\r\nUser-Agent: curl/7.88.1\r\n"
	  "Accept: */*\r\n\r\n",
	  RESP_HI },
	{ "browser-like GET, 9 fields",
	  "GET /api/items/123 HTTP/1.1\r\nHost: example.com\r\nUser-Agent: Mozilla/5.0 (X11; "
	  "Linux x86_64) AppleWebKit/537.36\r\nAccept: text/html,application/xhtml+xml\r\n"
	  "Accept-Language: en-US,en;q=0.9\r\nAccept-Encoding: gzip, deflate, br\r\n"
	  "Connection: keep-alive\r\nCookie: session=abcdef0123456789\r\n"
	  "Cache-Control: no-cache\r\nPragma: no-cache\r\n\r\n",
	  RESP_HI },
	{ "POST with a 1 KiB body", NULL, RESP_HI },
};

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

/* Average run time of a program since stats were enabled, ns. */
static int prog_time(int fd, __u64 *cnt, __u64 *ns)
{
	struct bpf_prog_info info = {};
	__u32 len = sizeof(info);

	if (bpf_obj_get_info_by_fd(fd, &info, &len))
		return -errno;
	*cnt = info.run_cnt;
	*ns = info.run_time_ns;
	return 0;
}

static int set_stats(int on)
{
	FILE *f = fopen("/proc/sys/kernel/bpf_stats_enabled", "r+");
	int old = 0;

	if (!f)
		return -1;
	if (fscanf(f, "%d", &old) != 1)
		old = 0;
	rewind(f);
	fprintf(f, "%d\n", on);
	fclose(f);
	return old;
}

/* With BUNSCOPE_BENCH_COLD=1, caches are swept between runs, as a busy
 * server's own work does between its syscalls. */
static char *sweep_buf;
#define SWEEP_BYTES (8u << 20)

static void sweep(void)
{
	for (size_t i = 0; i < SWEEP_BYTES; i += 64)
		sweep_buf[i]++;
}

/* One batch: kernel time per run of prog fd. */
static double batch(int fd, unsigned long n, const char *req, size_t rl, const char *resp,
		    size_t pl)
{
	/* zeros when prog_time fails: no runs counted, a result of 0 */
	__u64 c0 = 0, t0 = 0, c1 = 0, t1 = 0;

	prog_time(fd, &c0, &t0);
	for (unsigned long i = 0; i < n; i++) {
		if (sweep_buf)
			sweep();
		run_once(fd, req, rl, resp, pl);
	}
	prog_time(fd, &c1, &t1);
	return c1 > c0 ? (double)(t1 - t0) / (double)(c1 - c0) : 0;
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
	int fd, nfd, err, old_stats = -1;
	double null_ns;

	s = bunscope_bpf__open();
	if (!s) {
		err = -errno;
		pr_warn("cannot open the BPF object: %s\n", strerror(errno));
		return err;
	}
	bpf_object__for_each_program (p, s->obj)
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
	if (getenv("BUNSCOPE_BENCH_COLD")) {
		sweep_buf = calloc(1, SWEEP_BYTES);
		iterations = iterations > 2000 ? 2000 : iterations;
	}
	old_stats = set_stats(1);
	if (old_stats < 0) {
		err = -EPERM;
		pr_warn("cannot switch on kernel.bpf_stats_enabled\n");
		goto out;
	}
	{
		int n = snprintf(
			post, sizeof(post),
			"POST /upload HTTP/1.1\r\nHost: x\r\nContent-Length: 1024\r\n\r\n");

		memset(post + n, 'b', 1024);
		post[n + 1024] = 0;
	}

	printf("bench-parse: kernel time of one request + response through bunscope's data "
	       "path\n(BPF_PROG_TEST_RUN, %lu runs per case, median of 5 batches, bpf_stats run "
	       "time less an empty program's;\n the tracepoint, target check and "
	       "syscall-argument reads of a live run come on top)\n\n",
	       iterations);
	printf("  %-28s %7s %7s %12s\n", "case", "req B", "resp B", "ns/request");
	null_ns = 0;
	for (size_t c = 0; c < sizeof(cases) / sizeof(cases[0]); c++) {
		const char *req = cases[c].req ? cases[c].req : post;
		size_t rl = strlen(req), pl = strlen(cases[c].resp);
		double full[5], base[5];

		/* warm up, and let the route be known as it would be live */
		run_once(fd, req, rl, cases[c].resp, pl);
		ring_buffer__consume(rb);
		run_once(fd, req, rl, cases[c].resp, pl);
		for (int b = 0; b < 5; b++) {
			full[b] = batch(fd, iterations, req, rl, cases[c].resp, pl);
			base[b] = batch(nfd, iterations, req, rl, cases[c].resp, pl);
		}
		printf("  %-28s %7zu %7zu %12.0f\n", cases[c].name, rl, pl,
		       median(full, 5) - median(base, 5));
		null_ns += median(base, 5);
	}
	/* what kernel.bpf_stats_enabled itself adds to every program run here */
	printf("\n  statistics overhead per program run: %.0f ns\n",
	       /* NOLINTNEXTLINE(bugprone-integer-division): a count, exact */
	       null_ns / (double)(sizeof(cases) / sizeof(cases[0])));
	err = 0;
out:
	free(sweep_buf);
	sweep_buf = NULL;
	if (old_stats >= 0)
		set_stats(old_stats);
	ring_buffer__free(rb);
	bunscope_bpf__destroy(s);
	return err;
}
