"""The daemon under AddressSanitizer, UndefinedBehaviorSanitizer and
LeakSanitizer: build/asan/bunscope (`make asan`, part of `make test`) driven
broadly in one run, then stopped with SIGTERM so that LeakSanitizer checks
what its shutdown left allocated.

The test fails on any sanitizer report in the daemon's log, on a non-zero
exit, and on traffic the daemon got wrong (the ordinary tests check the
details; here a handful of cross-checks keep the run honest)."""

import json
import os
import tempfile
from pathlib import Path

from harness import (DUR, REPO, WS_BINARY, WS_CLOSE, WS_PING, WS_PONG, WS_TEXT, BunApp, Bunscope,
                     WSClient, assert_equal, curl, free_port, get_req, privileged, run,
                     send_recv, wait_until)
from span_receiver import SpanReceiver

SAN_BIN = Path(os.environ.get("BUNSCOPE_ASAN_BIN", REPO / "build" / "asan" / "bunscope"))
# the same options as `make unit-asan`: the first report aborts, leaks count
SAN_ENV = {
    "ASAN_OPTIONS": "detect_leaks=1:abort_on_error=1:halt_on_error=1",
    "UBSAN_OPTIONS": "print_stacktrace=1:halt_on_error=1",
}
# what a report of any of the three starts or ends with
REPORT_MARKS = ("ERROR: AddressSanitizer", "ERROR: LeakSanitizer", "runtime error:",
                "SUMMARY: AddressSanitizer", "SUMMARY: UndefinedBehaviorSanitizer",
                "AddressSanitizer:DEADLYSIGNAL")


def sanitizer_reports(text):
    """The lines of text that belong to a sanitizer report."""
    return [line for line in text.splitlines() if any(m in line for m in REPORT_MARKS)]


def test_report_scan():
    """The scan finds the reports the three sanitizers print (no daemon)."""
    reports = [
        "==1==ERROR: AddressSanitizer: heap-use-after-free on address 0x602",
        "==1==ERROR: LeakSanitizer: detected memory leaks",
        "user/expo.c:10:5: runtime error: signed integer overflow",
        "SUMMARY: AddressSanitizer: 64 byte(s) leaked in 1 allocation(s).",
    ]
    for r in reports:
        assert sanitizer_reports("info: ok\n%s\ninfo: ok\n" % r) == [r], r
    assert sanitizer_reports("bunscope: serving http://127.0.0.1:1/metrics\n") == []


def _traffic(app):
    """Keep-alive GETs, a POST, a chunked POST, pipelined requests and two
    WebSocket connections; returns the number of HTTP requests Bun handled
    (the two upgrade requests among them)."""
    args = ["-w", "%{http_code}\\n"]
    paths = ["/", "/users/7", "/status/503", "/?q=1", "/nope", "/big?bytes=3000"]
    for p in paths:
        args += ["-o", "/dev/null", app.url(p)]
    r = curl(*args)
    assert r.returncode == 0, "curl failed: %s" % r.stderr
    assert r.stdout.split() == ["200", "200", "503", "200", "404", "200"], r.stdout

    st, _, body = app.request("POST", "/echo", body=b"x" * 5000)
    assert (st, body) == (200, b"5000"), (st, body)

    chunks = [1000, 1, 300]
    data = b"POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
    for n in chunks:
        data += b"%x\r\n" % n + b"c" * n + b"\r\n"
    data += b"0\r\n\r\n" + get_req("/users/5") * 3 + get_req("/", method="HEAD")
    resps = send_recv("127.0.0.1", app.port, data, 5, heads=[False] * 4 + [True])
    assert resps[0].status == 200 and resps[0].body == str(sum(chunks)).encode(), resps[0]
    assert [r.status for r in resps[1:]] == [200] * 4, resps

    # one WebSocket closed by the client: a fragmented message with a ping
    # inside, a 70000-byte one; the other closed by the server, then cut
    closed = WSClient("127.0.0.1", app.port, "/ws?greet=1")
    assert closed.recv() == (WS_TEXT, b"welcome")
    closed.send_fragmented(WS_TEXT, [b"frag", b"men", b"ted"], between=(WS_PING, b"p"))
    closed.send(WS_BINARY, bytes(70000))
    got = [closed.recv() for _ in range(4)]
    assert got == [(WS_PONG, b"p"), (WS_PONG, b"p"), (WS_TEXT, b"fragmented"),
                   (WS_BINARY, bytes(70000))], [(op, len(m)) for op, m in got]
    closed.close(4001)
    cut = WSClient("127.0.0.1", app.port, "/ws/rooms/3")
    cut.send(WS_TEXT, b"close-me")
    assert cut.recv()[0] == WS_CLOSE
    cut.abort()
    return len(paths) + 1 + 5 + 2


@privileged
def test_sanitized_daemon():
    """Traffic, every endpoint (plain and gzip), three span exporters, a
    second app that comes and goes, and a SIGTERM: no sanitizer report, exit 0."""
    later_port = free_port()
    with SpanReceiver() as rec, BunApp() as app, tempfile.TemporaryDirectory() as d:
        spans_file = os.path.join(d, "spans.jsonl")
        scope = Bunscope.for_app(app, "--port", later_port, "--route", "/users/:id",
                                 "--otlp-endpoint", rec.otlp_url,
                                 "--zipkin-endpoint", rec.zipkin_url, "--traces-file",
                                 spans_file, binary=SAN_BIN, env=SAN_ENV)
        try:
            # leaving the with-block stops the daemon with SIGTERM and
            # asserts exit status 0
            with scope:
                n = _traffic(app)
                app.wait_idle()
                assert_equal(app.handled(), n, "Bun handled")
                # a span per request, and one per WebSocket connection (those
                # of the app's control server, on another port, left out)
                spans = n + 2
                otlp = rec.wait_spans(spans, 30, kind="otlp",
                                      pred=lambda s: s["attrs"].get("server.port") == app.port)
                zipkin = rec.wait_spans(spans, 30, kind="zipkin",
                                        pred=lambda s: s["local_port"] == app.port)
                assert_equal((len(otlp), len(zipkin)), (spans, spans), "OTLP, Zipkin spans")

                def jsonl():
                    attrs = (json.loads(x)["attributes"]
                             for x in Path(spans_file).read_text().splitlines())
                    return [a for a in attrs if str(a.get("server.port")) == str(app.port)]
                got = wait_until(jsonl, 30, "JSONL spans", check=lambda v: len(v) >= spans)
                assert_equal(len(got), spans, "JSONL spans")
                assert rec.errors == [], rec.errors

                assert_equal(scope.scrape().count(app.port, app.pid, http_route="/users/:id"),
                             4, "/users/:id requests")
                # the JSON counts the app's control server too: both from
                # one scrape and the JSON right after it, no request between
                s = scope.scrape(gzip=True)
                assert_equal(s.count(app.port, app.pid), n, "requests in the gzip scrape")
                js = scope.server_metrics(app.pid)
                assert_equal((js["pid"], js["http"]["totalRequests"],
                              js["websockets"]["totalConnections"]),
                             (app.pid, s.sum_values(DUR + "_count", pid=app.pid), 2),
                             "/api/server-metrics pid, requests, WebSockets")
                st, _, _ = scope.get("/nope")
                assert st == 404, st
                assert scope.health()["targets"], scope.health()

                # a target that appears (found by its port), serves and exits
                with BunApp(port=later_port, control_port=free_port()) as later:
                    wait_until(lambda: later.pid in scope.target_pids(), 20,
                               "/health to list pid %d" % later.pid)
                    st, _, _ = later.request("POST", "/echo", body=b"y" * 100)
                    assert st == 200, st
                    scope.wait_count(later.port, 1, later.pid)
                    gone = later.pid
                wait_until(lambda: gone not in scope.target_pids(), 20,
                           "/health to drop the exited pid %d" % gone)
                assert_equal(scope.target_pids(), [app.pid], "targets left")
        finally:
            reports = sanitizer_reports(scope.log_text()) if scope.proc else []
            if reports:
                raise AssertionError("sanitizer reports:\n" + "\n".join(reports))
        assert_equal(scope.returncode, 0, "exit status after SIGTERM")

        # the subcommands that load, attach and detach (check) or probe (doctor)
        for args in (["check", "--pid", app.pid],
                 ["doctor", "--pid", app.pid, "--listen", "127.0.0.1:%d" % free_port()]):
            p = run([str(SAN_BIN)] + [str(a) for a in args], timeout=120,
                    env=dict(os.environ, **SAN_ENV))
            out = p.stdout + p.stderr
            reports = sanitizer_reports(out)
            assert reports == [], "bunscope %s: sanitizer reports:\n%s" % (args[0], out)
            assert_equal(p.returncode, 0, "bunscope %s exit status (%s)" % (args[0], out))
