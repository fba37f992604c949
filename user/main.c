// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * bunscope: observe Bun servers from outside the process.
 *
 * One thread runs the event loop (ring buffer, signals, a 250 ms timer that
 * follows the target processes); libmicrohttpd's thread serves the endpoints.
 * They share the route table, the daemon-side aggregates and the target list
 * under app->lock.
 */
#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/epoll.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/timerfd.h>
#include <bpf/bpf.h>
#include <bpf/libbpf.h>

#include "bench.h"
#include "bs_conn.h"
#include "daemon.h"
#include "doctor.h"
#include "expo.h"
#include "httpd.h"
#include "log.h"
#include "optval.h"
#include "routes.h"
#include "traces.h"

#define REFRESH_MS 250

/* ---- command line ----------------------------------------------------------- */

enum {
	OPT_MAX_ROUTES = 256,
	OPT_MAX_CONNS,
	OPT_MAX_SERIES,
	OPT_RINGBUF,
	OPT_CAPTURE,
	OPT_HOOKS_ONLY,
	OPT_LIMIT_IFACE,
	OPT_LIMIT_MODE,
	OPT_LIMIT_CONN,
	OPT_LIMIT_PKT,
	OPT_LIMIT_PRESET,
	OPT_LIMIT_ALGO,
	OPT_LIMIT_CLIENTS,
	OPT_LIMIT_V6_PREFIX,
	OPT_ALLOW,
	OPT_DENY,
	OPT_ALLOW_FILE,
	OPT_DENY_FILE,
	OPT_LIMIT_REQ,
	OPT_BAN_SECONDS,
	OPT_SHED_PENDING,
	OPT_SHED_P99,
	OPT_SHED_5XX,
	OPT_SHED_WINDOW,
	OPT_SHED_OPEN,
	OPT_SHED_PROBE,
	OPT_MEMORY_CEILING,
	OPT_UPROBE,
	OPT_OTLP_ENDPOINT,
	OPT_OTLP_HEADERS,
	OPT_OTLP_COMPRESSION,
	OPT_ZIPKIN_ENDPOINT,
	OPT_TRACES_FILE,
	OPT_TRACES_FILE_SIZE,
	OPT_TRACES_CONSOLE,
	OPT_TRACES_SAMPLE,
	OPT_TRACES_SAMPLER,
	OPT_TRACES_MAX_RATE,
	OPT_TRACES_QUERY,
	OPT_TRACES_QUEUE,
	OPT_TRACES_RINGBUF,
	OPT_SERVICE_NAME,
};

struct opt_desc {
	struct option o;
	const char *arg;
	const char *help;
};

static const struct opt_desc opt_table[] = {
	{ { "pid", required_argument, NULL, 'p' }, "PID", "observe this process (repeatable)" },
	{ { "name", required_argument, NULL, 'n' },
	  "NAME",
	  "observe processes whose comm, executable or argv[0] is NAME; re-attach on restart "
	  "(repeatable)" },
	{ { "port", required_argument, NULL, 'P' },
	  "PORT",
	  "observe the process listening on TCP PORT; re-attach on restart (repeatable)" },
	{ { "listen", required_argument, NULL, 'l' },
	  "ADDR:PORT",
	  "serve /metrics, /health, /api/server-metrics here (default " DEFAULT_LISTEN ")" },
	{ { "route", required_argument, NULL, 'r' },
	  "PATTERN",
	  "explicit route template, e.g. /users/:id or /static/* (repeatable, first match wins)" },
	{ { "max-routes", required_argument, NULL, OPT_MAX_ROUTES },
	  "N",
	  "distinct http_route values before the rest count as _other (default 1000)" },
	{ { "max-connections", required_argument, NULL, OPT_MAX_CONNS },
	  "N",
	  "connections followed at once (default 65536)" },
	{ { "max-series", required_argument, NULL, OPT_MAX_SERIES },
	  "N",
	  "histogram series kept in the kernel (default 16384)" },
	{ { "ringbuf-size", required_argument, NULL, OPT_RINGBUF },
	  "BYTES",
	  "ring buffer for new paths, power of two (default 4194304)" },
	{ { "memory-ceiling", required_argument, NULL, OPT_MEMORY_CEILING },
	  "BYTES",
	  "resident memory above which a target is flagged and logged; K, M, G (powers of "
	  "1024) allowed (default 4G)" },
	{ { "uprobe", required_argument, NULL, OPT_UPROBE },
	  "BINARY:SYMBOL",
	  "count calls of SYMBOL in BINARY (a path, or a library such as libc.so.6) and time "
	  "them, in every target; costs microseconds per call (repeatable, up to 8)" },
	{ { "capture", required_argument, NULL, OPT_CAPTURE },
	  "MODE",
	  "auto, tracepoint or raw_tracepoint (default auto: chosen by probing)" },
	{ { "hooks-only", no_argument, NULL, OPT_HOOKS_ONLY },
	  NULL,
	  "attach the same hooks with programs that return at once and count nothing: what the "
	  "hooks alone cost (make bench's floor)" },
	{ { "limit-iface", required_argument, NULL, OPT_LIMIT_IFACE },
	  "IFACE",
	  "enforce the limits below on traffic arriving on IFACE to the targets' listening "
	  "ports (repeatable); stays attached after exit, see 'bunscope limit'" },
	{ { "limit-mode", required_argument, NULL, OPT_LIMIT_MODE },
	  "MODE",
	  "auto (native XDP, then generic XDP, then tc), xdp or tc (default auto)" },
	{ { "limit-conn", required_argument, NULL, OPT_LIMIT_CONN },
	  "RATE:BURST",
	  "new connections per second per source address, bursts of BURST" },
	{ { "limit-pkt", required_argument, NULL, OPT_LIMIT_PKT },
	  "RATE:BURST",
	  "packets per second per source address, bursts of BURST" },
	{ { "limit", required_argument, NULL, OPT_LIMIT_PRESET },
	  "PRESET",
	  "named --limit-conn and --limit-pkt values: api, strict or burst (see README)" },
	{ { "limit-algo", required_argument, NULL, OPT_LIMIT_ALGO },
	  "ALGO",
	  "token-bucket or sliding-window (BURST in any BURST/RATE seconds) (default "
	  "token-bucket)" },
	{ { "limit-clients", required_argument, NULL, OPT_LIMIT_CLIENTS },
	  "N",
	  "sources tracked at once, a power of two; fixed memory, 32 bytes each "
	  "(default 65536)" },
	{ { "limit-v6-prefix", required_argument, NULL, OPT_LIMIT_V6_PREFIX },
	  "N",
	  "IPv6 sources are limited per /N (default 64)" },
	{ { "allow", required_argument, NULL, OPT_ALLOW },
	  "CIDR",
	  "never limited nor denied (repeatable; wins over --deny)" },
	{ { "deny", required_argument, NULL, OPT_DENY }, "CIDR", "dropped (repeatable)" },
	{ { "allow-file", required_argument, NULL, OPT_ALLOW_FILE },
	  "FILE",
	  "CIDRs to allow, one a line, # comments" },
	{ { "deny-file", required_argument, NULL, OPT_DENY_FILE },
	  "FILE",
	  "CIDRs to deny, one a line, # comments" },
	{ { "limit-req", required_argument, NULL, OPT_LIMIT_REQ },
	  "RATE:BURST",
	  "ban a client whose HTTP requests exceed RATE per second (bursts of BURST), as "
	  "the observer counts them, in XDP/tc" },
	{ { "ban-seconds", required_argument, NULL, OPT_BAN_SECONDS },
	  "N",
	  "how long such a ban lasts (default 60)" },
	{ { "shed-pending", required_argument, NULL, OPT_SHED_PENDING },
	  "N[:LOW]",
	  "load shedding: refuse new connections while the targets have more than N pending "
	  "requests, until at most LOW (default N/2)" },
	{ { "shed-p99", required_argument, NULL, OPT_SHED_P99 },
	  "SECONDS",
	  "... or while the p99 latency over --shed-window exceeds SECONDS" },
	{ { "shed-5xx", required_argument, NULL, OPT_SHED_5XX },
	  "RATIO",
	  "... or while the share of 5xx responses over --shed-window exceeds RATIO (0..1)" },
	{ { "shed-window", required_argument, NULL, OPT_SHED_WINDOW },
	  "SECONDS",
	  "window of --shed-p99 and --shed-5xx (default 10; at least 20 requests in it)" },
	{ { "shed-open", required_argument, NULL, OPT_SHED_OPEN },
	  "SECONDS",
	  "how long the breaker stays open before half-open (default 2)" },
	{ { "shed-probe", required_argument, NULL, OPT_SHED_PROBE },
	  "PERCENT",
	  "half-open: the share of new connections let through to probe (default 10)" },
	{ { "otlp-endpoint", required_argument, NULL, OPT_OTLP_ENDPOINT },
	  "URL",
	  "export spans with OTLP/HTTP JSON to URL (a base URL gets /v1/traces; default "
	  "$OTEL_EXPORTER_OTLP_TRACES_ENDPOINT or $OTEL_EXPORTER_OTLP_ENDPOINT)" },
	{ { "otlp-headers", required_argument, NULL, OPT_OTLP_HEADERS },
	  "K=V,...",
	  "extra OTLP request headers (default $OTEL_EXPORTER_OTLP_HEADERS)" },
	{ { "otlp-compression", required_argument, NULL, OPT_OTLP_COMPRESSION },
	  "gzip|none",
	  "OTLP body compression (default gzip)" },
	{ { "zipkin-endpoint", required_argument, NULL, OPT_ZIPKIN_ENDPOINT },
	  "URL",
	  "export spans as Zipkin v2 JSON, e.g. http://localhost:9411/api/v2/spans" },
	{ { "traces-file", required_argument, NULL, OPT_TRACES_FILE },
	  "PATH",
	  "write spans to PATH as JSONL; a regular file rotates (PATH.1 .. PATH.3)" },
	{ { "traces-file-size", required_argument, NULL, OPT_TRACES_FILE_SIZE },
	  "BYTES",
	  "rotate --traces-file above this size; K, M, G allowed (default 64M)" },
	{ { "traces-console", no_argument, NULL, OPT_TRACES_CONSOLE },
	  NULL,
	  "print one line per span on stdout" },
	{ { "traces-sample", required_argument, NULL, OPT_TRACES_SAMPLE },
	  "RATIO",
	  "sample this share of requests that carry no sampling decision (0..1; an incoming "
	  "traceparent's sampled flag is followed) (default 1, or $OTEL_TRACES_SAMPLER_ARG)" },
	{ { "traces-sampler", required_argument, NULL, OPT_TRACES_SAMPLER },
	  "NAME",
	  "always_on, always_off, traceidratio, parentbased_always_on, parentbased_always_off "
	  "or parentbased_traceidratio (default $OTEL_TRACES_SAMPLER or parentbased_always_on)" },
	{ { "traces-max-rate", required_argument, NULL, OPT_TRACES_MAX_RATE },
	  "N",
	  "at most N spans per second, the rest counted as dropped; 0: no cap (default 10000)" },
	{ { "traces-query", no_argument, NULL, OPT_TRACES_QUERY },
	  NULL,
	  "keep the query string in spans (url.query); off by default, it may hold secrets" },
	{ { "traces-queue", required_argument, NULL, OPT_TRACES_QUEUE },
	  "N",
	  "spans queued per exporter while it cannot send; the oldest go first (default 4096)" },
	{ { "traces-ringbuf", required_argument, NULL, OPT_TRACES_RINGBUF },
	  "BYTES",
	  "the kernel's span ring buffer, a power of two (default 8M)" },
	{ { "service-name", required_argument, NULL, OPT_SERVICE_NAME },
	  "NAME",
	  "service.name of the spans (default $OTEL_SERVICE_NAME, else the process name)" },
	{ { "verbose", no_argument, NULL, 'v' }, NULL, "more messages, libbpf's included" },
	{ { "help", no_argument, NULL, 'h' }, NULL, "this help" },
	{ { "version", no_argument, NULL, 'V' }, NULL, "print the version" },
};
#define NOPTS (sizeof(opt_table) / sizeof(opt_table[0]))

static void usage(FILE *f)
{
	fprintf(f,
		"Usage: bunscope [OPTIONS]           observe Bun servers, serve metrics\n"
		"       bunscope doctor [OPTIONS]    check this host and the targets, print fixes\n"
		"       bunscope check [OPTIONS]     load and attach everything, then exit\n"
		"       bunscope bench-parse         kernel cost of parsing sample requests\n"
		"       bunscope limit status|bans|ban|unban|detach   the pinned limiter, "
		"without the daemon\n"
		"\n"
		"Select targets with --pid, --name or --port (at least one to run the daemon).\n"
		"\nOptions:\n");
	for (size_t i = 0; i < NOPTS; i++) {
		const struct opt_desc *d = &opt_table[i];
		char left[64];

		if (d->o.val < 256)
			snprintf(left, sizeof(left), "-%c, --%s%s%s", d->o.val, d->o.name,
				 d->arg ? " " : "", d->arg ? d->arg : "");
		else
			snprintf(left, sizeof(left), "    --%s%s%s", d->o.name, d->arg ? " " : "",
				 d->arg ? d->arg : "");
		fprintf(f, "  %-28s %s\n", left, d->help);
	}
	fprintf(f, "\nExamples:\n"
		   "  bunscope --pid $(pgrep -n bun)\n"
		   "  bunscope --name bun --route /users/:id\n"
		   "  curl -s localhost:9464/metrics\n");
}

static const char *env_get(const char *name)
{
	return getenv(name);
}

/* --NAME RATE:BURST into rate and burst; the error says which part is wrong */
static int parse_rate_opt(const char *name, const char *arg, const char *example, __u32 *rate,
			  __u32 *burst)
{
	int r = limit_parse_rate(arg, rate, burst);

	if (r == -ERANGE)
		pr_warn("--%s: BURST is at most %u, got '%s'\n", name, BS_LIM_MAX_BURST, arg);
	else if (r)
		pr_warn("--%s: RATE:BURST, positive integers, e.g. %s, got '%s'\n", name, example,
			arg);
	return r ? -EINVAL : 0;
}

static int parse_args(int argc, char **argv, struct config *cfg)
{
	struct option longopts[NOPTS + 1];
	unsigned long v;

	memset(longopts, 0, sizeof(longopts));
	for (size_t i = 0; i < NOPTS; i++)
		longopts[i] = opt_table[i].o;

	for (;;) {
		int c = getopt_long(argc, argv, "p:n:P:l:r:vhV", longopts, NULL);

		if (c == -1)
			break;
		switch (c) {
		case 'p':
			if (parse_uint(optarg, 1, 0x7fffffff, &v)) {
				pr_warn("--pid: not a process id: '%s'\n", optarg);
				return -EINVAL;
			}
			if (cfg->sel.npids >= SEL_MAX) {
				pr_warn("--pid: at most %d\n", SEL_MAX);
				return -EINVAL;
			}
			cfg->sel.pids[cfg->sel.npids++] = (__u32)v;
			break;
		case 'n':
			if (!*optarg || strlen(optarg) > 255 || cfg->sel.nnames >= SEL_MAX) {
				pr_warn("--name: empty, too long or more than %d\n", SEL_MAX);
				return -EINVAL;
			}
			cfg->sel.names[cfg->sel.nnames++] = optarg;
			break;
		case 'P':
			if (parse_uint(optarg, 1, 65535, &v) || cfg->sel.nports >= SEL_MAX) {
				pr_warn("--port: not a TCP port (1-65535): '%s'\n", optarg);
				return -EINVAL;
			}
			cfg->sel.ports[cfg->sel.nports++] = (__u16)v;
			break;
		case 'l': {
			struct sockaddr_storage ss;
			socklen_t len;
			char err[128];

			if (expo_parse_listen(optarg, &ss, &len, err, sizeof(err))) {
				pr_warn("--listen: %s\n", err);
				return -EINVAL;
			}
			cfg->listen = optarg;
			break;
		}
		case 'r':
			if (cfg->nroutes >= MAX_ROUTE_PATTERNS) {
				pr_warn("--route: at most %d patterns\n", MAX_ROUTE_PATTERNS);
				return -EINVAL;
			}
			cfg->routes[cfg->nroutes++] = optarg;
			break;
		case OPT_MAX_ROUTES:
			if (parse_uint(optarg, 1, 1000000, &v)) {
				pr_warn("--max-routes: expected 1..1000000, got '%s'\n", optarg);
				return -EINVAL;
			}
			cfg->max_routes = (unsigned int)v;
			break;
		case OPT_MAX_CONNS:
			if (parse_uint(optarg, 16, 4194304, &v)) {
				pr_warn("--max-connections: expected 16..4194304, got '%s'\n",
					optarg);
				return -EINVAL;
			}
			cfg->lopts.max_conns = (__u32)v;
			break;
		case OPT_MAX_SERIES:
			if (parse_uint(optarg, 16, 1048576, &v)) {
				pr_warn("--max-series: expected 16..1048576, got '%s'\n", optarg);
				return -EINVAL;
			}
			cfg->lopts.max_series = (__u32)v;
			break;
		case OPT_RINGBUF:
			if (parse_uint(optarg, 4096, 1UL << 30, &v) || (v & (v - 1))) {
				pr_warn("--ringbuf-size: a power of two between 4096 and 1 GiB, got '%s'\n",
					optarg);
				return -EINVAL;
			}
			cfg->lopts.ringbuf_bytes = (__u32)v;
			break;
		case OPT_MEMORY_CEILING:
			if (parse_bytes(optarg, &cfg->memory_ceiling)) {
				pr_warn("--memory-ceiling: a byte count such as 536870912, 512M or 4G, "
					"got '%s'\n",
					optarg);
				return -EINVAL;
			}
			break;
		case OPT_UPROBE:
			if (cfg->nuprobes >= BS_MAX_UPROBES) {
				pr_warn("--uprobe: at most %d probes\n", BS_MAX_UPROBES);
				return -EINVAL;
			}
			if (uprobe_parse(optarg, &cfg->uprobes[cfg->nuprobes])) {
				pr_warn("--uprobe: BINARY:SYMBOL, e.g. /usr/lib/x86_64-linux-gnu/"
					"libc.so.6:malloc, got '%s'\n",
					optarg);
				return -EINVAL;
			}
			cfg->nuprobes++;
			break;
		case OPT_CAPTURE:
			if (!strcmp(optarg, "auto"))
				cfg->lopts.mode = CAPTURE_AUTO;
			else if (!strcmp(optarg, "tracepoint"))
				cfg->lopts.mode = CAPTURE_TRACEPOINT;
			else if (!strcmp(optarg, "raw_tracepoint"))
				cfg->lopts.mode = CAPTURE_RAW_TP;
			else {
				pr_warn("--capture: auto, tracepoint or raw_tracepoint, got '%s'\n",
					optarg);
				return -EINVAL;
			}
			break;
		case OPT_HOOKS_ONLY:
			cfg->lopts.hooks_only = true;
			break;
		case OPT_LIMIT_IFACE:
			if (cfg->limit.nifaces >= BS_LIM_MAX_IFACES || !*optarg ||
			    strlen(optarg) >= 16) {
				pr_warn("--limit-iface: an interface name, at most %d of them\n",
					BS_LIM_MAX_IFACES);
				return -EINVAL;
			}
			cfg->limit.ifaces[cfg->limit.nifaces++] = optarg;
			break;
		case OPT_LIMIT_MODE:
			if (!strcmp(optarg, "auto"))
				cfg->limit.mode = LIMIT_MODE_AUTO;
			else if (!strcmp(optarg, "xdp"))
				cfg->limit.mode = LIMIT_MODE_XDP;
			else if (!strcmp(optarg, "tc"))
				cfg->limit.mode = LIMIT_MODE_TC;
			else {
				pr_warn("--limit-mode: auto, xdp or tc, got '%s'\n", optarg);
				return -EINVAL;
			}
			break;
		case OPT_LIMIT_CONN:
		case OPT_LIMIT_PKT:
			if (parse_rate_opt(c == OPT_LIMIT_CONN ? "limit-conn" : "limit-pkt", optarg,
					   "100:200",
					   c == OPT_LIMIT_CONN ? &cfg->limit.conn_rate
							       : &cfg->limit.pkt_rate,
					   c == OPT_LIMIT_CONN ? &cfg->limit.conn_burst
							       : &cfg->limit.pkt_burst))
				return -EINVAL;
			break;
		case OPT_LIMIT_PRESET:
			if (limit_preset(optarg, &cfg->limit)) {
				pr_warn("--limit: presets are %s, got '%s'\n", limit_presets_help(),
					optarg);
				return -EINVAL;
			}
			break;
		case OPT_LIMIT_ALGO:
			if (!strcmp(optarg, "token-bucket"))
				cfg->limit.algo = BS_LIM_TOKEN_BUCKET;
			else if (!strcmp(optarg, "sliding-window"))
				cfg->limit.algo = BS_LIM_SLIDING_WINDOW;
			else {
				pr_warn("--limit-algo: token-bucket or sliding-window, got '%s'\n",
					optarg);
				return -EINVAL;
			}
			break;
		case OPT_LIMIT_CLIENTS:
			if (parse_uint(optarg, 64, 1UL << 24, &v) || (v & (v - 1))) {
				pr_warn("--limit-clients: a power of two from 64 to 16777216, got "
					"'%s'\n",
					optarg);
				return -EINVAL;
			}
			cfg->limit.clients = (__u32)v;
			break;
		case OPT_LIMIT_V6_PREFIX:
			if (parse_uint(optarg, 1, 128, &v)) {
				pr_warn("--limit-v6-prefix: 1..128, got '%s'\n", optarg);
				return -EINVAL;
			}
			cfg->limit.v6_prefix = (__u32)v;
			break;
		case OPT_LIMIT_REQ:
			if (parse_rate_opt("limit-req", optarg, "20:40", &cfg->limit.req_rate,
					   &cfg->limit.req_burst))
				return -EINVAL;
			break;
		case OPT_BAN_SECONDS:
			if (parse_uint(optarg, 1, 86400 * 365, &v)) {
				pr_warn("--ban-seconds: 1..31536000, got '%s'\n", optarg);
				return -EINVAL;
			}
			cfg->limit.ban_seconds = (__u32)v;
			break;
		case OPT_SHED_PENDING:
			if (limit_parse_shed_pending(optarg, &cfg->limit.shed_pending,
						     &cfg->limit.shed_low)) {
				pr_warn("--shed-pending: N or N:LOW with 0 <= LOW < N, got '%s'\n",
					optarg);
				return -EINVAL;
			}
			break;
		case OPT_SHED_P99:
		case OPT_SHED_5XX:
		case OPT_SHED_WINDOW:
		case OPT_SHED_OPEN: {
			static const struct {
				int opt;
				const char *name;
				double lo, hi;
			} r[] = {
				{ OPT_SHED_P99, "shed-p99", 0.001, 3600 },
				{ OPT_SHED_5XX, "shed-5xx", 0.0001, 1 },
				{ OPT_SHED_WINDOW, "shed-window", 1, 600 },
				{ OPT_SHED_OPEN, "shed-open", 0.1, 600 },
			};
			double *dst[] = { &cfg->limit.shed_p99, &cfg->limit.shed_5xx,
					  &cfg->limit.shed_window, &cfg->limit.shed_open };
			char *end;
			double d;
			size_t i = 0;

			while (r[i].opt != c)
				i++;
			errno = 0;
			d = strtod(optarg, &end);
			if (errno || end == optarg || *end || !(d >= r[i].lo && d <= r[i].hi)) {
				pr_warn("--%s: a number from %g to %g, got '%s'\n", r[i].name,
					r[i].lo, r[i].hi, optarg);
				return -EINVAL;
			}
			*dst[i] = d;
			break;
		}
		case OPT_SHED_PROBE:
			if (parse_uint(optarg, 1, 100, &v)) {
				pr_warn("--shed-probe: a per cent, 1..100, got '%s'\n", optarg);
				return -EINVAL;
			}
			cfg->limit.shed_probe_pct = (__u32)v;
			break;
		case OPT_ALLOW:
		case OPT_DENY: {
			struct limit_cidr *list =
				c == OPT_ALLOW ? cfg->limit.allow : cfg->limit.deny;
			int *n = c == OPT_ALLOW ? &cfg->limit.nallow : &cfg->limit.ndeny;

			if (*n >= LIMIT_MAX_CIDRS || limit_parse_cidr(optarg, &list[*n])) {
				pr_warn("--%s: a CIDR such as 10.0.0.0/8 or 2001:db8::/32 (at most "
					"%d), got '%s'\n",
					c == OPT_ALLOW ? "allow" : "deny", LIMIT_MAX_CIDRS, optarg);
				return -EINVAL;
			}
			(*n)++;
			break;
		}
		case OPT_ALLOW_FILE:
		case OPT_DENY_FILE: {
			int line, r = limit_read_cidr_file(optarg,
							   c == OPT_ALLOW_FILE ? cfg->limit.allow
									       : cfg->limit.deny,
							   c == OPT_ALLOW_FILE ? &cfg->limit.nallow
									       : &cfg->limit.ndeny,
							   LIMIT_MAX_CIDRS, &line);

			if (r) {
				if (r == -EINVAL)
					pr_warn("%s:%d: not a CIDR (or more than %d in all)\n",
						optarg, line, LIMIT_MAX_CIDRS);
				else
					pr_warn("%s: %s\n", optarg, strerror(-r));
				return -EINVAL;
			}
			break;
		}
		case OPT_OTLP_ENDPOINT:
			cfg->topts.otlp_endpoint = optarg;
			break;
		case OPT_OTLP_HEADERS:
			cfg->topts.otlp_headers = optarg;
			break;
		case OPT_OTLP_COMPRESSION:
			cfg->topts.compression = optarg;
			break;
		case OPT_ZIPKIN_ENDPOINT:
			cfg->topts.zipkin_url = optarg;
			break;
		case OPT_TRACES_FILE:
			cfg->topts.file = optarg;
			break;
		case OPT_TRACES_FILE_SIZE:
			if (parse_bytes(optarg, &cfg->topts.file_max) ||
			    cfg->topts.file_max < 4096) {
				pr_warn("--traces-file-size: a size of at least 4K, got '%s'\n",
					optarg);
				return -EINVAL;
			}
			break;
		case OPT_TRACES_CONSOLE:
			cfg->topts.console = true;
			break;
		case OPT_TRACES_SAMPLE:
			cfg->topts.ratio = optarg;
			break;
		case OPT_TRACES_SAMPLER:
			cfg->topts.sampler = optarg;
			break;
		case OPT_TRACES_MAX_RATE:
			if (parse_uint(optarg, 0, 10000000, &v)) {
				pr_warn("--traces-max-rate: 0..10000000 spans per second, got '%s'\n",
					optarg);
				return -EINVAL;
			}
			cfg->topts.max_rate = (long)v;
			break;
		case OPT_TRACES_QUERY:
			cfg->topts.query = true;
			break;
		case OPT_TRACES_QUEUE:
			if (parse_uint(optarg, 1, 1000000, &v)) {
				pr_warn("--traces-queue: 1..1000000, got '%s'\n", optarg);
				return -EINVAL;
			}
			cfg->topts.queue = (unsigned int)v;
			break;
		case OPT_TRACES_RINGBUF: {
			unsigned long long b;

			if (parse_bytes(optarg, &b) || b < 4096 || b > (1ULL << 30) ||
			    (b & (b - 1))) {
				pr_warn("--traces-ringbuf: a power of two from 4K to 1G, got '%s'\n",
					optarg);
				return -EINVAL;
			}
			cfg->topts.ringbuf = (unsigned int)b;
			break;
		}
		case OPT_SERVICE_NAME:
			if (!*optarg || strlen(optarg) >= SPAN_SERVICE_MAX) {
				pr_warn("--service-name: 1..%d bytes\n", SPAN_SERVICE_MAX - 1);
				return -EINVAL;
			}
			cfg->topts.service = optarg;
			break;
		case 'v':
			cfg->verbose++;
			break;
		case 'h':
			usage(stdout);
			exit(0);
		case 'V':
			printf("bunscope %s\n", BUNSCOPE_VERSION);
			exit(0);
		default:
			fprintf(stderr, "Try 'bunscope --help'.\n");
			return -EINVAL;
		}
	}
	if (optind < argc) {
		pr_warn("unexpected argument '%s' (try --help)\n", argv[optind]);
		return -EINVAL;
	}
	if (!cfg->limit.nifaces &&
	    (cfg->limit.conn_rate || cfg->limit.pkt_rate || cfg->limit.nallow || cfg->limit.ndeny ||
	     cfg->limit.req_rate || limit_shed_enabled(&cfg->limit))) {
		pr_warn("limits, bans, load shedding and allow/deny lists need --limit-iface "
			"IFACE: the interface their traffic arrives on\n");
		return -EINVAL;
	}
	if (cfg->limit.req_rate) {
		lim_rate_init(&cfg->lopts.req, cfg->limit.req_rate, cfg->limit.req_burst);
		cfg->lopts.req_algo = cfg->limit.algo;
		cfg->lopts.req_v6_prefix = cfg->limit.v6_prefix;
		cfg->lopts.req_clients = cfg->limit.clients;
		cfg->lopts.ban_ns = (__u64)cfg->limit.ban_seconds * BS_LIM_NSEC;
	}
	if (cfg->limit.nifaces)
		cfg->lopts.lim_pin_dir = BS_LIM_PIN_DIR;
	{
		struct traces_setup *ts = &cfg->traces;
		char err[256];

		if (traces_resolve(&cfg->topts, env_get, ts, err, sizeof(err))) {
			pr_warn("%s\n", err);
			return -EINVAL;
		}
		if (!ts->on && (cfg->topts.ratio || cfg->topts.sampler || cfg->topts.query)) {
			pr_warn("trace options without an exporter: give --otlp-endpoint, "
				"--zipkin-endpoint, --traces-file or --traces-console\n");
			return -EINVAL;
		}
		cfg->lopts.traces.on = ts->on;
		cfg->lopts.traces.query = ts->query;
		cfg->lopts.traces.sampler = ts->sampler;
		cfg->lopts.traces.ratio = ts->ratio;
		cfg->lopts.traces.ringbuf_bytes = ts->ringbuf;
		if (ts->max_rate)
			lim_rate_init(&cfg->lopts.traces.cap, ts->max_rate, ts->max_rate);
	}
	return 0;
}

/* ---- targets ------------------------------------------------------------------- */

/*
 * Connections open before we attached (accepted ones, and the target's own
 * to its upstreams, such as fetch's keep-alive pool): follow them from their
 * next request.
 */
static void seed_connections(struct app *a, const struct target *t)
{
	struct est_conn *ec = calloc(4096, sizeof(*ec));
	int fd = loader_fd_conns(&a->ld), n, seeded = 0;
	struct bs_conn *v = calloc(1, sizeof(*v));

	if (!ec || !v)
		goto out;
	n = targets_established(t->pid, ec, 4096);
	for (int i = 0; i < n; i++) {
		struct bs_conn_key k = { .tgid = t->pid, .fd = (__u32)ec[i].fd };
		int idx = ec[i].client ? BS_CLIENT_STATS(t->slot)
				       : loader_claim_port(&a->ld, t->slot, ec[i].lport);

		if (idx < 0)
			continue;
		memset(v, 0, sizeof(*v));
		v->hp.req.state = HS_RESYNC;
		v->hp.resp.state = HS_RESYNC;
		v->port = ec[i].client ? ec[i].rport : ec[i].lport;
		v->peer_port = ec[i].rport;
		v->family = ec[i].family;
		v->stats_idx = (__u32)idx;
		v->fd = (__u32)ec[i].fd;
		if (ec[i].client) {
			v->client = 1;
			v->hp.cflags = HP_CF_CLIENT;
		}
		memcpy(v->peer, ec[i].addr, 16);
		if (!bpf_map_update_elem(fd, &k, v, BPF_NOEXIST))
			seeded++;
	}
	if (seeded) {
		pthread_mutex_lock(&a->lock);
		a->seeded_conns += (unsigned long long)seeded;
		pthread_mutex_unlock(&a->lock);
		pr_info("pid %u: following %d connection(s) opened before attaching, from their "
			"next request\n",
			t->pid, seeded);
	}
out:
	free(ec);
	free(v);
}

static void on_target(void *ctx, const struct target *t, bool attached)
{
	struct app *a = ctx;

	if (attached) {
		pr_info("attached to pid %u (%s), selected by %s\n", t->pid, t->comm, t->how);
		if (a->nfresh < BUNSCOPE_MAX_TARGETS)
			a->fresh[a->nfresh++] = *t;
	} else {
		pr_info("pid %u (%s) exited; its series are removed\n", t->pid, t->comm);
		uprobes_detach(a, t->slot);
		collect_forget_target(a, t);
		traces_forget_tgid(a->traces, t->pid);
	}
}

/* The limiter guards the ports the targets listen on, and the --port ones. */
static void limit_ports_refresh(struct app *a)
{
	__u16 ports[BS_LIM_MAX_PORTS];
	int n = 0;

	for (int i = 0; i < a->cfg.sel.nports && n < BS_LIM_MAX_PORTS; i++)
		ports[n++] = a->cfg.sel.ports[i];
	for (int i = 0; i < a->targets.n && n < BS_LIM_MAX_PORTS; i++) {
		__u16 p[BS_LIM_MAX_PORTS];
		int k = targets_listening_ports(a->targets.t[i].pid, p, BS_LIM_MAX_PORTS);

		for (int j = 0; j < k && n < BS_LIM_MAX_PORTS; j++) {
			bool dup = false;

			for (int m = 0; m < n; m++)
				dup |= ports[m] == p[j];
			if (!dup)
				ports[n++] = p[j];
		}
	}
	limit_set_ports(a->limiter, ports, n);
}

/* The breaker's heartbeat, the stats entries it sums, the daemon's thresholds. */
static void limiter_tick(struct app *a)
{
	const struct limit_opts *o = &a->cfg.limit;
	__u32 idx[BS_SHED_IDX];
	struct shed_eval ev;
	int n = 0;

	pthread_mutex_lock(&a->lock);
	for (int i = 0; i < a->targets.n; i++)
		for (int p = 0; p < BS_PORT_SLOTS && n < BS_SHED_IDX; p++)
			if (loader_target_port(&a->ld, a->targets.t[i].slot, p) & BS_PORT_USED)
				idx[n++] = (__u32)(a->targets.t[i].slot * BS_PORT_SLOTS + p);
	if (o->shed_p99 > 0 || o->shed_5xx > 0) {
		struct shed_snap snap;

		collect_http_snapshot(a, &snap);
		shed_window_add(a->shed_win, &snap);
		shed_window_eval(a->shed_win, o, collect_dur_bounds(), &ev);
	}
	/* under the lock: the scrape reads the bans the tick rescans */
	limit_tick(a->limiter, idx, n, o->shed_p99 > 0 || o->shed_5xx > 0 ? &ev : NULL);
	pthread_mutex_unlock(&a->lock);
}

/*
 * Take back the slot armed for the kernel: adopt the process that took it,
 * or forget it if it is gone already.  Under a->lock.
 */
static void auto_disarm(struct app *a)
{
	int slot = a->auto_slot, err;
	__u32 pid, how;

	if (slot < 0)
		return;
	a->auto_slot = -1;
	if (!loader_auto_disarm(&a->ld, slot, &pid, &how)) {
		targets_release(&a->targets, slot);
		return;
	}
	err = targets_adopt(&a->targets, &a->cfg.sel, pid, slot, how == BS_AUTO_EXEC, on_target, a);
	if (err == -ESRCH) {
		struct target gone = { .pid = pid, .slot = slot };

		/* it came and went between two scans */
		collect_forget_target(a, &gone);
		traces_forget_tgid(a->traces, pid);
	} else if (err) {
		loader_set_target(&a->ld, slot, 0);
	}
}

/*
 * Arm a free slot for the next process that matches --name (at its exec or
 * listen) or --port (at its listen): the kernel observes it from then on,
 * so the requests it answers before the next scan are counted too.  The
 * slot's memory and thread figures start from zero.  Under a->lock.
 */
static void auto_arm(struct app *a)
{
	struct target clean;
	int slot;

	if (!a->cfg.lopts.auto_attach || (slot = targets_reserve(&a->targets)) < 0)
		return;
	clean = (struct target){ .pid = 0, .slot = slot };
	mem_seed(a, &clean); /* no /proc/0: zeros */
	sched_seed(a, &clean);
	a->auto_slot = slot;
	loader_auto_arm(&a->ld, slot);
}

static void refresh_targets(struct app *a, bool initial)
{
	struct target fresh[BUNSCOPE_MAX_TARGETS];
	int n, nfresh;

	pthread_mutex_lock(&a->lock);
	a->nfresh = 0;
	a->refreshes++;
	/* the kernel attaches nothing while /proc is scanned: the two would
	 * give one process two slots */
	auto_disarm(a);
	targets_refresh(&a->targets, &a->cfg.sel, on_target, a);
	n = a->targets.n;
	nfresh = a->nfresh;
	memcpy(fresh, a->fresh, sizeof(fresh[0]) * (size_t)nfresh);
	/* memory first (its events then only update it), then the filter so no
	 * accept is missed; both before /health can list the target.  What the
	 * kernel attached has been counted since its exec or listen. */
	for (int i = 0; i < nfresh; i++) {
		if (fresh[i].adopted)
			continue;
		mem_seed(a, &fresh[i]);
		sched_seed(a, &fresh[i]);
	}
	for (int i = 0; i < nfresh; i++) {
		if (!fresh[i].adopted)
			loader_set_target(&a->ld, fresh[i].slot, fresh[i].pid);
		uprobes_attach(a, &fresh[i]);
	}
	auto_arm(a);
	pthread_mutex_unlock(&a->lock);
	/* a target's listening ports rarely change: new targets at once, the
	 * rest every 2 s (the scan reads every socket of the target) */
	if (a->limiter && (nfresh || initial || a->refreshes % 8 == 0))
		limit_ports_refresh(a);
	/* then the connections that were open already */
	for (int i = 0; i < nfresh; i++)
		if (!fresh[i].adopted)
			seed_connections(a, &fresh[i]);
	if (!n && initial)
		pr_info("waiting for a process to match the selectors\n");
}

/* ---- ring buffer ---------------------------------------------------------------- */

static int on_event(void *ctx, void *data, size_t size)
{
	struct app *a = ctx;
	__u32 type = size >= sizeof(__u32) ? *(__u32 *)data : 0;

	if (type == BS_EV_PATH && size >= sizeof(struct bs_ev_path)) {
		const struct bs_ev_path *ev = data;
		__u32 id, len = ev->len > BS_PATH_MAX ? BS_PATH_MAX : ev->len;

		pthread_mutex_lock(&a->lock);
		a->path_events++;
		id = routes_resolve(a->routes, ev->path, len, ev->truncated);
		routes_remember(a->routes, ev->hash, id);
		pthread_mutex_unlock(&a->lock);
		bpf_map_update_elem(loader_fd_routes(&a->ld), &ev->hash, &id, BPF_ANY);
	} else if (type == BS_EV_ATTACH && size >= sizeof(struct bs_ev_attach)) {
		/* adopted by the refresh the loop runs next */
		a->refresh_soon = true;
	} else if (type == BS_EV_COMPLETE && size >= sizeof(struct bs_ev_complete)) {
		const struct bs_ev_complete *ev = data;
		struct bs_agg_key k = {
			.tgid = ev->tgid,
			.port = ev->port,
			.status = ev->status,
			.method = ev->method,
		};

		pthread_mutex_lock(&a->lock);
		a->complete_events++;
		if (collect_route_of_hash(a, ev->hash, &k.route_id)) {
			/* its path record was lost (ring buffer full) */
			a->unknown_hash++;
			k.route_id = BS_ROUTE_OTHER;
		}
		uagg_add(a->uagg, &k, ev->dur_ns, ev->req_body, ev->resp_body);
		pthread_mutex_unlock(&a->lock);
	} else if (type == BS_EV_OOM && size >= sizeof(struct bs_ev_oom)) {
		const struct bs_ev_oom *ev = data;

		a->oom_events++;
		pr_warn("pid %u was chosen by the OOM killer (anon %.1f MiB, file %.1f MiB, "
			"shmem %.1f MiB resident)\n",
			ev->pid, (double)ev->anon_rss / (1 << 20), (double)ev->file_rss / (1 << 20),
			(double)ev->shmem_rss / (1 << 20));
	}
	return 0;
}

/* ---- the daemon ------------------------------------------------------------------- */

static int app_init(struct app *a)
{
	char err[160];

	clock_gettime(CLOCK_MONOTONIC, &a->started);
	pthread_mutex_init(&a->lock, NULL);
	a->auto_slot = -1;
	a->routes = routes_new(a->cfg.max_routes);
	a->uagg = uagg_new(a->cfg.lopts.max_series);
	if (a->cfg.limit.shed_p99 > 0 || a->cfg.limit.shed_5xx > 0) {
		a->shed_win = calloc(1, sizeof(*a->shed_win));
		if (a->shed_win) {
			/* nothing was observed before the start: the window's first
			 * requests count from zero */
			struct shed_snap zero = { .t_ms = (__u64)a->started.tv_sec * 1000 +
							  (__u64)a->started.tv_nsec / 1000000 };

			shed_window_add(a->shed_win, &zero);
		}
	}
	if (!a->routes || !a->uagg ||
	    (!a->shed_win && (a->cfg.limit.shed_p99 > 0 || a->cfg.limit.shed_5xx > 0))) {
		pr_warn("out of memory\n");
		return -ENOMEM;
	}
	for (int i = 0; i < a->cfg.nroutes; i++) {
		if (routes_add_pattern(a->routes, a->cfg.routes[i], err, sizeof(err))) {
			pr_warn("--route '%s': %s\n", a->cfg.routes[i], err);
			return -EINVAL;
		}
	}
	return 0;
}

static void app_fini(struct app *a)
{
	httpd_stop(a->httpd);
	a->httpd = NULL;
	ring_buffer__free(a->rb);
	a->rb = NULL;
	for (int i = 0; i < BUNSCOPE_MAX_TARGETS; i++)
		uprobes_detach(a, i);
	loader_stop(&a->ld);
	/* the programs are gone: what they wrote is read, then sent */
	traces_stop(a->traces);
	a->traces = NULL;
	if (a->tracer)
		tracer_stop(a->tracer, 2000);
	a->tracer = NULL;
	if (a->limiter)
		pr_info("limiter stays attached (pinned in %s); 'bunscope limit detach' removes "
			"it\n",
			BS_LIM_PIN_DIR);
	limit_close(a->limiter);
	a->limiter = NULL;
	routes_free(a->routes);
	uagg_free(a->uagg);
	free(a->shed_win);
	pthread_mutex_destroy(&a->lock);
}

/* --pid targets must exist now: a typo should fail loudly, not wait forever */
static int check_pids(const struct config *cfg)
{
	for (int i = 0; i < cfg->sel.npids; i++) {
		char comm[16];
		int err = targets_probe_pid(cfg->sel.pids[i], comm);

		if (err) {
			pr_warn("--pid %u: no such process (%s)\n", cfg->sel.pids[i],
				strerror(-err));
			return err;
		}
	}
	return 0;
}

static int run_loop(struct app *a, int sfd)
{
	struct epoll_event ev = { .events = EPOLLIN };
	struct itimerspec its = {
		.it_interval = { 0, REFRESH_MS * 1000000L },
		.it_value = { 0, REFRESH_MS * 1000000L },
	};
	struct itimerspec eits = {
		.it_interval = { 0, ELU_SAMPLE_MS * 1000000L },
		.it_value = { 0, ELU_SAMPLE_MS * 1000000L },
	};
	int ep = epoll_create1(EPOLL_CLOEXEC);
	int tfd = timerfd_create(CLOCK_MONOTONIC, TFD_CLOEXEC | TFD_NONBLOCK);
	int efd = timerfd_create(CLOCK_MONOTONIC, TFD_CLOEXEC | TFD_NONBLOCK);
	int rfd = ring_buffer__epoll_fd(a->rb);
	unsigned long long last_lost = 0;
	int err = 0, ticks = 0;

	if (ep < 0 || tfd < 0 || efd < 0 || timerfd_settime(tfd, 0, &its, NULL) ||
	    timerfd_settime(efd, 0, &eits, NULL)) {
		err = -errno;
		pr_warn("cannot set up the event loop: %s\n", strerror(errno));
		goto out;
	}
	ev.data.fd = sfd;
	epoll_ctl(ep, EPOLL_CTL_ADD, sfd, &ev);
	ev.data.fd = tfd;
	epoll_ctl(ep, EPOLL_CTL_ADD, tfd, &ev);
	ev.data.fd = rfd;
	epoll_ctl(ep, EPOLL_CTL_ADD, rfd, &ev);
	ev.data.fd = efd;
	epoll_ctl(ep, EPOLL_CTL_ADD, efd, &ev);

	for (;;) {
		struct epoll_event evs[4];
		int n = epoll_wait(ep, evs, 4, -1);

		if (n < 0) {
			if (errno == EINTR)
				continue;
			err = -errno;
			pr_warn("epoll_wait: %s\n", strerror(errno));
			break;
		}
		for (int i = 0; i < n; i++) {
			int fd = evs[i].data.fd;

			if (fd == sfd) {
				struct signalfd_siginfo si;

				if (read(sfd, &si, sizeof(si)) == sizeof(si)) {
					pr_info("%s: detaching\n", strsignal((int)si.ssi_signo));
					goto out;
				}
			} else if (fd == tfd) {
				__u64 exp;

				if (read(tfd, &exp, sizeof(exp)) < 0)
					continue;
				refresh_targets(a, false);
				mem_check_ceiling(a);
				if (a->limiter)
					limiter_tick(a);
				/* every 10 s: say so if records were lost */
				if (++ticks % (10000 / REFRESH_MS) == 0) {
					__u32 idx = BS_CNT_EV_LOST;
					__u64 vals[256] = { 0 }, lost = 0;

					if (libbpf_num_possible_cpus() <= 256 &&
					    !bpf_map_lookup_elem(loader_fd_counters(&a->ld), &idx,
								 vals))
						for (int c = 0; c < libbpf_num_possible_cpus(); c++)
							lost += vals[c];
					if (lost > last_lost)
						pr_warn("%llu ring buffer records lost in the last 10 s "
							"(raise --ringbuf-size)\n",
							lost - last_lost);
					last_lost = lost;
				}
			} else if (fd == efd) {
				__u64 exp;

				if (read(efd, &exp, sizeof(exp)) < 0)
					continue;
				pthread_mutex_lock(&a->lock);
				sched_sample(a);
				pthread_mutex_unlock(&a->lock);
			} else if (fd == rfd) {
				ring_buffer__consume(a->rb);
				if (a->refresh_soon) {
					a->refresh_soon = false;
					refresh_targets(a, false);
				}
			}
		}
	}
out:
	if (ep >= 0)
		close(ep);
	if (tfd >= 0)
		close(tfd);
	if (efd >= 0)
		close(efd);
	return err;
}

static int start_traces(struct app *a)
{
	struct traces_setup *ts = &a->cfg.traces;
	static char host[256];
	char err[256], to[400] = "";

	if (gethostname(host, sizeof(host) - 1))
		snprintf(host, sizeof(host), "localhost");
	ts->tracer.host_name = host;
	ts->tracer.version = BUNSCOPE_VERSION;
	a->tracer = tracer_start(&ts->tracer, err, sizeof(err));
	if (!a->tracer) {
		pr_warn("traces: %s\n", err);
		return -EINVAL;
	}
	a->traces = traces_start(a, loader_fd_spans(&a->ld), &ts->collector, a->tracer, err,
				 sizeof(err));
	if (!a->traces) {
		pr_warn("traces: %s\n", err);
		return -ENOMEM;
	}
	if (ts->tracer.otlp_url)
		snprintf(to + strlen(to), sizeof(to) - strlen(to), " OTLP %s", ts->tracer.otlp_url);
	if (ts->tracer.zipkin_url)
		snprintf(to + strlen(to), sizeof(to) - strlen(to), " Zipkin %s",
			 ts->tracer.zipkin_url);
	if (ts->tracer.file_path)
		snprintf(to + strlen(to), sizeof(to) - strlen(to), " file %s",
			 ts->tracer.file_path);
	if (ts->tracer.console)
		snprintf(to + strlen(to), sizeof(to) - strlen(to), " console");
	if (ts->max_rate)
		pr_info("traces: sampler %s, at most %u spans/s, to%s\n", ts->sampler_desc,
			ts->max_rate, to);
	else
		pr_info("traces: sampler %s, no rate cap, to%s\n", ts->sampler_desc, to);
	return 0;
}

static int run(struct config *cfg, bool check_only)
{
	struct app *a = calloc(1, sizeof(*a));
	struct httpd_handlers h;
	sigset_t mask;
	char err[200];
	int sfd = -1, ret;

	if (!a)
		return -ENOMEM;
	a->cfg = *cfg;
	if ((ret = check_pids(cfg)))
		goto out_free;
	if ((ret = app_init(a)))
		goto out;

	/* signals arrive through the loop's signalfd, in every thread blocked */
	sigemptyset(&mask);
	sigaddset(&mask, SIGINT);
	sigaddset(&mask, SIGTERM);
	sigaddset(&mask, SIGHUP);
	pthread_sigmask(SIG_BLOCK, &mask, NULL);
	{
		struct sigaction sa = { .sa_handler = SIG_IGN };

		sigaction(SIGPIPE, &sa, NULL);
	}

	/* the observer shares the limiter's pinned bans and counters */
	if (limit_enabled(&cfg->limit) && (ret = limit_prepare_pins(&cfg->limit)))
		goto out;
	if ((ret = loader_start(&a->ld, &cfg->lopts)))
		goto out;
	loader_auto_selectors(&a->ld, cfg->sel.names, cfg->sel.nnames, cfg->sel.ports,
			      cfg->sel.nports);
	if ((ret = uprobes_validate(a)))
		goto out;
	if (cfg->nuprobes)
		pr_info("uprobes: %d function(s), attached to each target: %s%s\n", cfg->nuprobes,
			cfg->uprobes[0].label, cfg->nuprobes > 1 ? ", ..." : "");
	a->rb = ring_buffer__new(loader_fd_events(&a->ld), on_event, a, NULL);
	if (!a->rb) {
		ret = -errno;
		pr_warn("cannot open the ring buffer: %s\n", strerror(errno));
		goto out;
	}
	if (limit_enabled(&cfg->limit)) {
		a->limiter = limit_start(&cfg->limit);
		if (!a->limiter || limit_bind_observer(a->limiter, loader_fd_stats(&a->ld))) {
			ret = -EINVAL;
			goto out;
		}
	}
	if (cfg->traces.on && (ret = start_traces(a)))
		goto out;
	refresh_targets(a, true);
	if (check_only) {
		pr_info("check: BPF programs loaded and attached (%d target(s)); detaching\n",
			a->targets.n);
		ret = 0;
		goto out;
	}

	memset(&h, 0, sizeof(h));
	h.ctx = a;
	h.metrics = collect_metrics;
	h.server_metrics = collect_server_metrics;
	h.health = collect_health;
	a->httpd = httpd_start(cfg->listen, &h, err, sizeof(err));
	if (!a->httpd) {
		pr_warn("%s\n", err);
		ret = -EADDRINUSE;
		goto out;
	}
	pr_info("serving http://%s/metrics\n", cfg->listen);

	sfd = signalfd(-1, &mask, SFD_CLOEXEC);
	if (sfd < 0) {
		ret = -errno;
		pr_warn("signalfd: %s\n", strerror(errno));
		goto out;
	}
	ret = run_loop(a, sfd);
out:
	if (sfd >= 0)
		close(sfd);
	app_fini(a);
out_free:
	free(a);
	return ret;
}

int main(int argc, char **argv)
{
	struct config cfg = {
		.listen = DEFAULT_LISTEN,
		.max_routes = DEFAULT_MAX_ROUTES,
		.memory_ceiling = DEFAULT_MEMORY_CEILING,
		.topts = { .max_rate = -1 },
		.lopts = {
			.mode = CAPTURE_AUTO,
			.max_conns = DEFAULT_MAX_CONNS,
			.max_series = DEFAULT_MAX_SERIES,
			.ringbuf_bytes = DEFAULT_RINGBUF,
		},
	};
	enum { CMD_RUN, CMD_DOCTOR, CMD_CHECK, CMD_BENCH } cmd = CMD_RUN;
	int err;

	setvbuf(stderr, NULL, _IOLBF, 0);
	limit_opts_init(&cfg.limit);
	if (argc > 1 && !strcmp(argv[1], "limit")) {
		log_set_level(LOG_INFO);
		log_setup_libbpf();
		return limit_cli(argc - 2, argv + 2);
	}
	if (argc > 1 && !strcmp(argv[1], "doctor"))
		cmd = CMD_DOCTOR;
	else if (argc > 1 && !strcmp(argv[1], "check"))
		cmd = CMD_CHECK;
	else if (argc > 1 && !strcmp(argv[1], "bench-parse"))
		cmd = CMD_BENCH;
	if (cmd != CMD_RUN) {
		argv[1] = argv[0];
		argv++;
		argc--;
	}
	if (parse_args(argc, argv, &cfg))
		return 2;
	log_set_level(cfg.verbose ? LOG_DEBUG : LOG_INFO);
	log_setup_libbpf();

	if (cmd == CMD_DOCTOR)
		return doctor_run(&cfg) ? 1 : 0;
	if (cmd == CMD_BENCH) {
		const char *n = getenv("BUNSCOPE_BENCH_RUNS");

		return bench_parse_run(n ? strtoul(n, NULL, 10) : 20000) ? 1 : 0;
	}
	if (cmd == CMD_RUN && !cfg.sel.npids && !cfg.sel.nnames && !cfg.sel.nports) {
		pr_warn("no target: give --pid, --name or --port (see --help)\n");
		return 2;
	}
	cfg.lopts.auto_attach = cfg.sel.nnames || cfg.sel.nports;
	err = run(&cfg, cmd == CMD_CHECK);
	return err ? 1 : 0;
}
