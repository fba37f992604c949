"""WebSockets: the active gauge against Bun's server.pendingWebSockets, and
message/byte counts, close codes and lifetimes against what the clients sent
and received (a raw-socket client for exact framing, Bun's own WebSocket
client for load)."""

import json
import os
import random
import signal
import subprocess
import time

from harness import (BUN, REPO, WS_BINARY, WS_CLOSE, WS_PING, WS_PONG, WS_TEXT, BunApp,
                     Bunscope, ConnectionClosed, HTTPReader, WSClient, assert_equal, bpf_ids,
                     connect, get_req, http_request, privileged, run, wait_until)

ACTIVE = "bun_websocket_active_connections"
MSGS = "bun_websocket_messages_total"
BYTES = "bun_websocket_bytes_total"
CLOSED = "bun_websocket_closed_total"
OPENED = "bun_websocket_opened_total"
LIFE = "bun_websocket_connection_duration_seconds"
KINDS = ("text", "binary", "ping", "pong", "close")


def ws_active(scope, app):
    return int(scope.scrape().sum_values(ACTIVE, server_port=app.port, pid=app.pid))


def wait_active(scope, app, n, timeout=15):
    """Wait until bunscope's gauge and Bun's pendingWebSockets both equal n."""
    return wait_until(lambda: (ws_active(scope, app), app.stats()["pendingWebSockets"]),
                      timeout, "bunscope active WebSockets, Bun pendingWebSockets == %d" % n,
                      check=lambda v: v == (n, n))


def ground_truth(clients):
    """Per (direction, kind): [messages, bytes] summed over the clients; in is
    what the clients sent, out what they received."""
    total = {}
    for c in clients:
        for kind in KINDS:
            for d, table in (("in", c.sent), ("out", c.received)):
                t = total.setdefault((d, kind), [0, 0])
                t[0] += table[kind][0]
                t[1] += table[kind][1]
    return total


def scraped(s, app):
    out = {}
    for d in ("in", "out"):
        for kind in KINDS:
            lab = dict(server_port=app.port, pid=app.pid, direction=d, opcode=kind)
            out[(d, kind)] = [int(s.sum_values(MSGS, **lab)), int(s.sum_values(BYTES, **lab))]
    return out


@privileged
def test_websocket_frames_and_closes():
    """Raw-socket clients: 101 corked with a greeting, 7/16/64-bit lengths,
    a fragmented message with pings between the fragments, frame headers
    split between reads, ping/pong; then a client close (4001), a server
    close (4002) and a TCP close without a close frame.  Counts equal the
    clients' own, the gauge equals Bun's pendingWebSockets throughout."""
    with BunApp() as app, Bunscope.for_app(app) as scope:
        c1 = WSClient("127.0.0.1", app.port, "/ws?greet=1")
        assert c1.recv() == (WS_TEXT, b"welcome")
        c2 = WSClient("127.0.0.1", app.port, "/ws/rooms/7")
        c3 = WSClient("::1", app.port, "/ws")
        clients = [c1, c2, c3]
        wait_active(scope, app, 3)
        assert_equal(scope.server_metrics(app.pid)["websockets"]["pendingConnections"], 3,
                     "JSON pendingConnections")

        for i in range(5):
            c1.send(WS_TEXT, b"hello %d" % i)
        for i in range(3):
            c2.send(WS_BINARY, bytes([i, 1, 2]))
        c1.send(WS_TEXT, b"x" * 300)                 # 16-bit length
        c3.send(WS_BINARY, bytes(70000))             # 64-bit length
        c1.send_fragmented(WS_TEXT, [b"frag-one ", b"frag-two ", b"frag-three"],
                           between=(WS_PING, b"p"))
        c2.send(WS_TEXT, b"split header one", pieces=[1])   # header cut after byte 1
        c2.send(WS_TEXT, b"split header two", pieces=[3, 8])  # in the mask, in the payload
        c3.send(WS_BINARY, bytes(300), pieces=[2])   # between the 16-bit length bytes
        c3.send(WS_PING, b"are you there")
        # every echo and pong back at the clients
        want = {c1: 5 + 1 + 1, c2: 3 + 2, c3: 2}
        pongs = {c1: 2, c2: 0, c3: 1}
        for c in clients:
            got_msgs = got_pongs = 0
            while got_msgs < want[c] or got_pongs < pongs[c]:
                op, _ = c.recv()
                if op == 10:
                    got_pongs += 1
                else:
                    got_msgs += 1
        truth = ground_truth(clients)
        assert truth[("in", "text")][0] == 5 + 1 + 1 + 2 and truth[("out", "pong")][0] == 3

        got = wait_until(lambda: scraped(scope.scrape(), app), 10,
                         "bunscope WebSocket counts == the clients'",
                         check=lambda v: v == truth)
        assert_equal(got, truth, "messages and bytes")

        # closes: client-initiated, server-initiated, abrupt
        c1.close(4001)
        c2.send(WS_TEXT, b"close-me")
        op, _ = c2.recv()
        assert op == WS_CLOSE and c2.close_code == 4002, (op, c2.close_code)
        c2.send(WS_CLOSE, (4002).to_bytes(2, "big"))
        c2.sock.close()
        c3.abort()
        wait_active(scope, app, 0)
        bun = json.loads(app._control("/ws-stats"))
        assert_equal(bun["opened"], 3, "Bun opened")
        assert_equal(bun["closeCodes"], {"4001": 1, "4002": 1, "1006": 1}, "Bun's close codes")

        s = scope.scrape()
        for code, n in (("4001", 1), ("4002", 1), ("abnormal", 1)):
            assert_equal(int(s.sum_values(CLOSED, server_port=app.port, code=code)), n,
                         "closed with %s" % code)
        assert_equal(int(s.sum_values(CLOSED, server_port=app.port)), 3, "closed in all")
        assert_equal(int(s.sum_values(OPENED, server_port=app.port)), 3, "opened")
        assert_equal(int(s.sum_values(LIFE + "_count", server_port=app.port)), 3, "lifetimes")
        assert_equal(int(s.sum_values(OPENED, server_port=app.port, http_route="/ws/rooms/:id")),
                     1, "templated upgrade route")
        assert_equal(int(s.sum_values(OPENED, server_port=app.port, http_route="/ws")), 2,
                     "/ws upgrades")
        assert_equal(scraped(s, app), ground_truth(clients), "final counts")
        assert_equal(int(s.sum_values("bunscope_websocket_errors_total", server_port=app.port)),
                     0, "WebSocket errors")
        # the upgrades are HTTP requests too (status 101), nothing is pending
        assert_equal(s.count(app.port, app.pid, http_response_status_code="101"), 3,
                     "101 responses")
        assert_equal(s.active(app.port, app.pid), 0, "pending requests")


@privileged
def test_websocket_load_bun_client():
    """Bun's WebSocket client: 40 connections each with 500 messages in
    flight.  The gauge equals Bun's pendingWebSockets before, during and after
    the traffic; message and byte counts equal the client's."""
    conns, msgs, size = 40, 500, 64
    with BunApp() as app, Bunscope.for_app(app) as scope:
        client = subprocess.Popen(
            [str(BUN), str(REPO / "tests" / "apps" / "ws_client.js"),
             "ws://127.0.0.1:%d/ws" % app.port, str(conns), str(msgs), str(size)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        try:
            line = client.stdout.readline().strip()
            assert line == "open", "client: %r" % line
            wait_active(scope, app, conns)
            # while the messages flow, both views stay at conns
            samples = []
            t0 = time.monotonic()
            while client.poll() is None and time.monotonic() - t0 < 0.5:
                samples.append((ws_active(scope, app), app.stats()["pendingWebSockets"]))
            assert samples and all(a == b == conns for a, b in samples), samples
            line = client.stdout.readline().split()
            assert line[0] == "done", line
            sent, received, rbytes = int(line[1]), int(line[2]), int(line[3])
            assert sent == received == conns * msgs, line

            def counts():
                s = scope.scrape()
                lab = dict(server_port=app.port, pid=app.pid, opcode="text")
                return (int(s.sum_values(MSGS, direction="in", **lab)),
                        int(s.sum_values(MSGS, direction="out", **lab)),
                        int(s.sum_values(BYTES, direction="in", **lab)),
                        int(s.sum_values(BYTES, direction="out", **lab)))
            want = (sent, received, sent * size, rbytes)
            got = wait_until(counts, 15, "text messages in/out == the client's",
                             check=lambda v: v == want)
            assert_equal(got, want, "messages")

            client.stdin.write("close\n")
            client.stdin.flush()
            line = client.stdout.readline().split()
            assert line == ["closed", str(conns)], line
            wait_active(scope, app, 0)
            s = scope.scrape()
            assert_equal(int(s.sum_values(CLOSED, server_port=app.port, code="1000")), conns,
                         "closed with 1000")
            assert_equal(int(s.sum_values("bunscope_websocket_errors_total",
                                          server_port=app.port)), 0, "WebSocket errors")
        finally:
            if client.poll() is None:
                client.kill()
            client.wait(10)


@privileged
def test_websocket_idle_timeout():
    """Bun's WebSocket idle timeout (idleTimeout 2 s, which Bun's timer rounds
    up to 4 s): Bun pings an idle socket, and closes it without a close frame
    when no pong comes (Bun's close handler sees 1006).  One client stays
    silent and is closed this way; one answers the ping and stays open.
    bunscope counts the silent one's close as abnormal, its lifetime as what
    the client saw, and the pings and the pong as the clients did."""
    with BunApp(env={"WS_IDLE_TIMEOUT": 2}) as app, Bunscope.for_app(app) as scope:
        silent = WSClient("127.0.0.1", app.port, "/ws")
        opened_at = time.monotonic()
        polite = WSClient("127.0.0.1", app.port, "/ws")
        wait_active(scope, app, 2)
        op, _ = polite.recv(timeout=15)
        assert op == WS_PING, op
        polite.send(WS_PONG, b"")
        op, _ = silent.recv(timeout=15)
        assert op == WS_PING, op
        try:
            op, payload = silent.recv(timeout=15)
            raise AssertionError("silent client: frame %d %r instead of a TCP close"
                                 % (op, payload[:40]))
        except ConnectionClosed:
            lifetime = time.monotonic() - opened_at
        silent.sock.close()
        wait_active(scope, app, 1)
        bun = json.loads(app._control("/ws-stats"))
        assert_equal(bun["closeCodes"], {"1006": 1}, "Bun's close codes")
        s = scope.scrape()
        assert_equal(int(s.sum_values(CLOSED, server_port=app.port, code="abnormal")), 1,
                     "idle close counted abnormal")
        assert_equal(int(s.sum_values(CLOSED, server_port=app.port)), 1, "closed in all")
        ours = s.sum_values(LIFE + "_sum", server_port=app.port)
        assert abs(ours - lifetime) < 0.25, (ours, lifetime)

        polite.close(1000)
        wait_active(scope, app, 0)
        s = scope.scrape()
        assert_equal(int(s.sum_values(CLOSED, server_port=app.port, code="1000")), 1,
                     "the polite client's close")
        truth = ground_truth([silent, polite])
        assert truth[("out", "ping")][0] >= 2 and truth[("in", "pong")][0] == 1, truth
        assert_equal(scraped(s, app), truth, "messages and bytes")


M64 = (1 << 64) - 1


def path_hash(seed, path):
    """The kernel's path hash (hp_hash in include/http_parse.h)."""
    h = seed ^ (len(path) * 0x9E3779B97F4A7C15 & M64)
    for at in range(0, len(path), 8):
        h ^= int.from_bytes(path[at:at + 8], "little")
        h = h * 0xFF51AFD7ED558CCD & M64
        h ^= h >> 32
    h = h * 0xC4CEB9FE1A85EC53 & M64
    return h ^ (h >> 29)


def remember_slot(h):
    """The slot of hash h in the daemon's hash -> route memory (remember_index
    in user/routes.c, ROUTES_REMEMBER_SLOTS 65536)."""
    for shift, mul in ((33, 0xff51afd7ed558ccd), (33, 0xc4ceb9fe1a85ec53)):
        h ^= h >> shift
        h = h * mul & M64
    return (h ^ (h >> 33)) & 0xFFFF


def daemon_map(pid, name):
    """The id of the daemon pid's BPF map called name."""
    ids = bpf_ids(pid)["map"]
    p = run(["bpftool", "-j", "map", "show"], timeout=60)
    assert p.returncode == 0, "bpftool map show: %s" % p.stderr
    found = [m["id"] for m in json.loads(p.stdout) if m["id"] in ids and m.get("name") == name]
    assert len(found) == 1, "the daemon's maps called %s: %r" % (name, found)
    return found[0]


def daemon_hash_seed(pid):
    """hash_seed from the daemon's .rodata map."""
    p = run(["bpftool", "map", "dump", "id", str(daemon_map(pid, "bunscope.rodata"))],
            timeout=60)
    assert p.returncode == 0, "bpftool map dump: %s" % p.stderr
    for var in json.loads(p.stdout)[0]["value"][".rodata"]:
        if "hash_seed" in var:
            return var["hash_seed"] & M64
    raise AssertionError("no hash_seed in %s" % p.stdout[:300])


def kernel_knows_hash(pid, h):
    """Whether the daemon's kernel routes map has the path hash h."""
    key = ["0x%02x" % b for b in h.to_bytes(8, "little")]
    p = run(["bpftool", "map", "lookup", "id", str(daemon_map(pid, "routes")), "key", "hex"]
            + [k[2:] for k in key], timeout=60)
    return p.returncode == 0


def collider(seed, path, rng):
    """A path new to the app whose hash takes the slot of path's hash in the
    daemon's hash -> route memory (about 65,536 tries)."""
    slot = remember_slot(path_hash(seed, path))
    for _ in range(4_000_000):
        other = ("/collide/" + "".join(rng.choice("ghijklmnopqrstuvwxyz")
                                       for _ in range(10))).encode()
        if remember_slot(path_hash(seed, other)) == slot:
            return other.decode()
    raise AssertionError("no path in the slot of %r" % path)


@privileged
def test_route_memory_forgets():
    """The daemon's hash -> route memory is bounded (direct-mapped): a newer
    path whose hash takes the same slot makes it forget an older one.  With
    the daemon stopped (SIGSTOP) so that its path records queue up:
    - GET /slow is answered after a GET of a colliding path: its completion
      record comes after the collider's path record, and is counted under
      /slow, not _other;
    - a WebSocket opens on a new path (counted under the path's hash, the
      kernel not knowing the route yet), a colliding path is requested, and
      the WebSocket closes after the daemon resumed: the gauge equals Bun's
      pendingWebSockets, and the open and the close are under the upgrade's
      route, not "_unknown"."""
    with BunApp() as app, Bunscope.for_app(app) as scope:
        daemon = scope.pid
        seed, rng = daemon_hash_seed(daemon), random.Random()
        room = "/ws/rooms/%d" % rng.randrange(10 ** 9)
        http_other, ws_other = collider(seed, b"/slow", rng), collider(seed, room.encode(), rng)
        lab = dict(server_port=app.port, pid=app.pid)

        os.kill(daemon, signal.SIGSTOP)
        try:
            slow = connect("127.0.0.1", app.port)
            slow.sendall(get_req(b"/slow?ms=300"))
            wait_until(lambda: app.stats()["pendingRequests"], 10, "GET /slow pending in Bun",
                       check=lambda v: v == 1)
            statuses = [http_request("127.0.0.1", app.port, "GET", http_other)[0]]
            statuses += [r.status for r in HTTPReader(slow).read_responses(1)]
            c = WSClient("127.0.0.1", app.port, room)
            statuses.append(http_request("127.0.0.1", app.port, "GET", ws_other)[0])
        finally:
            os.kill(daemon, signal.SIGCONT)
        assert_equal(statuses, [404, 200, 404], "GET collider, /slow, collider")
        # records are read in order: once the last collider is counted, every
        # path record was (and the room's and /slow's forgotten)
        scope.wait_count(app.port, 1, app.pid, http_route=ws_other)
        # the hashes above are the kernel's (else the paths need not collide)
        assert_equal([kernel_knows_hash(daemon, path_hash(seed, p.encode()))
                      for p in ("/slow", http_other, room, ws_other)], [True] * 4,
                     "the kernel's routes map has the hashes computed here")
        wait_until(lambda: {r: scope.count(app.port, app.pid, http_route=r)
                            for r in ("/slow", "_other")}, 10,
                   "GET /slow counted under /slow", check=lambda v: v == {"/slow": 1, "_other": 0})

        wait_active(scope, app, 1)
        c.send(WS_TEXT, b"hello")
        assert c.recv() == (WS_TEXT, b"hello")
        c.close(1000)
        wait_active(scope, app, 0)
        s = scope.scrape()
        for name in (OPENED, CLOSED):
            routes = {l["http_route"]: int(v) for _, l, v in s.select(name, **lab) if v}
            assert_equal(routes, {"/ws/rooms/:id": 1}, "%s by route" % name)
