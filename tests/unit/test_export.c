// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * Unit tests for user/export.c: the span serializers (checked by Python's
 * json module, a decoder that shares no code with ours), the
 * OTEL_EXPORTER_OTLP_HEADERS parser, and the exporters themselves against
 * an in-test HTTP server: gzip POSTs, retries, Retry-After, refusals, a
 * collector that is down or never answers, and file rotation.
 *
 * Synchronisation is by polling with deadlines, never by fixed sleeps.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <cmocka.h>
#include <zlib.h>

#include "bunscope.h"
#include "../../user/expo.h"
#include "../../user/log.h"
#include "../../user/traces.h"

/* ---- log_msg: export.o logs through log.h; count what it says ----------- */

static pthread_mutex_t log_mu = PTHREAD_MUTEX_INITIALIZER;
static int nwarn;
static char last_warn[512];

void log_msg(enum log_level level, const char *fmt, ...)
{
	va_list ap;

	pthread_mutex_lock(&log_mu);
	va_start(ap, fmt);
	vsnprintf(last_warn, sizeof(last_warn), fmt, ap);
	va_end(ap);
	if (level == LOG_WARN)
		nwarn++;
	if (getenv("V"))
		fprintf(stderr, "log: %s", last_warn);
	pthread_mutex_unlock(&log_mu);
}

static int warnings(void)
{
	int n;

	pthread_mutex_lock(&log_mu);
	n = nwarn;
	pthread_mutex_unlock(&log_mu);
	return n;
}

/* ---- helpers ---------------------------------------------------------- */

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

static void nap_ms(unsigned int ms)
{
	struct timespec ts = { .tv_sec = ms / 1000, .tv_nsec = ms % 1000 * 1000000L };

	nanosleep(&ts, NULL);
}

static void hex_to(const char *hex, __u8 *out, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++)
		sscanf(hex + 2 * i, "%2hhx", &out[i]);
}

#define T1 "4bf92f3577b34da6a3ce929d0e0e4736"
#define S1 "00f067aa0ba902b7"
#define T2 "0af7651916cd43dd8448eb211c80319c"
#define S2 "b7ad6b7169203331"
#define P2 "b9c7c989f97918e1"
#define T3 "11111111111111111111111111111111"
#define S3 "2222222222222222"

#define START 1700000000123456789ULL

/* an ordinary server span of service svc / process pid */
static void mk_span(struct span *s, const char *tid, const char *sid, const char *svc, __u32 pid)
{
	memset(s, 0, sizeof(*s));
	hex_to(tid, s->trace_id, 16);
	hex_to(sid, s->span_id, 8);
	s->kind = SPAN_KIND_SERVER;
	s->trace_flags = 1;
	s->start_unix_ns = START;
	s->end_unix_ns = START + 1234567;
	s->pid = pid;
	s->http_status = 200;
	s->server_port = 3000;
	s->peer_port = 51234;
	s->req_body = 0;
	s->resp_body = 17;
	strcpy(s->method, "GET");
	strcpy(s->route, "/users/:id");
	strcpy(s->target, "/users/42?x=1");
	strcpy(s->peer_addr, "127.0.0.1");
	snprintf(s->service, sizeof(s->service), "%s", svc);
}

/*
 * The three spans of the serializer tests:
 *   a  api/100, root, 200, IPv4 client
 *   b  worker/200, a child with a tracestate, a client span, 503 error, IPv6
 *   c  api/100 again (after b: the grouping must join it to a), hostile text
 *      everywhere, an IPv4-mapped IPv6 peer, zero duration
 */
static void mk_batch(struct span sp[3], const struct span *ptrs[3])
{
	mk_span(&sp[0], T1, S1, "api", 100);

	mk_span(&sp[1], T2, S2, "worker", 200);
	hex_to(P2, sp[1].parent_id, 8);
	strcpy(sp[1].tracestate, "congo=t61rcWkgMzE,rojo=00f067aa0ba902b7");
	sp[1].kind = SPAN_KIND_CLIENT;
	sp[1].http_status = 503;
	sp[1].status = SPAN_STATUS_ERROR;
	strcpy(sp[1].status_msg, "upstream unavailable");
	strcpy(sp[1].method, "POST");
	strcpy(sp[1].route, "");
	strcpy(sp[1].target, "/v1/jobs");
	strcpy(sp[1].peer_addr, "2001:db8::1");
	sp[1].peer_port = 8080;
	sp[1].server_port = 8080;
	sp[1].req_body = 1ULL << 40;

	mk_span(&sp[2], T3, S3, "api", 100);
	strcpy(sp[2].method, "_OTHER");
	strcpy(sp[2].route, "/r\"\\\x02\xe2\x82");
	strcpy(sp[2].target, "/a\"b\\c\x01\x1f\xff(\xc3(?q=\"x\x7f");
	strcpy(sp[2].tracestate, "k=v\xff,\"x\\");
	strcpy(sp[2].status_msg, "boom\n\"\\");
	sp[2].status = SPAN_STATUS_ERROR;
	sp[2].http_status = 0;
	strcpy(sp[2].peer_addr, "::ffff:10.0.0.1");
	sp[2].end_unix_ns = sp[2].start_unix_ns;

	for (int i = 0; i < 3; i++)
		ptrs[i] = &sp[i];
}

/*
 * Run python3 with script on data (the script reads sys.argv[1]); 0 when
 * every assertion of the script held.  The prelude decodes the bytes as
 * strict UTF-8 and the JSON strictly (no NaN, no raw control characters).
 */
static const char py_prelude[] = "import json, re, sys\n"
				 "def bad(x): raise ValueError('non-JSON constant ' + x)\n"
				 "raw = open(sys.argv[1], 'rb').read()\n"
				 "txt = raw.decode('utf-8')\n"
				 "def load(t): return json.loads(t, parse_constant=bad)\n"
				 "HEX32 = re.compile('^[0-9a-f]{32}$')\n"
				 "HEX16 = re.compile('^[0-9a-f]{16}$')\n"
				 "FFFD = chr(0xfffd)\n"
				 "BS = chr(92)\n";

static int run_python(const char *script, const char *data, size_t len)
{
	char path[] = "/tmp/test_export.XXXXXX";
	char *prog;
	int fd, status = -1;
	pid_t pid;

	fd = mkstemp(path);
	if (fd < 0)
		return -1;
	if (write(fd, data, len) != (ssize_t)len) {
		close(fd);
		unlink(path);
		return -1;
	}
	close(fd);
	if (asprintf(&prog, "%s%s", py_prelude, script) < 0) {
		unlink(path);
		return -1;
	}
	pid = fork();
	if (pid == 0) {
		execlp("python3", "python3", "-c", prog, path, (char *)NULL);
		_exit(127);
	}
	if (pid > 0)
		waitpid(pid, &status, 0);
	free(prog);
	unlink(path);
	if (pid < 0 || !WIFEXITED(status))
		return -1;
	return WEXITSTATUS(status);
}

#define assert_python(script, data, len) assert_int_equal(run_python((script), (data), (len)), 0)

/* ---- OTLP JSON ---------------------------------------------------------- */

static const char otlp_checks[] =
	"d = load(txt)\n"
	"rs = d['resourceSpans']\n"
	"assert len(rs) == 2, rs\n"
	"def attrs(l): return {a['key']: a['value'] for a in l}\n"
	"by = {}\n"
	"for r in rs:\n"
	"    ra = attrs(r['resource']['attributes'])\n"
	"    by[ra['service.name']['stringValue']] = (ra, r)\n"
	"    assert ra['host.name'] == {'stringValue': 'host-1'}, ra\n"
	"    assert ra['telemetry.sdk.name'] == {'stringValue': 'bunscope'}\n"
	"    assert ra['telemetry.sdk.version'] == {'stringValue': '9.9.9'}\n"
	"    assert 'telemetry.sdk.language' not in ra\n"
	"    assert len(r['scopeSpans']) == 1\n"
	"    sc = r['scopeSpans'][0]['scope']\n"
	"    assert sc == {'name': 'bunscope', 'version': '9.9.9'}, sc\n"
	"    for s in r['scopeSpans'][0]['spans']:\n"
	"        assert HEX32.match(s['traceId']) and HEX16.match(s['spanId'])\n"
	"        assert isinstance(s['startTimeUnixNano'], str)\n"
	"        assert isinstance(s['endTimeUnixNano'], str)\n"
	"        for a in s['attributes']:\n"
	"            v = a['value']\n"
	"            assert len(v) == 1 and ('stringValue' in v or isinstance(v.get('intValue'), str)), a\n"
	"api, apir = by['api']\n"
	"wrk, wrkr = by['worker']\n"
	"assert api['process.pid'] == {'intValue': '100'}, api\n"
	"assert wrk['process.pid'] == {'intValue': '200'}, wrk\n"
	"a, c = apir['scopeSpans'][0]['spans']\n"
	"b, = wrkr['scopeSpans'][0]['spans']\n"
	/* a: the root server span */
	"assert a['traceId'] == '" T1 "' and a['spanId'] == '" S1 "'\n"
	"assert 'parentSpanId' not in a and 'traceState' not in a and 'status' not in a\n"
	"assert a['name'] == 'GET /users/:id' and a['kind'] == 2\n"
	"assert a['startTimeUnixNano'] == '1700000000123456789'\n"
	"assert a['endTimeUnixNano'] == '1700000000124691356'\n"
	"aa = attrs(a['attributes'])\n"
	"assert aa == {\n"
	"    'http.request.method': {'stringValue': 'GET'},\n"
	"    'http.route': {'stringValue': '/users/:id'},\n"
	"    'url.path': {'stringValue': '/users/42'},\n"
	"    'url.query': {'stringValue': 'x=1'},\n"
	"    'url.scheme': {'stringValue': 'http'},\n"
	"    'http.response.status_code': {'intValue': '200'},\n"
	"    'client.address': {'stringValue': '127.0.0.1'},\n"
	"    'client.port': {'intValue': '51234'},\n"
	"    'server.port': {'intValue': '3000'},\n"
	"    'http.request.body.size': {'intValue': '0'},\n"
	"    'http.response.body.size': {'intValue': '17'},\n"
	"}, aa\n"
	/* b: the child client span, an error */
	"assert b['parentSpanId'] == '" P2 "'\n"
	"assert b['traceState'] == 'congo=t61rcWkgMzE,rojo=00f067aa0ba902b7'\n"
	"assert b['name'] == 'POST' and b['kind'] == 3\n"
	"assert b['status'] == {'code': 2, 'message': 'upstream unavailable'}, b['status']\n"
	"ba = attrs(b['attributes'])\n"
	"assert ba['server.address'] == {'stringValue': '2001:db8::1'}\n"
	"assert ba['server.port'] == {'intValue': '8080'}\n"
	"assert ba['url.full'] == {'stringValue': 'http://[2001:db8::1]:8080/v1/jobs'}, ba\n"
	"assert ba['http.response.status_code'] == {'intValue': '503'}\n"
	"assert ba['http.request.body.size'] == {'intValue': str(1 << 40)}\n"
	"assert ba['error.type'] == {'stringValue': '503'}\n"
	"assert 'client.address' not in ba and 'http.route' not in ba\n"
	/* c: hostile text survives, invalid UTF-8 as U+FFFD */
	"ca = attrs(c['attributes'])\n"
	"assert ca['url.path']['stringValue'] == '/a\"b' + BS + 'c' + chr(1) + chr(31) + FFFD + '(' + FFFD + '(', ca\n"
	"assert ca['url.query']['stringValue'] == 'q=\"x' + chr(127), ca\n"
	"assert ca['http.route']['stringValue'] == '/r\"' + BS + chr(2) + FFFD + FFFD, ca\n"
	"assert c['name'] == '_OTHER /r\"' + BS + chr(2) + FFFD + FFFD\n"
	"assert c['traceState'] == 'k=v' + FFFD + ',\"x' + BS\n"
	"assert c['status'] == {'code': 2, 'message': 'boom' + chr(10) + '\"' + BS}\n"
	"assert 'http.response.status_code' not in ca\n"
	"assert ca['error.type'] == {'stringValue': '_OTHER'}\n";

static void test_otlp_json(void **state)
{
	struct tracer_cfg cfg = { .host_name = "host-1", .version = "9.9.9" };
	const struct span *ptrs[3];
	struct span sp[3];
	struct sbuf sb;

	(void)state;
	mk_batch(sp, ptrs);
	sbuf_init(&sb);
	otlp_json_batch(&sb, ptrs, 3, &cfg);
	assert_false(sb.oom);
	/* no raw control byte anywhere: all of them were escaped */
	for (size_t i = 0; i < sb.len; i++)
		assert_true((unsigned char)sb.buf[i] >= 0x20);
	assert_python(otlp_checks, sb.buf, sb.len);
	sbuf_free(&sb);

	/* an empty batch is still a valid request */
	sbuf_init(&sb);
	otlp_json_batch(&sb, ptrs, 0, &cfg);
	assert_string_equal(sb.buf, "{\"resourceSpans\":[]}");
	sbuf_free(&sb);
}

/*
 * A client span that knows the Host the app sent is named by it: the host
 * without its port is server.address, the URL is the app's, the address it
 * connected to is network.peer.*.  OTLP and Zipkin alike.
 */
static void assert_host_attrs(const struct sbuf *sb, const char *pick, const char *name,
			      const char *host)
{
	char script[1024];

	assert_false(sb->oom);
	snprintf(script, sizeof(script),
		 "d = load(txt)\n%s"
		 "assert a['server.address'] == '%s', a\n"
		 "assert a['url.full'] == 'http://%s/v1/jobs?id=7', a\n"
		 "assert a['url.path'] == '/v1/jobs', a\n",
		 pick, name, host);
	assert_python(script, sb->buf, sb->len);
}

static void test_client_host(void **state)
{
	static const struct {
		const char *host, *name;
	} cases[] = {
		{ "upstream.test:8080", "upstream.test" },
		{ "[::1]:8080", "::1" },
		{ "[::1]", "::1" },
		{ "example.com", "example.com" },
		{ "[]:1", "[]:1" }, /* nothing to split: whole */
		{ ":8080", ":8080" },
		{ "a:b:c", "a:b:c" },
	};
	const struct span *p;
	struct tracer_cfg cfg = { .host_name = "h", .version = "1" };
	struct span s;
	struct sbuf sb;

	(void)state;
	sbuf_init(&sb);
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		mk_span(&s, T2, S2, "worker", 200);
		s.kind = SPAN_KIND_CLIENT;
		strcpy(s.route, "");
		strcpy(s.target, "/v1/jobs?id=7");
		strcpy(s.peer_addr, "10.0.0.7");
		s.peer_port = 8080;
		s.server_port = 8080;
		strcpy(s.host, cases[i].host);
		p = &s;

		sbuf_reset(&sb);
		otlp_json_batch(&sb, &p, 1, &cfg);
		assert_host_attrs(&sb,
				  "s = d['resourceSpans'][0]['scopeSpans'][0]['spans'][0]\n"
				  "a = {x['key']: x['value']['stringValue' if 'stringValue' in "
				  "x['value'] else 'intValue'] for x in s['attributes']}\n"
				  "assert a['network.peer.address'] == '10.0.0.7', a\n"
				  "assert a['network.peer.port'] == '8080', a\n"
				  "assert a['server.port'] == '8080', a\n",
				  cases[i].name, cases[i].host);

		sbuf_reset(&sb);
		zipkin_json_batch(&sb, &p, 1);
		assert_host_attrs(
			&sb,
			"a = d[0]['tags']\n"
			"assert d[0]['remoteEndpoint'] == {'ipv4': '10.0.0.7', 'port': 8080}, d\n",
			cases[i].name, cases[i].host);
	}
	sbuf_free(&sb);
}

/* string fields that fill their array without a NUL are read up to its end */
static void test_unterminated_fields(void **state)
{
	const struct span *p;
	struct span s;
	struct sbuf sb;
	char *want;

	(void)state;
	mk_span(&s, T1, S1, "api", 1);
	memset(s.route, 'r', sizeof(s.route));
	memset(s.service, 's', sizeof(s.service));
	memset(s.tracestate, 't', sizeof(s.tracestate));
	memset(s.status_msg, 'm', sizeof(s.status_msg));
	memset(s.target, 'p', sizeof(s.target));
	s.status = SPAN_STATUS_ERROR;
	p = &s;
	sbuf_init(&sb);
	otlp_json_batch(&sb, &p, 1, NULL);
	zipkin_json_batch(&sb, &p, 1);
	span_jsonl(&sb, &s);
	span_console(&sb, &s);
	assert_false(sb.oom);
	want = calloc(1, sizeof(s.route) + 3);
	want[0] = '"';
	memset(want + 1, 'r', sizeof(s.route));
	want[sizeof(s.route) + 1] = '"';
	assert_non_null(strstr(sb.buf, want));
	/* nothing read past an array into the next field */
	assert_null(strstr(sb.buf, "rrrp"));
	assert_null(strstr(sb.buf, "sssst"));
	assert_null(strstr(sb.buf, "ttttm"));
	free(want);
	sbuf_free(&sb);
}

/* ---- Zipkin --------------------------------------------------------------- */

static const char zipkin_checks[] =
	"d = load(txt)\n"
	"assert isinstance(d, list) and len(d) == 3\n"
	"a, b, c = d\n"
	"for s in d:\n"
	"    assert HEX32.match(s['traceId']) and HEX16.match(s['id'])\n"
	"    assert isinstance(s['timestamp'], int) and isinstance(s['duration'], int)\n"
	"    assert s['duration'] >= 1\n"
	"    assert s['timestamp'] == 1700000000123456\n"
	"    assert all(isinstance(v, str) for v in s['tags'].values()), s['tags']\n"
	"assert a['traceId'] == '" T1 "' and a['id'] == '" S1 "' and 'parentId' not in a\n"
	"assert a['kind'] == 'SERVER' and a['name'] == 'GET /users/:id'\n"
	"assert a['duration'] == 1234\n"
	"assert a['localEndpoint'] == {'serviceName': 'api', 'port': 3000}, a\n"
	"assert a['remoteEndpoint'] == {'ipv4': '127.0.0.1', 'port': 51234}, a\n"
	"assert a['tags']['http.response.status_code'] == '200'\n"
	"assert a['tags']['http.route'] == '/users/:id'\n"
	"assert a['tags']['url.path'] == '/users/42' and a['tags']['url.query'] == 'x=1'\n"
	"assert 'error' not in a['tags'] and 'otel.status_code' not in a['tags']\n"
	"assert b['parentId'] == '" P2 "' and b['kind'] == 'CLIENT'\n"
	"assert b['localEndpoint'] == {'serviceName': 'worker'}, b\n"
	"assert b['remoteEndpoint'] == {'ipv6': '2001:db8::1', 'port': 8080}, b\n"
	"assert b['tags']['otel.status_code'] == 'ERROR'\n"
	"assert b['tags']['error'] == 'upstream unavailable'\n"
	"assert b['tags']['server.address'] == '2001:db8::1'\n"
	"assert c['duration'] == 1\n"
	"assert c['remoteEndpoint'] == {'ipv4': '10.0.0.1', 'port': 51234}, c\n"
	"assert c['tags']['error'] == 'boom' + chr(10) + '\"' + BS\n"
	"assert c['tags']['url.path'] == '/a\"b' + BS + 'c' + chr(1) + chr(31) + FFFD + '(' + FFFD + '('\n";

static void test_zipkin_json(void **state)
{
	const struct span *ptrs[3];
	struct span sp[3];
	struct sbuf sb;

	(void)state;
	mk_batch(sp, ptrs);
	sbuf_init(&sb);
	zipkin_json_batch(&sb, ptrs, 3);
	assert_false(sb.oom);
	assert_python(zipkin_checks, sb.buf, sb.len);

	/* no address Zipkin would refuse: a non-IP peer is left out */
	strcpy(sp[0].peer_addr, "not-an-ip\"");
	sbuf_reset(&sb);
	zipkin_json_batch(&sb, ptrs, 1);
	assert_python("d = load(txt)\n"
		      "assert d[0]['remoteEndpoint'] == {'port': 51234}, d\n",
		      sb.buf, sb.len);
	sbuf_free(&sb);
}

/* ---- JSONL and console ------------------------------------------------------ */

static void test_jsonl(void **state)
{
	const struct span *ptrs[3];
	struct span sp[3];
	struct sbuf sb;

	(void)state;
	mk_batch(sp, ptrs);
	sbuf_init(&sb);
	for (int i = 0; i < 3; i++)
		span_jsonl(&sb, &sp[i]);
	assert_false(sb.oom);
	assert_python("assert txt.endswith(chr(10))\n"
		      "lines = txt.split(chr(10))[:-1]\n"
		      "assert len(lines) == 3\n"
		      "a, b, c = [load(l) for l in lines]\n"
		      "assert a['trace_id'] == '" T1 "' and a['span_id'] == '" S1 "'\n"
		      "assert a['parent_id'] is None and b['parent_id'] == '" P2 "'\n"
		      "assert a['kind'] == 'server' and b['kind'] == 'client'\n"
		      "assert a['name'] == 'GET /users/:id'\n"
		      "assert a['start_unix_ns'] == 1700000000123456789\n"
		      "assert a['end_unix_ns'] == 1700000000124691356\n"
		      "assert a['duration_ns'] == 1234567 and c['duration_ns'] == 0\n"
		      "assert a['service'] == 'api' and a['pid'] == 100\n"
		      "assert a['attributes']['http.response.status_code'] == 200\n"
		      "assert a['attributes']['url.path'] == '/users/42'\n"
		      "assert b['status'] == 'error' and a['status'] == 'unset'\n"
		      "assert b['tracestate'].startswith('congo=')\n"
		      "assert c['tracestate'] == 'k=v' + FFFD + ',\"x' + BS\n",
		      sb.buf, sb.len);
	sbuf_free(&sb);
}

static void test_console(void **state)
{
	const struct span *ptrs[3];
	struct span sp[3];
	struct sbuf sb;
	char *nl;

	(void)state;
	mk_batch(sp, ptrs);
	hex_to(P2, sp[0].parent_id, 8);
	sbuf_init(&sb);
	span_console(&sb, &sp[0]);
	assert_string_equal(sb.buf,
			    "span " S1 " trace " T1 " GET /users/:id /users/42?x=1 200 1.234ms "
			    "client 127.0.0.1:51234 parent " P2 "\n");
	sbuf_reset(&sb);
	span_console(&sb, &sp[1]);
	assert_string_equal(sb.buf, "span " S2 " trace " T2 " POST - /v1/jobs 503 1.234ms "
				    "server [2001:db8::1]:8080 parent " P2
				    " error upstream\\x20unavailable\n");
	/* hostile bytes: one line, no control or non-ASCII byte reaches a terminal */
	sbuf_reset(&sb);
	span_console(&sb, &sp[2]);
	nl = strchr(sb.buf, '\n');
	assert_non_null(nl);
	assert_int_equal(nl - sb.buf, sb.len - 1);
	for (size_t i = 0; i + 1 < sb.len; i++)
		assert_true(sb.buf[i] >= 0x20 && sb.buf[i] < 0x7f);
	assert_non_null(strstr(sb.buf, " /a\"b\\x5cc\\x01\\x1f\\xff(\\xc3(?q=\"x\\x7f - 0.000ms "));
	sbuf_free(&sb);
}

/* ---- OTEL_EXPORTER_OTLP_HEADERS ---------------------------------------------- */

static void test_parse_headers(void **state)
{
	char out[8][512];
	char big[1024];

	(void)state;
	assert_int_equal(otlp_parse_headers("api-key=secret", out, 8), 1);
	assert_string_equal(out[0], "api-key: secret");

	assert_int_equal(otlp_parse_headers(" a = 1 ,\tb=two words\t, c=x=y== ", out, 8), 3);
	assert_string_equal(out[0], "a: 1");
	assert_string_equal(out[1], "b: two words");
	assert_string_equal(out[2], "c: x=y==");

	/* values are percent-decoded (after the split: %2C is a comma) */
	assert_int_equal(otlp_parse_headers("Authorization=Basic%20dXNlcjpwYXNz,x=a%2Cb%3d%25", out,
					    8),
			 2);
	assert_string_equal(out[0], "Authorization: Basic dXNlcjpwYXNz");
	assert_string_equal(out[1], "x: a,b=%");

	/* empty members are skipped; an empty value is allowed */
	assert_int_equal(otlp_parse_headers("a=1,,b=,", out, 8), 2);
	assert_string_equal(out[1], "b: ");
	assert_int_equal(otlp_parse_headers("", out, 8), 0);
	assert_int_equal(otlp_parse_headers(NULL, out, 8), 0);

	/* malformed */
	assert_int_equal(otlp_parse_headers("novalue", out, 8), -1);
	assert_int_equal(otlp_parse_headers("a=1,novalue", out, 8), -1);
	assert_int_equal(otlp_parse_headers("=v", out, 8), -1);
	assert_int_equal(otlp_parse_headers("  =v", out, 8), -1);
	assert_int_equal(otlp_parse_headers("a b=v", out, 8), -1);
	assert_int_equal(otlp_parse_headers("a:b=v", out, 8), -1);
	assert_int_equal(otlp_parse_headers("a=1\r\nEvil: yes", out, 8), -1);
	assert_int_equal(otlp_parse_headers("a=1%0d%0aEvil: yes", out, 8), -1);
	assert_int_equal(otlp_parse_headers("a=1%0AEvil", out, 8), -1);
	assert_int_equal(otlp_parse_headers("a=%00", out, 8), -1);
	assert_int_equal(otlp_parse_headers("a=%", out, 8), -1);
	assert_int_equal(otlp_parse_headers("a=%4", out, 8), -1);
	assert_int_equal(otlp_parse_headers("a=%zz", out, 8), -1);
	assert_int_equal(otlp_parse_headers("a\n=1", out, 8), -1);
	assert_int_equal(otlp_parse_headers("a=1,b=2,c=3", out, 2), -1); /* too many */
	memset(big, 'v', sizeof(big) - 1);
	big[0] = 'k';
	big[1] = '=';
	big[sizeof(big) - 1] = '\0';
	assert_int_equal(otlp_parse_headers(big, out, 8), -1); /* too long */
	big[508] = '\0'; /* "k: " + 506 v's + NUL = 510 bytes: fits */
	assert_int_equal(otlp_parse_headers(big, out, 8), 1);
}

/* ---- an in-test HTTP server ---------------------------------------------------- */

#define SRV_REQS 16

struct req {
	char *head; /* request line and header fields */
	char *body;
	size_t blen;
	double at; /* when it was complete (now_s()) */
};

struct srv {
	int lfd;
	unsigned short port;
	bool answer; /* false: listen only, never accept or answer */
	pthread_t th;
	atomic_bool stop;
	pthread_mutex_t mu;
	pthread_cond_t cv;
	const char *const *replies; /* one per request; the last one repeats */
	int nreplies;
	int nreq;
	struct req reqs[SRV_REQS];
};

static int listen_any(unsigned short *port)
{
	struct sockaddr_in sa = { .sin_family = AF_INET,
				  .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	socklen_t len = sizeof(sa);
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

	assert_true(fd >= 0);
	assert_int_equal(bind(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	assert_int_equal(listen(fd, 16), 0);
	assert_int_equal(getsockname(fd, (struct sockaddr *)&sa, &len), 0);
	*port = ntohs(sa.sin_port);
	return fd;
}

/* read one request from c; 0 on success, -1 on EOF/error/stop */
static int read_req(struct srv *sv, int c, struct req *r)
{
	size_t cap = 65536, len = 0, hlen = 0, clen = 0;
	char *buf = malloc(cap), *eoh, *p;
	struct pollfd pfd = { .fd = c, .events = POLLIN };
	ssize_t n;

	for (;;) {
		if (hlen && len >= hlen + clen)
			break;
		if (atomic_load(&sv->stop))
			goto fail;
		if (poll(&pfd, 1, 20) <= 0)
			continue;
		if (len == cap) {
			cap *= 2;
			buf = realloc(buf, cap);
		}
		n = read(c, buf + len, cap - len);
		if (n <= 0)
			goto fail;
		len += n;
		if (!hlen && (eoh = memmem(buf, len, "\r\n\r\n", 4))) {
			hlen = eoh - buf + 4;
			*eoh = '\0';
			p = strcasestr(buf, "\r\ncontent-length:");
			clen = p ? strtoul(p + 17, NULL, 10) : 0;
			*eoh = '\r';
		}
	}
	r->head = strndup(buf, hlen);
	r->body = malloc(clen + 1);
	memcpy(r->body, buf + hlen, clen);
	r->body[clen] = '\0';
	r->blen = clen;
	r->at = now_s();
	free(buf);
	return 0;
fail:
	free(buf);
	return -1;
}

static void *srv_main(void *arg)
{
	struct srv *sv = arg;
	struct pollfd pfd = { .fd = sv->lfd, .events = POLLIN };
	struct req r;
	const char *reply;
	int c, i;

	while (!atomic_load(&sv->stop)) {
		if (poll(&pfd, 1, 20) <= 0)
			continue;
		c = accept4(sv->lfd, NULL, NULL, SOCK_CLOEXEC);
		if (c < 0)
			continue;
		/* keep-alive: serve requests on this connection until it closes */
		while (!read_req(sv, c, &r)) {
			pthread_mutex_lock(&sv->mu);
			i = sv->nreq < sv->nreplies ? sv->nreq : sv->nreplies - 1;
			reply = sv->replies[i];
			if (sv->nreq < SRV_REQS)
				sv->reqs[sv->nreq] = r;
			else
				free(r.head), free(r.body);
			sv->nreq++;
			pthread_mutex_unlock(&sv->mu);
			/* the reply goes out after the request was recorded */
			if (write(c, reply, strlen(reply)) < 0)
				break;
			pthread_mutex_lock(&sv->mu);
			pthread_cond_broadcast(&sv->cv);
			pthread_mutex_unlock(&sv->mu);
		}
		close(c);
	}
	return NULL;
}

static void srv_start(struct srv *sv, const char *const *replies, int nreplies, bool answer)
{
	memset(sv, 0, sizeof(*sv));
	sv->lfd = listen_any(&sv->port);
	sv->replies = replies;
	sv->nreplies = nreplies;
	sv->answer = answer;
	pthread_mutex_init(&sv->mu, NULL);
	pthread_cond_init(&sv->cv, NULL);
	if (answer)
		assert_int_equal(pthread_create(&sv->th, NULL, srv_main, sv), 0);
}

/* A test server, and a tracer exporting OTLP or Zipkin to it (url: its buffer). */
static struct tracer *tracer_to_srv(struct srv *sv, const char *const *replies, int nreplies,
				    bool answer, struct tracer_cfg *cfg, char *url, size_t ulen,
				    bool zipkin)
{
	char err[256];
	struct tracer *t;

	srv_start(sv, replies, nreplies, answer);
	snprintf(url, ulen, "http://127.0.0.1:%u%s", sv->port,
		 zipkin ? "/api/v2/spans" : "/v1/traces");
	if (zipkin)
		cfg->zipkin_url = url;
	else
		cfg->otlp_url = url;
	t = tracer_start(cfg, err, sizeof(err));
	assert_non_null(t);
	return t;
}

static struct tracer *otlp_to_srv(struct srv *sv, const char *const *replies, int nreplies,
				  bool answer, struct tracer_cfg *cfg, char *url, size_t ulen)
{
	return tracer_to_srv(sv, replies, nreplies, answer, cfg, url, ulen, false);
}

static void srv_stop(struct srv *sv)
{
	int i;

	atomic_store(&sv->stop, true);
	if (sv->answer)
		pthread_join(sv->th, NULL);
	close(sv->lfd);
	for (i = 0; i < sv->nreq && i < SRV_REQS; i++) {
		free(sv->reqs[i].head);
		free(sv->reqs[i].body);
	}
}

static int srv_nreq(struct srv *sv)
{
	int n;

	pthread_mutex_lock(&sv->mu);
	n = sv->nreq;
	pthread_mutex_unlock(&sv->mu);
	return n;
}

/* poll cond(t) for up to ms; the stats it saw last are left in *st */
static bool wait_stats(struct tracer *t, struct tracer_stats *st, unsigned int ms,
		       bool (*cond)(const struct tracer_stats *, void *), void *arg)
{
	double end = now_s() + ms / 1000.0;

	for (;;) {
		tracer_get_stats(t, st);
		if (cond(st, arg))
			return true;
		if (now_s() > end)
			return false;
		nap_ms(1);
	}
}

static bool otlp_exported(const struct tracer_stats *st, void *arg)
{
	return st->exported[TRACER_OTLP] >= *(unsigned long long *)arg;
}

static bool otlp_rejected(const struct tracer_stats *st, void *arg)
{
	return st->dropped_rejected[TRACER_OTLP] >= *(unsigned long long *)arg;
}

static bool otlp_errors(const struct tracer_stats *st, void *arg)
{
	return st->errors[TRACER_OTLP] >= *(unsigned long long *)arg;
}

static int gunzip(const char *in, size_t n, char **out, size_t *outlen)
{
	size_t cap = 1 << 20;
	z_stream zs;
	int rc;

	memset(&zs, 0, sizeof(zs));
	if (inflateInit2(&zs, 15 + 16) != Z_OK)
		return -1;
	*out = malloc(cap);
	zs.next_in = (Bytef *)in;
	zs.avail_in = n;
	zs.next_out = (Bytef *)*out;
	zs.avail_out = cap - 1;
	rc = inflate(&zs, Z_FINISH);
	*outlen = zs.total_out;
	(*out)[*outlen] = '\0';
	inflateEnd(&zs);
	return rc == Z_STREAM_END ? 0 : -1;
}

/* n spans with span ids first, first + 1, ... of two resources */
static void submit_n(struct tracer *t, int first, int n)
{
	struct span s;
	char sid[17];

	for (int i = first; i < first + n; i++) {
		snprintf(sid, sizeof(sid), "%016x", i);
		mk_span(&s, T1, sid, i % 2 ? "api" : "worker", 100 + i % 2);
		tracer_submit(t, &s);
	}
}

static const char R200[] = "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n";
static const char R503[] = "HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\n\r\n";
static const char R429[] =
	"HTTP/1.1 429 Too Many Requests\r\nRetry-After: 1\r\nContent-Length: 0\r\n\r\n";
static const char R400[] = "HTTP/1.1 400 Bad Request\r\nContent-Length: 8\r\n\r\nbad\x01json";

/* ---- exporters ---------------------------------------------------------------- */

/* one gzip POST to the OTLP endpoint, with the operator's headers */
static void test_otlp_post_gzip(void **state)
{
	static const char *const replies[] = { R200 };
	unsigned long long want = 7;
	struct tracer_stats st;
	struct tracer_cfg cfg = {
		.otlp_gzip = true,
		.otlp_headers = "x-api-key=s%20cret , x-tenant=t1",
		.batch_ms = 20,
		.host_name = "h",
		.version = "1.2.3",
	};
	char url[64], *json = NULL;
	struct tracer *t;
	struct srv sv;
	size_t jlen = 0;

	(void)state;
	t = otlp_to_srv(&sv, replies, 1, true, &cfg, url, sizeof(url));
	submit_n(t, 1, (int)want);
	assert_true(wait_stats(t, &st, 3000, otlp_exported, &want));
	assert_int_equal(st.exported[TRACER_OTLP], 7);
	assert_int_equal(st.errors[TRACER_OTLP], 0);
	assert_int_equal(st.queued[TRACER_OTLP], 0);
	assert_true(st.on[TRACER_OTLP] && !st.on[TRACER_ZIPKIN] && !st.on[TRACER_FILE]);
	tracer_stop(t, 1000);

	/* all 7 in one POST: batch_ms gathers them */
	assert_int_equal(srv_nreq(&sv), 1);
	assert_non_null(strstr(sv.reqs[0].head, "POST /v1/traces HTTP/1.1\r\n"));
	assert_non_null(strcasestr(sv.reqs[0].head, "\r\nContent-Type: application/json"));
	assert_non_null(strcasestr(sv.reqs[0].head, "\r\nContent-Encoding: gzip"));
	assert_non_null(strcasestr(sv.reqs[0].head, "\r\nx-api-key: s cret\r\n"));
	assert_non_null(strcasestr(sv.reqs[0].head, "\r\nx-tenant: t1\r\n"));
	assert_int_equal(gunzip(sv.reqs[0].body, sv.reqs[0].blen, &json, &jlen), 0);
	assert_python(
		"d = load(txt)\n"
		"rs = d['resourceSpans']\n"
		"assert len(rs) == 2\n"
		"n = sum(len(ss['spans']) for r in rs for ss in r['scopeSpans'])\n"
		"assert n == 7, n\n"
		"ids = [s['spanId'] for r in rs for ss in r['scopeSpans'] for s in ss['spans']]\n"
		"assert sorted(ids) == ['%016x' % i for i in range(1, 8)], ids\n",
		json, jlen);
	free(json);
	srv_stop(&sv);
}

/* 503, then 429 with Retry-After: 1, then 200: the same batch, retried twice */
static void test_otlp_retry(void **state)
{
	static const char *const replies[] = { R503, R429, R200 };
	unsigned long long want = 5;
	struct tracer_cfg cfg = { .batch_ms = 10 };
	struct tracer_stats st;
	char url[64];
	struct tracer *t;
	struct srv sv;
	double gap;

	(void)state;
	t = otlp_to_srv(&sv, replies, 3, true, &cfg, url, sizeof(url));
	submit_n(t, 1, (int)want);
	assert_true(wait_stats(t, &st, 4000, otlp_exported, &want));
	assert_int_equal(st.exported[TRACER_OTLP], 5);
	assert_int_equal(st.errors[TRACER_OTLP], 2);
	assert_int_equal(st.dropped_rejected[TRACER_OTLP], 0);
	assert_int_equal(st.dropped_queue[TRACER_OTLP], 0);
	tracer_stop(t, 1000);

	assert_int_equal(srv_nreq(&sv), 3);
	/* not gzip: the body is the JSON itself, the same batch each time */
	assert_null(strcasestr(sv.reqs[0].head, "Content-Encoding"));
	assert_int_equal(sv.reqs[0].blen, sv.reqs[2].blen);
	assert_memory_equal(sv.reqs[0].body, sv.reqs[2].body, sv.reqs[0].blen);
	/* the first backoff is 125..250 ms; then Retry-After asked for 1 s */
	gap = sv.reqs[1].at - sv.reqs[0].at;
	assert_true(gap >= 0.1 && gap < 0.9);
	gap = sv.reqs[2].at - sv.reqs[1].at;
	assert_true(gap >= 0.9);
	srv_stop(&sv);
}

/* a 400: dropped at once, counted, logged once per status */
static void test_otlp_rejected(void **state)
{
	static const char *const replies[] = { R400 };
	unsigned long long want = 3;
	struct tracer_cfg cfg = { .batch_ms = 10, .batch_max = 3 };
	struct tracer_stats st;
	char url[64], err[256];
	struct tracer *t;
	struct srv sv;
	int w0 = warnings();

	(void)state;
	srv_start(&sv, replies, 1, true);
	snprintf(url, sizeof(url), "http://127.0.0.1:%u/", sv.port);
	cfg.otlp_url = url;
	t = tracer_start(&cfg, err, sizeof(err));
	assert_non_null(t);
	submit_n(t, 1, 3);
	assert_true(wait_stats(t, &st, 3000, otlp_rejected, &want));
	submit_n(t, 4, 3);
	want = 6;
	assert_true(wait_stats(t, &st, 3000, otlp_rejected, &want));
	assert_int_equal(st.dropped_rejected[TRACER_OTLP], 6);
	assert_int_equal(st.errors[TRACER_OTLP], 0);
	assert_int_equal(st.exported[TRACER_OTLP], 0);
	assert_int_equal(srv_nreq(&sv), 2);   /* no retries */
	assert_int_equal(warnings() - w0, 1); /* the second 400 is not logged */
	pthread_mutex_lock(&log_mu);
	assert_non_null(strstr(last_warn, "400"));
	assert_null(strchr(last_warn, '\x01')); /* the receiver's text is sanitised */
	pthread_mutex_unlock(&log_mu);
	tracer_stop(t, 1000);
	srv_stop(&sv);
}

/* OTLP partial success: a 200 that names the spans it rejected */
static void test_otlp_partial_success(void **state)
{
	static const char *const replies[] = {
		"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 65\r\n\r\n"
		"{\"partialSuccess\":{\"rejectedSpans\":\"2\",\"errorMessage\":\"too old\"}}",
	};
	unsigned long long want = 2;
	struct tracer_cfg cfg = { .batch_ms = 10, .batch_max = 5 };
	struct tracer_stats st;
	char url[64];
	struct tracer *t;
	struct srv sv;

	(void)state;
	assert_int_equal(strlen(strstr(replies[0], "\r\n\r\n") + 4), 65);
	t = otlp_to_srv(&sv, replies, 1, true, &cfg, url, sizeof(url));
	submit_n(t, 1, 5);
	assert_true(wait_stats(t, &st, 3000, otlp_rejected, &want));
	assert_int_equal(st.exported[TRACER_OTLP], 3);
	assert_int_equal(st.dropped_rejected[TRACER_OTLP], 2);
	assert_int_equal(st.errors[TRACER_OTLP], 0);
	pthread_mutex_lock(&log_mu);
	assert_non_null(strstr(last_warn, "too old"));
	pthread_mutex_unlock(&log_mu);
	tracer_stop(t, 1000);
	srv_stop(&sv);
}

static bool otlp_tried(const struct tracer_stats *st, void *arg)
{
	(void)arg;
	return st->errors[TRACER_OTLP] >= 1 && st->queued[TRACER_OTLP] >= 8;
}

/* the collector is down: a bounded queue, and a bounded stop */
static void test_queue_collector_down(void **state)
{
	struct tracer_cfg cfg = { .queue_max = 8, .batch_ms = 10, .otlp_gzip = true };
	struct tracer_stats st;
	unsigned short port;
	char url[64], err[256];
	struct tracer *t;
	double t0;
	int fd;

	(void)state;
	/* a port nobody listens on: bound, then closed */
	fd = listen_any(&port);
	close(fd);
	snprintf(url, sizeof(url), "http://127.0.0.1:%u/v1/traces", port);
	cfg.otlp_url = url;
	t = tracer_start(&cfg, err, sizeof(err));
	assert_non_null(t);

	submit_n(t, 1, 4);
	assert_true(wait_stats(t, &st, 3000, otlp_errors, &(unsigned long long){ 1 }));
	t0 = now_s();
	submit_n(t, 5, 96);
	/* submit never waits for the network */
	assert_true(now_s() - t0 < 0.2);
	assert_true(wait_stats(t, &st, 3000, otlp_tried, NULL));
	assert_int_equal(st.exported[TRACER_OTLP], 0);
	assert_int_equal(st.dropped_rejected[TRACER_OTLP], 0);
	assert_true(st.queued[TRACER_OTLP] <= 8);
	assert_int_equal(st.dropped_queue[TRACER_OTLP] + st.queued[TRACER_OTLP] +
				 st.exported[TRACER_OTLP],
			 100);

	t0 = now_s();
	tracer_stop(t, 500);
	assert_true(now_s() - t0 < 2.0);
}

/* the collector accepts the connection and never answers: stop is bounded */
static void test_stop_hung_collector(void **state)
{
	static const char *const replies[] = { R200 };
	struct tracer_cfg cfg = { .batch_ms = 1, .zipkin_url = NULL };
	char url[64];
	struct tracer *t;
	struct srv sv;
	double t0;

	(void)state;
	/* not answering: the kernel completes the handshake */
	t = tracer_to_srv(&sv, replies, 1, false, &cfg, url, sizeof(url), true);
	submit_n(t, 1, 3);
	/* the POST has started when curl's connection waits to be accepted */
	assert_int_equal(poll(&(struct pollfd){ .fd = sv.lfd, .events = POLLIN }, 1, 2000), 1);
	t0 = now_s();
	tracer_stop(t, 200); /* the request's own timeout is 10 s */
	assert_true(now_s() - t0 < 2.0);
	srv_stop(&sv);
}

static bool zipkin_exported(const struct tracer_stats *st, void *arg)
{
	return st->exported[TRACER_ZIPKIN] >= *(unsigned long long *)arg;
}

static void test_zipkin_post(void **state)
{
	static const char *const replies[] = {
		"HTTP/1.1 202 Accepted\r\nContent-Length: 0\r\n\r\n",
	};
	unsigned long long want = 4;
	struct tracer_cfg cfg = { .batch_ms = 10, .otlp_gzip = true };
	struct tracer_stats st;
	char url[64];
	struct tracer *t;
	struct srv sv;

	(void)state;
	t = tracer_to_srv(&sv, replies, 1, true, &cfg, url, sizeof(url), true);
	submit_n(t, 1, 4);
	assert_true(wait_stats(t, &st, 3000, zipkin_exported, &want));
	tracer_stop(t, 1000);
	assert_int_equal(srv_nreq(&sv), 1);
	assert_null(strcasestr(sv.reqs[0].head, "Content-Encoding"));
	assert_non_null(strcasestr(sv.reqs[0].head, "\r\nContent-Type: application/json"));
	assert_python("d = load(txt)\n"
		      "assert len(d) == 4 and all(s['kind'] == 'SERVER' for s in d)\n",
		      sv.reqs[0].body, sv.reqs[0].blen);
	srv_stop(&sv);
}

/*
 * A full queue while a batch is retried: the batch in flight is shipped
 * whole, as it was; of the spans that came meanwhile only the newest the
 * queue has room for are kept, each once.
 */
static void test_queue_full_while_retrying(void **state)
{
	static const char *const replies[] = {
		R503,
		"HTTP/1.1 202 Accepted\r\nContent-Length: 0\r\n\r\n",
	};
	struct tracer_cfg cfg = { .queue_max = 8, .batch_max = 4, .batch_ms = 10 };
	unsigned long long want = 8;
	struct tracer_stats st;
	char url[64];
	struct tracer *t;
	struct srv sv;
	double end;

	(void)state;
	t = tracer_to_srv(&sv, replies, 2, true, &cfg, url, sizeof(url), true);
	submit_n(t, 1, 4);
	/* the first POST got its 503: 1..4 wait in flight for the retry */
	for (end = now_s() + 3; srv_nreq(&sv) < 1 && now_s() < end;)
		nap_ms(1);
	assert_int_equal(srv_nreq(&sv), 1);
	submit_n(t, 5, 36);
	assert_true(wait_stats(t, &st, 4000, zipkin_exported, &want));
	tracer_stop(t, 1000);
	assert_int_equal(st.exported[TRACER_ZIPKIN], 8);
	assert_int_equal(st.dropped_queue[TRACER_ZIPKIN], 32);
	assert_int_equal(srv_nreq(&sv), 3);
	assert_python("d = load(txt)\n"
		      "assert [s['id'] for s in d] == ['%016x' % i for i in range(1, 5)], d\n",
		      sv.reqs[1].body, sv.reqs[1].blen);
	assert_python("d = load(txt)\n"
		      "assert [s['id'] for s in d] == ['%016x' % i for i in range(37, 41)], d\n",
		      sv.reqs[2].body, sv.reqs[2].blen);
	srv_stop(&sv);
}

static void test_start_errors(void **state)
{
	struct tracer_cfg cfg = { .otlp_url = "http://127.0.0.1:1/v1/traces" };
	char err[256];

	(void)state;
	cfg.otlp_headers = "a=1,broken";
	assert_null(tracer_start(&cfg, err, sizeof(err)));
	assert_non_null(strstr(err, "otlp: malformed header list"));
	cfg.otlp_headers = NULL;

	cfg.otlp_url = "ftp://example.com/x";
	assert_null(tracer_start(&cfg, err, sizeof(err)));
	assert_non_null(strstr(err, "not http"));
	cfg.otlp_url = "not a url";
	assert_null(tracer_start(&cfg, err, sizeof(err)));
	assert_non_null(strstr(err, "otlp:"));
	cfg.otlp_url = NULL;

	cfg.file_path = "/nonexistent-dir/spans.jsonl";
	assert_null(tracer_start(&cfg, err, sizeof(err)));
	assert_non_null(strstr(err, "file: cannot open"));

	assert_string_equal(tracer_exporter_name(TRACER_OTLP), "otlp");
	assert_string_equal(tracer_exporter_name(TRACER_ZIPKIN), "zipkin");
	assert_string_equal(tracer_exporter_name(TRACER_FILE), "file");
	assert_string_equal(tracer_exporter_name(TRACER_CONSOLE), "console");
}

static bool file_exported(const struct tracer_stats *st, void *arg)
{
	return st->exported[TRACER_FILE] >= *(unsigned long long *)arg;
}

static long file_size(const char *p)
{
	struct stat st;

	return stat(p, &st) ? -1 : st.st_size;
}

/* small batches, rotation above 4 KiB, two old files kept */
static struct tracer_cfg small_file_cfg(void)
{
	return (struct tracer_cfg){
		.queue_max = 64,
		.batch_max = 2,
		.batch_ms = 1,
		.file_max_bytes = 4096,
		.file_keep = 2,
	};
}

/* rotation: PATH -> PATH.1 -> PATH.2, the oldest beyond keep deleted */
static void test_file_rotation(void **state)
{
	char dir[] = "/tmp/test_export.d.XXXXXX", path[128], p[160], *all = NULL;
	struct tracer_cfg cfg = small_file_cfg();
	unsigned long long want = 40;
	struct tracer_stats st;
	size_t alen = 0;
	struct tracer *t;
	char err[256];
	FILE *f;
	int i;

	(void)state;
	assert_non_null(mkdtemp(dir));
	snprintf(path, sizeof(path), "%s/spans.jsonl", dir);
	cfg.file_path = path;
	t = tracer_start(&cfg, err, sizeof(err));
	assert_non_null(t);
	assert_int_equal(file_size(path), 0);
	for (i = 1; i <= 40; i++)
		submit_n(t, i, 1);
	assert_true(wait_stats(t, &st, 3000, file_exported, &want));
	assert_int_equal(st.errors[TRACER_FILE], 0);
	tracer_stop(t, 1000);

	snprintf(p, sizeof(p), "%s.3", path);
	assert_int_equal(file_size(p), -1);
	/* oldest first: PATH.2, PATH.1, PATH; each at most file_max_bytes */
	for (i = 2; i >= 0; i--) {
		char buf[8192];
		size_t n;

		if (i)
			snprintf(p, sizeof(p), "%s.%d", path, i);
		else
			snprintf(p, sizeof(p), "%s", path);
		assert_true(file_size(p) > 0 && file_size(p) <= 4096);
		f = fopen(p, "r");
		assert_non_null(f);
		n = fread(buf, 1, sizeof(buf), f);
		fclose(f);
		all = realloc(all, alen + n + 1);
		memcpy(all + alen, buf, n);
		alen += n;
		unlink(p);
	}
	rmdir(dir);
	/* whole lines only, in order, ending with the last span */
	assert_python("lines = txt.split(chr(10))\n"
		      "assert lines[-1] == ''\n"
		      "ids = [int(load(l)['span_id'], 16) for l in lines[:-1]]\n"
		      "assert ids == list(range(ids[0], 41)) and ids[0] > 1, ids\n",
		      all, alen);
	free(all);
}

struct fifo_reader {
	const char *path;
	char buf[65536];
	size_t len;
};

static void *fifo_read(void *arg)
{
	struct fifo_reader *r = arg;
	int fd = open(r->path, O_RDONLY);
	ssize_t n;

	if (fd < 0)
		return NULL;
	while (r->len < sizeof(r->buf) &&
	       (n = read(fd, r->buf + r->len, sizeof(r->buf) - r->len)) > 0)
		r->len += (size_t)n;
	close(fd);
	return NULL;
}

/*
 * A path that is not a regular file (a FIFO here; /dev/null in the
 * benchmark) is written past the size limit and never rotated: renaming it
 * would leave a regular file in the device's or pipe's place.
 */
static void test_file_not_regular(void **state)
{
	char dir[] = "/tmp/test_export.d.XXXXXX", path[128], p[160];
	struct tracer_cfg cfg = small_file_cfg();
	static struct fifo_reader r;
	unsigned long long want = 40;
	struct tracer_stats st;
	struct tracer *t;
	struct stat sb;
	pthread_t th;
	char err[256];
	int i;

	(void)state;
	assert_non_null(mkdtemp(dir));
	snprintf(path, sizeof(path), "%s/spans.fifo", dir);
	assert_int_equal(mkfifo(path, 0600), 0);
	memset(&r, 0, sizeof(r));
	r.path = path;
	/* the reader's open() waits for the writer's, and tracer_start()'s for it */
	assert_int_equal(pthread_create(&th, NULL, fifo_read, &r), 0);
	cfg.file_path = path;
	t = tracer_start(&cfg, err, sizeof(err));
	assert_non_null(t);
	for (i = 1; i <= 40; i++)
		submit_n(t, i, 1);
	assert_true(wait_stats(t, &st, 3000, file_exported, &want));
	assert_int_equal(st.errors[TRACER_FILE], 0);
	tracer_stop(t, 1000);
	pthread_join(th, NULL);

	assert_int_equal(stat(path, &sb), 0);
	assert_true(S_ISFIFO(sb.st_mode));
	snprintf(p, sizeof(p), "%s.1", path);
	assert_int_equal(file_size(p), -1);
	unlink(path);
	rmdir(dir);
	/* every span went through, past file_max_bytes */
	assert_true(r.len > 4096);
	assert_python("lines = txt.split(chr(10))\n"
		      "assert lines[-1] == ''\n"
		      "ids = [int(load(l)['span_id'], 16) for l in lines[:-1]]\n"
		      "assert ids == list(range(1, 41)), ids\n",
		      r.buf, r.len);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_otlp_json),
		cmocka_unit_test(test_unterminated_fields),
		cmocka_unit_test(test_zipkin_json),
		cmocka_unit_test(test_client_host),
		cmocka_unit_test(test_jsonl),
		cmocka_unit_test(test_console),
		cmocka_unit_test(test_parse_headers),
		cmocka_unit_test(test_start_errors),
		cmocka_unit_test(test_otlp_post_gzip),
		cmocka_unit_test(test_otlp_retry),
		cmocka_unit_test(test_otlp_rejected),
		cmocka_unit_test(test_otlp_partial_success),
		cmocka_unit_test(test_queue_collector_down),
		cmocka_unit_test(test_queue_full_while_retrying),
		cmocka_unit_test(test_stop_hung_collector),
		cmocka_unit_test(test_zipkin_post),
		cmocka_unit_test(test_file_rotation),
		cmocka_unit_test(test_file_not_regular),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
