"""Capture modes and connections that predate bunscope.

Ground truth: the requests the test itself makes, and Bun's handled count."""

import contextlib
import http.client
import json

from harness import BunApp, Bunscope, assert_equal, privileged, wait_until
import harness


@privileged
def test_raw_tracepoint_capture():
    """--capture raw_tracepoint (the fallback for kernels without syscall
    tracepoints) counts exactly like the default mode."""
    with BunApp() as app, Bunscope.for_app(app, "--capture", "raw_tracepoint") as scope:
        assert scope.health()["capture"] == "raw_tracepoint", scope.health()
        conn = http.client.HTTPConnection("127.0.0.1", app.port, timeout=10)
        for i in range(25):
            conn.request("GET", "/users/%d" % i)
            r = conn.getresponse()
            r.read()
            assert r.status == 200
        conn.request("POST", "/echo", body=b"x" * 70000)
        r = conn.getresponse()
        assert r.read() == b"70000"
        conn.close()
        scope.wait_count(app.port, 26, app.pid)
        assert_equal(app.handled(), 26, "Bun handled")
        s = scope.scrape()
        assert_equal(s.count(app.port, app.pid, http_route="/users/:id"), 25, "/users/:id")
        assert_equal(s.value(harness.REQ_SIZE + "_sum", pid=str(app.pid),
                             server_port=str(app.port), http_route="/echo"), 70000,
                     "request body bytes")


@contextlib.contextmanager
def _bpf_stats():
    """kernel.bpf_stats_enabled on for the block (the programs' run counts)."""
    path = "/proc/sys/kernel/bpf_stats_enabled"
    with open(path) as f:
        was = f.read().strip()
    with open(path, "w") as f:
        f.write("1")
    try:
        yield
    finally:
        with open(path, "w") as f:
            f.write(was)


def _runs(pid, name):
    """Run count of the BPF programs called name that pid holds (bpftool)."""
    ids = harness.bpf_ids(pid)["prog"]
    p = harness.run(["bpftool", "-j", "prog", "show"], timeout=60)
    assert p.returncode == 0, "bpftool prog show: %s" % p.stderr
    return sum(prog.get("run_cnt", 0) for prog in json.loads(p.stdout or "[]")
               if prog["id"] in ids and prog.get("name") == name)


@privileged
def test_hooks_only():
    """--hooks-only, make bench's floor: the same hooks are attached and run
    on the target's syscalls, and nothing is counted."""
    n = 20
    with BunApp() as app, _bpf_stats():
        with Bunscope.for_app(app, "--hooks-only") as scope:
            assert "hooks only: every program returns at once" in scope.log_text(), \
                scope.log_text()
            # the data-read program of the capture mode (name cut to 15 bytes)
            name = ("bs_tp_exit_read" if scope.health()["capture"] == "tracepoint"
                    else "bs_raw_exit")

            def runs():
                return _runs(scope.pid, name)
            before = runs()
            conn = http.client.HTTPConnection("127.0.0.1", app.port, timeout=10)
            for i in range(n):
                conn.request("GET", "/users/%d" % i)
                r = conn.getresponse()
                r.read()
                assert r.status == 200
            conn.close()
            assert_equal(app.handled(), n, "Bun handled")
            # Bun reads each request at least once: the read hook ran for each
            wait_until(lambda: runs() - before, 10, "bunscope's %s run %d times" % (name, n),
                       check=lambda d: d >= n)
            s = scope.scrape()
            assert_equal(s.count(app.port, app.pid), 0, "requests counted with --hooks-only")
            assert_equal(s.active(app.port, app.pid), 0, "active with --hooks-only")


@privileged
def test_connection_open_before_attach():
    """A keep-alive connection opened (and used) before bunscope starts is
    followed from its next request; nothing before that is invented."""
    with BunApp() as app:
        conn = http.client.HTTPConnection("127.0.0.1", app.port, timeout=10)
        conn.request("GET", "/users/1")
        r = conn.getresponse()
        r.read()
        before = app.handled()
        with Bunscope.for_app(app) as scope:
            log = scope.log_text()
            assert "opened before attaching" in log, log
            for i in range(5):
                conn.request("GET", "/users/%d" % (10 + i))
                r = conn.getresponse()
                r.read()
                assert r.status == 200
            scope.wait_count(app.port, 5, app.pid)
            assert_equal(app.handled() - before, 5, "Bun handled since attach")
            s = scope.scrape()
            assert_equal(s.count(app.port, app.pid, http_route="/users/:id"), 5,
                         "requests counted on the old connection")
            assert_equal(s.active(app.port, app.pid), 0, "active")
        conn.close()


@privileged
def test_json_and_health_shape():
    """/api/server-metrics has Bun's native shape; ?pid of a non-target is 404."""
    with BunApp() as app, Bunscope.for_app(app) as scope:
        app.get("/")
        scope.wait_count(app.port, 1, app.pid)
        j = scope.server_metrics(app.pid)
        assert set(j) >= {"timestamp", "pid", "http", "websockets", "memory"}, j
        assert j["pid"] == app.pid and j["http"]["pendingRequests"] == 0, j
        assert j["websockets"] == {"pendingConnections": 0, "totalConnections": 0,
                                   "messages": {"in": 0, "out": 0},
                                   "bytes": {"in": 0, "out": 0}}, j
        assert j["memory"]["rss"] > 1 << 20, j
        status, _, body = scope.get("/api/server-metrics?pid=1")
        assert status == 404, (status, body)
        status, _, body = scope.get("/api/server-metrics?pid=abc")
        assert status == 400, (status, body)
        h = scope.health()
        assert h["status"] == "ok" and h["targets"][0]["pid"] == app.pid, h
        json.dumps(h)


@privileged
def test_heads_split_across_reads():
    """Request heads and bodies delivered in pieces (separate sends with
    TCP_NODELAY, so Bun reads them in separate recvs: the pauses between
    pieces are the stimulus, not synchronisation) are counted exactly."""
    import socket
    import time
    req = (b"POST /echo HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 10\r\n"
           b"User-Agent: split-test\r\n\r\n0123456789")
    cuts = [
        [1, 2, 15, 16],                    # inside the method, at the CRLF
        [5, 20, 37, 38, 39, 40],           # inside CRLFs and a field name
        [len(req) - 12, len(req) - 10],    # the final CRLF, then the body
        [len(req) - 5],                    # inside the body
    ]
    with BunApp() as app, Bunscope.for_app(app) as scope:
        s = socket.create_connection(("127.0.0.1", app.port), timeout=10)
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        reader = harness.HTTPReader(s)
        for points in cuts:
            last = 0
            for p in points + [len(req)]:
                s.sendall(req[last:p])
                last = p
                time.sleep(0.02)
            r = reader.read_response()
            assert r.status == 200 and r.body == b"10", r
        s.close()
        scope.wait_count(app.port, len(cuts), app.pid)
        assert_equal(app.handled(), len(cuts), "Bun handled")
        sc = scope.scrape()
        assert_equal(sc.count(app.port, app.pid, http_route="/echo"), len(cuts), "/echo count")
        assert_equal(sc.value(harness.REQ_SIZE + "_sum", pid=str(app.pid),
                              server_port=str(app.port), http_route="/echo"),
                     10 * len(cuts), "request body bytes")
        for reason in ("method", "version", "header", "host"):
            assert_equal(sc.rejected(app.port, reason, app.pid), 0, "rejected " + reason)


@privileged
def test_verifier_headroom():
    """The data programs load with room to spare under the verifier's
    1,000,000-instruction limit, in both capture modes with traces on (the
    most code): a change that eats the margin fails here, not on the first
    host whose kernel counts a little differently."""
    limit, margin = 1000000, 0.8
    for mode in ("tracepoint", "raw_tracepoint"):
        with BunApp() as app, Bunscope.for_app(app, "--capture", mode, "--traces-file",
                                               "/dev/null") as scope:
            s = scope.scrape()
            got = {l["prog"]: v for _, l, v in s.select("bunscope_bpf_prog_verified_insns")}
            data = {p: v for p, v in got.items() if "exit_read" in p or "exit_write" in p}
            assert len(data) >= 2, got
            if all(v == 0 for v in data.values()):
                raise AssertionError("the kernel does not report verified_insns: %s" % got)
            harness.log("verified instructions (%s): %s" % (mode, data))
            for p, v in data.items():
                assert v <= limit * margin, "%s: %d verified instructions, over %d%% of %d" % (
                    p, v, margin * 100, limit)
