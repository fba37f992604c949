"""Hostile input: requests Bun rejects, TLS and garbage on the plain port,
paths that stress label escaping, and a random-path flood against
--max-routes."""

import contextlib
import random
import threading

from harness import (DUR, REJECT_REASONS, BunApp, Bunscope, HTTPReader, assert_equal,
                     connect, get_req, parse_metrics, privileged, promtool_check,
                     send_and_close, wait_until, wait_value)
import harness

TLS_CLIENT_HELLO_PREFIX = bytes.fromhex(
    "16030100f8"            # record: handshake, TLS 1.0, length 248
    "010000f4"              # ClientHello, length 244
    "0303") + bytes(range(32)) + bytes.fromhex("20") + bytes(32) + bytes.fromhex(
    "0008130213031301c02f0100")  # cipher suites, compression


def _rejected_all(scope, app):
    s = scope.scrape()
    return {r: s.rejected(app.port, r, app.pid) for r in REJECT_REASONS}


def _barrier_request(scope, app, expected_total):
    """A clean request after the hostile ones: once it is counted, everything
    sent before it has been seen."""
    st, _, body = app.get("/")
    assert st == 200 and body == b"hi", (st, body)
    scope.wait_count(app.port, expected_total, app.pid)
    assert_equal(app.handled(), expected_total, "Bun handled")


@privileged
def test_rejected_requests_not_counted():
    """Requests Bun rejects are counted once under their reason and never as
    requests; nothing is left pending."""
    cases = {
        "method": b"FOO / HTTP/1.1\r\nHost: x\r\n\r\n",
        "host": b"GET / HTTP/1.1\r\n\r\n",
        "version": b"GET / HTTP/2.0\r\nHost: x\r\n\r\n",
        "too_large": b"GET / HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * (17 * 1024) + b"\r\n\r\n",
        "transfer_encoding": (b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n"
                              b"Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n"),
    }
    with BunApp() as app, Bunscope.for_app(app) as scope:
        answers = {}
        for reason, data in cases.items():
            got, closed = send_and_close("127.0.0.1", app.port, data)
            assert closed, "Bun kept the %s connection open; it sent %r" % (reason, got[:100])
            answers[reason] = got.split(b"\r\n", 1)[0]
        # what Bun did (client ground truth): silent close or an error status
        assert answers["method"] == b"", answers
        for reason in ("host", "version", "too_large", "transfer_encoding"):
            assert answers[reason][9:10] in (b"4", b"5"), answers

        expected = {r: (1 if r in cases else 0) for r in REJECT_REASONS}
        wait_until(lambda: _rejected_all(scope, app), 10,
                   "rejected_total per reason == %s" % {k: v for k, v in expected.items() if v},
                   check=lambda v: v == expected,
                   abort=lambda v: any(v[r] > expected[r] for r in v))
        s = scope.scrape()
        assert_equal(s.count(app.port, app.pid), 0, "requests counted")
        assert_equal(s.active(app.port, app.pid), 0, "active requests")
        assert_equal(int(s.sum_values(harness.ABORTED, server_port=app.port, pid=app.pid)), 0,
                     "aborted requests")
        assert_equal(app.stats()["handled"], 0, "Bun handled")
        assert_equal(app.pending(), 0, "Bun pendingRequests")
        wait_value(lambda: int(scope.scrape().sum_values(
            harness.CONN_OPENED, server_port=app.port, pid=app.pid)), len(cases), 10,
            "connections opened")

        _barrier_request(scope, app, 1)
        assert_equal(_rejected_all(scope, app), expected, "rejected_total after a clean request")
        assert_equal(scope.active(app.port, app.pid), 0, "active requests")


@privileged
def test_tls_and_garbage():
    """A TLS ClientHello and random bytes on the plain port count as tls and
    garbage; bunscope survives and the next clean request is counted exactly."""
    rng = random.Random(20240607)
    garbage = bytes([0x00, 0xfe, 0x07]) + bytes(rng.randrange(256) for _ in range(4096 - 3))
    with BunApp() as app, Bunscope.for_app(app) as scope:
        for data in (TLS_CLIENT_HELLO_PREFIX, garbage):
            got, closed = send_and_close("127.0.0.1", app.port, data)
            assert closed, "Bun kept the connection open; it sent %r" % got[:100]
        expected = {r: 0 for r in REJECT_REASONS}
        expected.update(tls=1, garbage=1)
        wait_until(lambda: _rejected_all(scope, app), 10, "rejected_total tls=1 garbage=1",
                   check=lambda v: v == expected,
                   abort=lambda v: any(v[r] > expected[r] for r in v))
        scope.assert_running()
        assert scope.health()["status"] == "ok"
        assert_equal(scope.count(app.port, app.pid), 0, "requests counted")
        _barrier_request(scope, app, 1)
        assert_equal(scope.count(app.port, app.pid, http_route="/"), 1, "clean request")
        assert_equal(scope.active(app.port, app.pid), 0, "active requests")
        assert_equal(_rejected_all(scope, app), expected, "rejected_total after a clean request")


def _hostile_paths():
    """~50 request targets Bun accepts (checked against Bun's handled count)."""
    pieces = [b'"', b"\\", b"%0a", b"%00", b"{}", b"\x80", b"\xff", b"\xc3\xa9",
              b"\xe2\x80\xae", b"'", b"<script>", b"|^`", b"%zz", b"\x7f", b"#frag",
              b"\\\"\\n", b"%22%5c", b"a=b,c=\"d\"", b"}{", b"\\n"]
    paths = []
    for i, p in enumerate(pieces):
        paths.append(b"/h/" + p)
        paths.append(b"/h" + p + b"/x/" + p + b"?q=" + p)
    paths += [b"/" + b"z" * 2048, b"/long/" + b"\"\\" * 1024, b"/" + bytes(range(0x80, 0x100)),
              b"/" + b"q" * 300 + b"\xff", b"/%0a%0d%00", b"/{{}}", b"/users/\x80",
              b"/users/123/\"x\"", b"/a/b/c/" + b"%" * 10, b"/\xf0\x9f\x92\xa9"]
    return paths


@privileged
def test_hostile_paths():
    """Paths with quotes, backslashes, encoded newlines/NULs, raw high bytes
    and 2 KiB lengths: every request is counted and the exposition passes
    promtool with only printable-ASCII route labels."""
    paths = _hostile_paths()
    with BunApp() as app, Bunscope.for_app(app) as scope:
        with contextlib.closing(connect("127.0.0.1", app.port)) as sock:
            reader = HTTPReader(sock, 30)
            for p in paths:
                sock.sendall(get_req(p))
                r = reader.read_response()
                assert r.status in (200, 404), "Bun answered %r to %r" % (r, p[:60])
        n = len(paths)
        assert_equal(app.handled(), n, "Bun handled")
        scope.wait_count(app.port, n, app.pid)
        text = scope.metrics_text()
        complaints = promtool_check(text)
        assert not complaints, "promtool check metrics:\n" + complaints[:4000]
        s = parse_metrics(text)
        assert_equal(s.count(app.port, app.pid), n, "requests counted")
        routes = s.label_values(DUR + "_count", "http_route", server_port=app.port)
        bad = [r for r in routes if any(not (0x20 <= ord(c) <= 0x7e) for c in r)]
        assert not bad, "route labels with bytes outside printable ASCII: %r" % bad[:5]
        assert any("%80" in r.upper() for r in routes), \
            "no route shows the raw byte 0x80 %%-encoded: %r" % sorted(routes)[:20]
        # the gzip exposition says the same
        gz = scope.metrics_text(gzip=True)
        assert_equal(parse_metrics(gz).count(app.port, app.pid), n, "requests counted (gzip)")


@privileged
def test_random_path_flood_max_routes():
    """20,000 random paths with --max-routes 50: all counted, <= 51 routes
    with _other, daemon RSS < 200 MiB, exposition < 2 MiB."""
    total, sockets, batch = 20000, 4, 200
    alphabet = "ghijklmnopqrstuvwxyz"  # no hex digits: nothing gets templated
    with BunApp() as app, Bunscope.for_app(app, "--max-routes", "50") as scope:
        errors = []

        def client(k):
            rng = random.Random(1000 + k)
            try:
                with contextlib.closing(connect("127.0.0.1", app.port, 30)) as sock:
                    reader = HTTPReader(sock, 60)
                    for _ in range(total // sockets // batch):
                        data = b"".join(
                            get_req("/flood/" + "".join(rng.choice(alphabet) for _ in range(12)))
                            for _ in range(batch))
                        sock.sendall(data)
                        for r in reader.read_responses(batch):
                            if r.status != 404:
                                raise AssertionError("unexpected %r" % r)
            except Exception as e:
                errors.append("client %d: %r" % (k, e))

        threads = [threading.Thread(target=client, args=(k,), daemon=True)
                   for k in range(sockets)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(120)
        assert not any(t.is_alive() for t in threads), "flood clients did not finish"
        assert not errors, errors
        assert_equal(app.handled(), total, "Bun handled")
        scope.wait_count(app.port, total, app.pid, timeout=60)
        text = scope.metrics_text()
        size = len(text.encode())
        s = parse_metrics(text)
        routes = s.label_values(DUR + "_count", "http_route", server_port=app.port)
        assert len(routes) <= 51, "%d distinct routes with --max-routes 50" % len(routes)
        assert "_other" in routes, "no _other route: %s" % sorted(routes)[:10]
        assert_equal(s.count(app.port, app.pid), total, "sum over routes")
        rss = scope.rss()
        assert rss < 200 << 20, "bunscope RSS %.1f MiB" % (rss / 1048576)
        assert size < 2 << 20, "exposition is %d bytes" % size
        harness.log("routes %d, RSS %.1f MiB, exposition %d bytes"
                    % (len(routes), rss / 1048576, size))
