"""HTTP request accounting: counts, pending, status codes, routes, pipelining,
bodies, streaming, HEAD, IPv6, and the app's own outgoing fetch.

Ground truth comes from the clients and from Bun (the app's /stats)."""

import http.client
import threading
import time

from harness import (DUR, DURATION_BUCKETS, REQ_SIZE, RESP_SIZE, SIZE_BUCKETS, BunApp,
                     Bunscope, HTTPReader, UpstreamServer, assert_equal, connect, curl,
                     get_req, http_request, privileged, send_recv, wait_until, wait_value)
import harness


def _wait_settled(scope, app, timeout=15):
    """Wait until Bun has nothing pending and bunscope's count on the app's
    port equals Bun's handled count; returns that count."""
    app.wait_idle(timeout)
    got = wait_until(lambda: harness.scope_and_app_counts(scope, app), timeout,
                     "bunscope count == Bun handled (bunscope, Bun)",
                     check=lambda v: v[0] == v[1])
    return got[0]


@privileged
def test_curl_totals():
    """N requests from curl (keep-alive batch + separate invocations):
    bunscope's total == N == Bun's handled; connections match curl's."""
    with BunApp() as app, Bunscope.for_app(app) as scope:
        batch = ["/", "/users/1", "/users/2", "/?q=1", "/status/404"] * 6  # 30 URLs
        args = ["-w", "%{http_code} %{num_connects}\\n"]
        for path in batch:
            args += ["-o", "/dev/null", app.url(path)]
        p = curl(*args)
        assert p.returncode == 0, "curl batch failed: %s" % p.stderr
        lines = p.stdout.split()
        codes, connects = lines[0::2], [int(x) for x in lines[1::2]]
        assert len(codes) == len(batch), p.stdout
        assert codes.count("404") == 6 and codes.count("200") == 24, codes
        assert sum(connects) < len(batch), "curl did not reuse its connection: %s" % connects
        single = 10
        for i in range(single):
            q = curl("-o", "/dev/null", "-w", "%{http_code} %{num_connects}",
                     app.url("/users/%d" % (100 + i)))
            assert q.returncode == 0 and q.stdout.split()[0] == "200", (q.stdout, q.stderr)
            connects.append(int(q.stdout.split()[1]))
        n = len(batch) + single

        scope.wait_count(app.port, n, app.pid)
        assert_equal(app.handled(), n, "Bun handled")
        s = scope.scrape()
        assert_equal(s.count(app.port, app.pid), n, "bunscope total")
        assert_equal(s.count(app.port, app.pid, http_route="/users/:id"), 12 + single,
                     "/users/:id count")
        assert_equal(s.count(app.port, app.pid, http_route="/", http_request_method="GET",
                             http_response_status_code="200"), 12, "/ count")
        assert_equal(s.count(app.port, app.pid, http_response_status_code="404"), 6, "404s")
        # every curl process has exited: its connections are closed
        conns = sum(connects)
        wait_value(lambda: int(scope.scrape().sum_values(
            harness.CONN_OPENED, server_port=app.port, pid=app.pid)), conns, 10,
            "connections opened (curl num_connects)")
        wait_value(lambda: int(scope.scrape().sum_values(
            harness.CONN_CLOSED, server_port=app.port, pid=app.pid)), conns, 10,
            "connections closed")
        s = scope.scrape()
        assert_equal(s.active(app.port, app.pid), 0, "active requests")
        s.check_histograms(DUR, DURATION_BUCKETS, server_port=app.port)
        s.check_histograms(REQ_SIZE, SIZE_BUCKETS, server_port=app.port)
        s.check_histograms(RESP_SIZE, SIZE_BUCKETS, server_port=app.port)


@privileged
def test_pending_hold():
    """20 /hold requests in flight: active gauge == Bun pendingRequests == 20,
    then 0 after /release; /api/server-metrics agrees."""
    n = 20
    with BunApp() as app, Bunscope.for_app(app) as scope:
        t0 = scope.server_metrics(app.pid)["http"]["totalRequests"]
        c0 = app.control_requests
        results = [None] * n
        errors = []

        def hold(i):
            try:
                results[i] = http_request("127.0.0.1", app.port, "GET", "/hold", timeout=60)
            except Exception as e:  # reported by the main thread
                errors.append("request %d: %r" % (i, e))

        threads = [threading.Thread(target=hold, args=(i,), daemon=True) for i in range(n)]
        try:
            for t in threads:
                t.start()
            wait_value(app.pending, n, 15, "Bun pendingRequests")
            wait_value(lambda: scope.active(app.port, app.pid), n, 2,
                       "http_server_active_requests with %d held" % n)
            wait_value(lambda: scope.server_metrics(app.pid)["http"]["pendingRequests"], n, 2,
                       "/api/server-metrics pendingRequests with %d held" % n)
            assert_equal(app.pending(), n, "Bun pendingRequests (still held)")
            sm = scope.server_metrics(app.pid)
            assert_equal(sm["pid"], app.pid, "/api/server-metrics pid")
            assert_equal(scope.count(app.port, app.pid), 0, "completed while held")
        finally:
            released = app.release()
            for t in threads:
                t.join(30)
        assert not errors, errors
        assert_equal(released, n, "requests released by the app")
        assert all(r is not None and r[0] == 200 and r[2] == b"released" for r in results), \
            results
        wait_value(app.pending, 0, 10, "Bun pendingRequests after release")
        wait_value(lambda: scope.active(app.port, app.pid), 0, 2, "active requests after release")
        wait_value(lambda: scope.server_metrics(app.pid)["http"]["pendingRequests"], 0, 2,
                   "/api/server-metrics pendingRequests after release")
        scope.wait_count(app.port, n, app.pid, http_route="/hold",
                         http_response_status_code="200")
        # totalRequests may cover the main server only, or every server of the
        # pid (then the control requests we made count too)
        c1 = app.control_requests
        t1 = wait_until(lambda: scope.server_metrics(app.pid)["http"]["totalRequests"] - t0, 5,
                        "/api/server-metrics totalRequests to grow by %d (main port) or %d "
                        "(with the control port)" % (n, n + c1 - c0),
                        check=lambda v: v in (n, n + c1 - c0))
        harness.log("totalRequests grew by %d (%d control requests)" % (t1, c1 - c0))
        assert_equal(app.handled(), n, "Bun handled")
        assert_equal(scope.count(app.port, app.pid), n, "bunscope total")


@privileged
def test_status_codes():
    """Per-status counts are exact; 204/304 have no body."""
    plan = {404: 3, 500: 2, 204: 1, 304: 1}
    with BunApp() as app, Bunscope.for_app(app) as scope:
        conn = http.client.HTTPConnection("127.0.0.1", app.port, timeout=30)
        try:
            for code, times in plan.items():
                for _ in range(times):
                    conn.request("GET", "/status/%d" % code)
                    r = conn.getresponse()
                    body = r.read()
                    assert r.status == code and body == b"", (code, r.status, body)
        finally:
            conn.close()
        total = sum(plan.values())
        scope.wait_count(app.port, total, app.pid)
        assert_equal(app.handled(), total, "Bun handled")
        s = scope.scrape()
        for code, times in plan.items():
            assert_equal(s.count(app.port, app.pid, http_response_status_code=str(code),
                                 http_route="/status/:id", http_request_method="GET"),
                         times, "count of status %d" % code)
        for code in (204, 304):
            assert_equal(s.sum_values(RESP_SIZE + "_sum", server_port=app.port, pid=app.pid,
                                      http_response_status_code=str(code)), 0,
                         "response body bytes of %d" % code)


@privileged
def test_routes_templated_and_patterns():
    """Numeric/UUID/long-hex segments become :id, query strings are dropped,
    and --route patterns win."""
    uuid = "550e8400-e29b-41d4-a716-446655440000"
    sha1 = "da39a3ee5e6b4b0d3255bfef95601890afd80709"
    with BunApp() as app, Bunscope.for_app(app) as scope:
        paths = ["/users/1", "/users/2", "/users/3?x=1&y=2", "/users/" + uuid,
                 "/users/" + sha1, "/?a=b", "/"]
        for p in paths:
            st, _, _ = app.get(p)
            assert st == 200, (p, st)
        scope.wait_count(app.port, len(paths), app.pid)
        s = scope.scrape()
        assert_equal(s.count(app.port, app.pid, http_route="/users/:id"), 5, "/users/:id")
        assert_equal(s.count(app.port, app.pid, http_route="/"), 2, "/ (query dropped)")
        routes = s.label_values(DUR + "_count", "http_route", server_port=app.port)
        assert routes == {"/", "/users/:id"}, "unexpected routes: %s" % sorted(routes)

    with BunApp() as app, Bunscope.for_app(app, "--route", "/users/:name") as scope:
        for p in ["/users/abc", "/users/abc?z=1", "/users/7", "/"]:
            st, _, _ = app.get(p)
            assert st == 200, (p, st)
        scope.wait_count(app.port, 4, app.pid)
        s = scope.scrape()
        assert_equal(s.count(app.port, app.pid, http_route="/users/:name"), 3,
                     "/users/:name (the --route pattern wins)")
        assert_equal(s.count(app.port, app.pid, http_route="/"), 1, "/")
        assert_equal(s.count(app.port, app.pid, http_route="/users/:id"), 0, "/users/:id")


@privileged
def test_pipelining():
    """Pipelined requests on one raw connection are all counted, including
    a POST with a body and responses without a body (HEAD, 204)."""
    with BunApp() as app, Bunscope.for_app(app) as scope:
        resps = send_recv("127.0.0.1", app.port, get_req("/") * 10, 10)
        assert all(r.status == 200 and r.body == b"hi" for r in resps), resps
        scope.wait_count(app.port, 10, app.pid, http_route="/")

        data = (b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 11\r\n\r\nhello world"
                + get_req("/users/5") * 3)
        resps = send_recv("127.0.0.1", app.port, data, 4)
        assert resps[0].status == 200 and resps[0].body == b"11", resps[0]
        assert all(r.status == 200 and b'"5"' in r.body for r in resps[1:]), resps

        mixed = [(b"GET", "/status/204"), (b"HEAD", "/"), (b"GET", "/big?bytes=3000"),
                 (b"GET", "/status/304"), (b"GET", "/")]
        data = b"".join(get_req(p, method=m) for m, p in mixed)
        resps = send_recv("127.0.0.1", app.port, data, len(mixed),
                          heads=[m == b"HEAD" for m, _ in mixed])
        assert [r.status for r in resps] == [204, 200, 200, 304, 200], resps
        assert len(resps[2].body) == 3000 and resps[4].body == b"hi", resps

        total = 10 + 4 + len(mixed)
        scope.wait_count(app.port, total, app.pid)
        assert_equal(app.handled(), total, "Bun handled")
        s = scope.scrape()
        assert_equal(s.count(app.port, app.pid, http_route="/echo", http_request_method="POST"),
                     1, "pipelined POST")
        assert_equal(s.sum_values(REQ_SIZE + "_sum", server_port=app.port, pid=app.pid,
                                  http_route="/echo"), 11, "POST body bytes")
        assert_equal(s.count(app.port, app.pid, http_route="/users/:id"), 3, "pipelined GETs")
        assert_equal(s.count(app.port, app.pid, http_request_method="HEAD"), 1, "HEAD")
        # fewer than 8 distinct pipelined requests in flight: each keeps its own labels
        assert_equal(s.count(app.port, app.pid, http_route="/status/:id"), 2, "/status/:id")
        assert_equal(s.count(app.port, app.pid, http_route="/big"), 1, "/big")
        assert_equal(s.count(app.port, app.pid, http_route="/", http_request_method="GET"),
                     11, "GET /")
        assert_equal(s.sum_values(RESP_SIZE + "_sum", server_port=app.port, pid=app.pid,
                                  http_route="/big"), 3000, "/big response bytes")
        assert_equal(s.active(app.port, app.pid), 0, "active requests")


@privileged
def test_bodies():
    """Request/response body sizes are exact: 1.5 MiB Content-Length POST,
    chunked POST, 5 MB response."""
    big = 3 * 512 * 1024  # 1.5 MiB
    chunks = [1000, 4096, 1, 3000, 17]
    with BunApp() as app, Bunscope.for_app(app) as scope:
        st, _, body1 = app.request("POST", "/echo", body=b"z" * big,
                                   headers={"Content-Type": "application/octet-stream"})
        assert st == 200 and body1 == str(big).encode(), (st, body1)

        data = b"POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
        for i, n in enumerate(chunks):
            data += b"%x\r\n" % n + bytes([0x41 + i]) * n + b"\r\n"
        data += b"0\r\n\r\n"
        (r,) = send_recv("127.0.0.1", app.port, data, 1)
        assert r.status == 200 and r.body == str(sum(chunks)).encode(), r
        body2 = r.body

        st, _, body3 = app.get("/big?bytes=5000000")
        assert st == 200 and len(body3) == 5000000, (st, len(body3))

        scope.wait_count(app.port, 3, app.pid)
        assert_equal(app.handled(), 3, "Bun handled")
        s = scope.scrape()
        lbl = dict(server_port=app.port, pid=app.pid)
        echo = s.histogram(REQ_SIZE, http_route="/echo", **lbl)
        assert_equal(echo["count"], 2, "/echo request body count")
        assert_equal(echo["sum"], big + sum(chunks), "/echo request body bytes")
        assert_equal(echo["buckets"][16384], 1, "/echo request bodies <= 16384")
        assert_equal(echo["buckets"][1048576], 1, "/echo request bodies <= 1 MiB")
        assert_equal(echo["buckets"][4194304], 2, "/echo request bodies <= 4 MiB")
        assert_equal(s.histogram(RESP_SIZE, http_route="/echo", **lbl)["sum"],
                     len(body1) + len(body2), "/echo response body bytes")
        bigh = s.histogram(RESP_SIZE, http_route="/big", **lbl)
        assert_equal(bigh["count"], 1, "/big count")
        assert_equal(bigh["sum"], 5000000, "/big response body bytes")
        assert_equal(bigh["buckets"][4194304], 0, "/big response <= 4 MiB")
        assert_equal(bigh["buckets"][16777216], 1, "/big response <= 16 MiB")
        req_big = s.histogram(REQ_SIZE, http_route="/big", **lbl)
        assert_equal((req_big["sum"], req_big["buckets"][0]), (0, 1), "/big request body")
        s.check_histograms(REQ_SIZE, SIZE_BUCKETS, server_port=app.port)
        s.check_histograms(RESP_SIZE, SIZE_BUCKETS, server_port=app.port)


@privileged
def test_streaming_and_head():
    """A chunked streamed response is timed to its last byte; HEAD is counted
    as HEAD with no body."""
    with BunApp() as app, Bunscope.for_app(app) as scope:
        with connect("127.0.0.1", app.port) as sock:
            t0 = time.monotonic()
            sock.sendall(get_req("/stream?chunks=5&delay=200"))
            r = HTTPReader(sock, 30).read_response()
            elapsed = time.monotonic() - t0
        assert r.status == 200 and r.chunked and len(r.body) == 5 * 1024, r
        assert elapsed >= 0.8, "client saw the stream end after %.3fs" % elapsed

        (h,) = send_recv("127.0.0.1", app.port, get_req("/", method="HEAD"), 1, heads=[True])
        assert h.status == 200 and h.body == b"", h

        scope.wait_count(app.port, 2, app.pid)
        s = scope.scrape()
        lbl = dict(server_port=app.port, pid=app.pid)
        d = s.histogram(DUR, http_route="/stream", **lbl)
        assert_equal(d["count"], 1, "/stream count")
        assert d["sum"] >= 0.8, "/stream duration %.3fs < 0.8s" % d["sum"]
        assert d["sum"] <= elapsed + 0.05, \
            "/stream duration %.3fs > client-observed %.3fs" % (d["sum"], elapsed)
        assert_equal(d["buckets"][0.75], 0, "/stream duration <= 0.75s bucket")
        assert_equal(s.histogram(RESP_SIZE, http_route="/stream", **lbl)["sum"], 5 * 1024,
                     "/stream response body bytes (decoded chunk data)")
        assert_equal(s.count(app.port, app.pid, http_request_method="HEAD", http_route="/"), 1,
                     "HEAD / count")
        assert_equal(s.histogram(RESP_SIZE, http_request_method="HEAD", **lbl)["sum"], 0,
                     "HEAD response body bytes")
        assert_equal(app.handled(), 2, "Bun handled")


@privileged
def test_ipv6():
    """Requests over [::1] (and 127.0.0.1) to the dual-stack port are counted."""
    with BunApp() as app, Bunscope.for_app(app) as scope:
        for i in range(5):
            st, _, _ = app.get("/users/%d" % i, host="::1")
            assert st == 200, st
        p = curl("-g", "-o", "/dev/null", "-w", "%{http_code}", app.url("/", host="::1"))
        assert p.stdout == "200", (p.stdout, p.stderr)
        resps = send_recv("::1", app.port, get_req("/") * 3, 3)
        assert [r.status for r in resps] == [200] * 3, resps
        for _ in range(2):
            st, _, _ = app.get("/", host="127.0.0.1")
            assert st == 200, st
        total = 5 + 1 + 3 + 2
        scope.wait_count(app.port, total, app.pid)
        assert_equal(app.handled(), total, "Bun handled")
        assert_equal(scope.count(app.port, app.pid, http_route="/users/:id"), 5, "/users/:id")


@privileged
def test_outgoing_fetch_not_counted():
    """The app's own fetch() to an upstream is not a server request."""
    with UpstreamServer() as up, BunApp() as app, Bunscope.for_app(app) as scope:
        for _ in range(5):
            st, _, body = app.get("/proxy?url=http://127.0.0.1:%d/" % up.port)
            assert st == 200 and body == b"upstream ok", (st, body)
        assert_equal(up.requests, 5, "requests the upstream answered")
        scope.wait_count(app.port, 5, app.pid, http_route="/proxy")
        assert_equal(app.handled(), 5, "Bun handled")
        s = scope.scrape()
        assert_equal(s.count(app.port, app.pid), 5, "total on the app port")
        assert not s.select(DUR + "_count", server_port=up.port), \
            "series with server_port=%d (the upstream)" % up.port
        ports = {l.get("server_port") for n, l, _ in s if n.startswith("http_server_")
                 and l.get("pid") == str(app.pid)}
        extra = ports - {str(app.port), str(app.control_port)}
        assert not extra, "HTTP series for ports other than the app's servers: %s" % extra


CDUR = "http_client_request_duration_seconds"


@privileged
def test_outgoing_fetch_client_metrics():
    """The app's own fetch() is counted as client requests, per upstream and
    status, exactly as many as the upstream answered: keep-alive reuse, a
    connection pooled before bunscope attached, a chunked answer, an answer
    that ends with the connection, a slow one, and one the upstream drops."""
    _client_metrics()


@privileged
def test_outgoing_fetch_client_metrics_raw():
    """The same through the raw sys_exit tracepoint (connect in its dispatch)."""
    _client_metrics("--capture", "raw_tracepoint")


def _client_metrics(*extra):
    with UpstreamServer() as up, BunApp() as app:
        def proxy(path):
            return app.get("/proxy?url=http://127.0.0.1:%d%s" % (up.port, path))

        # a keep-alive connection in fetch's pool before bunscope attaches
        st, _, _ = proxy("/")
        assert st == 200, st
        before = len(up.statuses)
        assert_equal(len(up.seen), before, "requests the upstream saw before attaching")
        with Bunscope.for_app(app, *extra) as scope:
            for _ in range(6):
                st, _, body = proxy("/")
                assert st == 200 and body == b"upstream ok", (st, body)
            for _ in range(3):
                st, _, _ = proxy("/status/503")
                assert st == 503, st
            st, _, body = proxy("/chunked")
            assert st == 200 and len(body) == 2101, (st, len(body))
            st, _, body = proxy("/close")
            assert st == 200 and len(body) == 1100, (st, len(body))
            st, _, _ = proxy("/sleep/300")
            assert st == 200, st
            st, _, _ = proxy("/drop")
            assert st == 502, st
            answered = up.statuses[before:]
            assert_equal(len(answered), 12, "answers the upstream gave after attaching")
            ok = answered.count(200)
            # Bun retries a request lost on a reused connection: the
            # upstream saw each try, and each is a request that died
            drops = sum(1 for path, _ in up.seen[before:] if path == "/drop")
            assert drops >= 1, up.seen

            def client_counts():
                s = scope.scrape()
                return (int(s.sum_values(CDUR + "_count", pid=app.pid, server_port=up.port,
                                         server_address="127.0.0.1",
                                         http_response_status_code="200",
                                         http_request_method="GET")),
                        int(s.sum_values(CDUR + "_count", pid=app.pid, server_port=up.port,
                                         http_response_status_code="503")),
                        int(s.value("bunscope_http_client_requests_aborted_total",
                                    pid=app.pid) or 0))
            want = (ok, 3, drops)
            wait_until(client_counts, 15, "client requests (200, 503, aborted) == %s" % (want,),
                       check=lambda v: v == want)
            s = scope.scrape()
            assert_equal(s.sum_values(CDUR + "_count", pid=app.pid), ok + 3,
                         "client requests in all series")
            assert_equal(s.value("http_client_active_requests", pid=app.pid), 0,
                         "client requests in flight")
            assert s.check_histograms(CDUR, DURATION_BUCKETS, pid=app.pid) >= 2
            h = s.histogram(CDUR, pid=app.pid, http_response_status_code="200")
            # the /sleep/300 answer took >= 0.3 s; nothing else near that
            assert_equal(h["count"] - h["buckets"][0.25], 1, "client requests slower than 0.25 s")
            assert h["sum"] >= 0.3, h
            # the app's server side: only its /proxy requests, nothing of the upstream
            app.wait_idle()
            scope.wait_count(app.port, 13, app.pid)
            assert_equal(app.handled(), 14, "Bun handled (one before attaching)")
            assert not s.select(DUR + "_count", server_port=up.port), "upstream as a server"
