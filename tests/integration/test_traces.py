"""Traces: one server span per request, W3C context, sampling, OTLP/HTTP,
Zipkin and JSONL export, and a collector that goes away.

Ground truth: the requests the clients made and Bun's own handled count;
the spans are decoded by span_receiver.py (stdlib json/gzip), never by
bunscope's serializers."""

import json
import os
import random
import tempfile
import time

from harness import (WS_BINARY, WS_TEXT, BunApp, Bunscope, UpstreamServer, WSClient,
                     assert_equal, curl,
                     get_req, privileged, rss_bytes, run_wrk, send_recv, wait_until)
from span_receiver import SpanReceiver

TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
PARENT = "00f067aa0ba902b7"


def _curl_many(app, paths, *extra):
    """All paths over one keep-alive connection; returns the status codes."""
    args = list(extra) + ["-w", "%{http_code}\\n"]
    for p in paths:
        args += ["-o", "/dev/null", app.url(p)]
    r = curl(*args)
    assert r.returncode == 0, "curl failed: %s" % r.stderr
    return r.stdout.split()


def _by_path(spans):
    out = {}
    for s in spans:
        out.setdefault(s["attrs"].get("url.path"), []).append(s)
    return out


@privileged
def test_spans_otlp():
    """One OTLP span per request, with the attributes the request had."""
    with SpanReceiver() as rec, BunApp() as app, \
            Bunscope.for_app(app, "--otlp-endpoint", rec.otlp_url) as scope:
        t0 = time.time_ns()
        paths = ["/", "/users/7", "/status/503", "/?q=secret", "/nope"] * 4
        codes = _curl_many(app, paths)
        assert codes.count("503") == 4 and codes.count("404") == 4, codes
        r = curl("-o", "/dev/null", "-w", "%{http_code}", "-X", "POST", "--data-binary",
                 "x" * 1000, app.url("/echo"))
        assert r.stdout == "200", r.stdout
        r = curl("-o", "/dev/null", "-w", "%{http_code}", app.url("/slow?ms=250"))
        assert r.stdout == "200", r.stdout
        n = len(paths) + 2
        spans = rec.wait_spans(n, 20, kind="otlp")
        t1 = time.time_ns()
        app.wait_idle()
        assert_equal(app.handled(), n, "Bun handled")
        assert_equal(len(spans), n, "spans received (one per request)")
        assert rec.errors == [], rec.errors
        assert all(p["gzip"] for p in rec.posts("otlp")), "OTLP bodies not gzip"
        assert len({s["span_id"] for s in spans}) == n, "span ids not unique"

        by = _by_path(spans)
        assert_equal(len(by["/users/7"]), 4, "/users/7 spans")
        for s in spans:
            assert s["kind"] == "server", s
            assert t0 <= s["start_ns"] <= s["end_ns"] <= t1, (t0, s["start_ns"], s["end_ns"], t1)
            assert s["parent_id"] is None, s
            assert s["resource"]["process.pid"] == app.pid, s["resource"]
            assert s["resource"]["service.name"] == "bun", s["resource"]
            assert s["resource"]["telemetry.sdk.name"] == "bunscope", s["resource"]
            assert s["attrs"]["server.port"] == app.port, s["attrs"]
            assert s["attrs"]["client.address"] in ("127.0.0.1", "::1"), s["attrs"]
        u = by["/users/7"][0]
        assert u["name"] == "GET /users/:id", u["name"]
        assert u["attrs"]["http.route"] == "/users/:id", u["attrs"]
        assert u["attrs"]["http.request.method"] == "GET", u["attrs"]
        assert u["attrs"]["http.response.status_code"] == 200, u["attrs"]
        assert u["status"] == "unset", u
        for s in by["/status/503"]:
            assert s["status"] == "error" and s["attrs"]["http.response.status_code"] == 503, s
        for s in by["/nope"]:
            assert s["status"] == "unset" and s["attrs"]["http.response.status_code"] == 404, s
        # the query string stays out without --traces-query
        assert "url.query" not in by["/"][0]["attrs"], by["/"][0]["attrs"]
        assert all("secret" not in json.dumps(s) for s in spans), "query string leaked"
        post = by["/echo"][0]
        assert post["attrs"]["http.request.method"] == "POST", post
        assert post["attrs"]["http.request.body.size"] == 1000, post["attrs"]
        slow = by["/slow"][0]
        assert slow["end_ns"] - slow["start_ns"] >= 250e6, slow
        s = scope.scrape()
        assert s.value("bunscope_spans_exported_total", exporter="otlp") == n


@privileged
def test_traceparent_and_sampling_flag():
    """An incoming traceparent is continued (trace id, parent span id,
    tracestate); sampled-flag 00 makes no span; a header anywhere in a large
    head is found."""
    with SpanReceiver() as rec, BunApp() as app, \
            Bunscope.for_app(app, "--otlp-endpoint", rec.otlp_url):
        tp = "00-%s-%s-01" % (TRACE, PARENT)
        hdrs = []
        for i in range(40):  # 8 KiB of fields before the traceparent
            hdrs += ["-H", "x-filler-%d: %s" % (i, "f" * 200)]
        codes = _curl_many(app, ["/users/parented"], *hdrs, "-H", "traceparent: " + tp,
                           "-H", "tracestate: rojo=00f067aa0ba902b7,congo=t61rcWkgMzE")
        assert codes == ["200"], codes
        codes = _curl_many(app, ["/users/unsampled"] * 5, "-H",
                           "traceparent: 00-%s-%s-00" % (TRACE, PARENT))
        assert codes == ["200"] * 5, codes
        codes = _curl_many(app, ["/users/root"] * 3)
        assert codes == ["200"] * 3
        # an invalid traceparent (uppercase) is ignored: a new trace
        codes = _curl_many(app, ["/users/badparent"], "-H",
                           "traceparent: 00-%s-%s-01" % (TRACE.upper(), PARENT))
        spans = rec.wait_spans(5, 20, kind="otlp")
        app.wait_idle()
        assert_equal(app.handled(), 10, "Bun handled")
        by = _by_path(spans)
        assert "/users/unsampled" not in by, "an unsampled parent made spans"
        p = by["/users/parented"][0]
        assert p["trace_id"] == TRACE and p["parent_id"] == PARENT, p
        assert p["trace_state"] == "rojo=00f067aa0ba902b7,congo=t61rcWkgMzE", p
        roots = by["/users/root"]
        assert len(roots) == 3 and len({s["trace_id"] for s in roots}) == 3, roots
        assert all(s["parent_id"] is None and s["trace_id"] != TRACE for s in roots), roots
        bad = by["/users/badparent"][0]
        assert bad["trace_id"] != TRACE.lower() and bad["parent_id"] is None, bad
        assert_equal(len(spans), 5, "spans")
        assert rec.errors == [], rec.errors


@privileged
def test_sampling_ratio():
    """--traces-sample 0.1 keeps about a tenth of root requests; requests with a
    sampled parent are always kept.  N requests (Bun's count) give a binomial
    count of spans: the test allows 4.5 standard deviations (p ~ 7e-6)."""
    with SpanReceiver() as rec, BunApp() as app, \
            Bunscope.for_app(app, "--otlp-endpoint", rec.otlp_url, "--traces-sample", "0.1",
                             "--traces-max-rate", "0"):
        run_wrk(app.url("/users/x"), 1, 4, 3)
        app.wait_idle()
        n = app.handled()
        tp = "00-%s-%s-01" % (TRACE, PARENT)
        codes = _curl_many(app, ["/users/kept"] * 20, "-H", "traceparent: " + tp)
        assert codes == ["200"] * 20
        p, sd = 0.1 * n, (n * 0.1 * 0.9) ** 0.5
        lo, hi = int(p - 4.5 * sd), int(p + 4.5 * sd) + 1
        kept = rec.wait_spans(20, 20, kind="otlp", pred=lambda s: s["attrs"].get("url.path") == "/users/kept")
        assert_equal(len(kept), 20, "spans with a sampled parent")

        def sampled():
            return len([s for s in rec.spans("otlp") if s["attrs"].get("url.path") == "/users/x"])
        # the exporters flush at least once a second
        got = wait_until(sampled, 20, "ratio spans within [%d, %d] of %d" % (lo, hi, n),
                         check=lambda v: v >= lo)
        got = wait_until(lambda: (sampled(), sampled()), 10, "span count stable",
                         check=lambda v: v[0] == v[1])[0]
        assert lo <= got <= hi, "%d spans of %d requests at 0.1: outside [%d, %d]" % (
            got, n, lo, hi)
        assert n > 2000, "too few requests for the statistics: %d" % n
        assert rec.errors == [], rec.errors


@privileged
def test_zipkin_file_and_console_agree():
    """Zipkin and JSONL exporters get the same spans (same ids) for the same
    requests; --traces-query keeps the query string."""
    with SpanReceiver() as rec, BunApp() as app, tempfile.TemporaryDirectory() as d:
        path = os.path.join(d, "spans.jsonl")
        with Bunscope.for_app(app, "--zipkin-endpoint", rec.zipkin_url, "--traces-file", path,
                              "--traces-query", "--service-name", "checkout"):
            paths = ["/users/%d?page=%d" % (i, i) for i in range(12)]
            assert _curl_many(app, paths) == ["200"] * 12
            zs = rec.wait_spans(12, 20, kind="zipkin")

            def lines():
                try:
                    with open(path) as f:
                        return [json.loads(x) for x in f if x.strip()]
                except FileNotFoundError:
                    return []
            js = wait_until(lines, 20, "12 JSONL spans", check=lambda v: len(v) >= 12)
        assert rec.errors == [], rec.errors
        assert_equal(len(zs), 12, "zipkin spans")
        assert_equal(len(js), 12, "JSONL spans")
        zid = {(s["trace_id"], s["span_id"]) for s in zs}
        jid = {(x["trace_id"], x["span_id"]) for x in js}
        assert zid == jid, "exporters disagree on ids"
        for s in zs:
            assert s["resource"]["service.name"] == "checkout", s
            assert s["attrs"]["url.query"].startswith("page="), s["attrs"]
            assert s["remote_port"] and s["local_port"] == app.port, s


@privileged
def test_collector_down_queue_bound():
    """The collector is down for 10 s while requests go on: bunscope keeps at
    most --traces-queue spans (the batch it was sending included), drops the
    oldest, its memory stays flat, and what it kept arrives afterwards."""
    queue = 100
    with SpanReceiver() as rec, BunApp() as app, \
            Bunscope.for_app(app, "--otlp-endpoint", rec.otlp_url,
                             "--traces-queue", str(queue)) as scope:
        assert _curl_many(app, ["/users/warm"] * 10) == ["200"] * 10
        # (the app's control port is observed too: its requests have spans;
        # none is made while the collector is down)
        before = app.handled()
        rec.wait_spans(11, 20, kind="otlp")
        rss0 = rss_bytes(scope.proc.pid)
        rec.go_down()
        t_down = time.monotonic()
        sent = 0
        while time.monotonic() - t_down < 10:
            assert _curl_many(app, ["/users/down"] * 200) == ["200"] * 200
            sent += 200
        rss1 = rss_bytes(scope.proc.pid)
        rec.come_back()

        def arrived():
            return len([s for s in rec.spans("otlp") if s["attrs"].get("url.path") == "/users/down"])
        # the bound holds the batch being retried too
        wait_until(lambda: scope.scrape().value("bunscope_span_export_queue", exporter="otlp"),
                   30, "the exporter's queue drained", check=lambda v: v == 0)
        got = arrived()
        s = scope.scrape()
        dropped = s.value("bunscope_span_export_dropped_total", exporter="otlp",
                          reason="queue_full")
        assert_equal(app.handled() - before, sent, "Bun handled while the collector was down")
        assert sent > 5 * queue, "only %d requests while down" % sent
        assert queue // 2 <= got <= queue, "%d spans kept with --traces-queue %d" % (got, queue)
        # what did not arrive is exactly what bunscope says it dropped
        assert_equal(got + int(dropped), sent, "arrived + dropped")
        assert rss1 - rss0 < 8 << 20, "RSS grew by %d bytes while the collector was down" % (
            rss1 - rss0)
        assert rec.errors == [], rec.errors


@privileged
def test_hostile_trace_headers():
    """Garbage, split, repeated and oversized traceparent/tracestate fields and
    paths with raw bytes, pipelined: every request Bun answers has exactly one
    span, only well-formed parents are continued, the JSON stays valid."""
    rng = random.Random(5)
    valid = "00-%s-%s-01" % (TRACE, PARENT)
    shapes = [
        b"traceparent: " + valid.encode() + b"\r\ntraceparent: " + valid.encode() + b"\r\n",
        b"traceparent: " + valid[:-1].encode() + b"\r\n",
        b"traceparent: " + valid.encode() + b"-extra\r\n",
        b"traceparent: ff" + valid[2:].encode() + b"\r\n",
        b"traceparent:\r\n",
        b"traceparent: " + bytes(rng.randrange(33, 127) for _ in range(55)) + b"\r\n",
        b"tracestate: " + b"k=" + b"v" * 3000 + b"\r\ntraceparent: " + valid.encode() + b"\r\n",
        b"tracestate: \"quoted\\\" ,\r\ntraceparent: " + valid.encode() + b"\r\n",
        b"TRACEPARENT: " + valid.encode() + b"\r\n",
    ]
    good = {0: False, 1: False, 2: False, 3: False, 4: False, 5: False, 6: True, 7: True,
            8: True}
    with SpanReceiver() as rec, BunApp() as app, \
            Bunscope.for_app(app, "--otlp-endpoint", rec.otlp_url) as scope:
        reqs = []
        for i, extra in enumerate(shapes):
            path = "/users/h%d" % i
            reqs.append((path, get_req(path, extra=extra)))
        raw = "/users/%E2%98%83\"\\x"  # quotes and backslashes reach the JSON
        reqs.append(("/users/raw", get_req(raw)))
        data = b"".join(r for _, r in reqs)
        for _ in range(5):
            got = send_recv("127.0.0.1", app.port, data, len(reqs))
            # (Bun reads the backslash as a slash: the raw path is a 404)
            assert [r.status for r in got] == [200] * len(shapes) + [404], [
                r.status for r in got]
        n = 5 * len(reqs)
        # the app's control server is observed too: its requests have spans
        spans = rec.wait_spans(n, 20, kind="otlp",
                               pred=lambda s: s["attrs"].get("server.port") == app.port)
        app.wait_idle()
        assert_equal(app.handled(), n, "Bun handled")
        assert_equal(len(spans), n, "spans")
        assert rec.errors == [], rec.errors
        for s in spans:
            p = s["attrs"]["url.path"]
            if p.startswith("/users/h"):
                i = int(p[len("/users/h"):])
                continued = s["trace_id"] == TRACE and s["parent_id"] == PARENT
                assert continued == good[i], (i, s["trace_id"], s["parent_id"])
        # every span built reached the receiver (the control server's too)
        wait_until(lambda: (scope.scrape().value("bunscope_spans_built_total"),
                            len(rec.spans("otlp"))), 20, "spans built == spans received",
                   check=lambda v: v[0] == v[1])


@privileged
def test_websocket_spans():
    """A WebSocket connection has a span of its life, a child of its upgrade
    request's span, with the clients' own message and byte counts and its
    close code (or "abnormal" without a close frame)."""
    with SpanReceiver() as rec, BunApp() as app, \
            Bunscope.for_app(app, "--otlp-endpoint", rec.otlp_url):
        c1 = WSClient("127.0.0.1", app.port, "/ws?greet=1")
        assert c1.recv() == (WS_TEXT, b"welcome")
        c2 = WSClient("127.0.0.1", app.port, "/ws/rooms/7")
        for i in range(6):
            c1.send(WS_TEXT, b"hello %d" % i)
        c1.send(WS_BINARY, bytes(70000))
        for i in range(3):
            c2.send(WS_BINARY, bytes([i]) * 10)
        for c, n in ((c1, 7), (c2, 3)):
            for _ in range(n):
                c.recv()
        c1.close(4001)
        c2.abort()
        spans = rec.wait_spans(4, 20, kind="otlp")
        assert_equal(len(spans), 4, "spans (2 upgrades, 2 connections)")
        assert rec.errors == [], rec.errors
        ups = {s["attrs"]["url.path"]: s for s in spans if s["name"].startswith("GET")}
        wss = {s["attrs"]["url.path"]: s for s in spans if s["name"].startswith("WebSocket")}
        assert set(ups) == set(wss) == {"/ws", "/ws/rooms/7"}, (ups.keys(), wss.keys())
        for path, c, close in (("/ws", c1, 4001), ("/ws/rooms/7", c2, None)):
            up, ws = ups[path], wss[path]
            assert up["attrs"]["http.response.status_code"] == 101, up
            assert ws["trace_id"] == up["trace_id"] and ws["parent_id"] == up["span_id"], (up, ws)
            assert ws["start_ns"] >= up["start_ns"] and ws["end_ns"] >= ws["start_ns"], (up, ws)
            a = ws["attrs"]
            data_in = [c.sent[k] for k in ("text", "binary")]
            data_out = [c.received[k] for k in ("text", "binary")]
            assert_equal(a["websocket.messages.received"], sum(x[0] for x in data_in),
                         path + " messages in")
            assert_equal(a["websocket.bytes.received"], sum(x[1] for x in data_in),
                         path + " bytes in")
            assert_equal(a["websocket.messages.sent"], sum(x[0] for x in data_out),
                         path + " messages out")
            assert_equal(a["websocket.bytes.sent"], sum(x[1] for x in data_out),
                         path + " bytes out")
            if close:
                assert a.get("websocket.close_code") == close, a
            else:
                assert a.get("websocket.close") == "abnormal", a
        assert wss["/ws/rooms/7"]["name"] == "WebSocket /ws/rooms/:id", wss["/ws/rooms/7"]


@privileged
def test_client_spans():
    """The app's own fetch calls get CLIENT spans: one per request the
    upstream saw (the upstream's own record is the ground truth), a
    traceparent the app set kept as the span's own ids, sampled-flag 00
    respected, status and peer attributes, the server named by the Host the
    upstream received, and each inside the server span of the request that
    made it."""
    with UpstreamServer() as up, SpanReceiver() as rec, BunApp() as app, \
            Bunscope.for_app(app, "--otlp-endpoint", rec.otlp_url):
        rnd = random.Random(5)
        ids = [("%032x" % rnd.getrandbits(128), "%016x" % rnd.getrandbits(64)) for _ in range(3)]
        plan = [("/status/201", "00-%s-%s-01" % ids[i], 201) for i in range(3)]
        plan += [("/", None, 200)] * 4 + [("/status/500", None, 500), ("/status/404", None, 404)]
        plan += [("/", "00-%s-%s-00" % (TRACE, PARENT), 200)]
        plan += [("/named", None, 200)]
        for path, tp, want in plan:
            q = "/proxy?url=http://127.0.0.1:%d%s" % (up.port, path)
            if tp:
                q += "&traceparent=" + tp
            if path == "/named":
                q += "&host=upstream.test:%d" % up.port
            st, _, _ = app.get(q)
            assert st == want, (path, st)
        assert_equal(len(up.seen), len(plan), "requests the upstream saw")
        sent_tp = [tp for _, tp in up.seen]
        assert sent_tp == [tp for _, tp, _ in plan], sent_tp
        sampled = len(plan) - 1
        client = rec.wait_spans(sampled, 20, kind="otlp", pred=lambda s: s["kind"] == "client")
        server = rec.wait_spans(len(plan), 20, kind="otlp", pred=lambda s: s["kind"] == "server")
        app.wait_idle()
        assert_equal(len(client), sampled, "client spans (one per sampled upstream request)")
        assert_equal(len(server), len(plan), "server spans")
        assert all(s["trace_id"] != TRACE for s in client), "a 00-flagged request got a span"
        by_trace = {s["trace_id"]: s for s in client}
        for tid, sid in ids:
            s = by_trace[tid]
            assert s["span_id"] == sid and s["parent_id"] is None, s
        # the upstream's record says which Host each request carried
        host_of = {p: h for (p, _), h in zip(up.seen, up.hosts)}
        assert host_of["/named"] == "upstream.test:%d" % up.port, host_of
        for s in client:
            a = s["attrs"]
            host = host_of[a["url.path"]]
            assert a["server.address"] == host.rsplit(":", 1)[0], (a, host)
            assert a["server.port"] == up.port, a
            assert a["network.peer.address"] == "127.0.0.1", a
            assert a["http.request.method"] == "GET" and "http.route" not in a, a
            assert a["url.full"] == "http://%s%s" % (host, a["url.path"]), a
            code = a["http.response.status_code"]
            assert s["status"] == ("error" if code >= 400 else "unset"), s
            assert s["name"] == "GET", s
            # sequential requests: each fetch ran inside one /proxy request's span
            outer = [v for v in server if v["start_ns"] <= s["start_ns"] <= s["end_ns"] <= v["end_ns"]]
            assert len(outer) == 1, (s, [(v["start_ns"], v["end_ns"]) for v in server])
        codes = sorted(s["attrs"]["http.response.status_code"] for s in client)
        assert codes == sorted(w for _, tp, w in plan if not (tp or "").endswith("-00")), codes
        assert rec.errors == [], rec.errors
