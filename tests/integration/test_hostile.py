"""Hostile input: requests Bun rejects, TLS and garbage on the plain port,
paths that stress label escaping, a random-path flood against
--max-routes, and all of it and more at once against one app (the mix)."""

import contextlib
import json
import os
import random
import socket
import threading
import time

from harness import (DUR, REJECT_REASONS, WS_BINARY, WS_CLOSE, WS_CONT, WS_PING, WS_TEXT,
                     BunApp, Bunscope, HTTPReader, WSClient, assert_equal, connect, get_req,
                     parse_metrics, privileged, promtool_check, send_and_close, wait_until,
                     wait_value, ws_frame)
import harness

TLS_CLIENT_HELLO_PREFIX = bytes.fromhex(
    "16030100f8"            # record: handshake, TLS 1.0, length 248
    "010000f4"              # ClientHello, length 244
    "0303") + bytes(range(32)) + bytes.fromhex("20") + bytes(32) + bytes.fromhex(
    "0008130213031301c02f0100")  # cipher suites, compression


def _rejected_all(scope, app):
    s = scope.scrape()
    return {r: s.rejected(app.port, r, app.pid) for r in REJECT_REASONS}


def _barrier_request(scope, app, expected_total, unanswered=0):
    """A clean request after the hostile ones: once it is counted, everything
    sent before it has been seen.  unanswered: requests Bun handled that
    got no answer (aborted)."""
    st, _, body = app.get("/")
    assert st == 200 and body == b"hi", (st, body)
    scope.wait_count(app.port, expected_total, app.pid)
    assert_equal(app.handled(), expected_total + unanswered, "Bun handled")


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


# ---------------------------------------------------------------------------
# The hostile traffic mix: everything above and more at once, on one app
# ---------------------------------------------------------------------------

MIX_MAX_ROUTES = 64
MIX_SLOWLORIS = 100
MIX_RANDOM_PATHS, MIX_FLOOD_SOCKETS, MIX_FLOOD_BATCH = 10000, 4, 125
MIX_HEADER_FLOODS = 16
# The daemon's state is bounded by design (<= 64 route labels of <= 161
# bytes, a fixed 1 MiB hash memory, maps read at scrape time): it grows by
# 1-2 MiB here.  Keeping 1.6 KiB per distinct path (10,000 of them) or per
# connection, or one series per path (~45 lines each), would exceed this.
MIX_RSS_GROWTH_MAX = 16 << 20
WS_ERRORS = "bunscope_websocket_errors_total"
WS_CLOSED = "bun_websocket_closed_total"


def _bun_refused(resp):
    """Bun's canned error answer: a status line, Connection: close and
    nothing else (an answer from the app's fetch handler has a Date)."""
    return resp.headers == [("connection", "close")] and not resp.body


class _Mix:
    """The client side of the mix and its ground truth: connections made to
    the app's port, answers the clients read from the app, exchanges Bun
    refused.  close_all() closes every socket it made."""

    def __init__(self, app):
        self.app = app
        self.lock = threading.Lock()
        self.connections = 0
        self.answers = 0  # responses of the app's fetch handler (101s included) read
        self.refused = {}  # shape name -> exchanges that ended in a refusal by Bun
        self.accepted = {}  # shape name -> the others
        self.socks = []
        self.errors = []

    def adopt(self, sock):
        with self.lock:
            self.connections += 1
            self.socks.append(sock)
        return sock

    def connect(self, timeout=15):
        return self.adopt(connect("127.0.0.1", self.app.port, timeout))

    def answered(self, n=1):
        with self.lock:
            self.answers += n

    def close_all(self):
        with self.lock:
            socks, self.socks = self.socks, []
        for s in socks:
            with contextlib.suppress(OSError):
                s.close()

    def exchange(self, name, data, timeout=20):
        """data on a new connection, then every answer until Bun closes (the
        client half-closes after an answer from the app).  Refused: it ends
        in Bun's canned error or in a close without any answer."""
        s = self.connect(timeout)
        reader, refused = HTTPReader(s, timeout), True
        try:
            with contextlib.suppress(BrokenPipeError, ConnectionResetError):
                s.sendall(data)
            while True:
                try:
                    r = reader.read_response()
                except (harness.ConnectionClosed, ConnectionResetError):
                    break
                refused = _bun_refused(r)
                if refused:
                    break
                self.answered()
                with contextlib.suppress(OSError):
                    s.shutdown(socket.SHUT_WR)  # no more requests: Bun closes
        finally:
            s.close()
        table = self.refused if refused else self.accepted
        with self.lock:
            table[name] = table.get(name, 0) + 1

    def total_refused(self):
        with self.lock:
            return sum(self.refused.values())

    def run(self, name, fn, *args):
        """fn(*args) in a daemon thread; an exception is kept in errors."""
        def body():
            try:
                fn(*args)
            except Exception as e:  # reported by the test
                with self.lock:
                    self.errors.append("%s: %s: %s" % (name, type(e).__name__, e))
        t = threading.Thread(target=body, name=name, daemon=True)
        t.start()
        return t


def _post(path, headers, body=b""):
    return b"POST " + path + b" HTTP/1.1\r\nHost: x\r\n" + headers + b"\r\n" + body


def _head_of_size(n):
    """A GET head of exactly n bytes (the final CRLF included)."""
    pre, post = b"GET / HTTP/1.1\r\nHost: x\r\nX-Big: ", b"\r\n\r\n"
    return pre + b"a" * (n - len(pre) - len(post)) + post


def _mix_shapes():
    """(name, bytes) sent on a connection each: smuggling shapes, invalid
    chunk sizes, heads at and over Bun's limits, TLS and garbage."""
    rng = random.Random(66)
    te = b"Transfer-Encoding: chunked\r\n"
    smuggled = get_req("/smuggled")
    shapes = [
        ("cl+te", _post(b"/echo", b"Content-Length: 5\r\n" + te, b"0\r\n\r\n")),
        ("te+cl", _post(b"/echo", te + b"Content-Length: 5\r\n", b"0\r\n\r\n")),
        ("cl twice", _post(b"/echo", b"Content-Length: 5\r\nContent-Length: 5\r\n", b"hello")),
        ("cl conflict", _post(b"/echo", b"Content-Length: 5\r\nContent-Length: 6\r\n",
                              b"hello!")),
        ("cl list", _post(b"/echo", b"Content-Length: 5, 5\r\n", b"hello")),
        ("cl negative", _post(b"/echo", b"Content-Length: -1\r\n")),
        ("cl overflow", _post(b"/echo", b"Content-Length: 99999999999999999999999\r\n",
                              b"hello")),
        ("te chunked not last", _post(b"/echo", b"Transfer-Encoding: chunked, gzip\r\n",
                                      b"0\r\n\r\n")),
        ("te twice", _post(b"/echo", te + te, b"0\r\n\r\n")),
        ("te space before colon", _post(b"/echo", b"Transfer-Encoding : chunked\r\n",
                                        b"0\r\n\r\n")),
        ("te obs-fold", _post(b"/echo", b"Transfer-Encoding:\r\n chunked\r\n", b"0\r\n\r\n")),
        ("obs-fold", get_req("/", extra=b"X-A: a\r\n b\r\n")),
        ("bare lf", b"GET / HTTP/1.1\nHost: x\n\n"),
        ("bare lf in head", b"GET / HTTP/1.1\r\nHost: x\nX: y\r\n\r\n"),
        ("chunk not hex", _post(b"/echo", te, b"zz\r\nhello\r\n0\r\n\r\n")),
        ("chunk overflow", _post(b"/echo", te, b"ffffffffffffffffff\r\nhello\r\n0\r\n\r\n")),
        ("chunk 2^64-1", _post(b"/echo", te, b"ffffffffffffffff\r\nhello\r\n")),
        ("chunk negative", _post(b"/echo", te, b"-5\r\nhello\r\n0\r\n\r\n")),
        ("chunk no crlf", _post(b"/echo", te, b"5\r\nhelloXX0\r\n\r\n")),
        ("chunk extensions", _post(b"/echo", te, b"5;ext=1;q=\"x\"\r\nhello\r\n0;\xff\r\n\r\n")),
        ("chunk extension 16 KiB", _post(b"/echo", te, b"5;" + b"e" * 16384 + b"\r\nhello\r\n")),
        ("chunk space", _post(b"/echo", te, b"5 ;x\r\nhello\r\n0\r\n\r\n")),
        ("chunk leading zeros", _post(b"/echo", te, b"0" * 40 + b"5\r\nhello\r\n0\r\n\r\n")),
        ("chunk trailer", _post(b"/echo", te, b"5\r\nhello\r\n0\r\nX-T: 1\r\n\r\n")),
        ("body over maxRequestBodySize", b"PUT /echo HTTP/1.1\r\nHost: x\r\n"
                                         b"Content-Length: 200000000\r\n\r\nabc"),
        ("bad chunk after an answer", get_req("/", extra=te) + b"zz\r\n"),
        ("request in a body", _post(b"/echo", b"Content-Length: %d\r\n" % len(smuggled),
                                    smuggled)),
        ("request in a chunk", _post(b"/echo", te, b"%x\r\n%s\r\n0\r\n\r\n"
                                     % (len(smuggled), smuggled))),
        ("head 16384", _head_of_size(16384)),
        ("head 16385", _head_of_size(16385)),
        ("head 32 KiB", _head_of_size(32768)),
        ("198 fields", get_req("/", extra=b"".join(b"X-%d: v\r\n" % i for i in range(197)))),
        ("250 fields", get_req("/", extra=b"".join(b"X-%d: v\r\n" % i for i in range(249)))),
        ("websocket version 99", get_req("/ws", extra=b"Upgrade: websocket\r\nConnection: Upgrade"
                                          b"\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
                                          b"Sec-WebSocket-Version: 99\r\n")),
        ("raw newline in path", b"GET /inj/a\nevil{x=\"1\"} 1 HTTP/1.1\r\nHost: x\r\n\r\n"),
        ("space in path", b'GET /"} evil{x="1 HTTP/1.1\r\nHost: x\r\n\r\n'),
        ("raw nul in path", b"GET /inj/a\x00b HTTP/1.1\r\nHost: x\r\n\r\n"),
        ("tls", TLS_CLIENT_HELLO_PREFIX),
        ("tls 1.2 record", b"\x16\x03\x03" + TLS_CLIENT_HELLO_PREFIX[3:]),
        ("garbage", bytes([0x00, 0xfe]) + bytes(rng.randrange(256) for _ in range(8190))),
        ("garbage small", b"\x00\x01\x02\x03\r\n\r\n"),
    ]
    return shapes


def _mix_injection_paths():
    """Request targets Bun lets through that try to break out of a label."""
    return _hostile_paths() + [
        b'/"}evil{x="1"}', b'/inj/"}\\nevil{x="', b"/inj/%22%7D%20evil%7Bx%3D%22",
        b"/inj/%0aevil_metric%201%0a", b"/inj/%0d%0a%0d%0a", b"/inj/\\\\\\\"",
        b"/inj/\xc0\xaf\xed\xa0\x80\xf8\x88\x80\x80\x80", b"/inj/%ff%fe%00",
        b"/" + b"L" * 12000, b"/inj/" + b"/".join([b"s"] * 2000),
    ]


def _random_paths(n, seed):
    """n random paths of printable ASCII and high bytes (what Bun accepts)."""
    rng = random.Random(seed)
    alphabet = bytes(range(0x21, 0x7f)) + bytes(range(0x80, 0x100))
    return [b"/r/" + b"/".join(bytes(rng.choice(alphabet) for _ in range(rng.randrange(1, 24)))
                               for _ in range(rng.randrange(1, 4)))
            for _ in range(n)]


def _pipelined(mix, paths, batch):
    """GET every path over one keep-alive connection, batch requests at a
    time; every one must get an answer from the app."""
    sock = mix.connect()
    reader = HTTPReader(sock, 60)
    for i in range(0, len(paths), batch):
        part = paths[i:i + batch]
        sock.sendall(b"".join(get_req(p) for p in part))
        for p, r in zip(part, reader.read_responses(len(part))):
            if _bun_refused(r):
                raise AssertionError("Bun refused %r: %r" % (p[:80], r))
        mix.answered(len(part))


def _slowloris(mix, socks, n, ready, stop, dripped, interval=0.05):
    """n connections (appended to socks) dripping one byte of a head that
    never ends every interval until stop is set (dripped[0]: bytes so far);
    they stay open (the test closes them)."""
    socks += [mix.connect() for _ in range(n)]
    ready.set()
    head = b"GET /slowloris HTTP/1.1\r\nHost: x\r\n"
    while not stop.wait(interval):
        i = dripped[0]
        if i == len(head):
            head += b"X-Drip-%d: %d\r\n" % (i, i)
        for s in socks:
            s.send(head[i:i + 1])
        dripped[0] = i + 1


def _still_open(socks):
    """How many of socks the server has neither answered nor closed."""
    n = 0
    for s in socks:
        s.setblocking(False)
        try:
            s.recv(1)
        except BlockingIOError:
            n += 1
        except OSError:
            pass
    return n


def _bogus_ws_frames():
    """(name, bytes, refused, framing): WebSocket frames a client must not
    send.  refused: Bun closes the connection (else it waits for the rest);
    framing: the frame breaks RFC 6455 framing, which bunscope counts as an
    error (Bun's maxPayloadLength is the app's to set, and close payloads
    are counted by their code)."""
    def head(b0, length_field):  # masked, the key random, no payload
        return bytes([b0]) + length_field + os.urandom(4)
    return [
        ("64-bit length, high bit", head(0x82, bytes([0x80 | 127]) +
                                         (1 << 63 | 5).to_bytes(8, "big")) + b"hello",
         True, True),
        ("64-bit length 2^40", head(0x82, bytes([0x80 | 127]) +
                                    (1 << 40).to_bytes(8, "big")) + bytes(100), True, False),
        ("unmasked", ws_frame(WS_TEXT, b"hello", mask=False), True, True),
        ("opcode 3", ws_frame(3, b"abc"), True, True),
        ("opcode 0xb", ws_frame(0xB, b"abc"), True, True),
        ("ping of 126", ws_frame(WS_PING, b"p" * 126), True, True),
        ("fragmented ping", ws_frame(WS_PING, b"p", fin=False), True, True),
        ("rsv2", bytes([0xA2]) + ws_frame(WS_BINARY, b"a")[1:], True, True),
        ("continuation first", ws_frame(WS_CONT, b"abc"), True, True),
        ("close of 1 byte", ws_frame(WS_CLOSE, b"\x03"), True, False),
        ("close code 999", ws_frame(WS_CLOSE, (999).to_bytes(2, "big")), True, False),
        ("16-bit length, short", head(0x82, bytes([0x80 | 126]) + (60000).to_bytes(2, "big"))
         + bytes(10), False, False),
    ]


def _close_label(frame):
    """The closed_total code label of a close frame's bytes (unmasked)."""
    n = frame[1] & 0x7F
    if n < 2:
        return "1005" if n == 0 else "invalid"
    code = int.from_bytes(frame[2:4], "big")
    return str(code) if 1000 <= code <= 4999 else "invalid"


def _ws_bogus(mix, truth):
    """One WebSocket per bogus frame: an echo first, then the frame; then one
    closed properly.  truth: framing errors sent, and the code of the first
    close frame on each connection (or abnormal), from what went over the
    wire."""
    for name, frame, refused, framing in _bogus_ws_frames():
        c = WSClient("127.0.0.1", mix.app.port, "/ws", timeout=20)
        mix.adopt(c.sock)
        mix.answered()
        c.send(WS_BINARY, b"before " + name.encode())
        assert c.recv() == (WS_BINARY, b"before " + name.encode())
        c.sock.sendall(frame)
        truth["errors"] += framing
        if frame[0] & 0x0F == WS_CLOSE:
            code = _close_label(bytes([frame[0], frame[1] & 0x7F]) + bytes(
                b ^ frame[2 + i % 4] for i, b in enumerate(frame[6:])))
        else:
            code = "abnormal"
        if refused:
            got, closed = harness.read_until_close(c.sock, 20)
            assert closed, "Bun did not close the WebSocket after %s" % name
            if code == "abnormal" and got[:1] == b"\x88":
                code = _close_label(got)
        truth["codes"][code] = truth["codes"].get(code, 0) + 1
        c.sock.close()
    c = WSClient("127.0.0.1", mix.app.port, "/ws?greet=1", timeout=20)
    mix.adopt(c.sock)
    mix.answered()
    assert c.recv() == (WS_TEXT, b"welcome")
    c.close(1000)
    truth["codes"]["1000"] = truth["codes"].get("1000", 0) + 1


def _routes_ok(samples, port):
    """The route labels on port: printable ASCII without '"' or '\\' (they
    are %-encoded), at most --max-routes of them besides the fixed ones."""
    routes = samples.label_values(DUR + "_count", "http_route", server_port=port)
    bad = [r for r in routes if any(not (0x21 <= ord(c) <= 0x7e) or c in "\"\\" for c in r)]
    assert not bad, "route labels not escaped: %r" % bad[:5]
    learned = routes - {"_other", "_unknown", "_connect"}
    assert len(learned) <= MIX_MAX_ROUTES, \
        "%d routes with --max-routes %d" % (len(learned), MIX_MAX_ROUTES)
    assert "_other" in routes, "10,000 random paths and no _other: %s" % sorted(routes)[:10]
    return routes


@privileged
def test_hostile_traffic_mix():
    """Against one app, at once: 100 slowloris connections held open, heads at
    and over 16 KiB and 198 fields, 16 header floods, smuggling shapes (CL+TE,
    conflicting Content-Length, TE not ending in chunked, obs-fold, bare LF,
    requests inside bodies), invalid chunk sizes, TLS hellos and binary
    garbage, 10,000 random paths, label-injection paths and WebSocket frames
    with bogus lengths, opcodes and masks.  Afterwards the daemon is alive
    with its RSS grown < 16 MiB, /metrics parses and passes promtool with
    escaped, bounded route labels, and the totals equal the clients' and
    Bun's own: requests completed == answers the clients read, + aborted ==
    Bun's handled, nothing pending, rejections == refusals the clients saw,
    connections, WebSockets.  Then one clean request is counted exactly."""
    with BunApp() as app, Bunscope.for_app(app, "--max-routes", MIX_MAX_ROUTES) as scope:
        mix = _Mix(app)
        stop, ready, dripped = threading.Event(), threading.Event(), [0]
        ws_truth = {"errors": 0, "codes": {}}
        try:
            # "/" is a route before the flood fills the table
            mix.exchange("/", get_req("/"))
            scope.wait_count(app.port, 1, app.pid, http_route="/")
            rss_before = rss_peak = scope.rss()
            t0 = time.monotonic()
            slow_socks = []
            slow = mix.run("slowloris", _slowloris, mix, slow_socks, MIX_SLOWLORIS, ready, stop,
                           dripped)
            assert ready.wait(30), "slowloris connections not made: %s" % mix.errors
            # first, so that their labels are learned (at most 8 requests in
            # flight: deeper pipelining is counted under _other)
            _pipelined(mix, _mix_injection_paths(), 8)
            workers = [mix.run("ws", _ws_bogus, mix, ws_truth)]
            paths = _random_paths(MIX_RANDOM_PATHS, 6)
            per = MIX_RANDOM_PATHS // MIX_FLOOD_SOCKETS
            for k in range(MIX_FLOOD_SOCKETS):
                workers.append(mix.run("random paths %d" % k, _pipelined, mix,
                                       paths[k * per:(k + 1) * per], MIX_FLOOD_BATCH))
            shapes = _mix_shapes() * 2
            flood = get_req("/", extra=b"".join(b"h%d: v\r\n" % i for i in range(20000)))
            shapes += [("header flood", flood)] * MIX_HEADER_FLOODS
            for k in range(4):
                workers.append(mix.run("shapes %d" % k, lambda k=k: [
                    mix.exchange(name, data) for name, data in shapes[k::4]]))
            deadline = time.monotonic() + 90
            for t in workers:
                while t.is_alive() and time.monotonic() < deadline:
                    t.join(0.5)
                    rss_peak = max(rss_peak, scope.rss())
            alive = [t.name for t in workers if t.is_alive()]
            assert not alive and not mix.errors, (alive, mix.errors)
            harness.log("mix sent in %.1fs; refused %s; answered %s"
                        % (time.monotonic() - t0, mix.refused, mix.accepted))

            # unfinished heads are not requests: nothing pending on either side
            scope.assert_running()
            wait_until(lambda: (scope.active(app.port, app.pid), app.pending()), 20,
                       "bunscope active requests and Bun pendingRequests == 0 with the "
                       "slowloris connections open", check=lambda v: v == (0, 0))
            wait_until(lambda: dripped[0], 30, "slowloris heads into their fields",
                       check=lambda v: v >= 80)
            stop.set()
            slow.join(10)
            assert not mix.errors, mix.errors
            assert_equal(_still_open(slow_socks), MIX_SLOWLORIS, "slowloris connections open")
        finally:
            stop.set()
            mix.close_all()

        # totals against the clients' and Bun's own counts
        answers, handled, conns = mix.answers, app.handled(), mix.connections
        scope.wait_count(app.port, answers, app.pid, timeout=30)
        wait_until(lambda: (scope.active(app.port, app.pid), app.pending()), 20,
                   "active requests and Bun pendingRequests == 0", check=lambda v: v == (0, 0))
        refused = mix.total_refused()
        wait_until(lambda: sum(_rejected_all(scope, app).values()), 20,
                   "rejected requests == %d refusals the clients saw" % refused,
                   check=lambda v: v == refused, abort=lambda v: v > refused)

        def conn_counts():
            s = scope.scrape()
            lab = dict(server_port=app.port, pid=app.pid)
            return (int(s.sum_values(harness.CONN_OPENED, **lab)),
                    int(s.sum_values(harness.CONN_CLOSED, **lab)),
                    int(s.sum_values("bunscope_http_connections_active", **lab)))
        wait_until(conn_counts, 20, "connections opened, closed, active == %d, %d, 0"
                   % (conns, conns), check=lambda v: v == (conns, conns, 0))

        def ws_now():
            s, bun = scope.scrape(), json.loads(app._control("/ws-stats"))
            lab = dict(server_port=app.port, pid=app.pid)
            codes = {}
            for _, l, v in s.select(WS_CLOSED, **lab):  # summed over routes
                codes[l["code"]] = codes.get(l["code"], 0) + int(v)
            return ((int(s.sum_values("bun_websocket_active_connections", **lab)),
                     int(s.sum_values("bun_websocket_opened_total", **lab)),
                     int(s.sum_values(WS_CLOSED, **lab)),
                     int(s.sum_values(WS_ERRORS, **lab)), codes),
                    (app.stats()["pendingWebSockets"], bun["opened"], bun["closed"],
                     ws_truth["errors"], ws_truth["codes"]))
        wait_until(ws_now, 20, "WebSockets active, opened, closed, errors, close codes == "
                   "Bun's pendingWebSockets, opened, closed and the clients' framing errors "
                   "and first close frames", check=lambda v: v[0] == v[1])

        text = scope.metrics_text()
        complaints = promtool_check(text)
        assert not complaints, "promtool check metrics:\n" + complaints[:4000]
        s = parse_metrics(text)
        raw_nl = [(n, l) for n, l, _ in s if any("\n" in v for v in l.values())]
        assert not raw_nl, "label values with a newline: %r" % raw_nl[:3]
        routes = _routes_ok(s, app.port)
        assert '/%22}evil{x=%221%22}' in routes, "no escaped injection route: %s" % sorted(
            routes)[:20]
        assert_equal(s.count(app.port, app.pid), answers, "requests counted")
        assert_equal(int(s.sum_values(harness.ABORTED, server_port=app.port, pid=app.pid)),
                     handled - answers, "aborted: requests Bun handled that got no answer")
        tls = sum(n for name, n in mix.refused.items() if name.startswith("tls"))
        garbage = sum(n for name, n in mix.refused.items() if name.startswith("garbage"))
        assert_equal((s.rejected(app.port, "tls", app.pid),
                      s.rejected(app.port, "garbage", app.pid)), (tls, garbage),
                     "rejected tls, garbage")
        assert_equal(parse_metrics(scope.metrics_text(gzip=True)).count(app.port, app.pid),
                     answers, "requests counted (gzip)")
        assert_equal(scope.server_metrics(app.pid)["http"]["pendingRequests"], 0,
                     "JSON pendingRequests")
        rss_after = scope.rss()
        rss_peak = max(rss_peak, rss_after)
        harness.log("%d answers, %d handled, %d connections, %d routes, exposition %d bytes, "
                    "RSS %.1f -> peak %.1f -> %.1f MiB, %.1fs"
                    % (answers, handled, conns, len(routes), len(text), rss_before / 1048576,
                       rss_peak / 1048576, rss_after / 1048576, time.monotonic() - t0))
        assert rss_peak - rss_before < MIX_RSS_GROWTH_MAX, \
            "bunscope RSS grew by %.1f MiB" % ((rss_peak - rss_before) / 1048576)

        # after all that, a clean request is counted exactly, in its own series
        series = dict(http_route="/", http_request_method="GET",
                      http_response_status_code="200")
        before = s.count(app.port, app.pid, **series)
        _barrier_request(scope, app, answers + 1, handled - answers)
        assert_equal(scope.count(app.port, app.pid, **series), before + 1, "the clean request")
        assert_equal(conn_counts(), (conns + 1, conns + 1, 0), "connections after it")
        scope.assert_running()
